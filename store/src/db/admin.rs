//! The engine side of the admin API (Prometheus' `/api/v1/admin/tsdb/*`, `web/api/v1/api.go`
//! `deleteSeries`, `cleanTombstones`, `snapshot`; `tsdb/db.go` `Delete`, `CleanTombstones`,
//! `Snapshot`):
//!
//! - [`Engine::delete_series`] records tombstones (`tombstones.rs`) and makes them durable before
//!   returning; reads hide the deleted samples from then on.
//! - [`Engine::clean_tombstones`] rewrites the affected chunks without the deleted samples, drops
//!   series left empty from the index, seals the touched windows into new file generations (so
//!   the old bytes leave the disk and a restart's chunk-file scan cannot bring them back),
//!   checkpoints (so WAL replay cannot either), and only then forgets the tombstones: a crash at
//!   any point leaves them in force.
//! - [`Engine::snapshot`] writes a consistent copy of the data directory that a store can open.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;

use crowsnest_wire::{Matcher, Sample};

use super::chunk;
use super::engine::Engine;
use super::head::shard_of_ref;
use super::persist::window_of;
use super::tombstones::{Interval, covers};
use super::xor::XorChunk;
use crate::error::StoreError;

/// What [`Engine::clean_tombstones`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Series whose tombstones were applied.
    pub series_cleaned: u64,
    /// Series removed because nothing was left.
    pub series_dropped: u64,
    /// Chunks rewritten without deleted samples or removed.
    pub chunks_rewritten: u64,
}

/// What one series looks like after its deleted samples are gone.
struct Cleaned {
    chunks_rewritten: u64,
    empty: bool,
}

impl Engine {
    /// Tombstones `[start, end]` of every series matching any of `matcher_sets` with data in that
    /// range; durable (sled flushed) when this returns. Returns the number of series affected.
    pub fn delete_series(&self, matcher_sets: &[Vec<Matcher>], start: i64, end: i64) -> Result<u64, StoreError> {
        let refs: Vec<u64> =
            self.in_range(&self.candidates(matcher_sets), start, end).into_iter().map(|(r, _)| r).collect();
        if refs.is_empty() {
            return Ok(0);
        }
        // Not while a snapshot copies the index.
        let _g = self.compaction_lock.lock();
        self.tombstones.add(&refs, (start, end))?;
        self.disk.flush()?;
        tracing::info!(series = refs.len(), start, end, "Series deleted (tombstoned).");
        Ok(refs.len() as u64)
    }

    /// Applies every tombstone physically (see the module doc) and forgets them.
    pub fn clean_tombstones(&self) -> Result<CleanReport, StoreError> {
        let _g = self.compaction_lock.lock();
        let todo = self.tombstones.all();
        let mut report = CleanReport::default();
        if todo.is_empty() {
            return Ok(report);
        }
        let mut windows: BTreeSet<i64> = BTreeSet::new();
        let mut dropped: Vec<u64> = Vec::new();
        for (sref, deleted) in &todo {
            let c = self.clean_series(*sref, deleted, &mut windows)?;
            report.series_cleaned += 1;
            report.chunks_rewritten += c.chunks_rewritten;
            if c.empty {
                dropped.push(*sref);
            }
        }
        report.series_dropped = dropped.len() as u64;
        self.disk.remove_series_rows(&dropped)?;
        for w in &windows {
            self.disk.files.mark_unsealed(*w);
        }
        // Seal the touched windows now and delete the replaced generations right after: the old
        // records are what a restart's scan would find again.
        self.compact_locked(i64::MAX)?;
        self.delete_retired()?;
        self.checkpoint(false)?;
        self.tombstones.remove(&todo)?;
        self.disk.flush()?;
        self.metrics.series.set(self.postings.read().len() as i64);
        self.metrics.head_series.set(self.active.load(Ordering::Relaxed));
        self.update_disk_gauges();
        tracing::info!(
            series = report.series_cleaned,
            series_dropped = report.series_dropped,
            chunks = report.chunks_rewritten,
            "Tombstones cleaned."
        );
        Ok(report)
    }

