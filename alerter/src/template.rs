//! Go-template expansion of alert labels and annotations, as Prometheus does in
//! `rules/alerting.go` + `template/template.go`: the text is prefixed with
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`
//! and run by the `gtmpl` crate (a Rust port of Go's `text/template`: actions, pipelines,
//! variables, `if`/`range`/`with`, `printf`, comparisons).
//!
//! Functions supported (see [`funcs`]): `humanize`, `humanize1024`, `humanizeDuration`,
//! `humanizePercentage`, `humanizeTimestamp`, `toUpper`, `toLower`, `title`, `match`,
//! `reReplaceAll`, `stripPort`, `stripDomain`, `parseDuration`, `urlQueryEscape`, plus gtmpl's
//! builtins (`print`, `and`, `or`, `not`, `len`, `index`, `urlquery`) with `printf` and the
//! comparisons `eq`…`ge` replaced by Go-faithful versions ([`gofuncs`]). `$value` is the Go `%v`
//! text of the sample value (`1.234567e+06`), accepted as a number by every numeric function.
//! Not supported: `query` and the functions over its results (`first`, `label`, `value`,
//! `sortByLabel`), `graphLink`/`tableLink`, `toTime`/`now`; templates using them fail to expand
//! and the raw error text is used as the value, like Prometheus does for broken templates.

pub mod funcs;
pub mod gofmt;
pub mod gofuncs;

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

const PRELUDE: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Checks that every action is closed before gtmpl sees the text: gtmpl 0.7's parser does not
/// terminate on an unclosed action (`{{ $labels.x `), so this must be caught first. Skips
/// quoted strings, raw strings, char literals and comments like Go's lexer. Also refuses
/// non-ASCII characters in an action outside quotes: gtmpl 0.7.1's lexer backs up one byte
/// after a multi-byte character and panics on the broken slice (found by the `rule_file_load`
/// fuzz target); Go would reject such an identifier anyway.
fn check_delims(text: &str) -> Result<(), TemplateError> {
    let unclosed = |what: &str| Err(TemplateError::Parse(format!("unclosed {what}")));
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find("{{") {
        i += off + 2;
        if text[i..].trim_start_matches(['-', ' ']).starts_with("/*") {
            let Some(end) = text[i..].find("*/") else { return unclosed("comment") };
            i += end + 2;
        }
        loop {
            match b.get(i) {
                None | Some(b'\n') | Some(b'\r') => return unclosed("action"),
                Some(b'}') if b.get(i + 1) == Some(&b'}') => {
                    i += 2;
                    break;
                }
                Some(&q @ (b'"' | b'\'')) => {
                    i += 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => return unclosed("quoted string"),
                            Some(b'\\') => i += 2,
                            Some(c) if *c == q => {
                                i += 1;
                                break;
                            }
                            Some(_) => i += 1,
                        }
                    }
                }
                Some(b'`') => {
                    let Some(end) = text[i + 1..].find('`') else { return unclosed("raw quote") };
                    i += end + 2;
                }
                Some(c) if !c.is_ascii() => {
                    return Err(TemplateError::Parse(format!(
                        "non-ASCII character at byte {i} inside an action (only allowed in quoted strings)"
                    )));
                }
                Some(_) => i += 1,
            }
        }
    }
    Ok(())
}

/// True when `action` (the text between `{{` and `}}`) has a non-ASCII character outside quoted
/// strings, which gtmpl 0.7.1's lexer cannot handle (see [`check_delims`]).
pub(crate) fn non_ascii_outside_quotes(action: &str) -> bool {
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for c in action.bytes() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == b'\\' && q != b'`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if matches!(c, b'"' | b'\'' | b'`') => quote = Some(c),
            None if !c.is_ascii() => return true,
            None => {}
        }
    }
    false
}

