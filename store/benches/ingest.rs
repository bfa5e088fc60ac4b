//! remote_write ingest benchmarks (criterion): what `POST /api/v1/write` costs per sample, minus
//! HTTP. Bodies are shaped like the project's load test: 20k series (node_exporter CPU, network,
//! filesystem and disk series with external labels; cAdvisor container series with long `id` and
//! `image` values), 8–10 labels each, sent as requests of 2,000 series × 1 sample, timestamps
//! advancing 15 s per round (one round = 10 requests = every series once).
//!
//! Before the criterion runs it prints the process CPU time (user + sys, all threads, so the
//! store's own background work counts) per million samples for decode + append over
//! `BENCH_ROUNDS` pre-encoded rounds into a fresh `Db` in a temp dir; that is the number to
//! compare with VictoriaMetrics' server CPU per sample.
//!
//! Run: `cargo bench -p crowsnest-store --bench ingest`. Knobs (env): `BENCH_ROUNDS` (default 30),
//! `BENCH_SKIP_OWNED` (only the borrowed path's CPU figure), `BENCH_FRESH_SCRATCH` (allocate the
//! decompression buffer per request instead of reusing it), `BENCH_SKIP_CRITERION`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use crowsnest_store::{Db, StoreConfig};
use crowsnest_wire::remote::WriteRequest;
use crowsnest_wire::remote::borrowed::WriteRequestRef;
use crowsnest_wire::{Labels, Sample, TimeSeries};

const SERIES: usize = 20_000;
const PER_REQUEST: usize = 2_000;
const STEP_MS: i64 = 15_000;
const T0: i64 = 1_700_000_000_000;
const MAX_DECOMPRESSED: usize = 32 << 20;

fn node_series(out: &mut Vec<Labels>) {
    let ext = [("cluster", "prod-eu1"), ("env", "production"), ("job", "node")];
    let modes = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"];
    let net = ["receive_bytes", "receive_packets", "receive_errs", "receive_drop"];
    let net2 = ["transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop"];
    let disks = ["nvme0n1", "nvme1n1", "sda", "sdb"];
    let disk_metrics = [
        "node_disk_read_bytes_total",
        "node_disk_written_bytes_total",
        "node_disk_reads_completed_total",
        "node_disk_writes_completed_total",
        "node_disk_io_time_seconds_total",
        "node_disk_read_time_seconds_total",
        "node_disk_write_time_seconds_total",
    ];
    let mounts =
        [("/", "/dev/nvme0n1p2", "ext4"), ("/boot", "/dev/nvme0n1p1", "vfat"), ("/var/lib", "/dev/sda1", "xfs")];
    for host in 0..50 {
        let instance = format!("host-{host:03}:9100");
        let with = |pairs: &[(&str, &str)]| {
            Labels::from_pairs(pairs.iter().chain(ext.iter()).chain([("instance", instance.as_str())].iter()).copied())
        };
        for cpu in 0..16 {
            let cpu = cpu.to_string();
            for mode in modes {
                out.push(with(&[("__name__", "node_cpu_seconds_total"), ("cpu", &cpu), ("mode", mode)]));
            }
        }
        for dev in ["eth0", "eth1", "lo", "docker0"] {
            for m in net.iter().chain(net2.iter()) {
                let name = format!("node_network_{m}_total");
                out.push(with(&[("__name__", &name), ("device", dev)]));
            }
        }
        for (mount, dev, fs) in mounts {
            for m in ["node_filesystem_size_bytes", "node_filesystem_free_bytes", "node_filesystem_avail_bytes"] {
                out.push(with(&[("__name__", m), ("device", dev), ("fstype", fs), ("mountpoint", mount)]));
            }
        }
        for dev in disks {
            for m in disk_metrics {
                out.push(with(&[("__name__", m), ("device", dev)]));
            }
        }
        // 128 + 32 + 9 + 28 = 197 per host; pad to 200 with memory gauges.
        for m in ["node_memory_MemAvailable_bytes", "node_memory_MemFree_bytes", "node_memory_Cached_bytes"] {
            out.push(with(&[("__name__", m)]));
        }
    }
}

