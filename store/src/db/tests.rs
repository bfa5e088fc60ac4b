//! Tests of the whole engine through the public [`Db`] API: round trips, duplicates and
//! out-of-order merges, WAL replay after a real crash (a child process that aborts), torn WAL
//! tails, retention, limits, label listing by time range, and metrics registration.

use std::time::Duration;

use crowsnest_promql::Storage;
use crowsnest_wire::ops::{SharedRegistry, encode_metrics, new_registry};
use crowsnest_wire::{Label, Labels, MatchOp, Matcher, Sample, TimeSeries};

use super::*;

pub(super) fn cfg(dir: &std::path::Path) -> StoreConfig {
    StoreConfig { data_dir: dir.to_path_buf(), ..Default::default() }
}

pub(super) fn ts(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: Labels::from_pairs(pairs.iter().copied()).into_vec(),
        samples: samples.iter().map(|(t, v)| Sample::new(*t, *v)).collect(),
    }
}

pub(super) fn open(c: StoreConfig) -> (Db, SharedRegistry) {
    let reg = new_registry();
    (Db::open(c, &reg).expect("open"), reg)
}

pub(super) fn select_all(db: &Db, name: &str, start: i64, end: i64) -> Vec<(Labels, Vec<(i64, u64)>)> {
    db.select(&[Matcher::equal("__name__", name)], start, end)
        .expect("select")
        .map(|r| {
            let s = r.expect("series");
            (s.labels, s.samples.iter().map(|x| (x.timestamp, x.value.to_bits())).collect())
        })
        .collect()
}

pub(super) fn bits(v: &[(i64, f64)]) -> Vec<(i64, u64)> {
    v.iter().map(|(t, x)| (*t, x.to_bits())).collect()
}

#[test]
fn append_select_round_trip_sorted_with_stale_markers() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, _) = open(cfg(d.path()));
    let stale = crowsnest_wire::stale_nan();
    let b = vec![
        ts(&[("__name__", "up"), ("job", "b")], &[(1000, 1.0), (2000, stale)]),
        ts(&[("__name__", "up"), ("job", "a")], &[(1000, 0.0), (2000, f64::NAN)]),
        ts(&[("__name__", "other")], &[(1000, 5.0)]),
    ];
    let out = db.append(b).expect("append");
    assert_eq!((out.accepted, out.duplicates, out.rejected.len()), (5, 0, 0));
    let got = select_all(&db, "up", 0, 10_000);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.get("job"), Some("a"));
    assert_eq!(got[1].1, bits(&[(1000, 1.0), (2000, stale)]));
    assert_ne!(got[0].1[1].1, crowsnest_wire::STALE_NAN_BITS);
    assert!(f64::from_bits(got[0].1[1].1).is_nan());
    // Range restriction.
    assert_eq!(select_all(&db, "up", 1500, 10_000)[0].1.len(), 1);
    assert!(select_all(&db, "up", 3000, 10_000).is_empty());
    let re = Matcher::new(MatchOp::Regex, "job", "a|b").expect("re");
    assert_eq!(db.series(&[vec![re]], 0, 10_000, None).expect("series").len(), 2);
}

#[test]
fn many_samples_cross_chunks_and_survive_flush_and_reopen() {
    let d = tempfile::tempdir().expect("tmp");
    let samples: Vec<(i64, f64)> = (0..1000).map(|i| (i * 15_000 + (i % 3), (i as f64 * 0.25).floor())).collect();
    {
        let (db, _) = open(cfg(d.path()));
        for part in samples.chunks(97) {
            db.append(vec![ts(&[("__name__", "c"), ("i", "1")], part)]).expect("append");
        }
        assert_eq!(select_all(&db, "c", i64::MIN, i64::MAX)[0].1, bits(&samples));
        assert!(db.tsdb_status(10).chunk_count >= 8);
        db.flush().expect("flush");
        assert_eq!(select_all(&db, "c", i64::MIN, i64::MAX)[0].1, bits(&samples));
    }
    let (db, _) = open(cfg(d.path()));
    let f = db.fsck().expect("fsck");
    assert!(f.is_clean() && f.samples_checked == 1000 && f.series_checked == 1, "{f:?}");
    assert_eq!(select_all(&db, "c", i64::MIN, i64::MAX)[0].1, bits(&samples));
    assert_eq!(select_all(&db, "c", 15_000 * 500, 15_000 * 510)[0].1.len(), 11);
    // Appending continues after the restored state.
    let out = db.append(vec![ts(&[("__name__", "c"), ("i", "1")], &[(15_000 * 1000, 1.0)])]).expect("append");
    assert_eq!(out.accepted, 1);
}

