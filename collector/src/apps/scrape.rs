//! Metrics scrapes of app endpoints, with Prometheus' scrape semantics
//! (`scrape/scrape.go`): the `Accept` header Prometheus sends, the format picked from
//! `Content-Type`, target labels (`job`, `instance`, extras) attached with `honor_labels`
//! handling (a clash keeps the scraped value, or renames it `exported_<name>`), `sample_limit`
//! failing the whole scrape, and the synthetic `up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped` series. JSON endpoints are flattened by [`super::json`].

use std::time::{Duration, Instant};

use crowsnest_wire::exposition::{self, Format, SCRAPE_ACCEPT};
use crowsnest_wire::{Label, Labels, METRIC_NAME};

use super::Target;
use super::json;
use crate::config::MetricsFormat;
use crate::series::Batch;

/// Applies target labels to scraped labels with Prometheus' `honor_labels` rules.
pub fn apply_target_labels(scraped: &Labels, target: &[Label], honor: bool) -> Labels {
    let mut out = scraped.clone();
    for t in target {
        match scraped.get(&t.name) {
            Some(_) if honor => {}
            Some(v) => {
                let v = v.to_string();
                out.set(&format!("exported_{}", t.name), &v);
                out.set(&t.name, &t.value);
            }
            None => out.set(&t.name, &t.value),
        }
    }
    out
}

/// Why a scrape failed (the series is `up` 0; [`ScrapeError::reason`] labels the counter).
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("request failed: {0}")]
    Http(String),
    #[error("server returned HTTP status {0}")]
    Status(u16),
    #[error("scrape returned {samples} samples, more than the target's sample_limit of {limit}")]
    SampleLimit { samples: usize, limit: usize },
    #[error("parse error: {0}")]
    Parse(String),
    #[error("response body is larger than the target's body_size_limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the target has no metrics_url")]
    NoUrl,
}

impl ScrapeError {
    /// The bounded `reason` label of `crowsnest_collector_scrapes_failed_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Http(_) | ScrapeError::NoUrl => "http",
            ScrapeError::Status(_) => "status",
            ScrapeError::SampleLimit { .. } => "sample_limit",
            ScrapeError::Parse(_) => "parse",
            ScrapeError::TooLarge { .. } => "body_size_limit",
        }
    }
}

/// Scrapes `t` once, appending its samples (or nothing) plus `up` & co to `batch`.
pub async fn scrape(
    client: &reqwest::Client,
    t: &Target,
    timeout: Duration,
    ts: i64,
    batch: &mut Batch,
) -> Result<(), ScrapeError> {
    let Some(url) = t.metrics_url.as_ref() else { return Err(ScrapeError::NoUrl) };
    let start = Instant::now();
    let result = fetch_and_parse(client, t, url, timeout, ts).await;
    let elapsed = start.elapsed().as_secs_f64();
    let (result, samples) = match result {
        Ok(samples) => (Ok(()), samples),
        Err(e) => {
            match e {
                // Limits are configuration the operator must act on: say so at warn.
                ScrapeError::SampleLimit { .. } | ScrapeError::TooLarge { .. } => {
                    tracing::warn!(job = %t.job, instance = %t.instance, error = %e, "Scrape refused by a limit; its samples were dropped.")
                }
                _ => tracing::debug!(job = %t.job, instance = %t.instance, error = %e, "Scrape failed."),
            }
            (Err(e), Vec::new())
        }
    };
    let ok = result.is_ok();
    let n = samples.len();
    for (labels, t_ms, v) in samples {
        batch.push_labels(labels, t_ms, v);
    }
    let tl = t.target_labels();
    batch.push("up", &tl, ts, if ok { 1.0 } else { 0.0 });
    batch.push("scrape_duration_seconds", &tl, ts, elapsed);
    batch.push("scrape_samples_scraped", &tl, ts, n as f64);
    result
}

