//! Tests for notification templates: defaults render the facts people need, user defines work.

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
}

fn alert(name: &str, inst: &str, end: i64) -> Alert {
    Alert {
        labels: [("alertname", name), ("instance", inst), ("severity", "critical")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [
            ("summary".to_string(), format!("{inst} is <down>")),
            ("description".to_string(), "Long text".to_string()),
        ]
        .into(),
        starts_at: t(0),
        ends_at: t(end),
        updated_at: t(0),
        generator_url: "http://prom:9090/graph?g0.expr=up+%3D%3D+0".into(),
        timeout: false,
    }
}

fn sample(alerts: &[Alert]) -> Value {
    let group: LabelSet = [("alertname".to_string(), "HostDown".to_string())].into();
    data(&NotificationData {
        receiver: "team",
        group_key: "{}:{}",
        group_labels: &group,
        alerts,
        now: t(10),
        external_url: "http://crowsnest:9093",
    })
}

#[test]
fn default_subject_counts_firing_and_lists_labels() {
    let tm = Templates::default();
    let d = sample(&[alert("HostDown", "h1", 100), alert("HostDown", "h2", 100), alert("HostDown", "h3", 5)]);
    let subject = tm.render_named("__subject", &d).unwrap();
    assert_eq!(subject, "[FIRING:2] HostDown (critical)");
    let d = sample(&[alert("HostDown", "h3", 5)]);
    assert_eq!(tm.render_named("__subject", &d).unwrap(), "[RESOLVED] HostDown (h3 critical)");
}

#[test]
fn default_slack_text_has_the_facts() {
    let tm = Templates::default();
    let d = sample(&[alert("HostDown", "h1", 100), alert("HostDown", "h3", 5)]);
    let text = tm.render_named("slack.default.text", &d).unwrap();
    for want in [
        "*HostDown* (critical): h1 is <down>",
        "Long text",
        "*Started:* 2023-11-14T22:13:20Z",
        "*Resolved:* 2023-11-14T22:13:25Z",
        "`instance=h1`",
        "<http://prom:9090/graph?g0.expr=up+%3D%3D+0|",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(tm.render_named("slack.default.color", &d).unwrap(), "danger");
}

#[test]
fn default_email_bodies() {
    let tm = Templates::default();
    let d = with_subject(&sample(&[alert("HostDown", "h1", 100)]), "[FIRING:1] HostDown");
    let text = tm.render_named("email.default.text", &d).unwrap();
    assert!(
        text.contains("[FIRING] HostDown (critical): h1 is <down>")
            && text.contains("instance = h1")
            && text.contains("Query: http://prom"),
        "{text}"
    );
    let html = tm.render_named("email.default.html", &d).unwrap();
    assert!(html.contains("h1 is &lt;down&gt;") && !html.contains("<down>"), "html escapes: {html}");
    assert!(html.contains("<a href=\"http://prom:9090/graph?g0.expr=up+%3D%3D+0\">"), "{html}");
}

#[test]
fn user_defines_and_functions() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.tmpl");
    std::fs::write(&p, r#"{{ define "my.title" }}{{ .Receiver | toUpper }} {{ len .Alerts }}{{ end }}"#).unwrap();
    let tm = Templates::load(&[p]).unwrap();
    let d = sample(&[alert("HostDown", "h1", 100)]);
    assert_eq!(tm.render(r#"{{ template "my.title" . }}!"#, &d).unwrap(), "TEAM 1!");
    assert_eq!(
        tm.render(r#"{{ title "hello world" }}|{{ reReplaceAll "h(.)" "x$1" "h1" }}|{{ .CommonLabels.severity }}"#, &d)
            .unwrap(),
        "Hello World|x1|critical"
    );
    assert!(tm.render("{{ .Broken ", &d).unwrap_err().to_string().contains("unclosed action"));
    assert!(tm.render("{{ .Broken }", &d).is_err());
    let bad = dir.path().join("bad.tmpl");
    std::fs::write(&bad, "{{ define \"x\" }}").unwrap();
    assert!(Templates::load(&[bad]).is_err());
}
