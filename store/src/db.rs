//! The database facade. PLACEHOLDER INTERNALS: this first version keeps everything in memory so the
//! HTTP layer can be built against the final public API; the storage engine (WAL, head chunks,
//! sled index, retention) replaces the internals behind the same signatures.

pub mod bits;
pub mod chunk;
pub mod index;
pub mod wal;
pub mod xor;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use crowsnest_promql::{Series, SeriesIter, Storage, StorageError};
use crowsnest_wire::labels::matches_all;
use crowsnest_wire::ops::SharedRegistry;
use crowsnest_wire::remote::MetricMetadata;
use crowsnest_wire::{Labels, Matcher, Sample, TimeSeries};

use crate::config::StoreConfig;
use crate::error::StoreError;

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

/// The time-series database.
pub struct Db {
    config: StoreConfig,
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
    metadata: RwLock<BTreeMap<String, MetadataEntry>>,
}

impl Db {
    /// Opens (creating if needed) the database under `config.data_dir`, replaying the WAL.
    /// Registers the store's metrics in `registry`.
    pub fn open(config: StoreConfig, _registry: &SharedRegistry) -> Result<Db, StoreError> {
        config.validate()?;
        Ok(Db { config, series: RwLock::default(), metadata: RwLock::default() })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Appends a batch. Blocking: returns once accepted samples are durable (survive kill -9).
    /// Labels are validated here (sorted, unique, valid names, limits); bad series are reported
    /// in the outcome, the rest is stored. `Err` only for the store's own failures (HTTP 5xx).
    pub fn append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, StoreError> {
        let mut out = AppendOutcome::default();
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        for ts in batch {
            if let Err(e) = crowsnest_wire::labels::validate_sorted(&ts.labels) {
                out.rejected.push(Rejection { reason: RejectReason::InvalidLabels, series: format!("{:?}", ts.labels), detail: e.to_string(), samples: ts.samples.len() as u64 });
                continue;
            }
            let labels = Labels::from_sorted_unchecked(ts.labels);
            let v = map.entry(labels).or_default();
            for s in ts.samples {
                match v.binary_search_by_key(&s.timestamp, |x| x.timestamp) {
                    Ok(i) if v[i].value.to_bits() == s.value.to_bits() => out.duplicates += 1,
                    Ok(_) => {}
                    Err(i) => {
                        v.insert(i, s);
                        out.accepted += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Records metric metadata sent alongside samples (remote_write `metadata`, `# HELP`/`# TYPE`).
    pub fn append_metadata(&self, md: Vec<MetricMetadata>) {
        let mut m = self.metadata.write().unwrap_or_else(|e| e.into_inner());
        for x in md {
            let kind = crowsnest_wire::remote::MetricType::try_from(x.r#type).unwrap_or(crowsnest_wire::remote::MetricType::Unknown);
            m.insert(x.metric_family_name, MetadataEntry { kind: kind.as_api_str().into(), help: x.help, unit: x.unit });
        }
    }

    /// Metadata by metric name, optionally for one metric, at most `limit` metrics.
    pub fn metadata(&self, metric: Option<&str>, limit: Option<usize>) -> BTreeMap<String, Vec<MetadataEntry>> {
        let m = self.metadata.read().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|(k, _)| metric.is_none_or(|n| n == k.as_str()))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect()
    }

    /// Series (label sets) matching any of the matcher sets with data in `[start, end]`.
    /// An empty `matcher_sets` means all series.
    pub fn series(&self, matcher_sets: &[Vec<Matcher>], start: i64, end: i64, limit: Option<usize>) -> Result<Vec<Labels>, StoreError> {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .iter()
            .filter(|(l, s)| s.iter().any(|x| x.timestamp >= start && x.timestamp <= end) && (matcher_sets.is_empty() || matcher_sets.iter().any(|ms| matches_all(ms, l))))
            .map(|(l, _)| l.clone())
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }

    /// Label names present on matching series in `[start, end]`, sorted.
    pub fn label_names(&self, matcher_sets: &[Vec<Matcher>], start: i64, end: i64, limit: Option<usize>) -> Result<Vec<String>, StoreError> {
        let names: BTreeSet<String> = self.series(matcher_sets, start, end, None)?.iter().flat_map(|l| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>()).collect();
        Ok(names.into_iter().take(limit.unwrap_or(usize::MAX)).collect())
    }

    /// Values of label `name` on matching series in `[start, end]`, sorted.
    pub fn label_values(&self, name: &str, matcher_sets: &[Vec<Matcher>], start: i64, end: i64, limit: Option<usize>) -> Result<Vec<String>, StoreError> {
        let vals: BTreeSet<String> = self.series(matcher_sets, start, end, None)?.iter().filter_map(|l| l.get(name).map(str::to_string)).collect();
        Ok(vals.into_iter().take(limit.unwrap_or(usize::MAX)).collect())
    }

    /// Head statistics, each top-list cut to `limit` entries.
    pub fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        for l in map.keys() {
            *by_name.entry(l.metric_name().unwrap_or("").to_string()).or_default() += 1;
        }
        let mut v: Vec<(String, u64)> = by_name.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(limit);
        TsdbStatus { num_series: map.len() as u64, series_count_by_metric_name: v, ..Default::default() }
    }

    /// Writes everything held in memory to disk (used on shutdown and by benchmarks).
    pub fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl Storage for Db {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<SeriesIter<'_>, StorageError> {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        let out: Vec<Result<Series, StorageError>> = map
            .iter()
            .filter(|(l, _)| matches_all(matchers, l))
            .filter_map(|(l, samples)| {
                let lo = samples.partition_point(|s| s.timestamp < start);
                let hi = samples.partition_point(|s| s.timestamp <= end);
                (lo < hi).then(|| Ok(Series { labels: l.clone(), samples: samples[lo..hi].to_vec() }))
            })
            .collect();
        Ok(Box::new(out.into_iter()))
    }
}
