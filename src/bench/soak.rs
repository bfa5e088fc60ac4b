//! `crowsnest bench soak`: a long-running mixed load against a store — remote_write at a fixed
//! sample rate plus concurrent dashboard queries — that watches the server's memory and, at the
//! end, checks through the query API that every acknowledged sample is stored.
//!
//! Load shape: `--series` series `soak_samples{run,series}` (the `run` label is random per run, so
//! old runs never count) each get one sample per round; a round lasts `series / rate` seconds and
//! its requests (`--batch` series each) are spread evenly over it by `--connections` senders. A
//! request failing with a 5xx or a transport error is retried (like a remote_write sender) until
//! it succeeds or the run's grace period ends; only 2xx answers count as acknowledged. Dashboard
//! queries (`--query-concurrency` loops) cycle through typical panels over the soak series.
//! Memory is the server's RSS from `/proc/<pid>/status` (`--pid`), sampled every `--rss-every`.
//!
//! Verification: `sum(count_over_time(soak_samples{run="…"}[<run length>]))` must equal the
//! acknowledged sample count. A lost sample makes the command fail.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crowsnest_wire::remote::headers;
use crowsnest_wire::{Label, Sample, TimeSeries, WriteRequest};
use serde::Serialize;

use super::procstat::rss_bytes;

/// Locks, ignoring poisoning (a panicked task only ever held plain counters).
trait LockOk<T> {
    fn lock_ok(&self) -> MutexGuard<'_, T>;
}

impl<T> LockOk<T> for Mutex<T> {
    fn lock_ok(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crowsnest_wire::duration::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Base URL of the store (remote_write goes to <url>/api/v1/write, queries to <url>/api/v1/…).
    #[arg(long)]
    pub url: String,
    /// How long to write (Prometheus duration syntax: 90s, 10m).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub duration: Duration,
    /// Number of series written.
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,
    /// Samples per second over all series.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Concurrent dashboard-query loops.
    #[arg(long, default_value_t = 4)]
    pub query_concurrency: usize,
    /// Concurrent remote_write senders.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Series per remote_write request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// PID of the store, to sample its RSS.
    #[arg(long)]
    pub pid: Option<u32>,
    /// RSS sampling period.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub rss_every: Duration,
    /// Write the JSON result here as well as to stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut v: Vec<f64>) -> Latency {
        if v.is_empty() {
            return Latency::default();
        }
        v.sort_by(f64::total_cmp);
        let pct = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Latency { count: v.len(), p50_ms: pct(0.5), p99_ms: pct(0.99), max_ms: v[v.len() - 1] }
    }
}

/// The result of one soak run.
#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    pub url: String,
    pub run: String,
    pub seconds: f64,
    pub series: usize,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub samples_acknowledged: u64,
    pub samples_found: u64,
    pub samples_lost: i64,
    pub write_requests_failed: u64,
    pub write_retries: u64,
    pub write: Latency,
    pub query: Latency,
    pub query_errors: u64,
    pub rss_first_bytes: Option<u64>,
    pub rss_last_bytes: Option<u64>,
    pub rss_max_bytes: Option<u64>,
    /// (seconds since start, RSS bytes) every `--rss-every`.
    pub rss_samples: Vec<(f64, u64)>,
}

#[derive(Default)]
struct WriteStats {
    latencies: Vec<f64>,
    acked: u64,
    failed: u64,
    retries: u64,
}

fn validate(a: &SoakArgs) -> anyhow::Result<()> {
    if a.series == 0 || a.batch == 0 || a.connections == 0 || !a.rate.is_finite() || a.rate <= 0.0 {
        bail!("series, batch, connections and rate must be positive");
    }
    if a.series as f64 / a.rate < 0.001 {
        bail!("rate too high for the series count: a round would be shorter than 1 ms");
    }
    Ok(())
}

/// One request: series `[from, to)` at timestamp `ts` with value `round`.
fn body(run: &str, from: usize, to: usize, ts: i64, round: u64) -> Vec<u8> {
    let timeseries = (from..to)
        .map(|i| {
            let mut labels = vec![
                Label::new("__name__", "soak_samples"),
                Label::new("host", format!("host-{}", i % 100)),
                Label::new("run", run),
                Label::new("series", i.to_string()),
            ];
            labels.sort();
            TimeSeries { labels, samples: vec![Sample::new(ts, round as f64)] }
        })
        .collect();
    WriteRequest { timeseries, metadata: vec![] }.encode_snappy()
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<(), (bool, String)> {
    let r = client
        .post(url)
        .header(headers::CONTENT_ENCODING, headers::SNAPPY)
        .header(headers::CONTENT_TYPE, headers::PROTOBUF)
        .header(headers::VERSION, headers::VERSION_1)
        .body(body)
        .send()
        .await;
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => {
            let status = resp.status();
            let retry = status.is_server_error() || status.as_u16() == 429;
            let text = resp.text().await.unwrap_or_default();
            Err((retry, format!("{status} {}", text.chars().take(200).collect::<String>())))
        }
        Err(e) => Err((true, e.to_string())),
    }
}

