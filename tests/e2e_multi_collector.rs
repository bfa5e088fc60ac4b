//! Several collectors at once writing into one store (issue 6, "End-to-end tests"): three
//! `crowsnest collector` processes, one per simulated host, each with its own `instance`,
//! `location`, listener and disk-queue directory, all remote_writing to one `crowsnest store`.
//! Each probes a local health endpoint every 500 ms (static targets; Docker is off, so the test
//! needs no engine and the proof does not depend on dockerd's speed). Checked:
//! - every host's series are in the store under its own `instance` and `location`;
//! - a collector killed with SIGKILL and restarted on the same queue directory carries on;
//! - the store is killed with SIGKILL for several seconds while the collectors keep probing
//!   (they queue on disk), and one collector is SIGKILLed and restarted *during* that outage;
//!   after the store comes back, every queue drains to zero, nothing is counted as dropped,
//!   the probe series have no gap over the outage: for the two untouched hosts the raw
//!   sample timestamps are spaced by the probe interval across the whole window (so
//!   `count_over_time` equals the number of probe rounds), and the restarted host's samples
//!   queued before its SIGKILL all arrived — its only gap is the time it was dead; and the
//!   never-restarted host's own accounting (`crowsnest_collector_collections_total{kind="probe"}`)
//!   equals the number of its samples in the store.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

const HOSTS: [&str; 3] = ["a", "b", "c"];
const PROBE_MS: i64 = 500;
/// Largest spacing accepted between two consecutive probe samples of one collector: the ticker
/// delays missed ticks on a loaded machine, so allow some slack, but far below the outage.
const MAX_GAP_MS: i64 = 2_000;

