//! The database facade: the public API the HTTP layer, the importer and the PromQL engine use.
//! The engine behind it lives in `db/`:
//!
//! - `xor.rs` (Gorilla head chunks), `chunk.rs` (closed chunks: XOR or decimal/delta columns +
//!   zstd, CRC32-checked), `bits.rs` (bit and varint codecs);
//! - `head.rs` (sharded in-memory series, out-of-order merge), `index.rs` (label encoding and
//!   postings), `persist.rs` (sled and the chunk pointers), `catalog.rs` (series, postings and
//!   checkpoint state as a few large sled values), `chunkfile.rs` (chunk payload files per 6 h
//!   window), `wal.rs` (write-ahead log, group commit);
//! - `engine.rs` (open and WAL replay), `ingest.rs`, `query.rs`, `maintain.rs` (checkpoints,
//!   retention, disk gauges), `diskspace.rs` (`statvfs` free/total space), `compact.rs` (merging a window's chunks into blocks), `fsck.rs`
//!   (consistency check), `metrics.rs` (every exported metric, documented there);
//! - `tombstones.rs` (deleted intervals per series, honoured by every read) and `admin.rs`
//!   (delete_series, clean_tombstones, snapshots: Prometheus' TSDB admin API).
//!
//! On disk under `data_dir`: `wal/` (segments), `index/` (sled: series, postings, checkpoint
//! state, pointers to compacted blocks) and `chunks/` (append-only chunk payload files, one per time window
//! and generation; retention deletes whole files); `snapshots/` holds admin-API snapshots.
//!
//! # Corruption
//!
//! A chunk whose CRC fails (or whose bytes cannot be read) is skipped, logged with its series and
//! file location and counted in `crowsnest_store_corrupt_chunks_total`; the series' other chunks
//! and every other series are still served. Its samples are never served.
//!
//! # Durability guarantee
//!
//! When [`Db::append`] returns `Ok`, every sample it counted as accepted is in the write-ahead log
//! and the log has been `fdatasync`ed: the samples survive `kill -9` and, on hardware that honours
//! `fdatasync`, a power loss. Concurrent appenders share one `fdatasync` (group commit), so the
//! cost is about one disk flush (~0.2 ms here) per round of concurrent requests, not per request.
//! On open the store loads the series index and head snapshots from sled, rebuilds the references
//! to the chunks of windows not sealed yet by scanning their chunk files' self-describing records
//! (a torn record at a file's end is cut off: it was written after the last checkpoint's
//! `fdatasync`, so the WAL still holds its samples), and replays the WAL;
//! a torn or corrupt record at the end of a segment (a crash in the middle of a write, which was
//! never acknowledged) is skipped with a warning. Checkpoints (every
//! `store.engine.checkpoint_interval`, or when the WAL reaches `checkpoint_wal_bytes`, and on
//! [`Db::flush`]) `fdatasync` the chunk files, write head snapshots to sled, flush sled, and only
//! then delete the WAL segments they cover. Samples that were appended to memory but whose
//! request failed before the `fdatasync` may or may not be present after a crash (the client was
//! told to retry; retried exact duplicates are accepted as no-ops).
//!
//! Exact duplicates (same series, timestamp and value bits) are accepted as no-ops; samples up to
//! `store.out_of_order_window` older than their series' newest sample are merged in; older ones
//! and conflicting values at an existing timestamp are rejected and counted. The "present" used
//! by retention and the too-old check is the newest sample in the store (like Prometheus' block
//! retention), not the wall clock, so backfills of old data work on an empty store.

mod admin;
pub mod bits;
mod catalog;
pub mod chunk;
pub mod chunkfile;
mod compact;
mod diskspace;
mod engine;
mod fsck;
pub mod head;
pub mod index;
mod ingest;
mod maintain;
pub mod metrics;
pub mod persist;
mod query;
mod sealed;
mod split;
mod tombstones;
mod vacuum;
pub mod wal;
pub mod xor;

