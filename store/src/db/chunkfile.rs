//! Chunk payload files: closed chunks are appended to one file per aligned time window
//! (`chunks/w{window}-g{generation}.dat`). This is the fallback `reference/tsdb-performance.md`
//! §5.3 item 9 proposes, taken because sled 0.34 measured 1.9–2.9x space amplification on plain
//! inserts of chunk-sized values here, and far worse under the insert/delete churn of per-chunk
//! pointers (`persist.rs`): payload files cost their byte size.
//!
//! Every chunk is one self-describing record, like Prometheus' head chunk files
//! (`tsdb/docs/format/head_chunks.md`: series ref, time range, CRC per chunk):
//! `flags u8 | series ref u64 LE | payload length u32 LE | crc32 u32 LE (over the previous 13
//! bytes) | payload`, where the payload is a closed chunk (`chunk.rs`, itself CRC-checked, with its
//! min and max time). [`FLAG_OPEN`] marks chunks of a window that is not sealed yet: no index
//! holds them, [`ChunkFiles::scan`] finds them again at startup. [`FLAG_SEALED`] marks
//! compaction's blocks, listed in their generation's index file (`sealed.rs`) once the seal
//! finishes (a scan finds them too if it did not).
//!
//! Files are append-only. Compaction seals a window by bumping its generation (new chunks go to
//! the new file), rewriting every chunk of the window into the new file, writing its index file,
//! and deleting the old generations one compaction pass later (so queries that already hold an old
//! pointer can still read it). Retention deletes whole files. Writes are made durable by
//! [`ChunkFiles::sync`] at checkpoints, before sled is flushed and the WAL truncated. A torn tail
//! (a crash in the middle of an append, or unsynced pages lost with the power: no intact record
//! after it) ends a file's scan and the live file is truncated there: everything after it was
//! written after the last checkpoint's sync, so its samples are still in the WAL. Damage in the
//! middle of a file (a flipped byte on disk) costs only the record it hits: a payload failing its
//! CRC is skipped by its length, and after a damaged header the scan re-synchronises on the next
//! intact record; both are logged and counted as corrupt chunks.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::persist::BLOCK_WINDOW_MS;

/// Record flag: a chunk of a window that is not sealed yet (in no index; found by scanning).
pub const FLAG_OPEN: u8 = 0xA1;
/// Record flag: a compacted block (listed in its generation's index file, `sealed.rs`).
pub const FLAG_SEALED: u8 = 0xA2;
/// Bytes before each record's payload.
pub const RECORD_HEADER: usize = 17;
/// Largest payload a record may claim (chunks are far smaller; guards the scan against garbage).
const MAX_PAYLOAD: usize = 64 << 20;

fn record_header(flags: u8, sref: u64, len: usize) -> [u8; RECORD_HEADER] {
    let mut h = [0u8; RECORD_HEADER];
    h[0] = flags;
    h[1..9].copy_from_slice(&sref.to_le_bytes());
    h[9..13].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32fast::hash(&h[..13]);
    h[13..17].copy_from_slice(&crc.to_le_bytes());
    h
}

/// One record found by [`ChunkFiles::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub flags: u8,
    pub sref: u64,
    pub window: i64,
    pub generation: u32,
    /// Offset of the payload (after the record header).
    pub offset: u64,
    pub len: u32,
    pub min_t: i64,
    pub max_t: i64,
}

/// What [`parse_records`] found in one file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub found: Vec<Found>,
    /// End of the last intact record: anything after it is a torn or garbage tail.
    pub valid_end: u64,
    /// File offsets of records skipped in the middle of the file (payload checksum failed, or a
    /// damaged header the scan re-synchronised after).
    pub corrupt: Vec<u64>,
}

/// Reads one record header at the reader's position: `Some((flags, sref, len))` when the flags,
/// the header CRC and the length are plausible.
fn parse_header(h: &[u8; RECORD_HEADER]) -> Option<(u8, u64, usize)> {
    let crc = u32::from_le_bytes([h[13], h[14], h[15], h[16]]);
    if !matches!(h[0], FLAG_OPEN | FLAG_SEALED) || crc32fast::hash(&h[..13]) != crc {
        return None;
    }
    let sref = u64::from_le_bytes([h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]]);
    let len = u32::from_le_bytes([h[9], h[10], h[11], h[12]]) as usize;
    (len <= MAX_PAYLOAD).then_some((h[0], sref, len))
}

