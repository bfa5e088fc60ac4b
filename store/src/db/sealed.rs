//! Where the blocks of sealed windows are: one index file per sealed file generation
//! (`chunks/w{window}-g{generation}.idx`), written once when compaction finishes sealing the
//! window, holding every block's (series ref, time range, offset, length) sorted by series.
//!
//! Why not sled keys: sled 0.34 stores about 200 bytes per small key however it is written (100k
//! block pointers, 3.3 MB of keys and values, took 17.6–20.4 MB of sled files, measured on a copy
//! of the benchmark's index; BENCHMARKS.md), which was 0.19 bytes per sample on the benchmark,
//! more than the gap to VictoriaMetrics. A sealed generation never changes, so its pointers can
//! be one immutable, zstd-compressed file (6.3 bytes per block on the benchmark).
//!
//! Index files are loaded on first use and kept while they fit the cache budget (least recently
//! used out first), so RSS does not grow with retention. Blocks removed before their window is
//! sealed again (`clean_tombstones` rewriting a block, a deleted series) are hidden by an
//! in-memory overlay until the next seal writes a new index without them; the durable record of
//! why they go (tombstones, the series catalog) outlives the overlay.
//!
//! File layout: `b"CNSX" | version u8 (1) | crc32 u32 LE (of what follows) | uvarint count |
//! uvarint raw_len | zstd(raw)`, raw per entry: `uvarint sref delta | varint (max_t - window start)
//! | uvarint (max_t - min_t) | uvarint offset | uvarint len`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::bits::{ByteReader, put_uvarint, put_varint};
use super::persist::BLOCK_WINDOW_MS;

const MAGIC: &[u8; 4] = b"CNSX";
const VERSION: u8 = 1;

/// One block of a sealed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedEntry {
    pub sref: u64,
    pub max_t: i64,
    pub min_t: i64,
    pub offset: u64,
    pub len: u32,
}

/// The index file name of a window generation.
pub fn idx_name(window: i64, generation: u32) -> String {
    format!("w{window}-g{generation}.idx")
}

