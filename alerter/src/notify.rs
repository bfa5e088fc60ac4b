//! The notification half of the alerter: an Alertmanager-compatible pipeline (alert store,
//! routing tree, aggregation groups, inhibition, silences, notification log, Slack and e-mail
//! delivery with retries) and Alertmanager's API v2. Follows Alertmanager's architecture
//! (<https://github.com/prometheus/alertmanager/blob/main/doc/arch.svg>).
//!
//! Deliberate differences from Alertmanager, each answering a recurring complaint:
//! - `send_resolved` defaults to true for Slack and e-mail (alertmanager#630).
//! - Slack 429 is retried after `Retry-After`, and each webhook is held to ~1 message/s
//!   (alertmanager#2111, #2205); attempt series are bounded by `max(group_interval, 10s)`.
//! - Alerts, silences and the notification log live in one sled tree, so a restart neither
//!   re-sends what was delivered nor forgets what was pending.
//! - Not implemented: clustering/gossip, `time_intervals`, integrations other than Slack, e-mail
//!   and webhook, Slack `app_token`/`chat.postMessage`, `http_config`. Unknown keys are config errors.

pub mod amconfig;
pub mod api_v2;
pub mod dispatch;
pub mod email;
pub mod inhibit;
pub mod matchers;
pub mod metrics;
pub mod nflog;
pub mod pipeline;
pub mod preview;
pub mod retry;
pub mod route;
pub mod silence;
pub mod slack;
pub mod store;
pub mod template;
pub mod types;
pub mod webhook;

use thiserror::Error;