#[cfg(test)]
mod admin_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crowsnest_promql::{SeriesIter, Storage, StorageError};
use crowsnest_wire::ops::SharedRegistry;
use crowsnest_wire::remote::MetricMetadata;
use crowsnest_wire::remote::borrowed::WriteRequestRef;
use crowsnest_wire::{Labels, Matcher, TimeSeries};
use parking_lot::Mutex;

use crate::config::StoreConfig;
use crate::error::StoreError;
pub use admin::CleanReport;
pub use compact::CompactReport;
use engine::Engine;
pub use fsck::FsckReport;
pub use ingest::check_labels;
pub use maintain::RetentionReport;
pub use query::take_corrupt_chunks_seen;

/// Folder under `data_dir` holding snapshots (as in Prometheus).
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// A series' id: stable for the life of the data directory.
pub type SeriesRef = u64;

/// How often the maintenance thread wakes up to check whether a checkpoint or retention is due.
const MAINTENANCE_TICK: Duration = Duration::from_secs(5);

/// Why samples were refused. The string form is the `reason` label of
/// `crowsnest_store_samples_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Older than the out-of-order window allows.
    OutOfOrder,
    /// Same series and timestamp, different value.
    DuplicateTimestamp,
    /// Older than the retention period.
    TooOld,
    /// Invalid, unsorted or duplicate label names, empty values.
    InvalidLabels,
    /// More label names than `limits.max_label_names_per_series`.
    TooManyLabels,
    /// A label name or value over its length limit.
    LabelTooLong,
    /// `limits.max_active_series` reached.
    SeriesLimit,
    /// `limits.max_series_per_metric` reached for the series' metric name.
    SeriesPerMetricLimit,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::DuplicateTimestamp => "duplicate_timestamp",
            RejectReason::TooOld => "too_old",
            RejectReason::InvalidLabels => "invalid_labels",
            RejectReason::TooManyLabels => "too_many_labels",
            RejectReason::LabelTooLong => "label_too_long",
            RejectReason::SeriesLimit => "series_limit",
            RejectReason::SeriesPerMetricLimit => "series_per_metric_limit",
        }
    }
}

/// Samples of one series that were refused, for the 400 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: RejectReason,
    /// The series in Prometheus notation (`name{a="b"}`), or the raw labels when invalid.
    pub series: String,
    /// A short human explanation (e.g. the offending timestamp).
    pub detail: String,
    pub samples: u64,
}

/// What happened to one append call. Accepted samples are durable when this is returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppendOutcome {
    pub accepted: u64,
    /// Exact duplicates (same series, timestamp and value): accepted as no-ops.
    pub duplicates: u64,
    pub rejected: Vec<Rejection>,
}

/// One metadata entry as `/api/v1/metadata` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetadataEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Head and index statistics for `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStatus {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// (metric name, series count), largest first.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// (label name, number of distinct values), largest first.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// (label name, bytes used by its values), largest first.
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// (`name=value`, series count), largest first.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// Engine counters (see [`Db::stats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Series in the index.
    pub series: u64,
    /// Series with an open head chunk.
    pub active_series: u64,
    /// Closed chunks on disk.
    pub chunks: u64,
    /// Bytes and samples of the closed chunks written by this process.
    pub chunk_bytes_written: u64,
    pub chunk_samples_written: u64,
    /// Approximate heap bytes of the head (labels, head chunks, out-of-order buffers).
    pub head_bytes: u64,
    /// sled's size on disk, the chunk payload files', and the WAL's.
    pub sled_bytes: u64,
    pub chunk_file_bytes: u64,
    pub wal_bytes: u64,
}

/// The time-series database.
pub struct Db {
    engine: Arc<Engine>,
    /// The maintenance thread and the WAL syncer thread, each with its stop channel.
    maintenance: Mutex<Vec<(Sender<()>, JoinHandle<()>)>>,
}

