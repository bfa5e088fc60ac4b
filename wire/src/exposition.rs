//! A tolerant parser for the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text.
//! Used by the store's import endpoint and `crowsnest import` (backfill) and by the collector's
//! scrapes. Bad lines are reported with their 1-based line number and the good lines are kept, so
//! an importer can load what it can and a scraper can decide to fail the whole scrape.
//! Specs: <https://prometheus.io/docs/instrumenting/exposition_formats/>,
//! <https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md>.

use std::collections::HashMap;

use crate::METRIC_NAME;
use crate::labels::{Label, Labels, is_valid_label_name, is_valid_metric_name};
use crate::remote::{MetricMetadata, MetricType};

/// Which dialect to parse. They differ in timestamps (integer milliseconds vs float seconds),
/// the `# EOF` terminator, `# UNIT`, and exemplars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

/// The Content-Type Prometheus sends when scraping, preferring OpenMetrics.
pub const SCRAPE_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

impl Format {
    /// Picks the dialect from a Content-Type header, falling back to sniffing for `# EOF`.
    pub fn detect(content_type: Option<&str>, body: &str) -> Format {
        if content_type.is_some_and(|c| c.contains("application/openmetrics-text")) {
            return Format::OpenMetrics;
        }
        let tail = body.trim_end();
        if tail.ends_with("# EOF") { Format::OpenMetrics } else { Format::Prometheus }
    }
}

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds, when the line carries a timestamp.
    pub timestamp: Option<i64>,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Everything parsed from one exposition body.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    pub samples: Vec<ParsedSample>,
    /// One entry per metric family with a `# TYPE`, `# HELP` or `# UNIT` line.
    pub metadata: Vec<MetricMetadata>,
    pub errors: Vec<LineError>,
}

