//! The seam between the PromQL engine and whatever holds the samples. The engine asks for the
//! series matching a selector within a time range; a storage answers with an iterator so that
//! series can be streamed one at a time and the engine can stop early (limits, cancellation).

use std::collections::BTreeMap;
use std::sync::RwLock;

use crowsnest_wire::labels::matches_all;
use crowsnest_wire::{Labels, Matcher, Sample};
use thiserror::Error;

/// One series and its samples in ascending timestamp order, staleness markers included.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Errors a storage can raise while selecting.
#[derive(Debug, Error, Clone)]
pub enum StorageError {
    /// Disk or corruption trouble: the query fails with `internal` (500).
    #[error("storage error: {0}")]
    Internal(String),
    /// The selection would exceed a configured limit: the query fails with `execution` (422).
    #[error("{0}")]
    Limit(String),
}

/// Iterator of selected series. Order: sorted by label set.
pub type SeriesIter<'a> = Box<dyn Iterator<Item = Result<Series, StorageError>> + Send + 'a>;

/// Reads one selected series' samples; may run on another thread than the one that selected.
pub type Loader<'a> = Box<dyn FnOnce() -> Result<Vec<Sample>, StorageError> + Send + 'a>;

/// A selected series whose samples are not read yet: the engine reads the series of a selection
/// on several threads, so reading (chunk decoding) is spread over the cores along with the window
/// functions that follow it.
pub struct LazySeries<'a> {
    pub labels: Labels,
    /// The samples in the selected range, ascending, staleness markers included; may be empty.
    pub load: Loader<'a>,
}

/// What the engine needs from storage.
pub trait Storage: Send + Sync {
    /// Series matching all `matchers` (at least one must not match the empty string) with the
    /// samples whose timestamps lie in `[start, end]` (milliseconds, both inclusive). Series with
    /// no sample in the range may be omitted.
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<SeriesIter<'_>, StorageError>;

    /// [`Storage::select`] with each series' samples read only when its loader is called, in
    /// label order. The default reads everything up front; a storage whose reads cost real work
    /// overrides it so that the work can run in parallel.
    fn select_lazy(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<LazySeries<'_>>, StorageError> {
        self.select(matchers, start, end)?
            .map(|r| {
                r.map(|s| {
                    let samples = s.samples;
                    LazySeries { labels: s.labels, load: Box::new(move || Ok(samples)) }
                })
            })
            .collect()
    }
}

/// A simple in-memory storage: the conformance runner's `load` blocks, `crowsnest test-rules`'
/// `input_series`, and unit tests.
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends samples to a series, keeping timestamps sorted; a sample at an existing timestamp
    /// replaces the old one (the promqltest `load` semantics).
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        let v = map.entry(labels).or_default();
        for s in samples {
            match v.binary_search_by_key(&s.timestamp, |x| x.timestamp) {
                Ok(i) => v[i] = s,
                Err(i) => v.insert(i, s),
            }
        }
    }

    /// Drops everything (the promqltest `clear` command).
    pub fn clear(&self) {
        self.series.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        self.series.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Storage for MemStorage {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_select_range_is_inclusive() {
        let m = MemStorage::new();
        let l = Labels::from_pairs([("__name__", "x"), ("a", "1")]);
        m.add(l.clone(), (0..10).map(|i| Sample::new(i * 1000, i as f64)));
        let got: Vec<Series> =
            m.select(&[Matcher::equal("__name__", "x")], 2000, 4000).unwrap().map(Result::unwrap).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples.iter().map(|s| s.timestamp).collect::<Vec<_>>(), vec![2000, 3000, 4000]);
        assert!(m.select(&[Matcher::equal("__name__", "y")], 0, 10_000).unwrap().next().is_none());
    }
}
