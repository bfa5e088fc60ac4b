//! Reads: postings intersection → candidate series → time-range filter on each series' min/max
//! time (no sample is touched for series, label names and values) → for `select`, only the chunks
//! overlapping `[start, end]` are decoded, merged with the head by timestamp, series by series.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crowsnest_promql::{LazySeries, Series, StorageError};
use crowsnest_wire::{Labels, Matcher, Sample};
use roaring::RoaringBitmap;

use super::chunk;
use super::engine::Engine;
use super::head::{SHARDS, shard_of_ref};
use super::index::decode_labels;
use super::{StoreError, TsdbStatus};

thread_local! {
    /// Corrupt chunks skipped by reads started from this thread. A PromQL evaluation starts on
    /// one blocking thread, so the query handler can turn them into a warning for exactly its
    /// query; the loaders of a lazy selection carry the counter to the threads that run them.
    static CORRUPT_SEEN: Arc<AtomicU64> = Arc::new(AtomicU64::new(0));
}

/// Returns and resets the number of corrupt chunks reads started from this thread skipped.
pub fn take_corrupt_chunks_seen() -> u64 {
    CORRUPT_SEEN.with(|c| c.swap(0, Ordering::Relaxed))
}

fn corrupt_counter() -> Arc<AtomicU64> {
    CORRUPT_SEEN.with(Arc::clone)
}

impl Engine {
    /// Series refs matching any matcher set (all series when there is none).
    pub(super) fn candidates(&self, matcher_sets: &[Vec<Matcher>]) -> RoaringBitmap {
        let p = self.postings.read();
        if matcher_sets.is_empty() {
            return p.all().clone();
        }
        let mut out = RoaringBitmap::new();
        for ms in matcher_sets {
            out |= p.select(ms);
        }
        out
    }

