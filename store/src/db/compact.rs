//! Compaction: seals an aligned [`BLOCK_WINDOW_MS`] window by merging each series' chunks in it
//! into blocks of up to [`BLOCK_MAX_SAMPLES`] samples, re-encoded with the closed-chunk codecs and
//! written to the window's next payload-file generation. Bigger blocks compress better
//! (`reference/tsdb-performance.md` §4.4: 120 → 720+ samples ≈ 1.4x smaller) and need fewer index
//! entries; blocks of at least 256 samples also try the split value coding (`split.rs`). Crash
//! safety: new blocks are made durable (file sync) before the merged chunks' pointers are
//! dropped, the generation's index file (`sealed.rs`) is written last, and the old file
//! generation is only deleted one pass later; an interruption leaves the new generation without
//! an index, whose records the next start finds by scanning next to the old ones (overlapping
//! chunks, which queries merge by timestamp) and seals again.

use std::sync::atomic::Ordering;

use crowsnest_wire::Sample;

use super::chunk;
use super::engine::Engine;
use super::persist::{BLOCK_WINDOW_MS, CHUNK_SPAN_MS};
use crate::error::StoreError;

/// Most samples in one compacted block (VictoriaMetrics uses 8,192 rows per block); keeps values
/// well under sled's 128 KiB blob threshold.
pub const BLOCK_MAX_SAMPLES: usize = 8192;

/// Series handled between two syncs of the new generation.
const SERIES_PER_BATCH: usize = 1000;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub chunks_merged: u64,
    pub blocks_written: u64,
}

impl Engine {
    /// Seals every window that ends before `horizon` (all windows with `i64::MAX`) and was written
    /// since its last seal: each series' chunks in the window are merged into blocks written to
    /// the window's next file generation; the old generation is deleted by the next pass.
    pub fn compact(&self, horizon: i64) -> Result<CompactReport, StoreError> {
        let _g = self.compaction_lock.lock();
        self.compact_locked(horizon)
    }

    /// [`Engine::compact`] for a caller that already holds the compaction lock.
    pub(super) fn compact_locked(&self, horizon: i64) -> Result<CompactReport, StoreError> {
        let mut report = CompactReport::default();
        self.delete_retired()?;
        for w in self.disk.files.unsealed_before(horizon) {
            let (lo, hi) = (w.saturating_mul(BLOCK_WINDOW_MS), w.saturating_add(1).saturating_mul(BLOCK_WINDOW_MS));
            self.disk.files.begin_seal(w);
            let mut refs: Vec<u64> = Vec::new();
            for shard in self.shards.iter() {
                refs.extend(shard.lock().series.iter().filter(|(_, s)| s.min_t < hi && s.max_t >= lo).map(|(r, _)| *r));
            }
            for batch in refs.chunks(SERIES_PER_BATCH) {
                let mut obsolete: Vec<[u8; 16]> = Vec::new();
                for sref in batch {
                    let chunks = self.disk.chunks_ending_in(*sref, lo, hi)?;
                    if !chunks.is_empty() {
                        self.merge(*sref, &chunks, &mut obsolete, &mut report)?;
                    }
                }
                // New pointers durable before the old ones go.
                self.disk.flush()?;
                for k in &obsolete {
                    self.disk.remove_chunk(k)?;
                }
            }
            self.disk.finish_seal(w)?;
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
        chunks: &[([u8; 16], Vec<u8>)],
        obsolete: &mut Vec<[u8; 16]>,
        report: &mut CompactReport,
    ) -> Result<(), StoreError> {
        let mut samples: Vec<Sample> = Vec::new();
        let mut corrupt = false;
        for (_, v) in chunks {
            match chunk::decode(v) {
                Ok((_, s)) => samples.extend(s),
                Err(e) => {
                    self.metrics.corrupt_chunks.inc();
                    tracing::error!(series = sref, error = %e, "Corrupt chunk; copied unchanged.");
                    corrupt = true;
                }
            }
        }
        if corrupt || chunks.len() == 1 {
            // Copy every chunk as it is into the new generation, under its own key.
            for (k, v) in chunks {
                let max_t = (u64::from_be_bytes(k[8..16].try_into().unwrap_or([0; 8])) ^ (1 << 63)) as i64;
                self.disk.put_chunk_sealed(sref, max_t, v)?;
            }
            return Ok(());
        }
        samples.sort_by_key(|s| s.timestamp);
        samples.dedup_by_key(|s| s.timestamp);
        let mut new_keys: Vec<[u8; 16]> = Vec::new();
        for part in samples.chunks(BLOCK_MAX_SAMPLES) {
            let Some(last) = part.last() else { continue };
            let bytes = chunk::encode(part);
            self.disk.put_chunk_sealed(sref, last.timestamp, &bytes)?;
            new_keys.push(super::persist::chunk_key(sref, last.timestamp));
            report.blocks_written += 1;
        }
        for (k, _) in chunks {
            if !new_keys.iter().any(|n| n[..] == k[..]) {
                obsolete.push(*k);
            }
        }
        report.chunks_merged += chunks.len() as u64;
        self.metrics.chunks.inc_by(new_keys.len() as i64);
        self.metrics.chunks.dec_by(chunks.len() as i64);
        Ok(())
    }

    /// Deletes the file generations retired by the previous seal (and any pointer left into them).
    pub fn delete_retired(&self) -> Result<(), StoreError> {
        let deleted = self.disk.files.delete_retired()?;
        let stale = self.disk.forget_deleted(&deleted);
        if stale > 0 {
            self.metrics.chunks.dec_by(stale as i64);
            tracing::error!(chunks = stale, "Chunks left in a retired chunk file were dropped.");
        }
        Ok(())
    }

    /// The compaction horizon for the background pass: windows that can no longer receive
    /// in-order samples (head chunks span at most `CHUNK_SPAN_MS`) nor out-of-order ones.
    pub fn compaction_horizon(&self) -> i64 {
        let newest = self.max_time.load(Ordering::Relaxed);
        let window = i64::try_from(self.config().out_of_order_window.as_millis()).unwrap_or(i64::MAX);
        newest.saturating_sub(window.max(CHUNK_SPAN_MS))
    }
}
