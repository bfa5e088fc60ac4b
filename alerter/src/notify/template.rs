//! Notification templates: Go `text/template` syntax (via the `gtmpl` crate) over Alertmanager's
//! notification data (<https://prometheus.io/docs/alerting/latest/notifications/>), with default
//! templates defined here (`__subject`, `slack.default.*`, `email.default.*`) and user template
//! files (`templates:` globs) adding `{{ define }}` blocks.
//!
//! Supported data: `.Receiver`, `.Status`, `.Alerts`, `.Firing`, `.Resolved` (Alertmanager's
//! `.Alerts.Firing`/`.Alerts.Resolved` are methods Go-only; use these lists), `.GroupLabels`,
//! `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`, `.GroupKey`, plus precomputed
//! `.GroupLabelValues` and `.CommonLabelValues` (space-joined, instead of `SortedPairs.Values`).
//! Per alert: `.Status`, `.Labels`, `.Annotations`, `.StartsAt`, `.EndsAt` (RFC 3339 strings),
//! `.GeneratorURL`, `.Fingerprint`, `.LabelPairs` (sorted `{Name, Value}` list).
//! Functions: gtmpl's builtins (`eq`, `len`, `printf`, `index`, …) plus `toUpper`, `toLower`,
//! `title`, `join`, `html`, `safeHtml`, `trimSpace`, `reReplaceAll`, `default`.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use gtmpl::{Context, FuncError, Template, Value};

use super::types::{Alert, LabelSet, fingerprint_hex};

/// Why a template failed; not retried (fix the template).
#[derive(Debug, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(pub String);

const DEFAULTS: &str = r#"
{{ define "__subject" }}[{{ toUpper .Status }}{{ if eq .Status "firing" }}:{{ len .Firing }}{{ end }}] {{ .GroupLabelValues }}{{ if .CommonLabelValues }} ({{ .CommonLabelValues }}){{ end }}{{ end }}
{{ define "__summary" }}{{ if index .Annotations "summary" }}{{ index .Annotations "summary" }}{{ else }}{{ index .Labels "alertname" }}{{ end }}{{ end }}
{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.color" }}{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}{{ end }}
{{ define "slack.default.text" }}{{ range .Alerts }}{{ if eq .Status "firing" }}:red_circle:{{ else }}:large_green_circle:{{ end }} *{{ index .Labels "alertname" }}*{{ if index .Labels "severity" }} ({{ index .Labels "severity" }}){{ end }}: {{ template "__summary" . }}
{{ if index .Annotations "description" }}{{ index .Annotations "description" }}
{{ end }}*Started:* {{ .StartsAt }}{{ if eq .Status "resolved" }}  *Resolved:* {{ .EndsAt }}{{ end }}
*Labels:*{{ range .LabelPairs }} `{{ .Name }}={{ .Value }}`{{ end }}{{ if .GeneratorURL }}
<{{ .GeneratorURL }}|:mag: Open the query>{{ end }}
{{ end }}{{ end }}
{{ define "slack.default.fallback" }}{{ template "__subject" . }}{{ end }}
{{ define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "email.default.text" }}{{ template "__subject" . }}
{{ range .Alerts }}
[{{ toUpper .Status }}] {{ index .Labels "alertname" }}{{ if index .Labels "severity" }} ({{ index .Labels "severity" }}){{ end }}: {{ template "__summary" . }}
{{ if index .Annotations "description" }}{{ index .Annotations "description" }}
{{ end }}Started: {{ .StartsAt }}{{ if eq .Status "resolved" }}
Resolved: {{ .EndsAt }}{{ end }}
Labels:{{ range .LabelPairs }}
  {{ .Name }} = {{ .Value }}{{ end }}{{ if .GeneratorURL }}
Query: {{ .GeneratorURL }}{{ end }}
{{ end }}{{ if .ExternalURL }}
Sent by {{ .ExternalURL }}{{ end }}
{{ end }}
{{ define "email.default.html" }}<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2 style="color: {{ if eq .Status "firing" }}#d63232{{ else }}#2e9e44{{ end }}">{{ html (printf "%s" .Subject) }}</h2>
{{ range .Alerts }}<table style="border-collapse: collapse; margin-bottom: 1em" border="1" cellpadding="4">
<tr><th colspan="2" align="left">[{{ toUpper .Status }}] {{ html (index .Labels "alertname") }}: {{ html .Summary }}</th></tr>
{{ if index .Annotations "description" }}<tr><td colspan="2">{{ html (index .Annotations "description") }}</td></tr>
{{ end }}<tr><td>Started</td><td>{{ .StartsAt }}</td></tr>
{{ if eq .Status "resolved" }}<tr><td>Resolved</td><td>{{ .EndsAt }}</td></tr>
{{ end }}{{ range .LabelPairs }}<tr><td>{{ html .Name }}</td><td>{{ html .Value }}</td></tr>
{{ end }}{{ if .GeneratorURL }}<tr><td colspan="2"><a href="{{ html .GeneratorURL }}">Open the query</a></td></tr>
{{ end }}</table>
{{ end }}</body></html>
{{ end }}
"#;

/// The templates of one config: defaults plus user `{{ define }}` files.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    user: String,
}

