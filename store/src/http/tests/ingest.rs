//! remote_write and text import: success paths, partial rejection, and a fuzz-like table of
//! malformed bodies that must each get a 4xx envelope while the server keeps serving.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use crowsnest_wire::remote::{MetricMetadata, MetricType};

use super::{app, app_with, enc, write_body};

#[tokio::test]
async fn write_then_read_back() {
    let app = app();
    app.write_ok(&[
        (&[("__name__", "up"), ("instance", "a:9100"), ("job", "node")], &[(1_000, 1.0), (16_000, 1.0)]),
        (&[("__name__", "up"), ("instance", "b:9100"), ("job", "node")], &[(1_000, 0.0), (16_000, 1.0)]),
    ])
    .await;
    let d = app.get("/api/v1/query?query=up&time=20").await.data();
    assert_eq!(d["resultType"], "vector");
    let result = d["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    for s in result {
        assert_eq!(s["value"], serde_json::json!([20, "1"]));
        assert_eq!(s["metric"]["job"], "node");
    }
    let d = app.get("/api/v1/query_range?query=up%7Binstance%3D%22b%3A9100%22%7D&start=1&end=16&step=15").await.data();
    assert_eq!(d["resultType"], "matrix");
    assert_eq!(d["result"][0]["values"], serde_json::json!([[1, "0"], [16, "1"]]));
}

#[tokio::test]
async fn metadata_from_remote_write() {
    let app = app();
    let md = vec![MetricMetadata {
        r#type: MetricType::Counter as i32,
        metric_family_name: "http_requests_total".into(),
        help: "Requests.".into(),
        unit: String::new(),
    }];
    let r = app.post_write(write_body(&[(&[("__name__", "http_requests_total")], &[(1000, 5.0)])], md)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let d = app.get("/api/v1/metadata").await.data();
    assert_eq!(d, serde_json::json!({"http_requests_total": [{"type": "counter", "help": "Requests.", "unit": ""}]}));
    let d = app.get("/api/v1/metadata?metric=nope").await.data();
    assert_eq!(d, serde_json::json!({}));
    assert_eq!(app.get("/api/v1/metadata?limit=x").await.error(400, "bad_data"), "limit must be a number");
}

#[tokio::test]
async fn rejected_series_are_named_and_the_rest_is_kept() {
    let app = app();
    let body = write_body(
        &[
            (&[("__name__", "good"), ("a", "1")], &[(1000, 1.0)]),
            (&[("__name__", "bad"), ("bad-name", "x")], &[(1000, 1.0)]),
            (&[("__name__", "good"), ("a", "2")], &[(1000, 2.0)]),
        ],
        vec![],
    );
    let msg = app.post_write(body).await.error(400, "bad_data");
    assert!(msg.contains("bad-name"), "{msg}");
    assert!(msg.contains("1 samples of 1 series rejected"), "{msg}");
    let d = app.get("/api/v1/query?query=good&time=1").await.data();
    assert_eq!(d["result"].as_array().unwrap().len(), 2);
}

/// A snappy block whose header announces `len` bytes, followed by a little data.
fn claimed_size(len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = len;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&[0, 1, 2, 3]);
    out
}

#[tokio::test]
async fn malformed_bodies_get_4xx_and_the_server_keeps_serving() {
    let app = app_with(|c| {
        c.limits.max_request_body_bytes = 512 * 1024;
        c.limits.max_decompressed_bytes = 1024 * 1024;
    });
    let snappy = |raw: &[u8]| snap::raw::Encoder::new().compress_vec(raw).unwrap();
    let zeros_bomb = {
        // 4 MiB of a valid protobuf field repeated: compresses to a few KiB, inflates past the limit.
        let raw = [0x0a, 0x00].repeat(2 << 20);
        snappy(&raw)
    };
    assert!(zeros_bomb.len() < 512 * 1024, "bomb must pass the body limit, got {}", zeros_bomb.len());
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", vec![], 400, "snappy"),
        ("not snappy", b"hello, this is not snappy at all".to_vec(), 400, "snappy"),
        ("truncated snappy", snappy(&(0..200u8).collect::<Vec<_>>())[..50].to_vec(), 400, "snappy"),
        ("bad protobuf", snappy(&[0xff, 0xff, 0xff, 0xff, 0x0f]), 400, "protobuf"),
        ("wrong wire type", snappy(&[0x0d, 1, 2, 3, 4]), 400, "protobuf"),
        ("claims 1 GiB", claimed_size(1 << 30), 413, "above the limit"),
        ("decompression bomb", zeros_bomb, 413, "above the limit"),
        ("oversized body", vec![0u8; 600 * 1024], 413, "too large"),
        ("invalid label name", write_body(&[(&[("__name__", "up"), ("0bad", "x")], &[(1, 1.0)])], vec![]), 400, "0bad"),
        ("invalid metric name", write_body(&[(&[("__name__", "1up")], &[(1, 1.0)])], vec![]), 400, "1up"),
        (
            "unsorted labels",
            write_body(&[(&[("__name__", "up"), ("b", "1"), ("a", "2")], &[(1, 1.0)])], vec![]),
            400,
            "sorted",
        ),
        (
            "duplicate labels",
            write_body(&[(&[("__name__", "up"), ("a", "1"), ("a", "2")], &[(1, 1.0)])], vec![]),
            400,
            "duplicate",
        ),
        ("empty label value", write_body(&[(&[("__name__", "up"), ("a", "")], &[(1, 1.0)])], vec![]), 400, "empty"),
    ];
    for (name, body, status, needle) in cases {
        let r = app.post_write(body).await;
        let msg = r.error(status, "bad_data");
        assert!(msg.to_lowercase().contains(needle), "{name}: {msg}");
        // The server still serves reads and good writes.
        assert_eq!(app.get("/api/v1/status/buildinfo").await.status, StatusCode::OK, "{name}");
        app.write_ok(&[(&[("__name__", "alive")], &[(1000, 1.0)])]).await;
    }
}