/// Runs one sender: the chunks `conn, conn + connections, …` of every round.
#[allow(clippy::too_many_arguments)]
async fn sender(
    client: reqwest::Client,
    url: String,
    run: Arc<str>,
    a: Arc<SoakArgs>,
    conn: usize,
    start: Instant,
    start_ms: i64,
    stats: Arc<Mutex<WriteStats>>,
) {
    let round_ms = (a.series as f64 / a.rate * 1000.0).max(1.0);
    let chunks = a.series.div_ceil(a.batch);
    let grace = Duration::from_secs(30);
    let mut round = 0u64;
    loop {
        let round_start = Duration::from_secs_f64(round as f64 * round_ms / 1000.0);
        if round_start >= a.duration {
            return;
        }
        let ts = start_ms + (round as f64 * round_ms) as i64;
        for chunk in (conn..chunks).step_by(a.connections) {
            // Spread the round's requests evenly over it.
            let due = round_start + Duration::from_secs_f64(chunk as f64 / chunks as f64 * round_ms / 1000.0);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            let (from, to) = (chunk * a.batch, ((chunk + 1) * a.batch).min(a.series));
            let payload = body(&run, from, to, ts, round);
            let t = Instant::now();
            let mut attempt = 0u32;
            let outcome = loop {
                match post(&client, &url, payload.clone()).await {
                    Ok(()) => break Ok(()),
                    Err((true, msg)) if start.elapsed() < a.duration + grace => {
                        attempt += 1;
                        if attempt <= 3 {
                            eprintln!("soak: write failed ({msg}); retrying");
                        }
                        stats.lock_ok().retries += 1;
                        tokio::time::sleep(Duration::from_millis(100u64 << attempt.min(5))).await;
                    }
                    Err((_, msg)) => break Err(msg),
                }
            };
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let mut s = stats.lock_ok();
            match outcome {
                Ok(()) => {
                    s.acked += (to - from) as u64;
                    s.latencies.push(ms);
                }
                Err(msg) => {
                    if s.failed < 3 {
                        eprintln!("soak: write given up: {msg}");
                    }
                    s.failed += 1;
                }
            }
        }
        round += 1;
    }
}

/// The dashboard panels the query loops cycle through (instant and range queries).
fn panels(run: &str) -> Vec<(String, bool)> {
    let sel = format!("soak_samples{{run=\"{run}\"}}");
    vec![
        (format!("sum by (host) (rate({sel}[1m]))"), true),
        (format!("topk(5, max_over_time({sel}[5m]))"), false),
        (format!("count({sel})"), false),
        (format!("avg(avg_over_time({sel}[1m]))"), true),
        (format!("{{__name__=\"soak_samples\",run=\"{run}\",host=\"host-7\"}}"), true),
    ]
}

async fn query_loop(
    client: reqwest::Client,
    base: String,
    run: Arc<str>,
    k: usize,
    stop: Arc<AtomicBool>,
    lat: Arc<Mutex<Vec<f64>>>,
    errors: Arc<AtomicU64>,
) {
    let panels = panels(&run);
    let mut i = k;
    while !stop.load(Ordering::Relaxed) {
        let (q, range) = &panels[i % panels.len()];
        i += 1;
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let req = if *range {
            client.get(format!("{base}/api/v1/query_range")).query(&[
                ("query", q.as_str()),
                ("start", &format!("{:.3}", now - 900.0)),
                ("end", &format!("{now:.3}")),
                ("step", "15"),
            ])
        } else {
            client.get(format!("{base}/api/v1/query")).query(&[("query", q.as_str()), ("time", &format!("{now:.3}"))])
        };
        let t = Instant::now();
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                lat.lock_ok().push(t.elapsed().as_secs_f64() * 1000.0);
            }
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// `sum(count_over_time(soak_samples{run}[range]))` at `at_ms`.
async fn count_stored(
    client: &reqwest::Client,
    base: &str,
    run: &str,
    range_s: u64,
    at_ms: i64,
) -> anyhow::Result<u64> {
    let q = format!("sum(count_over_time(soak_samples{{run=\"{run}\"}}[{range_s}s]))");
    let r = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q.as_str()), ("time", &format!("{:.3}", at_ms as f64 / 1000.0))])
        .send()
        .await
        .context("count query")?;
    let status = r.status();
    let text = r.text().await?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("count query answered {status}: {text}"))?;
    if v["status"] != "success" {
        bail!("count query answered {status}: {text}");
    }
    let value = v["data"]["result"][0]["value"][1].as_str().unwrap_or("0");
    Ok(value.parse::<f64>().with_context(|| format!("count value {value:?}"))? as u64)
}

