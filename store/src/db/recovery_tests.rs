//! Crash-recovery tests of the open-window chunk references (`persist.rs`, `chunkfile.rs`): they
//! live only in memory and in the chunk files' self-describing records, so a reopen must rebuild
//! them from the files — after a checkpoint truncated the WAL, after a crash in the middle of a
//! compaction (old and new file generations side by side, no seal marker), after a crash
//! that left a torn record at the end of a chunk file, with a damaged block index file, and
//! after real aborts (child processes)
//! at random points while checkpoints and compactions run without pause.

use super::chunkfile::RECORD_HEADER;
use super::tests::{bits, cfg, open, select_all, ts};

/// `n` samples 15 s apart starting at `t0`, values that exercise several encodings.
fn samples(t0: i64, n: i64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (t0 + i * 15_000 + (i % 3), if i % 7 == 0 { 0.5 } else { i as f64 * 1.25 })).collect()
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("chunks"))
        .expect("chunks dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

#[test]
fn open_window_references_are_rebuilt_from_chunk_files() {
    let d = tempfile::tempdir().expect("tmp");
    let (a, b) = (samples(0, 1000), samples(7, 500));
    {
        let (db, _) = open(cfg(d.path()));
        db.append(vec![ts(&[("__name__", "r"), ("i", "a")], &a), ts(&[("__name__", "r"), ("i", "b")], &b)])
            .expect("append");
        // The checkpoint syncs the chunk files and truncates the WAL: the closed chunks now exist
        // only as records in the files, with no pointer in sled.
        db.checkpoint().expect("checkpoint");
        assert!(db.engine.disk.chunk_count() >= 10, "chunks were cut");
        assert_eq!(db.engine.disk.sealed_chunk_count(), 0, "open-window chunks have no sled pointer");
        assert_eq!(db.stats().wal_bytes, 0, "WAL truncated");
    }
    let (db, reg) = open(cfg(d.path()));
    let got = select_all(&db, "r", i64::MIN, i64::MAX);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, bits(&a));
    assert_eq!(got[1].1, bits(&b));
    assert!(db.fsck().expect("fsck").is_clean());
    let count = db.engine.disk.chunk_count();
    assert!(encode_metrics_contains(&reg, &format!("crowsnest_store_chunks {count}")));
}

fn encode_metrics_contains(reg: &crowsnest_wire::ops::SharedRegistry, needle: &str) -> bool {
    crowsnest_wire::ops::encode_metrics(reg).contains(needle)
}

#[test]
fn crash_in_the_middle_of_a_compaction_loses_and_duplicates_nothing() {
    let d = tempfile::tempdir().expect("tmp");
    // About 16.7 h: three 6 h windows, the first two sealable (the horizon trails the newest
    // sample by 2 h).
    let series: Vec<(String, Vec<(i64, f64)>)> = (0..5).map(|i| (format!("s{i}"), samples(i * 1_000, 4_000))).collect();
    let batch = || series.iter().map(|(n, v)| ts(&[("__name__", "c"), ("i", n.as_str())], v)).collect::<Vec<_>>();
    let want: Vec<Vec<(i64, u64)>> = series.iter().map(|(_, v)| bits(v)).collect();
    {
        let (db, _) = open(cfg(d.path()));
        db.append(batch()).expect("append");
        db.checkpoint().expect("checkpoint");
        let r = db.compact().expect("compact");
        assert!(r.chunks_merged > 0 && r.blocks_written > 0, "{r:?}");
        // One pointer per series and sealed window, not one per chunk.
        assert_eq!(db.engine.disk.sealed_chunk_count(), 5 * 2);
        // Dropped without close: a crash right after the last batch was made durable.
    }
    // Undo the seal's last steps: the index files and markers were never written, so the old
    // generations (still on disk, retired only by the next pass) are scanned again next to the
    // new ones, whose blocks are found by their records.
    let before = files(d.path());
    assert!(before.iter().any(|f| f.ends_with("-g0.dat")) && before.iter().any(|f| f.ends_with("-g1.dat")));
    assert!(before.iter().any(|f| f.ends_with("-g1.idx")), "{before:?}");
    for f in before.iter().filter(|f| f.ends_with(".sealed") || f.ends_with(".idx")) {
        std::fs::remove_file(d.path().join("chunks").join(f)).expect("rm marker");
    }
    {
        let (db, _) = open(cfg(d.path()));
        let got = select_all(&db, "c", i64::MIN, i64::MAX);
        assert_eq!(got.iter().map(|s| s.1.clone()).collect::<Vec<_>>(), want, "overlaps merge to one copy");
        assert!(db.fsck().expect("fsck").is_clean());
        // The windows count as unsealed again; the next pass merges the leftovers.
        let r = db.compact().expect("compact again");
        assert!(r.chunks_merged > 0, "{r:?}");
        db.close().expect("close");
    }
    let after = files(d.path());
    assert!(!after.iter().any(|f| f.ends_with("-g0.dat")), "old generations deleted: {after:?}");
    let (db, _) = open(cfg(d.path()));
    let got = select_all(&db, "c", i64::MIN, i64::MAX);
    assert_eq!(got.iter().map(|s| s.1.clone()).collect::<Vec<_>>(), want);
    assert_eq!(db.engine.disk.chunk_count(), db.engine.disk.sealed_chunk_count(), "everything sealed by close");
    assert!(db.engine.disk.sealed_chunk_count() <= 5 * 3);
}

