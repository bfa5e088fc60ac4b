//! Series, labels, label values, status endpoints, CORS, gzip and methods.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use super::{TestApp, app, enc};

async fn seeded() -> TestApp {
    let app = app();
    app.write_ok(&[
        (&[("__name__", "up"), ("instance", "a"), ("job", "node")], &[(1_000_000, 1.0)]),
        (&[("__name__", "up"), ("instance", "b"), ("job", "prom")], &[(1_000_000, 1.0)]),
        (&[("__name__", "cpu_seconds_total"), ("cpu", "0"), ("instance", "a")], &[(1_000_000, 12.5)]),
        (&[("U", "x"), ("__name__", "my_metric")], &[(1_000_000, 3.0)]),
    ])
    .await;
    app
}

#[tokio::test]
async fn series_needs_match_and_returns_label_objects() {
    let app = seeded().await;
    assert_eq!(app.get("/api/v1/series").await.error(400, "bad_data"), "no match[] parameter provided");
    let d = app.get(&format!("/api/v1/series?match[]={}", enc("up{job=\"node\"}"))).await.data();
    assert_eq!(d, json!([{"__name__": "up", "instance": "a", "job": "node"}]));
    let d = app.get(&format!("/api/v1/series?match[]=up&match[]={}", enc("{instance=\"a\"}"))).await.data();
    assert_eq!(d.as_array().unwrap().len(), 3, "union, deduplicated: {d}");
    assert_eq!(app.get("/api/v1/series?match[]=nothing_here").await.data(), json!([]));
    let msg = app.get(&format!("/api/v1/series?match[]={}", enc("{foo=\"\"}"))).await.error(400, "bad_data");
    assert!(msg.contains("non-empty matcher"), "{msg}");
    assert!(app.get("/api/v1/series?match[]=up{").await.error(400, "bad_data").contains("parse error"));
    let msg = app.get("/api/v1/series?match[]=up&start=yesterday").await.error(400, "bad_data");
    assert_eq!(
        msg,
        "invalid parameter \"start\": invalid time value for 'start': cannot parse \"yesterday\" to a valid timestamp"
    );
    // Outside the time range: nothing (the store knows which series have data when).
    assert_eq!(app.get("/api/v1/series?match[]=up&start=0&end=10").await.data(), json!([]));
}

#[tokio::test]
async fn labels_and_values_with_match_limit_and_post() {
    let app = seeded().await;
    assert_eq!(app.get("/api/v1/labels").await.data(), json!(["U", "__name__", "cpu", "instance", "job"]));
    let d = app.get(&format!("/api/v1/labels?match[]={}", enc("cpu_seconds_total"))).await.data();
    assert_eq!(d, json!(["__name__", "cpu", "instance"]));
    // POST form body merged with URL parameters.
    let d = app.post_form("/api/v1/labels?match[]=my_metric", &format!("match[]={}", enc("up"))).await.data();
    assert_eq!(d, json!(["U", "__name__", "instance", "job"]));
    let r = app.get("/api/v1/label/__name__/values?limit=2").await;
    assert_eq!(r.data(), json!(["cpu_seconds_total", "my_metric"]));
    assert_eq!(r.json()["warnings"], json!(["results truncated due to limit"]));
    let r = app.get("/api/v1/label/__name__/values?limit=40000&start=0&end=2000000000").await;
    assert_eq!(r.data(), json!(["cpu_seconds_total", "my_metric", "up"]));
    assert!(r.json().get("warnings").is_none());
    let d = app.get(&format!("/api/v1/label/instance/values?match[]={}", enc("up{job=\"prom\"}"))).await.data();
    assert_eq!(d, json!(["b"]));
    assert_eq!(app.get("/api/v1/label/nope/values").await.data(), json!([]));
    // `U__` escaping of UTF-8 names is undone (here the plain name "U").
    assert_eq!(app.get("/api/v1/label/U__U/values").await.data(), json!(["x"]));
    assert_eq!(app.post_form("/api/v1/label/job/values", "").await.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        app.get("/api/v1/labels?limit=-1").await.error(400, "bad_data"),
        "invalid parameter \"limit\": limit must be non-negative"
    );
    // Unknown parameters are ignored.
    assert_eq!(
        app.get("/api/v1/labels?dedup=false&max_samples_processed_warning_threshold=5").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn status_endpoints_have_prometheus_shapes() {
    let app = seeded().await;
    let d = app.get("/api/v1/status/buildinfo").await.data();
    assert_eq!(d["version"], "2.53.0");
    for k in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(d[k].is_string(), "{k}: {d}");
    }
    assert!(d.get("features").is_none());
    let d = app.get("/api/v1/status/tsdb").await.data();
    assert_eq!(d["headStats"]["numSeries"], 4);
    for k in ["numLabelPairs", "chunkCount", "minTime", "maxTime"] {
        assert!(d["headStats"][k].is_i64() || d["headStats"][k].is_u64(), "{k}: {d}");
    }
    assert_eq!(d["seriesCountByMetricName"][0], json!({"name": "up", "value": 2}));
    for k in ["labelValueCountByLabelName", "memoryInBytesByLabelName", "seriesCountByLabelValuePair"] {
        assert!(d[k].is_array(), "{k}: {d}");
    }
    assert!(app.get("/api/v1/status/tsdb?limit=0").await.error(400, "bad_data").contains("limit"));
    assert!(app.get("/api/v1/status/config").await.data()["yaml"].as_str().unwrap().contains("retention"));
    assert_eq!(app.get("/api/v1/status/flags").await.data()["query.max-concurrency"], "20");
    let d = app.get("/api/v1/status/runtimeinfo").await.data();
    assert_eq!(d["storageRetention"], "2w1d");
    assert!(d["startTime"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn cors_options_and_vary() {
    let app = app();
    let req =
        Request::options("/api/v1/query").header(header::ORIGIN, "http://grafana.local").body(Body::empty()).unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, POST, OPTIONS");
    assert_eq!(r.headers[header::ACCESS_CONTROL_ALLOW_HEADERS], "Accept, Authorization, Content-Type, Origin");
    assert_eq!(r.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS], "Date");
    let r = app.get("/api/v1/status/buildinfo").await;
    assert_eq!(r.headers[header::VARY], "Origin");
    assert!(r.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn gzip_when_asked_and_never_zstd() {
    let app = seeded().await;
    let ask = |enc: &str| {
        Request::get("/api/v1/label/__name__/values").header(header::ACCEPT_ENCODING, enc).body(Body::empty()).unwrap()
    };
    let r = app.send(ask("gzip")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
    let r = app.send(ask("zstd, br;q=0.5")).await;
    assert!(r.headers.get(header::CONTENT_ENCODING).is_none_or(|v| v != "zstd"));
    let plain = app.get("/api/v1/label/__name__/values").await;
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.data(), json!(["cpu_seconds_total", "my_metric", "up"]));
}
