//! Turns one Docker stats answer (`GET /containers/{id}/stats?stream=false&one-shot=true`) into
//! cAdvisor-compatible series, with cAdvisor's names and units so community dashboards and alert
//! packs work (see google/cadvisor `docs/storage/prometheus.md`). Counters are exported raw and
//! cumulative (rates are the query's job); the `read` timestamp of the sample is not used.
//!
//! Memory follows cgroup v1 and v2 the way cAdvisor and the docker CLI do: working set =
//! usage − inactive_file (v1 `total_inactive_file`, v2 `inactive_file`), floored at 0;
//! rss = v1 `total_rss` / v2 `anon`; cache = v1 `total_cache` / v2 `file`.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerMemoryStats, ContainerStatsResponse};
use crowsnest_wire::Label;

use crate::series::Batch;

const NS: f64 = 1e9;

/// The cgroup memory numbers derived from `memory_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Memory {
    pub usage: u64,
    pub working_set: u64,
    pub rss: Option<u64>,
    pub cache: Option<u64>,
    pub mapped_file: Option<u64>,
    pub max_usage: Option<u64>,
    pub failcnt: Option<u64>,
}

fn first(stats: &HashMap<String, u64>, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| stats.get(*k).copied())
}

/// Computes memory figures for cgroup v1 (keys `total_*`) or v2 (`anon`, `file`, ...).
pub fn memory(m: &ContainerMemoryStats) -> Option<Memory> {
    let usage = m.usage?;
    let empty = HashMap::new();
    let s = m.stats.as_ref().unwrap_or(&empty);
    let inactive = first(s, &["total_inactive_file", "inactive_file"]).unwrap_or(0);
    let working_set = usage.saturating_sub(inactive);
    Some(Memory {
        usage,
        working_set,
        rss: first(s, &["total_rss", "anon", "rss"]),
        cache: first(s, &["total_cache", "file", "cache"]),
        mapped_file: first(s, &["total_mapped_file", "file_mapped", "mapped_file"]),
        max_usage: m.max_usage.filter(|v| *v > 0),
        failcnt: m.failcnt,
    })
}

