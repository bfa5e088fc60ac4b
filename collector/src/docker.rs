//! Container metrics from the Docker Engine via bollard. Every interval (or at once after a
//! state-changing event): list containers, then inspect each and take one-shot stats of the
//! running ones with bounded concurrency and a timeout per call, so a hung stats call never stalls
//! the others. Identity and lifecycle come from the API and its event stream, never from cgroup
//! paths. When a container disappears, staleness markers end its series. Each cycle's container
//! views are published for label-based target discovery. See
//! `shared/reference/docker-stats.md` for the API semantics this follows.

pub mod connect;
pub mod events;
pub mod lifecycle;
pub mod rates;
pub mod stats;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder, StatsOptionsBuilder};
use crowsnest_wire::Label;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::CollectorConfig;
use crate::metrics::CollectorMetrics;
use crate::series::{Batch, Staleness, now_ms};
use crate::shipper::Outbox;
use events::EventCounts;
use lifecycle::Identity;
use rates::{CounterSample, RateTracker};

/// What discovery needs to know about a container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerView {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
    /// (network name, IPv4 address) for each attached network with an address.
    pub networks: Vec<(String, String)>,
    /// (container port, host IP, host port) for each published TCP port.
    pub published: Vec<(u16, String, u16)>,
    /// Exposed TCP ports.
    pub exposed: Vec<u16>,
}

