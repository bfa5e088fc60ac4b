//! Tests of the Docker loop's scheduling against a scripted engine whose stats calls block on a
//! gate the test opens: health/lifecycle series never wait for stats, at most one stats call is
//! in flight per container, and a stats answer that lands after its container stopped or
//! vanished does not bring its ended series back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};
use crowsnest_wire::is_stale_nan;
use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::queue::DiskQueue;

#[derive(Default)]
struct Engine {
    containers: BTreeMap<String, ContainerInspectResponse>,
    stats_calls: usize,
}

/// A scripted engine: list/inspect answer at once, stats wait for a permit on `gate`.
#[derive(Clone)]
struct Fake {
    engine: Arc<Mutex<Engine>>,
    gate: Arc<Semaphore>,
}

fn container(id: &str, status: &str, health: &str) -> ContainerInspectResponse {
    let running = status == "running";
    serde_json::from_value(serde_json::json!({
        "Id": id, "Name": format!("/{id}"), "Created": "2026-01-01T00:00:00Z",
        "State": {"Status": status, "Running": running, "ExitCode": if running { 0 } else { 3 },
            "StartedAt": "2026-01-01T00:00:10Z", "Health": {"Status": health, "FailingStreak": 0}},
        "Config": {"Image": "busybox:latest"}
    }))
    .expect("valid inspect body")
}

impl Fake {
    fn new() -> Fake {
        Fake { engine: Arc::default(), gate: Arc::new(Semaphore::new(0)) }
    }

    fn set(&self, id: &str, status: &str, health: &str) {
        self.engine.lock().containers.insert(id.into(), container(id, status, health));
    }
}

impl DockerApi for Fake {
    fn negotiate(&self) -> BoxFuture<'static, Result<Self, String>> {
        let f = self.clone();
        async move { Ok(f) }.boxed()
    }

    fn list(&self, _all: bool) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let ids = self.engine.lock().containers.keys().cloned().collect();
        async move { Ok(ids) }.boxed()
    }

    fn inspect(&self, id: &str) -> BoxFuture<'static, Result<ContainerInspectResponse, String>> {
        let c = self.engine.lock().containers.get(id).cloned().ok_or_else(|| "no such container".to_string());
        async move { c }.boxed()
    }

    fn stats(&self, _id: &str) -> BoxFuture<'static, Result<ContainerStatsResponse, String>> {
        self.engine.lock().stats_calls += 1;
        let gate = self.gate.clone();
        async move {
            gate.acquire().await.map_err(|e| e.to_string())?.forget();
            serde_json::from_value(serde_json::json!({
                "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000u64}},
                "memory_stats": {"usage": 4096}
            }))
            .map_err(|e| e.to_string())
        }
        .boxed()
    }
}

/// Everything the loop wrote, in order: (metric name, labels, value).
type Written = Vec<(String, Vec<Label>, f64)>;