/// The group being notified, before it becomes template data.
pub struct NotificationData<'a> {
    pub receiver: &'a str,
    pub group_key: &'a str,
    pub group_labels: &'a LabelSet,
    pub alerts: &'a [Alert],
    pub now: DateTime<Utc>,
    pub external_url: &'a str,
}

impl Templates {
    /// Loads the template files matched by the globs (resolved by the caller).
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Templates, TemplateError> {
        let mut user = String::new();
        for p in paths {
            let text =
                std::fs::read_to_string(p).map_err(|e| TemplateError(format!("reading {}: {e}", p.display())))?;
            user.push_str(&text);
            user.push('\n');
        }
        let t = Templates { user };
        t.compile("")?;
        Ok(t)
    }

    fn compile(&self, text: &str) -> Result<Template, TemplateError> {
        check_actions_closed(&self.user)?;
        check_actions_closed(text)?;
        let mut tmpl = Template::default();
        tmpl.add_funcs(&FUNCS);
        // Defines produce no output, so defaults + user blocks + the text render as the text.
        let src = format!("{DEFAULTS}{}{{{{/* main */}}}}{text}", self.user);
        tmpl.parse(src).map_err(|e| TemplateError(e.to_string()))?;
        Ok(tmpl)
    }

    /// Renders `text` against the notification data.
    pub fn render(&self, text: &str, data: &Value) -> Result<String, TemplateError> {
        let tmpl = self.compile(text)?;
        let out = tmpl.render(&Context::from(data.clone())).map_err(|e| TemplateError(e.to_string()))?;
        // The defaults block leaves its newlines in front of the output.
        Ok(out.trim_start_matches('\n').to_string())
    }

    /// Renders a named template (`{{ template "name" . }}`).
    pub fn render_named(&self, name: &str, data: &Value) -> Result<String, TemplateError> {
        self.render(&format!("{{{{ template \"{name}\" . }}}}"), data)
    }
}