/// The offset (relative to `buf`) of the first intact record in `buf`, if any.
fn resync(buf: &[u8]) -> Option<usize> {
    (0..buf.len().saturating_sub(RECORD_HEADER)).find(|&i| {
        let Ok(h) = <[u8; RECORD_HEADER]>::try_from(&buf[i..i + RECORD_HEADER]) else { return false };
        parse_header(&h).is_some_and(|(_, _, len)| {
            buf.get(i + RECORD_HEADER..i + RECORD_HEADER + len).is_some_and(|p| super::chunk::meta(p).is_ok())
        })
    })
}

/// Parses the records of a file (streamed, so a big file is not read into memory at once).
/// A record whose payload fails its checksum is skipped (its header says where the next one
/// starts); after a damaged header the rest of the file is searched for the next intact record,
/// so one flipped byte costs one chunk, not the rest of the file. A short read or a tail without
/// any intact record ends the scan (a torn append). I/O errors end it like corruption.
pub fn parse_records<R: io::Read + io::Seek>(r: R, window: i64, generation: u32) -> Parsed {
    let mut r = io::BufReader::with_capacity(1 << 16, r);
    let mut out = Parsed::default();
    let mut pos = 0u64;
    let mut h = [0u8; RECORD_HEADER];
    let mut payload = Vec::new();
    while r.read_exact(&mut h).is_ok() {
        let Some((flags, sref, len)) = parse_header(&h) else {
            let mut rest = Vec::new();
            let found = r
                .seek(io::SeekFrom::Start(pos + 1))
                .and_then(|_| r.read_to_end(&mut rest))
                .ok()
                .and_then(|_| resync(&rest));
            match found {
                Some(i) if r.seek(io::SeekFrom::Start(pos + 1 + i as u64)).is_ok() => {
                    out.corrupt.push(pos);
                    pos += 1 + i as u64;
                    continue;
                }
                _ => break,
            }
        };
        payload.resize(len, 0);
        if r.read_exact(&mut payload).is_err() {
            break;
        }
        let start = pos + RECORD_HEADER as u64;
        pos = start + len as u64;
        let Ok(meta) = super::chunk::meta(&payload) else {
            out.corrupt.push(start - RECORD_HEADER as u64);
            continue;
        };
        out.found.push(Found {
            flags,
            sref,
            window,
            generation,
            offset: start,
            len: len as u32,
            min_t: meta.min_t,
            max_t: meta.max_t,
        });
        out.valid_end = pos;
    }
    out
}

struct Live {
    generation: u32,
    file: Option<Arc<File>>,
    len: u64,
    dirty: bool,
    /// Appended to since the window was last sealed.
    unsealed: bool,
}

/// All chunk payload files.
pub struct ChunkFiles {
    dir: PathBuf,
    live: Mutex<HashMap<i64, Live>>,
    readers: RwLock<HashMap<(i64, u32), Arc<File>>>,
    /// Generations replaced by a seal, deleted at the start of the next compaction pass.
    retired: Mutex<Vec<(i64, u32)>>,
    /// Records skipped as corrupt by [`ChunkFiles::scan`] (added to the corrupt-chunk counter).
    pub corrupt_at_scan: std::sync::atomic::AtomicU64,
}

fn file_name(window: i64, generation: u32) -> String {
    format!("w{window}-g{generation}.dat")
}

fn marker_name(window: i64, generation: u32) -> String {
    format!("w{window}-g{generation}.sealed")
}

fn parse_name(name: &str) -> Option<(i64, u32)> {
    let rest = name.strip_prefix('w')?.strip_suffix(".dat")?;
    let (w, g) = rest.rsplit_once("-g")?;
    Some((w.parse().ok()?, g.parse().ok()?))
}

/// Window and generation of a payload file or a seal marker.
fn parse_any(name: &str) -> Option<(i64, u32)> {
    parse_name(name)
        .or_else(|| parse_name(&name.replace(".sealed", ".dat")))
        .or_else(|| parse_name(&name.replace(".idx", ".dat")))
}

