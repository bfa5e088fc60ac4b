//! End-to-end tests of `crowsnest store` as a real process: remote_write ingest → Prometheus API
//! query round trip, persistence across a graceful restart, and durability across SIGKILL (every
//! batch that got a 2xx is fully present after restart: the 2xx-means-durable guarantee).

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crowsnest_wire::{Label, Sample, TimeSeries, WriteRequest};
use serde_json::{Value, json};
use support::*;

struct Store {
    proc: Proc,
    base: String,
}

fn start_store(name: &str, data: &Path, logs: &Path, addr: std::net::SocketAddr) -> Store {
    start_store_with(name, data, logs, addr, None)
}

/// [`start_store`] with a config file.
fn start_store_with(name: &str, data: &Path, logs: &Path, addr: std::net::SocketAddr, config: Option<&Path>) -> Store {
    let addr_s = addr.to_string();
    let mut args = vec!["store", "--listen", &addr_s, "--data-dir", data.to_str().expect("utf-8")];
    if let Some(c) = config {
        args.extend(["--config", c.to_str().expect("utf-8")]);
    }
    let proc = Proc::crowsnest(name, &args, logs);
    let base = format!("http://{addr}");
    assert!(
        wait_http_ok(&format!("{base}/ready"), Duration::from_secs(60)),
        "store did not become ready:\n{}",
        proc.output()
    );
    Store { proc, base }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Sends one remote_write request; returns the HTTP status.
fn remote_write(base: &str, series: Vec<TimeSeries>) -> std::io::Result<u16> {
    let body = WriteRequest { timeseries: series, metadata: vec![] }.encode_snappy();
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    http_request("POST", &format!("{base}/api/v1/write"), Some(&body), &headers).map(|(s, _)| s)
}

fn series(labels: &[(&str, &str)], samples: impl IntoIterator<Item = (i64, f64)>) -> TimeSeries {
    let mut labels: Vec<Label> = labels.iter().map(|(n, v)| Label::new(*n, *v)).collect();
    labels.sort();
    TimeSeries { labels, samples: samples.into_iter().map(|(t, v)| Sample::new(t, v)).collect() }
}

fn get_json(url: &str) -> Value {
    let (status, body) = http_get(url).expect("GET");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: bad JSON ({status}) {e}: {body}"))
}

fn range(base: &str, q: &str, start_ms: i64, end_ms: i64, step_s: u32) -> Value {
    let url = format!(
        "{base}/api/v1/query_range?query={}&start={}&end={}&step={step_s}",
        urlencode(q),
        start_ms as f64 / 1000.0,
        end_ms as f64 / 1000.0
    );
    let v = get_json(&url);
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"].clone()
}

#[test]
fn ingest_query_round_trip_and_restart_persistence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let addr = free_addr();
    let mut store = start_store("store-1", &data, dir.path(), addr);
    let t0 = (now_ms() - 600_000) / 1000 * 1000;
    let batch = vec![
        series(
            &[("__name__", "rt_requests_total"), ("job", "api"), ("instance", "a")],
            (0..40).map(|i| (t0 + i * 15_000, i as f64 * 2.0)),
        ),
        series(
            &[("__name__", "rt_requests_total"), ("job", "api"), ("instance", "b")],
            (0..40).map(|i| (t0 + i * 15_000, if i == 7 { f64::NAN } else { 1e21 })),
        ),
    ];
    assert_eq!(remote_write(&store.base, batch).expect("write"), 204);

    let check = |base: &str| {
        let m = range(base, "rt_requests_total{instance=\"a\"}", t0, t0 + 39 * 15_000, 15);
        let values = m[0]["values"].as_array().unwrap_or_else(|| panic!("no values: {m}"));
        assert_eq!(values.len(), 40, "{m}");
        assert_eq!(values[3][1], "6");
        assert_eq!(values[3][0].as_f64().expect("ts"), (t0 + 45_000) as f64 / 1000.0);
        let b = range(base, "rt_requests_total{instance=\"b\"}", t0 + 7 * 15_000, t0 + 7 * 15_000, 15);
        assert_eq!(b[0]["values"][0][1], "NaN", "{b}");
        let v = get_json(&format!("{base}/api/v1/query?query=rt_requests_total&time={}", (t0 + 39 * 15_000) / 1000));
        assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(2), "{v}");
        let s = get_json(&format!("{base}/api/v1/series?match[]={}", urlencode("{job=\"api\"}")));
        assert_eq!(s["data"].as_array().map(Vec::len), Some(2), "{s}");
        let l = get_json(&format!("{base}/api/v1/label/instance/values"));
        assert_eq!(l["data"], json!(["a", "b"]));
    };
    check(&store.base);
    store.proc.terminate();
    let store = start_store("store-2", &data, dir.path(), free_addr());
    check(&store.base);
}

