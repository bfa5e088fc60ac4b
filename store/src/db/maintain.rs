//! Background upkeep: checkpoints (rotate the WAL, write new series as one catalog batch, write
//! out-of-order buffers and idle heads out as chunks, store every head snapshot and series range
//! as one sled value (`catalog.rs`), sync the chunk files, `sled::Db::flush`, then delete the WAL
//! segments now covered),
//! retention (delete whole chunks that end before `newest sample − retention`, and series left
//! empty), and the disk-usage gauges. A thread runs them on a timer; each is also callable directly.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::head::shard_of_ref;
use crate::error::StoreError;

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub chunks_dropped: u64,
    pub series_dropped: u64,
}

impl Engine {
    /// Makes everything in memory durable in sled and truncates the WAL. With `close_heads`, every
    /// head chunk is closed into a stored chunk (shutdown, benchmarks); otherwise heads are
    /// snapshotted and only idle ones are closed.
    pub fn checkpoint(&self, close_heads: bool) -> Result<(), StoreError> {
        let _g = self.checkpoint_lock.lock();
        let started = Instant::now();
        let boundary = self.wal.rotate()?;
        // Series rows first (set_series_range below updates them).
        let mut pending = std::mem::take(&mut *self.pending_series.lock());
        pending.retain(|(sref, _)| self.shards[shard_of_ref(*sref)].lock().series.contains_key(sref));
        self.disk.create_series_batch(&pending)?;
        drop(pending);
        let mut ranges: Vec<(u64, i64, i64)> = Vec::new();
        let mut heads: Vec<(u64, Vec<u8>)> = Vec::new();
        let idle_ms = i64::try_from(self.config().engine.head_idle_timeout.as_millis()).unwrap_or(i64::MAX);
        let idle_before = self.max_time.load(Ordering::Relaxed).saturating_sub(idle_ms);
        let mut closed = 0i64;
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            for (sref, s) in shard.series.iter_mut() {
                let idle = !s.head.is_empty() && s.max_t < idle_before;
                if s.dirty || idle || close_heads {
                    s.flush_ooo(*sref, &self.disk, &self.metrics)?;
                    if !s.head.is_empty() && (close_heads || idle) {
                        s.cut_head(*sref, &self.disk, &self.metrics)?;
                        closed += 1;
                    }
                    s.head.shrink();
                    s.dirty = false;
                }
                ranges.push((*sref, s.min_t, s.max_t));
                if !s.head.is_empty() {
                    heads.push((*sref, s.head.to_snapshot()));
                }
            }
        }
        self.active.fetch_sub(closed, Ordering::Relaxed);
        self.disk.put_state(&ranges, &heads)?;
        self.disk.flush()?;
        let removed = self.wal.truncate_before(boundary)?;
        *self.last_checkpoint.lock() = Instant::now();
        self.metrics.checkpoints.inc();
        self.metrics.head_series.set(self.active.load(Ordering::Relaxed));
        self.update_disk_gauges();
        tracing::debug!(
            segments_removed = removed,
            heads_closed = closed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Checkpoint done."
        );
        Ok(())
    }

    /// Drops chunks that end before `newest sample − retention`, and series with nothing left.
    pub fn apply_retention(&self) -> Result<RetentionReport, StoreError> {
        // Retention deletes chunk files: not while a snapshot copies them or a compaction seals.
        let _g = self.compaction_lock.lock();
        let mut report = RetentionReport::default();
        let newest = self.max_time.load(Ordering::Relaxed);
        *self.last_retention.lock() = Instant::now();
        if newest == i64::MIN {
            return Ok(report);
        }
        let cutoff = newest.saturating_sub(i64::try_from(self.config().retention.as_millis()).unwrap_or(i64::MAX));
        let mut old: Vec<u64> = Vec::new();
        for shard in self.shards.iter() {
            // Series that never got a sample (all refused) have min_t == i64::MAX and go too.
            old.extend(
                shard
                    .lock()
                    .series
                    .iter()
                    .filter(|(_, s)| s.min_t < cutoff || (s.min_t == i64::MAX && s.head.is_empty() && s.ooo.is_empty()))
                    .map(|(r, _)| *r),
            );
        }
        let mut removed: Vec<u64> = Vec::new();
        for sref in old {
            let (dropped, first_kept) = self.disk.drop_chunks_before(sref, cutoff)?;
            report.chunks_dropped += dropped;
            let mut shard = self.shards[shard_of_ref(sref)].lock();
            let Some(s) = shard.series.get_mut(&sref) else { continue };
            s.ooo.retain(|x| x.timestamp >= cutoff);
            if !s.head.is_empty() && s.head.max_t() < cutoff {
                s.head = super::xor::XorChunk::new();
                self.active.fetch_sub(1, Ordering::Relaxed);
            }
            let mut min_t = first_kept.unwrap_or(i64::MAX);
            if !s.head.is_empty() {
                min_t = min_t.min(s.head.min_t());
            }
            if let Some(f) = s.ooo.first() {
                min_t = min_t.min(f.timestamp);
            }
            if min_t == i64::MAX {
                if let Some(gone) = shard.remove(sref) {
                    report.chunks_dropped += self.disk.remove_series_chunks(sref)?;
                    removed.push(sref);
                    self.postings.write().remove(sref as u32, &gone.labels);
                    report.series_dropped += 1;
                }
            } else {
                s.min_t = min_t;
                s.dirty = true;
            }
        }
        self.disk.remove_series_rows(&removed)?;
        self.disk.remove_windows_before(cutoff)?;
        self.metrics.chunks.dec_by(report.chunks_dropped as i64);
        self.metrics.retention_chunks.inc_by(report.chunks_dropped);
        self.metrics.retention_series.inc_by(report.series_dropped);
        self.metrics.series.set(self.postings.read().len() as i64);
        self.metrics.head_series.set(self.active.load(Ordering::Relaxed));
        if report.series_dropped > 0 {
            // Truncate the WAL now, so a replay cannot resurrect the dropped series' samples.
            self.checkpoint(false)?;
        }
        if report != RetentionReport::default() {
            tracing::info!(
                chunks = report.chunks_dropped,
                series = report.series_dropped,
                cutoff,
                "Retention dropped old data."
            );
        }
        Ok(report)
    }

    /// Bytes on disk (sled, chunk files and WAL); also refreshes the filesystem free/total gauges.
    pub fn update_disk_gauges(&self) -> u64 {
        let wal = self.wal.disk_bytes();
        let total = wal + self.disk.size_on_disk();
        self.metrics.wal_bytes.set(wal);
        self.metrics.disk_bytes.set(total);
        match super::diskspace::fs_space(&self.config().data_dir) {
            Ok(fs) => {
                self.metrics.disk_free.set(fs.free);
                self.metrics.disk_total.set(fs.total);
            }
            Err(e) => tracing::warn!(error = %e, "Reading the data directory's free space failed."),
        }
        total
    }

    pub fn stats(&self) -> super::StoreStats {
        let mut head_bytes = 0u64;
        for shard in self.shards.iter() {
            head_bytes += shard.lock().series.values().map(|s| s.heap_bytes() as u64).sum::<u64>();
        }
        super::StoreStats {
            series: self.postings.read().len(),
            active_series: self.active.load(Ordering::Relaxed).max(0) as u64,
            chunks: self.metrics.chunks.get().max(0) as u64,
            chunk_bytes_written: self.metrics.chunk_bytes.get(),
            chunk_samples_written: self.metrics.chunk_samples.get(),
            head_bytes,
            sled_bytes: self.disk.sled_bytes(),
            chunk_file_bytes: self.disk.files.disk_bytes(),
            wal_bytes: self.wal.disk_bytes(),
        }
    }

    /// One round of the maintenance loop.
    fn tick(&self) -> Result<(), StoreError> {
        let config = self.config();
        let cfg = &config.engine;
        let wal_bytes = self.wal.disk_bytes();
        if self.last_checkpoint.lock().elapsed() >= cfg.checkpoint_interval || wal_bytes >= cfg.checkpoint_wal_bytes {
            self.checkpoint(false)?;
        }
        if self.last_retention.lock().elapsed() >= cfg.retention_interval {
            self.apply_retention()?;
        }
        if self.last_compaction.lock().elapsed() >= cfg.retention_interval {
            *self.last_compaction.lock() = Instant::now();
            self.compact(self.compaction_horizon())?;
        }
        self.update_disk_gauges();
        Ok(())
    }
}

