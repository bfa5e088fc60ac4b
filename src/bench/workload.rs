//! The benchmark workload: deterministic, seeded series shaped like what a Docker host really
//! exports (node_exporter families, cAdvisor container families, app histograms), following the
//! plan in shared/reference/tsdb-performance.md §7.2: ~60% constant or slow series, CPU-seconds
//! counters with 2 decimals, integer byte/packet counters with bursty rates, page-multiple memory
//! gauges, 2-decimal load gauges, rare counter resets, one scrape timestamp per host with optional
//! jitter. Hosts get different seeds and time offsets so no codec wins by deduplicating hosts.

use crowsnest_wire::{Label, Sample, TimeSeries};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How a series' value evolves.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Never changes (sizes, limits, info series).
    Constant(f64),
    /// A counter growing by about `rate` per second, rounded to `decimals`.
    Counter { rate: f64, decimals: i32, burst: bool },
    /// A gauge wandering around `base` by +-`spread`, quantised to `quantum`.
    Gauge { base: f64, spread: f64, quantum: f64 },
    /// A value redrawn every scrape, quantised to `quantum` (scrape durations and GC pauses are
    /// measured in nanoseconds: Go's `time.Duration.Seconds()`, printed with up to 9 decimals).
    Noise { base: f64, spread: f64, quantum: f64 },
}

/// Which kind of host the workload imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// A Docker host: node_exporter's main families plus cAdvisor container series and app
    /// histograms (most series change every scrape).
    #[default]
    Docker,
    /// node_exporter alone, with its full family list: most series are constant (sizes, info,
    /// flags, error counters that stay 0) or slow, as the "node_exporter-like data".
    Node,
}

/// One generated series: its labels and value state.
#[derive(Debug, Clone)]
pub struct GenSeries {
    pub labels: Vec<Label>,
    shape: Shape,
    value: f64,
    rng: SmallRng,
}

impl GenSeries {
    fn next(&mut self, interval_s: f64) -> f64 {
        match self.shape {
            Shape::Constant(v) => v,
            Shape::Counter { rate, decimals, burst } => {
                if self.rng.random_ratio(1, 50_000) {
                    self.value = 0.0; // a counter reset (process restart)
                    return 0.0;
                }
                let factor = if burst && self.rng.random_ratio(1, 10) { 8.0 } else { 1.0 };
                let inc = rate * interval_s * factor * self.rng.random_range(0.5..1.5);
                let p = 10f64.powi(decimals);
                self.value = ((self.value + inc) * p).round() / p;
                self.value
            }
            Shape::Gauge { base, spread, quantum } => {
                // Slow random walk, most steps zero.
                if self.rng.random_ratio(1, 3) {
                    let step = self.rng.random_range(-spread..spread) / 10.0;
                    self.value = (self.value + step).clamp(base - spread, base + spread);
                }
                (self.value / quantum).round() * quantum
            }
            Shape::Noise { base, spread, quantum } => {
                let v = base + self.rng.random_range(-spread..spread);
                let steps = (v / quantum).round();
                // Divide rather than multiply so the value prints as a short decimal, like Go's.
                if quantum < 1.0 { steps / (1.0 / quantum).round() } else { steps * quantum }
            }
        }
    }
}

/// Extra (name, value) labels of a generated series.
type ExtraLabels = Vec<(&'static str, String)>;

/// Parameters of a workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub series_per_host: usize,
    pub interval_ms: i64,
    pub jitter_ms: i64,
    pub seed: u64,
    pub profile: Profile,
}

fn labels(name: &str, host: &str, extra: &[(&str, String)]) -> Vec<Label> {
    let mut v = vec![Label::new("__name__", name), Label::new("instance", host), Label::new("job", "node")];
    for (k, val) in extra {
        v.push(Label::new(*k, val.clone()));
    }
    v.sort();
    v
}

impl Workload {
    /// All series of one host, exactly `series_per_host` of them.
    pub fn host_series(&self, host_idx: usize) -> Vec<GenSeries> {
        let defs = match self.profile {
            Profile::Docker => self.docker_defs(host_idx),
            Profile::Node => self.node_defs(host_idx),
        };
        self.seeded(host_idx, defs)
    }

