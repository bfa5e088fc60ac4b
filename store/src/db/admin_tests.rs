//! Engine tests of the admin operations and of corrupted chunk files: tombstones survive a real
//! abort (`kill -9`), `clean_tombstones` frees disk without changing answers or resurrecting
//! anything on restart, snapshots open as data directories, and a flipped byte in a chunk file
//! costs exactly the chunk it hits (checksum detected, logged, counted, skipped; no panic).

use std::path::{Path, PathBuf};

use crowsnest_wire::Matcher;
use crowsnest_wire::ops::encode_metrics;

use super::chunk;
use super::chunkfile::{FLAG_OPEN, FLAG_SEALED, Found, RECORD_HEADER, parse_records};
use super::tests::{cfg, open, select_all, ts};

type Answer = Vec<(crowsnest_wire::Labels, Vec<(i64, u64)>)>;

/// `n` samples 15 s apart from `t0`, values varied per series.
fn samples(t0: i64, n: i64, k: i64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (t0 + i * 15_000, (i * (k + 1)) as f64 * 0.25)).collect()
}

/// Eight series `c{s="0".."7"}` over about 12.5 h (three 6 h windows, many chunks each).
fn batch() -> Vec<crowsnest_wire::TimeSeries> {
    (0..8).map(|k| ts(&[("__name__", "c"), ("s", &k.to_string())], &samples(k * 7, 3_000, k))).collect()
}

fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("chunks"))
        .expect("chunks")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    v.sort();
    v
}

fn records(path: &Path) -> Vec<Found> {
    parse_records(std::fs::File::open(path).expect("open"), 0, 0).found
}

fn timestamps_of(path: &Path, r: &Found) -> Vec<i64> {
    let bytes = std::fs::read(path).expect("read");
    let payload = &bytes[r.offset as usize..r.offset as usize + r.len as usize];
    chunk::decode(payload).expect("intact before the flip").1.iter().map(|s| s.timestamp).collect()
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at as usize] ^= 0x5a;
    std::fs::write(path, bytes).expect("write");
}

fn corrupt_total(reg: &crowsnest_wire::ops::SharedRegistry) -> u64 {
    let text = encode_metrics(reg);
    text.lines()
        .find_map(|l| l.strip_prefix("crowsnest_store_corrupt_chunks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("counter missing: {text}"))
}

/// `want` minus the samples of series `s` at `gone` timestamps.
fn without(want: &Answer, s: usize, gone: &[i64]) -> Answer {
    let mut w = want.clone();
    w[s].1.retain(|(t, _)| !gone.contains(t));
    w
}

fn series_index(want: &Answer, db: &super::Db, sref: u64) -> usize {
    let shard = db.engine.shards[super::head::shard_of_ref(sref)].lock();
    let labels = super::index::decode_labels(&shard.series.get(&sref).expect("series").labels);
    want.iter().position(|(l, _)| *l == labels).expect("known series")
}

#[test]
fn a_flipped_byte_in_a_sealed_chunk_costs_that_chunk_only() {
    let d = tempfile::tempdir().expect("tmp");
    let want = {
        let (db, _) = open(cfg(d.path()));
        db.append(batch()).expect("append");
        db.close().expect("close: heads cut, windows sealed");
        select_all(&db, "c", i64::MIN, i64::MAX)
    };
    let files = chunk_files(d.path());
    let path = files.iter().max_by_key(|p| records(p).len()).expect("a chunk file").clone();
    let recs = records(&path);
    assert!(recs.len() >= 8 && recs.iter().all(|r| r.flags == FLAG_SEALED), "{recs:?}");
    // A byte in the middle of one block's payload, and the length field of another's header.
    let (bad, hdr) = (recs[1], recs[4]);
    let gone = timestamps_of(&path, &bad);
    flip(&path, bad.offset + u64::from(bad.len) / 2);
    flip(&path, hdr.offset - RECORD_HEADER as u64 + 10);

    let (db, reg) = open(cfg(d.path()));
    let s = series_index(&want, &db, bad.sref);
    let got = select_all(&db, "c", i64::MIN, i64::MAX);
    // The damaged header does not matter to a block with a pointer: its payload is intact.
    assert_eq!(got, without(&want, s, &gone));
    assert!(got[s].1.len() > 100, "the series' other chunks are served");
    assert!(corrupt_total(&reg) >= 1);
    // The rest of the file stays in place (a mid-file error is not taken for a torn tail).
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), recs.last().map_or(0, |r| r.offset + u64::from(r.len)));
    assert!(!db.fsck().expect("fsck").is_clean());
}

