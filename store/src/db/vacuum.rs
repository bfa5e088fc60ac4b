//! Rewrites the sled index into a fresh directory when its files have grown far past the data it
//! holds, then swaps the directories (like SQLite's `VACUUM`).
//!
//! Why: sled 0.34 appends every write to its log and reclaims superseded pages and blobs late or
//! never; the catalog and chunk pointers rewritten at each checkpoint and compaction left the
//! index at 29.5 MB for ~5 MB of live keys and values on the 20k-series benchmark (BENCHMARKS.md),
//! a quarter of the store's bytes. A copy through `export`/`import` holds only live entries.
//!
//! It runs while the store opens, before anything reads the index. Crash safety: the copy is
//! built in `index.vacuum`, flushed, and only then marked complete by creating
//! `index.vacuum-complete`; the old directory is moved to `index.old` and the copy renamed into
//! place. [`recover`] finishes or discards an interrupted vacuum on the next open, so the index is
//! always either the old one or the complete copy.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Index files smaller than this are never rewritten: the gain would be a few MB.
pub const MIN_VACUUM_BYTES: u64 = 16 << 20;

fn side(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn parent(dir: &Path) -> &Path {
    dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Finishes (when the copy was marked complete) or discards an interrupted vacuum of `dir`.
pub fn recover(dir: &Path) -> io::Result<()> {
    let copy = side(dir, ".vacuum");
    let done = side(dir, ".vacuum-complete");
    let old = side(dir, ".old");
    if done.exists() {
        if copy.exists() {
            if dir.exists() {
                if old.exists() {
                    fs::remove_dir_all(&old)?;
                }
                fs::rename(dir, &old)?;
            }
            fs::rename(&copy, dir)?;
            sync_dir(parent(dir))?;
            tracing::warn!(index = %dir.display(), "Finished an interrupted index vacuum.");
        }
        fs::remove_file(&done)?;
    } else if copy.exists() {
        fs::remove_dir_all(&copy)?;
        tracing::warn!(index = %dir.display(), "Discarded an unfinished index vacuum.");
    }
    if old.exists() && dir.exists() {
        fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Bytes of every key and value in every tree: what a fresh copy must hold.
pub fn live_bytes(db: &sled::Db) -> Result<u64, StoreError> {
    let mut total = 0u64;
    for name in db.tree_names() {
        for kv in db.open_tree(&name)?.iter() {
            let (k, v) = kv?;
            total += (k.len() + v.len()) as u64;
        }
    }
    Ok(total)
}

/// Whether an index of `on_disk` bytes holding `live` bytes of entries is worth rewriting.
pub fn worth_it(on_disk: u64, live: u64, ratio: f64) -> bool {
    ratio > 0.0 && on_disk >= MIN_VACUUM_BYTES && on_disk as f64 > ratio * live.max(1) as f64
}

/// Copies every tree of `db` (open at `dir`) into a fresh database, swaps it into place and
/// returns the bytes before and after. `db` is closed on return; the caller reopens `dir`.
pub fn run(db: sled::Db, dir: &Path) -> Result<(u64, u64), StoreError> {
    let copy_dir = side(dir, ".vacuum");
    let done = side(dir, ".vacuum-complete");
    let old = side(dir, ".old");
    if copy_dir.exists() {
        fs::remove_dir_all(&copy_dir)?;
    }
    let before = db.size_on_disk()?;
    let copy = sled::Config::new().path(&copy_dir).cache_capacity(8 << 20).flush_every_ms(None).open()?;
    copy.import(db.export());
    copy.flush()?;
    let after = copy.size_on_disk()?;
    drop(copy);
    drop(db);
    fs::File::create(&done)?.sync_all()?;
    sync_dir(parent(dir))?;
    fs::rename(dir, &old)?;
    fs::rename(&copy_dir, dir)?;
    sync_dir(parent(dir))?;
    fs::remove_file(&done)?;
    fs::remove_dir_all(&old)?;
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens with the store's retry: sled's threads hold the lock a moment after a drop.
    fn reopen(dir: &Path) -> sled::Db {
        super::super::persist::open_sled(dir, 8 << 20).expect("open")
    }

    fn fill(dir: &Path, rounds: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let db = reopen(dir);
        let t = db.open_tree("t").expect("tree");
        // Rewrite the same keys many times: sled keeps the superseded versions around.
        for r in 0..rounds {
            for i in 0u32..2000 {
                t.insert(i.to_be_bytes(), vec![(r % 251) as u8; 300]).expect("insert");
            }
            db.flush().expect("flush");
        }
        db.insert(b"default-tree", b"x".to_vec()).expect("insert");
        db.flush().expect("flush");
        let mut all: Vec<(Vec<u8>, Vec<u8>)> =
            t.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("kv")).collect();
        all.push((b"default-tree".to_vec(), b"x".to_vec()));
        all
    }

    fn contents(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let db = reopen(dir);
        let t = db.open_tree("t").expect("tree");
        let mut all: Vec<(Vec<u8>, Vec<u8>)> =
            t.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("kv")).collect();
        all.push((b"default-tree".to_vec(), db.get(b"default-tree").expect("get").expect("present").to_vec()));
        all
    }

    #[test]
    fn a_bloated_index_shrinks_and_keeps_every_entry() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("index");
        let want = fill(&dir, 40);
        let db = reopen(&dir);
        let live = live_bytes(&db).expect("live");
        assert!(live >= 2000 * 304, "{live}");
        let (before, after) = run(db, &dir).expect("vacuum");
        // How much garbage sled still holds before depends on its background segment cleaning
        // (as little as 3.7 MB once, on a loaded machine); the copy holds the live data in a few
        // 512 KiB segments.
        assert!(after < before, "{before} -> {after}");
        assert!(after <= 4 * live + (1 << 20), "{after} bytes for {live} live");
        assert_eq!(contents(&dir), want);
        assert!(!side(&dir, ".vacuum").exists() && !side(&dir, ".old").exists());
    }

    #[test]
    fn interrupted_vacuums_are_finished_or_discarded() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("index");
        let want = fill(&dir, 3);
        // A copy that was never marked complete is thrown away; the original stays.
        fs::create_dir(side(&dir, ".vacuum")).expect("mkdir");
        fs::write(side(&dir, ".vacuum").join("db"), b"partial").expect("write");
        recover(&dir).expect("recover");
        assert!(!side(&dir, ".vacuum").exists());
        assert_eq!(contents(&dir), want);

        // A complete copy whose swap was cut off after the old index moved aside is put in place.
        let db = reopen(&dir);
        let copy = reopen(&side(&dir, ".vacuum"));
        copy.import(db.export());
        copy.flush().expect("flush");
        drop((copy, db));
        fs::File::create(side(&dir, ".vacuum-complete")).expect("mark");
        fs::rename(&dir, side(&dir, ".old")).expect("rename");
        recover(&dir).expect("recover");
        assert_eq!(contents(&dir), want);
        for s in [".vacuum", ".vacuum-complete", ".old"] {
            assert!(!side(&dir, s).exists(), "{s} left behind");
        }
    }

    #[test]
    fn only_big_and_bloated_indexes_qualify() {
        assert!(worth_it(30 << 20, 5 << 20, 2.0));
        assert!(!worth_it(30 << 20, 20 << 20, 2.0));
        assert!(!worth_it(8 << 20, 1 << 20, 2.0));
        assert!(!worth_it(30 << 20, 5 << 20, 0.0));
    }
}
