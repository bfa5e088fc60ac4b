//! The head: every series' in-memory state, split into [`SHARDS`] independently locked shards so
//! concurrent appenders rarely contend. A series holds its encoded labels, its time range, an open
//! XOR head chunk and a small sorted out-of-order buffer.
//!
//! In-order samples are appended to the head chunk, which is closed into a stored chunk after
//! [`HEAD_CHUNK_SAMPLES`] samples or [`CHUNK_SPAN_MS`] (like Prometheus' 120-sample head chunks).
//! A sample at or before the newest one is checked for an exact duplicate (a no-op, since
//! remote_write senders retry whole batches) or a conflicting value; otherwise, inside the
//! out-of-order window, it is merged: into the head chunk (re-encoded) when it falls in its range,
//! else into the out-of-order buffer, which is written as its own (overlapping) chunk; queries
//! merge overlapping chunks by timestamp.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crowsnest_wire::Sample;
use crowsnest_wire::labels::LabelPair;

use super::chunk::{self, ChunkMeta};
use super::index::labels_eq_encoded;
use super::metrics::Metrics;
use super::persist::{CHUNK_SPAN_MS, Disk, window_of};
use super::xor::XorChunk;
use crate::error::StoreError;

pub const SHARD_BITS: u32 = 4;
pub const SHARDS: usize = 1 << SHARD_BITS;
/// Samples per head chunk before it is closed.
pub const HEAD_CHUNK_SAMPLES: usize = 120;
/// Out-of-order samples buffered before they are written as a chunk.
pub const OOO_CHUNK_SAMPLES: usize = 120;

/// Hasher for keys that already are well-mixed u64s (label hashes, refs).
#[derive(Default)]
pub struct U64Hasher(u64);

impl Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (v >> 32);
    }
}

pub type U64Map<V> = HashMap<u64, V, BuildHasherDefault<U64Hasher>>;

/// The shard a label hash belongs to; refs carry their shard in the low bits.
pub fn shard_of_hash(hash: u64) -> usize {
    (hash >> 59) as usize & (SHARDS - 1)
}

pub fn shard_of_ref(sref: u64) -> usize {
    sref as usize & (SHARDS - 1)
}

/// Asks the CPU to start loading the cache line holding `p`, so a later read of it does not stall.
/// A prefetch never faults and changes no memory, so any pointer, dangling or not, is fine.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is only a hint to the cache; it reads nothing the program sees and
        // cannot fault, whatever `p` points at.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>())
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// What happened to one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Appended,
    Duplicate,
    /// Same timestamp, different value (carries the timestamp).
    DuplicateTimestamp,
    OutOfOrder,
}

/// One series in memory.
#[derive(Debug)]
pub struct MemSeries {
    pub labels: Box<[u8]>,
    pub hash: u64,
    /// Oldest sample anywhere (i64::MAX when none).
    pub min_t: i64,
    /// Newest sample anywhere (i64::MIN when none).
    pub max_t: i64,
    pub head: XorChunk,
    pub ooo: Vec<Sample>,
    /// Changed since the last checkpoint.
    pub dirty: bool,
}

/// Where appends write closed chunks, plus the chunks of one series decoded during one append
/// call (duplicate checks against disk).
pub struct DiskCache<'a> {
    disk: &'a Disk,
    m: &'a Metrics,
    chunks: Vec<(ChunkMeta, Vec<Sample>)>,
}

impl<'a> DiskCache<'a> {
    pub fn new(disk: &'a Disk, m: &'a Metrics) -> Self {
        DiskCache { disk, m, chunks: Vec::new() }
    }
}

impl MemSeries {
    pub fn new(labels: Box<[u8]>, hash: u64) -> Self {
        MemSeries {
            labels,
            hash,
            min_t: i64::MAX,
            max_t: i64::MIN,
            head: XorChunk::new(),
            ooo: Vec::new(),
            dirty: false,
        }
    }

