//! Fault tests of `crowsnest store` as a real process, each asserting that nothing acknowledged is
//! lost (a 2xx from `/api/v1/write` means durable):
//!
//! - repeated `kill -9` at random moments while several writers ingest concurrently; after the
//!   last restart every acknowledged sample is present with its exact value;
//! - the data disk filling up: writes answer 507 with a plain message (senders retry), reads keep
//!   working, nothing panics; once space returns writes succeed again, and after a `kill -9` and
//!   restart every acknowledged sample is present and the WAL holds no torn frame. The disk is a
//!   small tmpfs (needs root and `mount`); without them the test skips loudly, and fails in CI.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crowsnest_wire::{Label, Sample, TimeSeries, WriteRequest};
use serde_json::Value;
use support::*;

fn start_store(name: &str, data: &Path, logs: &Path, addr: std::net::SocketAddr) -> Proc {
    let proc = Proc::crowsnest(
        name,
        &["store", "--listen", &addr.to_string(), "--data-dir", data.to_str().expect("utf-8")],
        logs,
    );
    assert!(
        wait_http_ok(&format!("http://{addr}/ready"), Duration::from_secs(60)),
        "store did not become ready:\n{}",
        proc.output()
    );
    proc
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Sends one remote_write request; returns (status, body). Status 0: the connection died.
fn remote_write(base: &str, series: Vec<TimeSeries>) -> std::io::Result<(u16, String)> {
    let body = WriteRequest { timeseries: series, metadata: vec![] }.encode_snappy();
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    http_request("POST", &format!("{base}/api/v1/write"), Some(&body), &headers)
}

fn series(labels: &[(&str, &str)], samples: impl IntoIterator<Item = (i64, f64)>) -> TimeSeries {
    let mut labels: Vec<Label> = labels.iter().map(|(n, v)| Label::new(*n, *v)).collect();
    labels.sort();
    TimeSeries { labels, samples: samples.into_iter().map(|(t, v)| Sample::new(t, v)).collect() }
}

const SERIES_PER_WRITER: usize = 5;
const SAMPLES_PER_BATCH: i64 = 20;

/// Batch `b` of writer `w`: every series `s` of the writer gets `SAMPLES_PER_BATCH` samples at
/// consecutive milliseconds after `t0`, valued so that each (writer, series, batch, i) is unique.
fn batch(metric: &str, t0: i64, w: usize, b: i64) -> Vec<TimeSeries> {
    let wl = w.to_string();
    (0..SERIES_PER_WRITER)
        .map(|s| {
            let sl = s.to_string();
            series(
                &[("__name__", metric), ("w", &wl), ("s", &sl)],
                (0..SAMPLES_PER_BATCH).map(|i| sample(t0, w, s, b, i)),
            )
        })
        .collect()
}

fn sample(t0: i64, w: usize, s: usize, b: i64, i: i64) -> (i64, f64) {
    (t0 + b * SAMPLES_PER_BATCH + i, (w * 10_000_000 + s * 1_000_000) as f64 + (b * SAMPLES_PER_BATCH + i) as f64)
}

/// Every raw sample of one series in `[from, to]` (ms), via an instant query of a range selector.
fn raw_samples(base: &str, selector: &str, from: i64, to: i64) -> BTreeMap<i64, f64> {
    let window_ms = to - from + 1;
    let q = format!("{selector}[{window_ms}ms]");
    let url = format!("{base}/api/v1/query?query={}&time={}", urlencode(&q), to as f64 / 1000.0);
    let (status, body) = http_get(&url).expect("query");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("bad JSON ({status}) {e}: {body}"));
    assert_eq!(v["status"], "success", "{v}");
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(result.len() <= 1, "{selector} matched several series: {v}");
    let mut out = BTreeMap::new();
    for r in result {
        for p in r["values"].as_array().expect("matrix values") {
            let t = (p[0].as_f64().expect("ts") * 1000.0).round() as i64;
            let val: f64 = p[1].as_str().expect("value").parse().expect("number");
            out.insert(t, val);
        }
    }
    out
}