#[test]
fn kill9_keeps_every_acknowledged_batch() {
    kill9_keeps_every_acknowledged_batch_with(None);
}

/// With `wal_fsync: periodic` a write is acknowledged once it is in the WAL file (the page
/// cache), before any fsync: a killed process cannot lose it either.
#[test]
fn kill9_keeps_every_acknowledged_batch_with_periodic_wal_fsync() {
    kill9_keeps_every_acknowledged_batch_with(Some(
        "store:\n  engine:\n    wal_fsync: periodic\n    wal_fsync_interval: 10s\n",
    ));
}

fn kill9_keeps_every_acknowledged_batch_with(config: Option<&str>) {
    const SERIES_PER_BATCH: usize = 4;
    const SAMPLES: i64 = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let cfg_path = dir.path().join("crowsnest.yml");
    let cfg = config.map(|c| {
        std::fs::write(&cfg_path, c).expect("config");
        cfg_path.as_path()
    });
    let mut store = start_store_with("store-kill", &data, dir.path(), free_addr(), cfg);
    let t0 = (now_ms() - 1_800_000) / 1000 * 1000;
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let writer = {
        let base = store.base.clone();
        let acked = acked.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            for b in 0..5_000usize {
                if Instant::now() > deadline {
                    break;
                }
                let batch_label = b.to_string();
                let batch: Vec<TimeSeries> = (0..SERIES_PER_BATCH)
                    .map(|s| {
                        let s_label = s.to_string();
                        series(
                            &[("__name__", "kill_test"), ("batch", &batch_label), ("s", &s_label)],
                            (0..SAMPLES).map(|i| (t0 + i * 1000, (b * 1000 + s * 100) as f64 + i as f64)),
                        )
                    })
                    .collect();
                match remote_write(&base, batch) {
                    Ok(s) if (200..300).contains(&s) => acked.lock().expect("lock").push(b),
                    // 0: the connection died mid-answer (the kill); not acknowledged.
                    Ok(0) | Err(_) => break,
                    Ok(s) => panic!("batch {b} answered {s}"),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(rand::random_range(300..1500)));
    store.proc.kill9();
    writer.join().expect("writer");
    let acked = acked.lock().expect("lock").clone();
    assert!(!acked.is_empty(), "no batch was acknowledged before the kill:\n{}", store.proc.output());
    eprintln!("killed after {} acknowledged batches", acked.len());

    let store = start_store_with("store-kill-2", &data, dir.path(), free_addr(), cfg);
    let last = t0 + (SAMPLES - 1) * 1000;
    for b in &acked {
        let result = range(&store.base, &format!("kill_test{{batch=\"{b}\"}}"), t0, last, 1);
        let result = result.as_array().expect("matrix");
        assert_eq!(result.len(), SERIES_PER_BATCH, "batch {b}: {result:?}");
        for (s, series) in result.iter().enumerate() {
            assert_eq!(series["metric"]["s"], s.to_string());
            let values = series["values"].as_array().expect("values");
            let want: Vec<Value> = (0..SAMPLES)
                .map(|i| json!([(t0 + i * 1000) / 1000, ((b * 1000 + s * 100) as i64 + i).to_string()]))
                .collect();
            assert_eq!(values, &want, "batch {b} series {s}");
        }
    }
}
