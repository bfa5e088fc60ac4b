//! The alert state machine of one alerting rule, as a pure function of (state, query result,
//! now): Prometheus' `AlertingRule.Eval` and `sendAlerts`/`needsSending` in `rules/alerting.go`.
//! inactive → pending (new element) → firing (`for` elapsed) → inactive/resolved (element gone,
//! after `keep_firing_for`); resolved alerts are kept 15 minutes so the resolution is delivered.
//! Also the synthetic `ALERTS`/`ALERTS_FOR_STATE` samples and restart restoration
//! (`--rules.alert.for-outage-tolerance`, `--rules.alert.for-grace-period`).

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::alert::PostableAlert;

/// How long resolved alerts are kept and re-sent (Prometheus' `resolvedRetention`).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// State of one alert instance (`rules.AlertState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert instance; times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Final labels: element labels without `__name__`, plus rule labels and `alertname`.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(with = "crate::persist::float")]
    pub value: f64,
    pub state: AlertState,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: Option<i64>,
    pub keep_firing_since: Option<i64>,
}

/// One element of the rule's query result after label/annotation templating.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
}

/// The rule's parameters that drive transitions (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    /// Max pending+firing alerts; 0 = unlimited.
    pub limit: usize,
}

/// All alert instances of one rule, keyed by their canonical label string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    pub alerts: BTreeMap<String, Alert>,
}

/// Why an evaluation step failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StepError {
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateLabelset,
    #[error("exceeded limit of {limit} with {count} alerts")]
    Limit { limit: usize, count: usize },
}

/// Canonical identity of a label set.
pub fn key_of(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    for (k, v) in labels {
        s.push_str(k);
        s.push('\u{1}');
        s.push_str(v);
        s.push('\u{2}');
    }
    s
}

/// One evaluation: returns the next state. On a duplicate label set the state is unchanged; on
/// exceeding the limit all alerts are dropped (both as Prometheus does), and the error is returned.
pub fn step(prev: &RuleState, elements: Vec<Element>, now: i64, t: Timing) -> (RuleState, Option<StepError>) {
    let mut fresh: BTreeMap<String, Element> = BTreeMap::new();
    for e in elements {
        if fresh.insert(key_of(&e.labels), e).is_some() {
            return (prev.clone(), Some(StepError::DuplicateLabelset));
        }
    }
    let mut next = RuleState::default();
    for (k, e) in &fresh {
        match prev.alerts.get(k) {
            Some(a) if a.state != AlertState::Inactive => {
                let mut a = a.clone();
                a.value = e.value;
                a.annotations = e.annotations.clone();
                a.keep_firing_since = None;
                next.alerts.insert(k.clone(), a);
            }
            _ => {
                next.alerts.insert(
                    k.clone(),
                    Alert {
                        labels: e.labels.clone(),
                        annotations: e.annotations.clone(),
                        value: e.value,
                        state: AlertState::Pending,
                        active_at: now,
                        fired_at: None,
                        resolved_at: None,
                        last_sent_at: None,
                        valid_until: None,
                        keep_firing_since: None,
                    },
                );
            }
        }
    }
    for (k, a) in &prev.alerts {
        if fresh.contains_key(k) {
            continue;
        }
        let mut a = a.clone();
        match a.state {
            AlertState::Pending => continue,
            AlertState::Inactive => {
                if a.resolved_at.is_some_and(|r| now - r <= RESOLVED_RETENTION_MS) {
                    next.alerts.insert(k.clone(), a);
                }
            }
            AlertState::Firing => {
                if t.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(now);
                    if now - since < t.keep_firing_for_ms {
                        next.alerts.insert(k.clone(), a);
                        continue;
                    }
                }
                a.state = AlertState::Inactive;
                a.resolved_at = Some(now);
                next.alerts.insert(k.clone(), a);
            }
        }
    }
    let mut active = 0;
    for a in next.alerts.values_mut() {
        if a.state == AlertState::Pending && now - a.active_at >= t.for_ms {
            a.state = AlertState::Firing;
            a.fired_at = Some(now);
        }
        if a.state != AlertState::Inactive {
            active += 1;
        }
    }
    if t.limit > 0 && active > t.limit {
        return (RuleState::default(), Some(StepError::Limit { limit: t.limit, count: active }));
    }
    (next, None)
}

/// Prometheus' `needsSending`: never pending; resolved since the last send; or due for resend.
fn needs_sending(a: &Alert, now: i64, resend_delay_ms: i64) -> bool {
    match a.state {
        AlertState::Pending => false,
        _ if a.resolved_at.is_some_and(|r| a.last_sent_at.is_none_or(|s| r > s)) => true,
        AlertState::Inactive => false,
        AlertState::Firing => a.last_sent_at.is_none_or(|s| s + resend_delay_ms < now),
    }
}

/// Picks the alerts to hand to Alertmanager now and marks them sent. Firing alerts carry
/// `endsAt = now + 4 × max(eval interval, resend delay)` so a dead alerter's alerts expire.
pub fn take_sendable(
    state: &mut RuleState,
    now: i64,
    resend_delay_ms: i64,
    eval_interval_ms: i64,
    generator_url: &str,
) -> Vec<PostableAlert> {
    let mut out = Vec::new();
    for a in state.alerts.values_mut() {
        if !needs_sending(a, now, resend_delay_ms) {
            continue;
        }
        if a.state == AlertState::Firing {
            a.valid_until = Some(now + 4 * resend_delay_ms.max(eval_interval_ms));
        }
        a.last_sent_at = Some(now);
        let ends = a.resolved_at.or(a.valid_until);
        out.push(PostableAlert {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: DateTime::from_timestamp_millis(a.fired_at.unwrap_or(a.active_at)),
            ends_at: ends.and_then(DateTime::from_timestamp_millis),
            generator_url: generator_url.to_string(),
        });
    }
    out
}

/// The `ALERTS` and `ALERTS_FOR_STATE` samples (labels incl. `__name__`, value) for pending and
/// firing alerts at this evaluation.
pub fn synthetic_series(state: &RuleState) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for a in state.alerts.values().filter(|a| a.state != AlertState::Inactive) {
        let mut l = a.labels.clone();
        l.insert("__name__".into(), "ALERTS".into());
        l.insert("alertstate".into(), a.state.as_str().into());
        out.push((l, 1.0));
        let mut f = a.labels.clone();
        f.insert("__name__".into(), "ALERTS_FOR_STATE".into());
        out.push((f, a.active_at as f64 / 1000.0));
    }
    out
}

/// Adjusts a persisted state after a restart at `now`, the alerter having last evaluated at
/// `down_at` (Prometheus' `RestoreForState`): firing alerts stay firing; a pending alert's `for`
/// timer resumes where it stopped (downtime does not count), but fires no sooner than
/// `grace_ms` after the restart; after an outage longer than `tolerance_ms` pending timers restart.
pub fn restore(state: &mut RuleState, down_at: i64, now: i64, for_ms: i64, tolerance_ms: i64, grace_ms: i64) {
    let down = (now - down_at).max(0);
    for a in state.alerts.values_mut() {
        if a.state != AlertState::Pending {
            continue;
        }
        if down > tolerance_ms {
            a.active_at = now;
            continue;
        }
        let remaining = for_ms - (down_at - a.active_at);
        if remaining <= 0 {
            continue;
        }
        if remaining < grace_ms {
            a.active_at = now + grace_ms - for_ms;
        } else {
            a.active_at += down;
        }
    }
}

#[cfg(test)]
#[path = "state/tests.rs"]
mod tests;
