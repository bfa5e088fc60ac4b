//! Where the store's chunks are, and what it keeps in sled 0.34.7 (`reference/tsdb-performance.md`
//! §5.3): few trees, values compressed by us, never one key per sample or per chunk.
//!
//! - `series_batches`, `postings_batches`, `state`: the series catalog, a few large values
//!   (see `catalog.rs`).
//! - Chunks are addressed by `(ref, max_t sign-flipped)`: the series-major layout keyed by the
//!   chunk's *end* (§5.3 item 4), so a range lookup from `(ref, start)` lands on the first chunk
//!   that can hold `start`. Every chunk lies inside one [`BLOCK_WINDOW_MS`] window, which bounds
//!   how far past `end` a lookup must look. Payloads live in the chunk files (`chunkfile.rs`).
//! - Compacted blocks of sealed windows are found through each window's index file
//!   (`sealed.rs`); chunks of windows that are still open, and blocks of a seal in progress, in
//!   [`Disk`]'s in-memory map, rebuilt at startup by scanning their self-describing records
//!   ([`ChunkFiles::scan`]). Neither uses sled: it stores about 200 bytes per small key however
//!   it is written, and far more under insert/delete churn (sled 0.34 collects garbage poorly).
//! - `chunks`: the sled tree of the previous layout, `ref u64 BE | max_t (sign-flipped) u64 BE`
//!   → `0x10 | varint window | uvarint generation | uvarint offset | uvarint length | varint
//!   min_t` (or an inline chunk), still read and emptied as its windows are sealed again.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::RwLock;

use super::bits::ByteReader;
use super::chunk;
use super::chunkfile::{ChunkFiles, FLAG_OPEN, FLAG_SEALED};
use super::sealed::{SealedEntry, SealedIndex};
use crate::error::StoreError;

/// Longest time range one head chunk may cover before it is closed.
pub const CHUNK_SPAN_MS: i64 = 2 * 3600 * 1000;

/// Chunks never straddle these aligned windows; compaction merges a window's chunks of one series
/// into blocks. A chunk overlapping `[start, end]` therefore ends in `[start, end + window)`.
pub const BLOCK_WINDOW_MS: i64 = 6 * 3600 * 1000;

/// The aligned window a timestamp falls in.
pub fn window_of(t: i64) -> i64 {
    t.div_euclid(BLOCK_WINDOW_MS)
}

/// The sled tree of the previous on-disk layout (refused at open).
const LEGACY_SERIES_TREE: &[u8] = b"series";

/// Marks a chunks-tree value as a pointer into a payload file.
const POINTER: u8 = 0x10;

/// Where a chunk's payload lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pointer {
    window: i64,
    generation: u32,
    offset: u64,
    len: usize,
    min_t: i64,
    /// A compacted block of a seal in progress (its window's index file is not written yet).
    sealed: bool,
}

fn decode_pointer(v: &[u8]) -> Option<Pointer> {
    if v.first() != Some(&POINTER) {
        return None;
    }
    let mut r = ByteReader::new(&v[1..]);
    Some(Pointer {
        window: r.varint()?,
        generation: u32::try_from(r.uvarint()?).ok()?,
        offset: r.uvarint()?,
        len: usize::try_from(r.uvarint()?).ok()?,
        min_t: r.varint()?,
        sealed: true,
    })
}

/// Start time of a stored chunk from its index value, without reading the payload.
pub fn value_min_t(v: &[u8]) -> Option<i64> {
    match decode_pointer(v) {
        Some(p) => Some(p.min_t),
        None => chunk::min_t_unchecked(v),
    }
}

/// Where a stored chunk lives, for error logs (`chunks/w12-g1.dat@4096+311`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkLocation {
    /// A payload file record: the payload's offset and length.
    File { window: i64, generation: u32, offset: u64, len: usize },
    /// Inline in the sled index (older layout).
    Index,
}

impl From<Pointer> for ChunkLocation {
    fn from(p: Pointer) -> Self {
        ChunkLocation::File { window: p.window, generation: p.generation, offset: p.offset, len: p.len }
    }
}

