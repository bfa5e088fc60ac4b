//! Shipper tests against a local axum remote_write receiver that answers from a script.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use crowsnest_wire::{Label, WriteRequest};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::queue::DiskQueue;

#[derive(Default)]
struct Receiver {
    /// Status codes to answer with, front first; then 200.
    script: Vec<(u16, Option<&'static str>)>,
    got: Vec<WriteRequest>,
    attempts: Vec<Instant>,
}

async fn receive(State(r): State<Arc<Mutex<Receiver>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap) {
    assert_eq!(headers.get("content-encoding").unwrap(), "snappy");
    assert_eq!(headers.get("x-prometheus-remote-write-version").unwrap(), "0.1.0");
    let mut r = r.lock();
    r.attempts.push(Instant::now());
    let mut h = HeaderMap::new();
    if !r.script.is_empty() {
        let (code, after) = r.script.remove(0);
        if let Some(a) = after {
            h.insert("retry-after", a.parse().unwrap());
        }
        return (StatusCode::from_u16(code).unwrap(), h);
    }
    r.got.push(WriteRequest::decode_snappy(&body, 1 << 24).unwrap());
    (StatusCode::NO_CONTENT, h)
}

async fn start_receiver(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver { script, ..Default::default() }));
    let app = axum::Router::new().route("/api/v1/write", post(receive)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/api/v1/write"), state)
}

fn batch(n: usize, tag: &str) -> Batch {
    let mut b = Batch::new();
    for i in 0..n {
        b.push("m", &[Label::new("tag", tag), Label::new("i", i.to_string())], 1000 + i as i64, i as f64);
    }
    b
}

fn setup(url: &str, dir: &std::path::Path) -> (Outbox, RemoteWriteConfig, RemoteWriteClient, CollectorMetrics) {
    let cfg = RemoteWriteConfig {
        url: url.into(),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_samples_per_send: 10,
        ..Default::default()
    };
    let reg = crowsnest_wire::ops::new_registry();
    let metrics = CollectorMetrics::register(&reg);
    let (q, _) = DiskQueue::open(dir, 1 << 20, 1 << 14).unwrap();
    let outbox = Outbox::new(q, metrics.clone(), cfg.max_samples_per_send);
    let client = RemoteWriteClient::new(&cfg).unwrap();
    (outbox, cfg, client, metrics)
}

async fn wait_for(cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn retries_5xx_and_429_honouring_retry_after_then_delivers_in_order() {
    let (url, rx) = start_receiver(vec![(500, None), (503, None), (429, Some("1"))]).await;
    let dir = tempfile::tempdir().unwrap();
    let (outbox, cfg, client, metrics) = setup(&url, dir.path());
    outbox.push(batch(25, "a")).await; // 3 requests of 10, 10, 5 samples
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_shipper(outbox.clone(), cfg, client, stop.clone()));
    wait_for(|| rx.lock().got.len() == 3).await;
    stop.cancel();
    task.await.unwrap();
    let r = rx.lock();
    let n: Vec<usize> = r.got.iter().map(|w| w.sample_count()).collect();
    assert_eq!(n, vec![10, 10, 5]);
    // The attempt after the 429 waited for Retry-After (1s), not the 200ms backoff cap.
    let gap = r.attempts[3] - r.attempts[2];
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert_eq!(metrics.samples_sent.get(), 25);
    assert_eq!(metrics.samples_failed.get(), 30);
    assert_eq!(outbox.pending_samples(), 0);
}

#[tokio::test]
async fn other_4xx_is_dropped_and_counted_not_retried() {
    let (url, rx) = start_receiver(vec![(400, None)]).await;
    let dir = tempfile::tempdir().unwrap();
    let (outbox, cfg, client, metrics) = setup(&url, dir.path());
    outbox.push(batch(4, "bad")).await;
    outbox.push(batch(3, "good")).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_shipper(outbox.clone(), cfg, client, stop.clone()));
    wait_for(|| rx.lock().got.len() == 1).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(rx.lock().attempts.len(), 2);
    assert_eq!(metrics.samples_dropped.get_or_create(&vec![("reason", "rejected")]).get(), 4);
    assert_eq!(metrics.samples_sent.get(), 3);
}

#[tokio::test]
async fn outage_then_restart_delivers_everything() {
    // No receiver at all: connection refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let (outbox, cfg, client, _) = setup(&format!("http://{dead}/api/v1/write"), dir.path());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_shipper(outbox.clone(), cfg, client, stop.clone()));
        for i in 0..5 {
            outbox.push(batch(7, &format!("c{i}"))).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(outbox.pending_samples(), 35);
    }
    // A "restarted collector" with the same queue dir and a receiver that is back.
    let (url, rx) = start_receiver(vec![]).await;
    let (outbox, cfg, client, _) = setup(&url, dir.path());
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_shipper(outbox.clone(), cfg, client, stop.clone()));
    wait_for(|| rx.lock().got.iter().map(|w| w.sample_count()).sum::<usize>() == 35).await;
    stop.cancel();
    task.await.unwrap();
    let tags: Vec<String> = rx
        .lock()
        .got
        .iter()
        .map(|w| w.timeseries[0].labels.iter().find(|l| l.name == "tag").unwrap().value.clone())
        .collect();
    assert_eq!(tags, vec!["c0", "c1", "c2", "c3", "c4"]);
}
