//! The write-ahead log: numbered segment files (`wal/00000001`, ...) of CRC-framed records, after
//! Prometheus' `tsdb/docs/format/wal.md` but simpler (one frame per record, no 32 KiB pages).
//!
//! Frame: `len u32 LE | crc32 u32 LE (over kind+payload) | kind u8 | payload`. Kinds: a series
//! record (ref + encoded labels, written when a series is created, before any of its samples) and
//! a samples record (`(ref, ts, value bits)` triples, snappy-compressed when large).
//!
//! Group commit: appenders write their frame under a short mutex, then call
//! [`Wal::sync_to`] with the frame's end position. One of the waiting appenders runs `fdatasync`
//! for everyone whose frames were written before it started; the others find their position
//! already covered. Replay stops a segment at the first torn or corrupt frame (a `kill -9` in the
//! middle of a write leaves at most the last, unacknowledged frame incomplete) and continues with
//! the next segment; writing always resumes in a fresh segment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::bits::{ByteReader, put_uvarint, put_varint};

const KIND_SERIES: u8 = 1;
const KIND_SAMPLES: u8 = 2;
const KIND_SAMPLES_SNAPPY: u8 = 3;
const FRAME_HEADER: usize = 9;
/// Largest frame replay accepts; anything bigger is treated as corruption.
const MAX_FRAME: usize = 1 << 30;

/// One decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series { sref: u64, labels: Vec<u8> },
    Samples(Vec<(u64, i64, u64)>),
}

/// Encodes samples `(ref, ts, value bits)` as a frame.
pub fn encode_samples(samples: &[(u64, i64, u64)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(samples.len() * 12 + 8);
    put_uvarint(&mut payload, samples.len() as u64);
    let mut prev_t = 0i64;
    for (r, t, v) in samples {
        put_uvarint(&mut payload, *r);
        put_varint(&mut payload, t.wrapping_sub(prev_t));
        prev_t = *t;
        payload.extend_from_slice(&v.to_le_bytes());
    }
    if payload.len() > 512 {
        let mut enc = snap::raw::Encoder::new();
        if let Ok(z) = enc.compress_vec(&payload)
            && z.len() < payload.len()
        {
            return frame(KIND_SAMPLES_SNAPPY, &z);
        }
    }
    frame(KIND_SAMPLES, &payload)
}

/// Encodes a series record as a frame.
pub fn encode_series(sref: u64, labels: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(labels.len() + 10);
    put_uvarint(&mut payload, sref);
    payload.extend_from_slice(labels);
    frame(KIND_SERIES, &payload)
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FRAME_HEADER);
    out.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

fn decode_record(kind: u8, payload: &[u8]) -> Option<Record> {
    match kind {
        KIND_SERIES => {
            let mut r = ByteReader::new(payload);
            let sref = r.uvarint()?;
            Some(Record::Series { sref, labels: r.rest().to_vec() })
        }
        KIND_SAMPLES => decode_samples(payload),
        KIND_SAMPLES_SNAPPY => decode_samples(&snap::raw::Decoder::new().decompress_vec(payload).ok()?),
        _ => None,
    }
}

fn decode_samples(payload: &[u8]) -> Option<Record> {
    let mut r = ByteReader::new(payload);
    let n = usize::try_from(r.uvarint()?).ok()?;
    let mut out = Vec::with_capacity(n.min(payload.len()));
    let mut t = 0i64;
    for _ in 0..n {
        let sref = r.uvarint()?;
        t = t.wrapping_add(r.varint()?);
        out.push((sref, t, r.u64_le()?));
    }
    Some(Record::Samples(out))
}

/// Parses the frames of one segment; returns the records and whether the segment ended cleanly.
pub fn parse_segment(bytes: &[u8]) -> (Vec<Record>, bool) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(h) = bytes.get(pos..pos + FRAME_HEADER) else { return (out, false) };
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if len == 0 || len > MAX_FRAME {
            return (out, false);
        }
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else { return (out, false) };
        if crc32fast::hash(body) != crc {
            return (out, false);
        }
        match decode_record(body[0], &body[1..]) {
            Some(r) => out.push(r),
            None => return (out, false),
        }
        pos += 8 + len;
    }
    (out, true)
}

struct Writer {
    file: Arc<File>,
    segment: u64,
    segment_bytes: u64,
    /// Logical end position over all segments ever written by this process.
    pos: u64,
    /// The current segment ends in a partial frame that could not be cut off: the next write
    /// must go to a fresh segment.
    torn: bool,
}

