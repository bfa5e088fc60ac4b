//! Silences: label matchers with a time window that mute matching alerts. Stored in memory and
//! in the sled tree (`s/<id>`), so they survive restarts. Semantics of Alertmanager's
//! `silence/silence.go` (states pending/active/expired, update-in-place when only times or comment
//! change, expire instead of delete, retention of expired silences) and the `postableSilence` /
//! `gettableSilence` shapes of `api/v2/openapi.yaml`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crowsnest_wire::{MatchOp, Matcher};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::NotifyError;
use super::types::{LabelSet, to_labels};

const PREFIX: &[u8] = b"s/";
/// How long expired silences stay queryable (Alertmanager's `--data.retention` default).
pub const RETENTION: Duration = Duration::from_secs(120 * 3600);

/// One matcher of a silence, in the API's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn compile(&self) -> Result<Matcher, NotifyError> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(op, self.name.clone(), self.value.clone())
            .map_err(|e| NotifyError::BadRequest(format!("invalid regex in matcher {}: {e}", self.name)))
    }
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A silence's state at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if self.ends_at <= now {
            SilenceState::Expired
        } else if self.starts_at > now {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }
}

/// What a client posts to create or update a silence.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

struct Entry {
    silence: Silence,
    matchers: Vec<Matcher>,
}

/// The silence store; cheap to clone.
#[derive(Clone)]
pub struct Silences {
    inner: Arc<RwLock<HashMap<String, Entry>>>,
    tree: sled::Tree,
}

impl Silences {
    /// Loads persisted silences.
    pub fn open(tree: sled::Tree) -> Result<Silences, NotifyError> {
        let mut map = HashMap::new();
        for item in tree.scan_prefix(PREFIX) {
            let (k, v) = item?;
            let parsed = serde_json::from_slice::<Silence>(&v).map_err(NotifyError::from).and_then(|s| {
                let matchers = s.matchers.iter().map(SilenceMatcher::compile).collect::<Result<Vec<_>, _>>()?;
                Ok(Entry { silence: s, matchers })
            });
            match parsed {
                Ok(e) => {
                    map.insert(e.silence.id.clone(), e);
                }
                Err(e) => {
                    tracing::warn!(key = ?k, error = %e, "Dropping unreadable persisted silence.");
                    tree.remove(k)?;
                }
            }
        }
        Ok(Silences { inner: Arc::new(RwLock::new(map)), tree })
    }

    /// Creates or updates a silence; returns its id (a new one when an update is not possible in place).
    pub async fn set(&self, p: PostableSilence, now: DateTime<Utc>) -> Result<String, NotifyError> {
        if p.matchers.is_empty() {
            return Err(NotifyError::BadRequest("silence needs at least one matcher".into()));
        }
        let matchers = p.matchers.iter().map(SilenceMatcher::compile).collect::<Result<Vec<_>, _>>()?;
        if matchers.iter().all(|m| m.matches_empty()) {
            return Err(NotifyError::BadRequest("at least one matcher must not match the empty string".into()));
        }
        if p.ends_at <= p.starts_at {
            return Err(NotifyError::BadRequest("end time must be after start time".into()));
        }
        if p.ends_at <= now {
            return Err(NotifyError::BadRequest("end time can't be in the past".into()));
        }
        let mut to_write = Vec::new();
        let id = {
            let mut map = self.inner.write();
            let prev = match &p.id {
                Some(id) if !id.is_empty() => Some(
                    map.get(id)
                        .map(|e| e.silence.clone())
                        .ok_or_else(|| NotifyError::NotFound(format!("silence {id} not found")))?,
                ),
                _ => None,
            };
            let in_place = prev.as_ref().is_some_and(|old| can_update(old, &p, now));
            let id = match (&prev, in_place) {
                (Some(old), true) => old.id.clone(),
                (Some(old), false) => {
                    if old.state(now) != SilenceState::Expired {
                        let mut expired = old.clone();
                        expire_at(&mut expired, now);
                        to_write.push(expired.clone());
                        if let Some(e) = map.get_mut(&old.id) {
                            e.silence = expired;
                        }
                    }
                    uuid::Uuid::new_v4().to_string()
                }
                (None, _) => uuid::Uuid::new_v4().to_string(),
            };
            let silence = Silence {
                id: id.clone(),
                matchers: p.matchers,
                starts_at: if p.starts_at < now && !in_place { now } else { p.starts_at },
                ends_at: p.ends_at,
                updated_at: now,
                created_by: p.created_by,
                comment: p.comment,
            };
            to_write.push(silence.clone());
            map.insert(id.clone(), Entry { silence, matchers });
            id
        };
        self.persist(to_write, Vec::new()).await?;
        Ok(id)
    }

    /// Expires a silence now (the API's DELETE).
    pub async fn expire(&self, id: &str, now: DateTime<Utc>) -> Result<(), NotifyError> {
        let updated = {
            let mut map = self.inner.write();
            let e = map.get_mut(id).ok_or_else(|| NotifyError::NotFound(format!("silence {id} not found")))?;
            if e.silence.state(now) == SilenceState::Expired {
                return Err(NotifyError::BadRequest(format!("silence {id} already expired")));
            }
            expire_at(&mut e.silence, now);
            e.silence.clone()
        };
        self.persist(vec![updated], Vec::new()).await
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.inner.read().get(id).map(|e| e.silence.clone())
    }

    /// All silences, newest first.
    pub fn list(&self) -> Vec<Silence> {
        let mut v: Vec<Silence> = self.inner.read().values().map(|e| e.silence.clone()).collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        v
    }

