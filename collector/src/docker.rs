//! Container metrics from the Docker Engine via bollard. Every interval (or soon after a
//! state-changing event) the *lifecycle pass* lists containers and inspects each (bounded
//! concurrency, a timeout per call) and pushes state, health, restart, exit-code and spec series
//! to the outbox at once. One-shot stats of the running containers are a separate, background
//! *stats pass*: each call is its own task with its own timeout (at most one in flight per
//! container, at most `docker.concurrency` at once), and its series are pushed when it answers.
//! A stats call takes ~1 s on Engine < 24.0.7, so health must never wait for it.
//!
//! Identity and lifecycle come from the API and its event stream, never from cgroup paths. When
//! a container disappears, staleness markers end all its series; when it stops, its stats series
//! end. A stats answer that arrives after its container stopped, restarted or vanished is
//! dropped, so it cannot resurrect ended series. Each lifecycle pass's container views are
//! published for label-based target discovery. See `shared/reference/docker-stats.md`.

pub mod api;
pub mod connect;
pub mod events;
pub mod lifecycle;
pub mod rates;
pub mod stats;
pub mod view;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};
use crowsnest_wire::Label;
use futures::StreamExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::CollectorConfig;
use crate::metrics::CollectorMetrics;
use crate::series::{Batch, Staleness, now_ms};
use crate::shipper::Outbox;
pub use api::DockerApi;
use events::EventCounts;
use lifecycle::Identity;
use rates::{CounterSample, RateTracker};
pub use view::ContainerView;

/// Runs one Docker API call with the configured timeout, recording latency and errors.
async fn call<T, E: std::fmt::Display>(
    m: &CollectorMetrics,
    name: &'static str,
    timeout: Duration,
    f: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    let start = Instant::now();
    let r = tokio::time::timeout(timeout, f).await;
    m.docker_api_duration.get_or_create(&vec![("call", name)]).observe(start.elapsed().as_secs_f64());
    match r {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            m.docker_api_errors.get_or_create(&vec![("call", name)]).inc();
            tracing::debug!(call = name, error = %e, "Docker API call failed.");
            None
        }
        Err(_) => {
            m.docker_api_errors.get_or_create(&vec![("call", name)]).inc();
            tracing::warn!(call = name, timeout_ms = timeout.as_millis() as u64, "Docker API call timed out.");
            None
        }
    }
}

/// What the loop remembers about one listed container between passes.
#[derive(Default)]
struct Tracked {
    /// Lifecycle/spec series written by the last lifecycle pass.
    life: Staleness,
    /// Stats-derived series written by the last stats answer.
    stats: Staleness,
    /// Bumped whenever the container stops or (re)starts; a stats answer for an older epoch is
    /// dropped.
    epoch: u64,
    running: bool,
    started_at: String,
    base: Vec<Label>,
    /// A stats call for this container is in flight.
    in_flight: bool,
}

/// A finished stats call: container id, the epoch it was asked for, the answer, arrival (ms).
type StatsDone = (String, u64, Option<ContainerStatsResponse>, i64);

struct Source<A: DockerApi> {
    api: A,
    cfg: Arc<CollectorConfig>,
    allowlist: Vec<String>,
    metrics: CollectorMetrics,
    outbox: Outbox,
    tracked: HashMap<String, Tracked>,
    rates: RateTracker,
    events: EventCounts,
    views: watch::Sender<Vec<ContainerView>>,
    stats_tasks: JoinSet<StatsDone>,
    /// Container id of each stats task, so a task that failed to finish still frees its slot.
    stats_ids: HashMap<tokio::task::Id, String>,
    stats_slots: Arc<Semaphore>,
}

/// Runs the Docker loop until `shutdown`. `views` receives every lifecycle pass's containers.
pub async fn run_docker(
    cfg: Arc<CollectorConfig>,
    outbox: Outbox,
    metrics: CollectorMetrics,
    views: watch::Sender<Vec<ContainerView>>,
    shutdown: CancellationToken,
) {
    let docker = match connect::connect(&cfg.docker) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "Cannot set up the Docker client; container metrics are off.");
            metrics.docker_up.set(0);
            return;
        }
    };
    let events = EventCounts::default();
    let ev_task =
        tokio::spawn(events::follow_events(docker.clone(), events.clone(), metrics.clone(), shutdown.clone()));
    run_loop(docker, cfg, outbox, metrics, views, events, shutdown).await;
    let _ = ev_task.await;
}

