//! Storage-engine micro-benchmarks (criterion): chunk encode/decode in samples/s (head XOR and
//! closed chunks), postings intersection, and `Db::append` throughput. Before the timed runs it
//! prints bytes per sample for a realistic mixed workload (constant series, decimal counters with
//! resets, gauges; ±2 ms timestamp jitter) after `Db::flush`.
//!
//! Run: `cargo bench -p crowsnest-store --bench chunks`. Knobs (env): `BENCH_SERIES`,
//! `BENCH_STEPS` (bytes-per-sample workload), `BENCH_RSS_SERIES`, `BENCH_CACHE_MB` (RSS run),
//! `BENCH_SKIP_CRITERION` (only the two workload measurements).

use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};

use criterion::{Criterion, Throughput, criterion_group};
use crowsnest_store::db::chunk;
use crowsnest_store::db::index::{Postings, encode_labels};
use crowsnest_store::db::xor::XorChunk;
use crowsnest_store::{Db, StoreConfig};
use crowsnest_wire::{Labels, Matcher, Sample, TimeSeries};

/// Deterministic pseudo-random numbers (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn jitter(&mut self) -> i64 {
        (self.next() % 5) as i64 - 2
    }
}

/// One series' value at step `i`: kind 0 constant, 1 decimal counter with resets, 2 byte counter,
/// 3 two-decimal gauge.
fn value(kind: u64, i: i64, rng: &mut Rng, state: &mut f64) -> f64 {
    match kind {
        0 => 1.0,
        1 => {
            if i % 2000 == 1999 {
                *state = 0.0;
            }
            *state += (rng.next() % 300) as f64 / 100.0;
            (*state * 100.0).round() / 100.0
        }
        2 => {
            *state += (rng.next() % 40_000) as f64;
            *state
        }
        _ => ((rng.next() % 10_000) as f64 / 100.0 * 100.0).round() / 100.0,
    }
}

fn workload(series: usize, samples: usize) -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..series)
        .map(|s| {
            let kind = (s % 10) as u64 % 4;
            let labels = Labels::from_pairs([
                ("__name__".to_string(), format!("metric_{}", s % 50)),
                ("instance".to_string(), format!("host-{}:9100", s % 20)),
                ("job".to_string(), "node".to_string()),
                ("id".to_string(), s.to_string()),
            ]);
            let mut state = 0.0;
            let v = (0..samples as i64)
                .map(|i| {
                    Sample::new(1_700_000_000_000 + i * 15_000 + rng.jitter(), value(kind, i, &mut rng, &mut state))
                })
                .collect();
            (labels, v)
        })
        .collect()
}