pub async fn run(a: SoakArgs) -> anyhow::Result<SoakResult> {
    validate(&a)?;
    let base = a.url.trim_end_matches('/').to_string();
    let write_url = format!("{base}/api/v1/write");
    let run: Arc<str> = format!("{:08x}", rand::random::<u32>()).into();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(a.connections + a.query_concurrency)
        .build()?;
    let a = Arc::new(a);
    eprintln!(
        "soak: run {run}: {} series at {} samples/s for {:?}, {} query loops",
        a.series, a.rate, a.duration, a.query_concurrency
    );
    let start = Instant::now();
    let start_ms = chrono::Utc::now().timestamp_millis();

    let rss: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = a.pid.map(|pid| {
        let (rss, stop, every) = (rss.clone(), stop.clone(), a.rss_every);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let v = rss_bytes(pid);
                rss.lock_ok().push((start.elapsed().as_secs_f64(), v));
                tokio::time::sleep(every).await;
            }
        })
    });
    let qlat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let qerr = Arc::new(AtomicU64::new(0));
    let queries: Vec<_> = (0..a.query_concurrency)
        .map(|k| {
            tokio::spawn(query_loop(
                client.clone(),
                base.clone(),
                run.clone(),
                k,
                stop.clone(),
                qlat.clone(),
                qerr.clone(),
            ))
        })
        .collect();
    let stats: Arc<Mutex<WriteStats>> = Arc::default();
    let senders: Vec<_> = (0..a.connections)
        .map(|c| {
            tokio::spawn(sender(
                client.clone(),
                write_url.clone(),
                run.clone(),
                a.clone(),
                c,
                start,
                start_ms,
                stats.clone(),
            ))
        })
        .collect();
    for s in senders {
        s.await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for q in queries {
        q.await?;
    }
    if let (Some(s), Some(pid)) = (sampler, a.pid) {
        s.await?;
        rss.lock_ok().push((start.elapsed().as_secs_f64(), rss_bytes(pid)));
    }

    let stats = std::mem::take(&mut *stats.lock_ok());
    let end_ms = chrono::Utc::now().timestamp_millis();
    let range_s = ((end_ms - start_ms) / 1000 + 60) as u64;
    let found = count_stored(&client, &base, &run, range_s, end_ms).await?;
    let rss = rss.lock_ok().clone();
    let r = SoakResult {
        url: a.url.clone(),
        run: run.to_string(),
        seconds,
        series: a.series,
        target_rate: a.rate,
        achieved_rate: stats.acked as f64 / seconds,
        samples_acknowledged: stats.acked,
        samples_found: found,
        samples_lost: stats.acked as i64 - found as i64,
        write_requests_failed: stats.failed,
        write_retries: stats.retries,
        write: Latency::of(stats.latencies),
        query: Latency::of(std::mem::take(&mut *qlat.lock_ok())),
        query_errors: qerr.load(Ordering::Relaxed),
        rss_first_bytes: rss.first().map(|x| x.1),
        rss_last_bytes: rss.last().map(|x| x.1),
        rss_max_bytes: rss.iter().map(|x| x.1).max(),
        rss_samples: rss,
    };
    let json = serde_json::to_string_pretty(&r)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &json)?;
    }
    println!("{json}");
    let mib = |b: Option<u64>| b.map_or("n/a".to_string(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
    eprintln!(
        "soak: {:.0} s, {:.0} samples/s (target {:.0}); acknowledged {}, found {}, lost {}\n\
         soak: write p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; query p50 {:.1} ms, p99 {:.1} ms ({} queries, {} errors)\n\
         soak: RSS first {}, last {}, max {}",
        r.seconds,
        r.achieved_rate,
        r.target_rate,
        r.samples_acknowledged,
        r.samples_found,
        r.samples_lost,
        r.write.p50_ms,
        r.write.p99_ms,
        r.write.max_ms,
        r.query.p50_ms,
        r.query.p99_ms,
        r.query.count,
        r.query_errors,
        mib(r.rss_first_bytes),
        mib(r.rss_last_bytes),
        mib(r.rss_max_bytes),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles() {
        let l = Latency::of((1..=100).map(f64::from).collect());
        assert_eq!((l.count, l.p50_ms, l.p99_ms, l.max_ms), (100, 51.0, 99.0, 100.0));
        assert_eq!(Latency::of(vec![]).count, 0);
    }

    #[test]
    fn bodies_round_trip_with_one_sample_per_series() {
        let b = body("r1", 10, 13, 1_000, 7);
        let w = WriteRequest::decode_snappy(&b, 1 << 20).expect("decode");
        assert_eq!(w.timeseries.len(), 3);
        assert!(w.timeseries.iter().all(|t| t.samples == vec![Sample::new(1_000, 7.0)]));
        assert!(w.timeseries[0].labels.iter().any(|l| l.name == "series" && l.value == "10"));
    }
}
