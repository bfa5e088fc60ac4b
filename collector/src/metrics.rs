//! The collector's own metrics, served on its `/metrics` (prometheus-client, OpenMetrics text):
//! samples sent/failed/dropped by reason, remote_write requests by result, queue depth and bytes,
//! probe and scrape counts, failed scrapes by reason, and the Docker connection and API latency. Label values are bounded
//! enums, never error strings.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crowsnest_wire::ops::SharedRegistry;

type Lbl = Vec<(&'static str, &'static str)>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Handles to every collector metric; cheap to clone.
#[derive(Clone)]
pub struct CollectorMetrics {
    pub samples_sent: Counter,
    pub samples_failed: Counter,
    pub samples_dropped: Family<Lbl, Counter>,
    pub remote_write_requests: Family<Lbl, Counter>,
    pub queue_records: Gauge,
    pub queue_bytes: Gauge,
    pub queue_samples: Gauge,
    pub collections: Family<Lbl, Counter>,
    pub scrapes_failed: Family<Lbl, Counter>,
    pub docker_up: Gauge,
    pub docker_api_duration: Family<Lbl, Histogram, fn() -> Histogram>,
    pub docker_api_errors: Family<Lbl, Counter>,
    pub docker_events: Counter,
    pub containers: Gauge,
    pub targets: Gauge,
}

impl CollectorMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &SharedRegistry) -> Self {
        let m = CollectorMetrics {
            samples_sent: Counter::default(),
            samples_failed: Counter::default(),
            samples_dropped: Family::default(),
            remote_write_requests: Family::default(),
            queue_records: Gauge::default(),
            queue_bytes: Gauge::default(),
            queue_samples: Gauge::default(),
            collections: Family::default(),
            scrapes_failed: Family::default(),
            docker_up: Gauge::default(),
            docker_api_duration: Family::new_with_constructor(latency_histogram),
            docker_api_errors: Family::default(),
            docker_events: Counter::default(),
            containers: Gauge::default(),
            targets: Gauge::default(),
        };
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        let p = "crowsnest_collector_";
        r.register(format!("{p}samples_sent"), "Samples the remote_write receiver accepted.", m.samples_sent.clone());
        r.register(
            format!("{p}samples_failed"),
            "Samples in write requests that failed and will be retried.",
            m.samples_failed.clone(),
        );
        r.register(
            format!("{p}samples_dropped"),
            "Samples dropped, by reason (queue_full, rejected, encode).",
            m.samples_dropped.clone(),
        );
        r.register(
            format!("{p}remote_write_requests"),
            "remote_write requests by result.",
            m.remote_write_requests.clone(),
        );
        r.register(format!("{p}queue_records"), "Write requests waiting in the disk queue.", m.queue_records.clone());
        r.register(format!("{p}queue_bytes"), "Bytes of the disk queue's segment files.", m.queue_bytes.clone());
        r.register(format!("{p}queue_samples"), "Samples waiting in the disk queue.", m.queue_samples.clone());
        r.register(
            format!("{p}collections"),
            "Collections (docker cycles, probes, scrapes) by kind and result.",
            m.collections.clone(),
        );
        r.register(
            format!("{p}scrapes_failed"),
            "Failed scrapes by reason (http, status, parse, sample_limit, body_size_limit).",
            m.scrapes_failed.clone(),
        );
        r.register(format!("{p}docker_up"), "1 when the Docker Engine answered the last call.", m.docker_up.clone());
        r.register(
            format!("{p}docker_api_duration_seconds"),
            "Docker Engine API call latency by call.",
            m.docker_api_duration.clone(),
        );
        r.register(
            format!("{p}docker_api_errors"),
            "Docker Engine API calls that failed or timed out, by call.",
            m.docker_api_errors.clone(),
        );
        r.register(
            format!("{p}docker_events"),
            "Container events received from the Docker Engine.",
            m.docker_events.clone(),
        );
        r.register(format!("{p}containers"), "Containers seen in the last Docker cycle.", m.containers.clone());
        r.register(
            format!("{p}targets"),
            "App targets (static and discovered) being probed or scraped.",
            m.targets.clone(),
        );
        m
    }

    /// Counts one collection of `kind` (docker, probe, scrape) with `result` (success, failure).
    pub fn collection(&self, kind: &'static str, ok: bool) {
        self.collections.get_or_create(&vec![("kind", kind), ("result", if ok { "success" } else { "failure" })]).inc();
    }

    /// Counts one failed scrape with its `reason` (`ScrapeError::reason`).
    pub fn scrape_failed(&self, reason: &'static str) {
        self.scrapes_failed.get_or_create(&vec![("reason", reason)]).inc();
    }

    /// Adds `n` dropped samples for `reason`.
    pub fn dropped(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.samples_dropped.get_or_create(&vec![("reason", reason)]).inc_by(n);
        }
    }

    /// Counts one remote_write request with `result`.
    pub fn request(&self, result: &'static str) {
        self.remote_write_requests.get_or_create(&vec![("result", result)]).inc();
    }
}
