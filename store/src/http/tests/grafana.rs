//! The request sequence Grafana's Prometheus data source sends (shared/reference/
//! grafana-prometheus-datasource.md): Save & test, buildinfo heuristics, metrics browser,
//! template variables, exemplar probe, panel range queries with step alignment.

use axum::http::StatusCode;
use serde_json::json;

use super::{TestApp, app, enc};

async fn seeded() -> TestApp {
    let app = app();
    let samples: Vec<(i64, f64)> = (0..60).map(|i| (1_767_322_800_000 + i * 15_000, i as f64)).collect();
    app.write_ok(&[
        (&[("__name__", "node_cpu_seconds_total"), ("cpu", "0"), ("env", "prod"), ("instance", "h1")], &samples),
        (&[("__name__", "node_cpu_seconds_total"), ("cpu", "1"), ("env", "dev"), ("instance", "h2")], &samples),
        (&[("__name__", "up"), ("env", "prod"), ("instance", "h1")], &samples),
    ])
    .await;
    app
}

/// Save & test: `POST /api/v1/query` with `query=1+1&time=4` must answer the scalar 2.
#[tokio::test]
async fn save_and_test() {
    let app = app();
    let r = app.post_form("/api/v1/query", "query=1%2B1&time=4").await;
    assert_eq!(r.json(), json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}}));
    let r = app.get("/api/v1/query?query=1%2B1&time=4").await;
    assert_eq!(r.data(), json!({"resultType": "scalar", "result": [4, "2"]}));
}

#[tokio::test]
async fn metrics_browser_and_variables() {
    let app = seeded().await;
    let (start, end) = ("1767322800", "1767323700");
    // buildinfo: Prometheus flavour (no features).
    assert!(app.get("/api/v1/status/buildinfo").await.data().get("features").is_none());
    // Metric names, label names, label values with limit=40000 and integer start/end.
    let d = app.get(&format!("/api/v1/label/__name__/values?limit=40000&start={start}&end={end}")).await.data();
    assert_eq!(d, json!(["node_cpu_seconds_total", "up"]));
    let d = app
        .post_form(
            "/api/v1/labels",
            &format!("limit=40000&start={start}&end={end}&match[]={}", enc("node_cpu_seconds_total")),
        )
        .await
        .data();
    assert_eq!(d, json!(["__name__", "cpu", "env", "instance"]));
    let sel = enc("{__name__=~\"node_cpu_seconds_total|up\",instance=\"h1\"}");
    let d =
        app.get(&format!("/api/v1/label/env/values?limit=40000&start={start}&end={end}&match[]={sel}")).await.data();
    assert_eq!(d, json!(["prod"]));
    // label_values(up{env="$env"}, instance) with a multi-value variable (regex alternation).
    let sel = enc("up{env=~\"(prod|dev)\"}");
    assert_eq!(
        app.get(&format!("/api/v1/label/instance/values?start={start}&end={end}&limit=40000&match[]={sel}"))
            .await
            .data(),
        json!(["h1"])
    );
    // metrics(re)
    let sel = enc("{__name__=~\"node_.*\"}");
    assert_eq!(
        app.get(&format!("/api/v1/label/__name__/values?match[]={sel}")).await.data(),
        json!(["node_cpu_seconds_total"])
    );
    // Series-endpoint variables, ceil(ms/1000) start/end.
    let d = app
        .post_form(
            "/api/v1/series",
            &format!("start={start}&end={end}&match[]={}&limit=40000", enc("{__name__!=\"\"}")),
        )
        .await
        .data();
    assert_eq!(d.as_array().unwrap().len(), 3);
    // Metadata for hints.
    assert_eq!(app.get("/api/v1/metadata?limit=40000").await.status, StatusCode::OK);
    // Exemplar probe with millisecond epochs.
    assert_eq!(
        app.post_form("/api/v1/query_exemplars", "query=test&start=1767321000000&end=1767322800000").await.data(),
        json!([])
    );
}

#[tokio::test]
async fn panel_range_query_with_aligned_step() {
    let app = seeded().await;
    // Grafana floors start/end to the step and sends float seconds.
    let body = format!("query={}&start=1767322800&end=1767323685&step=45", enc("node_cpu_seconds_total{env=\"prod\"}"));
    let d = app.post_form("/api/v1/query_range", &body).await.data();
    assert_eq!(d["resultType"], "matrix");
    let values = d["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 20);
    assert_eq!(values[1], json!([1767322845, "3"]));
    // Instant query at "now" with milliseconds.
    let d = app.post_form("/api/v1/query", "query=up&time=1767323685.123").await.data();
    assert_eq!(d["result"][0]["value"], json!([1767323685.123, "59"]));
}
