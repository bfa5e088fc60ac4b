//! The runner against small rule and test files: passing and failing alert tests, recording
//! rules feeding later queries, `for` timing and templated annotations.

use super::*;

const RULES: &str = r#"groups:
- name: t
  rules:
  - record: job:up:copy
    expr: up
    labels: {copied: "yes"}
  - alert: InstanceDown
    expr: up == 0
    for: 2m
    labels: {severity: page}
    annotations:
      summary: "{{ $labels.instance }} of {{ $labels.job }} is down ({{ $value }})"
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const TESTS: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'up{job="api", instance="a"}'
    values: '1 1 0 0 0 0 0'
  - series: 'up{job="api", instance="b"}'
    values: '1x6'
  alert_rule_test:
  - eval_time: 3m
    alertname: InstanceDown
  - eval_time: 4m30s
    alertname: InstanceDown
    exp_alerts:
    - exp_labels: {instance: a, job: api, severity: page}
      exp_annotations: {summary: "a of api is down (0)"}
  promql_expr_test:
  - expr: job:up:copy
    eval_time: 5m
    exp_samples:
    - labels: 'job:up:copy{job="api", instance="a", copied="yes"}'
      value: 0
    - labels: 'job:up:copy{job="api", instance="b", copied="yes"}'
      value: 1
  - expr: ALERTS
    eval_time: 5m
    exp_samples:
    - labels: 'ALERTS{alertname="InstanceDown", alertstate="firing", job="api", instance="a", severity="page"}'
      value: 1
"#;

#[test]
fn passing_file_reports_success() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules.yml", RULES);
    let t = write(dir.path(), "t.yml", TESTS);
    let r = run_files(&[t]);
    assert!(r.passed(), "{r}");
    assert!(r.to_string().contains("SUCCESS"));
}

#[test]
fn failing_expectations_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules.yml", RULES);
    let wrong = TESTS
        .replace(
            "eval_time: 3m\n",
            "eval_time: 3m\n    exp_alerts: [{exp_labels: {instance: a, job: api, severity: page}}]\n",
        )
        .replace("value: 0\n", "value: 7\n");
    let t = write(dir.path(), "t.yml", &wrong);
    let r = run_files(&[t]);
    assert!(!r.passed());
    let text = r.to_string();
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("alertname: InstanceDown, time: 3m"), "{text}");
    assert!(text.contains("expr: \"job:up:copy\""), "{text}");
}

#[test]
fn broken_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.yml", "rule_files: [missing.yml]\ntests: []\n");
    assert!(!run_files(&[t]).passed());
    write(dir.path(), "rules.yml", RULES);
    let t = write(
        dir.path(),
        "t2.yml",
        "rule_files: [rules.yml]\ntests:\n- input_series:\n  - series: 'up'\n    values: 'x y'\n",
    );
    let r = run_files(&[t]);
    assert!(r.to_string().contains("invalid value"), "{r}");
    assert!(!run_files(&[dir.path().join("nope.yml")]).passed());
}
