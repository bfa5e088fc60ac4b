//! The series catalog in sled: the label set ↔ ref mapping, the inverted postings and the
//! checkpoint state (series time ranges and head chunk snapshots), stored as a few large,
//! zstd-compressed values rather than one small key per series, posting or head.
//!
//! Why: sled 0.34 logs every insert as a page fragment and rewrites whole pages on
//! consolidation, and its garbage collection lags far behind; measured here, 8,000 postings keys
//! (336 KB of keys) took 6.3 MB on disk and 10,000 series rows of 70 B took 4.9 MB, while a few
//! values of several KB cost about 2x their size, and values over 128 KiB become sled blob files
//! that are deleted when replaced (no garbage at all). Prometheus' head checkpoint
//! (`tsdb/wlog/checkpoint.go`) likewise rewrites all live series in one file.
//!
//! - `series_batches`: `batch u64 BE` → zstd(`ref u64 LE | uvarint len | encoded labels`...): the
//!   series created by one checkpoint (or WAL replay), written once; a batch is rewritten only
//!   when retention deletes some of its series.
//! - `postings_batches`: `batch u64 BE` → zstd(`uvarint len | name | uvarint len | value |
//!   uvarint count | count × uvarint ref delta`...): the inverted index of the same batch (for
//!   `fsck` and tools; queries use the in-memory copy rebuilt from `series_batches`).
//! - `state`: `ranges` → zstd(`ref u64 LE | min_t i64 LE | max_t i64 LE`... for every series) and
//!   `heads_gen` → the generation `g` of the head snapshot file `chunks/heads-g{g}.snap`
//!   (`b"CNHD" | crc32 LE | zstd(ref u64 LE | uvarint len | head snapshot ...)` for every open
//!   head), both replaced by every checkpoint in the same sled flush that precedes the WAL
//!   truncation. The snapshot file is written and synced before that flush and the previous one
//!   deleted after it. It used to be a sled value (`heads`, still read): sled kept three or more
//!   superseded multi-MB copies of it as blob files (11 MB of a 12 MB index on the benchmark).
//! - `state` also holds `label_hash` → one byte naming the label hash that picks the shard of
//!   new series (1 legacy, 2 fast; see `LabelHash`), written once when the folder is first opened.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::bits::{ByteReader, put_uvarint};
use super::index::{LabelHash, iter_encoded};
use super::persist::{Disk, SeriesRow, corrupt};
use crate::error::StoreError;

const KEY_RANGES: &[u8] = b"ranges";
const KEY_HEADS: &[u8] = b"heads";
const KEY_HEADS_GEN: &[u8] = b"heads_gen";
const KEY_LABEL_HASH: &[u8] = b"label_hash";
const HEADS_MAGIC: &[u8; 4] = b"CNHD";

fn heads_name(generation: u64) -> String {
    format!("heads-g{generation}.snap")
}
const ZSTD_LEVEL: i32 = 3;

/// Which batch holds each series, and the next batch number.
#[derive(Default)]
pub struct CatalogState {
    batch_of: Mutex<HashMap<u64, u64>>,
    next_batch: AtomicU64,
    /// Generation of the last head snapshot file written.
    heads_gen: AtomicU64,
    /// Head snapshot files to delete once sled's record of a newer one is durable.
    stale_heads: Mutex<Vec<u64>>,
}

fn pack(raw: &[u8]) -> Result<Vec<u8>, StoreError> {
    Ok(zstd::stream::encode_all(raw, ZSTD_LEVEL)?)
}

fn unpack(v: &[u8], what: &str) -> Result<Vec<u8>, StoreError> {
    zstd::stream::decode_all(v).map_err(|_| corrupt(what))
}

fn encode_series(list: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (sref, labels) in list {
        out.extend_from_slice(&sref.to_le_bytes());
        put_uvarint(&mut out, labels.len() as u64);
        out.extend_from_slice(labels);
    }
    out
}

fn decode_series(raw: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut r = ByteReader::new(raw);
    let mut out = Vec::new();
    while !r.is_empty() {
        let sref = r.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let labels = r.uvarint().and_then(|n| usize::try_from(n).ok()).and_then(|n| r.take(n));
        match (sref, labels) {
            (Some(s), Some(l)) => out.push((s, l.to_vec())),
            _ => return Err(corrupt("series batch")),
        }
    }
    Ok(out)
}