#[test]
fn a_damaged_block_index_is_rebuilt_from_its_chunk_file() {
    let d = tempfile::tempdir().expect("tmp");
    let series: Vec<(String, Vec<(i64, f64)>)> = (0..4).map(|i| (format!("s{i}"), samples(i * 500, 3_000))).collect();
    let want: Vec<Vec<(i64, u64)>> = series.iter().map(|(_, v)| bits(v)).collect();
    {
        let (db, _) = open(cfg(d.path()));
        db.append(series.iter().map(|(n, v)| ts(&[("__name__", "c"), ("i", n.as_str())], v)).collect())
            .expect("append");
        db.close().expect("close");
    }
    let idx: Vec<String> = files(d.path()).into_iter().filter(|f| f.ends_with(".idx")).collect();
    assert!(idx.len() >= 2, "{idx:?}");
    let path = d.path().join("chunks").join(&idx[0]);
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).expect("write");
    {
        let (db, _) = open(cfg(d.path()));
        let got = select_all(&db, "c", i64::MIN, i64::MAX);
        assert_eq!(got.iter().map(|s| s.1.clone()).collect::<Vec<_>>(), want, "blocks found by scanning");
        assert!(db.fsck().expect("fsck").is_clean());
        // The window counts as unsealed: the next pass seals it into a new generation with a
        // good index (its one block per series is copied as it is).
        db.compact().expect("compact");
        db.close().expect("close");
    }
    let damaged_gen = idx[0].clone();
    let next = damaged_gen.replace("-g1.idx", "-g2.idx");
    let now = files(d.path());
    assert!(now.contains(&next) && !now.contains(&damaged_gen), "{damaged_gen} replaced by {next}: {now:?}");
    let (db, _) = open(cfg(d.path()));
    assert_eq!(select_all(&db, "c", i64::MIN, i64::MAX).iter().map(|s| s.1.clone()).collect::<Vec<_>>(), want);
    assert_eq!(db.engine.disk.chunk_count(), db.engine.disk.sealed_chunk_count(), "all in index files again");
}

