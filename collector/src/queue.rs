//! The disk-backed queue between collection and shipping: append-only segment files of
//! CRC-checked records, one record per remote_write request body, plus a cursor file naming the
//! first record not yet acknowledged by the receiver. It survives a store outage and a collector
//! restart; its size is bounded, and when full the oldest segment is dropped and its unsent
//! samples counted. An `append` that returned `Ok` has been `fsync`ed, so nothing the queue
//! acknowledged is lost silently: it is either delivered, dropped for space (counted), or
//! rejected by the receiver (counted by the shipper).
//!
//! Record layout (little-endian): `len: u32 | samples: u32 | crc32(samples ‖ payload): u32 | payload`.
//! A torn or corrupt tail (crash mid-write) is truncated on open. Segment files are named
//! `<id as 16 hex digits>.seg`; the cursor file holds `<segment id> <byte offset>`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 12;
const CURSOR_FILE: &str = "cursor";
/// Largest record accepted (a remote_write body is far smaller).
const MAX_RECORD: usize = 64 << 20;

#[derive(Debug, Clone, Copy)]
struct RecordMeta {
    offset: u64,
    len: u32,
    samples: u32,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
    records: Vec<RecordMeta>,
}

/// Where a record lives; handed back to [`DiskQueue::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPos {
    segment: u64,
    index: usize,
}

/// A record read from the queue.
#[derive(Debug, Clone)]
pub struct Record {
    pub pos: RecordPos,
    pub payload: Vec<u8>,
    pub samples: u32,
}

/// What opening a queue found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Records waiting to be sent.
    pub pending_records: usize,
    /// Samples waiting to be sent.
    pub pending_samples: u64,
    /// Bytes cut from torn or corrupt segment tails.
    pub truncated_bytes: u64,
}

/// The queue. Not thread-safe by itself; the shipper wraps it in a mutex.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// Read position: segment id and record index within it.
    read: RecordPos,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

