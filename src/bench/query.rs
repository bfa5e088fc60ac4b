//! `crowsnest bench query`: latency of typical dashboard queries against any Prometheus-compatible
//! API (ours, Prometheus, VictoriaMetrics) on the data `bench generate` produced. Each query runs
//! warm-up rounds, then timed rounds; p50 and p99 are reported with the number of series and
//! points returned, so a fast wrong answer is visible.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use crowsnest_wire::api::{Envelope, QueryData};
use serde::{Deserialize, Serialize};

use super::ingest::Manifest;

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Folder written by `bench generate` (for the time range).
    #[arg(long)]
    pub dir: PathBuf,
    /// Base URL of the Prometheus-compatible API, e.g. http://127.0.0.1:9300
    #[arg(long)]
    pub url: String,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Write the JSON result here as well as to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One benchmark query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchQuery {
    pub id: String,
    pub what: String,
    /// PromQL, or a path for metadata calls.
    pub query: String,
    pub range_s: i64,
    pub step_s: i64,
}

/// Latency of one query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryResult {
    pub id: String,
    pub what: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub series: usize,
    pub points: usize,
    pub error: Option<String>,
}

/// The query set (issue 3's list of typical dashboard queries).
pub fn query_set() -> Vec<BenchQuery> {
    let q = |id: &str, what: &str, query: &str, range_s: i64, step_s: i64| BenchQuery {
        id: id.into(),
        what: what.into(),
        query: query.into(),
        range_s,
        step_s,
    };
    vec![
        q("Q1", "one series, 1h", r#"node_load1{instance="host-001"}"#, 3600, 15),
        q(
            "Q2",
            "rate of one series over 24h",
            r#"rate(node_network_receive_bytes_total{instance="host-001",device="eth0"}[5m])"#,
            86400,
            60,
        ),
        q(
            "Q3",
            "sum by of rate, many series, 24h",
            r#"sum by (mode) (rate(node_cpu_seconds_total{instance=~"host-00[0-4]"}[5m]))"#,
            86400,
            300,
        ),
        q(
            "Q4",
            "sum by instance of rate, all hosts, 1h",
            r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
            3600,
            15,
        ),
        q(
            "Q5",
            "histogram_quantile of sum by le of rate, 6h",
            r#"histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"#,
            21600,
            60,
        ),
        q(
            "Q6",
            "topk of max_over_time, 24h",
            r#"topk(5, max_over_time(container_memory_working_set_bytes[1h]))"#,
            86400,
            3600,
        ),
        q("Q7", "label values", "/api/v1/label/instance/values", 0, 0),
    ]
}

fn count(data: &QueryData) -> (usize, usize) {
    match data {
        QueryData::Matrix(m) => (m.len(), m.iter().map(|s| s.values.len()).sum()),
        QueryData::Vector(v) => (v.len(), v.len()),
        _ => (1, 1),
    }
}

pub async fn run(a: &QueryArgs) -> anyhow::Result<Vec<QueryResult>> {
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(a.dir.join("manifest.json")).context("reading manifest.json")?)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let base = a.url.trim_end_matches('/');
    let end_s = m.end_ms / 1000;
    let mut results = Vec::new();
    for bq in query_set() {
        let mut lat = Vec::new();
        let mut shape = (0, 0);
        let mut error = None;
        for i in 0..(a.warmup + a.runs) {
            let t = Instant::now();
            let resp = if bq.query.starts_with('/') {
                let start = (end_s - 86400).to_string();
                let end = end_s.to_string();
                client
                    .get(format!("{base}{}", bq.query))
                    .query(&[("start", start.as_str()), ("end", end.as_str())])
                    .send()
                    .await
            } else {
                let start = (end_s - bq.range_s).to_string();
                let end = end_s.to_string();
                let step = bq.step_s.to_string();
                let form = [
                    ("query", bq.query.as_str()),
                    ("start", start.as_str()),
                    ("end", end.as_str()),
                    ("step", step.as_str()),
                ];
                client.post(format!("{base}/api/v1/query_range")).form(&form).send().await
            };
            let body = match resp {
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    if !status.is_success() {
                        error = Some(format!("{status}: {}", text.chars().take(200).collect::<String>()));
                        break;
                    }
                    text
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            };
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            if i >= a.warmup {
                lat.push(elapsed);
            }
            if i == 0 {
                if bq.query.starts_with('/') {
                    let e: Envelope<Vec<String>> = serde_json::from_str(&body)?;
                    let n = e.data.map(|d| d.len()).unwrap_or(0);
                    shape = (n, n);
                } else {
                    let e: Envelope<QueryData> = serde_json::from_str(&body)?;
                    shape = e.data.as_ref().map(count).unwrap_or((0, 0));
                }
            }
        }
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
        results.push(QueryResult {
            id: bq.id,
            what: bq.what,
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            series: shape.0,
            points: shape.1,
            error,
        });
    }
    let json = serde_json::to_string_pretty(&results)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &json)?;
    }
    println!("{json}");
    Ok(results)
}
