//! What the store keeps in sled 0.34.7 (`reference/tsdb-performance.md` §5.3): few trees,
//! fixed-width big-endian keys, values compressed by us, never one key per sample.
//!
//! - `series`: `ref u64 BE` → `min_t i64 LE | max_t i64 LE | encoded labels` (the truth for the
//!   label set ↔ ref mapping; the in-memory hash map and postings are rebuilt from it at start).
//! - `postings`: `uvarint len name | name | uvarint len value | value | ref u64 BE` → empty
//!   (the inverted index on disk, for `fsck` and tools; queries use the in-memory copy).
//! - `chunks`: `ref u64 BE | max_t (sign-flipped) u64 BE` → closed chunk (see `chunk.rs`): the
//!   series-major layout keyed by the chunk's *end* (§5.3 item 4), so `range((ref, start)..)` lands
//!   on the first chunk that can hold `start`, retention deletes a plain key range, and old data
//!   never slows down queries for recent data. Every chunk lies inside one [`BLOCK_WINDOW_MS`]
//!   window, which bounds how far past `end` a scan must look.
//!   The value is a pointer into the chunk payload files (`chunkfile.rs`):
//!   `0x10 | varint window | uvarint generation | uvarint offset | uvarint length | varint min_t`
//!   (inline chunk values are still read, for stores written before the payload files).
//! - `heads`: `ref u64 BE` → head chunk snapshot taken at the last checkpoint.

use std::path::Path;

use super::bits::{ByteReader, put_uvarint, put_varint};
use super::chunk;
use super::chunkfile::ChunkFiles;
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

/// Marks a chunks-tree value as a pointer into a payload file.
const POINTER: u8 = 0x10;

/// Where a chunk's payload lives.
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

pub struct Disk {
    pub files: ChunkFiles,
    db: sled::Db,
    series: sled::Tree,
    postings: sled::Tree,
    chunks: sled::Tree,
    heads: sled::Tree,
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

pub fn chunk_key(sref: u64, max_t: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&sref.to_be_bytes());
    k[8..].copy_from_slice(&flip(max_t).to_be_bytes());
    k
}

fn posting_keys(sref: u64, labels: &[u8]) -> Vec<Vec<u8>> {
    super::index::iter_encoded(labels)
        .map(|(n, v)| {
            let mut k = Vec::with_capacity(n.len() + v.len() + 12);
            put_uvarint(&mut k, n.len() as u64);
            k.extend_from_slice(n.as_bytes());
            put_uvarint(&mut k, v.len() as u64);
            k.extend_from_slice(v.as_bytes());
            k.extend_from_slice(&sref.to_be_bytes());
            k
        })
        .collect()
}

