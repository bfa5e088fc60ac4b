//! Tests for Alertmanager config parsing and validation.

use super::*;

const FULL: &str = r#"
global:
  resolve_timeout: 2m
  smtp_from: alerts@example.org
  smtp_smarthost: mail.example.org:587
  smtp_auth_username: bot
  smtp_auth_password: hunter2
  slack_api_url: https://hooks.slack.com/services/T/B/X
route:
  receiver: team
  group_by: [alertname, instance]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"', 'team=~"db|infra"']
      receiver: pager
      continue: true
    - match: {service: web}
      match_re: {env: "prod|staging"}
      receiver: team
      group_by: ['...']
inhibit_rules:
  - source_matchers: [alertname="HostDown"]
    target_matchers: [alertname=~"Container.*"]
    equal: [instance]
receivers:
  - name: team
    slack_configs:
      - channel: '#ops'
        title: '{{ .CommonLabels.alertname }}'
  - name: pager
    email_configs:
      - to: oncall@example.org
        headers: {Subject: 'Page!'}
templates: ['tmpl/*.tmpl']
"#;

#[test]
fn parses_full_config() {
    let cfg = parse(FULL).unwrap();
    assert_eq!(cfg.global.resolve_timeout, Duration::from_secs(120));
    assert_eq!(cfg.route.routes.len(), 2);
    assert!(cfg.route.routes[0].continue_matching);
    assert_eq!(cfg.route.routes[1].match_eq.get("service").map(String::as_str), Some("web"));
    assert!(cfg.receivers[0].slack_configs[0].send_resolved, "send_resolved defaults to true");
    assert!(cfg.receivers[1].email_configs[0].send_resolved);
    assert_eq!(cfg.templates, vec!["tmpl/*.tmpl"]);
}

#[test]
fn secrets_are_redacted() {
    let cfg = parse(FULL).unwrap();
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("hooks.slack.com"), "{dbg}");
    let yaml = cfg.redacted_yaml();
    assert!(!yaml.contains("hunter2") && yaml.contains("<secret>"), "{yaml}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = parse("route: {receiver: a}\nreceivers: [{name: a}]\nbogus: 1\n").unwrap_err().to_string();
    assert!(err.contains("bogus"), "{err}");
    let err = parse("route: {receiver: a, group_wiat: 1s}\nreceivers: [{name: a}]\n").unwrap_err().to_string();
    assert!(err.contains("group_wiat"), "{err}");
}

#[test]
fn validation_errors() {
    let cases = [
        ("route: {receiver: nope}\nreceivers: [{name: a}]\n", "undefined receiver"),
        ("route: {}\nreceivers: [{name: a}]\n", "root route must name"),
        ("route: {receiver: a, matchers: ['x=y']}\nreceivers: [{name: a}]\n", "must not have matchers"),
        ("route: {receiver: a, routes: [{matchers: ['x~y']}]}\nreceivers: [{name: a}]\n", "no operator"),
        ("route: {receiver: a}\nreceivers: [{name: a}, {name: a}]\n", "defined twice"),
        ("route: {receiver: a}\nreceivers: [{name: a, slack_configs: [{channel: x}]}]\n", "no api_url"),
        ("route: {receiver: a}\nreceivers: [{name: a, email_configs: [{to: x@y}]}]\n", "no from"),
        ("route: {receiver: a, group_by: ['...', x]}\nreceivers: [{name: a}]\n", "only entry"),
        ("route: {receiver: a, group_interval: 0s}\nreceivers: [{name: a}]\n", "cannot be zero"),
        (
            "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{max_alerts: 1}]}]\n",
            "url and url_file is required",
        ),
        ("route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'not a url'}]}]\n", "not a valid URL"),
    ];
    for (text, want) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn default_config_is_valid() {
    let cfg = AlertmanagerConfig::default();
    cfg.validate().unwrap();
    assert_eq!(cfg.route.receiver.as_deref(), Some(DEFAULT_RECEIVER));
}

#[test]
fn load_resolves_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("am.yml");
    std::fs::write(&p, "route: {receiver: a}\nreceivers: [{name: a}]\n").unwrap();
    let cfg = load(&p).unwrap();
    assert_eq!(cfg.resolve_path("x.tmpl"), dir.path().join("x.tmpl"));
    assert!(matches!(load(&dir.path().join("missing.yml")), Err(ConfigError::Read { .. })));
}

#[test]
fn shipped_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alertmanager.yml");
    let cfg = load(&path).unwrap();
    assert_eq!(cfg.route.routes.len(), 2);
    assert_eq!(cfg.inhibit_rules.len(), 2);
    assert!(cfg.receivers.iter().all(|r| r.slack_configs.iter().all(|s| s.send_resolved)));
    crate::notify::route::Route::compile(&cfg.route).unwrap();
    crate::notify::inhibit::Inhibitor::compile(&cfg.inhibit_rules).unwrap();
}
