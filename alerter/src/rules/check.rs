//! Rule-file validation with `promtool check rules` messages (`model/rulefmt/rulefmt.go`
//! `Validate`, `cmd/promtool/main.go`): YAML and unknown-key errors with their line, then per group
//! and rule the field checks, PromQL parse errors (via `promql-parser`) and template parse errors.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crowsnest_wire::labels::{is_valid_label_name, is_valid_metric_name};

use super::Problem;
use super::lines::{self, Lines};
use super::model::{RuleFile, RuleNode};
use crate::template;

/// Checks every file and returns all problems (empty = all good), like `promtool check rules`.
pub fn check_files(files: &[PathBuf]) -> Vec<Problem> {
    let mut out = Vec::new();
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => out.extend(check_text(f, &text).1),
            Err(e) => out.push(Problem { file: f.clone(), line: 0, message: format!("cannot read file: {e}") }),
        }
    }
    out
}

/// Parses and validates one file's text. Returns the parsed file (when the YAML decoded) and
/// its problems.
pub fn check_text(file: &Path, text: &str) -> (Option<RuleFile>, Vec<Problem>) {
    let parsed: RuleFile = if text.trim().is_empty() {
        RuleFile::default()
    } else {
        match serde_norway::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let line = e.location().map(|l| l.line()).unwrap_or(0);
                return (None, vec![Problem { file: file.to_path_buf(), line, message: e.to_string() }]);
            }
        }
    };
    let lines = lines::locate(text);
    let problems = validate(file, &parsed, &lines);
    (Some(parsed), problems)
}

fn validate(file: &Path, f: &RuleFile, lines: &Lines) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (gi, g) in f.groups.iter().enumerate() {
        let mut push = |line: usize, message: String| out.push(Problem { file: file.to_path_buf(), line, message });
        if g.name.is_empty() {
            push(lines.group(gi), "Groupname must not be empty".into());
        } else if !seen.insert(g.name.as_str()) {
            push(lines.group(gi), format!("{}: groupname: \"{}\" is repeated in the same file", g.name, g.name));
        }
        if g.interval.is_some_and(|d| d.is_zero()) {
            push(lines.group(gi), format!("group {:?}: interval must be greater than 0", g.name));
        }
        for (k, v) in &g.labels {
            if let Some(m) = label_problem(k, v) {
                push(lines.group(gi), format!("group {:?}: {m}", g.name));
            }
        }
        for (ri, r) in g.rules.iter().enumerate() {
            for m in rule_problems(r) {
                let name = r.alert.as_deref().or(r.record.as_deref()).unwrap_or("");
                push(lines.rule(gi, ri), format!("group {:?}, rule {}, {:?}: {m}", g.name, ri + 1, name));
            }
        }
    }
    out
}

fn label_problem(k: &str, v: &str) -> Option<String> {
    if !is_valid_label_name(k) || k == crowsnest_wire::METRIC_NAME {
        return Some(format!("invalid label name: {k}"));
    }
    let _ = v; // any UTF-8 string is a valid label value
    None
}

