//! The engine behind [`crate::Db`]: shared state, and opening (sled load, head snapshots, WAL
//! replay). Ingest, queries and maintenance are `impl Engine` blocks in `ingest.rs`, `query.rs`
//! and `maintain.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crowsnest_wire::ops::SharedRegistry;
use parking_lot::{Mutex, RwLock};

use super::MetadataEntry;
use super::head::{DiskCache, MemSeries, SHARD_BITS, SHARDS, Shard, shard_of_hash, shard_of_ref};
use super::index::{LabelHash, Postings, decode_labels};
use super::metrics::Metrics;
use super::persist::Disk;
use super::tombstones::{self, Tombstones};
use super::wal::{self, Record, Wal};
use super::xor::XorChunk;
use crate::config::StoreConfig;
use crate::error::StoreError;

/// Everything the database holds, shared with the maintenance thread.
pub struct Engine {
    /// The settings; swapped whole by [`Engine::reload`] (retention, limits, intervals).
    config: RwLock<Arc<StoreConfig>>,
    pub(super) disk: Disk,
    pub(super) wal: Wal,
    pub(super) shards: Box<[Mutex<Shard>]>,
    /// The label hash that places series in shards (fixed per data folder).
    pub(super) label_hash: LabelHash,
    pub(super) postings: RwLock<Postings>,
    /// Next series counter; a ref is `counter << SHARD_BITS | shard`.
    pub(super) next_ref: AtomicU64,
    /// Series with an open head chunk.
    pub(super) active: AtomicI64,
    /// Newest sample timestamp in the database (i64::MIN when empty).
    pub(super) max_time: AtomicI64,
    pub(super) metadata: RwLock<BTreeMap<String, MetadataEntry>>,
    pub(super) metrics: Metrics,
    /// Deleted intervals per series (`delete_series`), honoured by every read.
    pub(super) tombstones: Tombstones,
    /// Series created since the last checkpoint whose sled rows (series, postings) are not
    /// written yet: the WAL's series records cover them until the checkpoint writes them in one
    /// go, which keeps sled off the ingest path.
    pub(super) pending_series: Mutex<Vec<(u64, Box<[u8]>)>>,
    pub(super) checkpoint_lock: Mutex<()>,
    pub(super) compaction_lock: Mutex<()>,
    pub(super) last_compaction: Mutex<Instant>,
    pub(super) last_checkpoint: Mutex<Instant>,
    pub(super) last_retention: Mutex<Instant>,
}

pub fn wal_dir(config: &StoreConfig) -> PathBuf {
    config.data_dir.join("wal")
}

pub fn sled_dir(config: &StoreConfig) -> PathBuf {
    config.data_dir.join("index")
}

