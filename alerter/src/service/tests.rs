//! The assembled alerter against a fake query API: alerts fire, reach the sink, show in the API,
//! and survive a restart without being re-sent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::eval::sink::CollectingSink;
use crate::state::AlertState;

async fn fake_prometheus() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::post(|| async { r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"api"},"value":[1,"0"]}]}}"# }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), h)
}

fn config(dir: &std::path::Path, url: &str) -> AlerterConfig {
    let rules = dir.join("r.yml");
    std::fs::write(&rules, "groups:\n- name: g\n  interval: 200ms\n  rules:\n  - alert: JobDown\n    expr: up == 0\n    labels: {severity: page}\n").unwrap();
    AlerterConfig {
        query_url: url.to_string(),
        remote_write_url: String::new(),
        rule_files: vec![rules.display().to_string()],
        data_dir: dir.join("data"),
        ..Default::default()
    }
}

fn firing(a: &Alerter) -> usize {
    let groups = a.groups();
    let st = groups[0].status.lock();
    st.rules[0].alerts.alerts.values().filter(|a| a.state == AlertState::Firing).count()
}

#[tokio::test]
async fn fires_serves_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = fake_prometheus().await;
    let registry = crowsnest_wire::ops::new_registry();
    let sink = Arc::new(CollectingSink::default());
    let shutdown = CancellationToken::new();
    let a = Alerter::start_with_sinks(config(dir.path(), &url), &registry, shutdown.clone(), vec![sink.clone()])
        .await
        .unwrap();
    for _ in 0..50 {
        if !sink.0.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(firing(&a), 1);
    let sent = sink.0.lock().clone();
    assert_eq!(sent[0].labels["alertname"], "JobDown");
    let resp = a.router().oneshot(Request::get("/api/v1/rules").body(Body::empty()).unwrap()).await.unwrap();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"]["groups"][0]["rules"][0]["state"], "firing");
    let resp = a.router().oneshot(Request::get("/api/v2/alerts").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200, "notifier API is merged");
    let metrics = crowsnest_wire::ops::encode_metrics(&registry);
    assert!(metrics.contains("prometheus_rule_evaluations_total{rule_group="), "{metrics}");
    shutdown.cancel();
    a.stopped().await;
    drop(a);

    // Restart: the alert is firing before any evaluation and is not re-sent at once.
    let sink2 = Arc::new(CollectingSink::default());
    let shutdown = CancellationToken::new();
    let registry = crowsnest_wire::ops::new_registry();
    let b = Alerter::start_with_sinks(config(dir.path(), &url), &registry, shutdown.clone(), vec![sink2.clone()])
        .await
        .unwrap();
    assert_eq!(firing(&b), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(firing(&b), 1);
    assert!(sink2.0.lock().is_empty(), "no repeat within resend_delay after restart");
    shutdown.cancel();
    b.stopped().await;
    server.abort();
}

#[tokio::test]
async fn bad_rules_fail_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), "http://127.0.0.1:1");
    std::fs::write(dir.path().join("r.yml"), "groups:\n- name: g\n  rules:\n  - alert: X\n    expr: 'up =='\n")
        .unwrap();
    c.evaluation_interval = Duration::from_secs(1);
    let e = Alerter::start(c, &crowsnest_wire::ops::new_registry(), CancellationToken::new()).await.err().unwrap();
    assert!(e.to_string().contains("could not parse expression"), "{e}");
}

fn alerts_of(a: &Alerter, group: usize) -> Vec<(String, AlertState, i64)> {
    let groups = a.groups();
    let st = groups[group].status.lock();
    st.rules
        .iter()
        .flat_map(|r| r.alerts.alerts.values().map(|x| (x.labels["alertname"].clone(), x.state, x.active_at)))
        .collect()
}

#[tokio::test]
async fn reload_keeps_alert_state_and_refuses_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let (url, server) = fake_prometheus().await;
    let registry = crowsnest_wire::ops::new_registry();
    let shutdown = CancellationToken::new();
    let mut c = config(dir.path(), &url);
    let rules = dir.path().join("r.yml");
    let pending =
        "groups:\n- name: g\n  interval: 100ms\n  rules:\n  - alert: JobDown\n    expr: up == 0\n    for: 1h\n";
    std::fs::write(&rules, pending).unwrap();
    let am = dir.path().join("am.yml");
    std::fs::write(&am, "route:\n  receiver: a\nreceivers:\n- name: a\n").unwrap();
    c.alertmanager_config = Some(am.clone());
    let a = Alerter::start(c.clone(), &registry, shutdown.clone()).await.unwrap();
    for _ in 0..50 {
        if !alerts_of(&a, 0).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = alerts_of(&a, 0);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1, AlertState::Pending);

    // A second rule and another receiver: the pending alert keeps its activeAt.
    std::fs::write(&rules, format!("{pending}  - alert: Other\n    expr: vector(1) == 2\n")).unwrap();
    std::fs::write(&am, "route:\n  receiver: b\nreceivers:\n- name: b\n").unwrap();
    a.reload(c.clone()).await.unwrap();
    assert_eq!(a.groups()[0].group.rules.len(), 2);
    assert_eq!(alerts_of(&a, 0), before);
    assert_eq!(a.notifier().shared().cfg.receivers[0].name, "b");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (The fake query API answers every query, so `Other` has an alert now too.)
    let after: Vec<_> = alerts_of(&a, 0).into_iter().filter(|x| x.0 == "JobDown").collect();
    assert_eq!(after, before, "evaluation continues on the same alert");

    // Broken rule file: refused with its name, the running rules stay.
    std::fs::write(&rules, "groups:\n- name: g\n  rules:\n  - alert: X\n    expr: 'up =='\n").unwrap();
    let e = a.reload(c.clone()).await.unwrap_err().to_string();
    assert!(e.contains("r.yml") && e.contains("could not parse expression"), "{e}");
    assert_eq!(a.groups()[0].group.rules.len(), 2);
    // Broken Alertmanager config: refused too, rules untouched.
    std::fs::write(&rules, pending).unwrap();
    std::fs::write(&am, "route:\n  receiver: nobody\nreceivers:\n- name: b\n").unwrap();
    assert!(a.reload(c.clone()).await.is_err());
    assert_eq!(a.groups()[0].group.rules.len(), 2);
    assert_eq!(a.notifier().shared().cfg.receivers[0].name, "b");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), a.stopped()).await.unwrap();
    server.abort();
}
