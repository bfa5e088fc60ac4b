//! The append path: label validation and limits, series lookup or creation, per-sample head
//! appends under the series' shard lock, then one WAL frame for the whole batch and a group-commit
//! `fdatasync` before returning (so accepted samples survive `kill -9`).

use std::sync::atomic::Ordering;

use crowsnest_wire::labels::{LabelPair, SortedLabelsDisplay, validate_sorted};
use crowsnest_wire::remote::borrowed::WriteRequestRef;
use crowsnest_wire::{METRIC_NAME, Sample, TimeSeries};

use super::engine::Engine;
use super::head::{DiskCache, MemSeries, Outcome, SHARD_BITS, SHARDS, Shard, prefetch, shard_of_hash};
use super::index::{LabelHash, encode_labels};
use super::wal;
use super::{AppendOutcome, RejectReason, Rejection};
use crate::config::{Limits, StoreConfig, WalFsync};
use crate::error::StoreError;

/// A new series' slot and reference, or why it was refused (a series limit).
type Created = Result<(u32, u64), (RejectReason, String)>;

/// Per-series tally of refused samples by reason.
#[derive(Default)]
struct Refused {
    by_reason: Vec<(RejectReason, u64, String)>,
}

impl Refused {
    fn add(&mut self, reason: RejectReason, detail: impl FnOnce() -> String) {
        match self.by_reason.iter_mut().find(|(r, _, _)| *r == reason) {
            Some(e) => e.1 += 1,
            None => self.by_reason.push((reason, 1, detail())),
        }
    }
}

/// Checks one label set against the wire rules (sorted, unique, valid names, a metric name) and
/// the per-series limits of `limits`. Every new series goes through this (a series the head
/// already holds only through the limits part, [`check_limits`]); public so the remote_write fuzz
/// target runs exactly this code.
pub fn check_labels<L: LabelPair>(labels: &[L], limits: &Limits) -> Result<(), (RejectReason, String)> {
    if labels.is_empty() {
        return Err((RejectReason::InvalidLabels, "series has no labels".into()));
    }
    validate_sorted(labels).map_err(|e| (RejectReason::InvalidLabels, e.to_string()))?;
    check_limits(labels, limits)
}

/// The per-series limits part of [`check_labels`]: label count and name and value lengths.
fn check_limits<L: LabelPair>(labels: &[L], limits: &Limits) -> Result<(), (RejectReason, String)> {
    if labels.len() > limits.max_label_names_per_series {
        return Err((
            RejectReason::TooManyLabels,
            format!(
                "{} labels, limit is {} (max_label_names_per_series)",
                labels.len(),
                limits.max_label_names_per_series
            ),
        ));
    }
    for l in labels {
        let (name, value) = (l.name(), l.value());
        if name.len() > limits.max_label_name_length {
            return Err((
                RejectReason::LabelTooLong,
                format!(
                    "label name {:?}... is {} bytes, limit is {} (max_label_name_length)",
                    truncate(name),
                    name.len(),
                    limits.max_label_name_length
                ),
            ));
        }
        if value.len() > limits.max_label_value_length {
            return Err((
                RejectReason::LabelTooLong,
                format!(
                    "value of label {:?} is {} bytes, limit is {} (max_label_value_length)",
                    truncate(name),
                    value.len(),
                    limits.max_label_value_length
                ),
            ));
        }
    }
    Ok(())
}

