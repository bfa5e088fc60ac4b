//! Ten minutes of synthetic data at a 15s interval, shaped exactly like what the collector
//! (container series: collector/src/docker/*.rs; probes: blackbox_exporter names), the alerter
//! (`ALERTS`, `ALERTS_FOR_STATE`, notification counters) and the store's own /metrics write, so
//! every dashboard panel has something to show: two hosts, a healthy container with limits, an
//! unhealthy one, an OOM-killed exited one, a passing https probe seen from two locations, a
//! failing probe with a reason, a scraped app, one firing and one pending alert.

use std::collections::BTreeSet;

use crowsnest_wire::{Label, Labels, Sample, TimeSeries, WriteRequest};

/// Sample spacing.
pub const STEP_MS: i64 = 15_000;
/// Samples per series (10 minutes).
pub const POINTS: i64 = 41;

/// The generated series.
pub struct Fixture {
    pub series: Vec<TimeSeries>,
    /// Timestamp of the newest sample of every series.
    pub end_ms: i64,
    /// Every metric name written.
    pub names: BTreeSet<String>,
}

impl Fixture {
    fn start_ms(&self) -> i64 {
        self.end_ms - (POINTS - 1) * STEP_MS
    }

    /// Adds a series whose value at step `i` (0..POINTS) is `f(i)`.
    fn add(&mut self, name: &str, labels: &[(&str, &str)], f: impl Fn(i64) -> f64) {
        let mut v = vec![Label::new("__name__", name)];
        v.extend(labels.iter().filter(|(_, val)| !val.is_empty()).map(|(k, val)| Label::new(*k, *val)));
        let start = self.start_ms();
        let samples = (0..POINTS).map(|i| Sample::new(start + i * STEP_MS, f(i))).collect();
        self.series.push(TimeSeries { labels: Labels::from_vec(v).into_vec(), samples });
        self.names.insert(name.to_string());
    }

    fn gauge(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.add(name, labels, move |_| v);
    }

    /// A counter growing by `per_sec` per second from `base`.
    fn counter(&mut self, name: &str, labels: &[(&str, &str)], base: f64, per_sec: f64) {
        self.add(name, labels, move |i| base + per_sec * (i * STEP_MS) as f64 / 1000.0);
    }

    /// A classic histogram whose observations (`per_sec` of them each second) all fall in the
    /// bucket `le = hit`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], per_sec: f64, hit: f64) {
        for le in [0.001, 0.01, 0.1, 1.0, 10.0, f64::INFINITY] {
            let le_s = if le.is_infinite() { "+Inf".to_string() } else { le.to_string() };
            let mut l = labels.to_vec();
            l.push(("le", &le_s));
            let rate = if le >= hit { per_sec } else { 0.0 };
            self.counter(&format!("{name}_bucket"), &l, 0.0, rate);
        }
        self.counter(&format!("{name}_count"), labels, 0.0, per_sec);
        self.counter(&format!("{name}_sum"), labels, 0.0, per_sec * hit);
    }

    /// The remote_write request carrying everything.
    pub fn write_request(&self) -> WriteRequest {
        WriteRequest { timeseries: self.series.clone(), metadata: Vec::new() }
    }
}

struct Container<'a> {
    host: &'a str,
    name: &'a str,
    service: &'a str,
    image: &'a str,
    revision: &'a str,
    state: &'a str,
    health: &'a str,
    /// (cpu quota µs, memory limit bytes, pids limit); zero = unlimited.
    limits: (f64, f64, f64),
    restarts_mid_window: bool,
    oom_killed: bool,
}

