//! Chunk payload files: closed chunks are appended to one file per aligned time window
//! (`chunks/w{window}-g{generation}.dat`), and sled keeps only a small pointer per chunk. This is
//! the fallback `reference/tsdb-performance.md` §5.3 item 9 proposes, taken because sled 0.34
//! measured 1.9–2.9x space amplification on plain inserts of chunk-sized values here (worse with
//! the insert/delete churn of compaction); payload files cost their byte size.
//!
//! Files are append-only. Compaction seals a window by bumping its generation (new chunks go to
//! the new file), rewriting every chunk of the window into the new file, switching the pointers,
//! and deleting the old generation one compaction pass later (so queries that already hold an old
//! pointer can still read it). Retention deletes whole files. Writes are made durable by
//! [`ChunkFiles::sync`] at checkpoints, before sled is flushed and the WAL truncated.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::persist::BLOCK_WINDOW_MS;

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
    parse_name(name).or_else(|| parse_name(&name.replace(".sealed", ".dat")))
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
        })
    }

    fn path(&self, window: i64, generation: u32) -> PathBuf {
        self.dir.join(file_name(window, generation))
    }

    /// Appends a chunk to its window's live file; returns (generation, offset). `then` runs while
    /// the append lock is held (the caller records the pointer there, so a seal never misses it).
    /// `seal` appends (compaction rewriting a window) do not mark the window for sealing again.
    pub fn append<T>(&self, window: i64, bytes: &[u8], seal: bool, then: impl FnOnce(u32, u64) -> T) -> io::Result<T> {
        let mut live = self.live.lock();
        let l = live.entry(window).or_insert(Live { generation: 0, file: None, len: 0, dirty: false, unsealed: false });
        if l.file.is_none() {
            let f = OpenOptions::new().create(true).append(true).open(self.path(window, l.generation))?;
            l.len = f.metadata()?.len();
            l.file = Some(Arc::new(f));
        }
        let Some(file) = l.file.as_ref() else { return Err(io::Error::other("chunk file not open")) };
        (&**file).write_all(bytes)?;
        let off = l.len;
        l.len += bytes.len() as u64;
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

    /// Records that `window`'s seal is complete and durable, unless it was written to meanwhile.
    pub fn finish_seal(&self, window: i64) -> io::Result<()> {
        let live = self.live.lock();
        if let Some(l) = live.get(&window).filter(|l| !l.unsealed) {
            File::create(self.dir.join(marker_name(window, l.generation)))?;
        }
        Ok(())
    }

    /// Deletes the generations retired by the previous pass.
    pub fn delete_retired(&self) -> io::Result<usize> {
        let old: Vec<(i64, u32)> = std::mem::take(&mut *self.retired.lock());
        let mut n = 0;
        for (w, g) in old {
            for generation in 0..=g {
                self.readers.write().remove(&(w, generation));
                for path in [self.path(w, generation), self.dir.join(marker_name(w, generation))] {
                    match fs::remove_file(path) {
                        Ok(()) => n += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(n)
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
        let (g, off) = f.append(3, b"hello", false, |g, o| (g, o)).expect("append");
        let (_, off2) = f.append(3, b"world", false, |g, o| (g, o)).expect("append");
        assert_eq!((g, off, off2), (0, 0, 5));
        assert_eq!(f.read(3, 0, 5, 5).expect("read"), b"world");
        f.sync().expect("sync");
        assert_eq!(f.unsealed_before(i64::MAX), vec![3]);
        f.begin_seal(3);
        f.finish_seal(3).expect("sealed");
        assert!(f.unsealed_before(i64::MAX).is_empty());
        assert_eq!(f.delete_retired().expect("delete"), 1);
        drop(f);
        // Sealed windows stay sealed across a reopen.
        let f = ChunkFiles::open(d.path()).expect("reopen");
        assert!(f.unsealed_before(i64::MAX).is_empty());
        assert_eq!(f.append(3, b"x", false, |g, o| (g, o)).expect("append"), (1, 0));
        assert_eq!(f.unsealed_before(i64::MAX), vec![3]);
        assert!(f.read(3, 0, 0, 5).is_err());
        drop(f);
        // Reopen: the newest generation is live and appends continue at its end.
        let f = ChunkFiles::open(d.path()).expect("reopen");
        assert_eq!(f.append(3, b"yz", false, |g, o| (g, o)).expect("append"), (1, 1));
        assert_eq!(f.remove_windows_before(4 * BLOCK_WINDOW_MS).expect("retention"), 2, "payload and marker");
        assert_eq!(f.disk_bytes(), 0);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_name(&file_name(-5, 7)), Some((-5, 7)));
        assert_eq!(parse_any(&marker_name(-5, 7)), Some((-5, 7)));
        assert_eq!(parse_name(&marker_name(-5, 7)), None);
        assert_eq!(parse_name("junk"), None);
    }
}
