//! In-process tests of the `/api/v1` router (no socket): every endpoint's envelope, status codes
//! and Prometheus' exact error texts, driven with `tower::ServiceExt::oneshot`.

mod grafana;
mod ingest;
mod limits;
mod query;
mod read;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use crowsnest_wire::remote::MetricMetadata;
use crowsnest_wire::{Label, Sample, TimeSeries, WriteRequest};
use serde_json::Value;
use tower::ServiceExt;

use super::{ApiState, router};
use crate::config::StoreConfig;
use crate::db::Db;

/// Test series: label pairs (sent in the order given) and (timestamp ms, value) samples.
pub(super) type SeriesSpec<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

/// A router over a fresh store in a temporary directory.
pub(super) struct TestApp {
    pub state: ApiState,
    pub router: Router,
    pub registry: crowsnest_wire::ops::SharedRegistry,
    pub _dir: tempfile::TempDir,
}

pub(super) fn app() -> TestApp {
    app_with(|_| {})
}

pub(super) fn app_with(tweak: impl FnOnce(&mut StoreConfig)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() };
    tweak(&mut cfg);
    let reg = crowsnest_wire::ops::new_registry();
    let db = Arc::new(Db::open(cfg, &reg).expect("open db"));
    let state = ApiState::new(db, &reg);
    TestApp { router: router(state.clone()), state, registry: reg, _dir: dir }
}

/// A response, buffered.
pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a Prometheus error envelope and returns its message.
    pub fn error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", String::from_utf8_lossy(&self.body));
        let v = self.json();
        assert_eq!(v["status"], "error", "{v}");
        assert_eq!(v["errorType"], kind, "{v}");
        v["error"].as_str().expect("error text").to_string()
    }

    /// Asserts a success envelope and returns `data`.
    pub fn data(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/json"));
        let v = self.json();
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }
}

impl TestApp {
    /// Requests of `handler` (route without `/api/v1/`) that ran to completion, from `/metrics`.
    pub fn completed(&self, handler: &str) -> u64 {
        let text = crowsnest_wire::ops::encode_metrics(&self.registry);
        let prefix = format!("crowsnest_store_http_request_duration_seconds_count{{handler=\"{handler}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("body").to_vec();
        Reply { status, headers, body }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).expect("request")).await
    }

    pub async fn post_form(&self, uri: &str, form: &str) -> Reply {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .expect("request");
        self.send(req).await
    }

    pub async fn post_write(&self, body: Vec<u8>) -> Reply {
        let req = Request::post("/api/v1/write")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }

    /// Writes series given as (labels, samples) and asserts 204.
    pub async fn write_ok(&self, series: &[SeriesSpec<'_>]) {
        let r = self.post_write(write_body(series, vec![])).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&r.body));
    }
}

/// A snappy remote_write body. Labels are sent in the order given (tests of unsorted labels).
pub(super) fn write_body(series: &[SeriesSpec<'_>], metadata: Vec<MetricMetadata>) -> Vec<u8> {
    WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
                samples: samples.iter().map(|(t, v)| Sample::new(*t, *v)).collect(),
            })
            .collect(),
        metadata,
    }
    .encode_snappy()
}

/// Percent-encodes a query-string value.
pub(super) fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).expect("encode")[2..].to_string()
}