/// The maintenance thread's body: ticks every `period` until `stop` fires or the engine is gone.
/// The `periodic` WAL fsync mode's syncer: every `store.engine.wal_fsync_interval` (read on each
/// round, so a reload applies), syncs what the appends wrote since the last sync. It runs in its
/// own thread so that a long checkpoint or compaction never delays it. In `ack` mode every append
/// has synced already and each round is a no-op.
pub fn run_wal_syncer(engine: Weak<Engine>, stop: Receiver<()>) {
    loop {
        let interval = match engine.upgrade() {
            Some(e) => e.config().engine.wal_fsync_interval,
            None => return,
        };
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(e) = engine.upgrade() else { return };
        match e.wal.sync_written() {
            Ok(Some(secs)) => e.metrics.wal_fsync.observe(secs),
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "Background WAL fsync failed; retrying next round."),
        }
        drop::<Arc<Engine>>(e);
    }
}

pub fn run(engine: Weak<Engine>, stop: Receiver<()>, period: Duration) {
    loop {
        match stop.recv_timeout(period) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(e) = engine.upgrade() else { return };
        if let Err(err) = e.tick() {
            tracing::error!(error = %err, "Store maintenance failed; retrying next round.");
        }
        drop::<Arc<Engine>>(e);
    }
}