fn corrupt(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

/// Serialises `entries` (sorted by series ref, then end time).
fn encode(window: i64, entries: &[SealedEntry]) -> io::Result<Vec<u8>> {
    let base = window.saturating_mul(BLOCK_WINDOW_MS);
    let mut raw = Vec::with_capacity(entries.len() * 12);
    let mut prev = 0u64;
    for e in entries {
        put_uvarint(&mut raw, e.sref.wrapping_sub(prev));
        prev = e.sref;
        put_varint(&mut raw, e.max_t.wrapping_sub(base));
        put_uvarint(&mut raw, e.max_t.wrapping_sub(e.min_t) as u64);
        put_uvarint(&mut raw, e.offset);
        put_uvarint(&mut raw, e.len as u64);
    }
    let z = zstd::bulk::compress(&raw, 3)?;
    let mut body = Vec::with_capacity(z.len() + 16);
    put_uvarint(&mut body, entries.len() as u64);
    put_uvarint(&mut body, raw.len() as u64);
    body.extend_from_slice(&z);
    let mut out = Vec::with_capacity(body.len() + 9);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Parses an index file's bytes (checksum verified).
fn decode(path: &Path, window: i64, bytes: &[u8]) -> io::Result<Vec<SealedEntry>> {
    if bytes.len() < 9 || &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return Err(corrupt(path, "not a sealed-window index"));
    }
    let crc = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    let body = &bytes[9..];
    if crc32fast::hash(body) != crc {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let mut r = ByteReader::new(body);
    let count = r.uvarint().ok_or_else(|| corrupt(path, "count"))? as usize;
    let raw_len = r.uvarint().ok_or_else(|| corrupt(path, "length"))? as usize;
    if raw_len > count.saturating_mul(60) + 16 || count > raw_len {
        return Err(corrupt(path, "length"));
    }
    let raw = zstd::bulk::decompress(r.rest(), raw_len)?;
    let base = window.saturating_mul(BLOCK_WINDOW_MS);
    let mut r = ByteReader::new(&raw);
    let mut out = Vec::with_capacity(count);
    let mut sref = 0u64;
    for _ in 0..count {
        let bad = || corrupt(path, "entry");
        sref = sref.wrapping_add(r.uvarint().ok_or_else(bad)?);
        let max_t = base.wrapping_add(r.varint().ok_or_else(bad)?);
        let min_t = max_t.wrapping_sub(r.uvarint().ok_or_else(bad)? as i64);
        let offset = r.uvarint().ok_or_else(bad)?;
        let len = u32::try_from(r.uvarint().ok_or_else(bad)?).map_err(|_| bad())?;
        out.push(SealedEntry { sref, max_t, min_t, offset, len });
    }
    Ok(out)
}

struct Slot {
    generation: u32,
    count: usize,
    loaded: Option<Arc<Vec<SealedEntry>>>,
    used: AtomicU64,
}

/// The sealed windows' block index (see the module doc).
pub struct SealedIndex {
    dir: PathBuf,
    windows: RwLock<BTreeMap<i64, Slot>>,
    /// Blocks removed since their window's index was written: (sref, max_t).
    removed: Mutex<HashSet<(u64, i64)>>,
    /// Bytes of loaded entries kept at most (the window in use is never evicted).
    budget: usize,
    clock: AtomicU64,
}

impl SealedIndex {
    /// Registers the newest index file of every window in `dir`, each verified (checksum and
    /// entries) but not kept in memory. Returns the index's view, per window the generation its
    /// index covers, and the windows whose newest index file is damaged: those are left out (a
    /// scan then finds their blocks by their records) and should be sealed again.
    pub fn open(dir: &Path, budget: usize) -> io::Result<(SealedIndex, HashMap<i64, u32>, Vec<i64>)> {
        let mut newest: HashMap<i64, u32> = HashMap::new();
        for e in fs::read_dir(dir)? {
            let name = e?.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix('w').and_then(|n| n.strip_suffix(".idx")) else { continue };
            let Some((w, g)) = rest.rsplit_once("-g") else { continue };
            let (Ok(w), Ok(g)) = (w.parse::<i64>(), g.parse::<u32>()) else { continue };
            let slot = newest.entry(w).or_insert(g);
            *slot = (*slot).max(g);
        }
        let mut windows = BTreeMap::new();
        let mut damaged = Vec::new();
        for (w, g) in &newest {
            let path = dir.join(idx_name(*w, *g));
            match fs::read(&path).and_then(|b| decode(&path, *w, &b)) {
                Ok(entries) => {
                    let slot = Slot { generation: *g, count: entries.len(), loaded: None, used: AtomicU64::new(0) };
                    windows.insert(*w, slot);
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "Damaged block index; the window's blocks are found by scanning its chunk file and it is sealed again.");
                    damaged.push(*w);
                }
            }
        }
        newest.retain(|w, _| !damaged.contains(w));
        let index = SealedIndex {
            dir: dir.to_path_buf(),
            windows: RwLock::new(windows),
            removed: Mutex::new(HashSet::new()),
            budget,
            clock: AtomicU64::new(1),
        };
        Ok((index, newest, damaged))
    }

    /// Writes (durably) and installs the index of `window`'s generation `generation`; blocks
    /// removed from the window before are forgotten (the new index no longer has them).
    pub fn install(&self, window: i64, generation: u32, mut entries: Vec<SealedEntry>) -> io::Result<()> {
        entries.sort_unstable_by_key(|e| (e.sref, e.max_t));
        let bytes = encode(window, &entries)?;
        let path = self.dir.join(idx_name(window, generation));
        let tmp = self.dir.join(format!("{}.tmp", idx_name(window, generation)));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        let count = entries.len();
        self.windows.write().insert(
            window,
            Slot { generation, count, loaded: Some(Arc::new(entries)), used: AtomicU64::new(self.tick()) },
        );
        let (lo, hi) =
            (window.saturating_mul(BLOCK_WINDOW_MS), window.saturating_add(1).saturating_mul(BLOCK_WINDOW_MS));
        self.removed.lock().retain(|(_, t)| *t < lo || *t >= hi);
        self.evict(window);
        Ok(())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Sealed windows in `[lo, hi]`, ascending.
    pub fn windows_in(&self, lo: i64, hi: i64) -> Vec<i64> {
        if lo > hi {
            return Vec::new();
        }
        self.windows.read().range(lo..=hi).map(|(w, _)| *w).collect()
    }

    /// `window`'s entries (generation, entries), loading its index file if needed.
    fn entries(&self, window: i64) -> io::Result<Option<(u32, Arc<Vec<SealedEntry>>)>> {
        let generation = {
            let windows = self.windows.read();
            let Some(slot) = windows.get(&window) else { return Ok(None) };
            if let Some(e) = &slot.loaded {
                slot.used.store(self.tick(), Ordering::Relaxed);
                return Ok(Some((slot.generation, Arc::clone(e))));
            }
            slot.generation
        };
        let path = self.dir.join(idx_name(window, generation));
        let entries = Arc::new(decode(&path, window, &fs::read(&path)?)?);
        {
            let mut windows = self.windows.write();
            if let Some(slot) = windows.get_mut(&window).filter(|s| s.generation == generation) {
                slot.loaded = Some(Arc::clone(&entries));
                slot.used.store(self.tick(), Ordering::Relaxed);
            }
        }
        self.evict(window);
        Ok(Some((generation, entries)))
    }

    /// Unloads least recently used windows (never `keep`) while loaded entries exceed the budget.
    fn evict(&self, keep: i64) {
        let mut windows = self.windows.write();
        let size = |s: &Slot| s.loaded.as_ref().map_or(0, |e| e.len() * std::mem::size_of::<SealedEntry>());
        let mut total: usize = windows.values().map(size).sum();
        while total > self.budget {
            let victim = windows
                .iter()
                .filter(|(w, s)| **w != keep && s.loaded.is_some())
                .min_by_key(|(_, s)| s.used.load(Ordering::Relaxed))
                .map(|(w, _)| *w);
            let Some(w) = victim else { break };
            if let Some(s) = windows.get_mut(&w) {
                total -= size(s);
                s.loaded = None;
            }
        }
    }

    /// Blocks of `sref` in `window` (not removed), ascending by end time, with their generation.
    pub fn series_in(&self, window: i64, sref: u64) -> io::Result<Vec<(u32, SealedEntry)>> {
        let Some((generation, entries)) = self.entries(window)? else { return Ok(Vec::new()) };
        let from = entries.partition_point(|e| e.sref < sref);
        let removed = self.removed.lock();
        Ok(entries[from..]
            .iter()
            .take_while(|e| e.sref == sref)
            .filter(|e| removed.is_empty() || !removed.contains(&(e.sref, e.max_t)))
            .map(|e| (generation, *e))
            .collect())
    }

    /// Hides the block of `sref` ending at `max_t` until its window is sealed again; returns
    /// whether there was one.
    pub fn remove(&self, sref: u64, max_t: i64) -> io::Result<bool> {
        let window = max_t.div_euclid(BLOCK_WINDOW_MS);
        let found = self.series_in(window, sref)?.iter().any(|(_, e)| e.max_t == max_t);
        if found {
            self.removed.lock().insert((sref, max_t));
        }
        Ok(found)
    }

    /// Forgets windows that end at or before `cutoff` (their files are being deleted).
    pub fn drop_windows_before(&self, cutoff: i64) {
        let keep = |w: i64| w.saturating_add(1).saturating_mul(BLOCK_WINDOW_MS) > cutoff;
        self.windows.write().retain(|w, _| keep(*w));
        self.removed.lock().retain(|(_, t)| keep(t.div_euclid(BLOCK_WINDOW_MS)));
    }

    /// Forgets windows whose index is in a generation that was deleted (`(window, up to
    /// generation)`); returns how many blocks that hid. Happens only if a seal failed half-way.
    pub fn forget_deleted(&self, deleted: &[(i64, u32)]) -> usize {
        let mut n = 0;
        self.windows.write().retain(|w, s| {
            let gone = deleted.iter().any(|(dw, g)| dw == w && s.generation <= *g);
            if gone {
                n += s.count;
            }
            !gone
        });
        n
    }

    /// Blocks in every sealed window, removed ones not counted (approximately: removed blocks
    /// are subtracted as they are known).
    pub fn count(&self) -> usize {
        let total: usize = self.windows.read().values().map(|s| s.count).sum();
        total.saturating_sub(self.removed.lock().len())
    }

    /// Every block of every sealed window (not removed), with window and generation.
    pub fn all(&self) -> io::Result<Vec<(i64, u32, SealedEntry)>> {
        let mut out = Vec::new();
        for w in self.windows_in(i64::MIN, i64::MAX) {
            let Some((g, entries)) = self.entries(w)? else { continue };
            let removed = self.removed.lock();
            out.extend(entries.iter().filter(|e| !removed.contains(&(e.sref, e.max_t))).map(|e| (w, g, *e)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sref: u64, w: i64, k: i64) -> SealedEntry {
        let max_t = w * BLOCK_WINDOW_MS + 1000 * k + 999;
        SealedEntry { sref, max_t, min_t: max_t - 500, offset: 17 + 100 * sref + k as u64, len: 90 + k as u32 }
    }

    #[test]
    fn installed_indexes_load_after_reopen_and_survive_eviction() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (idx, _, _) = SealedIndex::open(tmp.path(), 1 << 20).expect("open");
        let mut a: Vec<SealedEntry> =
            (0..500).flat_map(|s| [entry(s * 16 + 3, 4, 1), entry(s * 16 + 3, 4, 0)]).collect();
        a.reverse();
        idx.install(4, 2, a.clone()).expect("install");
        idx.install(5, 0, vec![entry(19, 5, 0)]).expect("install");
        let got = idx.series_in(4, 16 * 7 + 3).expect("read");
        assert_eq!(
            got.iter().map(|(g, e)| (*g, *e)).collect::<Vec<_>>(),
            vec![(2, entry(16 * 7 + 3, 4, 0)), (2, entry(16 * 7 + 3, 4, 1))]
        );
        assert!(idx.series_in(4, 4).expect("read").is_empty());
        assert!(idx.series_in(6, 3).expect("read").is_empty());

        // Reopen with a budget of one entry: every read loads from the file again.
        let (idx, newest, _) = SealedIndex::open(tmp.path(), 40).expect("reopen");
        assert_eq!(newest, HashMap::from([(4, 2), (5, 0)]));
        assert_eq!(idx.count(), 1001);
        assert_eq!(idx.series_in(5, 19).expect("read").len(), 1);
        assert_eq!(idx.series_in(4, 3).expect("read").len(), 2);
        assert_eq!(idx.series_in(5, 19).expect("read").len(), 1);
        assert_eq!(idx.all().expect("all").len(), 1001);
        assert_eq!(idx.windows_in(0, 4), vec![4]);
    }

    #[test]
    fn removed_blocks_hide_until_the_next_seal() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (idx, _, _) = SealedIndex::open(tmp.path(), 1 << 20).expect("open");
        idx.install(1, 0, vec![entry(3, 1, 0), entry(3, 1, 1)]).expect("install");
        assert!(idx.remove(3, entry(3, 1, 0).max_t).expect("remove"));
        assert!(!idx.remove(3, 12345).expect("remove"));
        assert_eq!(idx.series_in(1, 3).expect("read").len(), 1);
        idx.install(1, 1, vec![entry(3, 1, 0)]).expect("reseal");
        assert_eq!(idx.series_in(1, 3).expect("read"), vec![(1, entry(3, 1, 0))], "the new index decides");
    }

    #[test]
    fn damaged_files_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (idx, _, _) = SealedIndex::open(tmp.path(), 0).expect("open");
        idx.install(2, 0, vec![entry(3, 2, 0), entry(5, 2, 0)]).expect("install");
        let path = tmp.path().join(idx_name(2, 0));
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        fs::write(&path, &bytes).expect("write");
        let (idx, newest, damaged) = SealedIndex::open(tmp.path(), 0).expect("reopen");
        assert_eq!((newest.len(), damaged), (0, vec![2]), "left out, to be found by scanning");
        assert!(idx.series_in(2, 3).expect("read").is_empty());
        let err = decode(&path, 2, &bytes).expect_err("checksum");
        assert!(err.to_string().contains("checksum"), "{err}");
        for cut in 0..bytes.len() {
            let _ = decode(&path, 2, &bytes[..cut]);
        }
    }
}
