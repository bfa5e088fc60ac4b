//! The collector's remote_write client against real receivers: our own store (`crowsnest
//! store`), Prometheus (`--web.enable-remote-write-receiver`) and VictoriaMetrics. A static health
//! probe's results must become queryable through each one's `/api/v1/query`. Skips loudly when
//! Prometheus or VictoriaMetrics is missing; fails under `CI=true`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crowsnest_collector::CollectorConfig;
use crowsnest_collector::config::TargetConfig;
use crowsnest_wire::ops;
use tokio_util::sync::CancellationToken;

fn have(bin: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but {bin} is not installed");
        }
        eprintln!("SKIP: {bin} not installed; collector compatibility test against it not run");
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn query_value(base: &str, q: &str) -> Option<String> {
    let resp = reqwest::Client::new().get(format!("{base}/api/v1/query")).query(&[("query", q)]).send().await.ok()?;
    let v: serde_json::Value = resp.json().await.ok()?;
    Some(v["data"]["result"][0]["value"][1].as_str()?.to_string())
}

/// Runs the collector (probing a local health endpoint every 500ms) against `write_url` and
/// waits until `probe_success` is queryable at `query_base`.
async fn ship_and_query(write_url: String, query_base: String) {
    let health = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health_addr = health.local_addr().unwrap();
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { r#"{"status":"pass"}"# }));
    tokio::spawn(async move { axum::serve(health, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CollectorConfig { location: "compat-lab".into(), ..Default::default() };
    cfg.docker.enabled = false;
    cfg.discovery.enabled = false;
    cfg.remote_write.url = write_url;
    cfg.remote_write.min_backoff = Duration::from_millis(100);
    cfg.remote_write.max_backoff = Duration::from_millis(500);
    cfg.queue.dir = dir.path().join("queue");
    cfg.targets = vec![TargetConfig {
        job: "compat".into(),
        health_url: Some(format!("http://{health_addr}/health")),
        interval: Some(Duration::from_millis(500)),
        ..Default::default()
    }];
    let stop = CancellationToken::new();
    let task =
        tokio::spawn(crowsnest_collector::run(cfg, ops::new_registry(), ops::Readiness::new(false), stop.clone()));
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(40) {
        last = query_value(&query_base, r#"probe_success{job="compat",location="compat-lab"}"#).await;
        if last.as_deref() == Some("1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(last.as_deref(), Some("1"), "probe_success not queryable at {query_base}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_real_prometheus() {
    if !have("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n").unwrap();
    let port = free_port();
    let _p = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let base = format!("http://127.0.0.1:{port}");
    ship_and_query(format!("{base}/api/v1/write"), base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_real_victoria_metrics() {
    if !have("victoria-metrics") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _p = Proc(
        Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics"),
    );
    let base = format!("http://127.0.0.1:{port}");
    ship_and_query(format!("{base}/api/v1/write"), base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_our_store() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _p = Proc(
        Command::new(env!("CARGO_BIN_EXE_crowsnest"))
            .arg("store")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start crowsnest store"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if reqwest::get(format!("{base}/ready")).await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ship_and_query(format!("{base}/api/v1/write"), base).await;
}
