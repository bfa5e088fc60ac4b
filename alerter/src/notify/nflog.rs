//! The notification log: for each (aggregation group, receiver, integration) which alerts were
//! firing and resolved at the last successful notification, and when. Persisted in the sled tree
//! (`n/…`) so that after a restart an unchanged group is not re-sent and a changed one still is.
//! Dedup rule from Alertmanager's `notify.DedupStage.needsUpdate`, retention as `nflog` (120h).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::NotifyError;

const PREFIX: &[u8] = b"n/";
/// How long entries are kept after their last notification.
pub const RETENTION: Duration = Duration::from_secs(120 * 3600);

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub timestamp: DateTime<Utc>,
}

/// Identifies the notification stream of one integration for one group.
pub fn entry_key(group_key: &str, receiver: &str, integration: &str) -> String {
    format!("{group_key}\u{0}{receiver}\u{0}{integration}")
}

/// Alertmanager's `needsUpdate`: notify for new firing alerts, for newly resolved ones (if
/// the integration sends resolved notices), when everything resolved, or when `repeat` elapsed.
pub fn needs_update(
    entry: Option<&Entry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat: Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        // All resolved: clear the firing set in the log (sent only if send_resolved).
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    let repeat = chrono::Duration::from_std(repeat).unwrap_or(chrono::Duration::MAX);
    e.timestamp + repeat <= now
}

/// The persistent log; cheap to clone.
#[derive(Clone)]
pub struct NotificationLog {
    entries: Arc<RwLock<HashMap<String, Entry>>>,
    tree: sled::Tree,
}

impl NotificationLog {
    pub fn open(tree: sled::Tree) -> Result<NotificationLog, NotifyError> {
        let mut entries = HashMap::new();
        for item in tree.scan_prefix(PREFIX) {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned();
            match serde_json::from_slice::<Entry>(&v) {
                Ok(e) => {
                    entries.insert(key, e);
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "Dropping unreadable notification log entry.");
                    tree.remove(k)?;
                }
            }
        }
        Ok(NotificationLog { entries: Arc::new(RwLock::new(entries)), tree })
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.entries.read().get(key).cloned()
    }

    /// Records a successful notification and flushes it to disk before returning, so a crash
    /// right after a send does not cause a resend.
    pub async fn log(&self, key: &str, entry: Entry) -> Result<(), NotifyError> {
        let bytes = serde_json::to_vec(&entry)?;
        self.entries.write().insert(key.to_string(), entry);
        let tree = self.tree.clone();
        let k = [PREFIX, key.as_bytes()].concat();
        tokio::task::spawn_blocking(move || -> Result<(), sled::Error> {
            tree.insert(k, bytes)?;
            tree.flush()?;
            Ok(())
        })
        .await
        .map_err(|e| NotifyError::Internal(e.to_string()))??;
        Ok(())
    }

    /// Drops entries older than [`RETENTION`].
    pub async fn gc(&self, now: DateTime<Utc>) -> Result<usize, NotifyError> {
        let cutoff = now - chrono::Duration::from_std(RETENTION).unwrap_or(chrono::Duration::days(5));
        let gone: Vec<String> = {
            let mut map = self.entries.write();
            let gone: Vec<String> = map.iter().filter(|(_, e)| e.timestamp < cutoff).map(|(k, _)| k.clone()).collect();
            for k in &gone {
                map.remove(k);
            }
            gone
        };
        let n = gone.len();
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || -> Result<(), sled::Error> {
            for k in gone {
                tree.remove([PREFIX, k.as_bytes()].concat())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| NotifyError::Internal(e.to_string()))??;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn dedup_rules() {
        let rep = Duration::from_secs(100);
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, rep, t(0)));
        assert!(!needs_update(None, &set(&[]), &set(&[1]), true, rep, t(0)), "only resolved, never notified");
        let e = Entry { firing: set(&[1, 2]), resolved: set(&[]), timestamp: t(0) };
        assert!(!needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, rep, t(50)), "unchanged");
        assert!(needs_update(Some(&e), &set(&[1, 2]), &set(&[]), true, rep, t(100)), "repeat elapsed");
        assert!(needs_update(Some(&e), &set(&[1, 2, 3]), &set(&[]), true, rep, t(1)), "new firing");
        assert!(needs_update(Some(&e), &set(&[1]), &set(&[2]), true, rep, t(1)), "newly resolved");
        assert!(!needs_update(Some(&e), &set(&[1]), &set(&[2]), false, rep, t(1)), "resolved not wanted");
        assert!(needs_update(Some(&e), &set(&[]), &set(&[1, 2]), false, rep, t(1)), "all resolved clears the log");
        let cleared = Entry { firing: set(&[]), resolved: set(&[1, 2]), timestamp: t(1) };
        assert!(
            !needs_update(Some(&cleared), &set(&[]), &set(&[1, 2]), true, rep, t(500)),
            "resolved notice not repeated"
        );
    }

    #[tokio::test]
    async fn persists_across_reopen() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("n").unwrap();
        let log = NotificationLog::open(tree.clone()).unwrap();
        let key = entry_key("{}:{a=\"b\"}", "team", "slack/0");
        let e = Entry { firing: set(&[7]), resolved: set(&[]), timestamp: t(0) };
        log.log(&key, e.clone()).await.unwrap();
        assert_eq!(NotificationLog::open(tree.clone()).unwrap().get(&key), Some(e));
        assert_eq!(log.gc(t(0) + chrono::Duration::days(6)).await.unwrap(), 1);
        assert_eq!(NotificationLog::open(tree).unwrap().get(&key), None);
    }
}