/// gtmpl 0.7 loops forever on an action left open at the end of the text (`{{ .x `), so
/// reject unclosed actions before parsing.
fn check_actions_closed(text: &str) -> Result<(), TemplateError> {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError(format!("unclosed action at byte {}", text.len() - rest.len() + open)));
        };
        if crate::template::non_ascii_outside_quotes(&after[..close]) {
            return Err(TemplateError(format!(
                "non-ASCII character inside the action at byte {} (only allowed in quoted strings)",
                text.len() - rest.len() + open
            )));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn map(l: &LabelSet) -> Value {
    Value::Map(l.iter().map(|(k, v)| (k.clone(), s(v.clone()))).collect())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn common(sets: &[&LabelSet]) -> LabelSet {
    let Some(first) = sets.first() else { return LabelSet::new() };
    first
        .iter()
        .filter(|(k, v)| sets.iter().all(|s| s.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Builds the template data (Alertmanager's `template.Data`).
pub fn data(n: &NotificationData<'_>) -> Value {
    let mut alerts = Vec::new();
    let (mut firing, mut resolved) = (Vec::new(), Vec::new());
    for a in n.alerts {
        let is_resolved = a.is_resolved_at(n.now);
        let summary = a.annotations.get("summary").or_else(|| a.labels.get("alertname")).cloned().unwrap_or_default();
        let pairs: Vec<Value> = a
            .labels
            .iter()
            .map(|(k, v)| {
                Value::Object(HashMap::from([("Name".to_string(), s(k.clone())), ("Value".to_string(), s(v.clone()))]))
            })
            .collect();
        let obj = Value::Object(HashMap::from([
            ("Status".to_string(), s(if is_resolved { "resolved" } else { "firing" })),
            ("Labels".to_string(), map(&a.labels)),
            ("Annotations".to_string(), map(&a.annotations)),
            ("StartsAt".to_string(), s(time(a.starts_at))),
            ("EndsAt".to_string(), s(if is_resolved { time(a.ends_at) } else { String::new() })),
            ("GeneratorURL".to_string(), s(a.generator_url.clone())),
            ("Fingerprint".to_string(), s(fingerprint_hex(a.fingerprint()))),
            ("LabelPairs".to_string(), Value::Array(pairs)),
            ("Summary".to_string(), s(summary)),
        ]));
        if is_resolved {
            resolved.push(obj.clone())
        } else {
            firing.push(obj.clone())
        }
        alerts.push(obj);
    }
    let status = if firing.is_empty() { "resolved" } else { "firing" };
    let label_sets: Vec<&LabelSet> = n.alerts.iter().map(|a| &a.labels).collect();
    let ann_sets: Vec<&LabelSet> = n.alerts.iter().map(|a| &a.annotations).collect();
    let common_labels = common(&label_sets);
    let group_values: Vec<&str> = n.group_labels.values().map(String::as_str).collect();
    let extra: Vec<&str> =
        common_labels.iter().filter(|(k, _)| !n.group_labels.contains_key(*k)).map(|(_, v)| v.as_str()).collect();
    let mut top = HashMap::from([
        ("Receiver".to_string(), s(n.receiver)),
        ("Status".to_string(), s(status)),
        ("Alerts".to_string(), Value::Array(alerts)),
        ("Firing".to_string(), Value::Array(firing)),
        ("Resolved".to_string(), Value::Array(resolved)),
        ("GroupLabels".to_string(), map(n.group_labels)),
        ("CommonLabels".to_string(), map(&common_labels)),
        ("CommonAnnotations".to_string(), map(&common(&ann_sets))),
        ("ExternalURL".to_string(), s(n.external_url)),
        ("GroupKey".to_string(), s(n.group_key)),
        ("GroupLabelValues".to_string(), s(group_values.join(" "))),
        ("CommonLabelValues".to_string(), s(extra.join(" "))),
    ]);
    top.insert("Subject".to_string(), s(String::new()));
    Value::Object(top)
}

/// Sets `.Subject` (the rendered subject, used by the default HTML body).
pub fn with_subject(data: &Value, subject: &str) -> Value {
    match data {
        Value::Object(m) => {
            let mut m = m.clone();
            m.insert("Subject".to_string(), s(subject));
            Value::Object(m)
        }
        other => other.clone(),
    }
}

fn str_arg(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::NoValue | Value::Nil) => Ok(String::new()),
        Some(other) => Ok(other.to_string()),
        None => Err(FuncError::AtLeastXArgs(name.to_string(), i + 1)),
    }
}

fn to_upper(a: &[Value]) -> Result<Value, FuncError> {
    Ok(s(str_arg(a, 0, "toUpper")?.to_uppercase()))
}
fn to_lower(a: &[Value]) -> Result<Value, FuncError> {
    Ok(s(str_arg(a, 0, "toLower")?.to_lowercase()))
}
fn title(a: &[Value]) -> Result<Value, FuncError> {
    let t = str_arg(a, 0, "title")?;
    let mut out = String::with_capacity(t.len());
    let mut start = true;
    for c in t.chars() {
        if start {
            out.extend(c.to_uppercase())
        } else {
            out.push(c)
        }
        start = !c.is_alphanumeric();
    }
    Ok(s(out))
}
fn trim_space(a: &[Value]) -> Result<Value, FuncError> {
    Ok(s(str_arg(a, 0, "trimSpace")?.trim().to_string()))
}
/// `join SEP LIST` (pipeline form `LIST | join SEP` is not Go's order; both list positions work).
fn join(a: &[Value]) -> Result<Value, FuncError> {
    let (sep, list) = match (a.first(), a.get(1)) {
        (Some(Value::String(sep)), Some(Value::Array(l))) | (Some(Value::Array(l)), Some(Value::String(sep))) => {
            (sep.clone(), l.clone())
        }
        _ => return Err(FuncError::Generic("join expects a separator and a list".into())),
    };
    Ok(s(list.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(&sep)))
}
fn html(a: &[Value]) -> Result<Value, FuncError> {
    let t = str_arg(a, 0, "html")?;
    Ok(s(t
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")))
}
fn safe_html(a: &[Value]) -> Result<Value, FuncError> {
    Ok(s(str_arg(a, 0, "safeHtml")?))
}
fn re_replace_all(a: &[Value]) -> Result<Value, FuncError> {
    let re = regex::Regex::new(&format!("^(?:{})$", str_arg(a, 0, "reReplaceAll")?))
        .map_err(|e| FuncError::Generic(e.to_string()))?;
    let repl = str_arg(a, 1, "reReplaceAll")?;
    let text = str_arg(a, 2, "reReplaceAll")?;
    Ok(s(re.replace_all(&text, repl.as_str()).into_owned()))
}
/// `default FALLBACK VALUE`: VALUE unless empty.
fn default_fn(a: &[Value]) -> Result<Value, FuncError> {
    let v = str_arg(a, 1, "default").unwrap_or_default();
    Ok(s(if v.is_empty() { str_arg(a, 0, "default")? } else { v }))
}

const FUNCS: [(&str, gtmpl::Func); 9] = [
    ("toUpper", to_upper),
    ("toLower", to_lower),
    ("title", title),
    ("trimSpace", trim_space),
    ("join", join),
    ("html", html),
    ("safeHtml", safe_html),
    ("reReplaceAll", re_replace_all),
    ("default", default_fn),
];

#[cfg(test)]
mod tests;