fn template_for(text: &str) -> Result<Template, TemplateError> {
    check_delims(text)?;
    let mut t = Template::default();
    t.add_funcs(funcs::FUNCS);
    t.add_funcs(gofuncs::OVERRIDES);
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
    // As Go's `%v` text: gtmpl's numbers lose the fraction of negative floats and turn
    // integral floats into integers (see `gofuncs`).
    root.insert("Value".to_string(), Value::from(funcs::go_shortest(data.value)));
    // Go prints a missing key of a map[string]string as "" (the zero value); gtmpl prints
    // "<no value>".
    t.render(&Context::from(Value::Object(root)))
        .map(|s| s.replace("<no value>", ""))
        .map_err(|e| TemplateError::Exec(e.to_string()))
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
        let labels =
            BTreeMap::from([("job".to_string(), "api".to_string()), ("instance".to_string(), "host:9100".to_string())]);
        let ext = BTreeMap::from([("cluster".to_string(), "prod".to_string())]);
        expand(text, TemplateData { labels: &labels, value, external_labels: &ext, external_url: "http://x" }).unwrap()
    }

    /// Regression (fuzz/corpus/rule_file_load/non_ascii_in_action.yml): gtmpl 0.7.1 panicked on
    /// a multi-byte character inside an action; it is now a parse error. Inside quoted strings
    /// and in plain text it stays allowed.
    #[test]
    fn non_ascii_in_actions() {
        for bad in ["{{ ԉalue | humanize }}", "{{ $labels.naïve }}", "{{ if gt $value 1.0 }}é{{ end }}{{ é }}"] {
            let e = check(bad).unwrap_err();
            assert!(e.to_string().contains("non-ASCII"), "{bad}: {e}");
        }
        assert_eq!(
            run("Température {{ \"élevée\" }} {{ `→` }} {{ $labels.job }} ✓", 1.0),
            "Température élevée → api ✓"
        );
        assert!(!non_ascii_outside_quotes(" \"a\\\"é\" "));
        assert!(non_ascii_outside_quotes(" 'a' é "));
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
        assert_eq!(run("v={{ $value }} {{- $value -}} !", 1234567.0), "v=1.234567e+061.234567e+06!");
        assert_eq!(run("{{$value}} {{ $value }}", 42.0), "42 42");
        assert_eq!(run("{{ $value }}", 0.5), "0.5");
        assert_eq!(
            run("{{ $value }} {{ printf \"%.1f\" $value }} {{ if lt $value -2.0 }}low{{ end }}", -2.5),
            "-2.5 -2.5 low"
        );
        assert_eq!(run("{{ printf \"%.2f\" $value }}", 95.0), "95.00");
        // Checked against promtool 2.42: missing label keys print as empty strings.
        assert_eq!(run("[{{ $labels.missing }}]", 0.5), "[]");
        assert_eq!(
            run("{{ title \"hello wORLD-x\" }} {{ humanizeTimestamp $value }}", 1234567.0),
            "Hello WORLD-X 1970-01-15 06:56:07 +0000 UTC"
        );
    }

    /// Random token soups must parse or fail within a bounded time (gtmpl has hung on some).
    #[test]
    fn parsing_terminates_on_malformed_input() {
        use proptest::prelude::*;
        let tokens = prop::sample::select(vec![
            "{{", "}}", " ", "$labels", ".x", "|", "(", ")", "\"", "`", "if", "end", "else", "range", "humanize", "1",
            "-", "/*", "*/", "$", ":=", "printf", "'a'", "\n", "with", "define", "template", "block", "nil", ",",
        ]);
        let mut runner =
            proptest::test_runner::TestRunner::new(ProptestConfig { cases: 300, ..ProptestConfig::default() });
        runner
            .run(&prop::collection::vec(tokens, 0..12), |v| {
                let text = v.concat();
                let (tx, rx) = std::sync::mpsc::channel();
                let t = text.clone();
                std::thread::spawn(move || {
                    let _ = check(&t);
                    let _ = tx.send(());
                });
                prop_assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok(), "parse hangs on {text:?}");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn errors_are_reported() {
        assert!(check("{{ \"unterminated }}").is_err());
        assert!(check("{{/* open comment }}").is_err());
        assert!(check("{{ \"}}\" }}").is_ok());
        assert!(check("{{ $labels.job ").is_err());
        assert!(check("{{ nosuchfunc 1 }}").is_err());
        assert!(check("{{ $labels.job }}").is_ok());
        let labels = BTreeMap::new();
        let d = TemplateData { labels: &labels, value: 1.0, external_labels: &labels, external_url: "" };
        assert!(expand_or_error("t", "{{ humanize \"abc\" }}", d).starts_with("<error expanding template"));
    }
}
