//! `fsck`: walks the stored data and cross-checks it (`reference/tsdb-performance.md` §5.3 item
//! 9): every chunk's checksum and format, every chunk belongs to a known series, every series row
//! has its postings rows, and every head snapshot decodes. Read-only; reports, never repairs.

use super::engine::Engine;
use super::head::shard_of_ref;
use super::{chunk, xor::XorChunk};
use crate::error::StoreError;

/// What [`crate::Db::fsck`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub series_checked: u64,
    pub chunks_checked: u64,
    pub samples_checked: u64,
    /// Bytes of the chunk values checked (the live payload, before sled's own overhead).
    pub chunk_bytes: u64,
    /// Chunks failing their CRC or format check.
    pub corrupt_chunks: u64,
    /// Chunks whose series is not in the index.
    pub orphan_chunks: u64,
    /// Label pairs of indexed series without a postings row on disk.
    pub missing_postings: u64,
    /// Head snapshots that do not decode.
    pub corrupt_heads: u64,
}

impl FsckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt_chunks == 0 && self.orphan_chunks == 0 && self.missing_postings == 0 && self.corrupt_heads == 0
    }
}

impl Engine {
    pub fn fsck(&self) -> Result<FsckReport, StoreError> {
        let mut r = FsckReport::default();
        let mut chunks: Vec<(u64, Result<Vec<u8>, StoreError>)> = Vec::new();
        self.disk.for_each_chunk(|sref, b| chunks.push((sref, b)))?;
        for (sref, bytes) in chunks {
            r.chunks_checked += 1;
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => {
                    r.corrupt_chunks += 1;
                    tracing::error!(series = sref, error = %e, "fsck: chunk payload unreadable.");
                    continue;
                }
            };
            match chunk::decode(&bytes) {
                Ok((_, s)) => {
                    r.samples_checked += s.len() as u64;
                    r.chunk_bytes += bytes.len() as u64;
                }
                Err(e) => {
                    r.corrupt_chunks += 1;
                    tracing::error!(series = sref, error = %e, "fsck: corrupt chunk.");
                }
            }
            if sref == u64::MAX || !self.shards[shard_of_ref(sref)].lock().series.contains_key(&sref) {
                r.orphan_chunks += 1;
            }
        }
        let (checked, missing) = self.disk.check_postings()?;
        r.series_checked += checked;
        r.missing_postings += missing;
        for (sref, snap) in self.disk.load_heads()? {
            if XorChunk::from_snapshot(&snap).is_none() {
                r.corrupt_heads += 1;
                tracing::error!(series = sref, "fsck: corrupt head snapshot.");
            }
        }
        Ok(r)
    }
}