/// Asserts that every acknowledged batch of every writer is present with exact values.
fn check_acked(base: &str, metric: &str, t0: i64, acked: &[Vec<i64>]) {
    let mut checked = 0usize;
    for (w, batches) in acked.iter().enumerate() {
        let Some(&last) = batches.iter().max() else { continue };
        let to = t0 + (last + 1) * SAMPLES_PER_BATCH - 1;
        for s in 0..SERIES_PER_WRITER {
            let got = raw_samples(base, &format!("{metric}{{w=\"{w}\",s=\"{s}\"}}"), t0, to);
            for &b in batches {
                for i in 0..SAMPLES_PER_BATCH {
                    let (t, want) = sample(t0, w, s, b, i);
                    assert_eq!(got.get(&t), Some(&want), "writer {w} series {s} batch {b} sample {i} (t={t}) lost");
                    checked += 1;
                }
            }
        }
    }
    eprintln!("verified {checked} acknowledged samples");
}

#[test]
fn repeated_kill9_under_concurrent_ingest_keeps_every_acknowledged_sample() {
    const WRITERS: usize = 4;
    const CYCLES: usize = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut store = start_store("store-0", &data, dir.path(), addr);
    let t0 = (now_ms() - 3_600_000) / 1000 * 1000;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Vec<i64>>>> = Arc::new(Mutex::new(vec![Vec::new(); WRITERS]));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (base, stop, acked) = (base.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut b = 0i64;
                // A batch that was not acknowledged (store killed) is retried until it is: like a
                // remote_write sender, which keeps its queue.
                while !stop.load(Ordering::SeqCst) {
                    match remote_write(&base, batch("kill_cycle", t0, w, b)) {
                        Ok((s, _)) if (200..300).contains(&s) => {
                            acked.lock().expect("lock")[w].push(b);
                            b += 1;
                        }
                        // 0: the connection died (the kill); 5xx: e.g. not ready yet after a
                        // restart. Neither acknowledges anything: retry, as senders do.
                        Ok((0, _)) | Err(_) => std::thread::sleep(Duration::from_millis(50)),
                        Ok((s, _)) if s >= 500 => std::thread::sleep(Duration::from_millis(50)),
                        Ok((s, body)) => panic!("writer {w} batch {b} answered {s}: {body}"),
                    }
                }
            })
        })
        .collect();
    let mut counts = Vec::new();
    for cycle in 1..=CYCLES {
        std::thread::sleep(Duration::from_millis(rand::random_range(500..2500)));
        store.kill9();
        counts.push(acked.lock().expect("lock").iter().map(Vec::len).sum::<usize>());
        store = start_store(&format!("store-{cycle}"), &data, dir.path(), addr);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer panicked");
    }
    // One more kill, with the writers stopped: the check runs on a store that just recovered.
    store.kill9();
    let store = start_store("store-final", &data, dir.path(), addr);
    let acked = acked.lock().expect("lock").clone();
    eprintln!("acknowledged batches at each kill: {counts:?}; total {}", acked.iter().map(Vec::len).sum::<usize>());
    assert!(counts.windows(2).all(|c| c[1] > c[0]), "ingest did not resume after every restart: {counts:?}");
    assert!(counts[0] > 0, "nothing acknowledged before the first kill:\n{}", store.output());
    check_acked(&base, "kill_cycle", t0, &acked);
}

/// A tmpfs mounted for the test; unmounted (lazily, so a still-open file cannot block it) on drop.
struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (e.g. `"24m"`) at `path`; `None` when not possible here.
    fn mount(path: &Path, size: &str) -> Option<TmpfsMount> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| TmpfsMount { path: path.to_path_buf() })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the filesystem holding `path` with a ballast file until the write fails (ENOSPC).
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("ballast");
    let chunk = vec![0xA5u8; 64 << 10];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "filling the disk: {e}");
                break;
            }
        }
    }
    // Whatever partial page is left, take it too.
    while f.write(&[0u8; 512]).map(|n| n > 0).unwrap_or(false) {}
}

