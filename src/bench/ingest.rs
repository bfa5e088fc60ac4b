//! `crowsnest bench generate` and `crowsnest bench ingest`: the remote_write ingest benchmark.
//! Generation pre-encodes every request body (snappy protobuf, Prometheus' default shape of 2,000
//! series x 1 sample) into one file per connection, so the timed phase only reads and POSTs. Each
//! connection owns a fixed set of hosts, which keeps every series in timestamp order as senders
//! must. The server's CPU time and memory are read from /proc when its PID is given.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use crowsnest_wire::WriteRequest;
use crowsnest_wire::remote::headers;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use super::procstat::ProcSampler;
use super::workload::{Profile, Workload};

/// What `generate` wrote, read back by `ingest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub hosts: usize,
    pub series_per_host: usize,
    pub interval_ms: i64,
    pub jitter_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub samples: u64,
    pub requests: u64,
    pub connections: usize,
    pub batch: usize,
    /// The workload profile (older manifests have none: `docker`).
    #[serde(default)]
    pub profile: Profile,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Output folder (shard files + manifest.json).
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 20)]
    pub hosts: usize,
    #[arg(long, default_value_t = 1000)]
    pub series_per_host: usize,
    /// Hours of data, ending now.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    #[arg(long, default_value_t = 15_000)]
    pub interval_ms: i64,
    /// Scrape-time jitter, +- milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: i64,
    /// Parallel connections during ingest (= shard files).
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Series per request.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Which kind of host to imitate: `docker` (node_exporter + cAdvisor + app histograms) or
    /// `node` (node_exporter alone, mostly constant or slow series).
    #[arg(long, value_enum, default_value_t = Profile::Docker)]
    pub profile: Profile,
}

pub fn generate(a: &GenerateArgs) -> anyhow::Result<Manifest> {
    if a.connections == 0 || a.hosts == 0 || a.batch == 0 {
        bail!("hosts, connections and batch must be positive");
    }
    std::fs::create_dir_all(&a.dir)?;
    let w = Workload {
        series_per_host: a.series_per_host,
        interval_ms: a.interval_ms,
        jitter_ms: a.jitter_ms,
        seed: a.seed,
        profile: a.profile,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let slots = ((a.hours * 3_600_000.0) as i64 / a.interval_ms).max(1);
    let start_ms = (now - slots * a.interval_ms) / a.interval_ms * a.interval_ms;
    let mut samples = 0u64;
    let mut requests = 0u64;
    for shard in 0..a.connections {
        let hosts: Vec<usize> = (0..a.hosts).filter(|h| h % a.connections == shard).collect();
        let mut series: Vec<_> = hosts.iter().map(|&h| w.host_series(h)).collect();
        let mut rng = SmallRng::seed_from_u64(a.seed ^ 0xabcdef ^ shard as u64);
        let mut out = BufWriter::new(File::create(a.dir.join(format!("shard-{shard}.bin")))?);
        for slot in 0..slots {
            let mut pending = Vec::with_capacity(a.batch);
            for (i, &h) in hosts.iter().enumerate() {
                let ts = w.timestamp(start_ms, h, slot, &mut rng);
                for s in w.host_slot(&mut series[i], ts) {
                    pending.push(s);
                    if pending.len() == a.batch {
                        samples += write_body(&mut out, std::mem::take(&mut pending))?;
                        requests += 1;
                    }
                }
            }
            if !pending.is_empty() {
                samples += write_body(&mut out, pending)?;
                requests += 1;
            }
        }
        out.flush()?;
    }
    let m = Manifest {
        hosts: a.hosts,
        series_per_host: a.series_per_host,
        interval_ms: a.interval_ms,
        jitter_ms: a.jitter_ms,
        start_ms,
        end_ms: start_ms + slots * a.interval_ms,
        samples,
        requests,
        connections: a.connections,
        batch: a.batch,
        profile: a.profile,
    };
    std::fs::write(a.dir.join("manifest.json"), serde_json::to_vec_pretty(&m)?)?;
    Ok(m)
}

fn write_body(out: &mut impl Write, ts: Vec<crowsnest_wire::TimeSeries>) -> anyhow::Result<u64> {
    let req = WriteRequest { timeseries: ts, metadata: vec![] };
    let n = req.sample_count() as u64;
    let body = req.encode_snappy();
    out.write_all(&(body.len() as u32).to_le_bytes())?;
    out.write_all(&body)?;
    Ok(n)
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Folder written by `bench generate`.
    #[arg(long)]
    pub dir: PathBuf,
    /// remote_write URL of the system under test.
    #[arg(long)]
    pub url: String,
    /// PID of the server, to report its CPU time and memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Write the JSON result here as well as to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The measured result of one ingest run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestResult {
    pub url: String,
    pub samples: u64,
    pub requests: u64,
    pub failed_requests: u64,
    pub seconds: f64,
    pub samples_per_second: f64,
    pub request_p50_ms: f64,
    pub request_p99_ms: f64,
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_seconds_per_million: Option<f64>,
    pub server_peak_rss_bytes: Option<u64>,
    pub server_end_rss_bytes: Option<u64>,
}

fn read_shard(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut r = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let mut bodies = Vec::new();
    let mut len = [0u8; 4];
    loop {
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let mut b = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut b)?;
        bodies.push(b);
    }
    Ok(bodies)
}