#[test]
fn duplicates_are_noops_and_conflicts_rejected() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, reg) = open(cfg(d.path()));
    let batch = || vec![ts(&[("__name__", "m")], &(0..300).map(|i| (i * 1000, i as f64)).collect::<Vec<_>>())];
    assert_eq!(db.append(batch()).expect("a").accepted, 300);
    let again = db.append(batch()).expect("retry");
    assert_eq!((again.accepted, again.duplicates, again.rejected.len()), (0, 300, 0));
    let conflict = db.append(vec![ts(&[("__name__", "m")], &[(5000, 99.0), (299_000, 1.0)])]).expect("c");
    assert_eq!(conflict.accepted, 0);
    assert_eq!(conflict.rejected.len(), 1);
    assert_eq!(conflict.rejected[0].reason, RejectReason::DuplicateTimestamp);
    assert_eq!(conflict.rejected[0].samples, 2);
    assert_eq!(conflict.rejected[0].series, "m");
    assert_eq!(select_all(&db, "m", 0, i64::MAX)[0].1.len(), 300);
    assert!(encode_metrics(&reg).contains("crowsnest_store_samples_rejected_total{reason=\"duplicate_timestamp\"} 2"));
}

#[test]
fn out_of_order_inside_window_merges_older_is_rejected() {
    let d = tempfile::tempdir().expect("tmp");
    let mut c = cfg(d.path());
    c.out_of_order_window = Duration::from_secs(3600);
    let (db, reg) = open(c);
    let l = [("__name__", "o"), ("k", "v")];
    // 200 samples at 10 s: the first head chunk (120) gets closed.
    let base: Vec<(i64, f64)> = (0..200).map(|i| (10_000_000 + i * 10_000, 1.0)).collect();
    db.append(vec![ts(&l, &base)]).expect("a");
    // Into the open head (between existing samples), into the closed chunk's range, and too old.
    let out = db
        .append(vec![ts(
            &l,
            &[
                (10_000_000 + 150 * 10_000 + 5, 2.0),
                (10_000_000 + 10 * 10_000 + 5, 3.0),
                (10_000_000 + 199 * 10_000 - 3_600_001, 4.0),
            ],
        )])
        .expect("ooo");
    assert_eq!(out.accepted, 2);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].reason, RejectReason::OutOfOrder);
    assert_eq!(out.rejected[0].series, "o{k=\"v\"}");
    let got = select_all(&db, "o", 0, i64::MAX);
    assert_eq!(got[0].1.len(), 202);
    assert!(got[0].1.windows(2).all(|w| w[0].0 < w[1].0), "sorted and unique");
    // A retried out-of-order sample is a duplicate, also after it was written as a chunk.
    db.checkpoint().expect("checkpoint");
    let again = db.append(vec![ts(&l, &[(10_000_000 + 10 * 10_000 + 5, 3.0)])]).expect("again");
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    assert!(encode_metrics(&reg).contains("crowsnest_store_samples_rejected_total{reason=\"out_of_order\"} 1"));
}

#[test]
fn limits_are_enforced_with_reasons() {
    let d = tempfile::tempdir().expect("tmp");
    let mut c = cfg(d.path());
    c.limits.max_label_names_per_series = 3;
    c.limits.max_label_value_length = 8;
    c.limits.max_active_series = 2;
    let (db, _) = open(c);
    let unsorted = TimeSeries {
        labels: vec![Label::new("z", "1"), Label::new("__name__", "x")],
        samples: vec![Sample::new(1, 1.0)],
    };
    let out = db
        .append(vec![
            unsorted,
            ts(&[("__name__", "x"), ("a", "1"), ("b", "2"), ("c", "3")], &[(1, 1.0)]),
            ts(&[("__name__", "x"), ("a", "123456789")], &[(1, 1.0)]),
            ts(&[("__name__", "x"), ("a", "1")], &[(1, 1.0)]),
            ts(&[("__name__", "x"), ("a", "2")], &[(1, 1.0)]),
            ts(&[("__name__", "x"), ("a", "3")], &[(1, 1.0), (2, 1.0)]),
        ])
        .expect("append");
    let reasons: Vec<RejectReason> = out.rejected.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        vec![
            RejectReason::InvalidLabels,
            RejectReason::TooManyLabels,
            RejectReason::LabelTooLong,
            RejectReason::SeriesLimit
        ]
    );
    assert_eq!(out.rejected[3].samples, 2);
    assert_eq!(out.accepted, 2);
    // Existing series keep accepting samples at the limit.
    assert_eq!(db.append(vec![ts(&[("__name__", "x"), ("a", "1")], &[(2, 1.0)])]).expect("a").accepted, 1);
}

