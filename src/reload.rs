//! Configuration reload without a restart, like Prometheus' `POST|PUT /-/reload` and `SIGHUP`
//! (prometheus/prometheus `web/web.go` `reload`, `cmd/prometheus/main.go` `reloadConfig`):
//! the config file (and the rule files and Alertmanager config it names) is read again; on
//! success 200 with an empty body, on failure 500 `failed to reload config: <problem>` as plain
//! text, the old configuration staying active. `crowsnest_config_last_reload_successful` and
//! `crowsnest_config_last_reload_success_timestamp_seconds` mirror Prometheus'
//! `prometheus_config_last_reload_successful` / `..._success_timestamp_seconds`.
//!
//! What applies at runtime: the store's retention, out-of-order window, limits, query settings
//! and engine intervals; the alerter's rule files, evaluation interval and Alertmanager config
//! (alert state, silences and the notification log are kept). Everything else (listen address,
//! data directories, URLs, `store.admin_api_enabled`) needs a restart; a reload logs which of
//! the store's keys it kept.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use crowsnest_alerter::service::Alerter;
use crowsnest_store::http::ApiState as StoreState;
use crowsnest_wire::ops::SharedRegistry;
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Produces the effective configuration the way the running mode built it at startup.
pub type LoadConfig = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// The reload metrics.
#[derive(Clone, Default)]
struct ReloadMetrics {
    successful: Gauge,
    success_timestamp: Gauge<f64, AtomicU64>,
}

/// Re-reads the configuration and applies it to the components running in this process.
pub struct Reloader {
    load: LoadConfig,
    store: Option<StoreState>,
    alerter: Option<Arc<Alerter>>,
    metrics: ReloadMetrics,
    /// One reload at a time (HTTP and SIGHUP may race).
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for the given components; registers the reload gauges in `registry`, set as
    /// after a successful load (the startup load succeeded, as in Prometheus).
    pub fn new(
        load: LoadConfig,
        store: Option<StoreState>,
        alerter: Option<Arc<Alerter>>,
        registry: &SharedRegistry,
    ) -> Arc<Reloader> {
        let metrics = ReloadMetrics::default();
        {
            let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register(
                "crowsnest_config_last_reload_successful",
                "Whether the last configuration reload attempt was successful.",
                metrics.successful.clone(),
            );
            r.register(
                "crowsnest_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration reload.",
                metrics.success_timestamp.clone(),
            );
        }
        metrics.successful.set(1);
        metrics.success_timestamp.set(now_seconds());
        Arc::new(Reloader { load, store, alerter, metrics, lock: tokio::sync::Mutex::new(()) })
    }

    /// Reloads; on failure nothing changed and the error names the problem.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let _g = self.lock.lock().await;
        let result = self.apply().await;
        if let Some(s) = &self.store {
            s.record_reload(result.is_ok());
        }
        match &result {
            Ok(()) => {
                self.metrics.successful.set(1);
                self.metrics.success_timestamp.set(now_seconds());
                tracing::info!("Configuration reloaded.");
            }
            Err(e) => {
                self.metrics.successful.set(0);
                tracing::error!(error = format!("{e:#}"), "Reloading the configuration failed; the old one stays.");
            }
        }
        result
    }

    async fn apply(&self) -> anyhow::Result<()> {
        let cfg = (self.load)()?;
        // The alerter validates everything before it changes anything; the store's section was
        // validated with the file, so once the alerter has succeeded the store cannot fail.
        if let Some(a) = &self.alerter {
            a.reload(cfg.alerter.clone()).await?;
        }
        if let Some(s) = &self.store {
            let fixed = s.reload(cfg.store.clone())?;
            if !fixed.is_empty() {
                tracing::warn!(keys = ?fixed, "Changed settings need a restart; they keep their current values.");
            }
        }
        Ok(())
    }
}

fn now_seconds() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// `POST|PUT /-/reload`. Part of the admin route group (see `StoreService::admin_router`).
pub fn router(reloader: Arc<Reloader>) -> Router {
    Router::new().route("/-/reload", post(reload).put(reload)).with_state(reloader)
}

async fn reload(State(r): State<Arc<Reloader>>) -> Response {
    match r.reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("failed to reload config: {e:#}\n"),
        )
            .into_response(),
    }
}

/// Reloads on every SIGHUP until `shutdown`.
pub fn reload_on_sighup(reloader: Arc<Reloader>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGHUP; reload with POST /-/reload.");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP received, reloading the configuration.");
                    // The outcome is logged and in the gauges.
                    let _ = reloader.reload().await;
                }
            }
        }
    });
}