fn container(fx: &mut Fixture, c: &Container<'_>) {
    let id = format!("/docker/{:0>64}", c.name.len());
    let base: Vec<(&str, &str)> = vec![
        ("instance", c.host),
        ("job", "docker"),
        ("name", c.name),
        ("id", &id),
        ("image", c.image),
        ("image_id", "sha256:0123abcd"),
        ("image_revision", c.revision),
        ("container_label_com_docker_compose_project", "shop"),
        ("container_label_com_docker_compose_service", c.service),
    ];
    let with = |k: &'static str, v: &'static str| {
        let mut l = base.clone();
        l.push((k, v));
        l
    };
    for s in ["created", "running", "paused", "restarting", "removing", "exited", "dead"] {
        fx.gauge("container_state", &with("state", s), if s == c.state { 1.0 } else { 0.0 });
    }
    for s in ["healthy", "unhealthy", "starting", "none"] {
        fx.gauge("container_health_status", &with("status", s), if s == c.health { 1.0 } else { 0.0 });
    }
    if c.health != "none" {
        fx.gauge("container_health_failing_streak", &base, if c.health == "unhealthy" { 3.0 } else { 0.0 });
    }
    let restarts = c.restarts_mid_window;
    fx.add("container_restart_count", &base, move |i| if restarts && i >= POINTS / 2 { 1.0 } else { 0.0 });
    fx.gauge("container_oom_killed", &base, if c.oom_killed { 1.0 } else { 0.0 });
    fx.gauge("container_last_exit_code", &base, if c.oom_killed { 137.0 } else { 0.0 });
    let started = (fx.end_ms / 1000 - 3600) as f64;
    fx.gauge("container_start_time_seconds", &base, started);
    fx.gauge("container_creation_time_seconds", &base, started - 5.0);
    let t0 = fx.start_ms() as f64 / 1000.0;
    fx.add("container_last_seen", &base, move |i| t0 + (i * STEP_MS) as f64 / 1000.0);
    for a in ["start", "die", "oom", "kill", "stop", "restart", "health_status", "pause", "unpause"] {
        // Containers that restarted in the window died and started again; health changes are
        // reported all along; everything else stays at zero.
        let stepped = restarts && matches!(a, "die" | "start" | "restart");
        let health = a == "health_status" && c.health != "none";
        fx.add("container_events_total", &with("action", a), move |i| {
            let mut v = if stepped && i >= POINTS / 2 { 1.0 } else { 0.0 };
            if health {
                v += i as f64;
            }
            v
        });
    }
    let (quota, mem_limit, pids_limit) = c.limits;
    fx.gauge("container_spec_memory_limit_bytes", &base, mem_limit);
    if quota > 0.0 {
        fx.gauge("container_spec_cpu_quota", &base, quota);
        fx.gauge("container_spec_cpu_period", &base, 100_000.0);
    }
    if c.state != "running" {
        return;
    }
    // Stats exist for running containers only.
    fx.counter("container_cpu_usage_seconds_total", &with("cpu", "total"), 100.0, 0.3);
    fx.counter("container_cpu_user_seconds_total", &base, 80.0, 0.2);
    fx.counter("container_cpu_system_seconds_total", &base, 20.0, 0.1);
    if quota > 0.0 {
        fx.counter("container_cpu_cfs_periods_total", &base, 1000.0, 10.0);
        fx.counter("container_cpu_cfs_throttled_periods_total", &base, 10.0, 1.0);
        fx.counter("container_cpu_cfs_throttled_seconds_total", &base, 1.0, 0.05);
    }
    fx.gauge("container_memory_usage_bytes", &base, 150e6);
    fx.gauge("container_memory_working_set_bytes", &base, 120e6);
    fx.gauge("container_memory_rss", &base, 100e6);
    fx.gauge("container_memory_cache", &base, 50e6);
    fx.gauge("container_memory_mapped_file", &base, 4e6);
    fx.gauge("container_memory_max_usage_bytes", &base, 160e6);
    fx.counter("container_memory_failcnt", &base, 0.0, 0.0);
    let eth = with("interface", "eth0");
    for (m, per_sec) in [
        ("container_network_receive_bytes_total", 2000.0),
        ("container_network_transmit_bytes_total", 1000.0),
        ("container_network_receive_packets_total", 20.0),
        ("container_network_transmit_packets_total", 10.0),
        ("container_network_receive_errors_total", 0.1),
        ("container_network_transmit_errors_total", 0.1),
        ("container_network_receive_packets_dropped_total", 0.2),
        ("container_network_transmit_packets_dropped_total", 0.2),
    ] {
        fx.counter(m, &eth, 1e6, per_sec);
    }
    let dev = with("device", "8:0");
    fx.counter("container_fs_reads_bytes_total", &dev, 1e7, 4096.0);
    fx.counter("container_fs_writes_bytes_total", &dev, 2e7, 8192.0);
    fx.gauge("container_threads", &base, 12.0);
    if pids_limit > 0.0 {
        fx.gauge("container_threads_max", &base, pids_limit);
    }
}