#[test]
fn a_flipped_byte_in_an_open_window_chunk_costs_that_chunk_only() {
    let d = tempfile::tempdir().expect("tmp");
    let want = {
        let (db, _) = open(cfg(d.path()));
        db.append(batch()).expect("append");
        // Closed chunks become records without any pointer; the WAL is truncated.
        db.engine.checkpoint(true).expect("checkpoint");
        let w = select_all(&db, "c", i64::MIN, i64::MAX);
        drop(db);
        w
    };
    let path = chunk_files(d.path()).into_iter().max_by_key(|p| records(p).len()).expect("file");
    let recs = records(&path);
    assert!(recs.len() >= 8 && recs.iter().all(|r| r.flags == FLAG_OPEN), "{recs:?}");
    let (bad, hdr) = (recs[2], recs[5]);
    let (gone_bad, gone_hdr) = (timestamps_of(&path, &bad), timestamps_of(&path, &hdr));
    flip(&path, bad.offset + u64::from(bad.len) - 3);
    // The header CRC catches a flipped series ref; that record can no longer be attributed.
    flip(&path, hdr.offset - RECORD_HEADER as u64 + 2);

    let (db, reg) = open(cfg(d.path()));
    let (sb, sh) = (series_index(&want, &db, bad.sref), series_index(&want, &db, hdr.sref));
    let got = select_all(&db, "c", i64::MIN, i64::MAX);
    let expect = without(&without(&want, sb, &gone_bad), sh, &gone_hdr);
    assert_eq!(got, expect);
    assert_eq!(corrupt_total(&reg), 2, "both damaged records counted at open");
    // Later records of the same file are still found (they are in `expect`), and new appends work.
    db.append(vec![ts(&[("__name__", "c"), ("s", "0")], &[(100_000_000, 1.0)])]).expect("append");
}

#[test]
fn damaged_headers_and_lengths_never_panic() {
    let d = tempfile::tempdir().expect("tmp");
    {
        let (db, _) = open(cfg(d.path()));
        db.append(batch()).expect("append");
        db.engine.checkpoint(true).expect("checkpoint");
    }
    let path = chunk_files(d.path()).into_iter().next().expect("file");
    let recs = records(&path);
    // Every byte of a record header, one at a time, plus a length pointing past the file end.
    for i in 0..RECORD_HEADER as u64 {
        flip(&path, recs[3].offset - RECORD_HEADER as u64 + i);
    }
    let len_at = (recs[6].offset - RECORD_HEADER as u64 + 9) as usize;
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");
    let (db, reg) = open(cfg(d.path()));
    let got = select_all(&db, "c", i64::MIN, i64::MAX);
    assert_eq!(got.len(), 8);
    assert!(corrupt_total(&reg) >= 2);
}

