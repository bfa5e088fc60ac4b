//! Template parity with Prometheus: each annotation template is expanded by our engine, the
//! results are written as the expectations of a promtool unit test, and real `promtool test
//! rules` (Go's text/template) must agree. Our own runner must pass the same file. SKIPs loudly
//! without promtool; FAILs under `CI=true`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crowsnest_alerter::template::{TemplateData, expand};
use crowsnest_alerter::unittest;

const TEMPLATES: &[&str] = &[
    "{{ $value }}",
    "{{ $value | humanize }}",
    "{{ $value | humanize1024 }}",
    "{{ $value | humanizeDuration }}",
    "{{ humanizePercentage 0.1234 }}",
    "{{ $value | humanizeTimestamp }}",
    "{{ printf \"%.2f\" $value }}",
    "{{ $labels.job | toUpper }} {{ toLower \"ABC\" }} {{ title \"foo bar-baz\" }}",
    "{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
    "{{ if gt $value 100.0 }}big{{ else }}small{{ end }}",
    "{{ $externalLabels.cluster }}",
    "[{{ $labels.missing }}]",
    "{{ match \"^h\" $labels.instance }}",
    "{{ $labels.instance | stripPort }}",
    "{{ \"foo.example.com:9100\" | stripDomain }}",
    "{{ parseDuration \"1m30s\" }}",
    "{{- $value -}} / {{$value}}",
    "{{ with $labels.job }}job={{ . }}{{ end }}",
];

fn missing_promtool() -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return false;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("promtool is required in CI (Debian package prometheus)");
    }
    eprintln!("SKIP: promtool not found (install the Debian package prometheus)");
    true
}

#[test]
fn templates_expand_like_go() {
    let labels = BTreeMap::from([
        ("__name__".to_string(), "x".to_string()),
        ("instance".to_string(), "host1:9100".to_string()),
        ("job".to_string(), "node".to_string()),
    ]);
    let ext = BTreeMap::from([("cluster".to_string(), "prod".to_string())]);
    let mut rules = String::from("groups:\n- name: t\n  rules:\n  - alert: T\n    expr: x\n    annotations:\n");
    for (i, t) in TEMPLATES.iter().enumerate() {
        rules.push_str(&format!("      a{i}: {}\n", serde_json::to_string(t).unwrap()));
    }
    let mut test = String::from("rule_files: [rules.yml]\ntests:\n");
    for value in [1234567.0, -2.5, 0.000123, 42.0] {
        let data = TemplateData { labels: &labels, value, external_labels: &ext, external_url: "http://x" };
        let mut exp = String::new();
        for (i, t) in TEMPLATES.iter().enumerate() {
            let ours = expand(t, data).unwrap_or_else(|e| panic!("{t}: {e}"));
            exp.push_str(&format!("          a{i}: {}\n", serde_json::to_string(&ours).unwrap()));
        }
        test.push_str(&format!(
            "- interval: 1m\n  external_labels: {{cluster: prod}}\n  input_series:\n  - series: 'x{{job=\"node\", instance=\"host1:9100\"}}'\n    values: '{value}'\n  alert_rule_test:\n  - eval_time: 0m\n    alertname: T\n    exp_alerts:\n    - exp_labels: {{job: node, instance: \"host1:9100\"}}\n      exp_annotations:\n{exp}"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
    let t = dir.path().join("t.yml");
    std::fs::write(&t, &test).unwrap();
    let report = unittest::run_files(std::slice::from_ref(&t));
    assert!(report.passed(), "{report}");
    if missing_promtool() {
        return;
    }
    let out = Command::new("promtool").args(["test", "rules"]).arg(&t).output().unwrap();
    assert!(
        out.status.success(),
        "promtool disagrees with our templates:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