fn corrupt(what: &str) -> StoreError {
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
        Ok(Disk {
            files: ChunkFiles::open(chunk_dir)?,
            series: db.open_tree("series")?,
            postings: db.open_tree("postings")?,
            chunks: db.open_tree("chunks")?,
            heads: db.open_tree("heads")?,
            db,
        })
    }

    pub fn put_series(&self, sref: u64, min_t: i64, max_t: i64, labels: &[u8]) -> Result<(), StoreError> {
        let mut v = Vec::with_capacity(16 + labels.len());
        v.extend_from_slice(&min_t.to_le_bytes());
        v.extend_from_slice(&max_t.to_le_bytes());
        v.extend_from_slice(labels);
        self.series.insert(sref.to_be_bytes(), v)?;
        Ok(())
    }

    /// Writes a new series with its postings.
    pub fn create_series(&self, sref: u64, labels: &[u8]) -> Result<(), StoreError> {
        self.put_series(sref, i64::MAX, i64::MIN, labels)?;
        for k in posting_keys(sref, labels) {
            self.postings.insert(k, &[])?;
        }
        Ok(())
    }

    /// Updates only the time range of an existing series row.
    pub fn set_series_range(&self, sref: u64, min_t: i64, max_t: i64) -> Result<(), StoreError> {
        if let Some(old) = self.series.get(sref.to_be_bytes())? {
            let labels = old.get(16..).ok_or_else(|| corrupt("short series row"))?;
            self.put_series(sref, min_t, max_t, labels)?;
        }
        Ok(())
    }

    /// Removes a series completely: row, postings, head snapshot and chunks.
    pub fn remove_series(&self, sref: u64, labels: &[u8]) -> Result<u64, StoreError> {
        for k in posting_keys(sref, labels) {
            self.postings.remove(k)?;
        }
        self.heads.remove(sref.to_be_bytes())?;
        let mut n = 0;
        for kv in self.chunks.scan_prefix(sref.to_be_bytes()) {
            let (k, _) = kv?;
            self.chunks.remove(k)?;
            n += 1;
        }
        self.series.remove(sref.to_be_bytes())?;
        Ok(n)
    }

    pub fn load_series(&self) -> Result<Vec<SeriesRow>, StoreError> {
        let mut out = Vec::new();
        for kv in self.series.iter() {
            let (k, v) = kv?;
            let sref = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| corrupt("series key"))?);
            let num = |i: usize| {
                v.get(i..i + 8)
                    .and_then(|s| s.try_into().ok())
                    .map(i64::from_le_bytes)
                    .ok_or_else(|| corrupt("series row"))
            };
            out.push(SeriesRow { sref, min_t: num(0)?, max_t: num(8)?, labels: v[16..].to_vec() });
        }
        Ok(out)
    }

    /// Postings rows on disk for `(name, value)` (for fsck and tests).
    pub fn postings_for(&self, name: &str, value: &str) -> Result<Vec<u64>, StoreError> {
        let mut prefix = Vec::new();
        put_uvarint(&mut prefix, name.len() as u64);
        prefix.extend_from_slice(name.as_bytes());
        put_uvarint(&mut prefix, value.len() as u64);
        prefix.extend_from_slice(value.as_bytes());
        let mut out = Vec::new();
        for kv in self.postings.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if k.len() == prefix.len() + 8 {
                out.push(u64::from_be_bytes(k[prefix.len()..].try_into().map_err(|_| corrupt("postings key"))?));
            }
        }
        Ok(out)
    }

    /// True when the postings row for `(name, value, sref)` exists.
    pub fn has_posting(&self, sref: u64, name: &str, value: &str) -> Result<bool, StoreError> {
        let mut enc = Vec::new();
        super::index::encode_labels(&[crowsnest_wire::Label::new(name, value)], &mut enc);
        let key = posting_keys(sref, &enc).pop().unwrap_or_default();
        Ok(self.postings.contains_key(key)?)
    }

    /// Stores a closed chunk: payload into its window's file, pointer into sled.
    pub fn put_chunk(&self, sref: u64, max_t: i64, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_chunk_inner(sref, max_t, bytes, false)
    }

    /// Like [`Disk::put_chunk`] for compaction's rewrite of a window being sealed.
    pub fn put_chunk_sealed(&self, sref: u64, max_t: i64, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_chunk_inner(sref, max_t, bytes, true)
    }

    fn put_chunk_inner(&self, sref: u64, max_t: i64, bytes: &[u8], seal: bool) -> Result<(), StoreError> {
        let window = window_of(max_t);
        let min_t = chunk::min_t_unchecked(bytes).unwrap_or(max_t);
        let r = self.files.append(window, bytes, seal, |generation, off| {
            self.chunks.insert(chunk_key(sref, max_t), encode_pointer(window, generation, off, bytes.len(), min_t))
        })?;
        r?;
        Ok(())
    }

    /// The chunk bytes behind an index value (reading the payload file for pointers).
    pub fn resolve(&self, v: &[u8]) -> Result<Vec<u8>, StoreError> {
        match decode_pointer(v) {
            Some(p) => Ok(self.files.read(p.window, p.generation, p.offset, p.len)?),
            None => Ok(v.to_vec()),
        }
    }

    pub fn remove_chunk(&self, key: &[u8]) -> Result<(), StoreError> {
        self.chunks.remove(key)?;
        Ok(())
    }

    /// Chunks of `sref` that may overlap `[start, end]` (by their end time and start time, checksum
    /// not yet verified), in end-time order.
    pub fn chunks_overlapping(&self, sref: u64, start: i64, end: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        let lo = chunk_key(sref, start);
        let hi = chunk_key(sref, end.saturating_add(BLOCK_WINDOW_MS));
        let mut out = Vec::new();
        for kv in self.chunks.range(lo..=hi) {
            let v = kv?.1;
            if value_min_t(&v).is_none_or(|min_t| min_t <= end) {
                out.push(self.resolve(&v)?);
            }
        }
        Ok(out)
    }

    /// Chunks of `sref` whose end time is in `[lo, hi)`, with their keys.
    pub fn chunks_ending_in(&self, sref: u64, lo: i64, hi: i64) -> Result<Vec<(sled::IVec, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.chunks.range(chunk_key(sref, lo)..chunk_key(sref, hi)) {
            let (k, v) = kv?;
            let bytes = self.resolve(&v)?;
            out.push((k, bytes));
        }
        Ok(out)
    }

    /// Deletes the chunks of `sref` that end before `cutoff` (a key range: no value is read);
    /// returns (dropped, earliest start of the chunks kept).
    pub fn drop_chunks_before(&self, sref: u64, cutoff: i64) -> Result<(u64, Option<i64>), StoreError> {
        let mut dropped = 0;
        for kv in self.chunks.range(chunk_key(sref, i64::MIN)..chunk_key(sref, cutoff)) {
            self.chunks.remove(kv?.0)?;
            dropped += 1;
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
        Ok((dropped, first))
    }

    pub fn put_head(&self, sref: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.heads.insert(sref.to_be_bytes(), snapshot)?;
        Ok(())
    }

    pub fn remove_head(&self, sref: u64) -> Result<(), StoreError> {
        self.heads.remove(sref.to_be_bytes())?;
        Ok(())
    }

    pub fn load_heads(&self) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.heads.iter() {
            let (k, v) = kv?;
            out.push((u64::from_be_bytes(k.as_ref().try_into().map_err(|_| corrupt("head key"))?), v));
        }
        Ok(out)
    }

    /// Every chunk key and value (fsck, startup counting).
    pub fn chunks_iter(&self) -> sled::Iter {
        self.chunks.iter()
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

    /// sled's files alone.
    pub fn sled_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