/// Errors of the notification pipeline and its API.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("config: {0}")]
    Config(#[from] amconfig::ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("{0}")]
    Template(#[from] template::TemplateError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("internal: {0}")]
    Internal(String),
}

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crowsnest_wire::ops::SharedRegistry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{AlertSink, PostableAlert};
pub use amconfig::{AlertmanagerConfig, load};

/// How often gauges are refreshed and stored state garbage-collected.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
const GC_EVERY_TICKS: u32 = 60;
/// Resolved alerts stay in the store (and so across restarts) at least this long.
const MIN_ALERT_RETENTION: Duration = Duration::from_secs(3600);

pub(crate) struct Shared {
    pub cfg: AlertmanagerConfig,
    pub pipeline: Arc<pipeline::Pipeline>,
    pub dispatcher: dispatch::Dispatcher,
    pub started: DateTime<Utc>,
    /// Stops this configuration's dispatcher and deliveries when a reload replaces it.
    pub stop: CancellationToken,
}

/// The running notification pipeline: feed it alerts through [`AlertSink`] or the API v2
/// router; it groups, mutes, deduplicates and delivers them.
#[derive(Clone)]
pub struct Notifier {
    /// The current configuration's pipeline; replaced whole by [`Notifier::reload`].
    shared: Arc<parking_lot::RwLock<Arc<Shared>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Notifier {
    /// Builds the pipeline from a validated config, reloads alerts, silences and the
    /// notification log from `tree`, and starts the group and maintenance tasks (needs a Tokio
    /// runtime). Tasks stop when `shutdown` is cancelled; await [`Notifier::stopped`] after that.
    pub fn start(
        cfg: AlertmanagerConfig,
        tree: sled::Tree,
        registry: &SharedRegistry,
        shutdown: CancellationToken,
    ) -> Result<Notifier, NotifyError> {
        cfg.validate()?;
        let route = route::Route::compile(&cfg.route)?;
        let inhibitor = inhibit::Inhibitor::compile(&cfg.inhibit_rules)?;
        let templates = template::Templates::load(&template_paths(&cfg)?)?;
        let metrics = metrics::Metrics::new();
        metrics.register(registry);
        let store = store::AlertStore::open(tree.clone())?;
        let stop = shutdown.child_token();
        let pipeline = Arc::new(pipeline::Pipeline {
            receivers: pipeline::build_receivers(&cfg),
            templates,
            silences: silence::Silences::open(tree.clone())?,
            inhibitor,
            store: store.clone(),
            nflog: nflog::NotificationLog::open(tree)?,
            metrics,
            external_url: cfg.global.external_url.clone(),
            shutdown: stop.clone(),
            policy: retry::RetryPolicy::default(),
        });
        let tracker = TaskTracker::new();
        let dispatcher = dispatch::Dispatcher::new(route, pipeline.clone(), stop.clone(), tracker.clone());
        let restored = store.list();
        if !restored.is_empty() {
            tracing::info!(alerts = restored.len(), "Restored alerts from the previous run.");
        }
        dispatcher.insert(&restored);
        let shared = Arc::new(Shared { cfg, pipeline, dispatcher, started: Utc::now(), stop });
        tracker.spawn(maintenance(shared.clone(), shutdown.clone()));
        tracker.close();
        Ok(Notifier { shared: Arc::new(parking_lot::RwLock::new(shared)), tracker, shutdown })
    }

    /// Applies a new Alertmanager configuration (routes, receivers, inhibit rules, templates)
    /// like Alertmanager's reload: the new config is fully built first (an invalid one is
    /// refused and the old stays), then the dispatcher is replaced and every stored alert is
    /// handed to the new one. Alerts, silences and the notification log are kept, so nothing
    /// already delivered is sent again and silences keep muting.
    pub fn reload(&self, cfg: AlertmanagerConfig) -> Result<(), NotifyError> {
        cfg.validate()?;
        let route = route::Route::compile(&cfg.route)?;
        let inhibitor = inhibit::Inhibitor::compile(&cfg.inhibit_rules)?;
        let templates = template::Templates::load(&template_paths(&cfg)?)?;
        let old = self.shared();
        let stop = self.shutdown.child_token();
        let pipeline = Arc::new(pipeline::Pipeline {
            receivers: pipeline::build_receivers(&cfg),
            templates,
            silences: old.pipeline.silences.clone(),
            inhibitor,
            store: old.pipeline.store.clone(),
            nflog: old.pipeline.nflog.clone(),
            metrics: old.pipeline.metrics.clone(),
            external_url: cfg.global.external_url.clone(),
            shutdown: stop.clone(),
            policy: retry::RetryPolicy::default(),
        });
        let dispatcher = dispatch::Dispatcher::new(route, pipeline.clone(), stop.clone(), self.tracker.clone());
        let new = Arc::new(Shared { cfg, pipeline, dispatcher, started: old.started, stop });
        *self.shared.write() = new.clone();
        old.stop.cancel();
        new.dispatcher.insert(&new.pipeline.store.list());
        tracing::info!(receivers = new.cfg.receivers.len(), "Alertmanager configuration reloaded.");
        Ok(())
    }

    /// Validates and ingests posted alerts (what `POST /api/v2/alerts` does).
    pub async fn receive(&self, posted: Vec<PostableAlert>) -> Result<(), NotifyError> {
        let now = Utc::now();
        let shared = self.shared();
        let p = &shared.pipeline;
        let mut alerts = Vec::with_capacity(posted.len());
        let mut errors = Vec::new();
        for pa in posted {
            let a = types::Alert::from_postable(pa, now, shared.cfg.global.resolve_timeout);
            match a.validate() {
                Ok(()) => {
                    let status = if a.is_resolved_at(now) { "resolved" } else { "firing" };
                    p.metrics
                        .alerts_received
                        .get_or_create(&metrics::StatusLabels { status: status.to_string() })
                        .inc();
                    alerts.push(a);
                }
                Err(e) => {
                    p.metrics.alerts_invalid.inc();
                    errors.push(format!("{}: {e}", types::format_labels(&a.labels)));
                }
            }
        }
        let stored = p.store.put(alerts).await?;
        shared.dispatcher.insert(&stored);
        if errors.is_empty() { Ok(()) } else { Err(NotifyError::BadRequest(errors.join("; "))) }
    }

    /// Alertmanager API v2 routes (`/api/v2/...`), to merge into the alerter's router.
    pub fn router(&self) -> axum::Router {
        api_v2::router(self.clone())
    }

    /// Resolves when every task has ended (after the shutdown token was cancelled).
    pub async fn stopped(&self) {
        self.tracker.wait().await;
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.read().clone()
    }
}

#[async_trait]
impl AlertSink for Notifier {
    async fn send(&self, alerts: Vec<PostableAlert>) {
        if let Err(e) = self.receive(alerts).await {
            tracing::warn!(error = %e, "Some alerts from rule evaluation were rejected.");
        }
    }
}

fn template_paths(cfg: &AlertmanagerConfig) -> Result<Vec<std::path::PathBuf>, NotifyError> {
    let mut out = Vec::new();
    for pattern in &cfg.templates {
        let full = cfg.resolve_path(pattern);
        let paths = glob::glob(&full.to_string_lossy())
            .map_err(|e| amconfig::ConfigError::Invalid(format!("templates: bad glob {pattern:?}: {e}")))?;
        for p in paths.flatten() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

async fn maintenance(shared: Arc<Shared>, shutdown: CancellationToken) {
    let p = &shared.pipeline;
    let max_interval =
        shared.dispatcher.route().all().iter().map(|o| o.group_interval + o.group_wait).max().unwrap_or_default();
    let retention = MIN_ALERT_RETENTION.max(max_interval * 3);
    let mut tick = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = Utc::now();
        for (state, n) in p.silences.count_by_state(now) {
            p.metrics.silences.get_or_create(&metrics::StateLabels { state: state.as_str().to_string() }).set(n);
        }
        p.metrics.alerts.set(i64::try_from(p.store.len()).unwrap_or(i64::MAX));
        tick += 1;
        if tick.is_multiple_of(GC_EVERY_TICKS) {
            let results = (p.store.gc(now, retention).await, p.silences.gc(now).await, p.nflog.gc(now).await);
            if let (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) = results {
                tracing::warn!(error = %e, "Garbage collection of notifier state failed.");
            }
        }
    }
}