    /// Keeps the refs whose data overlaps `[start, end]`; returns them with their labels.
    pub(super) fn in_range(&self, refs: &RoaringBitmap, start: i64, end: i64) -> Vec<(u64, Box<[u8]>)> {
        let mut by_shard: Vec<Vec<u64>> = vec![Vec::new(); SHARDS];
        for r in refs {
            by_shard[shard_of_ref(r as u64)].push(r as u64);
        }
        let mut out = Vec::with_capacity(refs.len() as usize);
        for (i, list) in by_shard.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let shard = self.shards[i].lock();
            for r in list {
                if let Some(s) = shard.series.get(r)
                    && s.max_t >= start
                    && s.min_t <= end
                {
                    out.push((*r, s.labels.clone()));
                }
            }
        }
        if !self.tombstones.is_empty() {
            // A series with tombstones is listed only while a sample survives them in the range
            // (Prometheus hides fully deleted series from series, labels and label values too).
            out.retain(|(r, _)| self.survives_tombstones(*r, start, end));
        }
        out
    }

    fn in_range_bitmap(&self, refs: RoaringBitmap, start: i64, end: i64) -> RoaringBitmap {
        if start == i64::MIN && end == i64::MAX && self.tombstones.is_empty() {
            return refs;
        }
        self.in_range(&refs, start, end).into_iter().map(|(r, _)| r as u32).collect()
    }

    pub fn series(&self, matcher_sets: &[Vec<Matcher>], start: i64, end: i64, limit: Option<usize>) -> Vec<Labels> {
        let mut v: Vec<Labels> = self
            .in_range(&self.candidates(matcher_sets), start, end)
            .into_iter()
            .map(|(_, l)| decode_labels(&l))
            .collect();
        v.sort();
        v.truncate(limit.unwrap_or(usize::MAX));
        v
    }

    pub fn label_names(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
        limit: Option<usize>,
    ) -> Vec<String> {
        let refs = self.in_range_bitmap(self.candidates(matcher_sets), start, end);
        let mut v = self.postings.read().names_among(&refs);
        v.truncate(limit.unwrap_or(usize::MAX));
        v
    }

    pub fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        start: i64,
        end: i64,
        limit: Option<usize>,
    ) -> Vec<String> {
        if start == i64::MIN && end == i64::MAX && self.tombstones.is_empty() {
            let refs = self.candidates(matcher_sets);
            let mut v = self.postings.read().values_among(name, &refs);
            v.truncate(limit.unwrap_or(usize::MAX));
            return v;
        }
        // A time range: test each value's series until one is in range, instead of filtering
        // every candidate series first. Grafana's label-values calls always carry a range, and
        // most values are proven present by their first series.
        let candidates = (!matcher_sets.is_empty()).then(|| self.candidates(matcher_sets));
        let values = self.postings.read().values_with_postings(name);
        let mut out = Vec::new();
        for (value, mut refs) in values {
            if out.len() >= limit.unwrap_or(usize::MAX) {
                break;
            }
            if let Some(c) = &candidates {
                refs &= c;
            }
            if refs.iter().any(|r| self.series_in_range(r as u64, start, end)) {
                out.push(value);
            }
        }
        out
    }

    /// Whether series `sref` has data in `[start, end]` (after deletions), from its min/max time;
    /// only a series with tombstones needs its samples read.
    fn series_in_range(&self, sref: u64, start: i64, end: i64) -> bool {
        let overlaps = {
            let shard = self.shards[shard_of_ref(sref)].lock();
            shard.series.get(&sref).is_some_and(|s| s.max_t >= start && s.min_t <= end)
        };
        overlaps && self.survives_tombstones(sref, start, end)
    }

    /// Whether a sample of `sref` in `[start, end]` survives its deleted intervals; only a series
    /// with tombstones has its samples read. A read error keeps the series listed.
    fn survives_tombstones(&self, sref: u64, start: i64, end: i64) -> bool {
        !self.tombstones.has(sref)
            || self.series_samples(sref, start, end).map_or(true, |v| v.is_some_and(|v| !v.is_empty()))
    }

    /// The samples of one series in `[start, end]`: head first (under the shard lock), then the
    /// stored chunks, merged and de-duplicated by timestamp, minus deleted intervals (tombstones).
    /// Reading the head before the chunks means a chunk closed in between is seen at least once.
    /// A chunk that fails its checksum or cannot be read is logged with its location, counted in
    /// `crowsnest_store_corrupt_chunks_total` and skipped: the rest of the series is served, and
    /// no sample of the bad chunk is (its bytes cannot be trusted).
    pub fn series_samples(&self, sref: u64, start: i64, end: i64) -> Result<Option<Vec<Sample>>, StoreError> {
        self.series_samples_counted(sref, start, end, &corrupt_counter())
    }

    /// [`Engine::series_samples`] counting skipped corrupt chunks in `corrupt_seen`.
    fn series_samples_counted(
        &self,
        sref: u64,
        start: i64,
        end: i64,
        corrupt_seen: &AtomicU64,
    ) -> Result<Option<Vec<Sample>>, StoreError> {
        let mem = {
            let shard = self.shards[shard_of_ref(sref)].lock();
            match shard.series.get(&sref) {
                Some(s) => s.memory_samples(start, end),
                None => return Ok(None),
            }
        };
        let mut out: Vec<Sample> = Vec::new();
        for c in self.disk.chunks_overlapping(sref, start, end)? {
            let decoded = c.bytes.and_then(|raw| {
                chunk::decode_into(&raw, start, end, &mut out).map_err(|e| StoreError::Corrupt(e.to_string()))
            });
            match decoded {
                Ok(_) => {}
                Err(e) => {
                    self.metrics.corrupt_chunks.inc();
                    corrupt_seen.fetch_add(1, Ordering::Relaxed);
                    let series = self.series_name(sref);
                    tracing::error!(
                        series = %series,
                        series_ref = sref,
                        chunk = %c.location,
                        error = %e,
                        "Corrupt chunk skipped; the series' other chunks are served."
                    );
                }
            }
        }
        out.extend(mem);
        // Chunks come in time order and rarely overlap (only after an interrupted compaction or
        // out-of-order merges), so the usual case is one sortedness check.
        if !out.is_sorted_by_key(|s| s.timestamp) {
            out.sort_by_key(|s| s.timestamp);
        }
        out.dedup_by_key(|s| s.timestamp);
        if let Some(deleted) = self.tombstones.get(sref) {
            out.retain(|s| !super::tombstones::covers(&deleted, s.timestamp));
        }
        Ok(Some(out))
    }

    /// A series' labels in Prometheus notation, for logs.
    fn series_name(&self, sref: u64) -> String {
        let shard = self.shards[shard_of_ref(sref)].lock();
        shard.series.get(&sref).map(|s| decode_labels(&s.labels).to_string()).unwrap_or_else(|| format!("#{sref}"))
    }

    /// The series matching `matchers` with data in `[start, end]`, sorted by labels.
    fn selected(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<(Labels, u64)> {
        let refs = self.postings.read().select(matchers);
        let mut list: Vec<(Labels, u64)> =
            self.in_range(&refs, start, end).into_iter().map(|(r, l)| (decode_labels(&l), r)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// One series' samples for the query engine; errors are logged here and reach the query as
    /// an `internal` error without details.
    fn load_for_query(
        &self,
        sref: u64,
        start: i64,
        end: i64,
        corrupt_seen: &AtomicU64,
    ) -> Result<Vec<Sample>, StorageError> {
        match self.series_samples_counted(sref, start, end, corrupt_seen) {
            Ok(v) => Ok(v.unwrap_or_default()),
            Err(e) => {
                tracing::error!(error = %e, "Reading a series failed.");
                Err(StorageError::Internal("reading stored chunks failed".into()))
            }
        }
    }

    /// `Storage::select`: series sorted by labels, each read lazily when the iterator reaches it.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = Result<Series, StorageError>> + Send + '_ {
        let seen = corrupt_counter();
        self.selected(matchers, start, end).into_iter().filter_map(move |(labels, sref)| {
            match self.load_for_query(sref, start, end, &seen) {
                Ok(samples) if !samples.is_empty() => Some(Ok(Series { labels, samples })),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }

    /// `Storage::select_lazy`: like [`Engine::select`], with each series' chunks read (and
    /// decoded) by whichever thread calls its loader. Skipped corrupt chunks are counted for the
    /// thread that selected.
    pub fn select_lazy(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<LazySeries<'_>> {
        let seen = corrupt_counter();
        self.selected(matchers, start, end)
            .into_iter()
            .map(|(labels, sref)| {
                let seen = Arc::clone(&seen);
                LazySeries { labels, load: Box::new(move || self.load_for_query(sref, start, end, &seen)) }
            })
            .collect()
    }

    pub fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        for shard in self.shards.iter() {
            for s in shard.lock().series.values() {
                min_time = min_time.min(s.min_t);
                max_time = max_time.max(s.max_t);
            }
        }
        let p = self.postings.read();
        let by_name: Vec<(String, u64)> = p
            .values_among("__name__", p.all())
            .into_iter()
            .map(|n| {
                let m = Matcher::equal("__name__", n.as_str());
                let c = p.select(std::slice::from_ref(&m)).len();
                (n, c)
            })
            .collect();
        let (names, pairs) = p.stats();
        let top = |mut v: Vec<(String, u64)>| {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(limit);
            v
        };
        TsdbStatus {
            num_series: self.active.load(Ordering::Relaxed).max(0) as u64,
            num_label_pairs: p.pair_count(),
            chunk_count: self.metrics.chunks.get().max(0) as u64,
            min_time: (min_time != i64::MAX).then_some(min_time),
            max_time: (max_time != i64::MIN).then_some(max_time),
            series_count_by_metric_name: top(by_name),
            label_value_count_by_label_name: top(names.iter().map(|(n, c, _)| (n.clone(), *c)).collect()),
            memory_in_bytes_by_label_name: top(names.into_iter().map(|(n, _, b)| (n, b)).collect()),
            series_count_by_label_value_pair: top(pairs),
        }
    }
}
