//! The operational endpoints every Crowsnest component serves: `/metrics` (prometheus-client's
//! OpenMetrics text), `/healthz` (the process is alive and serving) and `/ready` (start-up work such
//! as WAL replay is finished). Docker HEALTHCHECKs and orchestrators probe these; `crowsnest
//! healthcheck URL` is the curl-less client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

/// OpenMetrics content type that prometheus-client's text encoder produces.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A shared "ready" flag: false until start-up work is done, false again while shutting down.
#[derive(Clone, Default, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new(ready: bool) -> Self {
        Readiness(Arc::new(AtomicBool::new(ready)))
    }
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The metric registry shared by everything in one process. Each component registers its metrics
/// under its own prefix (`crowsnest_store_`, `crowsnest_collector_`, ...).
pub type SharedRegistry = Arc<Mutex<Registry>>;

/// A fresh shared registry.
pub fn new_registry() -> SharedRegistry {
    Arc::new(Mutex::new(Registry::default()))
}

/// Router with `/metrics`, `/healthz` and `/ready`; merge it into a component's router.
pub fn router(registry: SharedRegistry, ready: Readiness) -> Router {
    metrics_router(registry).merge(health_router(ready))
}

/// `/metrics` alone: it reveals what runs and where, so listeners put it behind read credentials.
pub fn metrics_router(registry: SharedRegistry) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(registry)
}

/// `/healthz`, `/ready` and their `/-/` aliases: never authenticated, since Docker HEALTHCHECKs
/// and orchestrator probes carry no credentials.
pub fn health_router(ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/-/healthy", get(healthz))
        .route("/ready", get(ready_handler))
        .route("/-/ready", get(ready_handler))
        .with_state(ready)
}

/// Encodes the registry as OpenMetrics text.
pub fn encode_metrics(registry: &SharedRegistry) -> String {
    let mut out = String::new();
    let reg = registry.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
        tracing::error!(error = %e, "Encoding metrics failed.");
    }
    tidy_help(out)
}

/// prometheus-client appends a period to every HELP text, and our help texts are full sentences
/// that already end with one: drop the doubled period so `# HELP` reads like Prometheus' own.
fn tidy_help(text: String) -> String {
    if !text.contains("..\n") {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        match line.strip_suffix("..\n") {
            Some(head) if line.starts_with("# HELP ") => {
                out.push_str(head);
                out.push_str(".\n");
            }
            _ => out.push_str(line),
        }
    }
    out
}

async fn metrics(State(registry): State<SharedRegistry>) -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], encode_metrics(&registry)).into_response()
}

async fn healthz() -> &'static str {
    "OK\n"
}

async fn ready_handler(State(ready): State<Readiness>) -> Response {
    if ready.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    #[tokio::test]
    async fn ready_flips_and_metrics_encode() {
        let reg = new_registry();
        let c: Counter = Counter::default();
        reg.lock().unwrap().register("crowsnest_test_things", "Things counted.", c.clone());
        c.inc();
        let ready = Readiness::new(false);
        let app = router(reg, ready.clone());
        let r = app.clone().oneshot(Request::get("/ready").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        ready.set(true);
        let r = app.clone().oneshot(Request::get("/ready").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("crowsnest_test_things_total 1"), "{text}");
        assert!(text.contains("# HELP crowsnest_test_things Things counted.\n"), "{text}");
    }
}
