//! The storage engine's own metrics, registered in the process' shared registry
//! (prometheus-client; `_total` is appended to counters by the encoder):
//!
//! - `crowsnest_store_samples_ingested_total`: samples accepted into the head (exact duplicates
//!   excluded).
//! - `crowsnest_store_samples_duplicate_total`: exact duplicate samples accepted as no-ops.
//! - `crowsnest_store_samples_rejected_total{reason}`: refused samples; `reason` is one of
//!   `RejectReason::as_str` (`out_of_order`, `duplicate_timestamp`, `too_old`, `invalid_labels`,
//!   `too_many_labels`, `label_too_long`, `series_limit`, `series_per_metric_limit`).
//! - `crowsnest_store_series_created_total`: series added to the index.
//! - `crowsnest_store_head_series`: series with an open head chunk (the active series).
//! - `crowsnest_store_series`: series in the index (active or not).
//! - `crowsnest_store_chunks`: closed chunks on disk (compacted blocks with a sled pointer plus
//!   chunks of open windows referenced from memory).
//! - `crowsnest_store_chunk_bytes_total` / `crowsnest_store_chunk_samples_total`: bytes and samples
//!   of chunks written (their ratio is bytes per sample before sled's overhead).
//! - `crowsnest_store_wal_fsync_duration_seconds`: histogram of WAL `fdatasync` latencies.
//! - `crowsnest_store_wal_bytes`: bytes in WAL segment files.
//! - `crowsnest_store_disk_bytes`: bytes on disk (sled, chunk payload files and WAL).
//! - `crowsnest_store_disk_free_bytes` / `crowsnest_store_disk_total_bytes`: free bytes (available
//!   to unprivileged users, `statvfs` `f_bavail * f_frsize`) and total size of the filesystem that
//!   holds the data directory, refreshed by the maintenance thread every tick (5 s) and by
//!   checkpoints; the shipped alerts `StoreDiskFillingUp`/`StoreDiskAlmostFull` use them.
//! - `crowsnest_store_checkpoints_total`: completed checkpoints (head snapshot, sled flush, WAL
//!   truncation).
//! - `crowsnest_store_retention_chunks_dropped_total` / `crowsnest_store_retention_series_dropped_total`:
//!   what retention removed.
//! - `crowsnest_store_compacted_chunks_total`: chunks merged into bigger blocks by compaction.
//! - `crowsnest_store_corrupt_chunks_total`: chunks whose checksum or format failed on read (each
//!   read that skips one counts), plus damaged chunk-file records skipped by the start-up scan.

use std::sync::atomic::AtomicU64;

use crowsnest_wire::ops::SharedRegistry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Handles to every engine metric.
#[derive(Clone)]
pub struct Metrics {
    pub ingested: Counter,
    pub duplicates: Counter,
    pub rejected: Family<[(&'static str, &'static str); 1], Counter>,
    pub series_created: Counter,
    pub head_series: Gauge,
    pub series: Gauge,
    pub chunks: Gauge,
    pub chunk_bytes: Counter,
    pub chunk_samples: Counter,
    pub wal_fsync: Histogram,
    pub wal_bytes: Gauge<u64, AtomicU64>,
    pub disk_bytes: Gauge<u64, AtomicU64>,
    pub disk_free: Gauge<u64, AtomicU64>,
    pub disk_total: Gauge<u64, AtomicU64>,
    pub checkpoints: Counter,
    pub retention_chunks: Counter,
    pub retention_series: Counter,
    pub corrupt_chunks: Counter,
    pub compacted_chunks: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            ingested: Counter::default(),
            duplicates: Counter::default(),
            rejected: Family::default(),
            series_created: Counter::default(),
            head_series: Gauge::default(),
            series: Gauge::default(),
            chunks: Gauge::default(),
            chunk_bytes: Counter::default(),
            chunk_samples: Counter::default(),
            wal_fsync: Histogram::new(exponential_buckets(0.000_05, 2.0, 14)),
            wal_bytes: Gauge::default(),
            disk_bytes: Gauge::default(),
            disk_free: Gauge::default(),
            disk_total: Gauge::default(),
            checkpoints: Counter::default(),
            retention_chunks: Counter::default(),
            retention_series: Counter::default(),
            corrupt_chunks: Counter::default(),
            compacted_chunks: Counter::default(),
        }
    }

    /// Registers every metric under `crowsnest_store_`.
    pub fn register(&self, registry: &SharedRegistry) {
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        let p = "crowsnest_store_";
        r.register(format!("{p}samples_ingested"), "Samples accepted into the head.", self.ingested.clone());
        r.register(
            format!("{p}samples_duplicate"),
            "Exact duplicate samples accepted as no-ops.",
            self.duplicates.clone(),
        );
        r.register(format!("{p}samples_rejected"), "Samples refused, by reason.", self.rejected.clone());
        r.register(format!("{p}series_created"), "Series added to the index.", self.series_created.clone());
        r.register(
            format!("{p}head_series"),
            "Series with an open head chunk (active series).",
            self.head_series.clone(),
        );
        r.register(format!("{p}series"), "Series in the index.", self.series.clone());
        r.register(format!("{p}chunks"), "Closed chunks stored on disk.", self.chunks.clone());
        r.register(format!("{p}chunk_bytes"), "Bytes of closed chunks written.", self.chunk_bytes.clone());
        r.register(format!("{p}chunk_samples"), "Samples in closed chunks written.", self.chunk_samples.clone());
        r.register(format!("{p}wal_fsync_duration_seconds"), "Latency of WAL fdatasync calls.", self.wal_fsync.clone());
        r.register(format!("{p}wal_bytes"), "Bytes in WAL segment files.", self.wal_bytes.clone());
        r.register(
            format!("{p}disk_bytes"),
            "Bytes used on disk by sled, the chunk files and the WAL.",
            self.disk_bytes.clone(),
        );
        r.register(
            format!("{p}disk_free_bytes"),
            "Free bytes (available to unprivileged users) on the filesystem holding the data directory.",
            self.disk_free.clone(),
        );
        r.register(
            format!("{p}disk_total_bytes"),
            "Size in bytes of the filesystem holding the data directory.",
            self.disk_total.clone(),
        );
        r.register(format!("{p}checkpoints"), "Completed checkpoints.", self.checkpoints.clone());
        r.register(
            format!("{p}retention_chunks_dropped"),
            "Chunks deleted by retention.",
            self.retention_chunks.clone(),
        );
        r.register(
            format!("{p}retention_series_dropped"),
            "Series deleted by retention.",
            self.retention_series.clone(),
        );
        r.register(
            format!("{p}corrupt_chunks"),
            "Chunks that failed their checksum or format check on read.",
            self.corrupt_chunks.clone(),
        );
        r.register(
            format!("{p}compacted_chunks"),
            "Chunks merged into bigger blocks by compaction.",
            self.compacted_chunks.clone(),
        );
    }

    pub fn reject(&self, reason: &'static str, n: u64) {
        self.rejected.get_or_create(&[("reason", reason)]).inc_by(n);
    }
}