/// Appends the stats series of one running container to `batch`.
pub fn push_stats(s: &ContainerStatsResponse, base: &[Label], ts: i64, batch: &mut Batch) {
    let with = |extra: &[(&str, &str)]| -> Vec<Label> {
        let mut v = base.to_vec();
        v.extend(extra.iter().map(|(k, val)| Label::new(*k, *val)));
        v
    };
    if let Some(cpu) = s.cpu_stats.as_ref() {
        if let Some(u) = cpu.cpu_usage.as_ref() {
            if let Some(total) = u.total_usage {
                batch.push("container_cpu_usage_seconds_total", &with(&[("cpu", "total")]), ts, total as f64 / NS);
            }
            if let Some(user) = u.usage_in_usermode {
                batch.push("container_cpu_user_seconds_total", base, ts, user as f64 / NS);
            }
            if let Some(sys) = u.usage_in_kernelmode {
                batch.push("container_cpu_system_seconds_total", base, ts, sys as f64 / NS);
            }
        }
        if let Some(t) = cpu.throttling_data.as_ref().filter(|t| t.periods.unwrap_or(0) > 0) {
            batch.push("container_cpu_cfs_periods_total", base, ts, t.periods.unwrap_or(0) as f64);
            batch.push("container_cpu_cfs_throttled_periods_total", base, ts, t.throttled_periods.unwrap_or(0) as f64);
            batch.push(
                "container_cpu_cfs_throttled_seconds_total",
                base,
                ts,
                t.throttled_time.unwrap_or(0) as f64 / NS,
            );
        }
    }
    if let Some(m) = s.memory_stats.as_ref().and_then(memory) {
        batch.push("container_memory_usage_bytes", base, ts, m.usage as f64);
        batch.push("container_memory_working_set_bytes", base, ts, m.working_set as f64);
        let opt = [
            ("container_memory_rss", m.rss),
            ("container_memory_cache", m.cache),
            ("container_memory_mapped_file", m.mapped_file),
            ("container_memory_max_usage_bytes", m.max_usage),
            ("container_memory_failcnt", m.failcnt),
        ];
        for (name, v) in opt {
            if let Some(v) = v {
                batch.push(name, base, ts, v as f64);
            }
        }
    }
    if let Some(nets) = s.networks.as_ref() {
        for (iface, n) in nets {
            let l = with(&[("interface", iface)]);
            let pairs = [
                ("container_network_receive_bytes_total", n.rx_bytes),
                ("container_network_receive_packets_total", n.rx_packets),
                ("container_network_receive_errors_total", n.rx_errors),
                ("container_network_receive_packets_dropped_total", n.rx_dropped),
                ("container_network_transmit_bytes_total", n.tx_bytes),
                ("container_network_transmit_packets_total", n.tx_packets),
                ("container_network_transmit_errors_total", n.tx_errors),
                ("container_network_transmit_packets_dropped_total", n.tx_dropped),
            ];
            for (name, v) in pairs {
                batch.push(name, &l, ts, v.unwrap_or(0) as f64);
            }
        }
    }
    for (device, (r, w)) in block_io(s) {
        let l = with(&[("device", &device)]);
        batch.push("container_fs_reads_bytes_total", &l, ts, r as f64);
        batch.push("container_fs_writes_bytes_total", &l, ts, w as f64);
    }
    if let Some(p) = s.pids_stats.as_ref() {
        if let Some(cur) = p.current {
            batch.push("container_threads", base, ts, cur as f64);
        }
        if let Some(lim) = p.limit.filter(|l| *l > 0 && *l < u64::MAX / 2) {
            batch.push("container_threads_max", base, ts, lim as f64);
        }
    }
}

/// Read and written bytes per `major:minor` device: v1 ops `Read`/`Write`, v2 `read`/`write`.
pub fn block_io(s: &ContainerStatsResponse) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let entries = s.blkio_stats.as_ref().and_then(|b| b.io_service_bytes_recursive.as_ref());
    for e in entries.into_iter().flatten() {
        let dev = format!("{}:{}", e.major.unwrap_or(0), e.minor.unwrap_or(0));
        let op = e.op.as_deref().unwrap_or("").to_ascii_lowercase();
        let v = e.value.unwrap_or(0);
        let slot = out.entry(dev).or_default();
        match op.as_str() {
            "read" => slot.0 += v,
            "write" => slot.1 += v,
            _ => {}
        }
    }
    out
}