#[test]
fn disk_full_refuses_writes_keeps_reads_and_loses_nothing_acknowledged() {
    const TEST: &str = "disk_full_refuses_writes_keeps_reads_and_loses_nothing_acknowledged";
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mount) = TmpfsMount::mount(&dir.path().join("disk"), "48m") else {
        if in_ci() {
            panic!("{TEST}: mounting a tmpfs failed in CI (needs root)");
        }
        eprintln!("\n*** SKIP {TEST}: cannot mount a tmpfs here (needs root) ***\n");
        return;
    };
    let data = mount.path.join("store");
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut store = start_store("store-full", &data, dir.path(), addr);
    let t0 = (now_ms() - 3_600_000) / 1000 * 1000;
    let mut acked: Vec<i64> = Vec::new();
    let mut next = 0i64;
    for _ in 0..20 {
        let (s, body) = remote_write(&base, batch("disk_full", t0, 0, next)).expect("write");
        assert_eq!(s, 204, "{body}");
        acked.push(next);
        next += 1;
    }

    fill_disk(&mount.path.join("ballast"));
    // The WAL's last page may still hold a few frames; keep writing until the store refuses.
    let mut refusal = None;
    for _ in 0..2_000 {
        let (s, body) = remote_write(&base, batch("disk_full", t0, 0, next)).expect("write during disk full");
        if (200..300).contains(&s) {
            acked.push(next);
            next += 1;
            continue;
        }
        refusal = Some((s, body));
        break;
    }
    let (status, body) = refusal.expect("the store kept acknowledging writes on a full disk");
    assert_eq!(status, 507, "disk full must be a retryable 5xx: {body}");
    assert!(body.contains("no space left"), "unclear message: {body}");
    // The refused batch is retried later (like a sender); meanwhile more refusals, no crash.
    let pending = next;
    for _ in 0..5 {
        let (s, _) = remote_write(&base, batch("disk_full", t0, 0, pending)).expect("retry during disk full");
        assert_eq!(s, 507);
    }
    // Reads keep working.
    let got = raw_samples(&base, "disk_full{w=\"0\",s=\"0\"}", t0, t0 + next * SAMPLES_PER_BATCH);
    assert!(got.len() >= acked.len() * SAMPLES_PER_BATCH as usize, "reads during disk full: {} samples", got.len());
    let (s, _) = http_get(&format!("{base}/api/v1/labels")).expect("labels");
    assert_eq!(s, 200);
    assert!(store.child.try_wait().expect("try_wait").is_none(), "store died:\n{}", store.output());
    assert!(!store.output().contains("panicked"), "store panicked:\n{}", store.output());

    // Space returns: the refused batch and new ones are acknowledged.
    std::fs::remove_file(mount.path.join("ballast")).expect("remove ballast");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, body) = remote_write(&base, batch("disk_full", t0, 0, next)).expect("write after space returned");
        if (200..300).contains(&s) {
            break;
        }
        assert!(Instant::now() < deadline, "writes still refused after space returned: {s} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    acked.push(next);
    next += 1;
    for _ in 0..10 {
        let (s, body) = remote_write(&base, batch("disk_full", t0, 0, next)).expect("write");
        assert_eq!(s, 204, "{body}");
        acked.push(next);
        next += 1;
    }
    store.kill9();
    let store = start_store("store-full-2", &data, dir.path(), addr);
    let log = store.output();
    assert!(!log.contains("torn or corrupt"), "the WAL holds a torn frame after disk full:\n{log}");
    check_acked(&base, "disk_full", t0, &[acked]);
    drop(store);
    drop(mount);
}
