//! One test per configured limit: each trips it, then checks the status, that the message names
//! the limit (and the series where there is one), and that the limit's counter moved.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::{TestApp, app_with, enc, write_body};

/// The value of one sample line of `/metrics`, 0 when absent.
fn metric(app: &TestApp, series: &str) -> f64 {
    let text = crowsnest_wire::ops::encode_metrics(&app.registry);
    let prefix = format!("{series} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

fn request_rejections(app: &TestApp, limit: &str) -> f64 {
    metric(app, &format!("crowsnest_store_requests_rejected_total{{limit=\"{limit}\"}}"))
}

fn sample_rejections(app: &TestApp, reason: &str) -> f64 {
    metric(app, &format!("crowsnest_store_samples_rejected_total{{reason=\"{reason}\"}}"))
}

#[tokio::test]
async fn request_body_size() {
    let app = app_with(|c| c.limits.max_request_body_bytes = 1024);
    // Streamed (no Content-Length) and announced (Content-Length) bodies are both refused.
    let streamed = Body::from_stream(futures::stream::iter([Ok::<_, std::io::Error>(vec![0u8; 2048])]));
    let msg = app.send(Request::post("/api/v1/write").body(streamed).unwrap()).await.error(413, "bad_data");
    assert!(msg.contains("max_request_body_bytes") && msg.contains("1024"), "{msg}");
    let announced =
        Request::post("/api/v1/write").header(header::CONTENT_LENGTH, "4096").body(Body::from(vec![0u8; 4096]));
    app.send(announced.unwrap()).await.error(413, "bad_data");
    assert_eq!(request_rejections(&app, "max_request_body_bytes"), 2.0);
}

#[tokio::test]
async fn decompressed_size_is_checked_before_decompressing() {
    let app = app_with(|c| {
        c.limits.max_decompressed_bytes = 64 * 1024;
        c.limits.max_request_body_bytes = 16 * 1024;
    });
    // A 7-byte body whose snappy header claims 1 GiB: refused from the header alone.
    let mut bomb = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    bomb.extend_from_slice(&[0, 1]);
    let msg = app.post_write(bomb).await.error(413, "bad_data");
    assert!(msg.contains("max_decompressed_bytes") && msg.contains("1073741824"), "{msg}");
    // A real body that inflates past the limit.
    let big = "x".repeat(100 * 1024);
    let body = write_body(&[(&[("__name__", "m"), ("v", big.as_str())], &[(1, 1.0)])], vec![]);
    app.post_write(body).await.error(413, "bad_data");
    assert_eq!(request_rejections(&app, "max_decompressed_bytes"), 2.0);
    // Text import: uncompressed, so the larger size limit bounds it.
    let req = Request::post("/api/v1/import/prometheus").body(Body::from(format!("m{{v=\"{big}\"}} 1\n"))).unwrap();
    let msg = app.send(req).await.error(413, "bad_data");
    assert!(msg.contains("max_decompressed_bytes"), "{msg}");
    assert_eq!(request_rejections(&app, "max_decompressed_bytes"), 3.0);
}

#[tokio::test]
async fn labels_per_series() {
    let app = app_with(|c| c.limits.max_label_names_per_series = 3);
    let body = write_body(
        &[(&[("__name__", "wide"), ("a", "1"), ("b", "2"), ("c", "3")], &[(1000, 1.0), (2000, 1.0)])],
        vec![],
    );
    let msg = app.post_write(body).await.error(400, "bad_data");
    assert!(msg.contains("__name__=\"wide\"") && msg.contains("max_label_names_per_series"), "{msg}");
    assert_eq!(sample_rejections(&app, "too_many_labels"), 2.0);
    app.write_ok(&[(&[("__name__", "narrow"), ("a", "1"), ("b", "2")], &[(1000, 1.0)])]).await;
}

#[tokio::test]
async fn label_name_and_value_lengths() {
    let app = app_with(|c| {
        c.limits.max_label_name_length = 10;
        c.limits.max_label_value_length = 20;
    });
    let long_name = "n".repeat(11);
    let body = write_body(&[(&[("__name__", "m"), (long_name.as_str(), "x")], &[(1000, 1.0)])], vec![]);
    let msg = app.post_write(body).await.error(400, "bad_data");
    assert!(msg.contains(&long_name) && msg.contains("max_label_name_length"), "{msg}");
    let long_value = "v".repeat(21);
    let body = write_body(&[(&[("__name__", "m"), ("job", long_value.as_str())], &[(1000, 1.0)])], vec![]);
    let msg = app.post_write(body).await.error(400, "bad_data");
    assert!(msg.contains("\"job\"") && msg.contains("max_label_value_length"), "{msg}");
    assert_eq!(sample_rejections(&app, "label_too_long"), 2.0);
}

#[tokio::test]
async fn series_per_metric() {
    let app = app_with(|c| c.limits.max_series_per_metric = 2);
    app.write_ok(&[
        (&[("__name__", "busy"), ("i", "1")], &[(1000, 1.0)]),
        (&[("__name__", "busy"), ("i", "2")], &[(1000, 1.0)]),
    ])
    .await;
    let body = write_body(
        &[
            (&[("__name__", "busy"), ("i", "3")], &[(1000, 1.0)]),
            (&[("__name__", "other"), ("i", "3")], &[(1000, 1.0)]),
            // Existing series of the full metric keep ingesting.
            (&[("__name__", "busy"), ("i", "1")], &[(2000, 1.0)]),
        ],
        vec![],
    );
    let msg = app.post_write(body).await.error(400, "bad_data");
    assert!(msg.contains("busy{i=\"3\"}") && msg.contains("max_series_per_metric"), "{msg}");
    assert!(msg.contains("1 samples of 1 series rejected"), "{msg}");
    assert_eq!(sample_rejections(&app, "series_per_metric_limit"), 1.0);
    let d = app.get(&format!("/api/v1/query?query={}&time=2", enc("count(other) + count(busy)"))).await.data();
    assert_eq!(d["result"][0]["value"][1], "3");
}

#[tokio::test]
async fn total_active_series() {
    let app = app_with(|c| c.limits.max_active_series = 2);
    app.write_ok(&[(&[("__name__", "a")], &[(1000, 1.0)]), (&[("__name__", "b")], &[(1000, 1.0)])]).await;
    let body = write_body(&[(&[("__name__", "c"), ("x", "y")], &[(1000, 1.0)])], vec![]);
    let msg = app.post_write(body).await.error(400, "bad_data");
    assert!(msg.contains("c{x=\"y\"}") && msg.contains("max_active_series"), "{msg}");
    assert_eq!(sample_rejections(&app, "series_limit"), 1.0);
}

#[tokio::test]
async fn query_samples() {
    let app = app_with(|c| c.query.max_samples = 10);
    let samples: Vec<(i64, f64)> = (0..100).map(|i| (i * 1000, i as f64)).collect();
    app.write_ok(&[(&[("__name__", "dense")], samples.as_slice())]).await;
    let r = app.get(&format!("/api/v1/query?query={}&time=100", enc("count_over_time(dense[100s])"))).await;
    let msg = r.error(422, "execution");
    assert!(msg.contains("too many samples") && msg.contains("max_samples"), "{msg}");
    assert_eq!(request_rejections(&app, "max_samples"), 1.0);
}

#[tokio::test]
async fn query_time() {
    let app = app_with(|_| {});
    let msg =
        app.get("/api/v1/query_range?query=vector(1)&start=0&end=10000&step=1&timeout=0").await.error(503, "timeout");
    assert!(msg.starts_with("query timed out in"), "{msg}");
    assert_eq!(request_rejections(&app, "timeout"), 1.0);
}

#[tokio::test]
async fn concurrent_queries() {
    let app = app_with(|c| c.query.max_concurrent = 1);
    let _held = app.state.query_slots.clone().acquire_owned().await.unwrap();
    let msg = app.get("/api/v1/query?query=up&time=1&timeout=0.1").await.error(503, "timeout");
    assert!(msg.contains("query queue") && msg.contains("max_concurrent"), "{msg}");
    assert_eq!(request_rejections(&app, "max_concurrent"), 1.0);
}

#[tokio::test]
async fn points_per_range_query() {
    let app = app_with(|c| c.query.max_points_per_range_query = 100);
    let msg = app.get("/api/v1/query_range?query=up&start=0&end=101&step=1").await.error(400, "bad_data");
    assert!(msg.contains("maximum resolution of 100 points"), "{msg}");
    assert_eq!(request_rejections(&app, "max_points_per_range_query"), 1.0);
    assert_eq!(app.get("/api/v1/query_range?query=up&start=0&end=100&step=1").await.status, StatusCode::OK);
}
