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
use crate::api::SharedGroups;
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

/// The evaluation tasks of one set of rule groups.
struct Evaluation {
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// The running alerter.
pub struct Alerter {
    groups: SharedGroups,
    notifier: Notifier,
    /// The current evaluation tasks; the lock also serialises reloads.
    running: tokio::sync::Mutex<Evaluation>,
    ctx: Arc<EvalContext>,
    shutdown: CancellationToken,
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
            sinks.push(Arc::new(
                AlertmanagerSink::with_http(u, &config.alertmanager_http)
                    .map_err(|e| AlerterError::Http(e.to_string()))?,
            ));
        }
        sinks.extend(extra);
        let writer: Option<Arc<dyn SeriesWriter>> = if config.remote_write_url.is_empty() {
            None
        } else {
            Some(Arc::new(RemoteWriteClient::with_http(
                &config.remote_write_url,
                config.query_timeout,
                &config.remote_write_http,
            )?))
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
            query: Arc::new(HttpQueryClient::with_http(&config.query_url, config.query_timeout, &config.query_http)?),
            writer,
            sink: Arc::new(FanoutSink(sinks)),
            external_labels: config.external_labels.clone(),
            external_url: config.effective_external_url().to_string(),
            resend_delay: config.resend_delay,
            persist: Some(persist),
            metrics: Some(crate::eval::metrics::RuleMetrics::register(registry)),
        });
        let runtimes = Arc::new(runtimes);
        let running = spawn_groups(&runtimes, &ctx, &shutdown);
        tracing::info!(groups = runtimes.len(), files = files.len(), query_url = %config.query_url, "Alerter started.");
        Ok(Alerter {
            groups: Arc::new(parking_lot::RwLock::new(runtimes)),
            notifier,
            running: tokio::sync::Mutex::new(running),
            ctx,
            shutdown,
            db,
        })
    }

    /// Re-reads the rule files and the Alertmanager config of `config` and applies them, like
    /// Prometheus' and Alertmanager's reload: everything is loaded and validated first (a
    /// problem is returned and the running rules and routes stay), then the evaluation tasks are
    /// stopped, new groups take over the state of rules with the same group, name and labels
    /// (pending and firing alerts with their `activeAt`, health, series written for staleness,
    /// as Prometheus' `Group.CopyState`), and start. Silences, stored alerts and the
    /// notification log are kept. The query URL, remote_write URL, external labels and data
    /// directory need a restart.
    pub async fn reload(&self, config: AlerterConfig) -> Result<(), AlerterError> {
        config.validate()?;
        let files = rules::expand_globs(&config.rule_files)?;
        let groups = rules::load_files(&files, config.evaluation_interval)?;
        let am_cfg = match &config.alertmanager_config {
            Some(p) => amconfig::load(p)?,
            None => amconfig::AlertmanagerConfig::default(),
        };
        am_cfg.validate().map_err(NotifyError::from)?;
        let mut running = self.running.lock().await;
        self.notifier.reload(am_cfg)?;
        running.stop.cancel();
        running.tasks.close();
        running.tasks.wait().await;
        let old = self.groups.read().clone();
        let runtimes: Vec<Arc<GroupRuntime>> = groups
            .into_iter()
            .map(|g| {
                let rt = GroupRuntime::new(g);
                if let Some(prev) = old.iter().find(|o| o.group.file == rt.group.file && o.group.name == rt.group.name)
                {
                    copy_state(prev, &rt);
                }
                Arc::new(rt)
            })
            .collect();
        let runtimes = Arc::new(runtimes);
        *running = spawn_groups(&runtimes, &self.ctx, &self.shutdown);
        *self.groups.write() = runtimes.clone();
        tracing::info!(groups = runtimes.len(), files = files.len(), "Rules reloaded.");
        Ok(())
    }

    /// `/api/v1/rules`, `/api/v1/alerts` and the Alertmanager API v2.
    pub fn router(&self) -> axum::Router {
        crate::api::router_shared(self.groups.clone()).merge(self.notifier.router())
    }

    /// `/api/v1/rules` and `/api/v1/alerts` alone (the `read` auth group).
    pub fn read_router(&self) -> axum::Router {
        crate::api::router_shared(self.groups.clone())
    }

    /// The Alertmanager API v2 alone (the `alerting` auth group).
    pub fn alerting_router(&self) -> axum::Router {
        self.notifier.router()
    }

    /// The built-in notifier (e.g. to receive alerts from a real Prometheus).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// The loaded groups and their live state.
    pub fn groups(&self) -> Arc<Vec<Arc<GroupRuntime>>> {
        self.groups.read().clone()
    }

    /// Waits for every task to end after shutdown and flushes the database.
    pub async fn stopped(&self) {
        let tasks = self.running.lock().await.tasks.clone();
        tasks.wait().await;
        self.notifier.stopped().await;
        if let Err(e) = self.db.flush_async().await {
            tracing::warn!(error = %e, "Flushing the alerter database failed.");
        }
    }
}

/// Starts one evaluation task per group, stopped by a child of `shutdown`.
fn spawn_groups(groups: &[Arc<GroupRuntime>], ctx: &Arc<EvalContext>, shutdown: &CancellationToken) -> Evaluation {
    let stop = shutdown.child_token();
    let tasks = TaskTracker::new();
    for rt in groups {
        tasks.spawn(run_group(rt.clone(), ctx.clone(), stop.clone()));
    }
    tasks.close();
    Evaluation { stop, tasks }
}

/// The identity Prometheus uses to carry a rule's state across a reload: kind, name, labels.
fn rule_identity(r: &crate::rules::Rule) -> (bool, &str, &std::collections::BTreeMap<String, String>) {
    match r {
        crate::rules::Rule::Alerting(a) => (true, a.name.as_str(), &a.labels),
        crate::rules::Rule::Recording(x) => (false, x.name.as_str(), &x.labels),
    }
}

/// Copies rule and group state from `from` into the freshly built `to` (same file and name).
fn copy_state(from: &GroupRuntime, to: &GroupRuntime) {
    let src = from.status.lock();
    let mut dst = to.status.lock();
    dst.last_evaluation = src.last_evaluation;
    dst.evaluation_time = src.evaluation_time;
    dst.last_eval_ms = src.last_eval_ms;
    for (i, rule) in to.group.rules.iter().enumerate() {
        let id = rule_identity(rule);
        if let Some(j) = from.group.rules.iter().position(|r| rule_identity(r) == id) {
            dst.rules[i] = src.rules[j].clone();
        }
    }
}

#[cfg(test)]
#[path = "service/tests.rs"]
mod tests;