fn encode_postings(list: &[(u64, &[u8])]) -> Vec<u8> {
    let mut by_pair: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for (sref, labels) in list {
        for pair in iter_encoded(labels) {
            by_pair.entry(pair).or_default().push(*sref);
        }
    }
    let mut out = Vec::new();
    for ((n, v), mut refs) in by_pair {
        refs.sort_unstable();
        put_uvarint(&mut out, n.len() as u64);
        out.extend_from_slice(n.as_bytes());
        put_uvarint(&mut out, v.len() as u64);
        out.extend_from_slice(v.as_bytes());
        put_uvarint(&mut out, refs.len() as u64);
        let mut prev = 0;
        for r in refs {
            put_uvarint(&mut out, r - prev);
            prev = r;
        }
    }
    out
}

/// One postings entry: label name, label value, series refs.
type PostingsEntry<'a> = (&'a [u8], &'a [u8], Vec<u64>);

/// Every entry of one decoded postings batch.
fn decode_postings(raw: &[u8]) -> Result<Vec<PostingsEntry<'_>>, StoreError> {
    let mut r = ByteReader::new(raw);
    let bad = || corrupt("postings batch");
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut s = || r.uvarint().and_then(|n| usize::try_from(n).ok()).and_then(|n| r.take(n));
        let (n, v) = (s().ok_or_else(bad)?, s().ok_or_else(bad)?);
        let count = r.uvarint().ok_or_else(bad)?;
        let mut prev = 0u64;
        let mut refs = Vec::new();
        for _ in 0..count {
            prev = prev.checked_add(r.uvarint().ok_or_else(bad)?).ok_or_else(bad)?;
            refs.push(prev);
        }
        out.push((n, v, refs));
    }
    Ok(out)
}

/// Refs listed for `(name, value)` in one decoded postings batch.
fn postings_in(raw: &[u8], name: &str, value: &str) -> Result<Vec<u64>, StoreError> {
    Ok(decode_postings(raw)?
        .into_iter()
        .find(|(n, v, _)| *n == name.as_bytes() && *v == value.as_bytes())
        .map(|(_, _, refs)| refs)
        .unwrap_or_default())
}

impl Disk {
    fn write_batch(&self, batch: u64, list: &[(u64, &[u8])]) -> Result<(), StoreError> {
        let key = batch.to_be_bytes();
        if list.is_empty() {
            self.series.remove(key)?;
            self.postings.remove(key)?;
        } else {
            self.series.insert(key, pack(&encode_series(list))?)?;
            self.postings.insert(key, pack(&encode_postings(list))?)?;
        }
        Ok(())
    }

    /// Writes newly created series (with their postings) as one batch.
    pub fn create_series_batch(&self, list: &[(u64, Box<[u8]>)]) -> Result<(), StoreError> {
        if list.is_empty() {
            return Ok(());
        }
        let batch = self.catalog.next_batch.fetch_add(1, Ordering::SeqCst);
        let refs: Vec<(u64, &[u8])> = list.iter().map(|(r, l)| (*r, &l[..])).collect();
        self.write_batch(batch, &refs)?;
        let mut of = self.catalog.batch_of.lock();
        for (sref, _) in list {
            of.insert(*sref, batch);
        }
        Ok(())
    }

    /// Removes series rows and postings (retention), rewriting each affected batch once.
    pub fn remove_series_rows(&self, refs: &[u64]) -> Result<(), StoreError> {
        let mut by_batch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        {
            let mut of = self.catalog.batch_of.lock();
            for r in refs {
                if let Some(b) = of.remove(r) {
                    by_batch.entry(b).or_default().push(*r);
                }
            }
        }
        for (batch, gone) in by_batch {
            let Some(v) = self.series.get(batch.to_be_bytes())? else { continue };
            let rows = decode_series(&unpack(&v, "series batch")?)?;
            let keep: Vec<(u64, &[u8])> =
                rows.iter().filter(|(r, _)| !gone.contains(r)).map(|(r, l)| (*r, &l[..])).collect();
            self.write_batch(batch, &keep)?;
        }
        Ok(())
    }

