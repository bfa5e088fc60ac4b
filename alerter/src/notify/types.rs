//! The alert as the notification pipeline keeps it: Alertmanager's `types.Alert` (labels,
//! annotations, start/end/update times, whether `endsAt` came from `resolve_timeout`), its
//! fingerprint (FNV-1a 64 over sorted label pairs, as `prometheus/common/model.LabelSet.Fingerprint`)
//! and the merge rule for re-posted alerts (`types.Alert.Merge`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::PostableAlert;

/// A label set keyed by name (sorted), as alerts carry it.
pub type LabelSet = BTreeMap<String, String>;

/// One alert in the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub generator_url: String,
    /// `ends_at` was not given by the sender but set to receipt + `resolve_timeout`.
    pub timeout: bool,
}

impl Alert {
    /// Turns a posted alert into a pipeline alert, filling the times the way Alertmanager's API
    /// does: no `startsAt` → now (or `endsAt`), no `endsAt` → now + `resolve_timeout`.
    pub fn from_postable(p: PostableAlert, now: DateTime<Utc>, resolve_timeout: Duration) -> Alert {
        let starts_at = p.starts_at.or(p.ends_at).unwrap_or(now);
        let (ends_at, timeout) = match p.ends_at {
            Some(e) => (e, false),
            None => (now + chrono::Duration::from_std(resolve_timeout).unwrap_or(chrono::Duration::minutes(5)), true),
        };
        Alert {
            labels: p.labels.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
            annotations: p.annotations,
            starts_at,
            ends_at,
            updated_at: now,
            generator_url: p.generator_url,
            timeout,
        }
    }

    /// Checks what Alertmanager's `Alert.Validate` checks.
    pub fn validate(&self) -> Result<(), String> {
        if self.labels.is_empty() {
            return Err("at least one label pair required".into());
        }
        for name in self.labels.keys() {
            if !crowsnest_wire::labels::is_valid_label_name(name) {
                return Err(format!("invalid label name {name:?}"));
            }
        }
        if self.ends_at < self.starts_at {
            return Err("start time must be before end time".into());
        }
        Ok(())
    }

    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    pub fn is_resolved_at(&self, now: DateTime<Utc>) -> bool {
        self.ends_at <= now
    }

    /// Does a newly posted alert `new` belong to the same firing episode as `self` (time ranges
    /// overlap)? Otherwise it replaces `self` outright.
    pub fn overlaps(&self, new: &Alert) -> bool {
        (new.ends_at > self.starts_at && new.ends_at < self.ends_at)
            || (new.starts_at > self.starts_at && new.starts_at < self.ends_at)
            || (new.starts_at == self.starts_at)
    }

    /// Merges a re-posted alert into this one (Alertmanager's `Alert.Merge`): the younger update
    /// wins, the earliest start is kept, and an explicit end is not overridden by a timeout.
    pub fn merge(&self, o: &Alert) -> Alert {
        if o.updated_at < self.updated_at {
            return o.merge(self);
        }
        let mut res = o.clone();
        if self.starts_at < o.starts_at {
            res.starts_at = self.starts_at;
        }
        let now_resolved = o.ends_at <= o.updated_at;
        if now_resolved {
            if self.ends_at <= o.updated_at && self.ends_at > o.ends_at {
                res.ends_at = self.ends_at;
            }
        } else if self.ends_at > o.ends_at && !self.timeout {
            res.ends_at = self.ends_at;
            res.timeout = false;
        }
        res
    }
}

/// FNV-1a 64 over `name 0xff value 0xff` for each label sorted by name.
pub fn fingerprint(labels: &LabelSet) -> u64 {
    const OFFSET: u64 = 0xcbf29ce484222325;
    const PRIME: u64 = 0x100000001b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        eat(k.as_bytes());
        eat(&[0xff]);
        eat(v.as_bytes());
        eat(&[0xff]);
    }
    h
}

/// A fingerprint as Alertmanager prints it (16 hex digits).
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// Alertmanager's label-set notation `{a="b", c="d"}`.
pub fn format_labels(labels: &LabelSet) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Converts a label map into the wire `Labels` type for matcher evaluation.
pub fn to_labels(labels: &LabelSet) -> crowsnest_wire::Labels {
    crowsnest_wire::Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn alert(start: i64, end: i64, upd: i64, timeout: bool) -> Alert {
        Alert {
            labels: [("alertname".to_string(), "A".to_string())].into(),
            annotations: LabelSet::new(),
            starts_at: at(start),
            ends_at: at(end),
            updated_at: at(upd),
            generator_url: String::new(),
            timeout,
        }
    }

    #[test]
    fn fills_times_like_alertmanager() {
        let p = PostableAlert {
            labels: [("a".into(), "b".into()), ("e".into(), String::new())].into(),
            annotations: Default::default(),
            starts_at: None,
            ends_at: None,
            generator_url: String::new(),
        };
        let a = Alert::from_postable(p, at(0), Duration::from_secs(300));
        assert_eq!((a.starts_at, a.ends_at, a.timeout), (at(0), at(300), true));
        assert!(!a.labels.contains_key("e"), "empty label values are dropped");
        a.validate().unwrap();
    }

    #[test]
    fn validation() {
        assert!(alert(10, 5, 0, false).validate().is_err());
        let mut a = alert(0, 5, 0, false);
        a.labels.insert("bad-name".into(), "x".into());
        assert!(a.validate().is_err());
    }

    #[test]
    fn merge_keeps_earliest_start_and_explicit_end() {
        let old = alert(0, 100, 10, false);
        let new = alert(5, 50, 20, true);
        let m = old.merge(&new);
        assert_eq!(m.starts_at, at(0));
        assert_eq!(m.ends_at, at(100), "explicit later end beats a timeout end");
        // Resolution from the sender wins over an older timeout end.
        let old = alert(0, 300, 10, true);
        let resolved = alert(0, 20, 20, false);
        assert_eq!(old.merge(&resolved).ends_at, at(20));
        // Order does not matter: the younger update wins.
        assert_eq!(resolved.merge(&old).ends_at, at(20));
    }

    #[test]
    fn fingerprint_is_stable_and_order_independent() {
        let a: LabelSet = [("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())].into();
        let b: LabelSet = [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&LabelSet::new()));
        assert_eq!(fingerprint_hex(0xab), "00000000000000ab");
    }
}