impl Engine {
    /// Opens the store: loads the series index from sled, restores head snapshots, replays the
    /// WAL, then checkpoints so the replayed segments can go.
    pub fn open(config: StoreConfig, registry: &SharedRegistry) -> Result<Engine, StoreError> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.data_dir)?;
        let disk = Disk::open(
            &sled_dir(&config),
            &config.data_dir.join("chunks"),
            config.engine.cache_capacity_bytes,
            config.engine.index_vacuum_ratio,
        )?;
        let metrics = Metrics::new();
        metrics.register(registry);
        let mut shards: Vec<Shard> = (0..SHARDS).map(|_| Shard::default()).collect();
        let mut postings = Postings::default();
        let mut max_counter = 0u64;
        let mut max_time = i64::MIN;
        let rows = disk.load_series()?;
        let wal_segments = wal::list_segments(&wal_dir(&config)).unwrap_or_default();
        let label_hash = disk.label_hash(!rows.is_empty() || !wal_segments.is_empty())?;
        for row in rows {
            let hash = label_hash.of(decode_labels(&row.labels).as_slice());
            postings.add(row.sref as u32, &row.labels);
            let mut s = MemSeries::new(row.labels.into_boxed_slice(), hash);
            s.min_t = row.min_t;
            s.max_t = row.max_t;
            max_time = max_time.max(row.max_t);
            max_counter = max_counter.max(row.sref >> SHARD_BITS);
            shards[shard_of_ref(row.sref)].insert(row.sref, s);
        }
        let mut active = 0i64;
        disk.init_heads()?;
        for (sref, snap) in disk.load_heads()? {
            let head = XorChunk::from_snapshot(&snap);
            match (shards[shard_of_ref(sref)].series.get_mut(&sref), head) {
                (Some(s), Some(h)) if !h.is_empty() => {
                    s.min_t = s.min_t.min(h.min_t());
                    s.max_t = s.max_t.max(h.max_t());
                    max_time = max_time.max(h.max_t());
                    s.head = h;
                    active += 1;
                }
                (_, None) => {
                    metrics.corrupt_chunks.inc();
                    tracing::error!(series = sref, "Unreadable head snapshot ignored.");
                }
                _ => {}
            }
        }
        metrics.corrupt_chunks.inc_by(disk.files.corrupt_at_scan.load(Ordering::Relaxed));
        let chunks = disk.chunk_count();
        metrics.chunks.set(chunks as i64);
        let last_segment = wal::list_segments(&wal_dir(&config)).ok().and_then(|v| v.last().copied()).unwrap_or(0);
        let tombstones = Tombstones::load(disk.open_tree(tombstones::TREE)?)?;
        let engine = Engine {
            tombstones,
            label_hash,
            wal: Wal::create(&wal_dir(&config), last_segment, config.engine.wal_segment_bytes)?,
            config: RwLock::new(Arc::new(config)),
            disk,
            shards: shards.into_iter().map(Mutex::new).collect(),
            postings: RwLock::new(postings),
            next_ref: AtomicU64::new(max_counter + 1),
            active: AtomicI64::new(active),
            max_time: AtomicI64::new(max_time),
            metadata: RwLock::new(BTreeMap::new()),
            metrics,
            pending_series: Mutex::new(Vec::new()),
            checkpoint_lock: Mutex::new(()),
            compaction_lock: Mutex::new(()),
            last_compaction: Mutex::new(Instant::now()),
            last_checkpoint: Mutex::new(Instant::now()),
            last_retention: Mutex::new(Instant::now()),
        };
        let (records, samples) = engine.replay()?;
        engine.metrics.series.set(engine.postings.read().len() as i64);
        engine.metrics.head_series.set(engine.active.load(Ordering::Relaxed));
        if records > 0 {
            engine.checkpoint(false)?;
        } else {
            engine.update_disk_gauges();
        }
        tracing::info!(
            series = engine.postings.read().len(),
            chunks,
            wal_records = records,
            wal_samples = samples,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Store opened."
        );
        Ok(engine)
    }

    /// The current settings.
    pub fn config(&self) -> Arc<StoreConfig> {
        self.config.read().clone()
    }

    /// Applies new settings at runtime. Settings fixed at open (the data directory, sled's
    /// cache, the WAL segment size) keep their current values; the returned list names those
    /// that differed, so the caller can say a restart is needed for them.
    pub fn reload(&self, mut new: StoreConfig) -> Result<Vec<&'static str>, StoreError> {
        new.validate()?;
        let old = self.config();
        let mut fixed = Vec::new();
        if new.data_dir != old.data_dir {
            fixed.push("store.data_dir");
            new.data_dir = old.data_dir.clone();
        }
        if new.engine.cache_capacity_bytes != old.engine.cache_capacity_bytes {
            fixed.push("store.engine.cache_capacity_bytes");
            new.engine.cache_capacity_bytes = old.engine.cache_capacity_bytes;
        }
        if new.engine.wal_segment_bytes != old.engine.wal_segment_bytes {
            fixed.push("store.engine.wal_segment_bytes");
            new.engine.wal_segment_bytes = old.engine.wal_segment_bytes;
        }
        if new.admin_api_enabled != old.admin_api_enabled {
            fixed.push("store.admin_api_enabled");
            new.admin_api_enabled = old.admin_api_enabled;
        }
        new.validate()?;
        *self.config.write() = Arc::new(new);
        Ok(fixed)
    }

    /// Re-applies the WAL segments written since the last checkpoint (the new segment this
    /// process writes to is empty, so it is read harmlessly).
    fn replay(&self) -> Result<(u64, u64), StoreError> {
        let mut first_err: Option<StoreError> = None;
        // A WAL series record whose label set is already known under another ref (a series
        // dropped by retention and re-created before the next checkpoint) maps to that ref.
        let mut aliases: HashMap<u64, u64> = HashMap::new();
        let mut records = 0u64;
        let mut samples = 0u64;
        wal::replay(&wal_dir(&self.config()), |rec| {
            if first_err.is_some() {
                return;
            }
            records += 1;
            let r = match rec {
                Record::Series { sref, labels } => self.replay_series(sref, labels).map(|known| {
                    if let Some(k) = known {
                        aliases.insert(sref, k);
                    }
                }),
                Record::Samples(mut v) => {
                    samples += v.len() as u64;
                    if !aliases.is_empty() {
                        v.iter_mut().for_each(|x| x.0 = aliases.get(&x.0).copied().unwrap_or(x.0));
                    }
                    self.replay_samples(&v)
                }
            };
            if let Err(e) = r {
                first_err = Some(e);
            }
        })?;
        match first_err {
            Some(e) => Err(e),
            None => Ok((records, samples)),
        }
    }

    /// Re-creates a series from its WAL record; returns the ref it is known under when the label
    /// set already exists with a different ref.
    fn replay_series(&self, sref: u64, labels: Vec<u8>) -> Result<Option<u64>, StoreError> {
        let decoded = decode_labels(&labels);
        let hash = self.label_hash.of(decoded.as_slice());
        if let Some(known) = self.shards[shard_of_hash(hash)].lock().find(hash, decoded.as_slice()) {
            return Ok((known != sref).then_some(known));
        }
        let mut shard = self.shards[shard_of_ref(sref)].lock();
        if shard.series.contains_key(&sref) {
            tracing::warn!(series = sref, "WAL series record reuses a ref with other labels; ignored.");
            return Ok(None);
        }
        self.postings.write().add(sref as u32, &labels);
        // Written to sled by the checkpoint that follows the replay.
        self.pending_series.lock().push((sref, labels.clone().into_boxed_slice()));
        self.next_ref.fetch_max((sref >> SHARD_BITS) + 1, Ordering::SeqCst);
        shard.insert(sref, MemSeries::new(labels.into_boxed_slice(), hash));
        Ok(None)
    }

    fn replay_samples(&self, v: &[(u64, i64, u64)]) -> Result<(), StoreError> {
        let mut i = 0;
        while i < v.len() {
            let sref = v[i].0;
            let mut j = i;
            while j < v.len() && v[j].0 == sref {
                j += 1;
            }
            let mut shard = self.shards[shard_of_ref(sref)].lock();
            let Some(s) = shard.series.get_mut(&sref) else {
                tracing::warn!(series = sref, samples = j - i, "WAL samples for an unknown series skipped.");
                i = j;
                continue;
            };
            let was_active = !s.head.is_empty();
            let mut cache = DiskCache::new(&self.disk, &self.metrics);
            for (_, t, bits) in &v[i..j] {
                s.append(sref, *t, f64::from_bits(*bits), None, &mut cache)?;
                self.max_time.fetch_max(*t, Ordering::Relaxed);
            }
            if !was_active && !s.head.is_empty() {
                self.active.fetch_add(1, Ordering::Relaxed);
            }
            i = j;
        }
        Ok(())
    }
}
