//! Compaction: merges one series' chunks inside an aligned [`BLOCK_WINDOW_MS`] window into blocks
//! of up to [`BLOCK_MAX_SAMPLES`] samples, re-encoded with the closed-chunk codecs. Bigger blocks
//! compress better (`reference/tsdb-performance.md` §4.4: 120 → 720+ samples ≈ 1.4x smaller) and
//! cut sled's per-entry overhead. Crash safety: new blocks are written and sled is flushed before
//! the merged chunks are deleted; an interruption leaves overlapping chunks, which queries merge.

use std::sync::atomic::Ordering;

use crowsnest_wire::Sample;

use super::chunk;
use super::engine::Engine;
use super::persist::{BLOCK_WINDOW_MS, CHUNK_SPAN_MS, window_of};
use crate::error::StoreError;

/// Most samples in one compacted block (VictoriaMetrics uses 8,192 rows per block); keeps values
/// well under sled's 128 KiB blob threshold.
pub const BLOCK_MAX_SAMPLES: usize = 8192;

/// Series handled between two sled flushes.
const SERIES_PER_BATCH: usize = 1000;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub chunks_merged: u64,
    pub blocks_written: u64,
}

impl Engine {
    /// Compacts every window that ends before `horizon` (all windows with `i64::MAX`).
    pub fn compact(&self, horizon: i64) -> Result<CompactReport, StoreError> {
        let _g = self.compaction_lock.lock();
        let mut report = CompactReport::default();
        let mut todo: Vec<(u64, i64)> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            todo.extend(
                shard
                    .series
                    .iter()
                    .filter(|(_, s)| s.compacted_until < horizon && s.min_t < horizon)
                    .map(|(r, s)| (*r, s.compacted_until.max(s.min_t))),
            );
        }
        for batch in todo.chunks(SERIES_PER_BATCH) {
            let mut obsolete: Vec<sled::IVec> = Vec::new();
            let mut done: Vec<(u64, i64)> = Vec::new();
            for (sref, from) in batch {
                let lo = window_of(*from).saturating_mul(BLOCK_WINDOW_MS);
                let chunks = self.disk.chunks_ending_in(*sref, lo, horizon)?;
                let mut i = 0;
                while i < chunks.len() {
                    let w = window_of(chunk::min_t_unchecked(&chunks[i].1).unwrap_or(i64::MIN));
                    let mut j = i + 1;
                    while j < chunks.len() && window_of(chunk::min_t_unchecked(&chunks[j].1).unwrap_or(i64::MIN)) == w {
                        j += 1;
                    }
                    if j - i >= 2 {
                        self.merge(*sref, &chunks[i..j], &mut obsolete, &mut report)?;
                    }
                    i = j;
                }
                done.push((*sref, horizon));
            }
            if !obsolete.is_empty() {
                self.disk.flush()?;
                for k in &obsolete {
                    self.disk.remove_chunk(k)?;
                }
            }
            for (sref, until) in done {
                if let Some(s) = self.shards[super::head::shard_of_ref(sref)].lock().series.get_mut(&sref) {
                    s.compacted_until = s.compacted_until.max(until);
                }
            }
        }
        self.metrics.compacted_chunks.inc_by(report.chunks_merged);
        if report.chunks_merged > 0 {
            tracing::debug!(merged = report.chunks_merged, blocks = report.blocks_written, "Compaction done.");
        }
        Ok(report)
    }

    fn merge(
        &self,
        sref: u64,
        chunks: &[(sled::IVec, sled::IVec)],
        obsolete: &mut Vec<sled::IVec>,
        report: &mut CompactReport,
    ) -> Result<(), StoreError> {
        let mut samples: Vec<Sample> = Vec::new();
        for (_, v) in chunks {
            match chunk::decode(v) {
                Ok((_, s)) => samples.extend(s),
                Err(e) => {
                    // Leave a window with a corrupt chunk alone; fsck and queries report it.
                    self.metrics.corrupt_chunks.inc();
                    tracing::error!(series = sref, error = %e, "Corrupt chunk; window not compacted.");
                    return Ok(());
                }
            }
        }
        samples.sort_by_key(|s| s.timestamp);
        samples.dedup_by_key(|s| s.timestamp);
        let mut new_keys: Vec<[u8; 16]> = Vec::new();
        for part in samples.chunks(BLOCK_MAX_SAMPLES) {
            let Some(last) = part.last() else { continue };
            let bytes = chunk::encode(part);
            self.disk.put_chunk(sref, last.timestamp, &bytes)?;
            new_keys.push(super::persist::chunk_key(sref, last.timestamp));
            report.blocks_written += 1;
        }
        for (k, _) in chunks {
            if !new_keys.iter().any(|n| n[..] == k[..]) {
                obsolete.push(k.clone());
            }
        }
        report.chunks_merged += chunks.len() as u64;
        self.metrics.chunks.inc_by(new_keys.len() as i64);
        self.metrics.chunks.dec_by(chunks.len() as i64);
        Ok(())
    }

    /// The compaction horizon for the background pass: windows that can no longer receive
    /// in-order samples (head chunks span at most `CHUNK_SPAN_MS`) nor out-of-order ones.
    pub fn compaction_horizon(&self) -> i64 {
        let newest = self.max_time.load(Ordering::Relaxed);
        let window = i64::try_from(self.config.out_of_order_window.as_millis()).unwrap_or(i64::MAX);
        let h = newest.saturating_sub(window.max(CHUNK_SPAN_MS));
        window_of(h).saturating_mul(BLOCK_WINDOW_MS)
    }
}