/// The Docker loop over any [`DockerApi`]: lifecycle passes on the interval (or after events),
/// stats answers handled as they arrive.
pub(crate) async fn run_loop<A: DockerApi>(
    api: A,
    cfg: Arc<CollectorConfig>,
    outbox: Outbox,
    metrics: CollectorMetrics,
    views: watch::Sender<Vec<ContainerView>>,
    events: EventCounts,
    shutdown: CancellationToken,
) {
    let mut src = Source {
        api,
        allowlist: cfg.docker_label_allowlist(),
        stats_slots: Arc::new(Semaphore::new(cfg.docker.concurrency.max(1))),
        cfg: cfg.clone(),
        metrics,
        outbox,
        tracked: HashMap::new(),
        rates: RateTracker::default(),
        events: events.clone(),
        views,
        stats_tasks: JoinSet::new(),
        stats_ids: HashMap::new(),
    };
    let mut negotiated = false;
    // Event-triggered passes are spaced at least this far apart, so an event storm (a crash
    // loop, a mass restart) cannot turn into an API storm on dockerd.
    let min_gap = (cfg.interval / 4).max(Duration::from_secs(1)).min(cfg.interval);
    let mut last: Option<Instant> = None;
    let mut woken = false;
    loop {
        if !negotiated {
            // Old engines (API 1.41 in Debian's 20.10) reject newer API versions.
            if let Some(a) = call(&src.metrics, "version", cfg.docker.timeout, src.api.negotiate()).await {
                src.api = a;
                negotiated = true;
            }
        }
        let due = if woken { min_gap } else { cfg.interval };
        let elapsed = last.map_or(due, |l| l.elapsed());
        if elapsed >= due {
            last = Some(Instant::now());
            woken = false;
            src.lifecycle_pass().await;
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = src.stats_tasks.join_next_with_id(), if !src.stats_tasks.is_empty() => {
                let mut all = vec![done];
                // Answers that finished together go out in one queue append.
                while let Some(d) = src.stats_tasks.try_join_next_with_id() {
                    all.push(d);
                }
                let answers = all.into_iter().filter_map(|d| src.settle(d)).collect();
                src.stats_answers(answers).await;
            },
            _ = tokio::time::sleep(due - elapsed) => {},
            _ = events.wake.notified() => {
                // Let the event's consequences settle (die -> restart) before looking.
                tokio::time::sleep(Duration::from_millis(200)).await;
                woken = true;
            },
        }
    }
    src.stats_tasks.abort_all();
}

impl<A: DockerApi> Source<A> {
    fn job_labels(&self) -> Vec<Label> {
        vec![Label::new("instance", self.cfg.instance.as_str()), Label::new("job", self.cfg.docker.job.as_str())]
    }

    /// List + inspect; pushes lifecycle series and staleness markers, then starts stats calls.
    async fn lifecycle_pass(&mut self) {
        let ts = now_ms();
        let t = self.cfg.docker.timeout;
        let m = self.metrics.clone();
        let Some(ids) = call(&m, "list", t, self.api.list(self.cfg.docker.include_stopped)).await else {
            m.docker_up.set(0);
            m.collection("docker", false);
            let mut b = Batch::new();
            b.push("crowsnest_collector_docker_up", &self.job_labels(), ts, 0.0);
            self.outbox.push(b).await;
            return;
        };
        m.docker_up.set(1);
        let api = self.api.clone();
        let results: Vec<(String, Option<ContainerInspectResponse>, i64)> = futures::stream::iter(ids.iter().cloned())
            .map(|id| {
                let (m, api) = (m.clone(), api.clone());
                async move {
                    let insp = call(&m, "inspect", t, api.inspect(&id)).await;
                    (id, insp, now_ms())
                }
            })
            .buffer_unordered(self.cfg.docker.concurrency)
            .collect()
            .await;
        let mut batch = Batch::new();
        batch.push("crowsnest_collector_docker_up", &self.job_labels(), ts, 1.0);
        let mut views = Vec::new();
        let mut want_stats = Vec::new();
        for (id, insp, ts) in results {
            let Some(c) = insp else { continue }; // keep its series as they were; no false staleness
            let who = Identity { instance: &self.cfg.instance, job: &self.cfg.docker.job, allowlist: &self.allowlist };
            let base = lifecycle::base_labels(&c, &who);
            let mut b = Batch::new();
            lifecycle::push_lifecycle(&c, &base, ts, ts as f64 / 1000.0, self.events.last_exit(&id), &mut b);
            for (action, n) in self.events.counts(&id) {
                let mut l = base.clone();
                l.push(Label::new("action", action));
                b.push("container_events_total", &l, ts, n as f64);
            }
            let state = c.state.as_ref();
            let running = state.and_then(|s| s.running).unwrap_or(false);
            let started = state.and_then(|s| s.started_at.clone()).unwrap_or_default();
            let tr = self.tracked.entry(id.clone()).or_default();
            if running != tr.running || started != tr.started_at {
                // Stopped or (re)started: answers to calls made before belong to the old run.
                tr.epoch += 1;
            }
            if !running {
                // Its stats series end now, not when the next stats call would have said so.
                b.extend(tr.stats.end(ts));
            }
            tr.running = running;
            tr.started_at = started;
            tr.base = base;
            tr.life.mark(&mut b, ts);
            batch.extend(b);
            if running && !tr.in_flight {
                want_stats.push(id.clone());
            }
            views.push(ContainerView::from_inspect(&c));
        }
        // Containers gone from the list: end all their series now.
        let alive: HashSet<String> = ids.into_iter().collect();
        let gone: Vec<String> = self.tracked.keys().filter(|k| !alive.contains(*k)).cloned().collect();
        self.events.forget(&gone);
        for id in gone {
            if let Some(mut tr) = self.tracked.remove(&id) {
                tracing::debug!(id = %id, series = tr.life.len() + tr.stats.len(), "Container gone; staleness markers.");
                batch.extend(tr.life.end(ts));
                batch.extend(tr.stats.end(ts));
            }
        }
        self.rates.retain(&alive);
        m.containers.set(views.len() as i64);
        m.collection("docker", true);
        self.views.send_replace(views);
        self.outbox.push(batch).await;
        for id in want_stats {
            self.start_stats(id);
        }
    }

