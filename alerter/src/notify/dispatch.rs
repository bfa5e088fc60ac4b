//! The dispatcher: routes each incoming alert into aggregation groups (one per route and
//! `group_by` label values) and runs one task per group that flushes it through the pipeline
//! after `group_wait`, then every `group_interval` while it holds alerts. Semantics of
//! Alertmanager's `dispatch/dispatch.go` (`aggrGroup`): resolved alerts leave a group only after a
//! successful flush, an empty group ends, and `repeat_interval` is enforced by the dedup stage.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pipeline::Pipeline;
use super::route::{Route, RouteOpts};
use super::types::{Alert, LabelSet, format_labels};

/// One aggregation group.
pub struct Group {
    pub key: String,
    pub labels: LabelSet,
    pub opts: Arc<RouteOpts>,
    alerts: Mutex<HashMap<u64, Alert>>,
}

impl Group {
    /// The group's current alerts.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.alerts.lock().values().cloned().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }
}

struct Inner {
    route: Route,
    pipeline: Arc<Pipeline>,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Routes alerts into groups and drives their flushes; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl Dispatcher {
    pub fn new(route: Route, pipeline: Arc<Pipeline>, shutdown: CancellationToken, tracker: TaskTracker) -> Dispatcher {
        Dispatcher { inner: Arc::new(Inner { route, pipeline, groups: Mutex::new(HashMap::new()), shutdown, tracker }) }
    }

    pub fn route(&self) -> &Route {
        &self.inner.route
    }

    /// Puts alerts (as stored, i.e. merged) into every group their labels route to.
    pub fn insert(&self, alerts: &[Alert]) {
        for alert in alerts {
            let fp = alert.fingerprint();
            for opts in self.inner.route.matching(&alert.labels) {
                let labels = opts.group_labels(&alert.labels);
                let key = format!("{}:{}", opts.id, format_labels(&labels));
                let mut groups = self.inner.groups.lock();
                let group = groups.entry(key.clone()).or_insert_with(|| {
                    let g = Arc::new(Group { key, labels, opts: opts.clone(), alerts: Mutex::new(HashMap::new()) });
                    if !self.inner.shutdown.is_cancelled() {
                        self.inner.tracker.spawn(run_group(self.inner.clone(), g.clone()));
                    }
                    g
                });
                group.alerts.lock().insert(fp, alert.clone());
            }
        }
        self.inner
            .pipeline
            .metrics
            .aggregation_groups
            .set(i64::try_from(self.inner.groups.lock().len()).unwrap_or(i64::MAX));
    }

    /// A snapshot of the live groups, sorted by key.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<Arc<Group>> = self.inner.groups.lock().values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }
}

async fn run_group(inner: Arc<Inner>, group: Arc<Group>) {
    tracing::debug!(group = %group.key, receiver = %group.opts.receiver, "Aggregation group created.");
    let mut wait = group.opts.group_wait;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.shutdown.cancelled() => return,
        }
        wait = group.opts.group_interval;
        let snapshot = group.alerts();
        let now = Utc::now();
        let done = inner.pipeline.flush(&group.key, &group.labels, &group.opts, snapshot.clone(), now).await;
        let mut groups = inner.groups.lock();
        let mut alerts = group.alerts.lock();
        if done {
            // Resolved alerts that were part of this flush and did not change since leave the group.
            for a in snapshot.iter().filter(|a| a.is_resolved_at(now)) {
                let fp = a.fingerprint();
                if alerts.get(&fp).is_some_and(|cur| cur == a) {
                    alerts.remove(&fp);
                }
            }
        }
        if alerts.is_empty() {
            groups.remove(&group.key);
            inner.pipeline.metrics.aggregation_groups.set(i64::try_from(groups.len()).unwrap_or(i64::MAX));
            tracing::debug!(group = %group.key, "Aggregation group empty; removed.");
            return;
        }
    }
}
