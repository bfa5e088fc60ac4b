//! The alert store: every alert the notifier knows (firing and recently resolved), keyed by
//! fingerprint, mirrored into a sled tree (`a/<fp>`) so a restart re-creates the aggregation groups
//! and does not forget alerts that were not notified yet. Mirrors Alertmanager's
//! `provider/mem` (put with merge, periodic GC of resolved alerts).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::NotifyError;
use super::types::Alert;

const PREFIX: &[u8] = b"a/";

fn key(fp: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&fp.to_be_bytes());
    k
}

/// Shared alert store; cheap to clone.
#[derive(Clone)]
pub struct AlertStore {
    alerts: Arc<RwLock<HashMap<u64, Alert>>>,
    tree: sled::Tree,
}

impl AlertStore {
    /// Opens the store, loading the alerts persisted by a previous run.
    pub fn open(tree: sled::Tree) -> Result<AlertStore, NotifyError> {
        let mut alerts = HashMap::new();
        for item in tree.scan_prefix(PREFIX) {
            let (k, v) = item?;
            match serde_json::from_slice::<Alert>(&v) {
                Ok(a) => {
                    alerts.insert(a.fingerprint(), a);
                }
                Err(e) => {
                    tracing::warn!(key = ?k, error = %e, "Dropping unreadable persisted alert.");
                    tree.remove(k)?;
                }
            }
        }
        Ok(AlertStore { alerts: Arc::new(RwLock::new(alerts)), tree })
    }

    /// Inserts alerts, merging each with a stored alert of the same fingerprint when their time
    /// ranges overlap; returns the alerts as stored.
    pub async fn put(&self, new: Vec<Alert>) -> Result<Vec<Alert>, NotifyError> {
        let mut stored = Vec::with_capacity(new.len());
        {
            let mut map = self.alerts.write();
            for a in new {
                let fp = a.fingerprint();
                let merged = match map.get(&fp) {
                    Some(old) if old.overlaps(&a) => old.merge(&a),
                    _ => a,
                };
                map.insert(fp, merged.clone());
                stored.push(merged);
            }
        }
        let tree = self.tree.clone();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = stored
            .iter()
            .map(|a| Ok((key(a.fingerprint()), serde_json::to_vec(a)?)))
            .collect::<Result<_, serde_json::Error>>()?;
        tokio::task::spawn_blocking(move || -> Result<(), sled::Error> {
            let mut batch = sled::Batch::default();
            for (k, v) in rows {
                batch.insert(k, v);
            }
            tree.apply_batch(batch)
        })
        .await
        .map_err(|e| NotifyError::Internal(e.to_string()))??;
        Ok(stored)
    }

    pub fn get(&self, fp: u64) -> Option<Alert> {
        self.alerts.read().get(&fp).cloned()
    }

    /// A snapshot of all alerts.
    pub fn list(&self) -> Vec<Alert> {
        self.alerts.read().values().cloned().collect()
    }

    /// Firing alerts at `now` (inhibition sources).
    pub fn firing(&self, now: DateTime<Utc>) -> Vec<Alert> {
        self.alerts.read().values().filter(|a| !a.is_resolved_at(now)).cloned().collect()
    }

    /// Drops alerts resolved for longer than `retention`; returns how many went.
    pub async fn gc(&self, now: DateTime<Utc>, retention: Duration) -> Result<usize, NotifyError> {
        let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::hours(1));
        let gone: Vec<u64> = {
            let mut map = self.alerts.write();
            let gone: Vec<u64> = map.iter().filter(|(_, a)| a.ends_at < cutoff).map(|(fp, _)| *fp).collect();
            for fp in &gone {
                map.remove(fp);
            }
            gone
        };
        if gone.is_empty() {
            return Ok(0);
        }
        let tree = self.tree.clone();
        let n = gone.len();
        tokio::task::spawn_blocking(move || -> Result<(), sled::Error> {
            let mut batch = sled::Batch::default();
            for fp in gone {
                batch.remove(key(fp));
            }
            tree.apply_batch(batch)
        })
        .await
        .map_err(|e| NotifyError::Internal(e.to_string()))??;
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.alerts.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::types::LabelSet;

    fn alert(name: &str, start: i64, end: i64, upd: i64) -> Alert {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        Alert {
            labels: LabelSet::from([("alertname".to_string(), name.to_string())]),
            annotations: LabelSet::new(),
            starts_at: t(start),
            ends_at: t(end),
            updated_at: t(upd),
            generator_url: String::new(),
            timeout: false,
        }
    }

    #[tokio::test]
    async fn put_merges_persists_and_gc_removes() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("n").unwrap();
        let store = AlertStore::open(tree.clone()).unwrap();
        store.put(vec![alert("A", 0, 100, 0), alert("B", 0, 10, 0)]).await.unwrap();
        let merged = store.put(vec![alert("A", 50, 200, 60)]).await.unwrap();
        assert_eq!(merged[0].starts_at, alert("A", 0, 0, 0).starts_at, "earliest start kept");
        // Reopen from the same tree: both alerts are back.
        let again = AlertStore::open(tree).unwrap();
        assert_eq!(again.len(), 2);
        let now = DateTime::from_timestamp(1_700_000_000 + 3700, 0).unwrap();
        assert_eq!(again.gc(now, Duration::from_secs(3600)).await.unwrap(), 1, "B resolved >1h ago");
        assert!(again.get(alert("A", 0, 0, 0).fingerprint()).is_some());
    }
}