    /// Every series with its time range as of the last checkpoint (`i64::MAX, i64::MIN` when it
    /// had no sample then).
    pub fn load_series(&self) -> Result<Vec<SeriesRow>, StoreError> {
        let mut ranges: HashMap<u64, (i64, i64)> = HashMap::new();
        if let Some(v) = self.state.get(KEY_RANGES)? {
            let raw = unpack(&v, "ranges")?;
            for rec in raw.chunks(24) {
                let num = |i: usize| rec.get(i..i + 8).and_then(|b| b.try_into().ok());
                match (num(0), num(8), num(16)) {
                    (Some(r), Some(lo), Some(hi)) => {
                        ranges.insert(u64::from_le_bytes(r), (i64::from_le_bytes(lo), i64::from_le_bytes(hi)));
                    }
                    _ => return Err(corrupt("ranges")),
                }
            }
        }
        let mut out = Vec::new();
        let mut of = self.catalog.batch_of.lock();
        let mut max_batch = None;
        for kv in self.series.iter() {
            let (k, v) = kv?;
            let batch = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| corrupt("series batch key"))?);
            max_batch = max_batch.max(Some(batch));
            for (sref, labels) in decode_series(&unpack(&v, "series batch")?)? {
                of.insert(sref, batch);
                let (min_t, max_t) = ranges.get(&sref).copied().unwrap_or((i64::MAX, i64::MIN));
                out.push(SeriesRow { sref, min_t, max_t, labels });
            }
        }
        self.catalog.next_batch.fetch_max(max_batch.map_or(0, |b| b + 1), Ordering::SeqCst);
        Ok(out)
    }

    /// Postings on disk for `(name, value)` (for fsck and tests).
    pub fn postings_for(&self, name: &str, value: &str) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for kv in self.postings.iter() {
            let (_, v) = kv?;
            out.extend(postings_in(&unpack(&v, "postings batch")?, name, value)?);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// True when the postings of `sref`'s batch list it under `(name, value)`.
    pub fn has_posting(&self, sref: u64, name: &str, value: &str) -> Result<bool, StoreError> {
        let Some(batch) = self.catalog.batch_of.lock().get(&sref).copied() else { return Ok(false) };
        let Some(v) = self.postings.get(batch.to_be_bytes())? else { return Ok(false) };
        Ok(postings_in(&unpack(&v, "postings batch")?, name, value)?.contains(&sref))
    }

    /// Checks every series batch against its postings batch: (series checked, label pairs
    /// without a posting).
    pub fn check_postings(&self) -> Result<(u64, u64), StoreError> {
        let (mut checked, mut missing) = (0u64, 0u64);
        for kv in self.series.iter() {
            let (k, v) = kv?;
            let rows = decode_series(&unpack(&v, "series batch")?)?;
            let raw = match self.postings.get(&k)? {
                Some(p) => unpack(&p, "postings batch")?,
                None => Vec::new(),
            };
            let mut have: std::collections::HashSet<(&[u8], &[u8], u64)> = std::collections::HashSet::new();
            for (n, v, refs) in decode_postings(&raw)? {
                have.extend(refs.into_iter().map(|r| (n, v, r)));
            }
            for (sref, labels) in &rows {
                checked += 1;
                missing += iter_encoded(labels)
                    .filter(|(n, v)| !have.contains(&(n.as_bytes(), v.as_bytes(), *sref)))
                    .count() as u64;
            }
        }
        Ok((checked, missing))
    }

    /// Replaces the checkpoint state: every series' time range and every open head's snapshot.
    pub fn put_state(&self, ranges: &[(u64, i64, i64)], heads: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        let mut raw = Vec::with_capacity(ranges.len() * 24);
        for (r, lo, hi) in ranges {
            raw.extend_from_slice(&r.to_le_bytes());
            raw.extend_from_slice(&lo.to_le_bytes());
            raw.extend_from_slice(&hi.to_le_bytes());
        }
        self.state.insert(KEY_RANGES, pack(&raw)?)?;
        let mut raw = Vec::new();
        for (r, snap) in heads {
            raw.extend_from_slice(&r.to_le_bytes());
            put_uvarint(&mut raw, snap.len() as u64);
            raw.extend_from_slice(snap);
        }
        let packed = pack(&raw)?;
        let generation = self.catalog.heads_gen.load(Ordering::Relaxed) + 1;
        let dir = self.files.dir();
        {
            use std::io::Write;
            let mut f = std::fs::File::create(dir.join(heads_name(generation)))?;
            f.write_all(HEADS_MAGIC)?;
            f.write_all(&crc32fast::hash(&packed).to_le_bytes())?;
            f.write_all(&packed)?;
            f.sync_all()?;
        }
        std::fs::File::open(dir)?.sync_all()?;
        let old = self.catalog.heads_gen.swap(generation, Ordering::Relaxed);
        self.state.insert(KEY_HEADS_GEN, &generation.to_le_bytes())?;
        self.state.remove(KEY_HEADS)?;
        if old > 0 {
            self.catalog.stale_heads.lock().push(old);
        }
        Ok(())
    }

    /// Head snapshot files superseded by a newer one whose sled record is already written (not
    /// necessarily flushed): [`Disk::flush`] takes them before flushing sled and deletes them
    /// after, so a file is only deleted once the record that replaced it is durable. Taking them
    /// after the flush started could delete the file the durable record still names.
    pub(super) fn take_stale_heads(&self) -> Vec<u64> {
        std::mem::take(&mut *self.catalog.stale_heads.lock())
    }

    /// Deletes head snapshot files taken by [`Disk::take_stale_heads`] (after a sled flush).
    pub(super) fn delete_heads(&self, generations: Vec<u64>) {
        for g in generations {
            let path = self.files.dir().join(heads_name(g));
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "Could not delete an old head snapshot.");
            }
        }
    }

    /// The label hash of this folder ([`LabelHash`]); `existing` says whether it already holds
    /// data (series or WAL segments), which without a marker means the legacy hash. The choice
    /// is recorded and flushed before any series can be created under it.
    pub fn label_hash(&self, existing: bool) -> Result<LabelHash, StoreError> {
        if let Some(v) = self.state.get(KEY_LABEL_HASH)? {
            return match v.as_ref() {
                [m] => LabelHash::from_marker(*m).ok_or_else(|| corrupt("label hash marker")),
                _ => Err(corrupt("label hash marker")),
            };
        }
        let chosen = if existing { LabelHash::Legacy } else { LabelHash::Fast };
        self.state.insert(KEY_LABEL_HASH, &[chosen.marker()])?;
        self.state.flush()?;
        Ok(chosen)
    }

    fn heads_generation(&self) -> Result<u64, StoreError> {
        Ok(match self.state.get(KEY_HEADS_GEN)? {
            Some(v) => u64::from_le_bytes(v.as_ref().try_into().map_err(|_| corrupt("heads generation"))?),
            None => 0,
        })
    }

    /// At open: continues the head snapshot generations and deletes snapshot files a crash left
    /// behind (any generation but the recorded one).
    pub fn init_heads(&self) -> Result<(), StoreError> {
        let generation = self.heads_generation()?;
        self.catalog.heads_gen.store(generation, Ordering::Relaxed);
        let dir = self.files.dir();
        for e in std::fs::read_dir(dir)? {
            let name = e?.file_name();
            let Some(g) =
                name.to_str().and_then(|n| n.strip_prefix("heads-g")?.strip_suffix(".snap")?.parse::<u64>().ok())
            else {
                continue;
            };
            if g != generation {
                std::fs::remove_file(dir.join(heads_name(g)))?;
            }
        }
        Ok(())
    }

    /// The head snapshots of the last checkpoint.
    pub fn load_heads(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let generation = self.heads_generation()?;
        let dir = self.files.dir();
        if generation == 0 {
            // Stores written before the snapshot file kept it in sled.
            let Some(v) = self.state.get(KEY_HEADS)? else { return Ok(Vec::new()) };
            return decode_series(&unpack(&v, "heads")?);
        }
        let bytes = std::fs::read(dir.join(heads_name(generation)))?;
        if bytes.len() < 8 || &bytes[..4] != HEADS_MAGIC {
            return Err(corrupt("head snapshot file"));
        }
        if crc32fast::hash(&bytes[8..]).to_le_bytes() != bytes[4..8] {
            return Err(corrupt("head snapshot file checksum"));
        }
        decode_series(&unpack(&bytes[8..], "heads")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        let ls: Vec<crowsnest_wire::Label> = pairs.iter().map(|(n, v)| crowsnest_wire::Label::new(*n, *v)).collect();
        super::super::index::encode_labels(&ls, &mut v);
        v
    }

    fn snap_files(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("heads-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn head_snapshots_rotate_through_files_and_leftovers_go_at_open() {
        let d = tempfile::tempdir().expect("tmp");
        let (idx, chunks) = (d.path().join("i"), d.path().join("c"));
        let disk = Disk::open(&idx, &chunks, 1 << 20, 2.0).expect("open");
        disk.init_heads().expect("init");
        disk.put_state(&[], &[(1, vec![9; 300])]).expect("state 1");
        disk.flush().expect("flush");
        disk.put_state(&[], &[(2, vec![7; 5])]).expect("state 2");
        // The previous file stays until sled's record of the new one is durable.
        assert_eq!(snap_files(&chunks), vec!["heads-g1.snap", "heads-g2.snap"]);
        disk.flush().expect("flush");
        assert_eq!(snap_files(&chunks), vec!["heads-g2.snap"]);
        drop(disk);
        // A file of a checkpoint that never reached sled (a crash before the flush).
        std::fs::write(chunks.join("heads-g3.snap"), b"torn").expect("write");
        let disk = Disk::open(&idx, &chunks, 1 << 20, 2.0).expect("reopen");
        disk.init_heads().expect("init");
        assert_eq!(snap_files(&chunks), vec!["heads-g2.snap"]);
        assert_eq!(disk.load_heads().expect("heads"), vec![(2, vec![7; 5])]);
        // A damaged file is an error, not an empty head.
        let mut b = std::fs::read(chunks.join("heads-g2.snap")).expect("read");
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(chunks.join("heads-g2.snap"), b).expect("write");
        assert!(disk.load_heads().is_err());
    }

    #[test]
    fn batches_round_trip_and_shrink_on_removal() {
        let d = tempfile::tempdir().expect("tmp");
        let disk = Disk::open(&d.path().join("i"), &d.path().join("c"), 1 << 20, 2.0).expect("open");
        let a = labels(&[("__name__", "up"), ("job", "a")]);
        let b = labels(&[("__name__", "up"), ("job", "b")]);
        let c = labels(&[("__name__", "x"), ("job", "a")]);
        disk.create_series_batch(&[(16, a.clone().into()), (33, b.clone().into())]).expect("batch 1");
        disk.create_series_batch(&[(50, c.clone().into())]).expect("batch 2");
        disk.put_state(&[(16, 1, 9), (50, -5, 5)], &[(33, vec![1, 2, 3])]).expect("state");
        assert_eq!(disk.postings_for("__name__", "up").expect("p"), vec![16, 33]);
        assert_eq!(disk.postings_for("job", "a").expect("p"), vec![16, 50]);
        assert!(disk.has_posting(50, "job", "a").expect("p"));
        assert!(!disk.has_posting(50, "job", "b").expect("p"));
        disk.remove_series_rows(&[33, 50]).expect("remove");
        drop(disk);
        let disk = Disk::open(&d.path().join("i"), &d.path().join("c"), 1 << 20, 2.0).expect("reopen");
        let rows = disk.load_series().expect("load");
        let got: Vec<(u64, i64, i64, Vec<u8>)> =
            rows.into_iter().map(|r| (r.sref, r.min_t, r.max_t, r.labels)).collect();
        assert_eq!(got, vec![(16, 1, 9, a)]);
        assert_eq!(disk.postings_for("job", "a").expect("p"), vec![16]);
        assert_eq!(disk.load_heads().expect("heads"), vec![(33, vec![1, 2, 3])]);
        // New batches never reuse a surviving batch's key.
        disk.create_series_batch(&[(64, b.clone().into())]).expect("batch 3");
        assert_eq!(disk.load_series().expect("load").len(), 2);
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        assert!(decode_series(&[1, 2, 3]).is_err());
        assert!(postings_in(&[5, b'a'], "a", "b").is_err());
        assert!(unpack(b"not zstd", "x").is_err());
    }
}