async fn fetch_and_parse(
    client: &reqwest::Client,
    t: &Target,
    url: &url::Url,
    timeout: Duration,
    ts: i64,
) -> Result<Vec<(Labels, i64, f64)>, ScrapeError> {
    let accept = match t.format {
        MetricsFormat::Prometheus => SCRAPE_ACCEPT,
        MetricsFormat::Json => "application/json",
    };
    let resp = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, accept)
        .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", timeout.as_secs_f64()))
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| ScrapeError::Http(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Status(resp.status().as_u16()));
    }
    let ctype = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut resp = resp;
    let mut raw: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ScrapeError::Http(e.to_string()))? {
        if raw.len() + chunk.len() > t.body_size_limit {
            return Err(ScrapeError::TooLarge { limit: t.body_size_limit });
        }
        raw.extend_from_slice(&chunk);
    }
    let body = String::from_utf8_lossy(&raw);
    let tl = t.target_labels();
    let mut out = Vec::new();
    match t.format {
        MetricsFormat::Prometheus => {
            let parsed = exposition::parse(&body, Format::detect(ctype.as_deref(), &body));
            if let Some(e) = parsed.errors.first() {
                // Prometheus fails the whole scrape on a parse error.
                return Err(ScrapeError::Parse(e.to_string()));
            }
            for s in parsed.samples {
                out.push((apply_target_labels(&s.labels, &tl, t.honor_labels), s.timestamp.unwrap_or(ts), s.value));
            }
        }
        MetricsFormat::Json => {
            let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| ScrapeError::Parse(e.to_string()))?;
            for m in &t.json_metrics {
                for (name, v) in json::extract(&doc, m) {
                    let mut l: Vec<Label> = vec![Label::new(METRIC_NAME, name)];
                    l.extend(m.labels.iter().map(|(k, v)| Label::new(k.as_str(), v.as_str())));
                    out.push((apply_target_labels(&Labels::from_vec(l), &tl, t.honor_labels), ts, v));
                }
            }
        }
    }
    if t.sample_limit > 0 && out.len() > t.sample_limit {
        return Err(ScrapeError::SampleLimit { samples: out.len(), limit: t.sample_limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::Target;
    use crate::config::{JsonMetric, TargetConfig};

    async fn serve() -> String {
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(|| async { "# TYPE reqs counter\nreqs_total{job=\"app\",path=\"/a\"} 5\nreqs_total{path=\"/b\"} 7 1700000000000\n" }))
            .route("/bad", axum::routing::get(|| async { "ok 1\nthis is { not valid\n" }))
            .route("/json", axum::routing::get(|| async { r#"{"gc":{"count":3,"pause":0.5},"name":"x"}"# }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn target(url: String, f: impl FnOnce(&mut TargetConfig)) -> Target {
        let mut c = TargetConfig { job: "web".into(), metrics_url: Some(url), ..Default::default() };
        f(&mut c);
        Target::from_config(&c, Duration::from_secs(15)).unwrap()
    }

    fn find<'a>(b: &'a Batch, name: &str) -> Vec<&'a crowsnest_wire::TimeSeries> {
        b.series.iter().filter(|t| t.labels.iter().any(|l| l.name == METRIC_NAME && l.value == name)).collect()
    }

    #[tokio::test]
    async fn scrapes_text_with_target_labels_and_up() {
        let base = serve().await;
        let client = reqwest::Client::new();
        let t = target(format!("{base}/metrics"), |_| {});
        let mut b = Batch::new();
        scrape(&client, &t, Duration::from_secs(2), 1000, &mut b).await.unwrap();
        let reqs = find(&b, "reqs_total");
        assert_eq!(reqs.len(), 2);
        let a = reqs.iter().find(|s| s.labels.contains(&Label::new("path", "/a"))).unwrap();
        assert!(a.labels.contains(&Label::new("job", "web")));
        assert!(a.labels.contains(&Label::new("exported_job", "app")));
        assert_eq!(a.samples[0].timestamp, 1000);
        let bb = reqs.iter().find(|s| s.labels.contains(&Label::new("path", "/b"))).unwrap();
        assert_eq!(bb.samples[0].timestamp, 1_700_000_000_000);
        assert_eq!(find(&b, "up")[0].samples[0].value, 1.0);
        assert_eq!(find(&b, "scrape_samples_scraped")[0].samples[0].value, 2.0);
        assert!(find(&b, "up")[0].labels.contains(&Label::new("instance", &t.instance)));
    }

    #[tokio::test]
    async fn sample_limit_parse_errors_and_dead_targets_give_up_zero() {
        let base = serve().await;
        let client = reqwest::Client::new();
        for (t, reason) in [
            (target(format!("{base}/metrics"), |c| c.sample_limit = 1), "sample_limit"),
            (target(format!("{base}/metrics"), |c| c.body_size_limit = 16), "body_size_limit"),
            (target(format!("{base}/bad"), |_| {}), "parse"),
            (target(format!("{base}/missing"), |_| {}), "status"),
            (target("http://127.0.0.1:1/metrics".into(), |_| {}), "http"),
        ] {
            let mut b = Batch::new();
            let e = scrape(&client, &t, Duration::from_secs(2), 1000, &mut b).await.unwrap_err();
            assert_eq!(e.reason(), reason, "{e}");
            assert_eq!(find(&b, "up")[0].samples[0].value, 0.0);
            assert_eq!(find(&b, "scrape_samples_scraped")[0].samples[0].value, 0.0);
            assert_eq!(b.series.len(), 3, "nothing but the synthetic series");
        }
    }

    #[tokio::test]
    async fn json_endpoint_is_flattened() {
        let base = serve().await;
        let client = reqwest::Client::new();
        let t = target(format!("{base}/json"), |c| {
            c.format = MetricsFormat::Json;
            c.json_metrics = vec![JsonMetric { path: "gc".into(), name: Some("app_gc".into()), ..Default::default() }];
        });
        let mut b = Batch::new();
        scrape(&client, &t, Duration::from_secs(2), 1000, &mut b).await.unwrap();
        assert_eq!(find(&b, "app_gc_count")[0].samples[0].value, 3.0);
        assert_eq!(find(&b, "app_gc_pause")[0].samples[0].value, 0.5);
        assert!(find(&b, "app_gc_count")[0].labels.contains(&Label::new("job", "web")));
    }

    /// Each scrape limit trips with a message naming it, and is counted by reason.
    #[tokio::test]
    async fn scrape_limits_name_themselves_and_are_counted() {
        let base = serve().await;
        let client = reqwest::Client::new();
        let registry = crowsnest_wire::ops::new_registry();
        let metrics = crate::metrics::CollectorMetrics::register(&registry);
        let cases = [
            (target(format!("{base}/metrics"), |c| c.sample_limit = 1), "sample_limit of 1", "sample_limit"),
            (target(format!("{base}/metrics"), |c| c.body_size_limit = 16), "body_size_limit of 16", "body_size_limit"),
        ];
        for (t, needle, reason) in cases {
            let mut b = Batch::new();
            let e = scrape(&client, &t, Duration::from_secs(2), 1000, &mut b).await.unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
            metrics.scrape_failed(e.reason());
            assert_eq!(find(&b, "up")[0].samples[0].value, 0.0);
            let text = crowsnest_wire::ops::encode_metrics(&registry);
            let line = format!("crowsnest_collector_scrapes_failed_total{{reason=\"{reason}\"}} 1");
            assert!(text.contains(&line), "{text}");
        }
        // At the limit the scrape succeeds.
        let t = target(format!("{base}/metrics"), |c| c.sample_limit = 2);
        scrape(&client, &t, Duration::from_secs(2), 1000, &mut Batch::new()).await.unwrap();
    }

    #[test]
    fn honor_labels_semantics() {
        let scraped = Labels::from_pairs([("__name__", "m"), ("job", "inner"), ("x", "1")]);
        let target = vec![Label::new("job", "outer"), Label::new("instance", "h:1")];
        let off = apply_target_labels(&scraped, &target, false);
        assert_eq!(off.get("job"), Some("outer"));
        assert_eq!(off.get("exported_job"), Some("inner"));
        assert_eq!(off.get("instance"), Some("h:1"));
        let on = apply_target_labels(&scraped, &target, true);
        assert_eq!(on.get("job"), Some("inner"));
        assert_eq!(on.get("exported_job"), None);
        assert_eq!(on.get("instance"), Some("h:1"));
    }
}