/// The log. Cheap to share: all methods take `&self`.
pub struct Wal {
    dir: PathBuf,
    max_segment_bytes: u64,
    w: Mutex<Writer>,
    synced: Mutex<u64>,
    /// Position made durable by a segment cut (kept apart from `synced` so that `cut`, which runs
    /// under the writer lock, never takes the sync lock: no lock-order inversion).
    cut_synced: AtomicU64,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

/// Segment numbers present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Reads every segment in order (for replay at open), calling `f` per record. Returns the last
/// segment number seen (0 when none).
pub fn replay(dir: &Path, mut f: impl FnMut(Record)) -> io::Result<u64> {
    fs::create_dir_all(dir)?;
    let segs = list_segments(dir)?;
    for n in &segs {
        let mut bytes = Vec::new();
        File::open(segment_path(dir, *n))?.read_to_end(&mut bytes)?;
        let (records, clean) = parse_segment(&bytes);
        if !clean {
            tracing::warn!(
                segment = n,
                records = records.len(),
                "WAL segment ends in a torn or corrupt record; replaying the intact prefix."
            );
        }
        records.into_iter().for_each(&mut f);
    }
    Ok(segs.last().copied().unwrap_or(0))
}

fn open_segment(dir: &Path, n: u64) -> io::Result<File> {
    let f = OpenOptions::new().create(true).append(true).open(segment_path(dir, n))?;
    // Make the new file's directory entry durable too.
    File::open(dir)?.sync_all()?;
    Ok(f)
}

impl Wal {
    /// Starts writing in a fresh segment after `last_segment`.
    pub fn create(dir: &Path, last_segment: u64, max_segment_bytes: u64) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let segment = last_segment + 1;
        let file = Arc::new(open_segment(dir, segment)?);
        Ok(Wal {
            dir: dir.to_path_buf(),
            max_segment_bytes,
            w: Mutex::new(Writer { file, segment, segment_bytes: 0, pos: 0, torn: false }),
            synced: Mutex::new(0),
            cut_synced: AtomicU64::new(0),
        })
    }

    /// Writes one frame (not yet durable); returns its end position for [`Wal::sync_to`].
    pub fn write(&self, frame: &[u8]) -> io::Result<u64> {
        let mut w = self.w.lock();
        if w.torn || (w.segment_bytes > 0 && w.segment_bytes + frame.len() as u64 > self.max_segment_bytes) {
            self.cut(&mut w)?;
        }
        if let Err(e) = (&*w.file).write_all(frame) {
            // A failed write (ENOSPC, EIO) may have left part of the frame in the file. Later
            // frames appended after it would be unreachable at replay (replay stops a segment at
            // the first torn frame), so acknowledged samples would be lost once space returns.
            // Cut the partial frame off; if even that fails, continue in a fresh segment.
            if let Err(trunc) = w.file.set_len(w.segment_bytes) {
                tracing::error!(error = %trunc, "Could not cut a partial WAL frame; starting a new segment.");
                w.torn = true;
            }
            return Err(e);
        }
        w.segment_bytes += frame.len() as u64;
        w.pos += frame.len() as u64;
        Ok(w.pos)
    }

    fn cut(&self, w: &mut Writer) -> io::Result<()> {
        // Everything in the old segment becomes durable before writing moves on.
        w.file.sync_data()?;
        self.cut_synced.fetch_max(w.pos, Ordering::SeqCst);
        w.segment += 1;
        w.file = Arc::new(open_segment(&self.dir, w.segment)?);
        w.segment_bytes = 0;
        w.torn = false;
        Ok(())
    }

    /// Blocks until everything up to `pos` is on disk (group commit). Returns the fsync time when
    /// this caller performed one.
    pub fn sync_to(&self, pos: u64) -> io::Result<Option<f64>> {
        let mut synced = self.synced.lock();
        if *synced >= pos || self.cut_synced.load(Ordering::SeqCst) >= pos {
            return Ok(None);
        }
        let (file, target) = {
            let w = self.w.lock();
            (Arc::clone(&w.file), w.pos)
        };
        let start = Instant::now();
        file.sync_data()?;
        *synced = target.max(*synced);
        Ok(Some(start.elapsed().as_secs_f64()))
    }

    /// Syncs everything written so far (the `periodic` fsync mode's background sync); a no-op
    /// when nothing new was written. Returns the fsync time when one ran.
    pub fn sync_written(&self) -> io::Result<Option<f64>> {
        let pos = self.w.lock().pos;
        self.sync_to(pos)
    }