#[test]
fn torn_chunk_file_tail_is_cut_and_appends_continue() {
    let d = tempfile::tempdir().expect("tmp");
    let a = samples(0, 600);
    {
        let (db, _) = open(cfg(d.path()));
        db.append(vec![ts(&[("__name__", "t")], &a)]).expect("append");
        db.checkpoint().expect("checkpoint");
    }
    // A crash in the middle of an append: a record header that promises more than was written.
    let name = files(d.path()).into_iter().find(|f| f.ends_with(".dat")).expect("a chunk file");
    let path = d.path().join("chunks").join(&name);
    let valid = std::fs::metadata(&path).expect("meta").len();
    let mut bytes = std::fs::read(&path).expect("read");
    let torn = bytes[..RECORD_HEADER + 4].to_vec();
    bytes.extend_from_slice(&torn);
    std::fs::write(&path, &bytes).expect("write");
    let b = samples(600 * 15_000, 400);
    {
        let (db, _) = open(cfg(d.path()));
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), valid, "torn tail cut off");
        assert_eq!(select_all(&db, "t", i64::MIN, i64::MAX)[0].1, bits(&a));
        db.append(vec![ts(&[("__name__", "t")], &b)]).expect("append more");
        db.checkpoint().expect("checkpoint");
    }
    let (db, _) = open(cfg(d.path()));
    let mut all = a.clone();
    all.extend_from_slice(&b);
    assert_eq!(select_all(&db, "t", i64::MIN, i64::MAX)[0].1, bits(&all));
    assert!(db.fsck().expect("fsck").is_clean());
}

const CHURN_ENV: &str = "CROWSNEST_STORE_CHURN_CHILD_DIR";
const CHURN_BATCHES_ENV: &str = "CROWSNEST_STORE_CHURN_BATCHES";

/// One batch of the churn child: 3 series, 100 samples a minute apart, so the data crosses many
/// 6 h windows and compaction keeps sealing them while appends go on.
fn churn_batch(b: i64) -> Vec<crowsnest_wire::TimeSeries> {
    (0..3)
        .map(|s| {
            let v: Vec<(i64, f64)> =
                (0..100).map(|i| ((b * 100 + i) * 60_000 + s, ((b * 100 + i) * (s + 1)) as f64 * 0.5)).collect();
            ts(&[("__name__", "churn"), ("s", &s.to_string())], &v)
        })
        .collect()
}

/// Child half of `acknowledged_batches_survive_abort_during_checkpoints_and_compaction`: appends
/// while another thread checkpoints and compacts without pause, then aborts (like `kill -9`),
/// often in the middle of a seal.
#[test]
fn churn_child() {
    let Ok(dir) = std::env::var(CHURN_ENV) else { return };
    let n: i64 = std::env::var(CHURN_BATCHES_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let db = std::sync::Arc::new(open(cfg(std::path::Path::new(&dir))).0);
    let bg = std::sync::Arc::clone(&db);
    std::thread::spawn(move || {
        for _ in 0..100_000 {
            bg.checkpoint().expect("checkpoint");
            bg.compact().expect("compact");
        }
    });
    for b in 0..n {
        db.append(churn_batch(b)).expect("append");
        println!("ACK {b}");
    }
    // On a loaded machine the background thread may not have sealed a window yet: wait (bounded)
    // until it has, so the abort lands while checkpoints and compactions keep running over
    // sealed and unsealed windows alike.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.engine.disk.sealed_chunk_count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::process::abort();
}

#[test]
fn acknowledged_batches_survive_abort_during_checkpoints_and_compaction() {
    let exe = std::env::current_exe().expect("exe");
    // Different abort points each run (bounded: 3 rounds).
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.subsec_nanos());
    for round in 0..3u32 {
        let d = tempfile::tempdir().expect("tmp");
        let n = 20 + i64::from((seed >> (round * 4)) % 40);
        let out = std::process::Command::new(&exe)
            .args(["--exact", "db::recovery_tests::churn_child", "--nocapture", "--test-threads=1"])
            .env(CHURN_ENV, d.path())
            .env(CHURN_BATCHES_ENV, n.to_string())
            .output()
            .expect("run child");
        assert!(!out.status.success(), "child must have aborted");
        let acked = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("ACK ")).count() as i64;
        assert_eq!(acked, n, "stdout: {}", String::from_utf8_lossy(&out.stdout));
        let (db, _) = open(cfg(d.path()));
        let got = select_all(&db, "churn", i64::MIN, i64::MAX);
        for (s, series) in got.iter().enumerate() {
            let want: Vec<(i64, u64)> = (0..n)
                .flat_map(churn_batch)
                .filter(|t| t.labels.iter().any(|l| l.name == "s" && l.value == s.to_string()))
                .flat_map(|t| t.samples.into_iter().map(|x| (x.timestamp, x.value.to_bits())))
                .collect();
            assert_eq!(series.1, want, "round {round}, series {s}, {n} batches");
        }
        assert_eq!(got.len(), 3);
        assert!(db.fsck().expect("fsck").is_clean(), "round {round}");
        assert!(db.engine.disk.sealed_chunk_count() > 0, "compaction sealed windows before the abort");
    }
}