#[test]
fn label_names_and_values_respect_time_range_and_matchers() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, _) = open(cfg(d.path()));
    db.append(vec![
        ts(&[("__name__", "old"), ("region", "eu")], &[(1000, 1.0)]),
        ts(&[("__name__", "new"), ("zone", "b")], &[(100_000, 1.0)]),
    ])
    .expect("a");
    assert_eq!(db.label_names(&[], 50_000, 200_000, None).expect("n"), vec!["__name__", "zone"]);
    assert_eq!(db.label_names(&[], i64::MIN, i64::MAX, None).expect("n"), vec!["__name__", "region", "zone"]);
    assert_eq!(db.label_values("__name__", &[], 0, 2000, None).expect("v"), vec!["old"]);
    let m = vec![vec![Matcher::equal("zone", "b")]];
    assert_eq!(db.label_values("__name__", &m, i64::MIN, i64::MAX, None).expect("v"), vec!["new"]);
    assert_eq!(db.label_values("__name__", &[], i64::MIN, i64::MAX, Some(1)).expect("v"), vec!["new"]);
    // A range and matchers together: the value must come from a matching series inside the range.
    assert!(db.label_values("__name__", &m, 0, 2000, None).expect("v").is_empty());
    assert_eq!(db.label_values("__name__", &m, 50_000, 200_000, None).expect("v"), vec!["new"]);
    assert_eq!(db.label_values("__name__", &[], 0, 200_000, None).expect("v"), vec!["new", "old"]);
    assert_eq!(db.label_values("__name__", &[], 0, 200_000, Some(1)).expect("v"), vec!["new"]);
    assert!(db.label_values("nope", &[], 0, 200_000, None).expect("v").is_empty());
    let st = db.tsdb_status(10);
    assert_eq!(st.num_series, 2);
    assert_eq!(st.series_count_by_metric_name, vec![("new".to_string(), 1), ("old".to_string(), 1)]);
    assert_eq!((st.min_time, st.max_time), (Some(1000), Some(100_000)));
}

#[test]
fn retention_drops_whole_chunks_and_dead_series() {
    let d = tempfile::tempdir().expect("tmp");
    let mut c = cfg(d.path());
    c.retention = Duration::from_secs(3600);
    let (db, reg) = open(c);
    let hour = 3_600_000i64;
    let live: Vec<(i64, f64)> = (0..840).map(|i| (i * 60_000, i as f64)).collect(); // 0 .. 14h
    db.append(vec![ts(&[("__name__", "dead")], &[(0, 1.0), (60_000, 2.0)]), ts(&[("__name__", "live")], &live)])
        .expect("a");
    db.flush().expect("flush");
    let chunks_before = db.tsdb_status(1).chunk_count;
    let files_before = db.stats().chunk_file_bytes;
    let r = db.apply_retention().expect("retention");
    assert!(db.stats().chunk_file_bytes < files_before, "whole window files are deleted");
    assert_eq!(r.series_dropped, 1);
    // The dead series' chunk, and the live one's compacted blocks of windows [0, 6h) and [6h, 12h).
    assert_eq!(r.chunks_dropped, 3, "{r:?}");
    assert_eq!(db.tsdb_status(1).chunk_count, chunks_before - r.chunks_dropped);
    assert!(select_all(&db, "dead", i64::MIN, i64::MAX).is_empty());
    let kept = &select_all(&db, "live", i64::MIN, i64::MAX)[0].1;
    // Whole chunks only: everything newer than the cutoff is there, a few older samples may stay.
    assert_eq!(kept.len(), live.iter().filter(|s| s.0 >= 12 * hour).count());
    assert_eq!(kept[0].0, 12 * hour);
    assert!(db.label_values("__name__", &[], i64::MIN, i64::MAX, None).expect("v") == vec!["live"]);
    // Too old for retention is rejected.
    let out = db.append(vec![ts(&[("__name__", "live")], &[(0, 1.0)])]).expect("a");
    assert_eq!(out.rejected[0].reason, RejectReason::TooOld);
    assert!(encode_metrics(&reg).contains("crowsnest_store_retention_series_dropped_total 1"));
}

