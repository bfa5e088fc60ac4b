//! Tombstones: deleted time intervals per series, written by `delete_series` and honoured by
//! every read until `clean_tombstones` rewrites the chunks without them. Mirrors Prometheus'
//! `tsdb/tombstones` (intervals are inclusive `[min_t, max_t]`, merged when they overlap or
//! touch), but kept in the sled `tombstones` tree (key: series ref, big endian; value: pairs of
//! i64 LE) instead of a per-block file. The in-memory map is the source for reads; the tree is
//! written and flushed before a delete is acknowledged, so a delete survives `kill -9`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

use crate::error::StoreError;

/// The sled tree holding tombstones.
pub const TREE: &str = "tombstones";

/// An inclusive deleted time range.
pub type Interval = (i64, i64);

/// Whether `t` falls in one of the (sorted, merged) intervals.
pub fn covers(intervals: &[Interval], t: i64) -> bool {
    intervals.iter().any(|(a, b)| *a <= t && t <= *b)
}

/// Adds `add` to a sorted, merged interval list, keeping it sorted and merged.
pub fn merge(list: &mut Vec<Interval>, add: Interval) {
    list.push(add);
    list.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(list.len());
    for (a, b) in list.drain(..) {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *list = out;
}

fn encode(list: &[Interval]) -> Vec<u8> {
    let mut v = Vec::with_capacity(list.len() * 16);
    for (a, b) in list {
        v.extend_from_slice(&a.to_le_bytes());
        v.extend_from_slice(&b.to_le_bytes());
    }
    v
}

fn decode(v: &[u8]) -> Option<Vec<Interval>> {
    if !v.len().is_multiple_of(16) {
        return None;
    }
    let word = |c: &[u8]| c.try_into().ok().map(i64::from_le_bytes);
    v.chunks_exact(16).map(|c| Some((word(&c[..8])?, word(&c[8..])?))).collect()
}

/// Every series' deleted intervals.
pub struct Tombstones {
    map: RwLock<HashMap<u64, Vec<Interval>>>,
    /// Fast path for reads: no tombstone at all (the usual case).
    any: AtomicBool,
    tree: sled::Tree,
}

impl Tombstones {
    /// Loads the tombstones stored in `tree`. An unreadable value is an error: serving the
    /// deleted samples again would be wrong data.
    pub fn load(tree: sled::Tree) -> Result<Tombstones, StoreError> {
        let mut map = HashMap::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let key: [u8; 8] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt("tombstone key".into()))?;
            let list = decode(&v).ok_or_else(|| StoreError::Corrupt("tombstone value".into()))?;
            map.insert(u64::from_be_bytes(key), list);
        }
        let any = AtomicBool::new(!map.is_empty());
        Ok(Tombstones { map: RwLock::new(map), any, tree })
    }

    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    pub fn has(&self, sref: u64) -> bool {
        !self.is_empty() && self.map.read().contains_key(&sref)
    }

    /// The deleted intervals of `sref`, if any.
    pub fn get(&self, sref: u64) -> Option<Vec<Interval>> {
        if self.is_empty() {
            return None;
        }
        self.map.read().get(&sref).cloned()
    }

    /// Every series with tombstones and its intervals.
    pub fn all(&self) -> Vec<(u64, Vec<Interval>)> {
        self.map.read().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Records `interval` as deleted for each of `refs` (in memory and in the tree; the caller
    /// flushes sled before acknowledging).
    pub fn add(&self, refs: &[u64], interval: Interval) -> Result<(), StoreError> {
        let mut map = self.map.write();
        for r in refs {
            let list = map.entry(*r).or_default();
            merge(list, interval);
            self.tree.insert(r.to_be_bytes(), encode(list))?;
        }
        self.any.store(!map.is_empty(), Ordering::Release);
        Ok(())
    }

    /// Forgets the tombstones of `refs` whose intervals are still exactly `expected` (ones added
    /// meanwhile stay for the next clean).
    pub fn remove(&self, done: &[(u64, Vec<Interval>)]) -> Result<(), StoreError> {
        let mut map = self.map.write();
        for (r, expected) in done {
            if map.get(r) == Some(expected) {
                map.remove(r);
                self.tree.remove(r.to_be_bytes())?;
            }
        }
        self.any.store(!map.is_empty(), Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_when_they_overlap_or_touch() {
        let mut l = Vec::new();
        merge(&mut l, (10, 20));
        merge(&mut l, (30, 40));
        assert_eq!(l, vec![(10, 20), (30, 40)]);
        merge(&mut l, (21, 25));
        assert_eq!(l, vec![(10, 25), (30, 40)]);
        merge(&mut l, (i64::MIN, 12));
        assert_eq!(l, vec![(i64::MIN, 25), (30, 40)]);
        merge(&mut l, (26, i64::MAX));
        assert_eq!(l, vec![(i64::MIN, i64::MAX)]);
        assert!(covers(&l, 0) && covers(&l, i64::MAX));
        assert!(!covers(&[(1, 2)], 3));
    }

    #[test]
    fn values_round_trip_and_garbage_is_refused() {
        let l = vec![(i64::MIN, -5), (7, i64::MAX)];
        assert_eq!(decode(&encode(&l)), Some(l));
        assert_eq!(decode(&[1, 2, 3]), None);
    }

    #[test]
    fn tombstones_persist_in_their_tree() {
        let d = tempfile::tempdir().expect("tmp");
        let db = sled::open(d.path()).expect("sled");
        let t = Tombstones::load(db.open_tree(TREE).expect("tree")).expect("load");
        assert!(t.is_empty());
        t.add(&[3, 9], (100, 200)).expect("add");
        t.add(&[3], (150, 300)).expect("add");
        let again = Tombstones::load(db.open_tree(TREE).expect("tree")).expect("load");
        assert_eq!(again.get(3), Some(vec![(100, 300)]));
        assert_eq!(again.get(9), Some(vec![(100, 200)]));
        // A clean racing a newer delete keeps the newer one.
        again.remove(&[(3, vec![(100, 200)]), (9, vec![(100, 200)])]).expect("remove");
        assert!(again.has(3) && !again.has(9));
    }
}