/// The checks of rulefmt's `RuleNode.Validate` plus PromQL and template parsing.
pub fn rule_problems(r: &RuleNode) -> Vec<String> {
    let mut out = Vec::new();
    match (&r.record, &r.alert) {
        (Some(_), Some(_)) => out.push("only one of 'record' and 'alert' must be set".to_string()),
        (None, None) => out.push("one of 'record' or 'alert' must be set".to_string()),
        _ => {}
    }
    match r.expr.as_deref() {
        None | Some("") => out.push("field 'expr' must be set in rule".to_string()),
        Some(expr) => {
            if let Err(e) = promql_parser::parser::parse(expr) {
                out.push(format!("could not parse expression: {}", e.trim()));
            }
        }
    }
    if let Some(rec) = &r.record {
        if !r.annotations.is_empty() {
            out.push("invalid field 'annotations' in recording rule".to_string());
        }
        if r.for_.is_some_and(|d| !d.is_zero()) {
            out.push("invalid field 'for' in recording rule".to_string());
        }
        if r.keep_firing_for.is_some_and(|d| !d.is_zero()) {
            out.push("invalid field 'keep_firing_for' in recording rule".to_string());
        }
        if !is_valid_metric_name(rec) {
            out.push(format!("invalid recording rule name: {rec}"));
        }
    }
    if r.alert.as_deref() == Some("") {
        out.push("invalid alert name: (empty)".to_string());
    }
    for (k, v) in &r.labels {
        if let Some(m) = label_problem(k, v) {
            out.push(m);
        }
    }
    for k in r.annotations.keys() {
        if !is_valid_label_name(k) {
            out.push(format!("invalid annotation name: {k}"));
        }
    }
    if r.alert.is_some() {
        for (k, v) in r.labels.iter().chain(r.annotations.iter()) {
            if let Err(e) = template::check(v) {
                out.push(format!("template {k:?}: {e}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(text: &str) -> Vec<String> {
        check_text(Path::new("f.yml"), text).1.into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn good_file_has_no_problems() {
        let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]) > 1\n    for: 1m\n    annotations:\n      summary: '{{ $labels.job }} {{ $value | humanize }}'\n  - record: job:x:rate5m\n    expr: sum by (job) (rate(x[5m]))\n";
        assert!(msgs(text).is_empty(), "{:?}", msgs(text));
    }

    #[test]
    fn reports_problems_with_lines() {
        let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m] > 1\n  - record: 'bad name'\n    expr: up\n    for: 1m\n    annotations: {a: b}\n  - alert: B\n    record: b\n    expr: up\n    labels: {__name__: x}\n  - alert: C\n    expr: up\n    annotations: {s: '{{ $labels.x '}\n- name: g\n  rules: []\n";
        let m = msgs(text);
        assert!(m[0].starts_with("f.yml:4: group \"g\", rule 1, \"A\": could not parse expression"), "{m:?}");
        assert!(
            m.iter().any(|s| s.starts_with("f.yml:6:") && s.contains("invalid recording rule name: bad name")),
            "{m:?}"
        );
        assert!(m.iter().any(|s| s.starts_with("f.yml:6:") && s.contains("invalid field 'for'")), "{m:?}");
        assert!(m.iter().any(|s| s.starts_with("f.yml:6:") && s.contains("invalid field 'annotations'")), "{m:?}");
        assert!(
            m.iter().any(|s| s.starts_with("f.yml:10:") && s.contains("only one of 'record' and 'alert'")),
            "{m:?}"
        );
        assert!(m.iter().any(|s| s.starts_with("f.yml:10:") && s.contains("invalid label name: __name__")), "{m:?}");
        assert!(m.iter().any(|s| s.starts_with("f.yml:14:") && s.contains("template \"s\"")), "{m:?}");
        assert!(m.iter().any(|s| s.starts_with("f.yml:17:") && s.contains("repeated in the same file")), "{m:?}");
    }

    #[test]
    fn yaml_errors_carry_their_line() {
        let p = check_text(Path::new("f.yml"), "groups:\n- name: g\n  rules:\n  - alert: A\n    exprr: up\n").1;
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, 5);
        assert!(p[0].message.contains("exprr"));
    }

    proptest::proptest! {
        /// Arbitrary text (YAML-ish line soups included) never panics the checker, and every
        /// reported line lies inside the text.
        #[test]
        fn never_panics(lines in proptest::collection::vec(proptest::sample::select(vec![
            "groups:", "- name: g", "  - name: g", "    rules:", "  rules:", "      - alert: A", "    - record: r",
            "        expr: up", "      expr: 'sum('", "        for: 1m", "        labels: {a: b}", "  - alert: B", "#c", "", "   - ", "x: [",
        ]), 0..20)) {
            let text = lines.join("\n");
            let (_, problems) = check_text(Path::new("p.yml"), &text);
            let n = text.lines().count();
            for p in problems {
                proptest::prop_assert!(p.line <= n.max(1) + 1, "{p} beyond {n} lines");
            }
        }
    }

    #[test]
    fn missing_file_is_a_problem() {
        let p = check_files(&[PathBuf::from("/nonexistent/rules.yml")]);
        assert_eq!(p.len(), 1);
        assert!(p[0].message.contains("cannot read"));
    }
}