fn bytes_per_sample() {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = crowsnest_wire::ops::new_registry();
    let db = Db::open(StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() }, &reg).expect("open");
    let st0 = db.stats();
    eprintln!("empty store: sled {} bytes, chunk files {} bytes", st0.sled_bytes, st0.chunk_file_bytes);
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (series, steps) = (env("BENCH_SERIES", 2_000), env("BENCH_STEPS", 720));
    let data = workload(series, steps);
    let started = std::time::Instant::now();
    for step in (0..steps).step_by(10) {
        let batch: Vec<TimeSeries> = data
            .iter()
            .map(|(l, s)| TimeSeries {
                labels: l.clone().into_vec(),
                samples: s[step..(step + 10).min(steps)].to_vec(),
            })
            .collect();
        db.append(batch).expect("append");
    }
    let head_bytes = db.stats().head_bytes;
    let secs = started.elapsed().as_secs_f64();
    db.flush().expect("flush");
    let st = db.stats();
    let f = db.fsck().expect("fsck");
    let n = (series * steps) as f64;
    eprintln!(
        "workload {series} series x {steps} samples (15 s apart, ±2 ms jitter): ingest {:.0} samples/s (1 thread, WAL fsync per 20k-sample batch); \
         head {:.0} B/series before flush",
        n / secs,
        head_bytes as f64 / series as f64
    );
    eprintln!(
        "after flush: {} chunks, live chunk payload {:.3} B/sample; on disk {:.3} B/sample (chunk files {:.3}, sled {:.3}, WAL {:.3})",
        f.chunks_checked,
        f.chunk_bytes as f64 / f.samples_checked.max(1) as f64,
        (st.sled_bytes + st.chunk_file_bytes + st.wal_bytes) as f64 / n,
        st.chunk_file_bytes as f64 / n,
        st.sled_bytes as f64 / n,
        st.wal_bytes as f64 / n
    );
    drop(db);
    let db = Db::open(StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() }, &reg).expect("reopen");
    let st = db.stats();
    eprintln!(
        "after reopen: on disk {:.3} B/sample (sled {:.3})",
        (st.sled_bytes + st.chunk_file_bytes + st.wal_bytes) as f64 / n,
        st.sled_bytes as f64 / n
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// RSS growth per active series (`BENCH_RSS_SERIES`, default 200,000 series, 4 samples each).
fn rss_per_series() {
    let n: usize = std::env::var("BENCH_RSS_SERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tmp");
    let reg = crowsnest_wire::ops::new_registry();
    let mut cfg = StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() };
    if let Some(mb) = std::env::var("BENCH_CACHE_MB").ok().and_then(|v| v.parse::<u64>().ok()) {
        cfg.engine.cache_capacity_bytes = mb << 20;
    }
    let db = Db::open(cfg, &reg).expect("open");
    let before = rss_kib();
    let started = std::time::Instant::now();
    for step in 0..4i64 {
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let batch: Vec<TimeSeries> = chunk
                .iter()
                .map(|i| TimeSeries {
                    labels: Labels::from_pairs([
                        ("__name__".to_string(), format!("container_metric_{}", i % 40)),
                        ("container".to_string(), format!("c{}", i / 40)),
                        ("image".to_string(), format!("registry.example/app-{}:1.2.3", i % 300)),
                        ("instance".to_string(), "host-1:9300".to_string()),
                        ("job".to_string(), "cadvisor".to_string()),
                    ])
                    .into_vec(),
                    samples: vec![Sample::new(1_700_000_000_000 + step * 15_000, (*i as i64 * step) as f64)],
                })
                .collect();
            db.append(batch).expect("append");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = rss_kib();
    let st = db.stats();
    eprintln!(
        "{n} active series: RSS +{} KiB = {:.0} B/series (head structures {:.0} B/series); new-series ingest {:.0} samples/s",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 * 1024.0 / n as f64,
        st.head_bytes as f64 / n as f64,
        (n * 4) as f64 / secs
    );
}

fn codecs(c: &mut Criterion) {
    let data = workload(40, 120);
    let n: usize = data.iter().map(|d| d.1.len()).sum();
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("xor_encode", |b| {
        b.iter(|| {
            for (_, s) in &data {
                let mut c = XorChunk::new();
                for x in s {
                    c.append(x.timestamp, x.value);
                }
                black_box(c.byte_len());
            }
        })
    });
    let xors: Vec<XorChunk> = data
        .iter()
        .map(|(_, s)| {
            let mut c = XorChunk::new();
            s.iter().for_each(|x| c.append(x.timestamp, x.value));
            c
        })
        .collect();
    g.bench_function("xor_decode", |b| b.iter(|| xors.iter().map(|c| c.iter().count()).sum::<usize>()));
    g.bench_function("closed_encode", |b| b.iter(|| data.iter().map(|(_, s)| chunk::encode(s).len()).sum::<usize>()));
    let closed: Vec<Vec<u8>> = data.iter().map(|(_, s)| chunk::encode(s)).collect();
    g.bench_function("closed_decode", |b| {
        b.iter(|| closed.iter().map(|c| chunk::decode(c).map(|x| x.1.len()).unwrap_or(0)).sum::<usize>())
    });
    g.finish();
}

fn postings(c: &mut Criterion) {
    let mut p = Postings::default();
    for s in 0..100_000u32 {
        let l = Labels::from_pairs([
            ("__name__".to_string(), format!("metric_{}", s % 100)),
            ("instance".to_string(), format!("host-{}", s % 1000)),
            ("job".to_string(), format!("job-{}", s % 7)),
        ]);
        let mut e = Vec::new();
        encode_labels(l.as_slice(), &mut e);
        p.add(s, &e);
    }
    let ms = [Matcher::equal("__name__", "metric_3"), Matcher::equal("job", "job-3")];
    let re = [
        Matcher::equal("job", "job-1"),
        Matcher::new(crowsnest_wire::MatchOp::Regex, "instance", "host-1.*").expect("re"),
    ];
    let mut g = c.benchmark_group("postings");
    g.bench_function("intersect_2_equal_100k_series", |b| b.iter(|| p.select(black_box(&ms)).len()));
    g.bench_function("equal_and_regex_100k_series", |b| b.iter(|| p.select(black_box(&re)).len()));
    g.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let reg = crowsnest_wire::ops::new_registry();
    let db = Db::open(StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() }, &reg).expect("open");
    let labels: Vec<Labels> = workload(10_000, 1).into_iter().map(|x| x.0).collect();
    let t = AtomicI64::new(1_700_000_000_000);
    let mut g = c.benchmark_group("db");
    g.throughput(Throughput::Elements(labels.len() as u64));
    g.sample_size(20);
    g.bench_function("append_10k_series_1_sample", |b| {
        b.iter(|| {
            let ts = t.fetch_add(15_000, Ordering::Relaxed);
            let batch: Vec<TimeSeries> = labels
                .iter()
                .map(|l| TimeSeries { labels: l.clone().into_vec(), samples: vec![Sample::new(ts, 1.5)] })
                .collect();
            db.append(batch).expect("append").accepted
        })
    });
    g.finish();
}

criterion_group!(benches, codecs, postings, append);

fn main() {
    bytes_per_sample();
    rss_per_series();
    if std::env::var_os("BENCH_SKIP_CRITERION").is_some() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