    /// Rewrites one series without its deleted samples, under its shard lock (no head cut or
    /// append races the rewrite); removes the series when nothing is left.
    fn clean_series(
        &self,
        sref: u64,
        deleted: &[Interval],
        windows: &mut BTreeSet<i64>,
    ) -> Result<Cleaned, StoreError> {
        let mut shard = self.shards[shard_of_ref(sref)].lock();
        let Some(s) = shard.series.get_mut(&sref) else { return Ok(Cleaned { chunks_rewritten: 0, empty: false }) };
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let mut keep_range = |a: i64, b: i64| {
            min_t = min_t.min(a);
            max_t = max_t.max(b);
        };
        let mut rewritten = 0u64;
        for (key, raw) in self.disk.chunks_ending_in(sref, i64::MIN, i64::MAX)? {
            let (meta, samples) = match chunk::decode(&raw) {
                Ok(x) => x,
                Err(e) => {
                    // Unreadable: nothing to filter, its samples are never served anyway.
                    tracing::error!(series_ref = sref, error = %e, "Corrupt chunk left as is by clean_tombstones.");
                    continue;
                }
            };
            if !samples.iter().any(|x| covers(deleted, x.timestamp)) {
                keep_range(meta.min_t, meta.max_t);
                continue;
            }
            let kept: Vec<Sample> = samples.into_iter().filter(|x| !covers(deleted, x.timestamp)).collect();
            self.disk.remove_chunk(&key)?;
            self.metrics.chunks.dec();
            windows.insert(window_of(meta.max_t));
            rewritten += 1;
            if let (Some(first), Some(last)) = (kept.first(), kept.last()) {
                keep_range(first.timestamp, last.timestamp);
                self.disk.put_chunk(sref, last.timestamp, &chunk::encode(&kept))?;
                self.metrics.chunks.inc();
            }
        }
        let had_head = !s.head.is_empty();
        if had_head && s.head.iter().any(|x| covers(deleted, x.timestamp)) {
            let mut head = XorChunk::new();
            for x in s.head.iter().filter(|x| !covers(deleted, x.timestamp)) {
                head.append(x.timestamp, x.value);
            }
            s.head = head;
        }
        s.ooo.retain(|x| !covers(deleted, x.timestamp));
        if !s.head.is_empty() {
            keep_range(s.head.min_t(), s.head.max_t());
        }
        if let (Some(a), Some(b)) = (s.ooo.first(), s.ooo.last()) {
            keep_range(a.timestamp, b.timestamp);
        }
        if had_head && s.head.is_empty() {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
        s.dirty = true;
        if min_t == i64::MAX {
            if let Some(gone) = shard.remove(sref) {
                rewritten += self.disk.remove_series_chunks(sref)?;
                self.postings.write().remove(sref as u32, &gone.labels);
            }
            return Ok(Cleaned { chunks_rewritten: rewritten, empty: true });
        }
        s.min_t = min_t;
        s.max_t = max_t;
        Ok(Cleaned { chunks_rewritten: rewritten, empty: false })
    }

    /// Writes a copy of the database that `Db::open` can use as its data directory into `dir`
    /// (which must not exist). Unless `skip_head`, a checkpoint first makes the head durable so
    /// the copy holds every sample acknowledged before the call; with `skip_head` the copy holds
    /// what the last checkpoint and the chunk files held (Prometheus' `skip_head` likewise leaves
    /// out the in-memory head). The WAL is not copied: the copy is the checkpoint's state.
    /// Index writers (checkpoint, compaction, retention, deletes) are paused while the index is
    /// copied; ingest is not.
    pub fn snapshot(&self, dir: &Path, skip_head: bool) -> Result<(), StoreError> {
        let _c = self.compaction_lock.lock();
        if !skip_head {
            self.checkpoint(false)?;
        }
        let _k = self.checkpoint_lock.lock();
        std::fs::create_dir_all(dir)?;
        self.disk.copy_index_to(&dir.join("index"))?;
        let (linked, copied) = self.disk.files.snapshot_to(&dir.join("chunks"))?;
        std::fs::create_dir_all(dir.join("wal"))?;
        std::fs::File::open(dir)?.sync_all()?;
        tracing::info!(dir = %dir.display(), linked, copied, skip_head, "Snapshot written.");
        Ok(())
    }
}
