//! Alert state that survives a restart: after each group evaluation the alerting rules' alert
//! instances (state, activeAt, firedAt, lastSentAt, keep-firing clock) are stored in a sled tree;
//! at start they are restored through [`crate::state::restore`], so firing alerts stay firing
//! (fixing prometheus/prometheus#15175), `for` timers resume, `keep_firing_for` continues
//! (prometheus/prometheus#13957) and `lastSentAt` prevents a re-notification storm.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::eval::{GroupRuntime, GroupStatus};
use crate::rules::{Group, Rule};
use crate::state::{self, RuleState};

/// Persistence failures (logged; evaluation continues).
#[derive(Debug, Error)]
pub enum PersistError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("background task failed: {0}")]
    Join(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    last_eval_ms: i64,
    alerts: RuleState,
}

/// Restore parameters (Prometheus' `--rules.alert.for-outage-tolerance` / `for-grace-period`).
#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    pub outage_tolerance_ms: i64,
    pub grace_ms: i64,
}

/// The alert-state tree.
#[derive(Debug, Clone)]
pub struct StatePersist {
    tree: sled::Tree,
}

fn key(group: &Group, index: usize, name: &str) -> Vec<u8> {
    format!("{}\u{0}{}\u{0}{index}\u{0}{name}", group.file, group.name).into_bytes()
}

impl StatePersist {
    pub fn new(tree: sled::Tree) -> Self {
        StatePersist { tree }
    }

    /// Stores the alert state of every alerting rule of the group and flushes.
    pub async fn save_group(&self, group: &Group, st: &GroupStatus) -> Result<(), PersistError> {
        let Some(last_eval_ms) = st.last_eval_ms else { return Ok(()) };
        let mut batch = sled::Batch::default();
        for (i, (rule, rr)) in group.rules.iter().zip(&st.rules).enumerate() {
            if let Rule::Alerting(r) = rule {
                let saved = Saved { last_eval_ms, alerts: rr.alerts.clone() };
                batch.insert(key(group, i, &r.name), serde_json::to_vec(&saved)?);
            }
        }
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || -> Result<(), PersistError> {
            tree.apply_batch(batch)?;
            tree.flush()?;
            Ok(())
        })
        .await
        .map_err(|e| PersistError::Join(e.to_string()))?
    }

    /// Loads saved alert state into a freshly built group runtime; returns how many alerts were
    /// restored.
    pub fn restore_group(&self, g: &GroupRuntime, now_ms: i64, opts: RestoreOptions) -> Result<usize, PersistError> {
        let mut st = g.status.lock();
        let mut n = 0;
        for (i, rule) in g.group.rules.iter().enumerate() {
            let Rule::Alerting(r) = rule else { continue };
            let Some(bytes) = self.tree.get(key(&g.group, i, &r.name))? else { continue };
            let mut saved: Saved = serde_json::from_slice(&bytes)?;
            state::restore(
                &mut saved.alerts,
                saved.last_eval_ms,
                now_ms,
                r.for_.as_millis() as i64,
                opts.outage_tolerance_ms,
                opts.grace_ms,
            );
            n += saved.alerts.alerts.len();
            st.rules[i].alerts = saved.alerts;
        }
        Ok(n)
    }
}

/// Serde for `f64` that keeps NaN and infinities (JSON has no literal for them).
pub mod float {
    use crowsnest_wire::api::{format_value, parse_value};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_value(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        parse_value(&s).ok_or_else(|| serde::de::Error::custom(format!("bad float {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::AlertingRule;
    use crate::state::{AlertState, Element, Timing};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn group() -> Group {
        Group {
            name: "g".into(),
            file: "f.yml".into(),
            interval: Duration::from_secs(15),
            limit: 0,
            query_offset: Duration::ZERO,
            rules: vec![Rule::Alerting(AlertingRule {
                name: "A".into(),
                expr: "up == 0".into(),
                for_: Duration::from_secs(60),
                keep_firing_for: Duration::ZERO,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
            })],
        }
    }

    #[tokio::test]
    async fn state_round_trips_through_sled() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let p = StatePersist::new(db.open_tree("alerts").unwrap());
        let g = GroupRuntime::new(group());
        let el = |i: &str| Element {
            labels: BTreeMap::from([("alertname".into(), "A".into()), ("i".into(), i.into())]),
            annotations: BTreeMap::new(),
            value: f64::NAN,
        };
        let t = Timing { for_ms: 60_000, ..Default::default() };
        let (s, _) = state::step(&RuleState::default(), vec![el("a"), el("b")], 0, t);
        let (mut s, _) = state::step(&s, vec![el("a")], 60_000, t);
        s.alerts.values_mut().for_each(|a| a.last_sent_at = Some(60_000));
        {
            let mut st = g.status.lock();
            st.rules[0].alerts = s;
            st.last_eval_ms = Some(60_000);
        }
        let snap = g.status.lock().clone();
        p.save_group(&g.group, &snap).await.unwrap();
        drop(p);
        drop(db);

        let db = sled::open(dir.path()).unwrap();
        let p = StatePersist::new(db.open_tree("alerts").unwrap());
        let g2 = GroupRuntime::new(group());
        let n = p.restore_group(&g2, 90_000, RestoreOptions { outage_tolerance_ms: 3_600_000, grace_ms: 0 }).unwrap();
        assert_eq!(n, 1);
        let st = g2.status.lock();
        let a = st.rules[0].alerts.alerts.values().next().unwrap();
        assert_eq!(a.state, AlertState::Firing);
        assert_eq!(a.last_sent_at, Some(60_000));
        assert!(a.value.is_nan());
    }
}