/// A tiny HTTP server answering every request with a Spring-style `{"status":"UP"}`.
struct HealthServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthServer {
    fn start() -> HealthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind health server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 64 * 1024 {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        let body = r#"{"status":"UP"}"#;
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HealthServer { addr, stop, thread: Some(thread) }
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Host {
    name: &'static str,
    config: String,
    listen: String,
    proc: Option<Proc>,
}

impl Host {
    fn instance(&self) -> String {
        format!("e2e-host-{}", self.name)
    }

    fn start(&mut self, logs: &Path, generation: u32) {
        let name = format!("collector-{}-{generation}", self.name);
        let p = Proc::crowsnest(&name, &["collector", "--config", &self.config, "--listen", &self.listen], logs);
        assert!(
            wait_http_ok(&format!("http://{}/healthz", self.listen), Duration::from_secs(60)),
            "{name} did not start:\n{}",
            p.output()
        );
        self.proc = Some(p);
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = http_get(&format!("http://{}/metrics", self.listen)).ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
    }

    fn metrics_text(&self) -> String {
        http_get(&format!("http://{}/metrics", self.listen)).map(|(_, t)| t).unwrap_or_default()
    }
}

fn collector_yml(host: &str, store: &str, queue: &Path, health: &str) -> String {
    format!(
        r#"collector:
  instance: e2e-host-{host}
  location: site-{host}
  interval: 1s
  remote_write:
    url: 'http://{store}/api/v1/write'
    min_backoff: 100ms
    max_backoff: 1s
  queue:
    dir: '{queue}'
  docker:
    enabled: false
  discovery:
    enabled: false
  targets:
    - job: e2e-multi
      instance: e2e-host-{host}
      health_url: 'http://{health}/health'
      interval: 500ms
"#,
        queue = queue.display()
    )
}

fn start_store(data: &Path, logs: &Path, addr: &str, generation: u32) -> Proc {
    let p = Proc::crowsnest(
        &format!("store-{generation}"),
        &["store", "--listen", addr, "--data-dir", data.to_str().expect("utf-8")],
        logs,
    );
    assert!(
        wait_http_ok(&format!("http://{addr}/ready"), Duration::from_secs(60)),
        "store did not become ready:\n{}",
        p.output()
    );
    p
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Raw sample timestamps (ms) of one host's `probe_success` over the last `window_s` seconds;
/// every value must be 1 (the health endpoint never fails).
fn probe_timestamps(base: &str, instance: &str, window_s: u64) -> Vec<i64> {
    let q = format!("probe_success{{job=\"e2e-multi\",instance=\"{instance}\"}}[{window_s}s]");
    let v = query(base, &q);
    assert_eq!(v["status"], "success", "{v}");
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(result.len() <= 1, "one series per host expected: {result:?}");
    let mut out = Vec::new();
    for s in &result {
        assert_eq!(s["metric"]["location"], instance.replace("e2e-host-", "site-"), "{s}");
        for p in s["values"].as_array().into_iter().flatten() {
            let t = p[0].as_f64().expect("timestamp");
            assert_eq!(p[1], "1", "probe failed at {t}: {s}");
            out.push((t * 1000.0).round() as i64);
        }
    }
    out
}

/// Gaps larger than `MAX_GAP_MS` between consecutive timestamps within `[from, to]`.
fn gaps(ts: &[i64], from: i64, to: i64) -> Vec<(i64, i64)> {
    assert!(to - from > MAX_GAP_MS, "window {from}..{to} too short to check");
    let inside: Vec<i64> = ts.iter().copied().filter(|t| *t >= from && *t <= to).collect();
    let mut out: Vec<(i64, i64)> =
        inside.windows(2).filter(|w| w[1] - w[0] > MAX_GAP_MS).map(|w| (w[0], w[1])).collect();
    if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
        if first - from > MAX_GAP_MS {
            out.insert(0, (from, *first));
        }
        if to - last > MAX_GAP_MS {
            out.push((*last, to));
        }
    } else {
        out.push((from, to));
    }
    out
}

#[test]
fn collectors_per_host_into_one_store_lose_nothing_over_kills_and_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path();
    let health = HealthServer::start();
    let store_addr = free_addr().to_string();
    let base = format!("http://{store_addr}");
    let store_data = dir.path().join("store");
    let mut store = start_store(&store_data, logs, &store_addr, 1);

    let mut hosts: Vec<Host> = HOSTS
        .iter()
        .map(|h| {
            let config = dir.path().join(format!("collector-{h}.yml"));
            let queue = dir.path().join(format!("queue-{h}"));
            std::fs::write(&config, collector_yml(h, &store_addr, &queue, &health.addr.to_string())).expect("config");
            Host { name: h, config: config.display().to_string(), listen: free_addr().to_string(), proc: None }
        })
        .collect();
    for h in hosts.iter_mut() {
        h.start(logs, 1);
    }
    let t_begin = now_ms();

    // Every host's series, under its own instance and location.
    for h in &hosts {
        let inst = h.instance();
        assert!(
            eventually(Duration::from_secs(30), || (probe_timestamps(&base, &inst, 60).len() >= 3).then_some(()))
                .is_some(),
            "no probe series from {inst}"
        );
    }
    let per_instance = query_vector(&base, "count by (instance, location) (probe_success{job=\"e2e-multi\"})");
    assert_eq!(per_instance.len(), HOSTS.len(), "{per_instance:?}");

    // SIGKILL collector b with the store up, restart it on the same queue directory.
    std::thread::sleep(Duration::from_secs(4));
    let t_kill_b = now_ms();
    hosts[1].proc.as_mut().expect("running").kill9();
    std::thread::sleep(Duration::from_secs(1));
    hosts[1].start(logs, 2);
    let inst_b = hosts[1].instance();
    assert!(
        eventually(Duration::from_secs(30), || {
            probe_timestamps(&base, &inst_b, 60).iter().any(|t| *t > t_kill_b + 1_000).then_some(())
        })
        .is_some(),
        "restarted collector b does not deliver"
    );
    let t_b_back = now_ms();

    // Store outage (SIGKILL), with collector c SIGKILLed and restarted in the middle of it.
    std::thread::sleep(Duration::from_secs(2));
    let t_down = now_ms();
    store.kill9();
    std::thread::sleep(Duration::from_secs(3));
    let queued: Vec<f64> = hosts.iter().map(|h| h.metric("crowsnest_collector_queue_samples").unwrap_or(0.0)).collect();
    assert!(queued.iter().all(|q| *q > 0.0), "samples wait in every queue during the outage: {queued:?}");
    let t_kill_c = now_ms();
    hosts[2].proc.as_mut().expect("running").kill9();
    std::thread::sleep(Duration::from_secs(1));
    hosts[2].start(logs, 2);
    let t_c_back = now_ms();
    std::thread::sleep(Duration::from_secs(3));
    let t_up = now_ms();
    let _store2 = start_store(&store_data, logs, &store_addr, 2);
    drop(store);

    for h in &hosts {
        assert!(
            eventually(Duration::from_secs(60), || (h.metric("crowsnest_collector_queue_samples") == Some(0.0))
                .then_some(()))
            .is_some(),
            "queue of {} did not drain:\n{}",
            h.instance(),
            h.metrics_text()
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let t_end = now_ms();
    let window_s = ((t_end - t_begin) / 1000 + 10) as u64;

    for h in &hosts {
        let text = h.metrics_text();
        let dropped: f64 = text
            .lines()
            .filter(|l| l.starts_with("crowsnest_collector_samples_dropped_total{"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum();
        assert_eq!(dropped, 0.0, "{} dropped samples:\n{text}", h.instance());
    }

    let check_from = t_down - 3_000;
    let check_to = t_end - 2_000;
    let a = probe_timestamps(&base, &hosts[0].instance(), window_s);
    assert_eq!(gaps(&a, t_begin + 1_000, check_to), vec![], "host a lost samples (outage {t_down}..{t_up})");
    let b = probe_timestamps(&base, &hosts[1].instance(), window_s);
    assert_eq!(gaps(&b, t_b_back, check_to), vec![], "host b lost samples after its restart (outage {t_down}..{t_up})");
    let b_before_kill = gaps(&b, t_begin + 1_000, t_kill_b - 1_000);
    assert_eq!(b_before_kill, vec![], "host b lost samples acknowledged before its SIGKILL");
    let c = probe_timestamps(&base, &hosts[2].instance(), window_s);
    // c's samples queued on disk during the outage before its SIGKILL survived the kill.
    assert_eq!(gaps(&c, check_from, t_kill_c - 1_000), vec![], "host c lost queued samples over SIGKILL");
    assert_eq!(gaps(&c, t_c_back, check_to), vec![], "host c lost samples after its restart");

    // count_over_time over the outage, evaluated by the store, equals the number of probe
    // rounds (within ticker slack) and the raw samples counted here.
    let outage_s = ((t_up - t_down) / 1000).max(1);
    let at_ms = t_down + outage_s * 1000;
    let expected = outage_s * 1000 / PROBE_MS;
    let in_outage = a.iter().filter(|t| **t > at_ms - outage_s * 1000 && **t <= at_ms).count() as i64;
    let q = format!("count_over_time(probe_success{{job=\"e2e-multi\",instance=\"e2e-host-a\"}}[{outage_s}s])");
    let time = format!("{:.3}", at_ms as f64 / 1000.0);
    let (_, body) = http_post_form(&format!("{base}/api/v1/query"), &[("query", &q), ("time", &time)]).expect("query");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let counted: i64 = v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
    assert_eq!(counted, in_outage, "count_over_time disagrees with the raw samples: {v}");
    assert!(
        in_outage >= expected * 3 / 4 && in_outage <= expected + 1,
        "host a: {in_outage} samples in {outage_s}s of outage, expected about {expected}"
    );
    // The collector's own accounting: every probe host a ever made (it was never restarted) is
    // a sample in the store. Read the counter first, then the clock: every probe counted started
    // before `t_count`, and at most one more (in flight) started before it too.
    let probes = |h: &Host| {
        ["success", "failure"]
            .iter()
            .map(|r| {
                h.metric(&format!("crowsnest_collector_collections_total{{kind=\"probe\",result=\"{r}\"}}"))
                    .unwrap_or(0.0)
            })
            .sum::<f64>() as usize
    };
    let made = probes(&hosts[0]);
    let t_count = now_ms();
    assert!(
        eventually(Duration::from_secs(30), || {
            let n =
                probe_timestamps(&base, &hosts[0].instance(), window_s + 5).iter().filter(|t| **t <= t_count).count();
            (n >= made).then_some(())
        })
        .is_some(),
        "host a made {made} probes but not all are in the store"
    );
    let stored = probe_timestamps(&base, &hosts[0].instance(), window_s + 10).iter().filter(|t| **t <= t_count).count();
    assert!(stored <= made + 1, "host a: {stored} samples stored for {made} probes (duplicates?)");
    eprintln!(
        "e2e_multi_collector: outage {:.1}s; samples in the outage window: a={in_outage} (expected ~{expected}); totals a={} b={} c={}; host a made {made} probes, store holds {stored}",
        (t_up - t_down) as f64 / 1000.0,
        a.len(),
        b.len(),
        c.len()
    );
}