/// Parses a whole body.
pub fn parse(body: &str, format: Format) -> Exposition {
    let mut out = Exposition::default();
    let mut meta: HashMap<String, usize> = HashMap::new();
    let mut saw_eof = false;
    for (i, raw) in body.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if saw_eof {
            out.errors.push(LineError { line: lineno, message: "content after # EOF".into() });
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if rest == "EOF" {
                saw_eof = true;
                continue;
            }
            let mut parts = rest.splitn(3, [' ', '\t']);
            let kind = parts.next().unwrap_or("");
            if !matches!(kind, "HELP" | "TYPE" | "UNIT") {
                continue; // a plain comment
            }
            let name = parts.next().unwrap_or("").to_string();
            let text = parts.next().unwrap_or("").trim().to_string();
            if name.is_empty() || !is_valid_metric_name(&name) {
                out.errors.push(LineError { line: lineno, message: format!("invalid metric name in # {kind} line") });
                continue;
            }
            let idx = *meta.entry(name.clone()).or_insert_with(|| {
                out.metadata.push(MetricMetadata {
                    r#type: MetricType::Unknown as i32,
                    metric_family_name: name.clone(),
                    help: String::new(),
                    unit: String::new(),
                });
                out.metadata.len() - 1
            });
            let m = &mut out.metadata[idx];
            match kind {
                "HELP" => m.help = unescape_help(&text),
                "TYPE" => {
                    let t = MetricType::from_exposition(&text);
                    if t == MetricType::Unknown && text != "untyped" && text != "unknown" {
                        out.errors.push(LineError { line: lineno, message: format!("unknown metric type {text:?}") });
                    }
                    m.r#type = t as i32;
                }
                _ => m.unit = text,
            }
            continue;
        }
        match parse_sample_line(line, format) {
            Ok(s) => out.samples.push(s),
            Err(message) => out.errors.push(LineError { line: lineno, message }),
        }
    }
    out
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses `name{labels} value [timestamp] [# exemplar]`.
pub fn parse_sample_line(line: &str, format: Format) -> Result<ParsedSample, String> {
    let bytes = line.as_bytes();
    let mut pos = 0;
    skip_ws(bytes, &mut pos);
    let name_start = pos;
    while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_' || bytes[pos] == b':') {
        pos += 1;
    }
    let mut name = line[name_start..pos].to_string();
    // The scan above also accepts a leading digit; an unquoted name must be a legal metric name
    // (found by the `exposition_parse` fuzz target: `3rpc_sum 1` used to parse).
    if !name.is_empty() && !is_valid_metric_name(&name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels: Vec<Label> = Vec::new();
    skip_ws(bytes, &mut pos);
    if pos < bytes.len() && bytes[pos] == b'{' {
        pos += 1;
        loop {
            skip_ws(bytes, &mut pos);
            if pos >= bytes.len() {
                return Err("unterminated label set".into());
            }
            if bytes[pos] == b'}' {
                pos += 1;
                break;
            }
            // A quoted label name, or (first position, no name yet) a quoted metric name.
            let lname = if bytes[pos] == b'"' {
                let s = parse_quoted(line, &mut pos)?;
                skip_ws(bytes, &mut pos);
                if name.is_empty() && pos < bytes.len() && (bytes[pos] == b',' || bytes[pos] == b'}') {
                    name = s;
                    if bytes[pos] == b',' {
                        pos += 1;
                    }
                    continue;
                }
                s
            } else {
                let s = pos;
                while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_') {
                    pos += 1;
                }
                let n = &line[s..pos];
                if !is_valid_label_name(n) {
                    return Err(format!("invalid label name at column {}", s + 1));
                }
                n.to_string()
            };
            skip_ws(bytes, &mut pos);
            if pos >= bytes.len() || bytes[pos] != b'=' {
                return Err(format!("expected '=' after label name {lname:?}"));
            }
            pos += 1;
            skip_ws(bytes, &mut pos);
            if pos >= bytes.len() || bytes[pos] != b'"' {
                return Err(format!("expected quoted value for label {lname:?}"));
            }
            let value = parse_quoted(line, &mut pos)?;
            if lname == METRIC_NAME {
                return Err("label __name__ is not allowed inside braces".into());
            }
            if labels.iter().any(|l| l.name == lname) {
                return Err(format!("duplicate label {lname:?}"));
            }
            labels.push(Label::new(lname, value));
            skip_ws(bytes, &mut pos);
            if pos < bytes.len() && bytes[pos] == b',' {
                pos += 1;
            } else if pos < bytes.len() && bytes[pos] == b'}' {
                pos += 1;
                break;
            } else {
                return Err("expected ',' or '}' in label set".into());
            }
        }
    }
    if name.is_empty() {
        return Err("missing metric name".into());
    }
    let rest = line[pos..].trim();
    // Strip an OpenMetrics exemplar.
    let rest = match rest.find(" # ") {
        Some(i) => &rest[..i],
        None => rest,
    };
    let mut fields = rest.split_ascii_whitespace();
    let vtext = fields.next().ok_or("missing value")?;
    let value = parse_float(vtext).ok_or_else(|| format!("invalid value {vtext:?}"))?;
    let timestamp = match fields.next() {
        None => None,
        Some(t) => Some(match format {
            Format::Prometheus => t.parse::<i64>().map_err(|_| format!("invalid timestamp {t:?}"))?,
            Format::OpenMetrics => {
                let secs =
                    parse_float(t).filter(|f| f.is_finite()).ok_or_else(|| format!("invalid timestamp {t:?}"))?;
                (secs * 1000.0).round() as i64
            }
        }),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected text after timestamp: {extra:?}"));
    }
    labels.push(Label::new(METRIC_NAME, name));
    labels.retain(|l| !l.value.is_empty());
    labels.sort();
    Ok(ParsedSample { labels: Labels::from_sorted_unchecked(labels), value, timestamp })
}

fn skip_ws(b: &[u8], pos: &mut usize) {
    while *pos < b.len() && (b[*pos] == b' ' || b[*pos] == b'\t') {
        *pos += 1;
    }
}

