//! What the store keeps in sled 0.34.7 (`reference/tsdb-performance.md` §5.3): few trees,
//! fixed-width big-endian keys, values compressed by us, never one key per sample.
//!
//! - `series_batches`, `postings_batches`, `state`: the series catalog, a few large values
//!   (see `catalog.rs`).
//! - `chunks`: `ref u64 BE | max_t (sign-flipped) u64 BE` → closed chunk (see `chunk.rs`): the
//!   series-major layout keyed by the chunk's *end* (§5.3 item 4), so `range((ref, start)..)` lands
//!   on the first chunk that can hold `start`, retention deletes a plain key range, and old data
//!   never slows down queries for recent data. Every chunk lies inside one [`BLOCK_WINDOW_MS`]
//!   window, which bounds how far past `end` a scan must look.
//!   The value is a pointer into the chunk payload files (`chunkfile.rs`):
//!   `0x10 | varint window | uvarint generation | uvarint offset | uvarint length | varint min_t`
//!   (inline chunk values are still read, for stores written before the payload files).
//!   Only compacted blocks of sealed windows get a pointer here (about one per series per
//!   window). The chunks of windows that are still open live in [`Disk`]'s in-memory map under
//!   the same keys and are rebuilt at startup by scanning their self-describing records
//!   ([`ChunkFiles::scan`]): inserting and then deleting one sled key per 120-sample chunk made
//!   sled's files grow to several times their live data (sled 0.34 collects garbage poorly).

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::RwLock;

use super::bits::{ByteReader, put_uvarint, put_varint};
use super::chunk;
use super::chunkfile::{ChunkFiles, FLAG_OPEN};
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
}

fn encode_pointer(window: i64, generation: u32, offset: u64, len: usize, min_t: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.push(POINTER);
    put_varint(&mut v, window);
    put_uvarint(&mut v, generation as u64);
    put_uvarint(&mut v, offset);
    put_uvarint(&mut v, len as u64);
    put_varint(&mut v, min_t);
    v
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

/// In-memory pointers to the chunks of open windows, by (ref, flipped max_t) like the sled keys.
type OpenChunks = BTreeMap<(u64, u64), Pointer>;

/// Shards of the open-chunk map (by series ref), so appenders and readers rarely contend.
const OPEN_SHARDS: usize = 16;

pub struct Disk {
    pub files: ChunkFiles,
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

impl Disk {
    pub fn open(path: &Path, chunk_dir: &Path, cache_capacity: u64) -> Result<Disk, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity)
            // Durability comes from our WAL; sled is flushed at checkpoints (see db.rs).
            .flush_every_ms(None);
        // sled's background I/O threads can hold its lock file for a moment after the previous
        // handle in this process was dropped (a restart in tests or after `close`): retry briefly.
        let mut attempt = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if attempt < 50 && e.to_string().contains("could not acquire lock") => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                r => break r?,
            }
        };
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
        let open: Box<[RwLock<OpenChunks>]> = (0..OPEN_SHARDS).map(|_| RwLock::new(BTreeMap::new())).collect();
        let mut rebuilt = 0usize;
        for f in files.scan()? {
            if f.flags != FLAG_OPEN {
                continue;
            }
            let p = Pointer {
                window: f.window,
                generation: f.generation,
                offset: f.offset,
                len: f.len as usize,
                min_t: f.min_t,
            };
            open[f.sref as usize % OPEN_SHARDS].write().insert((f.sref, flip(f.max_t)), p);
            rebuilt += 1;
        }
        if rebuilt > 0 {
            tracing::info!(chunks = rebuilt, "Rebuilt open-window chunk references from chunk files.");
        }
        Ok(Disk {
            files,
            open,
            series: db.open_tree("series_batches")?,
            postings: db.open_tree("postings_batches")?,
            state: db.open_tree("state")?,
            catalog: Default::default(),
            chunks: db.open_tree("chunks")?,
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
        let mut open = self.open_shard(sref).write();
        let keys: Vec<(u64, u64)> = open.range((sref, 0)..=(sref, u64::MAX)).map(|(k, _)| *k).collect();
        for k in keys {
            open.remove(&k);
            n += 1;
        }
        Ok(n)
    }

    /// Stores a closed chunk: payload into its window's file, pointer into sled.
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
        if seal {
            let r = self.files.append(window, sref, bytes, true, |generation, offset| {
                self.chunks.insert(chunk_key(sref, max_t), encode_pointer(window, generation, offset, len, min_t))
            })?;
            r?;
            // The sled pointer replaces an open chunk stored under the same key.
            self.open_shard(sref).write().remove(&(sref, flip(max_t)));
        } else {
            self.files.append(window, sref, bytes, false, |generation, offset| {
                let p = Pointer { window, generation, offset, len, min_t };
                self.open_shard(sref).write().insert((sref, flip(max_t)), p);
            })?;
        }
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

    /// Removes a chunk's pointer (sled or open-window map).
    pub fn remove_chunk(&self, key: &[u8]) -> Result<(), StoreError> {
        let k = key_parts(key)?;
        self.open_shard(k.0).write().remove(&k);
        self.chunks.remove(key)?;
        Ok(())
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
        let mut n = 0;
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
        Ok((dropped, first))
    }

    /// Number of chunk pointers in sled (compacted blocks of sealed windows).
    pub fn sled_chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Number of stored chunks (sled pointers and open-window chunks).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len() + self.open.iter().map(|s| s.read().len()).sum::<usize>()
    }

    /// Every stored chunk as (series ref, payload or read error), for fsck and tests.
    pub fn for_each_chunk(&self, mut f: impl FnMut(u64, Result<Vec<u8>, StoreError>)) -> Result<(), StoreError> {
        for kv in self.chunks.iter() {
            let (k, v) = kv?;
            let sref = key_parts(&k).map(|p| p.0).unwrap_or(u64::MAX);
            f(sref, self.resolve(&v));
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
        self.files.sync()?;
        Ok(self.db.flush()?)
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