impl Engine {
    /// Creates a series the shard does not hold (labels already checked) and returns its slot
    /// and reference; `Err` carries a refusal (series limits).
    fn create_series<L: LabelPair>(
        &self,
        shard: &mut Shard,
        sh: usize,
        hash: u64,
        labels: &[L],
        cfg: &StoreConfig,
        created: &mut bool,
    ) -> Result<Created, StoreError> {
        let limit = cfg.limits.max_active_series;
        if self.active.load(Ordering::Relaxed) >= limit as i64 {
            return Ok(Err((
                RejectReason::SeriesLimit,
                format!("the store holds {limit} active series, the limit (max_active_series)"),
            )));
        }
        let per_metric = cfg.limits.max_series_per_metric;
        if per_metric > 0
            && let Some(name) = labels.iter().find(|l| l.name() == METRIC_NAME)
        {
            // Shard locks are taken before the postings lock everywhere, so reading here is safe.
            // Concurrent creations in other shards may overshoot by a few series; the limit is a
            // cardinality guard, not an exact quota.
            let have = self.postings.read().count(METRIC_NAME, name.value());
            if have >= per_metric as u64 {
                return Ok(Err((
                    RejectReason::SeriesPerMetricLimit,
                    format!(
                        "metric {:?} already has {have} series, the limit is {per_metric} (max_series_per_metric)",
                        truncate(name.value())
                    ),
                )));
            }
        }
        let counter = self.next_ref.fetch_add(1, Ordering::SeqCst);
        let sref = (counter << SHARD_BITS) | sh as u64;
        if sref > u32::MAX as u64 {
            return Err(StoreError::Limit("series reference space exhausted".into()));
        }
        let mut enc = Vec::with_capacity(labels.iter().map(|l| l.name().len() + l.value().len() + 2).sum());
        encode_labels(labels, &mut enc);
        // The series record goes to the WAL before any sample that refers to it.
        self.wal.write(&wal::encode_series(sref, &enc))?;
        self.postings.write().add(sref as u32, &enc);
        let enc = enc.into_boxed_slice();
        self.pending_series.lock().push((sref, enc.clone()));
        let slot = shard.insert(sref, MemSeries::new(enc, hash));
        self.metrics.series_created.inc();
        self.metrics.series.inc();
        *created = true;
        Ok(Ok((slot, sref)))
    }

    pub fn append(&self, batch: Vec<TimeSeries>) -> Result<AppendOutcome, StoreError> {
        let total = batch.iter().map(|t| t.samples.len()).sum();
        self.append_series(batch.iter().map(|t| (t.labels.as_slice(), t.samples.as_slice())), total)
    }

    /// Appends a decoded remote_write request without copying its labels: a series the head
    /// already holds costs no allocation.
    pub fn append_request(&self, req: &WriteRequestRef<'_>) -> Result<AppendOutcome, StoreError> {
        self.append_series(req.iter().map(|s| (s.labels, s.samples)), req.sample_count())
    }