fn cadvisor_series(out: &mut Vec<Labels>, n: usize) {
    let metrics = [
        "container_cpu_usage_seconds_total",
        "container_cpu_user_seconds_total",
        "container_cpu_system_seconds_total",
        "container_memory_working_set_bytes",
        "container_memory_rss",
        "container_memory_cache",
        "container_memory_usage_bytes",
        "container_network_receive_bytes_total",
        "container_network_transmit_bytes_total",
        "container_fs_reads_bytes_total",
        "container_fs_writes_bytes_total",
        "container_spec_memory_limit_bytes",
        "container_spec_cpu_shares",
        "container_last_seen",
        "container_start_time_seconds",
        "container_threads",
        "container_processes",
        "container_file_descriptors",
        "container_sockets",
        "container_oom_events_total",
    ];
    let namespaces = ["default", "kube-system", "monitoring", "payments", "search"];
    for c in 0..n / metrics.len() {
        let ns = namespaces[c % namespaces.len()];
        let app = format!("app-{}", c % 37);
        let pod = format!("{app}-7d9f8c6b5-{:05x}", c * 7919 % 0xfffff);
        let id = format!(
            "/kubepods/burstable/pod{:08x}-1b2c-4d5e-8f90-{:012x}/{:064x}",
            c * 31,
            c * 131,
            c as u128 * 0x9e37_79b9
        );
        let image = format!("registry.example.com/{ns}/{app}:v1.{}.{}", c % 9, c % 13);
        let name = format!("k8s_{app}_{pod}_{ns}_{:08x}_0", c * 17);
        let instance = format!("node-{:02}.k8s.example.com:4194", c % 40);
        for m in metrics {
            out.push(Labels::from_pairs([
                ("__name__", m),
                ("container", app.as_str()),
                ("id", id.as_str()),
                ("image", image.as_str()),
                ("instance", instance.as_str()),
                ("job", "cadvisor"),
                ("name", name.as_str()),
                ("namespace", ns),
                ("pod", pod.as_str()),
            ]));
        }
    }
}

/// The 20k series, in the order they are sent.
fn series() -> Vec<Labels> {
    let mut v = Vec::with_capacity(SERIES);
    node_series(&mut v);
    let rest = SERIES - v.len();
    cadvisor_series(&mut v, rest);
    assert_eq!(v.len(), SERIES);
    v
}

/// One round's requests (snappy-compressed bodies) at `round`'s timestamp.
fn encode_round(series: &[Labels], round: i64) -> Vec<Vec<u8>> {
    let ts = T0 + round * STEP_MS;
    series
        .chunks(PER_REQUEST)
        .enumerate()
        .map(|(r, chunk)| {
            let timeseries = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let k = (r * PER_REQUEST + i) as f64;
                    // Counters that grow by a series-specific amount, so chunks see real XOR work.
                    TimeSeries {
                        labels: l.clone().into_vec(),
                        samples: vec![Sample::new(ts, k * 10.0 + round as f64 * (k % 7.0 + 0.25))],
                    }
                })
                .collect();
            WriteRequest { timeseries, metadata: vec![] }.encode_snappy()
        })
        .collect()
}

/// What the handler does with one body, up to the durable append: borrowed decoding into a
/// reused decompression buffer, then `Db::append_request`.
fn ingest(db: &Db, body: &[u8], scratch: &mut Vec<u8>) -> u64 {
    let req = WriteRequestRef::decode_snappy(body, MAX_DECOMPRESSED, scratch).expect("decode");
    let out = db.append_request(&req).expect("append");
    assert!(out.rejected.is_empty(), "{:?}", out.rejected.first().map(|r| &r.detail));
    out.accepted
}

/// The previous handler path: prost's owned decoding, then `Db::append`.
fn ingest_owned(db: &Db, body: &[u8]) -> u64 {
    let req = WriteRequest::decode_snappy(body, MAX_DECOMPRESSED).expect("decode");
    let out = db.append(req.timeseries).expect("append");
    assert!(out.rejected.is_empty(), "{:?}", out.rejected.first().map(|r| &r.detail));
    out.accepted
}

fn open_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = crowsnest_wire::ops::new_registry();
    let db = Db::open(StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() }, &reg).expect("open");
    (dir, db)
}