impl std::fmt::Display for ChunkLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkLocation::File { window, generation, offset, len } => {
                write!(f, "chunks/w{window}-g{generation}.dat@{offset}+{len}")
            }
            ChunkLocation::Index => f.write_str("index"),
        }
    }
}

/// One chunk read for a query: where it is and its bytes (or why they could not be read).
pub struct StoredChunk {
    pub location: ChunkLocation,
    pub bytes: Result<Vec<u8>, StoreError>,
}

/// A chunk's key (as in the `chunks` tree) and payload.
pub type KeyedChunk = ([u8; 16], Vec<u8>);

/// A chunk's key (ref, flipped max_t) and where it is.
type KeyedPointer = ((u64, u64), Pointer);

/// In-memory pointers to the chunks of open windows, by (ref, flipped max_t) like the sled keys.
type OpenChunks = BTreeMap<(u64, u64), Pointer>;

/// Shards of the open-chunk map (by series ref), so appenders and readers rarely contend.
const OPEN_SHARDS: usize = 16;

pub struct Disk {
    pub files: ChunkFiles,
    /// Blocks of sealed windows (`sealed.rs`).
    sealed: SealedIndex,
    open: Box<[RwLock<OpenChunks>]>,
    db: sled::Db,
    /// See `catalog.rs`.
    pub(super) series: sled::Tree,
    pub(super) postings: sled::Tree,
    pub(super) state: sled::Tree,
    pub(super) catalog: super::catalog::CatalogState,
    chunks: sled::Tree,
}

/// One row of the `series` tree.
pub struct SeriesRow {
    pub sref: u64,
    pub min_t: i64,
    pub max_t: i64,
    pub labels: Vec<u8>,
}

fn flip(t: i64) -> u64 {
    (t as u64) ^ (1 << 63)
}

fn key_parts(k: &[u8]) -> Result<(u64, u64), StoreError> {
    let a = k.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    let b = k.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    a.zip(b).ok_or_else(|| corrupt("chunk key"))
}

fn key_bytes((sref, fmax): (u64, u64)) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&sref.to_be_bytes());
    k[8..].copy_from_slice(&fmax.to_be_bytes());
    k
}

pub fn chunk_key(sref: u64, max_t: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&sref.to_be_bytes());
    k[8..].copy_from_slice(&flip(max_t).to_be_bytes());
    k
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Opens sled at `path`. Its background I/O threads can hold the lock file for a moment after the
/// previous handle in this process was dropped (a restart in tests, after `close`, or a vacuum):
/// retry briefly.
pub(super) fn open_sled(path: &Path, cache_capacity: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity)
        // Durability comes from our WAL; sled is flushed at checkpoints (see db.rs).
        .flush_every_ms(None);
    let mut attempt = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if attempt < 50 && e.to_string().contains("could not acquire lock") => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => return Ok(r?),
        }
    }
}