    /// The append path for owned and borrowed labels alike; `total` is the number of samples.
    ///
    /// The series are grouped by shard (keeping their request order within a shard), so each
    /// shard is locked once per write rather than once per series, and within a shard every
    /// series' slot is probed before any is touched, with prefetches, so the cache misses of a
    /// run of series overlap instead of coming one after another.
    fn append_series<'b, L: LabelPair + 'b>(
        &self,
        batch: impl Iterator<Item = (&'b [L], &'b [Sample])>,
        total: usize,
    ) -> Result<AppendOutcome, StoreError> {
        let cfg = self.config();
        let retention = i64::try_from(cfg.retention.as_millis()).unwrap_or(i64::MAX);
        let newest = self.max_time.load(Ordering::Relaxed);
        let ctx = AppendCtx {
            cfg: &cfg,
            window: i64::try_from(cfg.out_of_order_window.as_millis()).unwrap_or(i64::MAX),
            oldest_allowed: if newest == i64::MIN { i64::MIN } else { newest.saturating_sub(retention) },
        };
        let batch: Vec<(&'b [L], &'b [Sample])> = batch.filter(|(_, samples)| !samples.is_empty()).collect();
        let groups = group_by_shard(&batch, self.label_hash);
        let mut tally = Tally { logged: Vec::with_capacity(total), batch_max: i64::MIN, ..Tally::default() };
        let mut slots = Vec::new();
        // Near the series limit, which new series still fit must not depend on shard order:
        // the write is then appended series by series in request order, as it was sent.
        let near_limit = self.active.load(Ordering::Relaxed).saturating_add(batch.len() as i64)
            >= cfg.limits.max_active_series as i64;
        if near_limit {
            let mut in_order: Vec<(usize, (u32, u64))> =
                groups.iter().enumerate().flat_map(|(sh, g)| g.iter().map(move |&e| (sh, e))).collect();
            in_order.sort_by_key(|(_, (i, _))| *i);
            for (sh, entry) in in_order {
                let mut shard = self.shards[sh].lock();
                self.append_group(&mut shard, sh, &[entry], &batch, &ctx, &mut slots, &mut tally)?;
            }
            return self.finish_append(&cfg, tally);
        }
        // Shards another writer holds are left for a second pass rather than waited for.
        let mut busy = Vec::new();
        for (sh, group) in groups.iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            match self.shards[sh].try_lock() {
                Some(mut shard) => self.append_group(&mut shard, sh, group, &batch, &ctx, &mut slots, &mut tally)?,
                None => busy.push(sh),
            }
        }
        for sh in busy {
            let mut shard = self.shards[sh].lock();
            self.append_group(&mut shard, sh, &groups[sh], &batch, &ctx, &mut slots, &mut tally)?;
        }
        self.finish_append(&cfg, tally)
    }

    /// Counts what a write did, logs its accepted samples as one WAL frame and (in `ack` mode)
    /// waits for that frame to be durable.
    fn finish_append(&self, cfg: &StoreConfig, tally: Tally) -> Result<AppendOutcome, StoreError> {
        let Tally { logged, duplicates, mut rejected, batch_max, created } = tally;
        rejected.sort_by_key(|(i, _)| *i);
        let rejected: Vec<Rejection> = rejected.into_iter().map(|(_, r)| r).collect();
        for r in &rejected {
            self.metrics.reject(r.reason.as_str(), r.samples);
        }
        let out = AppendOutcome { accepted: logged.len() as u64 - duplicates, duplicates, rejected };
        self.max_time.fetch_max(batch_max, Ordering::Relaxed);
        if !logged.is_empty() || created {
            let pos =
                if logged.is_empty() { self.wal.write(&[])? } else { self.wal.write(&wal::encode_samples(&logged))? };
            // In `periodic` mode the frame is in the page cache now, which a killed process
            // cannot lose; the background syncer makes it power-safe within the interval.
            if cfg.engine.wal_fsync == WalFsync::Ack
                && let Some(secs) = self.wal.sync_to(pos)?
            {
                self.metrics.wal_fsync.observe(secs);
            }
        }
        self.metrics.ingested.inc_by(out.accepted);
        self.metrics.duplicates.inc_by(out.duplicates);
        self.metrics.head_series.set(self.active.load(Ordering::Relaxed));
        Ok(out)
    }

    /// Appends the series of one shard (`group`: indexes into `batch` and label hashes) under
    /// its lock.
    ///
    /// Every series' slot is probed (a small map) before any series is touched, prefetching the
    /// series it names, and the labels and head chunk of the series a few places ahead are
    /// prefetched too, so the cache misses of a run of series overlap instead of coming one
    /// after another.
    #[allow(clippy::too_many_arguments)]
    fn append_group<L: LabelPair>(
        &self,
        shard: &mut Shard,
        sh: usize,
        group: &[(u32, u64)],
        batch: &[(&[L], &[Sample])],
        ctx: &AppendCtx<'_>,
        slots: &mut Vec<Option<u32>>,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        slots.clear();
        slots.extend(group.iter().map(|&(_, hash)| {
            let slot = shard.probe(hash);
            if let Some(slot) = slot {
                shard.series.prefetch(slot);
            }
            slot
        }));
        for (k, &(i, hash)) in group.iter().enumerate() {
            if let Some(&Some(ahead)) = slots.get(k + PREFETCH_AHEAD)
                && let Some((_, s)) = shard.series.at(ahead)
            {
                // Labels run to a few hundred bytes: every line of them is compared.
                for line in s.labels.chunks(64).take(8) {
                    prefetch(line.as_ptr());
                }
                prefetch(s.head.tail_ptr());
            }
            let (labels, samples) = batch[i as usize];
            // A series created earlier in this group was not there when the slots were probed.
            let candidate = slots[k].or_else(|| shard.probe(hash));
            let found = shard.verify(hash, candidate, labels);
            self.append_entry(shard, sh, found, &Entry { index: i, labels, samples, hash }, ctx, tally)?;
        }
        Ok(())
    }

    /// Appends one series' samples; `found` is its slot and reference when the shard holds it.
    fn append_entry<L: LabelPair>(
        &self,
        shard: &mut Shard,
        sh: usize,
        found: Option<(u32, u64)>,
        e: &Entry<'_, L>,
        ctx: &AppendCtx<'_>,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let (labels, samples) = (e.labels, e.samples);
        let n = samples.len() as u64;
        // Every series in the head was created below after a full `check_labels` (or replayed
        // from the WAL record logged then), so a label set equal to one it holds is sorted,
        // unique and well-formed; only the limits, which a reload may have lowered, are
        // checked again. That saves the name validation for all but new series.
        let checked =
            if found.is_some() { check_limits(labels, &ctx.cfg.limits) } else { check_labels(labels, &ctx.cfg.limits) };
        if let Err((reason, detail)) = checked {
            tally.rejected.push((e.index, Rejection { reason, series: describe_raw(labels), detail, samples: n }));
            return Ok(());
        }
        let (slot, sref) = match found {
            Some(found) => found,
            None => match self.create_series(shard, sh, e.hash, labels, ctx.cfg, &mut tally.created)? {
                Ok(r) => r,
                Err((reason, detail)) => {
                    let series = SortedLabelsDisplay(labels).to_string();
                    tally.rejected.push((e.index, Rejection { reason, series, detail, samples: n }));
                    return Ok(());
                }
            },
        };
        // The slot, not the reference: a second map probe per series is what the slab avoids.
        let Some((_, series)) = shard.series.at_mut(slot) else { return Ok(()) };
        let was_active = !series.head.is_empty();
        let mut cache = DiskCache::new(&self.disk, &self.metrics);
        let mut refused = Refused::default();
        let oldest_allowed = ctx.oldest_allowed;
        for s in samples {
            let t = s.timestamp;
            if t < oldest_allowed {
                refused.add(RejectReason::TooOld, || {
                    format!("sample at {t} is older than the retention period (oldest accepted {oldest_allowed})")
                });
                continue;
            }
            match series.append(sref, t, s.value, Some(ctx.window), &mut cache)? {
                Outcome::Appended => {
                    tally.logged.push((sref, t, s.value.to_bits()));
                    tally.batch_max = tally.batch_max.max(t);
                }
                // Logged again: the first copy may sit in the head without a WAL record
                // (its request failed to log, e.g. disk full, and got a 5xx), so this retry's
                // 2xx must make it durable itself. Replaying a duplicate is a no-op.
                Outcome::Duplicate => {
                    tally.duplicates += 1;
                    tally.logged.push((sref, t, s.value.to_bits()));
                }
                Outcome::DuplicateTimestamp => refused
                    .add(RejectReason::DuplicateTimestamp, || format!("a different value is already stored at {t}")),
                Outcome::OutOfOrder => {
                    let newest = series.max_t;
                    refused.add(RejectReason::OutOfOrder, || format!("sample at {t} is older than the out-of-order window allows (newest sample of the series is at {newest})"))
                }
            }
        }
        if !was_active && !series.head.is_empty() {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        if !refused.by_reason.is_empty() {
            let name = SortedLabelsDisplay(labels).to_string();
            for (reason, samples, detail) in refused.by_reason {
                tally.rejected.push((e.index, Rejection { reason, series: name.clone(), detail, samples }));
            }
        }
        Ok(())
    }
}

