//! The Alertmanager API v2 driven by the real `amtool` (Debian `prometheus-alertmanager`):
//! silences are added, queried and expired with amtool, alerts are posted the way Prometheus
//! posts them, and a silence made by amtool really suppresses the Slack notification.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

async fn amtool(url: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new("amtool")
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .await
        .expect("amtool runs");
    assert!(
        out.status.success(),
        "amtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_silence_suppresses_and_expires() {
    if missing("amtool", "amtool API v2 test") {
        return;
    }
    let slack = SlackMock::start().await;
    let cfg = format!(
        "route:\n  receiver: slack\n  group_by: [alertname]\n  group_wait: 300ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: slack\n    slack_configs:\n      - api_url: {}\n",
        slack.url
    );
    let n = Running::start(&cfg, temp_tree()).await;

    let id = amtool(
        &n.url,
        &["silence", "add", "alertname=Noisy", "--comment=maintenance window", "--author=ops", "--duration=1h"],
    )
    .await
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "amtool printed a silence id: {id:?}");
    assert_eq!(amtool(&n.url, &["silence", "query", "-q"]).await.trim(), id);
    let listed: Value =
        serde_json::from_str(&amtool(&n.url, &["silence", "query", "-o", "json", "alertname=Noisy"]).await).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["createdBy"], "ops");

    // Post alerts as Prometheus does.
    let body = serde_json::json!([
        {"labels": {"alertname": "Noisy", "instance": "h1"}, "annotations": {"summary": "noisy"}, "generatorURL": "http://prom/graph"},
        {"labels": {"alertname": "Quiet", "instance": "h1"}, "annotations": {"summary": "quiet"}},
    ]);
    let resp = reqwest::Client::new().post(format!("{}/api/v2/alerts", n.url)).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let active = amtool(&n.url, &["alert", "query"]).await;
    assert!(active.contains("Quiet") && !active.contains("Noisy"), "default query hides silenced alerts:\n{active}");
    let all = amtool(&n.url, &["alert", "query", "--active", "--silenced"]).await;
    let only_silenced = amtool(&n.url, &["alert", "query", "--silenced"]).await;
    assert!(only_silenced.contains("Noisy") && !only_silenced.contains("Quiet"), "{only_silenced}");
    assert!(all.contains("Quiet") && all.contains("Noisy"), "{all}");
    let json: Value =
        serde_json::from_str(&amtool(&n.url, &["alert", "query", "--silenced", "-o", "json", "alertname=Noisy"]).await)
            .unwrap();
    assert_eq!(json[0]["status"]["state"], "suppressed");
    assert_eq!(json[0]["status"]["silencedBy"][0], id.as_str());

    assert!(wait_for(Duration::from_secs(3), || !slack.messages().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts: Vec<String> = slack.messages().iter().map(|(_, m)| SlackMock::text_of(m)).collect();
    assert!(texts.iter().all(|t| !t.contains("Noisy")), "silenced alert was notified: {texts:?}");
    assert!(texts.iter().any(|t| t.contains("Quiet")));

    amtool(&n.url, &["silence", "expire", &id]).await;
    assert!(
        amtool(&n.url, &["silence", "query", "-q"]).await.trim().is_empty(),
        "expired silences are not listed by default"
    );
    let expired: Value =
        serde_json::from_str(&amtool(&n.url, &["silence", "query", "--expired", "-o", "json"]).await).unwrap();
    assert_eq!(expired[0]["status"]["state"], "expired");
    assert!(
        wait_for(Duration::from_secs(4), || slack
            .messages()
            .iter()
            .any(|(_, m)| SlackMock::text_of(m).contains("Noisy")))
        .await,
        "alert not notified after its silence expired"
    );
    n.stop().await;
}