fn probe(fx: &mut Fixture, job: &str, target: &str, location: &str, ok: bool, reason: &str) {
    let l: Vec<(&str, &str)> = vec![("job", job), ("instance", target), ("location", location)];
    fx.gauge("probe_success", &l, if ok { 1.0 } else { 0.0 });
    fx.gauge("probe_duration_seconds", &l, if ok { 0.12 } else { 5.0 });
    fx.gauge("probe_http_status_code", &l, if ok { 200.0 } else { 0.0 });
    if ok {
        for (phase, v) in
            [("resolve", 0.001), ("connect", 0.01), ("tls", 0.03), ("processing", 0.07), ("transfer", 0.009)]
        {
            let mut p = l.clone();
            p.push(("phase", phase));
            fx.gauge("probe_http_duration_seconds", &p, v);
        }
        if target.ends_with(":443") {
            fx.gauge("probe_ssl_earliest_cert_expiry", &l, (fx.end_ms / 1000 + 30 * 86400) as f64);
        }
    }
    // collector/src/apps.rs: one `probe_failed` series per reason, 1 for the reason of this failure.
    for r in ["dns", "connect", "tls", "timeout", "status", "body"] {
        let mut p = l.clone();
        p.push(("reason", r));
        fx.gauge("probe_failed", &p, if !ok && r == reason { 1.0 } else { 0.0 });
    }
    fx.gauge("probe_health_degraded", &l, 0.0);
}

fn alerting(fx: &mut Fixture) {
    let firing = [
        ("alertname", "ContainerUnhealthy"),
        ("severity", "critical"),
        ("instance", "h1"),
        ("job", "docker"),
        ("name", "db"),
    ];
    let pending = [("alertname", "ProbeFailed"), ("severity", "warning"), ("instance", "web:8080"), ("job", "web")];
    let since = (fx.end_ms / 1000 - 900) as f64;
    for (labels, state) in [(&firing[..], "firing"), (&pending[..], "pending")] {
        let mut l = labels.to_vec();
        fx.gauge("ALERTS_FOR_STATE", &l, since);
        l.push(("alertstate", state));
        fx.gauge("ALERTS", &l, 1.0);
    }
    let al = [("job", "crowsnest"), ("instance", "crowsnest:9300")];
    // alerter/src/notify/metrics.rs: attempts by receiver and integration; failures for good by
    // receiver, integration and reason.
    for (integration, sent, failed) in [("slack", 0.02, 0.01), ("email", 0.01, 0.0)] {
        let mut l = al.to_vec();
        l.push(("receiver", "team"));
        l.push(("integration", integration));
        fx.counter("crowsnest_alerter_notifications_total", &l, 10.0, sent);
        l.push(("reason", "status"));
        fx.counter("crowsnest_alerter_notifications_failed_total", &l, 1.0, failed);
    }
    // alerter/src/eval/metrics.rs: Prometheus' rule-manager names, `rule_group` = "<file>;<group>".
    let g = [al[0], al[1], ("rule_group", "/etc/crowsnest/rules/crowsnest.yml;containers")];
    fx.counter("prometheus_rule_evaluations_total", &g, 100.0, 1.0 / 15.0);
    fx.counter("prometheus_rule_evaluation_failures_total", &g, 1.0, 0.01);
    fx.gauge("prometheus_rule_group_last_duration_seconds", &g, 0.004);
}