impl Disk {
    /// Opens the index at `path` and the payload files in `chunk_dir`. With `vacuum_ratio` > 0,
    /// an index whose files exceed that multiple of its live entries is first rewritten
    /// (`vacuum.rs`).
    pub fn open(path: &Path, chunk_dir: &Path, cache_capacity: u64, vacuum_ratio: f64) -> Result<Disk, StoreError> {
        super::vacuum::recover(path)?;
        let mut db = open_sled(path, cache_capacity)?;
        let on_disk = db.size_on_disk()?;
        if super::vacuum::worth_it(on_disk, 0, vacuum_ratio) {
            let live = super::vacuum::live_bytes(&db)?;
            if super::vacuum::worth_it(on_disk, live, vacuum_ratio) {
                let started = std::time::Instant::now();
                let (before, after) = super::vacuum::run(db, path)?;
                tracing::info!(
                    before_bytes = before,
                    after_bytes = after,
                    live_bytes = live,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Rewrote the index without sled's superseded pages."
                );
                db = open_sled(path, cache_capacity)?;
            }
        }
        // The layout before the series catalog and self-describing chunk records kept one sled
        // key per series in `series`; its chunk files have no record headers and a scan would
        // cut them off. Refuse rather than lose data.
        if db.tree_names().iter().any(|n| n.as_ref() == LEGACY_SERIES_TREE)
            && !db.open_tree(LEGACY_SERIES_TREE)?.is_empty()
        {
            return Err(StoreError::Corrupt(format!(
                "{} was written by an older store format (per-series sled rows); start with an empty data directory",
                path.display()
            )));
        }
        let files = ChunkFiles::open(chunk_dir)?;
        let (sealed, indexed, damaged) = SealedIndex::open(chunk_dir, cache_capacity as usize)?;
        for w in damaged {
            files.mark_unsealed(w);
        }
        let open: Box<[RwLock<OpenChunks>]> = (0..OPEN_SHARDS).map(|_| RwLock::new(BTreeMap::new())).collect();
        let mut rebuilt = 0usize;
        let chunks = db.open_tree("chunks")?;
        // Stores written before the index files kept sealed blocks' pointers in sled.
        let legacy = !chunks.is_empty();
        for f in files.scan()? {
            // Records of a generation with an index file are in it (sealed blocks) or were
            // rewritten into it (open chunks of older generations); open chunks appended after
            // the seal, and every record of a seal that did not finish, are not.
            let covered = indexed.get(&f.window).copied();
            let take = match (f.flags, covered) {
                (FLAG_SEALED, None) => !legacy,
                (_, None) => true,
                (FLAG_OPEN, Some(g)) => f.generation >= g,
                (FLAG_SEALED, Some(g)) => f.generation > g,
                _ => false,
            };
            if !take {
                continue;
            }
            let p = Pointer {
                window: f.window,
                generation: f.generation,
                offset: f.offset,
                len: f.len as usize,
                min_t: f.min_t,
                sealed: f.flags == FLAG_SEALED,
            };
            open[f.sref as usize % OPEN_SHARDS].write().insert((f.sref, flip(f.max_t)), p);
            rebuilt += 1;
        }
        if rebuilt > 0 {
            tracing::info!(chunks = rebuilt, "Rebuilt open-window chunk references from chunk files.");
        }
        Ok(Disk {
            files,
            sealed,
            open,
            series: db.open_tree("series_batches")?,
            postings: db.open_tree("postings_batches")?,
            state: db.open_tree("state")?,
            catalog: Default::default(),
            chunks,
            db,
        })
    }

