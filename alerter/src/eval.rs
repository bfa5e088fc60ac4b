//! Rule group evaluation, Prometheus' `rules/group.go` + `rules/manager.go`: each group runs on
//! its own `interval` (groups concurrently, rules in a group sequentially at one timestamp),
//! queries a [`QueryClient`], advances alert state ([`crate::state`]), writes recording-rule
//! results and `ALERTS`/`ALERTS_FOR_STATE` through a [`SeriesWriter`] (with staleness markers for
//! series that ended), hands alerts to the [`AlertSink`], and records health for `/api/v1/rules`.

pub mod client;
pub mod metrics;
pub mod rule;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crowsnest_wire::{Label, Labels, Sample as WireSample, TimeSeries, stale_nan};
use parking_lot::Mutex;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::alert::{AlertSink, PostableAlert};
use crate::persist::StatePersist;
use crate::rules::{Group, Rule};
use crate::state::{self, RuleState, Timing, key_of};

pub use client::{EngineClient, HttpQueryClient, QueryClient, RemoteWriteClient, SeriesWriter};

/// Why a rule (or its outputs) failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EvalError {
    #[error("{0}")]
    Query(String),
    #[error("query request failed: {0}")]
    Http(String),
    #[error("remote write failed: {0}")]
    Write(String),
    #[error("{0}")]
    Rule(String),
}