impl ContainerView {
    fn from_inspect(c: &ContainerInspectResponse) -> ContainerView {
        let cfg = c.config.as_ref();
        let ns = c.network_settings.as_ref();
        let mut networks: Vec<(String, String)> = ns
            .and_then(|n| n.networks.as_ref())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, e)| {
                        e.ip_address.as_ref().filter(|ip| !ip.is_empty()).map(|ip| (k.clone(), ip.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        networks.sort();
        let mut published = Vec::new();
        for (port, binds) in ns.and_then(|n| n.ports.as_ref()).into_iter().flatten() {
            let Some(p) = port.strip_suffix("/tcp").and_then(|p| p.parse::<u16>().ok()) else { continue };
            for b in binds.iter().flatten() {
                if let Some(hp) = b.host_port.as_deref().and_then(|h| h.parse::<u16>().ok()) {
                    published.push((p, b.host_ip.clone().unwrap_or_default(), hp));
                }
            }
        }
        published.sort();
        let mut exposed: Vec<u16> = cfg
            .and_then(|c| c.exposed_ports.as_ref())
            .map(|v| v.iter().filter_map(|p| p.strip_suffix("/tcp")?.parse().ok()).collect())
            .unwrap_or_default();
        exposed.sort_unstable();
        ContainerView {
            id: c.id.clone().unwrap_or_default(),
            name: c.name.as_deref().unwrap_or_default().trim_start_matches('/').to_string(),
            running: c.state.as_ref().and_then(|s| s.running).unwrap_or(false),
            labels: cfg.and_then(|c| c.labels.clone()).unwrap_or_default(),
            networks,
            published,
            exposed,
        }
    }
}

/// One container's inspect and stats answers, and when they arrived (ms).
type Inspected = (String, Option<ContainerInspectResponse>, Option<ContainerStatsResponse>, i64);

struct Source {
    cfg: Arc<CollectorConfig>,
    allowlist: Vec<String>,
    metrics: CollectorMetrics,
    outbox: Outbox,
    stale: HashMap<String, Staleness>,
    rates: RateTracker,
    events: EventCounts,
    views: watch::Sender<Vec<ContainerView>>,
}

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

/// Runs the Docker loop until `shutdown`. `views` receives every cycle's containers.
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
    let mut src = Source {
        allowlist: cfg.docker_label_allowlist(),
        cfg: cfg.clone(),
        metrics,
        outbox,
        stale: HashMap::new(),
        rates: RateTracker::default(),
        events: events.clone(),
        views,
    };
    let mut docker = docker;
    let mut negotiated = false;
    // Event-triggered cycles are spaced at least this far apart, so an event storm (a crash
    // loop, a mass restart) cannot turn into a stats storm on dockerd.
    let min_gap = (cfg.interval / 4).max(Duration::from_secs(1)).min(cfg.interval);
    let mut last: Option<Instant> = None;
    let mut woken = false;
    loop {
        if !negotiated {
            // Old engines (API 1.41 in Debian's 20.10) reject newer API versions.
            if let Some(d) = call(&src.metrics, "version", cfg.docker.timeout, docker.clone().negotiate_version()).await
            {
                docker = d;
                negotiated = true;
            }
        }
        let due = if woken { min_gap } else { cfg.interval };
        let elapsed = last.map_or(due, |l| l.elapsed());
        if elapsed >= due {
            last = Some(Instant::now());
            woken = false;
            src.cycle(&docker).await;
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(due - elapsed) => {},
            _ = events.wake.notified() => {
                // Let the event's consequences settle (die -> restart) before looking.
                tokio::time::sleep(Duration::from_millis(200)).await;
                woken = true;
            },
        }
    }
    let _ = ev_task.await;
}

impl Source {
    async fn cycle(&mut self, docker: &Docker) {
        let ts = now_ms();
        let t = self.cfg.docker.timeout;
        let m = self.metrics.clone();
        let instance =
            vec![Label::new("instance", self.cfg.instance.as_str()), Label::new("job", self.cfg.docker.job.as_str())];
        let opts = ListContainersOptionsBuilder::default().all(self.cfg.docker.include_stopped).build();
        let Some(list) = call(&m, "list", t, docker.list_containers(Some(opts))).await else {
            m.docker_up.set(0);
            m.collection("docker", false);
            let mut b = Batch::new();
            b.push("crowsnest_collector_docker_up", &instance, ts, 0.0);
            self.outbox.push(b).await;
            return;
        };
        m.docker_up.set(1);
        let ids: Vec<String> = list.iter().filter_map(|c| c.id.clone()).collect();
        let results: Vec<Inspected> = futures::stream::iter(ids.iter().cloned())
            .map(|id| {
                let m = m.clone();
                async move {
                    let insp =
                        call(&m, "inspect", t, docker.inspect_container(&id, None::<InspectContainerOptions>)).await;
                    let running = insp.as_ref().and_then(|c| c.state.as_ref()).and_then(|s| s.running).unwrap_or(false);
                    let stats = if running {
                        let opts = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
                        let mut s = docker.stats(&id, Some(opts));
                        call(&m, "stats", t, async move {
                            s.next().await.unwrap_or_else(|| {
                                Err(bollard::errors::Error::DockerStreamError { error: "empty stats stream".into() })
                            })
                        })
                        .await
                    } else {
                        None
                    };
                    // Each container's samples carry the time its answers arrived, so rates stay
                    // right even when a cycle over many containers takes seconds.
                    (id, insp, stats, now_ms())
                }
            })
            .buffer_unordered(self.cfg.docker.concurrency)
            .collect()
            .await;
        let mut batch = Batch::new();
        batch.push("crowsnest_collector_docker_up", &instance, ts, 1.0);
        let mut views = Vec::new();
        for (id, insp, stats, ts) in results {
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
            let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
            if let Some(s) = stats.as_ref() {
                stats::push_stats(s, &base, ts, &mut b);
                let (cpu_ns, rx, tx) = stats::counters(s);
                let started = c.state.as_ref().and_then(|s| s.started_at.clone()).unwrap_or_default();
                let r = self
                    .rates
                    .observe(&id, CounterSample { at_ms: ts, started_at: started, cpu_ns, rx_bytes: rx, tx_bytes: tx });
                let pairs = [
                    ("crowsnest_container_cpu_usage_cores", r.cpu_cores),
                    ("crowsnest_container_network_receive_bytes_per_second", r.rx_bytes_per_sec),
                    ("crowsnest_container_network_transmit_bytes_per_second", r.tx_bytes_per_sec),
                ];
                for (name, v) in pairs {
                    if let Some(v) = v {
                        b.push(name, &base, ts, v);
                    }
                }
            }
            let st = self.stale.entry(id.clone()).or_default();
            if running && stats.is_none() {
                // Stats failed this time: do not mark its stats series stale for one bad call.
                batch.extend(b);
            } else {
                st.mark(&mut b, ts);
                batch.extend(b);
            }
            views.push(ContainerView::from_inspect(&c));
        }
        // Containers gone from the list: end all their series now.
        let alive: HashSet<String> = ids.into_iter().collect();
        let gone: Vec<String> = self.stale.keys().filter(|k| !alive.contains(*k)).cloned().collect();
        self.events.forget(&gone);
        for id in gone {
            if let Some(mut st) = self.stale.remove(&id) {
                tracing::debug!(id = %id, series = st.len(), "Container gone; writing staleness markers.");
                batch.extend(st.end(ts));
            }
        }
        self.rates.retain(&alive);
        m.containers.set(views.len() as i64);
        m.collection("docker", true);
        self.views.send_replace(views);
        self.outbox.push(batch).await;
    }
}