    /// Moves writing to a new segment and returns its number: everything logged from now on is in
    /// segments >= the returned one (the checkpoint boundary).
    pub fn rotate(&self) -> io::Result<u64> {
        let mut w = self.w.lock();
        self.cut(&mut w)?;
        Ok(w.segment)
    }

    /// Deletes segments numbered below `segment` (their content is persisted elsewhere).
    pub fn truncate_before(&self, segment: u64) -> io::Result<usize> {
        let mut n = 0;
        for s in list_segments(&self.dir)? {
            if s < segment {
                fs::remove_file(segment_path(&self.dir, s))?;
                n += 1;
            }
        }
        if n > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(n)
    }

    /// Bytes in all segment files.
    pub fn disk_bytes(&self) -> u64 {
        let Ok(segs) = list_segments(&self.dir) else { return 0 };
        segs.iter().filter_map(|s| fs::metadata(segment_path(&self.dir, *s)).ok()).map(|m| m.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(dir: &Path) -> (Vec<Record>, u64) {
        let mut v = Vec::new();
        let last = replay(dir, |r| v.push(r)).expect("replay");
        (v, last)
    }

    #[test]
    fn records_round_trip_across_segments() {
        let d = tempfile::tempdir().expect("tmp");
        let wal = Wal::create(d.path(), 0, 200).expect("create");
        let big: Vec<(u64, i64, u64)> =
            (0..100).map(|i| (i % 7, 1_000 + i as i64 * 15, (i as f64).to_bits())).collect();
        let p1 = wal.write(&encode_series(5, b"\x01a\x01b")).expect("w");
        let p2 = wal.write(&encode_samples(&big)).expect("w");
        let p3 = wal.write(&encode_samples(&[(5, -3, crowsnest_wire::STALE_NAN_BITS)])).expect("w");
        assert!(p1 < p2 && p2 < p3);
        wal.sync_to(p3).expect("sync");
        assert_eq!(wal.sync_to(p3).expect("sync"), None, "already covered");
        drop(wal);
        let (recs, last) = all(d.path());
        assert_eq!(last, 3, "cut into three segments");
        assert_eq!(
            recs,
            vec![
                Record::Series { sref: 5, labels: b"\x01a\x01b".to_vec() },
                Record::Samples(big),
                Record::Samples(vec![(5, -3, crowsnest_wire::STALE_NAN_BITS)])
            ]
        );
    }

    #[test]
    fn torn_tail_is_tolerated() {
        let d = tempfile::tempdir().expect("tmp");
        let wal = Wal::create(d.path(), 0, 1 << 20).expect("create");
        wal.write(&encode_samples(&[(1, 10, 1)])).expect("w");
        let pos = wal.write(&encode_samples(&[(1, 20, 2)])).expect("w");
        wal.sync_to(pos).expect("sync");
        drop(wal);
        let path = segment_path(d.path(), 1);
        let len = fs::metadata(&path).expect("meta").len();
        OpenOptions::new().write(true).open(&path).expect("open").set_len(len - 3).expect("truncate");
        let (recs, _) = all(d.path());
        assert_eq!(recs, vec![Record::Samples(vec![(1, 10, 1)])]);
        // A flipped byte is caught by the CRC as well.
        let mut bytes = fs::read(&path).expect("read");
        bytes[10] ^= 0xff;
        let (recs, clean) = parse_segment(&bytes);
        assert!(recs.is_empty() && !clean);
    }

    #[test]
    fn rotate_and_truncate() {
        let d = tempfile::tempdir().expect("tmp");
        let wal = Wal::create(d.path(), 4, 1 << 20).expect("create");
        wal.write(&encode_samples(&[(1, 10, 1)])).expect("w");
        let boundary = wal.rotate().expect("rotate");
        assert_eq!(boundary, 6);
        wal.write(&encode_samples(&[(1, 20, 2)])).expect("w");
        assert_eq!(wal.truncate_before(boundary).expect("truncate"), 1);
        drop(wal);
        assert_eq!(all(d.path()).0, vec![Record::Samples(vec![(1, 20, 2)])]);
    }

    #[test]
    fn concurrent_appenders_share_fsyncs() {
        let d = tempfile::tempdir().expect("tmp");
        let wal = Arc::new(Wal::create(d.path(), 0, 1 << 30).expect("create"));
        let threads: Vec<_> = (0..4)
            .map(|k| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let p = wal.write(&encode_samples(&[(k, i, 0)])).expect("w");
                        wal.sync_to(p).expect("sync");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        drop(wal);
        assert_eq!(all(d.path()).0.len(), 200);
    }
}