impl Db {
    /// Opens (creating if needed) the database under `config.data_dir`, replaying the WAL.
    /// Registers the store's metrics in `registry` and starts the maintenance thread
    /// (checkpoints, retention, disk gauges).
    pub fn open(config: StoreConfig, registry: &SharedRegistry) -> Result<Db, StoreError> {
        config.validate()?;
        let engine = Arc::new(Engine::open(config, registry)?);
        let (tx, rx) = channel();
        let weak = Arc::downgrade(&engine);
        let handle = std::thread::Builder::new()
            .name("store-maintenance".into())
            .spawn(move || maintain::run(weak, rx, MAINTENANCE_TICK))?;
        let (sync_tx, sync_rx) = channel();
        let weak = Arc::downgrade(&engine);
        let syncer = std::thread::Builder::new()
            .name("store-wal-sync".into())
            .spawn(move || maintain::run_wal_syncer(weak, sync_rx))?;
        Ok(Db { engine, maintenance: Mutex::new(vec![(tx, handle), (sync_tx, syncer)]) })
    }

    /// The current settings (replaced as a whole by [`Db::reload`]).
    pub fn config(&self) -> Arc<StoreConfig> {
        self.engine.config()
    }

    /// Applies new settings without a restart: retention, out-of-order window, limits, checkpoint
    /// and retention intervals take effect at once. Returns the names of keys that only a
    /// restart can change (their old values stay). Invalid settings are refused, the old stay.
    pub fn reload(&self, config: StoreConfig) -> Result<Vec<&'static str>, StoreError> {
        self.engine.reload(config)
    }

    /// Appends a batch. Blocking: returns once accepted samples are durable (survive kill -9).
    /// Labels are validated here (sorted, unique, valid names, limits); bad series are reported
    /// in the outcome, the rest is stored. `Err` only for the store's own failures (HTTP 5xx).
    pub fn append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, StoreError> {
        self.engine.append(batch)
    }

    /// [`Db::append`] for a decoded remote_write request, borrowing its labels (the ingest hot
    /// path: no allocation per series the store already holds).
    pub fn append_request(&self, req: &WriteRequestRef<'_>) -> Result<AppendOutcome, StoreError> {
        self.engine.append_request(req)
    }

    /// Records metric metadata sent alongside samples (remote_write `metadata`, `# HELP`/`# TYPE`).
    /// Kept in memory, like Prometheus' scrape metadata.
    pub fn append_metadata(&self, md: Vec<MetricMetadata>) {
        let mut m = self.engine.metadata.write();
        for x in md {
            let kind = crowsnest_wire::remote::MetricType::try_from(x.r#type)
                .unwrap_or(crowsnest_wire::remote::MetricType::Unknown);
            m.insert(
                x.metric_family_name,
                MetadataEntry { kind: kind.as_api_str().into(), help: x.help, unit: x.unit },
            );
        }
    }

    /// Metadata by metric name, optionally for one metric, at most `limit` metrics.
    pub fn metadata(&self, metric: Option<&str>, limit: Option<usize>) -> BTreeMap<String, Vec<MetadataEntry>> {
        let m = self.engine.metadata.read();
        m.iter()
            .filter(|(k, _)| metric.is_none_or(|n| n == k.as_str()))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect()
    }

    /// Series (label sets) matching any of the matcher sets with data in `[start, end]`, sorted.
    /// An empty `matcher_sets` means all series.
    pub fn series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
        limit: Option<usize>,
    ) -> Result<Vec<Labels>, StoreError> {
        Ok(self.engine.series(matcher_sets, start, end, limit))
    }

    /// Label names present on matching series in `[start, end]`, sorted.
    pub fn label_names(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.engine.label_names(matcher_sets, start, end, limit))
    }

    /// Values of label `name` on matching series in `[start, end]`, sorted.
    pub fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self.engine.label_values(name, matcher_sets, start, end, limit))
    }

    /// Head statistics, each top-list cut to `limit` entries.
    pub fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        self.engine.tsdb_status(limit)
    }

    /// Writes everything held in memory to disk (used on shutdown and by benchmarks): closes
    /// every head chunk into a stored chunk, flushes sled and truncates the WAL, then compacts
    /// every window (so bytes per sample can be measured right after).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.engine.checkpoint(true)?;
        self.engine.compact(i64::MAX)?;
        self.engine.checkpoint(false)?;
        // The replaced file generations go now rather than one pass later (a query racing a
        // shutdown flush may fail; it would fail anyway).
        self.engine.delete_retired()?;
        self.engine.update_disk_gauges();
        Ok(())
    }

    /// Merges each series' chunks per aligned window into bigger blocks, for windows that can no
    /// longer change (the maintenance thread runs this every `retention_interval`).
    pub fn compact(&self) -> Result<CompactReport, StoreError> {
        self.engine.compact(self.engine.compaction_horizon())
    }

    /// A checkpoint without closing active heads (what the maintenance thread runs).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.engine.checkpoint(false)
    }

    /// Runs retention now: deletes whole chunks that end before `newest sample − retention`.
    pub fn apply_retention(&self) -> Result<RetentionReport, StoreError> {
        self.engine.apply_retention()
    }

    /// Engine counters for benchmarks and diagnostics (bytes per sample, RSS per series).
    pub fn stats(&self) -> StoreStats {
        self.engine.stats()
    }

    /// Deletes the samples of every series matching any of `matcher_sets` in `[start, end]`
    /// (tombstones, Prometheus' `delete_series`). Durable when this returns: reads, restarts and
    /// crashes never show them again. Returns the number of series affected.
    pub fn delete_series(&self, matcher_sets: &[Vec<Matcher>], start: i64, end: i64) -> Result<u64, StoreError> {
        self.engine.delete_series(matcher_sets, start, end)
    }

    /// Rewrites the chunks hit by tombstones without the deleted samples, drops series left
    /// empty, and clears the tombstones (Prometheus' `clean_tombstones`).
    pub fn clean_tombstones(&self) -> Result<CleanReport, StoreError> {
        self.engine.clean_tombstones()
    }

    /// Writes a snapshot to `<data_dir>/snapshots/<YYYYMMDDTHHMMSSZ>-<16 hex>` (Prometheus' name
    /// format) and returns its name. The snapshot is a data directory: `crowsnest store
    /// --data-dir <it>` serves the same data. See [`engine::Engine::snapshot`] for `skip_head`.
    pub fn snapshot(&self, skip_head: bool) -> Result<String, StoreError> {
        let name = format!("{}-{:016x}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), rand::random::<u64>());
        let parent = self.engine.config().data_dir.join(SNAPSHOTS_DIR);
        self.engine.snapshot(&parent.join(&name), skip_head)?;
        Ok(name)
    }

    /// Walks every stored chunk, series row, postings row and head snapshot and reports
    /// inconsistencies (read-only; for `crowsnest` tooling and tests).
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        self.engine.fsck()
    }

    /// Bytes used on disk (sled and WAL); also refreshes `crowsnest_store_disk_bytes`.
    pub fn disk_bytes(&self) -> u64 {
        self.engine.update_disk_gauges()
    }

    /// Stops the maintenance thread and flushes. Dropping the `Db` stops the thread too, but
    /// leaves the heads to the WAL.
    pub fn close(&self) -> Result<(), StoreError> {
        self.stop_maintenance();
        self.flush()
    }

    fn stop_maintenance(&self) {
        for (tx, handle) in std::mem::take(&mut *self.maintenance.lock()) {
            let _ = tx.send(());
            if handle.join().is_err() {
                tracing::error!("Store maintenance thread panicked.");
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_maintenance();
    }
}

impl Storage for Db {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<SeriesIter<'_>, StorageError> {
        Ok(Box::new(self.engine.select(matchers, start, end)))
    }

    fn select_lazy(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<crowsnest_promql::LazySeries<'_>>, StorageError> {
        Ok(self.engine.select_lazy(matchers, start, end))
    }
}