    /// Closes the head chunk into a stored chunk.
    pub fn cut_head(&mut self, sref: u64, disk: &Disk, m: &Metrics) -> Result<(), StoreError> {
        if self.head.is_empty() {
            return Ok(());
        }
        let samples = self.head.samples();
        let bytes = chunk::encode_with_xor(&samples, &self.head);
        disk.put_chunk(sref, self.head.max_t(), &bytes)?;
        m.chunks.inc();
        m.chunk_bytes.inc_by(bytes.len() as u64);
        m.chunk_samples.inc_by(samples.len() as u64);
        self.head = XorChunk::new();
        self.dirty = true;
        Ok(())
    }

    /// Writes the out-of-order buffer as its own chunk.
    pub fn flush_ooo(&mut self, sref: u64, disk: &Disk, m: &Metrics) -> Result<(), StoreError> {
        let Some(last) = self.ooo.last() else { return Ok(()) };
        let bytes = chunk::encode(&self.ooo);
        disk.put_chunk(sref, last.timestamp, &bytes)?;
        m.chunks.inc();
        m.chunk_bytes.inc_by(bytes.len() as u64);
        m.chunk_samples.inc_by(self.ooo.len() as u64);
        self.ooo = Vec::new();
        Ok(())
    }

    fn value_at_on_disk(&self, sref: u64, t: i64, cache: &mut DiskCache) -> Result<Option<u64>, StoreError> {
        let (disk, m) = (cache.disk, cache.m);
        let covered = cache.chunks.iter().any(|(c, _)| c.min_t <= t && t <= c.max_t);
        if !covered {
            for c in disk.chunks_overlapping(sref, t, t)? {
                let location = c.location;
                match c.bytes.and_then(|raw| chunk::decode(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))) {
                    Ok((meta, s)) if !cache.chunks.iter().any(|(c, _)| c.min_t == meta.min_t) => {
                        cache.chunks.push((meta, s))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        m.corrupt_chunks.inc();
                        tracing::error!(series = sref, chunk = %location, error = %e, "Corrupt chunk skipped.");
                    }
                }
            }
        }
        for (c, s) in &cache.chunks {
            if c.min_t <= t
                && t <= c.max_t
                && let Ok(i) = s.binary_search_by_key(&t, |x| x.timestamp)
            {
                return Ok(Some(s[i].value.to_bits()));
            }
        }
        Ok(None)
    }

    /// Looks for an existing sample at `t` anywhere (head, out-of-order buffer, disk).
    fn existing(&self, sref: u64, t: i64, cache: &mut DiskCache) -> Result<Option<u64>, StoreError> {
        if !self.head.is_empty() && t >= self.head.min_t() && t <= self.head.max_t() {
            if t == self.head.max_t() {
                return Ok(Some(self.head.last_value_bits()));
            }
            return Ok(self.head.iter().find(|s| s.timestamp == t).map(|s| s.value.to_bits()));
        }
        if let Ok(i) = self.ooo.binary_search_by_key(&t, |x| x.timestamp) {
            return Ok(Some(self.ooo[i].value.to_bits()));
        }
        self.value_at_on_disk(sref, t, cache)
    }

    /// Appends one sample. `window` is the out-of-order window in ms (`None` during WAL replay,
    /// which accepts any order because concurrent appenders may log in a different order).
    pub fn append(
        &mut self,
        sref: u64,
        t: i64,
        v: f64,
        window: Option<i64>,
        cache: &mut DiskCache,
    ) -> Result<Outcome, StoreError> {
        let (disk, m) = (cache.disk, cache.m);
        let bits = v.to_bits();
        if t > self.max_t {
            if !self.head.is_empty()
                && (self.head.len() >= HEAD_CHUNK_SAMPLES
                    || t.saturating_sub(self.head.min_t()) >= CHUNK_SPAN_MS
                    || window_of(t) != window_of(self.head.min_t()))
            {
                self.cut_head(sref, disk, m)?;
            }
            self.head.append(t, v);
            self.max_t = t;
            self.min_t = self.min_t.min(t);
            self.dirty = true;
            return Ok(Outcome::Appended);
        }
        let too_old = window.is_some_and(|w| self.max_t.saturating_sub(t) > w);
        if let Some(old) = self.existing(sref, t, cache)? {
            return Ok(if old == bits { Outcome::Duplicate } else { Outcome::DuplicateTimestamp });
        }
        if too_old {
            return Ok(Outcome::OutOfOrder);
        }
        if !self.head.is_empty() && t >= self.head.min_t() {
            let mut samples = self.head.samples();
            let i = samples.partition_point(|s| s.timestamp < t);
            samples.insert(i, Sample::new(t, v));
            let mut c = XorChunk::new();
            for s in &samples {
                c.append(s.timestamp, s.value);
            }
            self.head = c;
        } else {
            if self.ooo.first().is_some_and(|f| window_of(f.timestamp) != window_of(t)) {
                self.flush_ooo(sref, disk, m)?;
            }
            let i = self.ooo.partition_point(|s| s.timestamp < t);
            self.ooo.insert(i, Sample::new(t, v));
            let span = self.ooo.last().map_or(0, |l| l.timestamp) - self.ooo.first().map_or(0, |f| f.timestamp);
            if self.ooo.len() >= OOO_CHUNK_SAMPLES || span >= CHUNK_SPAN_MS / 2 {
                self.flush_ooo(sref, disk, m)?;
            }
        }
        self.min_t = self.min_t.min(t);
        self.dirty = true;
        Ok(Outcome::Appended)
    }

    /// Samples held in memory within `[start, end]` (head chunk and out-of-order buffer).
    pub fn memory_samples(&self, start: i64, end: i64) -> Vec<Sample> {
        let mut out: Vec<Sample> = Vec::new();
        if !self.head.is_empty() && self.head.max_t() >= start && self.head.min_t() <= end {
            out.extend(self.head.iter().filter(|s| s.timestamp >= start && s.timestamp <= end));
        }
        out.extend(self.ooo.iter().filter(|s| s.timestamp >= start && s.timestamp <= end));
        out
    }

    /// Approximate heap bytes held by this series (for status and RSS estimates).
    pub fn heap_bytes(&self) -> usize {
        self.labels.len() + self.head.byte_len() + self.ooo.capacity() * 16
    }
}