#[test]
fn clean_tombstones_frees_disk_and_keeps_answers_across_restarts() {
    let d = tempfile::tempdir().expect("tmp");
    let ms = |k: &str| vec![vec![Matcher::equal("__name__", "c"), Matcher::equal("s", k)]];
    let (answer, bytes_before) = {
        let (db, _) = open(cfg(d.path()));
        db.append(batch()).expect("append");
        db.flush().expect("flush");
        let before = db.stats().chunk_file_bytes;
        for k in ["0", "1", "2", "3", "4"] {
            assert_eq!(db.delete_series(&ms(k), i64::MIN, i64::MAX).expect("delete"), 1);
        }
        // Part of series 5: one hour in the middle.
        db.delete_series(&ms("5"), 3_600_000, 7_200_000).expect("delete");
        let answer = select_all(&db, "c", i64::MIN, i64::MAX);
        assert_eq!(answer.len(), 3);
        assert!(answer[0].1.iter().all(|(t, _)| *t < 3_600_000 || *t > 7_200_000));
        assert_eq!(db.series(&[], i64::MIN, i64::MAX, None).expect("series").len(), 3);
        let r = db.clean_tombstones().expect("clean");
        assert_eq!((r.series_cleaned, r.series_dropped), (6, 5));
        assert_eq!(select_all(&db, "c", i64::MIN, i64::MAX), answer);
        assert!(db.engine.tombstones.is_empty());
        assert_eq!(db.stats().series, 3);
        assert!(db.fsck().expect("fsck").is_clean());
        let after = db.stats().chunk_file_bytes;
        assert!(after * 10 < before * 6, "chunk files shrank: {before} -> {after}");
        // Dropped without close: a crash. Nothing may come back from the WAL or a file scan.
        (answer, before)
    };
    let (db, _) = open(cfg(d.path()));
    assert_eq!(select_all(&db, "c", i64::MIN, i64::MAX), answer);
    assert_eq!(db.series(&[], i64::MIN, i64::MAX, None).expect("series").len(), 3);
    assert!(db.stats().chunk_file_bytes < bytes_before);
}

const DELETE_ENV: &str = "CROWSNEST_TEST_DELETE_CHILD_DIR";

/// Child half of `deletes_survive_kill_9`: appends, deletes, prints ACK, aborts.
#[test]
fn delete_child() {
    let Ok(dir) = std::env::var(DELETE_ENV) else { return };
    let (db, _) = open(cfg(Path::new(&dir)));
    db.append(batch()).expect("append");
    db.checkpoint().expect("checkpoint");
    let m = vec![vec![Matcher::equal("s", "3")]];
    db.delete_series(&m, 1_000_000, 2_000_000).expect("delete");
    println!("ACK");
    std::process::abort();
}

#[test]
fn deletes_survive_kill_9() {
    let d = tempfile::tempdir().expect("tmp");
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args(["--exact", "db::admin_tests::delete_child", "--nocapture", "--test-threads=1"])
        .env(DELETE_ENV, d.path())
        .output()
        .expect("run child");
    assert!(!out.status.success(), "child must have aborted");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACK"), "{}", String::from_utf8_lossy(&out.stderr));
    let (db, _) = open(cfg(d.path()));
    let got = select_all(&db, "c", i64::MIN, i64::MAX);
    assert_eq!(got.len(), 8);
    let s3 = &got.iter().find(|(l, _)| l.get("s") == Some("3")).expect("s=3").1;
    assert!(s3.iter().all(|(t, _)| *t < 1_000_000 || *t > 2_000_000));
    assert!(s3.iter().any(|(t, _)| *t > 2_000_000) && s3.iter().any(|(t, _)| *t < 1_000_000));
    let s2 = &got.iter().find(|(l, _)| l.get("s") == Some("2")).expect("s=2").1;
    assert_eq!(s2.len(), 3_000);
}

#[test]
fn snapshot_opens_as_a_data_directory_with_the_same_answers() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, _) = open(cfg(d.path()));
    db.append(batch()).expect("append");
    db.flush().expect("flush: sealed windows");
    // More data in the head and in open windows after the seal.
    db.append(vec![ts(&[("__name__", "c"), ("s", "0")], &samples(50_000_000, 200, 0))]).expect("append");
    let want = select_all(&db, "c", i64::MIN, i64::MAX);
    let name = db.snapshot(false).expect("snapshot");
    let snap = d.path().join(super::SNAPSHOTS_DIR).join(&name);
    db.append(vec![ts(&[("__name__", "c"), ("s", "9")], &samples(0, 10, 0))]).expect("after");
    let (copy, _) = open(cfg(&snap));
    assert_eq!(select_all(&copy, "c", i64::MIN, i64::MAX), want);
    assert!(copy.fsck().expect("fsck").is_clean());
}