#[test]
fn metrics_are_registered() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, reg) = open(cfg(d.path()));
    db.append(vec![ts(&[("__name__", "x")], &[(1, 1.0)])]).expect("a");
    assert!(db.disk_bytes() > 0);
    let text = encode_metrics(&reg);
    for name in [
        "crowsnest_store_samples_ingested_total 1",
        "crowsnest_store_head_series 1",
        "crowsnest_store_chunks ",
        "crowsnest_store_wal_fsync_duration_seconds_bucket",
        "crowsnest_store_disk_bytes ",
        "crowsnest_store_disk_free_bytes ",
        "crowsnest_store_disk_total_bytes ",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let (free, total) = (gauge("crowsnest_store_disk_free_bytes"), gauge("crowsnest_store_disk_total_bytes"));
    assert!(total > 0 && free <= total, "free {free} total {total}");
}

#[test]
fn torn_wal_tail_is_tolerated_on_reopen() {
    let d = tempfile::tempdir().expect("tmp");
    {
        let (db, _) = open(cfg(d.path()));
        db.append(vec![ts(&[("__name__", "w")], &[(1, 1.0)])]).expect("a");
        db.append(vec![ts(&[("__name__", "w")], &[(2, 2.0)])]).expect("a");
    }
    // Simulate a crash in the middle of the last write: cut the newest non-empty segment short.
    let wal_dir = d.path().join("wal");
    let segs = wal::list_segments(&wal_dir).expect("segs");
    let last = segs
        .iter()
        .rev()
        .map(|n| wal_dir.join(format!("{n:08}")))
        .find(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .expect("non-empty segment");
    let len = std::fs::metadata(&last).expect("m").len();
    std::fs::OpenOptions::new().write(true).open(&last).expect("o").set_len(len - 2).expect("truncate");
    let (db, _) = open(cfg(d.path()));
    assert_eq!(select_all(&db, "w", 0, 10)[0].1, bits(&[(1, 1.0)]));
    // Writing continues in a fresh segment, and a second reopen still works.
    db.append(vec![ts(&[("__name__", "w")], &[(3, 3.0)])]).expect("a");
    drop(db);
    let (db, _) = open(cfg(d.path()));
    assert_eq!(select_all(&db, "w", 0, 10)[0].1, bits(&[(1, 1.0), (3, 3.0)]));
}

const CRASH_ENV: &str = "CROWSNEST_STORE_CRASH_CHILD_DIR";

/// Child half of `acknowledged_batches_survive_abort`: appends batches, reports each
/// acknowledged one on stdout, then aborts (no destructors, no flush: like `kill -9`).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_ENV) else { return };
    let (db, _) = open(cfg(std::path::Path::new(&dir)));
    for b in 0..50i64 {
        let samples: Vec<(i64, f64)> = (0..100).map(|i| (b * 100 + i, (b * 100 + i) as f64)).collect();
        db.append(vec![ts(&[("__name__", "k"), ("s", &(b % 3).to_string())], &samples)]).expect("append");
        println!("ACK {b}");
        if b == 20 {
            db.checkpoint().expect("checkpoint");
        }
    }
    std::process::abort();
}