#[tokio::test]
async fn wrong_encodings_and_versions_are_unsupported_media() {
    let app = app();
    let body = write_body(&[(&[("__name__", "up")], &[(1, 1.0)])], vec![]);
    let req =
        Request::post("/api/v1/write").header(header::CONTENT_ENCODING, "gzip").body(Body::from(body.clone())).unwrap();
    assert!(app.send(req).await.error(415, "bad_data").contains("only snappy"));
    let req = Request::post("/api/v1/write")
        .header(header::CONTENT_TYPE, "application/x-protobuf;proto=io.prometheus.write.v2.Request")
        .body(Body::from(body.clone()))
        .unwrap();
    assert!(app.send(req).await.error(415, "bad_data").contains("2.0"));
    // Bare 1.0 senders without headers are accepted.
    let req = Request::post("/api/v1/write").body(Body::from(body)).unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/api/v1/write").await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn text_import_keeps_good_lines_and_names_bad_ones() {
    let app = app();
    let text = "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{queue=\"a\"} 3 1700000000000\nthis is { not valid\njobs_total{queue=\"b\"} 4 1700000000000\n";
    let req = Request::post("/api/v1/import/prometheus")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(text))
        .unwrap();
    let msg = app.send(req).await.error(400, "bad_data");
    assert!(msg.contains("line 4:"), "{msg}");
    assert!(msg.contains("imported 2 samples"), "{msg}");
    let d = app.get(&format!("/api/v1/query?query={}&time=1700000000", enc("jobs_total"))).await.data();
    assert_eq!(d["result"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/api/v1/metadata?metric=jobs_total").await.data()["jobs_total"][0]["type"], "counter");

    let om = "# TYPE t gauge\nt 1.5 1700000001.5\n# EOF\n";
    let req = Request::post("/api/v1/import/prometheus")
        .header(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0")
        .body(Body::from(om))
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::NO_CONTENT);
    let d = app.get("/api/v1/query?query=t&time=1700000001.5").await.data();
    assert_eq!(d["result"][0]["value"], serde_json::json!([1700000001.5, "1.5"]));

    let req = Request::post("/api/v1/import/prometheus")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(vec![0x1f, 0x8b, 0]))
        .unwrap();
    assert!(app.send(req).await.error(415, "bad_data").contains("uncompressed"));

    // No timestamp: stored at "now", visible to an instant query at now.
    let req = Request::post("/api/v1/import/prometheus").body(Body::from("fresh_metric 42\n")).unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::NO_CONTENT);
    let d = app.get("/api/v1/query?query=fresh_metric").await.data();
    assert_eq!(d["result"][0]["value"][1], "42");
}

mod fuzz {
    use proptest::prelude::*;

    use super::super::{TestApp, app, write_body};

    fn valid_body() -> Vec<u8> {
        write_body(
            &[
                (&[("__name__", "fz"), ("a", "1")], &[(1000, 1.0), (2000, 2.0)]),
                (&[("__name__", "fz"), ("a", "2")], &[(1000, 3.0)]),
            ],
            vec![],
        )
    }

    /// Random bytes and random corruptions of a valid body: never a 5xx, never a panic.
    fn check(rt: &tokio::runtime::Runtime, app: &TestApp, body: Vec<u8>) -> Result<(), TestCaseError> {
        let status = rt.block_on(app.post_write(body)).status.as_u16();
        prop_assert!(status == 204 || (400..500).contains(&status), "status {}", status);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_5xx(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let app = app();
            check(&rt, &app, body)?;
        }

        #[test]
        fn corrupted_bodies_never_5xx(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let app = app();
            let mut body = valid_body();
            for (i, b) in &flips {
                let at = i.index(body.len());
                body[at] = *b;
            }
            check(&rt, &app, body.clone())?;
            let keep = cut.index(body.len());
            check(&rt, &app, body[..keep].to_vec())?;
        }
    }
}
