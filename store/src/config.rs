//! The `store:` section of the config file. Every key has a default, so an empty file (or none)
//! starts a working store. Durations use Prometheus' syntax (`15d`, `1h`).

use std::path::PathBuf;
use std::time::Duration;

use crowsnest_wire::duration::serde_duration;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Store settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where sled, the WAL and everything else the store writes live.
    pub data_dir: PathBuf,
    /// How long samples are kept; whole chunks past it are dropped.
    #[serde(with = "serde_duration")]
    pub retention: Duration,
    /// Samples older than the newest sample of their series by at most this much are merged into
    /// the head; older ones are rejected (400) and counted.
    #[serde(with = "serde_duration")]
    pub out_of_order_window: Duration,
    /// Ingest limits (each violation is a 400 naming the series, and a counter).
    pub limits: Limits,
    /// Query engine settings.
    pub query: QueryConfig,
    /// Storage engine tuning (sled cache, WAL segments, checkpoints).
    pub engine: EngineConfig,
    /// Serve the TSDB admin API (`/api/v1/admin/tsdb/delete_series`, `clean_tombstones`,
    /// `snapshot`), like Prometheus' `--web.enable-admin-api`. Off by default because it deletes
    /// data; while off those routes answer 503 `unavailable` "admin APIs disabled". Read at
    /// startup only.
    pub admin_api_enabled: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./data"),
            retention: Duration::from_secs(15 * 24 * 3600),
            out_of_order_window: Duration::from_secs(3600),
            limits: Limits::default(),
            query: QueryConfig::default(),
            engine: EngineConfig::default(),
            admin_api_enabled: false,
        }
    }
}

/// Storage engine tuning. The defaults suit a single Docker host; see
/// `reference/tsdb-performance.md` §5.3 for the reasoning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// sled's page cache in bytes (sled's own default is 1 GiB), and the budget of the loaded
    /// block indexes of sealed windows (`db/sealed.rs`). sled holds only the series catalog
    /// (payloads and block indexes live in `chunks/` files, cached by the OS), so a small cache
    /// keeps RSS per series low; the head should own the RAM.
    pub cache_capacity_bytes: u64,
    /// A WAL segment file is cut when it would grow past this many bytes.
    pub wal_segment_bytes: u64,
    /// Longest time between checkpoints (head snapshot to sled, sled flush, WAL truncation).
    #[serde(with = "serde_duration")]
    pub checkpoint_interval: Duration,
    /// A checkpoint also runs as soon as the WAL holds this many bytes.
    pub checkpoint_wal_bytes: u64,
    /// How often retention runs.
    #[serde(with = "serde_duration")]
    pub retention_interval: Duration,
    /// A series that received no sample for this long has its head chunk closed (it stops
    /// counting as active).
    #[serde(with = "serde_duration")]
    pub head_idle_timeout: Duration,
    /// When an accepted write becomes durable. `ack`: the WAL is `fdatasync`ed before the 2xx
    /// (survives `kill -9` and power loss). `periodic`: the 2xx follows the WAL's `write(2)` and a
    /// background thread syncs every `wal_fsync_interval` (survives `kill -9` and restarts; a
    /// power loss can cost the last interval), as Prometheus and VictoriaMetrics do.
    pub wal_fsync: WalFsync,
    /// How often `periodic` syncs the WAL.
    #[serde(with = "serde_duration")]
    pub wal_fsync_interval: Duration,
    /// When the store opens, the sled index is rewritten without sled's superseded pages if its
    /// files are over 16 MiB and more than this many times the bytes of its live keys and values
    /// (sled 0.34 reclaims space late). 0 turns it off; otherwise at least 1.5.
    pub index_vacuum_ratio: f64,
}

/// See [`EngineConfig::wal_fsync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalFsync {
    Ack,
    Periodic,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_capacity_bytes: 32 << 20,
            wal_segment_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(15 * 60),
            checkpoint_wal_bytes: 256 << 20,
            retention_interval: Duration::from_secs(5 * 60),
            head_idle_timeout: Duration::from_secs(3600),
            wal_fsync: WalFsync::Ack,
            wal_fsync_interval: Duration::from_secs(1),
            index_vacuum_ratio: 2.0,
        }
    }
}