struct Harness {
    fake: Fake,
    outbox: Outbox,
    written: Written,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start(fake: Fake) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = CollectorMetrics::register(&crowsnest_wire::ops::new_registry());
        let (q, _) = DiskQueue::open(dir.path(), 1 << 22, 1 << 16).expect("queue");
        let outbox = Outbox::new(q, metrics.clone(), 10_000);
        let mut cfg = CollectorConfig { interval: Duration::from_millis(200), ..Default::default() };
        cfg.instance = "h1".into();
        let (views, _) = watch::channel(Vec::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_loop(
            fake.clone(),
            Arc::new(cfg),
            outbox.clone(),
            metrics,
            views,
            EventCounts::default(),
            shutdown.clone(),
        ));
        Harness { fake, outbox, written: Vec::new(), shutdown, task, _dir: dir }
    }

    fn pull(&mut self) {
        for w in self.outbox.drain_requests() {
            for ts in w.timeseries {
                let name = ts.labels.iter().find(|l| l.name == "__name__").map(|l| l.value.clone()).unwrap_or_default();
                for s in ts.samples {
                    self.written.push((name.clone(), ts.labels.clone(), s.value));
                }
            }
        }
    }

    /// Values written for `name` (with label `extra`, when given), oldest first.
    fn values(&self, name: &str, extra: Option<(&str, &str)>) -> Vec<f64> {
        self.written
            .iter()
            .filter(|(n, l, _)| n == name && extra.is_none_or(|(k, v)| l.contains(&Label::new(k, v))))
            .map(|(_, _, v)| *v)
            .collect()
    }

    /// Polls until `cond` holds (true) or `within` passes (false).
    async fn wait(&mut self, within: Duration, cond: impl Fn(&Harness) -> bool) -> bool {
        let end = Instant::now() + within;
        loop {
            self.pull();
            if cond(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

fn last_is(v: &[f64], want: f64) -> bool {
    v.last().is_some_and(|x| *x == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_written_while_stats_hang() {
    let fake = Fake::new();
    fake.set("c1", "running", "unhealthy");
    let started = Instant::now();
    let mut h = Harness::start(fake);
    assert!(
        h.wait(Duration::from_secs(3), |h| last_is(
            &h.values("container_health_status", Some(("status", "unhealthy"))),
            1.0
        ))
        .await,
        "unhealthy must be written without waiting for the (blocked) stats call"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // Later passes keep reporting health while the first stats call is still blocked.
    h.fake.set("c1", "running", "healthy");
    assert!(
        h.wait(Duration::from_secs(3), |h| last_is(
            &h.values("container_health_status", Some(("status", "healthy"))),
            1.0
        ))
        .await,
        "the next pass must not wait for the previous pass's stats"
    );
    assert!(h.values("container_cpu_usage_seconds_total", None).is_empty(), "stats have not answered yet");
    assert_eq!(h.fake.engine.lock().stats_calls, 1, "one stats call in flight per container, no pile-up");
    // When the stats call answers, its series follow.
    h.fake.gate.add_permits(1);
    assert!(
        h.wait(Duration::from_secs(3), |h| last_is(&h.values("container_cpu_usage_seconds_total", None), 2.0)).await,
        "stats series follow when the call completes"
    );
    assert_eq!(h.values("container_memory_usage_bytes", None).last(), Some(&4096.0));
    h.stop().await;
}

/// A stats call in flight when the container stops (`remove == false`) or vanishes must not
/// write its series after they were ended by staleness markers.
async fn late_stats_do_not_resurrect(remove: bool) {
    let fake = Fake::new();
    fake.set("c1", "running", "healthy");
    let mut h = Harness::start(fake);
    h.fake.gate.add_permits(1);
    assert!(
        h.wait(Duration::from_secs(3), |h| last_is(&h.values("container_cpu_usage_seconds_total", None), 2.0)).await
    );
    // The next pass starts a second stats call, which stays blocked.
    assert!(h.wait(Duration::from_secs(3), |h| h.fake.engine.lock().stats_calls >= 2).await);
    if remove {
        h.fake.engine.lock().containers.remove("c1");
    } else {
        h.fake.set("c1", "exited", "unhealthy");
    }
    let ended =
        |h: &Harness| h.values("container_cpu_usage_seconds_total", None).last().is_some_and(|v| is_stale_nan(*v));
    assert!(h.wait(Duration::from_secs(3), ended).await, "stats series end as soon as the container stops/vanishes");
    if remove {
        let health = h.values("container_health_status", Some(("status", "healthy")));
        assert!(health.last().is_some_and(|v| is_stale_nan(*v)), "lifecycle series end on removal");
    } else {
        assert!(last_is(&h.values("container_state", Some(("state", "exited"))), 1.0));
    }
    let calls = h.fake.engine.lock().stats_calls;
    // The blocked call now answers; give the loop several intervals to (wrongly) write it.
    h.fake.gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    h.pull();
    assert!(ended(&h), "a late stats answer must not resurrect ended series");
    assert_eq!(h.values("container_memory_usage_bytes", None).iter().filter(|v| !is_stale_nan(**v)).count(), 1);
    assert_eq!(h.fake.engine.lock().stats_calls, calls, "no stats calls for a stopped/removed container");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_stats_after_stop_are_dropped() {
    late_stats_do_not_resurrect(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_stats_after_removal_are_dropped() {
    late_stats_do_not_resurrect(true).await;
}