/// The series of one shard in a slab: the append path reaches a series from its label hash with
/// one probe of a small hash→slot map and an index, instead of a second probe of a map holding the
/// series themselves (profiling showed the two probes' cache misses as the largest cost of
/// ingest). Lookups by reference (queries, compaction, retention) go through `by_ref`.
#[derive(Default)]
pub struct SeriesTable {
    slots: Vec<Option<(u64, MemSeries)>>,
    free: Vec<u32>,
    by_ref: U64Map<u32>,
}

impl SeriesTable {
    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }

    pub fn contains_key(&self, sref: &u64) -> bool {
        self.by_ref.contains_key(sref)
    }

    pub fn get(&self, sref: &u64) -> Option<&MemSeries> {
        let slot = *self.by_ref.get(sref)?;
        self.slots[slot as usize].as_ref().map(|(_, s)| s)
    }

    pub fn get_mut(&mut self, sref: &u64) -> Option<&mut MemSeries> {
        let slot = *self.by_ref.get(sref)?;
        self.slots[slot as usize].as_mut().map(|(_, s)| s)
    }

    /// Prefetches the series in `slot` (its first two cache lines hold every field the append
    /// path reads).
    pub fn prefetch(&self, slot: u32) {
        let p = self.slots.as_ptr().wrapping_add(slot as usize).cast::<u8>();
        prefetch(p);
        prefetch(p.wrapping_add(64));
    }

    /// The series in `slot` with its reference (slots come from [`Shard::probe`]).
    pub fn at(&self, slot: u32) -> Option<(u64, &MemSeries)> {
        self.slots.get(slot as usize)?.as_ref().map(|(r, s)| (*r, s))
    }

    pub fn at_mut(&mut self, slot: u32) -> Option<(u64, &mut MemSeries)> {
        self.slots.get_mut(slot as usize)?.as_mut().map(|(r, s)| (*r, s))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &MemSeries)> {
        self.slots.iter().flatten().map(|(r, s)| (r, s))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut MemSeries)> {
        self.slots.iter_mut().flatten().map(|(r, s)| (&*r, s))
    }

    pub fn values(&self) -> impl Iterator<Item = &MemSeries> {
        self.slots.iter().flatten().map(|(_, s)| s)
    }

    fn insert(&mut self, sref: u64, s: MemSeries) -> u32 {
        if let Some(&slot) = self.by_ref.get(&sref) {
            self.slots[slot as usize] = Some((sref, s));
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some((sref, s));
                slot
            }
            None => {
                self.slots.push(Some((sref, s)));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_ref.insert(sref, slot);
        slot
    }

    fn remove(&mut self, sref: &u64) -> Option<(u32, MemSeries)> {
        let slot = self.by_ref.remove(sref)?;
        let (_, s) = self.slots[slot as usize].take()?;
        self.free.push(slot);
        Some((slot, s))
    }
}