    /// Ids of the active silences that mute an alert with these labels.
    pub fn mutes(&self, labels: &LabelSet, now: DateTime<Utc>) -> Vec<String> {
        let wire = to_labels(labels);
        let mut ids: Vec<String> = self
            .inner
            .read()
            .values()
            .filter(|e| {
                e.silence.state(now) == SilenceState::Active && crowsnest_wire::labels::matches_all(&e.matchers, &wire)
            })
            .map(|e| e.silence.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// How many silences are in each state (for the `silences` gauge).
    pub fn count_by_state(&self, now: DateTime<Utc>) -> [(SilenceState, i64); 3] {
        let map = self.inner.read();
        let mut counts = [(SilenceState::Active, 0), (SilenceState::Pending, 0), (SilenceState::Expired, 0)];
        for e in map.values() {
            let s = e.silence.state(now);
            for c in counts.iter_mut() {
                if c.0 == s {
                    c.1 += 1;
                }
            }
        }
        counts
    }

    /// Removes silences expired for longer than [`RETENTION`].
    pub async fn gc(&self, now: DateTime<Utc>) -> Result<usize, NotifyError> {
        let cutoff = now - chrono::Duration::from_std(RETENTION).unwrap_or(chrono::Duration::days(5));
        let gone: Vec<String> = {
            let mut map = self.inner.write();
            let gone: Vec<String> =
                map.values().filter(|e| e.silence.ends_at < cutoff).map(|e| e.silence.id.clone()).collect();
            for id in &gone {
                map.remove(id);
            }
            gone
        };
        let n = gone.len();
        if n > 0 {
            self.persist(Vec::new(), gone).await?;
        }
        Ok(n)
    }

    async fn persist(&self, put: Vec<Silence>, remove: Vec<String>) -> Result<(), NotifyError> {
        let mut batch = sled::Batch::default();
        for s in put {
            batch.insert([PREFIX, s.id.as_bytes()].concat(), serde_json::to_vec(&s)?);
        }
        for id in remove {
            batch.remove([PREFIX, id.as_bytes()].concat());
        }
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || tree.apply_batch(batch))
            .await
            .map_err(|e| NotifyError::Internal(e.to_string()))??;
        Ok(())
    }
}

/// Alertmanager's `canUpdate`: same matchers, and only time changes the state allows.
fn can_update(old: &Silence, new: &PostableSilence, now: DateTime<Utc>) -> bool {
    if old.matchers != new.matchers {
        return false;
    }
    match old.state(now) {
        SilenceState::Active => new.starts_at == old.starts_at && new.ends_at >= now,
        SilenceState::Pending => new.starts_at >= now,
        SilenceState::Expired => false,
    }
}

fn expire_at(s: &mut Silence, now: DateTime<Utc>) {
    if s.starts_at > now {
        s.starts_at = now;
    }
    s.ends_at = now;
    s.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn post(id: Option<String>, value: &str, start: i64, end: i64) -> PostableSilence {
        PostableSilence {
            id,
            matchers: vec![SilenceMatcher {
                name: "alertname".into(),
                value: value.into(),
                is_regex: true,
                is_equal: true,
            }],
            starts_at: t(start),
            ends_at: t(end),
            created_by: "me".into(),
            comment: "c".into(),
        }
    }

    fn open() -> (sled::Tree, Silences) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("n").unwrap();
        (tree.clone(), Silences::open(tree).unwrap())
    }

    #[tokio::test]
    async fn lifecycle_mute_update_expire_persist() {
        let (tree, s) = open();
        let id = s.set(post(None, "Disk.*", 0, 100), t(0)).await.unwrap();
        let labels: LabelSet = [("alertname".to_string(), "DiskFull".to_string())].into();
        assert_eq!(s.mutes(&labels, t(10)), vec![id.clone()]);
        assert!(s.mutes(&labels, t(100)).is_empty(), "expired at endsAt");
        // Extending keeps the id; changing matchers creates a new silence and expires the old.
        assert_eq!(s.set(post(Some(id.clone()), "Disk.*", 0, 200), t(5)).await.unwrap(), id);
        let id2 = s.set(post(Some(id.clone()), "Other", 0, 200), t(6)).await.unwrap();
        assert_ne!(id2, id);
        assert_eq!(s.get(&id).unwrap().state(t(6)), SilenceState::Expired);
        s.expire(&id2, t(7)).await.unwrap();
        assert!(s.expire(&id2, t(8)).await.is_err(), "already expired");
        let again = Silences::open(tree).unwrap();
        assert_eq!(again.list().len(), 2);
        assert_eq!(again.get(&id2).unwrap().state(t(8)), SilenceState::Expired);
        assert_eq!(again.gc(t(7) + chrono::Duration::days(6)).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn rejects_bad_silences() {
        let (_, s) = open();
        assert!(s.set(post(None, ".*", 0, 100), t(0)).await.is_err(), "matches everything");
        assert!(s.set(post(None, "A", 50, 40), t(0)).await.is_err());
        assert!(s.set(post(None, "A", 0, 10), t(20)).await.is_err(), "ends in the past");
        assert!(s.set(post(None, "(", 0, 100), t(0)).await.is_err());
        assert!(matches!(s.set(post(Some("nope".into()), "A", 0, 100), t(0)).await, Err(NotifyError::NotFound(_))));
        let id = s.set(post(None, "A", 50, 100), t(0)).await.unwrap();
        assert_eq!(s.get(&id).unwrap().state(t(0)), SilenceState::Pending);
    }
}