/// Process CPU time (user + system, all threads), at clock-tick (10 ms) resolution.
fn cpu_time() -> Duration {
    // The workspace forbids unsafe code, so /proc rather than getrusage.
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm field, in clock ticks.
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

/// CPU seconds per million samples, steady state (series already exist), for the borrowed
/// path and then the owned one (`owned: true`), each into its own fresh `Db`.
fn cpu_per_million(owned: bool) {
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30i64);
    let series = series();
    let bodies: Vec<Vec<Vec<u8>>> = (0..=rounds).map(|r| encode_round(&series, r)).collect();
    let raw: usize = bodies[1].iter().map(|b| snap::raw::decompress_len(b).unwrap_or(0)).sum();
    let zipped: usize = bodies[1].iter().map(Vec::len).sum();
    eprintln!("one round: {} requests, {zipped} bytes snappy, {raw} bytes protobuf", bodies[1].len());
    let (_dir, db) = open_db();
    let mut scratch = Vec::new();
    // BENCH_FRESH_SCRATCH: a new decompression buffer per request, to see what reusing it saves.
    let fresh = std::env::var_os("BENCH_FRESH_SCRATCH").is_some();
    let mut ingest = |db: &Db, b: &[u8]| match (owned, fresh) {
        (true, _) => ingest_owned(db, b),
        (false, true) => ingest(db, b, &mut Vec::new()),
        (false, false) => ingest(db, b, &mut scratch),
    };
    // Round 0 creates the series; not measured.
    let created = Instant::now();
    for b in &bodies[0] {
        ingest(&db, b);
    }
    eprintln!("creating {SERIES} series: {:.3} s wall", created.elapsed().as_secs_f64());
    let (wall0, cpu0) = (Instant::now(), cpu_time());
    let mut samples = 0u64;
    for round in &bodies[1..] {
        for b in round {
            samples += ingest(&db, b);
        }
    }
    let (wall, cpu) = (wall0.elapsed().as_secs_f64(), (cpu_time() - cpu0).as_secs_f64());
    let m = samples as f64 / 1e6;
    eprintln!(
        "{} decode+append, {samples} samples: {:.3} CPU-s per million samples ({:.3} wall-s per million)",
        if owned { "prost/Vec<TimeSeries>" } else { "borrowed" },
        cpu / m,
        wall / m
    );
}

fn decode(c: &mut Criterion) {
    let series = series();
    let bodies = encode_round(&series, 1);
    let raw: Vec<Vec<u8>> =
        bodies.iter().map(|b| snap::raw::Decoder::new().decompress_vec(b).expect("snappy")).collect();
    let mut g = c.benchmark_group("remote_write_decode");
    g.throughput(Throughput::Elements(PER_REQUEST as u64));
    g.bench_function("prost_2000_series", |b| {
        b.iter(|| {
            use prost::Message;
            WriteRequest::decode(black_box(raw[3].as_slice())).expect("decode").timeseries.len()
        })
    });
    g.bench_function("borrowed_2000_series", |b| {
        b.iter(|| WriteRequestRef::decode(black_box(raw[3].as_slice())).expect("decode").len())
    });
    g.bench_function("snappy_2000_series", |b| {
        b.iter(|| snap::raw::Decoder::new().decompress_vec(black_box(&bodies[3])).expect("snappy").len())
    });
    let mut scratch = Vec::new();
    g.bench_function("snappy_reused_buffer_2000_series", |b| {
        b.iter(|| {
            crowsnest_wire::remote::decompress_snappy(black_box(&bodies[3]), MAX_DECOMPRESSED, &mut scratch)
                .expect("snappy")
                .len()
        })
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let series = series();
    let (_dir, db) = open_db();
    let mut scratch = Vec::new();
    for b in encode_round(&series, 0) {
        ingest(&db, &b, &mut scratch);
    }
    let mut round = 1i64;
    let mut bodies = encode_round(&series, round);
    let mut next = 0usize;
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(PER_REQUEST as u64));
    g.sample_size(20);
    g.bench_function("decode_append_2000_series", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if next == bodies.len() {
                    round += 1;
                    bodies = encode_round(&series, round);
                    next = 0;
                }
                let start = Instant::now();
                black_box(ingest(&db, &bodies[next], &mut scratch));
                spent += start.elapsed();
                next += 1;
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, decode, append);

fn main() {
    cpu_per_million(false);
    if std::env::var_os("BENCH_SKIP_OWNED").is_none() {
        cpu_per_million(true);
    }
    if std::env::var_os("BENCH_SKIP_CRITERION").is_none() {
        benches();
        criterion::Criterion::default().configure_from_args().final_summary();
    }
}
