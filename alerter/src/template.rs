//! Go-template expansion of alert labels and annotations, as Prometheus does in
//! `rules/alerting.go` + `template/template.go`: the text is prefixed with
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`
//! and run by the `gtmpl` crate (a Rust port of Go's `text/template`: actions, pipelines,
//! variables, `if`/`range`/`with`, `printf`, comparisons).
//!
//! Functions supported (see [`funcs`]): `humanize`, `humanize1024`, `humanizeDuration`,
//! `humanizePercentage`, `humanizeTimestamp`, `toUpper`, `toLower`, `title`, `match`,
//! `reReplaceAll`, `stripPort`, `stripDomain`, `parseDuration`, `urlQueryEscape`, plus gtmpl's
//! builtins (`printf`, `print`, `eq`…`ge`, `and`, `or`, `not`, `len`, `index`, `urlquery`).
//! Not supported: `query` and the functions over its results (`first`, `label`, `value`,
//! `sortByLabel`), `graphLink`/`tableLink`, `toTime`/`now`; templates using them fail to expand
//! and the raw error text is used as the value, like Prometheus does for broken templates.

pub mod funcs;
pub mod gofmt;

use std::collections::{BTreeMap, HashMap};

use gtmpl::{Context, Template, Value};
use thiserror::Error;

/// Why a template did not parse or expand.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TemplateError {
    #[error("error parsing template: {0}")]
    Parse(String),
    #[error("error executing template: {0}")]
    Exec(String),
}

/// The data an alert template sees.
#[derive(Debug, Clone, Copy)]
pub struct TemplateData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub value: f64,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
}

const PRELUDE: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn template_for(text: &str) -> Result<Template, TemplateError> {
    let mut t = Template::default();
    t.add_funcs(funcs::FUNCS);
    t.parse(format!("{PRELUDE}{text}")).map_err(|e| TemplateError::Parse(e.to_string()))?;
    Ok(t)
}

/// Parses `text` without running it (for `check-rules`).
pub fn check(text: &str) -> Result<(), TemplateError> {
    if !text.contains("{{") {
        return Ok(());
    }
    template_for(text).map(|_| ())
}

fn map_value(m: &BTreeMap<String, String>) -> Value {
    Value::Map(m.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<HashMap<_, _>>())
}

/// Expands `text` with `data`.
pub fn expand(text: &str, data: TemplateData<'_>) -> Result<String, TemplateError> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let t = template_for(text)?;
    let mut root = HashMap::new();
    root.insert("Labels".to_string(), map_value(data.labels));
    root.insert("ExternalLabels".to_string(), map_value(data.external_labels));
    root.insert("ExternalURL".to_string(), Value::from(data.external_url));
    root.insert("Value".to_string(), Value::from(data.value));
    t.render(&Context::from(Value::Object(root))).map_err(|e| TemplateError::Exec(e.to_string()))
}

/// Expands like Prometheus' alerting rule: a failing template yields its error text (prefixed
/// `<error expanding template: …>`) instead of failing the evaluation.
pub fn expand_or_error(name: &str, text: &str, data: TemplateData<'_>) -> String {
    match expand(text, data) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(template = name, error = %e, "Expanding alert template failed.");
            format!("<error expanding template: {e}>")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, value: f64) -> String {
        let labels = BTreeMap::from([("job".to_string(), "api".to_string()), ("instance".to_string(), "host:9100".to_string())]);
        let ext = BTreeMap::from([("cluster".to_string(), "prod".to_string())]);
        expand(text, TemplateData { labels: &labels, value, external_labels: &ext, external_url: "http://x" }).unwrap()
    }

    #[test]
    fn variables_and_functions() {
        assert_eq!(run("plain", 1.0), "plain");
        assert_eq!(run("{{ $labels.job }} on {{ $labels.instance }}", 1.0), "api on host:9100");
        assert_eq!(run("{{ $externalLabels.cluster }} {{ $externalURL }}", 1.0), "prod http://x");
        assert_eq!(run("{{ $value | humanize }}", 1234567.0), "1.235M");
        assert_eq!(run("{{ humanizePercentage $value }}", 0.1234), "12.34%");
        assert_eq!(run("{{ $value | humanizeDuration }}", 90061.0), "1d 1h 1m 1s");
        assert_eq!(run("{{ printf \"%.2f\" $value }}", 1.23456), "1.23");
        assert_eq!(run("{{ $labels.job | toUpper }} {{ title \"hello world\" }}", 0.0), "API Hello World");
        assert_eq!(run("{{ reReplaceAll \":.*\" \"\" $labels.instance }}", 0.0), "host");
        assert_eq!(run("{{ if gt $value 10.0 }}high{{ else }}low{{ end }}", 11.0), "high");
        assert_eq!(run("{{ $labels.instance | stripPort }}", 0.0), "host");
    }

    #[test]
    fn errors_are_reported() {
        assert!(check("{{ $labels.job ").is_err());
        assert!(check("{{ nosuchfunc 1 }}").is_err());
        assert!(check("{{ $labels.job }}").is_ok());
        let labels = BTreeMap::new();
        let d = TemplateData { labels: &labels, value: 1.0, external_labels: &labels, external_url: "" };
        assert!(expand_or_error("t", "{{ humanize \"abc\" }}", d).starts_with("<error expanding template"));
    }
}
