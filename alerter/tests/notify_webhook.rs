//! `webhook_configs`: an in-test HTTP endpoint receives Alertmanager's webhook JSON (version 4),
//! a 503 is retried, and resolved notices arrive.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use crowsnest_alerter::alert::AlertSink;
use serde_json::Value;
use support::*;

type Seen = Arc<Mutex<(u32, Vec<Value>)>>;

async fn hook(State(seen): State<Seen>, Json(v): Json<Value>) -> StatusCode {
    let mut s = seen.lock().unwrap();
    s.0 += 1;
    if s.0 == 1 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    s.1.push(v);
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_v4_payload_with_retry_and_resolve() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new().route("/hook", post(hook)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let cfg = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 300ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{addr}/hook\n"
    );
    let n = Running::start(&cfg, temp_tree()).await;
    let a = alert(&[("alertname", "Hooked"), ("instance", "h1")]);
    n.notifier.send(vec![a.clone()]).await;
    assert!(wait_for(Duration::from_secs(5), || seen.lock().unwrap().1.len() == 1).await, "no webhook delivery");
    let first = seen.lock().unwrap().1[0].clone();
    assert_eq!(first["version"], "4");
    assert_eq!(first["status"], "firing");
    assert_eq!(first["receiver"], "hook");
    assert_eq!(first["groupLabels"]["alertname"], "Hooked");
    assert_eq!(first["alerts"][0]["labels"]["instance"], "h1");
    assert_eq!(seen.lock().unwrap().0, 2, "the 503 was retried once");
    n.notifier.send(vec![resolved(a)]).await;
    assert!(wait_for(Duration::from_secs(5), || seen.lock().unwrap().1.len() == 2).await, "no resolved delivery");
    assert_eq!(seen.lock().unwrap().1[1]["status"], "resolved");
    n.stop().await;
}