/// Total CPU nanoseconds and summed network bytes, for rate computation.
pub fn counters(s: &ContainerStatsResponse) -> (Option<u64>, u64, u64) {
    let cpu = s.cpu_stats.as_ref().and_then(|c| c.cpu_usage.as_ref()).and_then(|u| u.total_usage);
    let (mut rx, mut tx) = (0, 0);
    for n in s.networks.iter().flat_map(|m| m.values()) {
        rx += n.rx_bytes.unwrap_or(0);
        tx += n.tx_bytes.unwrap_or(0);
    }
    (cpu, rx, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ContainerStatsResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn working_set_cgroup_v1() {
        let s = parse(
            r#"{"memory_stats":{"usage":104857600,"max_usage":120000000,"limit":2147483648,"failcnt":0,
            "stats":{"cache":41943040,"rss":50000000,"total_cache":41943040,"total_rss":50000000,"total_inactive_file":31457280,"inactive_file":1,"total_mapped_file":4096}}}"#,
        );
        let m = memory(s.memory_stats.as_ref().unwrap()).unwrap();
        assert_eq!(m.working_set, 104_857_600 - 31_457_280);
        assert_eq!(m.rss, Some(50_000_000));
        assert_eq!(m.cache, Some(41_943_040));
        assert_eq!(m.mapped_file, Some(4096));
        assert_eq!(m.max_usage, Some(120_000_000));
    }

    #[test]
    fn working_set_cgroup_v2_and_floor() {
        let s = parse(
            r#"{"memory_stats":{"usage":5000000,"limit":9999999999,
            "stats":{"anon":3000000,"file":1500000,"inactive_file":1200000,"active_file":300000,"file_mapped":10,"shmem":0,"pgfault":77}}}"#,
        );
        let m = memory(s.memory_stats.as_ref().unwrap()).unwrap();
        assert_eq!(m.working_set, 3_800_000);
        assert_eq!(m.rss, Some(3_000_000));
        assert_eq!(m.cache, Some(1_500_000));
        assert_eq!(m.max_usage, None);
        let s = parse(r#"{"memory_stats":{"usage":100,"stats":{"inactive_file":500}}}"#);
        assert_eq!(memory(s.memory_stats.as_ref().unwrap()).unwrap().working_set, 0);
    }

    #[test]
    fn series_names_units_and_labels() {
        let s = parse(
            r#"{"read":"2026-01-01T00:00:00Z",
            "cpu_stats":{"cpu_usage":{"total_usage":2500000000,"usage_in_usermode":2000000000,"usage_in_kernelmode":500000000},"online_cpus":4,
                "throttling_data":{"periods":10,"throttled_periods":2,"throttled_time":300000000}},
            "memory_stats":{"usage":1000,"stats":{"inactive_file":100,"anon":700,"file":200}},
            "networks":{"eth0":{"rx_bytes":10,"rx_packets":1,"rx_errors":0,"rx_dropped":0,"tx_bytes":20,"tx_packets":2,"tx_errors":0,"tx_dropped":0}},
            "blkio_stats":{"io_service_bytes_recursive":[{"major":8,"minor":0,"op":"read","value":4096},{"major":8,"minor":0,"op":"write","value":8192}]},
            "pids_stats":{"current":3,"limit":18446744073709551615}}"#,
        );
        let mut b = Batch::new();
        push_stats(&s, &[Label::new("name", "web")], 1000, &mut b);
        let get = |name: &str| -> Vec<(Vec<Label>, f64)> {
            b.series
                .iter()
                .filter(|t| t.labels.iter().any(|l| l.name == "__name__" && l.value == name))
                .map(|t| (t.labels.clone(), t.samples[0].value))
                .collect()
        };
        assert_eq!(get("container_cpu_usage_seconds_total")[0].1, 2.5);
        assert!(get("container_cpu_usage_seconds_total")[0].0.contains(&Label::new("cpu", "total")));
        assert_eq!(get("container_cpu_user_seconds_total")[0].1, 2.0);
        assert_eq!(get("container_cpu_system_seconds_total")[0].1, 0.5);
        assert_eq!(get("container_cpu_cfs_throttled_seconds_total")[0].1, 0.3);
        assert_eq!(get("container_memory_working_set_bytes")[0].1, 900.0);
        assert_eq!(get("container_network_transmit_bytes_total")[0].1, 20.0);
        assert!(get("container_network_transmit_bytes_total")[0].0.contains(&Label::new("interface", "eth0")));
        assert_eq!(get("container_fs_reads_bytes_total")[0].1, 4096.0);
        assert_eq!(get("container_fs_writes_bytes_total")[0].1, 8192.0);
        assert_eq!(get("container_threads")[0].1, 3.0);
        assert!(get("container_threads_max").is_empty(), "unlimited pids are not a limit");
        for t in &b.series {
            assert!(t.labels.contains(&Label::new("name", "web")));
        }
    }

    #[test]
    fn empty_stats_of_stopped_container_give_nothing() {
        let s = parse(r#"{"id":"x","name":"/x","read":"0001-01-01T00:00:00Z"}"#);
        let mut b = Batch::new();
        push_stats(&s, &[], 0, &mut b);
        assert!(b.is_empty());
    }
}