#[test]
fn acknowledged_batches_survive_abort() {
    let d = tempfile::tempdir().expect("tmp");
    let exe = std::env::current_exe().expect("exe");
    let out = std::process::Command::new(exe)
        .args(["--exact", "db::tests::crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_ENV, d.path())
        .output()
        .expect("run child");
    assert!(!out.status.success(), "child must have aborted");
    let acked = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("ACK ")).count() as i64;
    assert_eq!(acked, 50, "stdout: {}", String::from_utf8_lossy(&out.stdout));
    let (db, _) = open(cfg(d.path()));
    let got: usize = select_all(&db, "k", i64::MIN, i64::MAX).iter().map(|s| s.1.len()).sum();
    assert_eq!(got as i64, acked * 100);
}

#[test]
fn corrupt_chunk_is_detected_on_read_and_by_fsck() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, reg) = open(cfg(d.path()));
    let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64 * 1.5)).collect();
    db.append(vec![ts(&[("__name__", "x")], &samples)]).expect("a");
    db.flush().expect("flush");
    assert!(db.fsck().expect("fsck").is_clean());
    let mut first: Option<(u64, Vec<u8>)> = None;
    db.engine
        .disk
        .for_each_chunk(|sref, b| {
            if first.is_none() {
                first = Some((sref, b.expect("payload")));
            }
        })
        .expect("chunks");
    let (sref, v) = first.expect("a chunk");
    let meta = chunk::meta(&v).expect("valid before");
    let mut bad = v.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x10;
    db.engine.disk.put_chunk(sref, meta.max_t, &bad).expect("put");
    // The corrupt chunk is skipped (logged and counted), never served and never an error.
    let results: Vec<_> = db.select(&[Matcher::equal("__name__", "x")], 0, i64::MAX).expect("select").collect();
    assert!(results.iter().all(|r| r.is_ok()));
    let served: usize = results.iter().flatten().map(|s| s.samples.len()).sum();
    assert_eq!(served, 300, "the intact block is served, the corrupt copy beside it is not");
    assert_eq!(db.fsck().expect("fsck").corrupt_chunks, 1);
    assert!(encode_metrics(&reg).contains("crowsnest_store_corrupt_chunks_total 1"));
}

#[test]
fn compaction_merges_windows_without_changing_query_results() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, reg) = open(cfg(d.path()));
    let hour = 3_600_000i64;
    // 20 h at 30 s (several windows, many 120-sample chunks), with out-of-order chunks mixed in.
    let samples: Vec<(i64, f64)> = (0..2400).filter(|i| i % 7 != 3).map(|i| (i * 30_000, (i / 10) as f64)).collect();
    db.append(vec![ts(&[("__name__", "q")], &samples)]).expect("a");
    let late: Vec<(i64, f64)> =
        (0..2400).filter(|i| i % 7 == 3 && i * 30_000 > 19 * hour).map(|i| (i * 30_000, (i / 10) as f64)).collect();
    db.append(vec![ts(&[("__name__", "q")], &late)]).expect("late");
    db.checkpoint().expect("checkpoint");
    let before = select_all(&db, "q", i64::MIN, i64::MAX);
    let window = select_all(&db, "q", 5 * hour, 7 * hour);
    let chunks_before = db.stats().chunks;
    let r = db.compact().expect("compact");
    assert!(r.chunks_merged > r.blocks_written && r.blocks_written >= 2, "{r:?}");
    assert_eq!(db.stats().chunks, chunks_before - r.chunks_merged + r.blocks_written);
    assert_eq!(select_all(&db, "q", i64::MIN, i64::MAX), before);
    assert_eq!(select_all(&db, "q", 5 * hour, 7 * hour), window);
    // A second pass finds nothing new; flush compacts the rest; everything survives a reopen.
    assert_eq!(db.compact().expect("again").chunks_merged, 0);
    db.flush().expect("flush");
    assert!(encode_metrics(&reg).contains("crowsnest_store_compacted_chunks_total"));
    drop(db);
    let (db, _) = open(cfg(d.path()));
    assert_eq!(select_all(&db, "q", i64::MIN, i64::MAX), before);
    assert!(db.fsck().expect("fsck").is_clean());
}