    /// Removes a series' chunks (sled pointers and open-window chunks); returns how many.
    pub fn remove_series_chunks(&self, sref: u64) -> Result<u64, StoreError> {
        let mut n = 0;
        for kv in self.chunks.scan_prefix(sref.to_be_bytes()) {
            let (k, _) = kv?;
            self.chunks.remove(k)?;
            n += 1;
        }
        {
            let mut open = self.open_shard(sref).write();
            let keys: Vec<(u64, u64)> = open.range((sref, 0)..=(sref, u64::MAX)).map(|(k, _)| *k).collect();
            for k in keys {
                open.remove(&k);
                n += 1;
            }
        }
        for w in self.sealed.windows_in(i64::MIN, i64::MAX) {
            for (_, e) in self.sealed.series_in(w, sref)? {
                self.sealed.remove(sref, e.max_t)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Stores a closed chunk: payload into its window's file, pointer into the in-memory map.
    pub fn put_chunk(&self, sref: u64, max_t: i64, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_chunk_inner(sref, max_t, bytes, false)
    }

    /// Like [`Disk::put_chunk`] for compaction's rewrite of a window being sealed.
    pub fn put_chunk_sealed(&self, sref: u64, max_t: i64, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_chunk_inner(sref, max_t, bytes, true)
    }

    fn open_shard(&self, sref: u64) -> &RwLock<OpenChunks> {
        &self.open[sref as usize % OPEN_SHARDS]
    }

    fn put_chunk_inner(&self, sref: u64, max_t: i64, bytes: &[u8], seal: bool) -> Result<(), StoreError> {
        let window = window_of(max_t);
        let min_t = chunk::min_t_unchecked(bytes).unwrap_or(max_t);
        let len = bytes.len();
        // A compacted block stays in the in-memory map (flagged sealed) until its window's seal
        // finishes and writes the index file (`finish_seal`); it replaces an open chunk stored
        // under the same key.
        self.files.append(window, sref, bytes, seal, |generation, offset| {
            let p = Pointer { window, generation, offset, len, min_t, sealed: seal };
            self.open_shard(sref).write().insert((sref, flip(max_t)), p);
        })?;
        Ok(())
    }

    fn read_pointer(&self, p: &Pointer) -> Result<Vec<u8>, StoreError> {
        Ok(self.files.read(p.window, p.generation, p.offset, p.len)?)
    }

    /// The chunk bytes behind an index value (reading the payload file for pointers).
    pub fn resolve(&self, v: &[u8]) -> Result<Vec<u8>, StoreError> {
        match decode_pointer(v) {
            Some(p) => self.read_pointer(&p),
            None => Ok(v.to_vec()),
        }
    }

    /// Removes a chunk's pointer (open-window map, a sealed window's index until the window is
    /// sealed again, or a legacy sled pointer).
    pub fn remove_chunk(&self, key: &[u8]) -> Result<(), StoreError> {
        let k = key_parts(key)?;
        if self.open_shard(k.0).write().remove(&k).is_none() {
            self.sealed.remove(k.0, (k.1 ^ (1 << 63)) as i64)?;
        }
        self.chunks.remove(key)?;
        Ok(())
    }

    /// Finishes sealing `window`: writes the index file of its live generation from the blocks
    /// compaction wrote (all synced by then), drops them from the in-memory map, and marks the
    /// generation sealed unless open chunks arrived meanwhile. The caller holds the compaction
    /// lock.
    pub fn finish_seal(&self, window: i64) -> Result<(), StoreError> {
        let Some(generation) = self.files.generation(window) else { return Ok(()) };
        let mut entries: Vec<SealedEntry> = Vec::new();
        for shard in self.open.iter() {
            for ((sref, fmax), p) in shard.read().iter() {
                if p.sealed && p.window == window && p.generation == generation {
                    let len = u32::try_from(p.len).map_err(|_| corrupt("block length"))?;
                    entries.push(SealedEntry {
                        sref: *sref,
                        max_t: (fmax ^ (1 << 63)) as i64,
                        min_t: p.min_t,
                        offset: p.offset,
                        len,
                    });
                }
            }
        }
        self.sealed.install(window, generation, entries)?;
        for shard in self.open.iter() {
            shard.write().retain(|_, p| !(p.sealed && p.window == window && p.generation == generation));
        }
        self.files.finish_seal(window)?;
        Ok(())
    }

    /// Blocks of `sref` in sealed windows `[lo_w, hi_w]`, as keys and pointers, ascending.
    fn sealed_range(&self, sref: u64, lo_w: i64, hi_w: i64) -> Result<Vec<KeyedPointer>, StoreError> {
        let mut out = Vec::new();
        for w in self.sealed.windows_in(lo_w, hi_w) {
            for (generation, e) in self.sealed.series_in(w, sref)? {
                let p = Pointer {
                    window: w,
                    generation,
                    offset: e.offset,
                    len: e.len as usize,
                    min_t: e.min_t,
                    sealed: true,
                };
                out.push(((sref, flip(e.max_t)), p));
            }
        }
        Ok(out)
    }

    /// Open-window pointers of `sref` with keys in `[lo, hi]`.
    fn open_range(&self, sref: u64, lo: u64, hi: u64) -> Vec<((u64, u64), Pointer)> {
        if lo > hi {
            return Vec::new();
        }
        self.open_shard(sref).read().range((sref, lo)..=(sref, hi)).map(|(k, p)| (*k, *p)).collect()
    }

    /// Chunks of `sref` that may overlap `[start, end]` (by their end time and start time, checksum
    /// not yet verified); sealed blocks first, each group in end-time order. A chunk whose bytes
    /// cannot be read is returned as an error beside its location, so one bad chunk does not hide
    /// the others (the caller logs, counts and skips it).
    pub fn chunks_overlapping(&self, sref: u64, start: i64, end: i64) -> Result<Vec<StoredChunk>, StoreError> {
        let lo = chunk_key(sref, start);
        let hi = chunk_key(sref, end.saturating_add(BLOCK_WINDOW_MS));
        let mut out = Vec::new();
        for kv in self.chunks.range(lo..=hi) {
            let v = kv?.1;
            if value_min_t(&v).is_none_or(|min_t| min_t <= end) {
                let location = decode_pointer(&v).map_or(ChunkLocation::Index, ChunkLocation::from);
                out.push(StoredChunk { location, bytes: self.resolve(&v) });
            }
        }
        for ((_, fmax), p) in self.sealed_range(sref, window_of(start), window_of(end))? {
            if p.min_t <= end && fmax >= flip(start) {
                out.push(StoredChunk { location: ChunkLocation::from(p), bytes: self.read_pointer(&p) });
            }
        }
        for (_, p) in self.open_range(sref, flip(start), flip(end.saturating_add(BLOCK_WINDOW_MS))) {
            if p.min_t <= end {
                out.push(StoredChunk { location: ChunkLocation::from(p), bytes: self.read_pointer(&p) });
            }
        }
        Ok(out)
    }

    /// Chunks of `sref` whose end time is in `[lo, hi)`, with their keys (sled and open-window).
    pub fn chunks_ending_in(&self, sref: u64, lo: i64, hi: i64) -> Result<Vec<KeyedChunk>, StoreError> {
        let mut out = Vec::new();
        for kv in self.chunks.range(chunk_key(sref, lo)..chunk_key(sref, hi)) {
            let (k, v) = kv?;
            let key: [u8; 16] = k.as_ref().try_into().map_err(|_| corrupt("chunk key"))?;
            out.push((key, self.resolve(&v)?));
        }
        if hi > lo {
            for (k, p) in self.sealed_range(sref, window_of(lo), window_of(hi - 1))? {
                if k.1 >= flip(lo) && k.1 < flip(hi) {
                    out.push((key_bytes(k), self.read_pointer(&p)?));
                }
            }
            for (k, p) in self.open_range(sref, flip(lo), flip(hi) - 1) {
                out.push((key_bytes(k), self.read_pointer(&p)?));
            }
        }
        Ok(out)
    }

    /// Drops open-window pointers into file generations that were deleted (`(window, up to
    /// generation)`); returns how many there were. Compaction removes them before a generation is
    /// retired, so finding any means a chunk was missed; they could not be read anyway.
    pub fn forget_deleted(&self, deleted: &[(i64, u32)]) -> usize {
        if deleted.is_empty() {
            return 0;
        }
        let mut n = self.sealed.forget_deleted(deleted);
        for shard in self.open.iter() {
            shard.write().retain(|_, p| {
                let gone = deleted.iter().any(|(w, g)| p.window == *w && p.generation <= *g);
                n += usize::from(gone);
                !gone
            });
        }
        n
    }

    /// Deletes the chunks of `sref` that end before `cutoff` (a key range: no value is read);
    /// returns (dropped, earliest start of the chunks kept).
    pub fn drop_chunks_before(&self, sref: u64, cutoff: i64) -> Result<(u64, Option<i64>), StoreError> {
        let mut dropped = 0;
        for kv in self.chunks.range(chunk_key(sref, i64::MIN)..chunk_key(sref, cutoff)) {
            self.chunks.remove(kv?.0)?;
            dropped += 1;
        }
        {
            let mut open = self.open_shard(sref).write();
            let keys: Vec<(u64, u64)> = open.range((sref, 0)..(sref, flip(cutoff))).map(|(k, _)| *k).collect();
            for k in keys {
                open.remove(&k);
                dropped += 1;
            }
        }
        // Chunks start at most one window before they end: look that far for the earliest start.
        let mut first: Option<i64> = None;
        let mut limit = i64::MAX;
        for kv in self.chunks.range(chunk_key(sref, cutoff)..=chunk_key(sref, i64::MAX)) {
            let (k, v) = kv?;
            let max_t = (u64::from_be_bytes(k[8..16].try_into().map_err(|_| corrupt("chunk key"))?) ^ (1 << 63)) as i64;
            if max_t > limit {
                break;
            }
            let min_t = value_min_t(&v).unwrap_or(max_t);
            first = Some(first.map_or(min_t, |f: i64| f.min(min_t)));
            limit = limit.min(max_t.saturating_add(BLOCK_WINDOW_MS));
        }
        let open_first =
            self.open_shard(sref).read().range((sref, flip(cutoff))..=(sref, u64::MAX)).map(|(_, p)| p.min_t).min();
        if let Some(m) = open_first {
            first = Some(first.map_or(m, |f: i64| f.min(m)));
        }
        // Sealed windows go whole (their index files are immutable): blocks in windows ending at
        // or before `cutoff` count as dropped (`remove_windows_before` deletes them in the same
        // pass); the earliest window still holding the series gives its first kept start.
        let whole_before = |w: i64| w.saturating_add(1).saturating_mul(BLOCK_WINDOW_MS) <= cutoff;
        for w in self.sealed.windows_in(i64::MIN, i64::MAX) {
            let blocks = self.sealed.series_in(w, sref)?;
            if whole_before(w) {
                for (_, e) in &blocks {
                    self.sealed.remove(sref, e.max_t)?;
                }
                dropped += blocks.len() as u64;
            } else if let Some(m) = blocks.iter().map(|(_, e)| e.min_t).min() {
                first = Some(first.map_or(m, |f: i64| f.min(m)));
                break;
            }
        }
        Ok((dropped, first))
    }

    /// Deletes the payload and index files of windows that end at or before `cutoff` (retention).
    pub fn remove_windows_before(&self, cutoff: i64) -> Result<usize, StoreError> {
        self.sealed.drop_windows_before(cutoff);
        Ok(self.files.remove_windows_before(cutoff)?)
    }

    /// Number of blocks of sealed windows (in index files, or legacy sled pointers).
    pub fn sealed_chunk_count(&self) -> usize {
        self.chunks.len() + self.sealed.count()
    }

    /// Number of stored chunks (sealed blocks and the in-memory map's chunks).
    pub fn chunk_count(&self) -> usize {
        self.sealed_chunk_count() + self.open.iter().map(|s| s.read().len()).sum::<usize>()
    }

    /// Every stored chunk as (series ref, payload or read error), for fsck and tests.
    pub fn for_each_chunk(&self, mut f: impl FnMut(u64, Result<Vec<u8>, StoreError>)) -> Result<(), StoreError> {
        for kv in self.chunks.iter() {
            let (k, v) = kv?;
            let sref = key_parts(&k).map(|p| p.0).unwrap_or(u64::MAX);
            f(sref, self.resolve(&v));
        }
        for (window, generation, e) in self.sealed.all()? {
            f(e.sref, Ok(self.files.read(window, generation, e.offset, e.len as usize)?));
        }
        for shard in self.open.iter() {
            let list: Vec<((u64, u64), Pointer)> = shard.read().iter().map(|(k, p)| (*k, *p)).collect();
            for ((sref, _), p) in list {
                f(sref, self.read_pointer(&p));
            }
        }
        Ok(())
    }

    /// Makes every chunk file write and then every sled write durable (in that order, so no
    /// durable pointer refers to bytes that are not).
    pub fn flush(&self) -> Result<usize, StoreError> {
        let stale = self.take_stale_heads();
        self.files.sync()?;
        // If the flush fails the files stay; the next open deletes what sled does not name.
        let n = self.db.flush()?;
        self.delete_heads(stale);
        Ok(n)
    }

    /// sled's files plus the chunk payload files.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.files.disk_bytes()
    }

    /// Opens (creating if needed) another tree of the index database.
    pub(super) fn open_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// Writes a copy of every index tree into a new sled database at `path` (snapshots). The
    /// caller holds the locks of every index writer (checkpoint, compaction, retention, deletes).
    pub(super) fn copy_index_to(&self, path: &Path) -> Result<(), StoreError> {
        let copy = sled::Config::new().path(path).cache_capacity(8 << 20).flush_every_ms(None).open()?;
        copy.import(self.db.export());
        copy.flush()?;
        Ok(())
    }

    /// sled's files alone.
    pub fn sled_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