impl ChunkFiles {
    pub fn open(dir: &Path) -> io::Result<ChunkFiles> {
        fs::create_dir_all(dir)?;
        let mut live: HashMap<i64, Live> = HashMap::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let Some((w, g)) = e.file_name().to_str().and_then(parse_any) else { continue };
            // The length is read again when the file is opened for appending.
            let len = 0;
            match live.get_mut(&w) {
                Some(l) if l.generation >= g => {}
                Some(l) => *l = Live { generation: g, file: None, len, dirty: false, unsealed: true },
                None => {
                    live.insert(w, Live { generation: g, file: None, len, dirty: false, unsealed: true });
                }
            }
        }
        // A window is sealed when its newest generation carries a seal marker (written after the
        // seal's data was durable); older generations left behind by a crash are then retired.
        let mut retired = Vec::new();
        for (w, l) in live.iter_mut() {
            if dir.join(marker_name(*w, l.generation)).exists() {
                l.unsealed = false;
                if l.generation > 0 && dir.join(file_name(*w, l.generation - 1)).exists() {
                    retired.push((*w, l.generation - 1));
                }
            }
        }
        Ok(ChunkFiles {
            dir: dir.to_path_buf(),
            live: Mutex::new(live),
            readers: RwLock::new(HashMap::new()),
            retired: Mutex::new(retired),
            corrupt_at_scan: Default::default(),
        })
    }

    /// The directory of the payload files (also holding the head snapshot file, `catalog.rs`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, window: i64, generation: u32) -> PathBuf {
        self.dir.join(file_name(window, generation))
    }

    /// Reads every record of the files that may hold chunks in no index file: all
    /// generations of a window whose newest generation is not sealed (a crash in the middle of a
    /// seal leaves old and new side by side), else only the newest (it may have received chunks
    /// after the seal). A window with [`FLAG_OPEN`] records in its newest file is marked for
    /// sealing; the newest file is truncated after its last valid record. Run once, at startup.
    pub fn scan(&self) -> io::Result<Vec<Found>> {
        let mut present: HashMap<i64, Vec<u32>> = HashMap::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            if let Some((w, g)) = e.file_name().to_str().and_then(parse_name) {
                present.entry(w).or_default().push(g);
            }
        }
        let mut out = Vec::new();
        let mut live = self.live.lock();
        for (w, mut gens) in present {
            let Some(l) = live.get_mut(&w) else { continue };
            gens.sort_unstable();
            let sealed = self.dir.join(marker_name(w, l.generation)).exists();
            for g in gens.into_iter().filter(|g| *g == l.generation || (!sealed && *g < l.generation)) {
                let path = self.path(w, g);
                let file = File::open(&path)?;
                let size = file.metadata()?.len();
                let Parsed { found, valid_end: valid, corrupt } = parse_records(file, w, g);
                for at in &corrupt {
                    tracing::error!(
                        file = %path.display(),
                        offset = at,
                        "Corrupt chunk record skipped (checksum or header damaged); its samples are not served."
                    );
                }
                self.corrupt_at_scan.fetch_add(corrupt.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if valid < size {
                    tracing::warn!(
                        file = %path.display(),
                        valid,
                        len = size,
                        "Chunk file ends in a torn or corrupt record; the rest is dropped (the WAL covers it)."
                    );
                    if g == l.generation {
                        OpenOptions::new().write(true).open(&path)?.set_len(valid)?;
                    }
                }
                if g == l.generation && found.iter().any(|f| f.flags == FLAG_OPEN) {
                    l.unsealed = true;
                }
                out.extend(found);
            }
        }
        Ok(out)
    }

    /// Appends a chunk record to its window's live file; `then` gets (generation, payload offset)
    /// and runs while the append lock is held (the caller records the pointer there, so a seal
    /// never misses it). `seal` appends (compaction rewriting a window) are flagged
    /// [`FLAG_SEALED`] and do not mark the window for sealing again.
    pub fn append<T>(
        &self,
        window: i64,
        sref: u64,
        bytes: &[u8],
        seal: bool,
        then: impl FnOnce(u32, u64) -> T,
    ) -> io::Result<T> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(io::Error::other("chunk too large"));
        }
        let mut rec = Vec::with_capacity(RECORD_HEADER + bytes.len());
        rec.extend_from_slice(&record_header(if seal { FLAG_SEALED } else { FLAG_OPEN }, sref, bytes.len()));
        rec.extend_from_slice(bytes);
        let mut live = self.live.lock();
        let l = live.entry(window).or_insert(Live { generation: 0, file: None, len: 0, dirty: false, unsealed: false });
        if l.file.is_none() {
            let f = OpenOptions::new().create(true).append(true).open(self.path(window, l.generation))?;
            l.len = f.metadata()?.len();
            l.file = Some(Arc::new(f));
        }
        let Some(file) = l.file.as_ref() else { return Err(io::Error::other("chunk file not open")) };
        if let Err(e) = (&**file).write_all(&rec) {
            // Cut a partial record off so later appends stay parseable.
            let _ = file.set_len(l.len);
            return Err(e);
        }
        let off = l.len + RECORD_HEADER as u64;
        l.len += rec.len() as u64;
        l.dirty = true;
        l.unsealed |= !seal;
        Ok(then(l.generation, off))
    }

    pub fn read(&self, window: i64, generation: u32, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let cached = self.readers.read().get(&(window, generation)).cloned();
        let file = match cached {
            Some(f) => f,
            None => {
                let f = Arc::new(File::open(self.path(window, generation))?);
                self.readers.write().insert((window, generation), Arc::clone(&f));
                f
            }
        };
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// `fdatasync`s every file written since the last call (checkpoints).
    pub fn sync(&self) -> io::Result<()> {
        let files: Vec<Arc<File>> = {
            let mut live = self.live.lock();
            live.values_mut()
                .filter(|l| l.dirty)
                .filter_map(|l| {
                    l.dirty = false;
                    l.file.clone()
                })
                .collect()
        };
        for f in files {
            f.sync_data()?;
        }
        if let Ok(d) = File::open(&self.dir) {
            d.sync_all()?;
        }
        Ok(())
    }

    /// Windows ending at or before `horizon` that were appended to since their last seal.
    pub fn unsealed_before(&self, horizon: i64) -> Vec<i64> {
        let live = self.live.lock();
        let mut v: Vec<i64> = live
            .iter()
            .filter(|(w, l)| l.unsealed && (**w + 1).saturating_mul(BLOCK_WINDOW_MS) <= horizon)
            .map(|(w, _)| *w)
            .collect();
        v.sort_unstable();
        v
    }

    /// Starts sealing `window`: later appends go to a new generation; the old one is retired.
    pub fn begin_seal(&self, window: i64) {
        let mut live = self.live.lock();
        if let Some(l) = live.get_mut(&window) {
            if let Some(f) = l.file.as_ref().filter(|_| l.dirty)
                && let Err(e) = f.sync_data()
            {
                tracing::warn!(window, error = %e, "Syncing a retired chunk file failed.");
            }
            self.retired.lock().push((window, l.generation));
            *l = Live { generation: l.generation + 1, file: None, len: 0, dirty: false, unsealed: false };
        }
    }

    /// The live (newest) generation of `window`, if it has files.
    pub fn generation(&self, window: i64) -> Option<u32> {
        self.live.lock().get(&window).map(|l| l.generation)
    }

    /// Records that `window`'s seal is complete and durable, unless it was written to meanwhile.
    pub fn finish_seal(&self, window: i64) -> io::Result<()> {
        let live = self.live.lock();
        if let Some(l) = live.get(&window).filter(|l| !l.unsealed) {
            File::create(self.dir.join(marker_name(window, l.generation)))?;
        }
        Ok(())
    }

    /// Marks `window` for sealing by the next compaction (its chunks were rewritten by
    /// `clean_tombstones`: sealing writes a new generation without the dropped records).
    pub fn mark_unsealed(&self, window: i64) {
        if let Some(l) = self.live.lock().get_mut(&window) {
            l.unsealed = true;
        }
    }

    /// Copies every payload file and seal marker into `dest` (snapshots): generations older than
    /// their window's live one never change again and are hard-linked (copied when linking fails,
    /// e.g. across filesystems); live generations may still be appended to, so only the bytes
    /// written so far are copied. The caller holds the compaction lock (no generation is retired,
    /// deleted or started meanwhile). Returns (files linked, files copied).
    pub fn snapshot_to(&self, dest: &Path) -> io::Result<(usize, usize)> {
        fs::create_dir_all(dest)?;
        // (name, bytes to copy or None for an immutable file), taken under the append lock.
        let mut plan: Vec<(String, Option<u64>)> = Vec::new();
        {
            let live = self.live.lock();
            for e in fs::read_dir(&self.dir)? {
                let name = e?.file_name().to_string_lossy().into_owned();
                if name.starts_with("heads-g") && name.ends_with(".snap") {
                    // The head snapshot of a checkpoint: written once, complete.
                    plan.push((name, None));
                    continue;
                }
                let Some((w, g)) = parse_any(&name) else { continue };
                if name.ends_with(".idx") {
                    // Written once, complete, by a seal.
                    plan.push((name, None));
                    continue;
                }
                if !name.ends_with(".dat") {
                    plan.push((name, Some(0)));
                    continue;
                }
                match live.get(&w) {
                    Some(l) if l.generation == g && l.file.is_some() => plan.push((name, Some(l.len))),
                    Some(l) if l.generation == g => {
                        let len = fs::metadata(self.dir.join(&name))?.len();
                        plan.push((name, Some(len)));
                    }
                    _ => plan.push((name, None)),
                }
            }
        }
        let (mut linked, mut copied) = (0, 0);
        for (name, len) in plan {
            let (src, dst) = (self.dir.join(&name), dest.join(&name));
            if len.is_none() && fs::hard_link(&src, &dst).is_ok() {
                linked += 1;
                continue;
            }
            let mut from = File::open(&src)?;
            let mut to = File::create(&dst)?;
            match len {
                Some(n) => io::copy(&mut (&mut from).take(n), &mut to)?,
                None => io::copy(&mut from, &mut to)?,
            };
            to.sync_all()?;
            copied += 1;
        }
        File::open(dest)?.sync_all()?;
        Ok((linked, copied))
    }

    /// Deletes the generations retired by the previous pass; returns `(window, generation)` for
    /// each retirement (every generation up to and including it is gone).
    pub fn delete_retired(&self) -> io::Result<Vec<(i64, u32)>> {
        let old: Vec<(i64, u32)> = std::mem::take(&mut *self.retired.lock());
        for &(w, g) in &old {
            for generation in 0..=g {
                self.readers.write().remove(&(w, generation));
                for path in [
                    self.path(w, generation),
                    self.dir.join(marker_name(w, generation)),
                    self.dir.join(super::sealed::idx_name(w, generation)),
                ] {
                    match fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(old)
    }

    /// Deletes whole files of windows that end at or before `cutoff` (retention).
    pub fn remove_windows_before(&self, cutoff: i64) -> io::Result<usize> {
        let mut n = 0;
        let mut live = self.live.lock();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let Some((w, g)) = e.file_name().to_str().and_then(parse_any) else { continue };
            if (w + 1).saturating_mul(BLOCK_WINDOW_MS) <= cutoff {
                self.readers.write().remove(&(w, g));
                live.remove(&w);
                fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn disk_bytes(&self) -> u64 {
        let Ok(rd) = fs::read_dir(&self.dir) else { return 0 };
        rd.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_seal_and_retire() {
        let d = tempfile::tempdir().expect("tmp");
        let f = ChunkFiles::open(d.path()).expect("open");
        let (a, b) = (chunk_bytes(10), chunk_bytes(20));
        let (g, off) = f.append(3, 7, &a, false, |g, o| (g, o)).expect("append");
        let (_, off2) = f.append(3, 7, &b, false, |g, o| (g, o)).expect("append");
        let h = RECORD_HEADER as u64;
        assert_eq!((g, off, off2), (0, h, 2 * h + a.len() as u64));
        assert_eq!(f.read(3, 0, off2, b.len()).expect("read"), b);
        f.sync().expect("sync");
        assert_eq!(f.unsealed_before(i64::MAX), vec![3]);
        f.begin_seal(3);
        f.finish_seal(3).expect("sealed");
        assert!(f.unsealed_before(i64::MAX).is_empty());
        assert_eq!(f.delete_retired().expect("delete"), vec![(3, 0)]);
        drop(f);
        // Sealed windows stay sealed across a reopen.
        let f = ChunkFiles::open(d.path()).expect("reopen");
        assert!(f.unsealed_before(i64::MAX).is_empty());
        assert_eq!(f.append(3, 7, &a, false, |g, o| (g, o)).expect("append"), (1, h));
        assert_eq!(f.unsealed_before(i64::MAX), vec![3]);
        assert!(f.read(3, 0, 0, 5).is_err());
        drop(f);
        // Reopen: the newest generation is live and appends continue at its end.
        let f = ChunkFiles::open(d.path()).expect("reopen");
        assert_eq!(f.append(3, 7, &b, false, |g, o| (g, o)).expect("append"), (1, 2 * h + a.len() as u64));
        assert_eq!(f.remove_windows_before(4 * BLOCK_WINDOW_MS).expect("retention"), 2, "payload and marker");
        assert_eq!(f.disk_bytes(), 0);
    }

    fn chunk_bytes(n: i64) -> Vec<u8> {
        let samples: Vec<crowsnest_wire::Sample> =
            (0..n).map(|i| crowsnest_wire::Sample::new(1000 + i * 15_000, i as f64)).collect();
        super::super::chunk::encode(&samples)
    }

    #[test]
    fn scan_finds_records_and_truncates_a_torn_tail() {
        let d = tempfile::tempdir().expect("tmp");
        let f = ChunkFiles::open(d.path()).expect("open");
        let (a, b, c) = (chunk_bytes(5), chunk_bytes(9), chunk_bytes(3));
        f.append(0, 17, &a, false, |_, _| ()).expect("append");
        f.append(0, 33, &b, true, |_, _| ()).expect("append");
        f.append(0, 17, &c, false, |_, _| ()).expect("append");
        drop(f);
        // A crash in the middle of the last append: half of its record reached the file.
        let path = d.path().join(file_name(0, 0));
        let full = fs::metadata(&path).expect("meta").len();
        let torn = full - (c.len() as u64) / 2;
        OpenOptions::new().write(true).open(&path).expect("open").set_len(torn).expect("truncate");
        let f = ChunkFiles::open(d.path()).expect("reopen");
        let found = f.scan().expect("scan");
        let got: Vec<(u8, u64, i64, i64)> = found.iter().map(|x| (x.flags, x.sref, x.min_t, x.max_t)).collect();
        assert_eq!(got, vec![(FLAG_OPEN, 17, 1000, 1000 + 4 * 15_000), (FLAG_SEALED, 33, 1000, 1000 + 8 * 15_000)]);
        assert_eq!(f.read(0, 0, found[1].offset, found[1].len as usize).expect("read"), b);
        // The torn record is cut off, so the next append is readable again.
        let valid = (2 * RECORD_HEADER + a.len() + b.len()) as u64;
        assert_eq!(fs::metadata(&path).expect("meta").len(), valid);
        f.append(0, 17, &c, false, |_, _| ()).expect("append");
        drop(f);
        let f = ChunkFiles::open(d.path()).expect("reopen");
        assert_eq!(f.scan().expect("scan").len(), 3);
        assert_eq!(f.unsealed_before(i64::MAX), vec![0]);
    }

    #[test]
    fn scan_skips_garbage_and_corrupt_payloads() {
        let a = chunk_bytes(4);
        let mut buf = record_header(FLAG_OPEN, 5, a.len()).to_vec();
        buf.extend_from_slice(&a);
        let good = buf.len() as u64;
        // A record whose payload checksum fails ends the scan.
        let mut bad = record_header(FLAG_OPEN, 6, a.len()).to_vec();
        let mut flipped = a.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        bad.extend_from_slice(&flipped);
        let mut with_bad = buf.clone();
        with_bad.extend_from_slice(&bad);
        with_bad.extend_from_slice(&buf);
        let p = parse_records(io::Cursor::new(&with_bad[..]), 1, 0);
        // The bad record is skipped, the one after it is still found.
        assert_eq!(p.found.iter().map(|f| f.sref).collect::<Vec<_>>(), vec![5, 5]);
        assert_eq!((p.valid_end, p.corrupt.clone()), (with_bad.len() as u64, vec![good]));
        // Zeroed pages (lost writes) at the end are a torn tail, not corruption.
        let mut zeros = buf.clone();
        zeros.extend_from_slice(&[0u8; 64]);
        let p = parse_records(io::Cursor::new(&zeros[..]), 1, 0);
        assert_eq!((p.valid_end, p.corrupt.len()), (good, 0));
        // A damaged header (here its length field) costs that record only: the scan
        // re-synchronises on the next intact record.
        let mut hdr = buf.clone();
        hdr.extend_from_slice(&buf);
        hdr[10] ^= 0x40;
        let p = parse_records(io::Cursor::new(&hdr[..]), 1, 0);
        assert_eq!(p.found.len(), 1);
        assert_eq!(p.found[0].offset, good + RECORD_HEADER as u64);
        assert_eq!((p.valid_end, p.corrupt.clone()), (hdr.len() as u64, vec![0]));
        // A damaged header with nothing intact after it is a torn tail.
        let mut tail = buf.clone();
        tail[3] ^= 1;
        assert_eq!(parse_records(io::Cursor::new(&tail[..]), 1, 0), Parsed::default());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_name(&file_name(-5, 7)), Some((-5, 7)));
        assert_eq!(parse_any(&marker_name(-5, 7)), Some((-5, 7)));
        assert_eq!(parse_name(&marker_name(-5, 7)), None);
        assert_eq!(parse_name("junk"), None);
    }
}