    /// Starts one background stats call for a running container.
    fn start_stats(&mut self, id: String) {
        let Some(tr) = self.tracked.get_mut(&id) else { return };
        tr.in_flight = true;
        let (epoch, tid) = (tr.epoch, id.clone());
        let (api, m, slots, t) =
            (self.api.clone(), self.metrics.clone(), self.stats_slots.clone(), self.cfg.docker.timeout);
        let task = self.stats_tasks.spawn(async move {
            // The timeout covers the call, not the wait for a free slot.
            let _permit = slots.acquire_owned().await.ok();
            let stats = call(&m, "stats", t, api.stats(&id)).await;
            // Samples carry the time their answer arrived, so rates stay right.
            (id, epoch, stats, now_ms())
        });
        self.stats_ids.insert(task.id(), tid);
    }

    /// Forgets a finished stats task; a task that panicked or was cancelled frees its container
    /// for the next stats call and yields no answer.
    fn settle(&mut self, done: Result<(tokio::task::Id, StatsDone), tokio::task::JoinError>) -> Option<StatsDone> {
        let (tid, answer) = match done {
            Ok((tid, answer)) => (tid, Some(answer)),
            Err(e) => (e.id(), None),
        };
        let id = self.stats_ids.remove(&tid);
        if answer.is_none() {
            tracing::warn!(id = ?id, "A stats task did not finish.");
            if let Some(tr) = id.and_then(|id| self.tracked.get_mut(&id)) {
                tr.in_flight = false;
            }
        }
        answer
    }

    /// Pushes the series of finished stats calls whose container still runs as it did.
    async fn stats_answers(&mut self, done: Vec<StatsDone>) {
        let mut batch = Batch::new();
        for (id, epoch, stats, ts) in done {
            let Some(tr) = self.tracked.get_mut(&id) else { continue }; // vanished meanwhile
            tr.in_flight = false;
            // A failed call keeps the series as they were: no staleness for one bad call.
            let Some(s) = stats.filter(|_| tr.epoch == epoch && tr.running) else { continue };
            let mut b = Batch::new();
            stats::push_stats(&s, &tr.base, ts, &mut b);
            let (cpu_ns, rx, tx) = stats::counters(&s);
            let sample =
                CounterSample { at_ms: ts, started_at: tr.started_at.clone(), cpu_ns, rx_bytes: rx, tx_bytes: tx };
            let r = self.rates.observe(&id, sample);
            let pairs = [
                ("crowsnest_container_cpu_usage_cores", r.cpu_cores),
                ("crowsnest_container_network_receive_bytes_per_second", r.rx_bytes_per_sec),
                ("crowsnest_container_network_transmit_bytes_per_second", r.tx_bytes_per_sec),
            ];
            for (name, v) in pairs {
                if let Some(v) = v {
                    b.push(name, &tr.base, ts, v);
                }
            }
            tr.stats.mark(&mut b, ts);
            batch.extend(b);
        }
        self.outbox.push(batch).await;
    }
}
