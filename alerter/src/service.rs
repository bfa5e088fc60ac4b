//! Assembly of the alerter: validated config → rule groups (restored from sled) → one evaluation
//! task per group → alerts to the built-in [`Notifier`] and any external Alertmanagers; the
//! router serves `/api/v1/rules`, `/api/v1/alerts` and the notifier's Alertmanager API v2.
//! One sled database under `data_dir` holds both halves' state (separate trees).

use std::sync::Arc;

use chrono::Utc;
use crowsnest_wire::ops::SharedRegistry;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::AlertSink;
use crate::config::{AlerterConfig, ConfigError};
use crate::eval::sink::{AlertmanagerSink, FanoutSink};
use crate::eval::{EvalContext, EvalError, GroupRuntime, HttpQueryClient, RemoteWriteClient, SeriesWriter, run_group};
use crate::notify::{Notifier, NotifyError, amconfig};
use crate::persist::{PersistError, RestoreOptions, StatePersist};
use crate::rules::{self, Problem};

/// sled tree names.
pub mod trees {
    pub const RULE_STATE: &str = "rules_state";
    pub const NOTIFY: &str = "notify";
}

/// Why the alerter could not start.
#[derive(Debug, Error)]
pub enum AlerterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("rule files have problems:\n{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<Problem>),
    #[error("alertmanager config: {0}")]
    AlertmanagerConfig(#[from] amconfig::ConfigError),
    #[error("notifier: {0}")]
    Notify(#[from] NotifyError),
    #[error("data dir: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] sled::Error),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("restoring alert state: {0}")]
    Persist(#[from] PersistError),
    #[error("alertmanager url: {0}")]
    Http(String),
}

impl From<Vec<Problem>> for AlerterError {
    fn from(p: Vec<Problem>) -> Self {
        AlerterError::Rules(p)
    }
}

/// The running alerter.
pub struct Alerter {
    groups: Arc<Vec<Arc<GroupRuntime>>>,
    notifier: Notifier,
    tracker: TaskTracker,
    db: sled::Db,
}

impl Alerter {
    /// Starts everything; evaluation tasks stop when `shutdown` is cancelled.
    pub async fn start(
        config: AlerterConfig,
        registry: &SharedRegistry,
        shutdown: CancellationToken,
    ) -> Result<Alerter, AlerterError> {
        Self::start_with_sinks(config, registry, shutdown, Vec::new()).await
    }

    /// Like [`Alerter::start`], also handing every alert batch to `extra` sinks (tests, embedding).
    pub async fn start_with_sinks(
        config: AlerterConfig,
        registry: &SharedRegistry,
        shutdown: CancellationToken,
        extra: Vec<Arc<dyn AlertSink>>,
    ) -> Result<Alerter, AlerterError> {
        config.validate()?;
        let files = rules::expand_globs(&config.rule_files)?;
        let groups = rules::load_files_limited(&files, config.evaluation_interval, config.max_rules_per_group)?;
        let am_cfg = match &config.alertmanager_config {
            Some(p) => amconfig::load(p)?,
            None => amconfig::AlertmanagerConfig::default(),
        };
        let dir = config.data_dir.clone();
        let db = tokio::task::spawn_blocking(move || -> Result<sled::Db, AlerterError> {
            std::fs::create_dir_all(&dir)?;
            Ok(sled::open(dir.join("alerter.sled"))?)
        })
        .await
        .map_err(|e| AlerterError::Io(std::io::Error::other(e.to_string())))??;
        let notifier = Notifier::start(am_cfg, db.open_tree(trees::NOTIFY)?, registry, shutdown.clone())?;

        let mut sinks: Vec<Arc<dyn AlertSink>> = vec![Arc::new(notifier.clone())];
        for u in &config.alertmanager_urls {
            sinks.push(Arc::new(AlertmanagerSink::new(u).map_err(|e| AlerterError::Http(e.to_string()))?));
        }
        sinks.extend(extra);
        let writer: Option<Arc<dyn SeriesWriter>> = if config.remote_write_url.is_empty() {
            None
        } else {
            Some(Arc::new(RemoteWriteClient::new(&config.remote_write_url, config.query_timeout)?))
        };
        let persist = StatePersist::new(db.open_tree(trees::RULE_STATE)?);
        let now = Utc::now().timestamp_millis();
        let opts = RestoreOptions {
            outage_tolerance_ms: config.for_outage_tolerance.as_millis() as i64,
            grace_ms: config.for_grace_period.as_millis() as i64,
        };
        let mut runtimes = Vec::with_capacity(groups.len());
        for g in groups {
            let rt = GroupRuntime::new(g);
            let n = persist.restore_group(&rt, now, opts)?;
            if n > 0 {
                tracing::info!(group = %rt.group.name, alerts = n, "Restored alert state.");
            }
            runtimes.push(Arc::new(rt));
        }
        let ctx = Arc::new(EvalContext {
            query: Arc::new(HttpQueryClient::new(&config.query_url, config.query_timeout)?),
            writer,
            sink: Arc::new(FanoutSink(sinks)),
            external_labels: config.external_labels.clone(),
            external_url: config.effective_external_url().to_string(),
            resend_delay: config.resend_delay,
            persist: Some(persist),
            metrics: Some(crate::eval::metrics::RuleMetrics::register(registry)),
        });
        let tracker = TaskTracker::new();
        for rt in &runtimes {
            tracker.spawn(run_group(rt.clone(), ctx.clone(), shutdown.clone()));
        }
        tracker.close();
        tracing::info!(groups = runtimes.len(), files = files.len(), query_url = %config.query_url, "Alerter started.");
        Ok(Alerter { groups: Arc::new(runtimes), notifier, tracker, db })
    }

    /// `/api/v1/rules`, `/api/v1/alerts` and the Alertmanager API v2.
    pub fn router(&self) -> axum::Router {
        crate::api::router(self.groups.clone()).merge(self.notifier.router())
    }

    /// The built-in notifier (e.g. to receive alerts from a real Prometheus).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// The loaded groups and their live state.
    pub fn groups(&self) -> &Arc<Vec<Arc<GroupRuntime>>> {
        &self.groups
    }

    /// Waits for every task to end after shutdown and flushes the database.
    pub async fn stopped(&self) {
        self.tracker.wait().await;
        self.notifier.stopped().await;
        if let Err(e) = self.db.flush_async().await {
            tracing::warn!(error = %e, "Flushing the alerter database failed.");
        }
    }
}

#[cfg(test)]
#[path = "service/tests.rs"]
mod tests;