    /// node_exporter's families on one host, repeated (one more `instance`-local copy label per
    /// round) until the host has its share. Of 1,024 series over 40 scrapes: 61% constant, 9%
    /// slow (gauges that move now and then), 30% changing every scrape (counters, and 5%
    /// nanosecond-resolution durations such as scrape times).
    fn node_defs(&self, host_idx: usize) -> Vec<(Vec<Label>, Shape)> {
        let host = format!("host-{host_idx:03}");
        let mut defs: Vec<(Vec<Label>, Shape)> = Vec::new();
        let mut round = 0;
        let k = Shape::Constant;
        let counter = |rate: f64, decimals: i32, burst: bool| Shape::Counter { rate, decimals, burst };
        let gauge = |base: f64, spread: f64, quantum: f64| Shape::Gauge { base, spread, quantum };
        while defs.len() < self.series_per_host {
            let copy = round.to_string();
            let mut add = |name: &str, extra: &[(&'static str, String)], shape: Shape| {
                let mut ex: ExtraLabels = extra.to_vec();
                if round > 0 {
                    ex.push(("copy", copy.clone()));
                }
                defs.push((labels(name, &host, &ex), shape));
            };
            let modes = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"];
            for cpu in 0..8 {
                for (i, m) in modes.iter().enumerate() {
                    let rate = if *m == "idle" { 0.8 } else { 0.02 * (i as f64 + 1.0) };
                    let ex = [("cpu", cpu.to_string()), ("mode", m.to_string())];
                    // irq, steal and nice stay at 0 on most machines.
                    let shape = if i >= 4 && i != 5 { k(0.0) } else { counter(rate, 2, false) };
                    add("node_cpu_seconds_total", &ex, shape);
                }
                for m in ["user", "nice"] {
                    add("node_cpu_guest_seconds_total", &[("cpu", cpu.to_string()), ("mode", m.to_string())], k(0.0));
                }
            }
            for i in 0..45 {
                let shape = if i < 15 { gauge(2e9 + i as f64 * 1e8, 1e8, 4096.0) } else { k(1024.0 * i as f64) };
                add(&format!("node_memory_m{i:02}_bytes"), &[], shape);
            }
            for (d, mp) in [("sda1", "/"), ("sdb1", "/var"), ("sdc1", "/data"), ("tmpfs", "/run")] {
                let ex = [("device", d.to_string()), ("fstype", "ext4".to_string()), ("mountpoint", mp.to_string())];
                add("node_filesystem_size_bytes", &ex, k(1e11));
                add("node_filesystem_free_bytes", &ex, gauge(5.2e10, 1e9, 4096.0));
                add("node_filesystem_avail_bytes", &ex, gauge(5e10, 1e9, 4096.0));
                add("node_filesystem_files", &ex, k(6_553_600.0));
                add("node_filesystem_files_free", &ex, gauge(6e6, 1e4, 1.0));
                add("node_filesystem_readonly", &ex, k(0.0));
                add("node_filesystem_device_error", &ex, k(0.0));
            }
            for nic in ["eth0", "eth1", "lo"] {
                let ex = [("device", nic.to_string())];
                for (m, rate) in [
                    ("receive_bytes", 50_000.0),
                    ("transmit_bytes", 30_000.0),
                    ("receive_packets", 80.0),
                    ("transmit_packets", 60.0),
                ] {
                    add(&format!("node_network_{m}_total"), &ex, counter(rate, 0, true));
                }
                for m in [
                    "receive_errs",
                    "transmit_errs",
                    "receive_drop",
                    "transmit_drop",
                    "receive_fifo",
                    "transmit_fifo",
                    "receive_frame",
                    "transmit_colls",
                    "receive_compressed",
                    "transmit_compressed",
                    "receive_multicast",
                    "transmit_carrier",
                ] {
                    add(&format!("node_network_{m}_total"), &ex, k(0.0));
                }
                add("node_network_mtu_bytes", &ex, k(1500.0));
                add("node_network_up", &ex, k(1.0));
            }
            for disk in ["sda", "sdb"] {
                let ex = [("device", disk.to_string())];
                for (m, rate, dec) in [
                    ("reads_completed", 5.0, 0),
                    ("writes_completed", 20.0, 0),
                    ("read_bytes", 40_000.0, 0),
                    ("written_bytes", 200_000.0, 0),
                    ("io_time_seconds", 0.02, 3),
                    ("write_time_seconds", 0.03, 3),
                ] {
                    add(&format!("node_disk_{m}_total"), &ex, counter(rate, dec, true));
                }
                for i in 0..11 {
                    add(&format!("node_disk_other{i:02}_total"), &ex, k(0.0));
                }
            }
            for i in 0..40 {
                let shape = if i < 10 { counter(10.0 * (i + 1) as f64, 0, true) } else { k(i as f64) };
                add(&format!("node_vmstat_v{i:02}"), &[], shape);
            }
            for i in 0..80 {
                let shape = if i < 10 { counter(2.0 * (i + 1) as f64, 0, false) } else { k(0.0) };
                add(&format!("node_netstat_n{i:02}"), &[], shape);
            }
            for i in 0..15 {
                add(&format!("node_sockstat_s{i:02}"), &[], gauge(100.0 + i as f64, 10.0, 1.0));
            }
            for i in 0..40 {
                let ex = [("collector", format!("c{i:02}"))];
                add(
                    "node_scrape_collector_duration_seconds",
                    &ex,
                    Shape::Noise { base: 0.002, spread: 0.0015, quantum: 1e-9 },
                );
                add("node_scrape_collector_success", &ex, k(1.0));
            }
            for i in 0..10 {
                add(&format!("go_n{i:02}"), &[], Shape::Noise { base: 1e-4, spread: 5e-5, quantum: 1e-9 });
                add(&format!("go_c{i:02}_total"), &[], counter(50.0, 0, false));
                add(&format!("go_k{i:02}"), &[], k(7.0));
            }
            for l in ["1", "5", "15"] {
                add(&format!("node_load{l}"), &[], gauge(1.0, 0.8, 0.01));
            }
            add("node_procs_running", &[], gauge(3.0, 2.0, 1.0));
            add("node_procs_blocked", &[], gauge(0.0, 0.5, 1.0));
            add("node_context_switches_total", &[], counter(3000.0, 0, false));
            add("node_intr_total", &[], counter(2000.0, 0, false));
            add("node_forks_total", &[], counter(5.0, 0, false));
            add("node_boot_time_seconds", &[], k(1.7e9));
            add("node_time_seconds", &[], counter(1.0, 3, false));
            add("node_entropy_available_bits", &[], gauge(3500.0, 200.0, 1.0));
            add("node_uname_info", &[], k(1.0));
            add("node_os_info", &[], k(1.0));
            add("node_exporter_build_info", &[], k(1.0));
            add("node_timex_offset_seconds", &[], Shape::Noise { base: 0.0, spread: 1e-3, quantum: 1e-9 });
            add("node_timex_sync_status", &[], k(1.0));
            add("process_resident_memory_bytes", &[], gauge(2e7, 2e6, 4096.0));
            add("process_cpu_seconds_total", &[], counter(0.01, 2, false));
            round += 1;
        }
        defs.truncate(self.series_per_host);
        defs
    }

    fn docker_defs(&self, host_idx: usize) -> Vec<(Vec<Label>, Shape)> {
        let host = format!("host-{host_idx:03}");
        let mut defs: Vec<(Vec<Label>, Shape)> = Vec::new();
        let modes = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"];
        for cpu in 0..8 {
            for (i, m) in modes.iter().enumerate() {
                let rate = if *m == "idle" { 0.8 } else { 0.02 * (i as f64 + 1.0) };
                defs.push((
                    labels("node_cpu_seconds_total", &host, &[("cpu", cpu.to_string()), ("mode", m.to_string())]),
                    Shape::Counter { rate, decimals: 2, burst: false },
                ));
            }
        }
        for (i, m) in
            ["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "Active", "Inactive", "Dirty", "Slab", "Shmem"]
                .iter()
                .enumerate()
        {
            let shape = if i == 0 {
                Shape::Constant(16.0 * 1024.0 * 1024.0 * 1024.0)
            } else {
                Shape::Gauge { base: 2e9 + i as f64 * 1e8, spread: 1e8, quantum: 4096.0 }
            };
            defs.push((labels(&format!("node_memory_{m}_bytes"), &host, &[]), shape));
        }
        for (d, mp) in [("sda1", "/"), ("sdb1", "/var"), ("sdc1", "/data"), ("tmpfs", "/run")] {
            let ex = [("device", d.to_string()), ("fstype", "ext4".to_string()), ("mountpoint", mp.to_string())];
            defs.push((labels("node_filesystem_size_bytes", &host, &ex), Shape::Constant(1e11)));
            defs.push((
                labels("node_filesystem_avail_bytes", &host, &ex),
                Shape::Gauge { base: 5e10, spread: 1e9, quantum: 4096.0 },
            ));
            defs.push((labels("node_filesystem_files", &host, &ex), Shape::Constant(6_553_600.0)));
            defs.push((labels("node_filesystem_readonly", &host, &ex), Shape::Constant(0.0)));
        }
        for nic in ["eth0", "eth1"] {
            for (m, rate) in [
                ("receive_bytes", 50_000.0),
                ("transmit_bytes", 30_000.0),
                ("receive_packets", 80.0),
                ("transmit_packets", 60.0),
                ("receive_errs", 0.0),
                ("transmit_drop", 0.0),
            ] {
                defs.push((
                    labels(&format!("node_network_{m}_total"), &host, &[("device", nic.to_string())]),
                    if rate == 0.0 { Shape::Constant(0.0) } else { Shape::Counter { rate, decimals: 0, burst: true } },
                ));
            }
        }
        for l in ["1", "5", "15"] {
            defs.push((
                labels(&format!("node_load{l}"), &host, &[]),
                Shape::Gauge { base: 1.0, spread: 0.8, quantum: 0.01 },
            ));
        }
        // Containers, cAdvisor-style, until the host has its share of series.
        let mut c = 0;
        while defs.len() < self.series_per_host {
            let name = format!("app-{c:02}");
            let ex = |extra: &[(&'static str, String)]| -> ExtraLabels {
                let mut v = vec![("name", name.clone()), ("image", format!("registry/app{}:1.{}", c % 5, c % 3))];
                v.extend(extra.iter().cloned());
                v
            };
            let per: Vec<(String, ExtraLabels, Shape)> = vec![
                (
                    "container_cpu_usage_seconds_total".into(),
                    ex(&[]),
                    Shape::Counter { rate: 0.05, decimals: 3, burst: false },
                ),
                (
                    "container_cpu_user_seconds_total".into(),
                    ex(&[]),
                    Shape::Counter { rate: 0.04, decimals: 3, burst: false },
                ),
                (
                    "container_cpu_system_seconds_total".into(),
                    ex(&[]),
                    Shape::Counter { rate: 0.01, decimals: 3, burst: false },
                ),
                (
                    "container_memory_usage_bytes".into(),
                    ex(&[]),
                    Shape::Gauge { base: 3e8, spread: 5e7, quantum: 4096.0 },
                ),
                (
                    "container_memory_working_set_bytes".into(),
                    ex(&[]),
                    Shape::Gauge { base: 2e8, spread: 4e7, quantum: 4096.0 },
                ),
                ("container_spec_memory_limit_bytes".into(), ex(&[]), Shape::Constant(1073741824.0)),
                (
                    "container_network_receive_bytes_total".into(),
                    ex(&[("interface", "eth0".into())]),
                    Shape::Counter { rate: 2000.0, decimals: 0, burst: true },
                ),
                (
                    "container_network_transmit_bytes_total".into(),
                    ex(&[("interface", "eth0".into())]),
                    Shape::Counter { rate: 1500.0, decimals: 0, burst: true },
                ),
                (
                    "container_fs_reads_bytes_total".into(),
                    ex(&[]),
                    Shape::Counter { rate: 100.0, decimals: 0, burst: true },
                ),
                (
                    "container_fs_writes_bytes_total".into(),
                    ex(&[]),
                    Shape::Counter { rate: 400.0, decimals: 0, burst: true },
                ),
                ("container_pids".into(), ex(&[]), Shape::Gauge { base: 12.0, spread: 2.0, quantum: 1.0 }),
                ("container_start_time_seconds".into(), ex(&[]), Shape::Constant(1.7e9 + c as f64)),
            ];
            for (n, extra, shape) in per {
                defs.push((labels(&n, &host, &extra), shape));
            }
            for le in ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"] {
                let rate = 5.0 * le.parse::<f64>().map(|x| x.min(1.0)).unwrap_or(1.0) + 0.1;
                defs.push((
                    labels("http_request_duration_seconds_bucket", &host, &ex(&[("le", le.into())])),
                    Shape::Counter { rate, decimals: 0, burst: false },
                ));
            }
            c += 1;
        }
        defs.truncate(self.series_per_host);
        defs
    }

    fn seeded(&self, host_idx: usize, defs: Vec<(Vec<Label>, Shape)>) -> Vec<GenSeries> {
        defs.into_iter()
            .enumerate()
            .map(|(i, (labels, shape))| {
                let mut rng = SmallRng::seed_from_u64(self.seed ^ ((host_idx as u64) << 32) ^ i as u64);
                let value = match shape {
                    Shape::Constant(v) => v,
                    Shape::Counter { .. } => rng.random_range(0.0..1e6_f64).round(),
                    Shape::Gauge { base, .. } | Shape::Noise { base, .. } => base,
                };
                GenSeries { labels, shape, value, rng }
            })
            .collect()
    }

    /// The scrape timestamp of `host_idx` at slot `slot` (host offset plus jitter).
    pub fn timestamp(&self, start_ms: i64, host_idx: usize, slot: i64, rng: &mut SmallRng) -> i64 {
        let offset = (host_idx as i64 * 137) % self.interval_ms;
        let jitter = if self.jitter_ms > 0 { rng.random_range(-self.jitter_ms..=self.jitter_ms) } else { 0 };
        start_ms + slot * self.interval_ms + offset + jitter
    }

    /// One remote_write batch list for one host at one slot: every series one sample.
    pub fn host_slot(&self, series: &mut [GenSeries], ts: i64) -> Vec<TimeSeries> {
        let interval_s = self.interval_ms as f64 / 1000.0;
        series
            .iter_mut()
            .map(|s| TimeSeries { labels: s.labels.clone(), samples: vec![Sample::new(ts, s.next(interval_s))] })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_have_the_requested_series_count_and_unique_labels() {
        for profile in [Profile::Docker, Profile::Node] {
            let w = Workload { series_per_host: 1000, interval_ms: 15_000, jitter_ms: 5, seed: 1, profile };
            let s = w.host_series(0);
            assert_eq!(s.len(), 1000);
            let mut set = std::collections::HashSet::new();
            for x in &s {
                crowsnest_wire::labels::validate_sorted(&x.labels).unwrap();
                assert!(set.insert(x.labels.clone()), "duplicate {:?}", x.labels);
            }
        }
    }

    #[test]
    fn the_node_profile_is_mostly_constant_or_slow() {
        let w = Workload { series_per_host: 1024, interval_ms: 15_000, jitter_ms: 0, seed: 3, profile: Profile::Node };
        let mut s = w.host_series(0);
        let slots: Vec<Vec<TimeSeries>> = (0..40).map(|i| w.host_slot(&mut s, i * 15_000)).collect();
        let changes =
            |j: usize| slots.windows(2).filter(|p| p[0][j].samples[0].value != p[1][j].samples[0].value).count();
        let constant = (0..s.len()).filter(|j| changes(*j) == 0).count();
        let every_scrape = (0..s.len()).filter(|j| changes(*j) == 39).count();
        assert!(constant * 100 >= s.len() * 55, "{constant} of {} constant", s.len());
        assert!(every_scrape * 3 <= s.len(), "{every_scrape} of {} change every scrape", s.len());
    }

    #[test]
    fn counters_grow_and_are_deterministic() {
        let w = Workload { series_per_host: 100, interval_ms: 15_000, jitter_ms: 0, seed: 7, profile: Profile::Docker };
        let mut a = w.host_series(0);
        let mut b = w.host_series(0);
        let first = w.host_slot(&mut a, 0);
        let again = w.host_slot(&mut b, 0);
        assert_eq!(first, again);
        let second = w.host_slot(&mut a, 15_000);
        // node_cpu_seconds_total series come first and are counters.
        assert!(second[0].samples[0].value >= first[0].samples[0].value);
    }
}