/// One lock's worth of series.
#[derive(Default)]
pub struct Shard {
    /// Label hash → slot of the first series with that hash; others with the same hash (a
    /// collision) are in `collisions`.
    by_hash: U64Map<u32>,
    collisions: U64Map<Vec<u32>>,
    pub series: SeriesTable,
}

impl Shard {
    /// The slot of the first series whose labels hash to `hash`, if any: a candidate only, since
    /// its labels may differ (see [`Shard::verify`]). Cheap, so the append path probes a run of
    /// series before touching any of them.
    pub fn probe(&self, hash: u64) -> Option<u32> {
        self.by_hash.get(&hash).copied()
    }

    /// The reference of the series with exactly `labels`, given its hash and the [`Shard::probe`]
    /// result for that hash.
    pub fn verify<L: LabelPair>(&self, hash: u64, candidate: Option<u32>, labels: &[L]) -> Option<(u32, u64)> {
        let first = candidate?;
        let matches = |slot: u32| match self.series.at(slot) {
            Some((sref, s)) if labels_eq_encoded(labels, &s.labels) => Some((slot, sref)),
            _ => None,
        };
        matches(first).or_else(|| self.collisions.get(&hash)?.iter().find_map(|&slot| matches(slot)))
    }

    pub fn find<L: LabelPair>(&self, hash: u64, labels: &[L]) -> Option<u64> {
        self.verify(hash, self.probe(hash), labels).map(|(_, sref)| sref)
    }

    /// Adds a series; returns its slot.
    pub fn insert(&mut self, sref: u64, s: MemSeries) -> u32 {
        if self.series.contains_key(&sref) {
            self.remove(sref);
        }
        let hash = s.hash;
        let slot = self.series.insert(sref, s);
        match self.by_hash.get(&hash) {
            Some(&first) if first != slot => self.collisions.entry(hash).or_default().push(slot),
            Some(_) => {}
            None => {
                self.by_hash.insert(hash, slot);
            }
        }
        slot
    }

    pub fn remove(&mut self, sref: u64) -> Option<MemSeries> {
        let (slot, s) = self.series.remove(&sref)?;
        if self.by_hash.get(&s.hash) == Some(&slot) {
            self.by_hash.remove(&s.hash);
            if let Some(mut rest) = self.collisions.remove(&s.hash)
                && let Some(next) = rest.pop()
            {
                self.by_hash.insert(s.hash, next);
                if !rest.is_empty() {
                    self.collisions.insert(s.hash, rest);
                }
            }
        } else if let Some(c) = self.collisions.get_mut(&s.hash) {
            c.retain(|r| *r != slot);
            if c.is_empty() {
                self.collisions.remove(&s.hash);
            }
        }
        Some(s)
    }
}