pub async fn ingest(a: &IngestArgs) -> anyhow::Result<IngestResult> {
    let m: Manifest = serde_json::from_slice(&std::fs::read(a.dir.join("manifest.json"))?)?;
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(m.connections).build()?;
    let sampler = a.pid.map(ProcSampler::start);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for shard in 0..m.connections {
        let path = a.dir.join(format!("shard-{shard}.bin"));
        let client = client.clone();
        let url = a.url.clone();
        tasks.push(tokio::spawn(async move {
            // Stream the shard in chunks so memory stays flat for big data sets.
            let bodies = tokio::task::spawn_blocking(move || read_shard(&path)).await??;
            let mut lat = Vec::with_capacity(bodies.len());
            let mut failed = 0u64;
            for body in bodies {
                let t = Instant::now();
                let mut attempt = 0;
                loop {
                    let r = client
                        .post(&url)
                        .header(headers::CONTENT_ENCODING, headers::SNAPPY)
                        .header(headers::CONTENT_TYPE, headers::PROTOBUF)
                        .header(headers::VERSION, headers::VERSION_1)
                        .body(body.clone())
                        .send()
                        .await;
                    match r {
                        Ok(resp) if resp.status().is_success() => break,
                        Ok(resp) if resp.status().is_server_error() && attempt < 5 => {}
                        Err(_) if attempt < 5 => {}
                        Ok(resp) => {
                            if failed < 3 {
                                let status = resp.status();
                                let text = resp.text().await.unwrap_or_default();
                                eprintln!(
                                    "bench: request failed: {status} {}",
                                    text.chars().take(300).collect::<String>()
                                );
                            }
                            failed += 1;
                            break;
                        }
                        Err(e) => {
                            eprintln!("bench: request failed: {e}");
                            failed += 1;
                            break;
                        }
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok((lat, failed))
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await??;
        lat.extend(l);
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    let proc = sampler.map(ProcSampler::stop);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { 0.0 } else { lat[((lat.len() - 1) as f64 * p) as usize] };
    let cpu = proc.as_ref().map(|p| p.cpu_seconds);
    let r = IngestResult {
        url: a.url.clone(),
        samples: m.samples,
        requests: m.requests,
        failed_requests: failed,
        seconds,
        samples_per_second: m.samples as f64 / seconds,
        request_p50_ms: pct(0.5),
        request_p99_ms: pct(0.99),
        server_cpu_seconds: cpu,
        server_cpu_seconds_per_million: cpu.map(|c| c / (m.samples as f64 / 1e6)),
        server_peak_rss_bytes: proc.as_ref().map(|p| p.peak_rss),
        server_end_rss_bytes: proc.as_ref().map(|p| p.end_rss),
    };
    let json = serde_json::to_string_pretty(&r)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &json)?;
    }
    println!("{json}");
    Ok(r)
}