#[test]
fn a_data_dir_in_the_previous_layout_is_refused_not_truncated() {
    let d = tempfile::tempdir().expect("tmp");
    {
        let db = sled::open(d.path().join("index")).expect("sled");
        db.open_tree("series").expect("tree").insert(16u64.to_be_bytes(), &b"row"[..]).expect("insert");
        db.flush().expect("flush");
    }
    std::fs::create_dir_all(d.path().join("chunks")).expect("dir");
    let old = d.path().join("chunks").join("w1-g0.dat");
    std::fs::write(&old, b"payload without record headers").expect("write");
    let reg = crowsnest_wire::ops::new_registry();
    let err = super::Db::open(cfg(d.path()), &reg).err().expect("refused");
    assert!(err.to_string().contains("older store format"), "{err}");
    assert_eq!(std::fs::read(&old).expect("read"), b"payload without record headers");
}

/// Sets or clears the label hash marker of a closed data folder, as a folder written before the
/// marker existed (clear) or by a given hash (set) would look.
fn set_label_hash_marker(dir: &std::path::Path, marker: Option<u8>) {
    let sled = super::persist::open_sled(&dir.join("index"), 1 << 20).expect("sled");
    let state = sled.open_tree("state").expect("state");
    match marker {
        Some(m) => state.insert(b"label_hash", &[m]).map(|_| ()),
        None => state.remove(b"label_hash").map(|_| ()),
    }
    .expect("marker");
    sled.flush().expect("flush");
}

#[test]
fn folders_from_before_the_fast_label_hash_keep_finding_their_series() {
    use super::index::LabelHash;
    let labels: Vec<[(&str, &str); 3]> = (0..40)
        .map(|i| {
            [
                ("__name__", "m"),
                ("host", ["a", "bb", "ccc-dddd", "eeeeeeeeeeeeeeeeeeee"][i % 4]),
                ("i", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"][i / 4]),
            ]
        })
        .collect();
    let write = |db: &super::Db, t: i64| {
        let out = db.append(labels.iter().map(|l| ts(l, &[(t, t as f64)])).collect()).expect("append");
        assert_eq!(out.accepted, labels.len() as u64);
    };
    // A fresh folder takes the fast hash and keeps it.
    let fresh = tempfile::tempdir().expect("tmp");
    {
        let (db, _) = open(cfg(fresh.path()));
        assert_eq!(db.engine.label_hash, LabelHash::Fast);
    }
    assert_eq!(open(cfg(fresh.path())).0.engine.label_hash, LabelHash::Fast);

    // A folder written with the legacy hash, its marker removed as before the marker existed,
    // once through sled (checkpointed) and once through the WAL alone.
    for checkpointed in [true, false] {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(d.path().join("index")).expect("dir");
        set_label_hash_marker(d.path(), Some(LabelHash::Legacy.marker()));
        {
            let (db, _) = open(cfg(d.path()));
            assert_eq!(db.engine.label_hash, LabelHash::Legacy);
            write(&db, 1_000);
            if checkpointed {
                db.checkpoint().expect("checkpoint");
            }
            drop(db);
        }
        set_label_hash_marker(d.path(), None);
        let (db, _) = open(cfg(d.path()));
        assert_eq!(db.engine.label_hash, LabelHash::Legacy, "checkpointed {checkpointed}");
        write(&db, 2_000);
        assert_eq!(db.stats().series, labels.len() as u64, "no series was created twice");
        assert_eq!(select_all(&db, "m", i64::MIN, i64::MAX).len(), labels.len());
        assert!(select_all(&db, "m", i64::MIN, i64::MAX).iter().all(|(_, s)| s.len() == 2));
    }
}