fn store_and_collector(fx: &mut Fixture) {
    let s = [("job", "crowsnest"), ("instance", "crowsnest:9300")];
    fx.counter("crowsnest_store_samples_ingested_total", &s, 1e6, 500.0);
    fx.counter("crowsnest_store_samples_rejected_total", &[s[0], s[1], ("reason", "out_of_order")], 5.0, 0.1);
    fx.gauge("crowsnest_store_head_series", &s, 12_000.0);
    fx.counter("crowsnest_store_series_created_total", &s, 12_000.0, 0.5);
    fx.gauge("crowsnest_store_disk_bytes", &s, 5e8);
    fx.gauge("crowsnest_store_wal_bytes", &s, 2e7);
    fx.histogram("crowsnest_store_wal_fsync_duration_seconds", &s, 2.0, 0.01);
    for (handler, per_sec, hit) in [("write", 2.0, 0.01), ("query", 1.0, 0.1), ("query_range", 0.5, 1.0)] {
        fx.histogram(
            "crowsnest_store_http_request_duration_seconds",
            &[s[0], s[1], ("handler", handler)],
            per_sec,
            hit,
        );
    }
    for host in ["h1", "h2"] {
        let c = [("job", "crowsnest-collector"), ("instance", host)];
        fx.gauge("crowsnest_collector_queue_samples", &c, 250.0);
        fx.gauge("crowsnest_collector_queue_records", &c, 2.0);
        fx.gauge("crowsnest_collector_queue_bytes", &c, 65_536.0);
        fx.counter("crowsnest_collector_samples_sent_total", &c, 1e5, 40.0);
        fx.counter("crowsnest_collector_samples_failed_total", &c, 100.0, 1.0);
        fx.counter("crowsnest_collector_samples_dropped_total", &[c[0], c[1], ("reason", "queue_full")], 10.0, 0.5);
        fx.counter("crowsnest_collector_remote_write_requests_total", &[c[0], c[1], ("result", "success")], 500.0, 0.2);
        fx.gauge("crowsnest_collector_docker_up", &c, 1.0);
        fx.histogram("crowsnest_collector_docker_api_duration_seconds", &[c[0], c[1], ("call", "stats")], 1.0, 0.1);
    }
}

/// Builds the fixture ending at `end_ms`.
pub fn build(end_ms: i64) -> Fixture {
    let mut fx = Fixture { series: Vec::new(), end_ms, names: BTreeSet::new() };
    let running = |host, name, service, health, limits, restarts| Container {
        host,
        name,
        service,
        image: "nginx:1.27",
        revision: "4f2c9e1",
        state: "running",
        health,
        limits,
        restarts_mid_window: restarts,
        oom_killed: false,
    };
    container(&mut fx, &running("h1", "web", "web", "healthy", (50_000.0, 256e6, 100.0), true));
    container(&mut fx, &running("h1", "db", "db", "unhealthy", (0.0, 0.0, 0.0), false));
    container(&mut fx, &running("h2", "api", "api", "none", (200_000.0, 512e6, 0.0), false));
    container(
        &mut fx,
        &Container {
            state: "exited",
            oom_killed: true,
            ..running("h2", "worker", "worker", "none", (0.0, 64e6, 0.0), false)
        },
    );
    for loc in ["h1", "h2"] {
        probe(&mut fx, "api", "api.example.com:443", loc, true, "");
    }
    probe(&mut fx, "web", "web:8080", "h1", true, "");
    probe(&mut fx, "web", "web:8080", "h2", false, "connect");
    let app = [("job", "pharo"), ("instance", "pharo:8081")];
    fx.gauge("up", &app, 1.0);
    fx.gauge("scrape_duration_seconds", &app, 0.02);
    fx.gauge("scrape_samples_scraped", &app, 42.0);
    alerting(&mut fx);
    store_and_collector(&mut fx);
    fx
}