/// Rule health as `/api/v1/rules` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// Mutable per-rule state.
#[derive(Debug, Clone)]
pub struct RuleRuntime {
    pub health: Health,
    pub last_error: String,
    pub last_evaluation: Option<DateTime<Utc>>,
    pub evaluation_time: Duration,
    /// Alert instances (alerting rules only).
    pub alerts: RuleState,
    /// Series written at the previous evaluation, to mark the ones that ended as stale.
    pub written: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for RuleRuntime {
    fn default() -> Self {
        RuleRuntime {
            health: Health::Unknown,
            last_error: String::new(),
            last_evaluation: None,
            evaluation_time: Duration::ZERO,
            alerts: RuleState::default(),
            written: BTreeMap::new(),
        }
    }
}

/// Mutable per-group state.
#[derive(Debug, Clone, Default)]
pub struct GroupStatus {
    pub rules: Vec<RuleRuntime>,
    pub last_evaluation: Option<DateTime<Utc>>,
    pub evaluation_time: Duration,
    /// Unix ms of the last evaluation (persisted as the restore reference).
    pub last_eval_ms: Option<i64>,
}

/// A group and its state; shared by the evaluation task and the API.
#[derive(Debug)]
pub struct GroupRuntime {
    pub group: Group,
    pub status: Mutex<GroupStatus>,
}

impl GroupRuntime {
    pub fn new(group: Group) -> Self {
        let rules = vec![RuleRuntime::default(); group.rules.len()];
        GroupRuntime { group, status: Mutex::new(GroupStatus { rules, ..Default::default() }) }
    }
}

/// Everything a group evaluation talks to.
pub struct EvalContext {
    pub query: Arc<dyn QueryClient>,
    pub writer: Option<Arc<dyn SeriesWriter>>,
    pub sink: Arc<dyn AlertSink>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub resend_delay: Duration,
    pub persist: Option<StatePersist>,
    pub metrics: Option<metrics::RuleMetrics>,
}

fn to_series(labels: &BTreeMap<String, String>, v: f64, ts: i64) -> TimeSeries {
    let l = Labels::from_vec(labels.iter().map(|(k, v)| Label::new(k.clone(), v.clone())).collect());
    TimeSeries { labels: l.into_vec(), samples: vec![WireSample::new(ts, v)] }
}

/// Records `now_series` as this rule's output and returns it plus staleness markers for the
/// series written last time but not now.
fn with_staleness(rr: &mut RuleRuntime, now_series: Vec<(BTreeMap<String, String>, f64)>, ts: i64) -> Vec<TimeSeries> {
    let mut next = BTreeMap::new();
    let mut out = Vec::with_capacity(now_series.len());
    for (l, v) in now_series {
        out.push(to_series(&l, v, ts));
        next.insert(key_of(&l), l);
    }
    for (k, l) in &rr.written {
        if !next.contains_key(k) {
            out.push(to_series(l, stale_nan(), ts));
        }
    }
    rr.written = next;
    out
}

fn with_external_labels(mut a: PostableAlert, ext: &BTreeMap<String, String>) -> PostableAlert {
    for (k, v) in ext {
        a.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    a
}

/// Evaluates every rule of the group once at `ts_ms` (Unix ms), then writes, sends and persists.
pub async fn eval_group(g: &GroupRuntime, ctx: &EvalContext, ts_ms: i64) {
    let started = Instant::now();
    let mut alerts = Vec::new();
    let mut failures = 0u64;
    let interval_ms = g.group.interval.as_millis() as i64;
    for (i, rule) in g.group.rules.iter().enumerate() {
        let rule_started = Instant::now();
        let result = ctx.query.query(rule.expr(), ts_ms).await;
        let mut series = Vec::new();
        {
            let mut st = g.status.lock();
            let rr = &mut st.rules[i];
            let outcome: Result<(), EvalError> = match (rule, result) {
                (_, Err(e)) => Err(e),
                (Rule::Recording(r), Ok(samples)) => match rule::recording_output(r, samples, g.group.limit) {
                    Ok(out) => {
                        series.extend(with_staleness(rr, out, ts_ms));
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                (Rule::Alerting(r), Ok(samples)) => {
                    let actx =
                        rule::AlertContext { external_labels: &ctx.external_labels, external_url: &ctx.external_url };
                    let elements = rule::alert_elements(r, samples, actx);
                    let timing = Timing {
                        for_ms: r.for_.as_millis() as i64,
                        keep_firing_for_ms: r.keep_firing_for.as_millis() as i64,
                        limit: g.group.limit,
                    };
                    let (next, err) = state::step(&rr.alerts, elements, ts_ms, timing);
                    rr.alerts = next;
                    let url = rule::generator_url(&ctx.external_url, &r.expr);
                    let sendable = state::take_sendable(
                        &mut rr.alerts,
                        ts_ms,
                        ctx.resend_delay.as_millis() as i64,
                        interval_ms,
                        &url,
                    );
                    alerts.extend(sendable.into_iter().map(|a| with_external_labels(a, &ctx.external_labels)));
                    series.extend(with_staleness(rr, state::synthetic_series(&rr.alerts), ts_ms));
                    err.map_or(Ok(()), |e| Err(EvalError::Rule(e.to_string())))
                }
            };
            match outcome {
                Ok(()) => {
                    rr.health = Health::Ok;
                    rr.last_error.clear();
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(group = %g.group.name, rule = rule.name(), error = %e, "Rule evaluation failed.");
                    rr.health = Health::Err;
                    rr.last_error = e.to_string();
                }
            }
            rr.last_evaluation = DateTime::from_timestamp_millis(ts_ms);
            rr.evaluation_time = rule_started.elapsed();
        }
        // Written per rule, so later rules of the group see this rule's output (Prometheus
        // commits each rule's samples before evaluating the next).
        if let (Some(w), false) = (&ctx.writer, series.is_empty())
            && let Err(e) = w.write(series).await
        {
            tracing::warn!(group = %g.group.name, rule = rule.name(), error = %e, "Writing rule results failed.");
        }
    }
    let snapshot = {
        let mut st = g.status.lock();
        st.last_evaluation = DateTime::from_timestamp_millis(ts_ms);
        st.last_eval_ms = Some(ts_ms);
        st.evaluation_time = started.elapsed();
        ctx.persist.as_ref().map(|_| st.clone())
    };
    if let Some(m) = &ctx.metrics {
        let l = metrics::group_labels(&g.group.file, &g.group.name);
        m.evaluations.get_or_create(&l).inc_by(g.group.rules.len() as u64);
        m.evaluation_failures.get_or_create(&l).inc_by(failures);
        m.last_duration_seconds.get_or_create(&l).set(started.elapsed().as_secs_f64());
        m.last_evaluation_timestamp_seconds.get_or_create(&l).set(ts_ms as f64 / 1000.0);
        m.alerts_sent.inc_by(alerts.len() as u64);
    }
    if !alerts.is_empty() {
        ctx.sink.send(alerts).await;
    }
    if let (Some(p), Some(snap)) = (&ctx.persist, snapshot)
        && let Err(e) = p.save_group(&g.group, &snap).await
    {
        tracing::warn!(group = %g.group.name, error = %e, "Persisting alert state failed.");
    }
}

/// Runs a group every `interval` until `shutdown`; iterations that overrun are skipped.
pub async fn run_group(g: Arc<GroupRuntime>, ctx: Arc<EvalContext>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(g.group.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let ts = Utc::now().timestamp_millis() - g.group.query_offset.as_millis() as i64;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = eval_group(&g, &ctx, ts) => {}
        }
    }
    // Keep what the last (possibly interrupted) evaluation changed.
    if let Some(p) = &ctx.persist {
        let snap = g.status.lock().clone();
        if let Err(e) = p.save_group(&g.group, &snap).await {
            tracing::warn!(group = %g.group.name, error = %e, "Persisting alert state at shutdown failed.");
        }
    }
    tracing::debug!(group = %g.group.name, "Rule group stopped.");
}

#[cfg(test)]
#[path = "eval/tests.rs"]
mod tests;