fn parse_quoted(line: &str, pos: &mut usize) -> Result<String, String> {
    let bytes = line.as_bytes();
    debug_assert_eq!(bytes[*pos], b'"');
    *pos += 1;
    let mut out = String::new();
    let mut seg_start = *pos;
    while *pos < bytes.len() {
        match bytes[*pos] {
            b'"' => {
                out.push_str(&line[seg_start..*pos]);
                *pos += 1;
                return Ok(out);
            }
            b'\\' => {
                out.push_str(&line[seg_start..*pos]);
                *pos += 1;
                match bytes.get(*pos) {
                    Some(b'n') => out.push('\n'),
                    Some(b'\\') => out.push('\\'),
                    Some(b'"') => out.push('"'),
                    Some(_) => {
                        // Unknown escape: keep it literally, like Prometheus' parser does.
                        out.push('\\');
                        seg_start = *pos;
                        continue;
                    }
                    None => return Err("unterminated escape in quoted string".into()),
                }
                *pos += 1;
                seg_start = *pos;
            }
            _ => *pos += 1,
        }
    }
    Err("unterminated quoted string".into())
}

/// Parses an exposition float: Go's syntax plus `NaN`, `+Inf`, `-Inf`, `Inf`.
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            let v: f64 = s.parse().ok()?;
            Some(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let body = "# HELP http_requests_total The total.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\nhttp_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\nmetric_without_timestamp_and_labels 12.47\nweird{a=\"x\\\"y\\\\z\\n\"} +Inf\nbad line here\n";
        let e = parse(body, Format::Prometheus);
        assert_eq!(e.samples.len(), 4, "{:?}", e.errors);
        assert_eq!(e.samples[0].timestamp, Some(1_395_066_363_000));
        assert_eq!(e.samples[0].labels.get("code"), Some("200"));
        assert_eq!(e.samples[2].timestamp, None);
        assert_eq!(e.samples[3].labels.get("a"), Some("x\"y\\z\n"));
        assert_eq!(e.samples[3].value, f64::INFINITY);
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].line, 8);
        assert_eq!(e.metadata[0].r#type, MetricType::Counter as i32);
        assert_eq!(e.metadata[0].help, "The total.");
    }

    #[test]
    fn openmetrics() {
        let body = "# TYPE foo counter\n# UNIT foo seconds\nfoo_total{a=\"b\"} 1.5 1700000000.123 # {trace_id=\"x\"} 1 1700000000\n# EOF\n";
        assert_eq!(Format::detect(None, body), Format::OpenMetrics);
        let e = parse(body, Format::OpenMetrics);
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        assert_eq!(e.samples[0].timestamp, Some(1_700_000_000_123));
        assert_eq!(e.metadata[0].unit, "seconds");
    }

    #[test]
    fn rejects_bad_lines() {
        for bad in
            ["a{b=\"c\" 1", "a{1b=\"c\"} 1", "a{b=c} 1", "a 1 2 3", "a xyz", "{} 1", "a{b=\"1\",b=\"2\"} 1", "a 1 1.5"]
        {
            assert!(parse_sample_line(bad, Format::Prometheus).is_err(), "{bad}");
        }
    }

    /// Regression (fuzz/corpus/exposition_parse/digit_first_name.txt): an unquoted metric name
    /// starting with a digit used to be accepted and then refused by the store as invalid.
    #[test]
    fn unquoted_names_must_be_legal() {
        let e = parse("ok 1\n3333rpc_sum 1.7e+06\n9 1\n", Format::Prometheus);
        assert_eq!(e.samples.len(), 1);
        assert_eq!(e.errors.len(), 2, "{:?}", e.errors);
        assert!(e.errors[0].message.contains("invalid metric name \"3333rpc_sum\""), "{:?}", e.errors);
        assert_eq!(e.errors[0].line, 2);
        assert!(parse_sample_line("_ok:sub 1", Format::Prometheus).is_ok());
    }

    #[test]
    fn quoted_utf8_metric_name() {
        let s = parse_sample_line("{\"my.metric\", a=\"b\"} 3", Format::Prometheus).unwrap();
        assert_eq!(s.labels.metric_name(), Some("my.metric"));
        assert_eq!(s.labels.get("a"), Some("b"));
    }
}
