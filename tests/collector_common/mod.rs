//! Shared helpers of the collector end-to-end tests: an in-test remote_write receiver that
//! decodes every `WriteRequest` and keeps the samples, queries over what it received, and a
//! bounded wait.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use crowsnest_wire::{TimeSeries, WriteRequest, is_stale_nan};

/// Everything a receiver got.
#[derive(Default)]
pub struct Received {
    pub series: Vec<TimeSeries>,
    pub requests: usize,
}

pub type Shared = Arc<Mutex<Received>>;

async fn write(State(r): State<Shared>, body: Bytes) -> StatusCode {
    match WriteRequest::decode_snappy(&body, 64 << 20) {
        Ok(w) => {
            let mut g = r.lock().unwrap();
            g.requests += 1;
            g.series.extend(w.timeseries);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// A running receiver; dropping `stop` (or calling it) shuts the server down.
pub struct Receiver {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub data: Shared,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts on `addr` (use port 0 for any).
    pub async fn start(addr: &str, data: Shared) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/api/v1/write", axum::routing::post(write)).with_state(data.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await }).await;
        });
        Receiver { url: format!("http://{addr}/api/v1/write"), addr, data, stop, task }
    }

    /// Stops serving and frees the port.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn matches(ts: &TimeSeries, name: &str, want: &[(&str, &str)]) -> bool {
    ts.labels.iter().any(|l| l.name == "__name__" && l.value == name)
        && want.iter().all(|(k, v)| ts.labels.iter().any(|l| l.name == *k && l.value == *v))
}

/// All (timestamp, value) samples of series named `name` carrying `labels`, sorted by time.
pub fn samples(data: &Shared, name: &str, labels: &[(&str, &str)]) -> Vec<(i64, f64)> {
    let g = data.lock().unwrap();
    let mut v: Vec<(i64, f64)> = g
        .series
        .iter()
        .filter(|t| matches(t, name, labels))
        .flat_map(|t| t.samples.iter().map(|s| (s.timestamp, s.value)))
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

/// The newest non-stale value.
pub fn latest(data: &Shared, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(data, name, labels).into_iter().rev().find(|(_, v)| !is_stale_nan(*v)).map(|x| x.1)
}

/// Whether the newest sample is a staleness marker.
pub fn ends_stale(data: &Shared, name: &str, labels: &[(&str, &str)]) -> bool {
    samples(data, name, labels).last().is_some_and(|(_, v)| is_stale_nan(*v))
}

/// Waits until `cond` holds, polling; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
