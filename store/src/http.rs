//! The store's Prometheus-compatible HTTP API under `/api/v1` (spec: prometheus/prometheus
//! `web/api/v1/api.go`, summarised in shared/reference/prometheus-http-api.md). [`router`] builds
//! it from an [`ApiState`]; tests drive it in-process with `tower::ServiceExt::oneshot`.
//!
//! Cross-cutting behaviour lives here: CORS and `OPTIONS` (Prometheus' `util/httputil/cors.go`),
//! gzip responses when asked (never zstd: Grafana cannot read it), 405 for a wrong method (axum's
//! method router), the `crowsnest_store_http_request_duration_seconds{handler}` histogram, and
//! `crowsnest_store_requests_rejected_total{limit}`, counted from the [`error::LimitHit`] a
//! limit's error puts on its response (the label is the limit's config key).
//! - [`error`]: the single error → envelope/status mapping.
//! - [`params`]: URL + form parameters, times, durations, `limit`, `match[]`.
//! - [`ingest`]: remote_write and text import. [`series`]: series/labels/values/metadata.
//! - [`query`]: PromQL endpoints. [`status`]: buildinfo, tsdb, config, flags, runtimeinfo.
//! - [`admin`]: the TSDB admin API (delete_series, clean_tombstones, snapshot), a separate router.

pub mod admin;
pub mod error;
pub mod ingest;
pub mod params;
pub mod query;
pub mod series;
pub mod status;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crowsnest_promql::{Engine, EngineOptions};
use crowsnest_wire::api::Envelope;
use crowsnest_wire::ops::SharedRegistry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;

use crate::config::StoreConfig;
use crate::db::Db;

/// What every handler reaches: the database, the PromQL engine, the query slots, settings.
#[derive(Clone)]
pub struct ApiState {
    pub db: Arc<Db>,
    pub engine: Arc<Engine>,
    /// One permit per concurrently evaluated query (`query.max_concurrent`); waiters queue.
    pub query_slots: Arc<Semaphore>,
    /// The permits `query_slots` was sized for (resized by [`ApiState::reload`]).
    pub query_slots_total: Arc<AtomicUsize>,
    /// The settings at startup (static ones such as `admin_api_enabled`); reloadable values
    /// are read per request from `db.config()`.
    pub config: Arc<StoreConfig>,
    pub metrics: HttpMetrics,
    pub started: chrono::DateTime<chrono::Utc>,
    /// Outcome and time of the last configuration load (startup or reload), for
    /// `/api/v1/status/runtimeinfo`'s `reloadConfigSuccess` and `lastConfigTime`.
    pub last_reload: Arc<parking_lot::Mutex<(bool, chrono::DateTime<chrono::Utc>)>>,
}

impl ApiState {
    /// Builds the state for `db`, with engine options from `config.query`, registering the HTTP
    /// metrics in `registry`.
    pub fn new(db: Arc<Db>, registry: &SharedRegistry) -> ApiState {
        let config = db.config().clone();
        let q = &config.query;
        let engine = Engine::new(EngineOptions {
            lookback_delta_ms: q.lookback_delta.as_millis() as i64,
            max_samples: q.max_samples,
            timeout: q.timeout,
            parallelism: q.workers_per_query(),
            ..EngineOptions::default()
        });
        let started = chrono::Utc::now();
        ApiState {
            query_slots: Arc::new(Semaphore::new(q.max_concurrent)),
            query_slots_total: Arc::new(AtomicUsize::new(q.max_concurrent)),
            engine: Arc::new(engine),
            metrics: HttpMetrics::register(registry),
            config,
            db,
            started,
            last_reload: Arc::new(parking_lot::Mutex::new((true, started))),
        }
    }
}

impl ApiState {
    /// Applies reloaded settings to the database and the query slots. Queries running on
    /// permits beyond a lowered limit finish; new ones wait until the count is under it.
    /// Records the outcome of a configuration reload attempt of the whole process (the store's
    /// part or another component's may have failed); the time moves only on success, as in
    /// Prometheus.
    pub fn record_reload(&self, ok: bool) {
        let mut r = self.last_reload.lock();
        r.0 = ok;
        if ok {
            r.1 = chrono::Utc::now();
        }
    }

    pub fn reload(&self, config: StoreConfig) -> Result<Vec<&'static str>, crate::error::StoreError> {
        let want = config.query.max_concurrent;
        let fixed = self.db.reload(config)?;
        let had = self.query_slots_total.swap(want, Ordering::SeqCst);
        if want > had {
            self.query_slots.add_permits(want - had);
        } else if want < had {
            let mut owed = had - want;
            owed -= self.query_slots.forget_permits(owed);
            if owed > 0 {
                // Held permits: take them back as they are released.
                let slots = self.query_slots.clone();
                tokio::spawn(async move {
                    if let Ok(p) = slots.acquire_many_owned(owed as u32).await {
                        p.forget();
                    }
                });
            }
        }
        Ok(fixed)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    handler: String,
}

