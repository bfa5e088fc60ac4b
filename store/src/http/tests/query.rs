//! `/api/v1/query`, `/query_range`, `/query_exemplars`, `/format_query`: parameter handling with
//! Prometheus' exact messages, limits, the concurrency queue and timeouts.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::{app, app_with, enc};

#[tokio::test]
async fn parameter_errors_match_prometheus() {
    let app = app();
    let msg = app.get("/api/v1/query").await.error(400, "bad_data");
    assert!(msg.starts_with("invalid parameter \"query\": "), "{msg}");
    let msg = app.get("/api/v1/query?query=up&time=abc").await.error(400, "bad_data");
    assert_eq!(
        msg,
        "invalid parameter \"time\": invalid time value for 'time': cannot parse \"abc\" to a valid timestamp"
    );
    let msg = app.get("/api/v1/query?query=up&timeout=soon").await.error(400, "bad_data");
    assert_eq!(msg, "invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration");
    let msg = app.get("/api/v1/query?query=sum(").await.error(400, "bad_data");
    assert!(msg.starts_with("invalid parameter \"query\": ") && msg.contains("parse error"), "{msg}");

    let msg = app.get("/api/v1/query_range?query=up&end=10&step=1").await.error(400, "bad_data");
    assert_eq!(msg, "invalid parameter \"start\": cannot parse \"\" to a valid timestamp");
    let msg = app.get("/api/v1/query_range?query=up&start=10&end=5&step=1").await.error(400, "bad_data");
    assert_eq!(msg, "invalid parameter \"end\": end timestamp must not be before start time");
    let msg = app.get("/api/v1/query_range?query=up&start=0&end=5&step=0").await.error(400, "bad_data");
    assert_eq!(
        msg,
        "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"
    );
    let msg = app.get("/api/v1/query_range?query=up&start=0&end=5").await.error(400, "bad_data");
    assert_eq!(msg, "invalid parameter \"step\": cannot parse \"\" to a valid duration");
    let msg = app.get("/api/v1/query_range?query=up&start=0&end=11001&step=1").await.error(400, "bad_data");
    assert_eq!(
        msg,
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    );
    // Exactly 11,000 steps is allowed.
    assert_eq!(app.get("/api/v1/query_range?query=up&start=0&end=11000&step=1").await.data()["result"], json!([]));
}

#[tokio::test]
async fn time_and_step_syntaxes() {
    let app = app();
    app.write_ok(&[(&[("__name__", "g")], &[(1_767_323_040_000, 1.0), (1_767_323_100_000, 2.0)])]).await;
    let rfc = enc("2026-01-02T03:05:00Z");
    for step in ["60", "1m", "60.0", "1m0s"] {
        let d = app.get(&format!("/api/v1/query_range?query=g&start=1767323040&end={rfc}&step={step}")).await.data();
        assert_eq!(d["result"][0]["values"], json!([[1767323040, "1"], [1767323100, "2"]]), "step={step}");
    }
    let d = app.get("/api/v1/query?query=g&time=1767323100.5").await.data();
    assert_eq!(d["result"][0]["value"], json!([1767323100.5, "2"]));
    // POST form, as Grafana sends it, with a URL parameter merged in.
    let d = app.post_form("/api/v1/query?stats=all", "query=g&time=1767323100").await.data();
    assert_eq!(d["result"][0]["value"], json!([1767323100, "2"]));
}

#[tokio::test]
async fn limit_truncates_with_a_warning() {
    let app = app();
    app.write_ok(&[
        (&[("__name__", "m"), ("i", "1")], &[(1000, 1.0)]),
        (&[("__name__", "m"), ("i", "2")], &[(1000, 2.0)]),
        (&[("__name__", "m"), ("i", "3")], &[(1000, 3.0)]),
    ])
    .await;
    let r = app.get("/api/v1/query?query=m&time=1&limit=2").await;
    assert_eq!(r.data()["result"].as_array().unwrap().len(), 2);
    assert_eq!(r.json()["warnings"], json!(["results truncated due to limit"]));
    let r = app.get("/api/v1/query_range?query=m&start=1&end=2&step=1&limit=1").await;
    assert_eq!(r.data()["result"].as_array().unwrap().len(), 1);
    let r = app.get("/api/v1/query?query=m&time=1&limit=3").await;
    assert!(r.json().get("warnings").is_none());
}

#[tokio::test]
async fn queue_timeout_is_503_and_slots_come_back() {
    let app = app_with(|c| c.query.max_concurrent = 1);
    let held = app.state.query_slots.clone().acquire_owned().await.unwrap();
    let t0 = std::time::Instant::now();
    let msg = app.get("/api/v1/query?query=up&time=1&timeout=0.2").await.error(503, "timeout");
    assert!(msg.starts_with("query timed out in query queue"), "{msg}");
    assert!(t0.elapsed() >= Duration::from_millis(150));
    // A waiting query proceeds once the slot is free.
    let waiter = tokio::spawn({
        let router = app.router.clone();
        async move {
            use tower::ServiceExt;
            let req =
                axum::http::Request::get("/api/v1/query?query=up&time=1").body(axum::body::Body::empty()).unwrap();
            router.oneshot(req).await.unwrap().status()
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "must queue while the only slot is taken");
    drop(held);
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap(), StatusCode::OK);
    assert_eq!(app.state.query_slots.available_permits(), 1);
}

#[tokio::test]
async fn exemplars_and_format_query() {
    let app = app();
    // Grafana's init probe: millisecond epochs in start/end.
    let d = app.get("/api/v1/query_exemplars?query=test&start=1767322000000&end=1767323800000").await.data();
    assert_eq!(d, json!([]));
    let d = app.post_form("/api/v1/query_exemplars", "query=rate(x%5B5m%5D)&start=1&end=2").await.data();
    assert_eq!(d, json!([]));
    assert_eq!(app.get("/api/v1/query_exemplars?query=1").await.status, StatusCode::NO_CONTENT);
    assert!(
        app.get("/api/v1/query_exemplars?query=sum(")
            .await
            .error(400, "bad_data")
            .starts_with("invalid parameter \"query\"")
    );
    let d = app.get(&format!("/api/v1/format_query?query={}", enc("sum  by(job)(rate(x{a=\"b\"}[5m]))"))).await.data();
    assert_eq!(d, json!("sum by (job) (rate(x{a=\"b\"}[5m]))"));
    assert!(
        app.get("/api/v1/format_query?query=(").await.error(400, "bad_data").starts_with("invalid parameter \"query\"")
    );
}

/// A client that goes away while its query waits or runs: the server drops the handler future
/// (whose drop guard cancels the evaluation token), so the request never completes. Observed
/// through the duration histogram, which only records requests that finished.
#[tokio::test]
async fn client_disconnect_drops_the_query() {
    use tokio::io::AsyncWriteExt;
    let app = app_with(|c| c.query.max_concurrent = 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app.router.clone()).into_future());
    let held = app.state.query_slots.clone().acquire_owned().await.unwrap();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /api/v1/query?query=up&time=1 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.completed("query"), 0, "the abandoned query must not run to completion");
    // A connected client is served normally.
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /api/v1/query?query=up&time=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut buf).await.unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
    assert_eq!(app.completed("query"), 1);
    server.abort();
}