/// Ingest limits, protecting the store from hostile or runaway label sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most labels (including `__name__`) one series may have.
    pub max_label_names_per_series: usize,
    /// Longest label name, in bytes.
    pub max_label_name_length: usize,
    /// Longest label value, in bytes.
    pub max_label_value_length: usize,
    /// Most series the head may hold at once; new series beyond it are rejected.
    pub max_active_series: usize,
    /// Most series one metric name may have in the index (until retention drops them); new
    /// series of that metric beyond it are rejected, other metrics keep ingesting. Like Mimir's
    /// `max_global_series_per_metric`. 0 disables the limit.
    pub max_series_per_metric: usize,
    /// Largest accepted request body (compressed), in bytes.
    pub max_request_body_bytes: usize,
    /// Largest accepted body after snappy/gzip decompression, in bytes.
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_label_names_per_series: 64,
            max_label_name_length: 256,
            max_label_value_length: 4096,
            max_active_series: 2_000_000,
            max_series_per_metric: 500_000,
            max_request_body_bytes: 32 << 20,
            max_decompressed_bytes: 128 << 20,
        }
    }
}

/// PromQL engine settings, mirroring Prometheus' `--query.*` flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    #[serde(with = "serde_duration")]
    pub lookback_delta: Duration,
    /// Most samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Longest a query may run (`--query.timeout`).
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Queries evaluated at once; more wait in a queue (`--query.max-concurrency`). A query that
    /// waits past its timeout fails with 503 "query timed out in query queue".
    pub max_concurrent: usize,
    /// Most points per series a range query may ask for, `(end - start) / step` (Prometheus'
    /// fixed 11,000).
    pub max_points_per_range_query: i64,
    /// Threads one query may use to read and window the series of a selection (VictoriaMetrics'
    /// `-search.maxWorkersPerQuery`); 0 means one per CPU core.
    pub max_workers_per_query: usize,
}

impl QueryConfig {
    /// [`QueryConfig::max_workers_per_query`] with 0 resolved to the number of cores.
    pub fn workers_per_query(&self) -> usize {
        match self.max_workers_per_query {
            0 => crowsnest_promql::default_parallelism(),
            n => n,
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_concurrent: 20,
            max_points_per_range_query: 11_000,
            max_workers_per_query: 0,
        }
    }
}

impl StoreConfig {
    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: &str| Err(StoreError::Config(m.to_string()));
        if self.retention < Duration::from_secs(3600) {
            return bad("store.retention must be at least 1h");
        }
        if self.limits.max_label_names_per_series < 2 {
            return bad("store.limits.max_label_names_per_series must be at least 2");
        }
        if self.limits.max_request_body_bytes == 0 || self.limits.max_decompressed_bytes == 0 {
            return bad("store.limits body sizes must be positive");
        }
        if self.engine.wal_segment_bytes < 4096 || self.engine.checkpoint_wal_bytes < self.engine.wal_segment_bytes {
            return bad("store.engine.wal_segment_bytes must be >= 4096 and <= checkpoint_wal_bytes");
        }
        let r = self.engine.index_vacuum_ratio;
        if !(r == 0.0 || (1.5..=1000.0).contains(&r)) {
            return bad("store.engine.index_vacuum_ratio must be 0 (off) or between 1.5 and 1000");
        }
        if self.engine.wal_fsync_interval.is_zero() || self.engine.wal_fsync_interval > Duration::from_secs(60) {
            return bad("store.engine.wal_fsync_interval must be between 1ms and 1m");
        }
        if self.engine.checkpoint_interval.is_zero() || self.engine.retention_interval.is_zero() {
            return bad("store.engine intervals must be positive");
        }
        if self.query.max_concurrent == 0 {
            return bad("store.query.max_concurrent must be at least 1");
        }
        if self.query.max_samples == 0 || self.query.max_points_per_range_query < 1 {
            return bad("store.query.max_samples and store.query.max_points_per_range_query must be positive");
        }
        if self.query.timeout.is_zero() {
            return bad("store.query.timeout must be positive");
        }
        if self.limits.max_label_name_length == 0 || self.limits.max_label_value_length == 0 {
            return bad("store.limits label lengths must be positive");
        }
        if self.limits.max_active_series == 0 {
            return bad("store.limits.max_active_series must be at least 1");
        }
        if self.query.lookback_delta.is_zero() {
            return bad("store.query.lookback_delta must be positive");
        }
        Ok(())
    }
}
