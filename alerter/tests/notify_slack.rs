//! End-to-end notifier tests against a Slack-shaped webhook receiver: grouping, timing of
//! group_wait / group_interval / repeat_interval, resolved notices, inhibition, restart while
//! firing, 429 with Retry-After, 5xx retries, 4xx errors counted, and first-notification latency.

mod support;

use std::time::{Duration, Instant};

use crowsnest_alerter::alert::AlertSink;
use support::*;

fn config(slack: &str, route: &str, extra: &str) -> String {
    format!(
        "route:\n  receiver: slack\n{route}\nreceivers:\n  - name: slack\n    slack_configs:\n      - api_url: {slack}\n        channel: '#alerts'\n{extra}"
    )
}

const FAST: &str = "  group_by: [alertname]\n  group_wait: 500ms\n  group_interval: 1s\n  repeat_interval: 1h";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_alerts_into_one_message_within_group_wait_plus_1s() {
    let slack = SlackMock::start().await;
    let n = Running::start(&config(&slack.url, FAST, ""), temp_tree()).await;
    let t0 = Instant::now();
    n.notifier
        .send(vec![
            alert(&[("alertname", "HostDown"), ("instance", "h1")]),
            alert(&[("alertname", "HostDown"), ("instance", "h2")]),
            alert(&[("alertname", "HostDown"), ("instance", "h3")]),
        ])
        .await;
    assert!(wait_for(Duration::from_secs(5), || !slack.messages().is_empty()).await, "no Slack message");
    let (at, msg) = slack.messages()[0].clone();
    let latency = at - t0;
    assert!(
        latency >= Duration::from_millis(450) && latency <= Duration::from_millis(1500),
        "latency {latency:?} not within group_wait + 1s"
    );
    let text = SlackMock::text_of(&msg);
    for want in ["[FIRING:3] HostDown", "instance=h1", "instance=h2", "instance=h3", "danger", "summary of HostDown/h1"]
    {
        assert!(text.contains(want), "{want:?} missing from {text}");
    }
    assert_eq!(msg["channel"], "#alerts");
    assert_eq!(msg["attachments"][0]["title_link"], "http://prometheus:9090/graph?g0.expr=up");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slack.messages().len(), 1, "unchanged group is not re-sent before repeat_interval");
    let m = n.metrics();
    assert!(m.contains(r#"crowsnest_alerter_notifications_total{receiver="slack",integration="slack"} 1"#), "{m}");
    assert!(m.contains("crowsnest_alerter_notification_latency_seconds"), "{m}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_interval_and_repeat_interval_timing() {
    let slack = SlackMock::start().await;
    let route = "  group_by: [alertname]\n  group_wait: 300ms\n  group_interval: 1s\n  repeat_interval: 2s";
    let n = Running::start(&config(&slack.url, route, ""), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "A"), ("instance", "1")])]).await;
    assert!(wait_for(Duration::from_secs(3), || slack.messages().len() == 1).await);
    let first = slack.messages()[0].0;
    // A change shortly after the first flush waits for the next group_interval tick.
    tokio::time::sleep(Duration::from_millis(200)).await;
    n.notifier.send(vec![alert(&[("alertname", "A"), ("instance", "2")])]).await;
    assert!(wait_for(Duration::from_secs(3), || slack.messages().len() == 2).await);
    let second = slack.messages()[1].0;
    assert!(second - first >= Duration::from_millis(900), "group_interval not respected: {:?}", second - first);
    assert!(SlackMock::text_of(&slack.messages()[1].1).contains("[FIRING:2] A"));
    // Nothing changes: the next message is the repeat, two group intervals later.
    assert!(wait_for(Duration::from_secs(5), || slack.messages().len() == 3).await, "no repeat");
    let third = slack.messages()[2].0;
    assert!(third - second >= Duration::from_millis(1900), "repeat_interval not respected: {:?}", third - second);
    assert!(third - second <= Duration::from_millis(3500), "repeat too late: {:?}", third - second);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_notice_is_sent_by_default() {
    let slack = SlackMock::start().await;
    let n = Running::start(&config(&slack.url, FAST, ""), temp_tree()).await;
    let a = alert(&[("alertname", "DiskFull"), ("instance", "h1")]);
    n.notifier.send(vec![a.clone()]).await;
    assert!(wait_for(Duration::from_secs(3), || slack.messages().len() == 1).await);
    n.notifier.send(vec![resolved(a)]).await;
    assert!(wait_for(Duration::from_secs(3), || slack.messages().len() == 2).await, "no resolved notice");
    let text = SlackMock::text_of(&slack.messages()[1].1);
    assert!(text.contains("[RESOLVED] DiskFull") && text.contains("good") && text.contains("*Resolved:*"), "{text}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(slack.messages().len(), 2, "resolved notice sent once");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_resolved_within_group_wait_is_not_notified() {
    let slack = SlackMock::start().await;
    let n = Running::start(&config(&slack.url, FAST, ""), temp_tree()).await;
    let a = alert(&[("alertname", "Flap")]);
    n.notifier.send(vec![a.clone()]).await;
    n.notifier.send(vec![resolved(a)]).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(slack.messages().is_empty(), "flap inside group_wait must stay silent");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibition_mutes_targets_with_equal_labels() {
    let slack = SlackMock::start().await;
    let route = "  group_by: [alertname, instance]\n  group_wait: 300ms\n  group_interval: 1s\n  repeat_interval: 1h";
    let inhibit = "inhibit_rules:\n  - source_matchers: [alertname=\"HostDown\"]\n    target_matchers: ['alertname=~\"Container.*\"']\n    equal: [instance]\n";
    let n = Running::start(&config(&slack.url, route, inhibit), temp_tree()).await;
    n.notifier
        .send(vec![
            alert(&[("alertname", "HostDown"), ("instance", "h1")]),
            alert(&[("alertname", "ContainerDown"), ("instance", "h1")]),
            alert(&[("alertname", "ContainerDown"), ("instance", "h2")]),
        ])
        .await;
    assert!(wait_for(Duration::from_secs(3), || slack.messages().len() >= 2).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts: Vec<String> = slack.messages().iter().map(|(_, m)| SlackMock::text_of(m)).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("HostDown") && t.contains("instance=h1")));
    assert!(texts.iter().any(|t| t.contains("ContainerDown") && t.contains("instance=h2")));
    assert!(
        !texts.iter().any(|t| t.contains("ContainerDown") && t.contains("instance=h1")),
        "inhibited alert was sent: {texts:?}"
    );
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_firing_neither_duplicates_nor_loses() {
    let slack = SlackMock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let route = "  group_by: [alertname]\n  group_wait: 300ms\n  group_interval: 2s\n  repeat_interval: 1h";
    let cfg = config(&slack.url, route, "");
    let open = || sled::Config::new().path(dir.path().join("db")).open().unwrap();

    let db = open();
    let n = Running::start(&cfg, db.open_tree("notify").unwrap()).await;
    n.notifier.send(vec![alert(&[("alertname", "A"), ("instance", "1")])]).await;
    assert!(wait_for(Duration::from_secs(3), || slack.messages().len() == 1).await);
    // B arrives and the process stops before the next group_interval flush: B is pending.
    n.notifier.send(vec![alert(&[("alertname", "A"), ("instance", "2")])]).await;
    n.stop().await;
    db.flush().unwrap();
    drop(db);
    assert_eq!(slack.messages().len(), 1);

    let db = open();
    let n = Running::start(&cfg, db.open_tree("notify").unwrap()).await;
    assert!(wait_for(Duration::from_secs(4), || slack.messages().len() == 2).await, "pending alert lost over restart");
    let text = SlackMock::text_of(&slack.messages()[1].1);
    assert!(text.contains("[FIRING:2]") && text.contains("instance=2"), "{text}");
    n.stop().await;
    db.flush().unwrap();
    drop(db);

    // A restart with nothing new sends nothing.
    let db = open();
    let n = Running::start(&cfg, db.open_tree("notify").unwrap()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(slack.messages().len(), 2, "restart re-sent an unchanged group");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_is_retried_after_retry_after() {
    let slack = SlackMock::start().await;
    slack.script(&[Reply { status: 429, body: r#"{"ok":false,"error":"rate_limited"}"#, retry_after: Some(1) }]);
    let n = Running::start(&config(&slack.url, FAST, ""), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "Busy")])]).await;
    assert!(wait_for(Duration::from_secs(6), || slack.messages().len() == 1).await, "not delivered after 429");
    let attempts = slack.attempts();
    assert_eq!(attempts.iter().map(|a| a.1).collect::<Vec<_>>(), vec![429, 200]);
    assert!(
        attempts[1].0 - attempts[0].0 >= Duration::from_millis(950),
        "Retry-After not honoured: {:?}",
        attempts[1].0 - attempts[0].0
    );
    let m = n.metrics();
    assert!(
        m.contains(r#"crowsnest_alerter_notification_requests_total{receiver="slack",integration="slack"} 2"#),
        "{m}"
    );
    assert!(!m.contains("crowsnest_alerter_notifications_failed_total{"), "a retried 429 is not a failure: {m}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_5xx_retried_4xx_counted_with_reason() {
    let slack = SlackMock::start().await;
    slack.script(&[
        Reply { status: 500, body: "rollup_error", retry_after: None },
        Reply { status: 503, body: "", retry_after: None },
    ]);
    let n = Running::start(&config(&slack.url, FAST, ""), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "Flaky")])]).await;
    assert!(wait_for(Duration::from_secs(8), || slack.messages().len() == 1).await, "not delivered after 5xx");
    assert_eq!(slack.attempts().iter().map(|a| a.1).collect::<Vec<_>>(), vec![500, 503, 200]);

    slack.script(&[Reply { status: 404, body: "channel_not_found", retry_after: None }]);
    n.notifier.send(vec![alert(&[("alertname", "Lost")])]).await;
    let failed =
        r#"crowsnest_alerter_notifications_failed_total{receiver="slack",integration="slack",reason="client_error"} 1"#;
    assert!(wait_for(Duration::from_secs(4), || n.metrics().contains(failed)).await, "{}", n.metrics());
    assert_eq!(slack.attempts().iter().filter(|a| a.1 == 404).count(), 1, "4xx is not retried within the flush");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_template_payload_is_rejected_by_slack_and_counted() {
    let slack = SlackMock::start().await;
    // Empty text and fallback: Slack answers 400 invalid_attachments.
    let extra = "        text: '{{ if false }}x{{ end }}'\n        fallback: ''\n";
    let n = Running::start(&config(&slack.url, FAST, extra), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "Empty")])]).await;
    let failed = r#"reason="client_error"} 1"#;
    assert!(wait_for(Duration::from_secs(4), || n.metrics().contains(failed)).await, "{}", n.metrics());
    assert!(slack.messages().is_empty());
    n.stop().await;
}