#[test]
fn concurrent_appends_checkpoints_compactions_and_queries_agree() {
    let d = tempfile::tempdir().expect("tmp");
    let (db, _) = open(cfg(d.path()));
    let db = std::sync::Arc::new(db);
    let hour = 3_600_000i64;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = std::sync::Arc::clone(&db);
            std::thread::spawn(move || {
                for step in 0..300i64 {
                    let batch: Vec<TimeSeries> = (0..20)
                        .map(|s| {
                            ts(
                                &[("__name__", "cc"), ("w", &w.to_string()), ("s", &s.to_string())],
                                &[(step * 60_000, (step * s) as f64)],
                            )
                        })
                        .collect();
                    let out = db.append(batch).expect("append");
                    assert_eq!(out.accepted, 20);
                }
            })
        })
        .collect();
    let maint = {
        let db = std::sync::Arc::clone(&db);
        std::thread::spawn(move || {
            for i in 0..20 {
                db.checkpoint().expect("checkpoint");
                if i % 4 == 0 {
                    db.compact().expect("compact");
                }
                let n: usize = db
                    .select(&[Matcher::equal("__name__", "cc")], 0, 6 * hour)
                    .expect("select")
                    .map(|s| s.expect("series").samples.len())
                    .sum();
                assert!(n <= 4 * 20 * 300);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for t in writers {
        t.join().expect("writer");
    }
    maint.join().expect("maintenance");
    let check = |db: &Db| {
        let got = select_all(db, "cc", i64::MIN, i64::MAX);
        assert_eq!(got.len(), 80);
        for (l, s) in &got {
            let k: i64 = l.get("s").and_then(|v| v.parse().ok()).expect("s");
            assert_eq!(s.len(), 300, "{l}");
            assert!(
                s.iter()
                    .enumerate()
                    .all(|(i, (t, v))| *t == i as i64 * 60_000 && f64::from_bits(*v) == (i as i64 * k) as f64)
            );
        }
    };
    check(&db);
    db.flush().expect("flush");
    check(&db);
    drop(db);
    let (db, _) = open(cfg(d.path()));
    check(&db);
    assert!(db.fsck().expect("fsck").is_clean());
}

/// `Db::append_request` (labels borrowed from the decoded protobuf) and `Db::append` (owned
/// `TimeSeries`) must be the same append: same outcome, rejections and messages included, and the
/// same stored data, also for a known series refused after its limits were lowered by a reload.
#[test]
fn borrowed_and_owned_appends_agree() {
    use crowsnest_wire::remote::WriteRequest;
    use crowsnest_wire::remote::borrowed::WriteRequestRef;
    use prost::Message;

    let raw_series = |pairs: &[(&str, &str)], samples: &[(i64, f64)]| TimeSeries {
        labels: pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        samples: samples.iter().map(|(t, v)| Sample::new(*t, *v)).collect(),
    };
    let long = "v".repeat(300);
    let batches: Vec<Vec<TimeSeries>> = vec![
        vec![
            ts(&[("__name__", "m"), ("a", "1")], &[(10_000_000, 1.0), (10_015_000, 2.0)]),
            ts(&[("__name__", "m"), ("a", "2"), ("z", &long)], &[(10_000_000, 1.0)]),
            raw_series(&[("z", "1"), ("__name__", "m")], &[(10_000_000, 1.0)]),
            raw_series(&[("__name__", "m"), ("1bad", "x")], &[(10_000_000, 1.0)]),
            raw_series(&[("__name__", "m"), ("a", "")], &[(10_000_000, 1.0)]),
            raw_series(&[("__name__", "m"), ("a", "1"), ("a", "2")], &[(10_000_000, 1.0)]),
            raw_series(&[], &[(10_000_000, 1.0)]),
            ts(&[("__name__", "empty")], &[]),
        ],
        vec![
            // Retry (duplicates), a conflicting value, out of order beyond the window, new data.
            ts(&[("__name__", "m"), ("a", "1")], &[(10_000_000, 1.0), (10_015_000, 3.0), (10_030_000, 4.0)]),
            ts(&[("__name__", "m"), ("a", "1")], &[(1_000, 4.0)]),
            ts(&[("__name__", "m"), ("a", "2"), ("z", &long)], &[(10_030_000, 1.0)]),
        ],
    ];
    let d1 = tempfile::tempdir().expect("tmp");
    let d2 = tempfile::tempdir().expect("tmp");
    let (owned, _) = open(cfg(d1.path()));
    let (borrowed, _) = open(cfg(d2.path()));
    let mut lowered = cfg(d1.path());
    lowered.limits.max_label_value_length = 100;
    lowered.limits.max_label_names_per_series = 2;
    for (i, batch) in batches.into_iter().enumerate() {
        if i == 1 {
            owned.reload(lowered.clone()).expect("reload");
            let mut c = lowered.clone();
            c.data_dir = d2.path().to_path_buf();
            borrowed.reload(c).expect("reload");
        }
        let raw = WriteRequest { timeseries: batch.clone(), metadata: vec![] }.encode_to_vec();
        let req = WriteRequestRef::decode(&raw).expect("decode");
        let a = owned.append(batch).expect("owned");
        let b = borrowed.append_request(&req).expect("borrowed");
        assert_eq!(a, b, "batch {i}");
        assert!(!a.rejected.is_empty(), "batch {i} exercises rejections");
    }
    assert_eq!(select_all(&owned, "m", 0, i64::MAX), select_all(&borrowed, "m", 0, i64::MAX));
    assert_eq!(select_all(&owned, "m", 0, i64::MAX).len(), 2);
}