/// How far ahead of the series being appended its successors' labels and head chunk are
/// prefetched: far enough for the loads to arrive, near enough that they are still cached.
const PREFETCH_AHEAD: usize = 4;

/// One series of a write and its label hash.
struct Entry<'b, L> {
    /// Position in the write.
    index: u32,
    labels: &'b [L],
    samples: &'b [Sample],
    hash: u64,
}

/// What every series of one write shares.
struct AppendCtx<'c> {
    cfg: &'c StoreConfig,
    /// Out-of-order window, ms.
    window: i64,
    /// Samples older than this are beyond retention.
    oldest_allowed: i64,
}

/// What appending a write's series produced so far.
#[derive(Default)]
struct Tally {
    /// `(series, timestamp, value bits)` for the WAL frame.
    logged: Vec<(u64, i64, u64)>,
    duplicates: u64,
    /// With the index of the series in the write, to report them in request order.
    rejected: Vec<(u32, Rejection)>,
    batch_max: i64,
    /// A series was created (its WAL record must be synced even if no sample was accepted).
    created: bool,
}

/// Indexes into `batch` and label hashes of its series per shard, each list in request order (so
/// a series sent twice in one write is appended in the order sent).
fn group_by_shard<L: LabelPair>(batch: &[(&[L], &[Sample])], label_hash: LabelHash) -> Vec<Vec<(u32, u64)>> {
    let mut groups: Vec<Vec<(u32, u64)>> = (0..SHARDS).map(|_| Vec::with_capacity(batch.len() / SHARDS + 8)).collect();
    for (i, (labels, _)) in batch.iter().enumerate() {
        let hash = label_hash.of(labels);
        groups[shard_of_hash(hash)].push((i as u32, hash));
    }
    groups
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A short rendering of labels that failed validation (possibly unsorted or invalid).
fn describe_raw<L: LabelPair>(labels: &[L]) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().take(16).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!("{}={:?}", truncate(l.name()), truncate(l.value())));
    }
    if labels.len() > 16 {
        s.push_str(", ...");
    }
    s.push('}');
    s
}