fn new_duration_histogram() -> Histogram {
    Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0])
}

/// Request durations by handler (the route template, so the label stays bounded), and requests
/// refused by a limit (by config key).
#[derive(Clone)]
pub struct HttpMetrics {
    durations: Family<HandlerLabels, Histogram, fn() -> Histogram>,
    limit_rejections: Family<[(&'static str, &'static str); 1], Counter>,
}

impl HttpMetrics {
    fn register(registry: &SharedRegistry) -> HttpMetrics {
        let durations: Family<HandlerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(new_duration_histogram);
        let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
        reg.register(
            "crowsnest_store_http_request_duration_seconds",
            "Time spent serving store API requests, by handler",
            durations.clone(),
        );
        let limit_rejections = Family::default();
        reg.register(
            "crowsnest_store_requests_rejected",
            "Requests refused by a limit, by the limit's config key",
            limit_rejections.clone(),
        );
        HttpMetrics { durations, limit_rejections }
    }
}

/// The `/api/v1` routes of the store (not `/metrics`, `/healthz`, `/ready`: see `crowsnest_wire::ops`).
pub fn router(state: ApiState) -> Router {
    write_router(state.clone()).merge(read_router(state))
}

/// The ingest routes (the `write` auth group): remote_write and text import.
pub fn write_router(state: ApiState) -> Router {
    finish(
        Router::new()
            .route("/api/v1/write", post(ingest::write))
            .route("/api/v1/import/prometheus", post(ingest::import_prometheus)),
        state,
    )
}

/// The query, metadata and status routes (the `read` auth group).
pub fn read_router(state: ApiState) -> Router {
    finish(
        Router::new()
            .route("/api/v1/query", get(query::query).post(query::query))
            .route("/api/v1/query_range", get(query::query_range).post(query::query_range))
            .route("/api/v1/query_exemplars", get(query::query_exemplars).post(query::query_exemplars))
            .route("/api/v1/format_query", get(query::format_query).post(query::format_query))
            .route("/api/v1/series", get(series::series).post(series::series))
            .route("/api/v1/labels", get(series::labels).post(series::labels))
            .route("/api/v1/label/{name}/values", get(series::label_values))
            .route("/api/v1/metadata", get(series::metadata))
            .route("/api/v1/status/buildinfo", get(status::buildinfo))
            .route("/api/v1/status/tsdb", get(status::tsdb))
            .route("/api/v1/status/config", get(status::config))
            .route("/api/v1/status/flags", get(status::flags))
            .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo)),
        state,
    )
}

/// The layers every store route shares: duration histogram, CORS, gzip.
fn finish(routes: Router<ApiState>, state: ApiState) -> Router {
    let metrics = state.metrics.clone();
    routes
        .route_layer(middleware::from_fn_with_state(metrics, track_duration))
        .layer(middleware::from_fn(cors))
        .layer(CompressionLayer::new())
        .with_state(state)
}

/// Answers a success envelope with `data` and the annotations.
/// Serialised into one `Vec` rather than through `axum::Json`'s growing `BytesMut` writer, whose
/// per-fragment copies showed up in profiles of range queries (thousands of small values).
pub(crate) fn success<T: Serialize>(data: T, warnings: Vec<String>, infos: Vec<String>) -> Response {
    let envelope = Envelope::success(data).with_warnings(warnings, infos);
    let mut body = Vec::with_capacity(4096);
    match serde_json::to_writer(&mut body, &envelope) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Our own types always serialise; keep Json's behaviour (500) if one ever does not.
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("serialising the answer failed: {e}")).into_response(),
    }
}

async fn track_duration(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().trim_start_matches("/api/v1/").to_string())
        .unwrap_or_else(|| "other".to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    m.durations.get_or_create(&HandlerLabels { handler }).observe(start.elapsed().as_secs_f64());
    if let Some(error::LimitHit(key)) = resp.extensions().get::<error::LimitHit>() {
        m.limit_rejections.get_or_create(&[("limit", *key)]).inc();
    }
    resp
}

/// Prometheus' CORS behaviour with the default origin regexp `.*`.
async fn cors(req: Request, next: Next) -> Response {
    let has_origin = req.headers().contains_key(header::ORIGIN);
    let mut resp =
        if req.method() == Method::OPTIONS { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = resp.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if has_origin {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Accept, Authorization, Content-Type, Origin"),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Date"));
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    resp
}