fn crc(samples: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&samples.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Parses a segment's records; returns them and the length of the valid prefix.
fn scan(data: &[u8]) -> (Vec<RecordMeta>, u64) {
    let mut recs = Vec::new();
    let mut off = 0usize;
    while off + HEADER <= data.len() {
        let word =
            |i: usize| u32::from_le_bytes([data[off + i], data[off + i + 1], data[off + i + 2], data[off + i + 3]]);
        let (len, samples, sum) = (word(0), word(4), word(8));
        let end = off + HEADER + len as usize;
        if len as usize > MAX_RECORD || end > data.len() || crc(samples, &data[off + HEADER..end]) != sum {
            break;
        }
        recs.push(RecordMeta { offset: off as u64, len, samples });
        off = end;
    }
    (recs, off as u64)
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, truncating torn tails and restoring the cursor.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> io::Result<(DiskQueue, OpenReport)> {
        fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
            })
            .collect();
        ids.sort_unstable();
        let mut report = OpenReport::default();
        let mut segments = VecDeque::new();
        for id in ids {
            let path = seg_path(dir, id);
            let data = fs::read(&path)?;
            let (records, valid) = scan(&data);
            if valid < data.len() as u64 {
                tracing::warn!(segment = %path.display(), cut = data.len() as u64 - valid, "Truncating a torn queue segment tail.");
                report.truncated_bytes += data.len() as u64 - valid;
                OpenOptions::new().write(true).open(&path)?.set_len(valid)?;
            }
            segments.push_back(Segment { id, bytes: valid, records });
        }
        let cursor = fs::read_to_string(dir.join(CURSOR_FILE)).ok().and_then(|s| {
            let mut it = s.split_whitespace();
            Some((it.next()?.parse::<u64>().ok()?, it.next()?.parse::<u64>().ok()?))
        });
        let mut q = DiskQueue {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            segments,
            writer: None,
            read: RecordPos { segment: 0, index: 0 },
        };
        // Drop segments wholly before the cursor (acknowledged, deletion interrupted).
        if let Some((cseg, coff)) = cursor {
            while q.segments.front().is_some_and(|s| s.id < cseg) {
                q.remove_front()?;
            }
            if let Some(front) = q.segments.front()
                && front.id == cseg
            {
                let index = front.records.iter().position(|r| r.offset >= coff).unwrap_or(front.records.len());
                q.read = RecordPos { segment: cseg, index };
            }
        }
        if q.segments.front().is_none_or(|s| s.id != q.read.segment) {
            q.read = RecordPos { segment: q.segments.front().map_or(1, |s| s.id), index: 0 };
        }
        if q.segments.is_empty() {
            // Never reuse an id at or below an old cursor: records there would be skipped.
            let id = cursor.map_or(1, |(seg, _)| seg + 1).max(1);
            q.segments.push_back(Segment { id, bytes: 0, records: Vec::new() });
            q.read = RecordPos { segment: id, index: 0 };
            q.write_cursor()?;
        }
        let head = q.segments.back().map_or(1, |s| s.id);
        q.writer = Some(OpenOptions::new().create(true).append(true).open(seg_path(dir, head))?);
        q.skip_consumed_segments()?;
        report.pending_records = q.pending_records();
        report.pending_samples = q.pending_samples();
        Ok((q, report))
    }

    /// Appends one record and syncs it to disk. Returns the number of unsent samples dropped to
    /// make room (oldest first).
    pub fn append(&mut self, payload: &[u8], samples: u32) -> io::Result<u64> {
        if payload.len() > MAX_RECORD {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "record too large"));
        }
        let size = (HEADER + payload.len()) as u64;
        let head_bytes = self.segments.back().map_or(0, |s| s.bytes);
        if head_bytes > 0 && head_bytes + size > self.segment_bytes {
            self.rotate()?;
        }
        let mut dropped = 0;
        while self.total_bytes() + size > self.max_bytes && self.segments.len() > 1 {
            dropped += self.drop_oldest()?;
        }
        let mut buf = Vec::with_capacity(size as usize);
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&samples.to_le_bytes());
        buf.extend_from_slice(&crc(samples, payload).to_le_bytes());
        buf.extend_from_slice(payload);
        let w = self.writer.as_mut().ok_or_else(|| io::Error::other("queue writer closed"))?;
        w.write_all(&buf)?;
        w.sync_data()?;
        if let Some(head) = self.segments.back_mut() {
            head.records.push(RecordMeta { offset: head.bytes, len: payload.len() as u32, samples });
            head.bytes += size;
        }
        Ok(dropped)
    }

    /// The oldest unacknowledged record, if any.
    pub fn peek(&self) -> io::Result<Option<Record>> {
        let Some(seg) = self.segments.iter().find(|s| s.id == self.read.segment) else {
            return Ok(None);
        };
        let Some(meta) = seg.records.get(self.read.index) else {
            return Ok(None);
        };
        let mut f = File::open(seg_path(&self.dir, seg.id))?;
        f.seek(SeekFrom::Start(meta.offset + HEADER as u64))?;
        let mut payload = vec![0u8; meta.len as usize];
        f.read_exact(&mut payload)?;
        Ok(Some(Record { pos: self.read, payload, samples: meta.samples }))
    }

    /// Marks the record at `pos` delivered (or deliberately dropped); deletes segments that are
    /// wholly consumed and persists the cursor.
    pub fn ack(&mut self, pos: RecordPos) -> io::Result<()> {
        if pos != self.read {
            return Ok(()); // already acknowledged, or dropped for space meanwhile
        }
        self.read.index += 1;
        self.skip_consumed_segments()?;
        self.write_cursor()
    }

    /// Records not yet acknowledged.
    pub fn pending_records(&self) -> usize {
        self.segments
            .iter()
            .map(|s| {
                if s.id == self.read.segment {
                    s.records.len().saturating_sub(self.read.index)
                } else {
                    s.records.len()
                }
            })
            .sum()
    }

    /// Samples not yet acknowledged.
    pub fn pending_samples(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                let skip = if s.id == self.read.segment { self.read.index } else { 0 };
                s.records.iter().skip(skip).map(|r| r.samples as u64).sum::<u64>()
            })
            .sum()
    }

    /// Bytes of segment files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.sync_all()?;
        }
        let id = self.segments.back().map_or(1, |s| s.id + 1);
        self.writer = Some(OpenOptions::new().create(true).append(true).open(seg_path(&self.dir, id))?);
        self.segments.push_back(Segment { id, bytes: 0, records: Vec::new() });
        Ok(())
    }

    /// Drops the oldest segment, returning its unsent samples.
    fn drop_oldest(&mut self) -> io::Result<u64> {
        let Some(front) = self.segments.front() else { return Ok(0) };
        let skip = if front.id == self.read.segment { self.read.index } else { 0 };
        let lost: u64 = front.records.iter().skip(skip).map(|r| r.samples as u64).sum();
        self.remove_front()?;
        if let Some(next) = self.segments.front()
            && self.read.segment < next.id
        {
            self.read = RecordPos { segment: next.id, index: 0 };
        }
        self.write_cursor()?;
        Ok(lost)
    }

    fn remove_front(&mut self) -> io::Result<()> {
        if let Some(s) = self.segments.pop_front() {
            match fs::remove_file(seg_path(&self.dir, s.id)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves the cursor past fully read segments other than the head, deleting them.
    fn skip_consumed_segments(&mut self) -> io::Result<()> {
        while self.segments.len() > 1 {
            let front = &self.segments[0];
            if front.id == self.read.segment && self.read.index >= front.records.len() {
                self.remove_front()?;
                self.read = RecordPos { segment: self.segments[0].id, index: 0 };
            } else {
                break;
            }
        }
        Ok(())
    }

    fn write_cursor(&self) -> io::Result<()> {
        let off = self
            .segments
            .iter()
            .find(|s| s.id == self.read.segment)
            .map(|s| s.records.get(self.read.index).map_or(s.bytes, |r| r.offset))
            .unwrap_or(0);
        let tmp = self.dir.join("cursor.tmp");
        {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{} {}", self.read.segment, off)?;
            f.sync_all()?;
        }
        fs::rename(tmp, self.dir.join(CURSOR_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut DiskQueue) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = q.peek().unwrap() {
            out.push(r.payload.clone());
            q.ack(r.pos).unwrap();
        }
        out
    }

    #[test]
    fn survives_reopen_and_resumes_at_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, rep) = DiskQueue::open(dir.path(), 1 << 20, 4096).unwrap();
        assert_eq!(rep.pending_records, 0);
        for i in 0..100u32 {
            q.append(format!("record-{i}").as_bytes(), i).unwrap();
        }
        for _ in 0..30 {
            let r = q.peek().unwrap().unwrap();
            q.ack(r.pos).unwrap();
        }
        drop(q);
        let (mut q, rep) = DiskQueue::open(dir.path(), 1 << 20, 4096).unwrap();
        assert_eq!(rep.pending_records, 70);
        assert_eq!(rep.pending_samples, (30..100u64).sum::<u64>());
        let got = drain(&mut q);
        assert_eq!(got.len(), 70);
        assert_eq!(got[0], b"record-30");
        assert_eq!(got[69], b"record-99");
        // Consumed segments are deleted; only the head is left.
        let segs = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
            .count();
        assert_eq!(segs, 1);
    }

    #[test]
    fn overflow_drops_oldest_and_counts_samples() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 8192, 4096).unwrap();
        let payload = vec![7u8; 1000];
        let mut dropped = 0;
        for _ in 0..40 {
            dropped += q.append(&payload, 10).unwrap();
        }
        assert!(q.total_bytes() <= 8192, "{}", q.total_bytes());
        assert!(dropped > 0);
        // Every sample is either pending or counted as dropped.
        assert_eq!(q.pending_samples() + dropped, 400);
        assert_eq!(drain(&mut q).len() as u64 * 10, 400 - dropped);
    }

    #[test]
    fn torn_tail_is_truncated_and_good_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 1 << 20, 1 << 16).unwrap();
        q.append(b"one", 1).unwrap();
        q.append(b"two", 2).unwrap();
        drop(q);
        let seg = seg_path(dir.path(), 1);
        // A crash mid-write: a header promising more bytes than were written.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&100u32.to_le_bytes()).unwrap();
        f.write_all(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
        drop(f);
        let (mut q, rep) = DiskQueue::open(dir.path(), 1 << 20, 1 << 16).unwrap();
        assert_eq!(rep.truncated_bytes, 11);
        assert_eq!(rep.pending_records, 2);
        q.append(b"three", 3).unwrap();
        assert_eq!(drain(&mut q), vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    }

    #[test]
    fn corrupt_byte_is_detected_by_crc() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = DiskQueue::open(dir.path(), 1 << 20, 1 << 16).unwrap();
        q.append(b"good", 1).unwrap();
        q.append(b"flipped", 1).unwrap();
        drop(q);
        let seg = seg_path(dir.path(), 1);
        let mut data = fs::read(&seg).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&seg, data).unwrap();
        let (mut q, rep) = DiskQueue::open(dir.path(), 1 << 20, 1 << 16).unwrap();
        assert_eq!(rep.pending_records, 1);
        assert_eq!(drain(&mut q), vec![b"good".to_vec()]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
        #[test]
        fn appended_records_come_back_in_order(lens in proptest::collection::vec(0usize..3000, 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let (mut q, _) = DiskQueue::open(dir.path(), 1 << 30, 8192).unwrap();
            let payloads: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, l)| vec![(i % 251) as u8; *l]).collect();
            for p in &payloads {
                q.append(p, 1).unwrap();
            }
            drop(q);
            let (mut q, _) = DiskQueue::open(dir.path(), 1 << 30, 8192).unwrap();
            proptest::prop_assert_eq!(drain(&mut q), payloads);
        }
    }
}
