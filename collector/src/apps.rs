//! App targets: static ones from the config and ones discovered from container labels, each run
//! by its own task at its own interval. A task probes the health URL (blackbox-style `probe_*`
//! series with the collector's `location` label) and/or scrapes the metrics URL, and writes
//! staleness markers for everything it wrote when its target goes away.

pub mod discovery;
pub mod json;
pub mod probe;
pub mod scrape;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crowsnest_wire::Label;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{CollectorConfig, JsonMetric, MetricsFormat, ProbeConfig, TargetConfig};
use crate::docker::ContainerView;
use crate::metrics::CollectorMetrics;
use crate::series::{Batch, Staleness, now_ms};
use crate::shipper::Outbox;

/// A target ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub job: String,
    pub instance: String,
    pub health_url: Option<Url>,
    pub metrics_url: Option<Url>,
    pub format: MetricsFormat,
    pub json_metrics: Vec<JsonMetric>,
    pub interval: Duration,
    pub timeout: Duration,
    pub sample_limit: usize,
    pub body_size_limit: usize,
    pub honor_labels: bool,
    pub labels: Vec<Label>,
    pub probe: ProbeConfig,
}

impl Target {
    /// Resolves defaults of a validated config entry.
    pub fn from_config(t: &TargetConfig, default_interval: Duration) -> Option<Target> {
        let health_url = t.health_url.as_deref().and_then(|u| Url::parse(u).ok());
        let metrics_url = t.metrics_url.as_deref().and_then(|u| Url::parse(u).ok());
        let main = metrics_url.as_ref().or(health_url.as_ref())?;
        let instance = t.instance.clone().unwrap_or_else(|| {
            format!("{}:{}", main.host_str().unwrap_or_default(), main.port_or_known_default().unwrap_or(80))
        });
        let interval = t.interval.unwrap_or(default_interval);
        Some(Target {
            job: t.job.clone(),
            instance,
            health_url,
            metrics_url,
            format: t.format,
            json_metrics: t.json_metrics.clone(),
            interval,
            timeout: t.timeout.unwrap_or(Duration::from_secs(10)).min(interval),
            sample_limit: t.sample_limit,
            body_size_limit: t.body_size_limit,
            honor_labels: t.honor_labels,
            labels: t.labels.iter().map(|(k, v)| Label::new(k.as_str(), v.as_str())).collect(),
            probe: t.probe.clone(),
        })
    }

    /// `job`, `instance` and the extra labels.
    pub fn target_labels(&self) -> Vec<Label> {
        let mut v = vec![Label::new("job", self.job.as_str()), Label::new("instance", self.instance.as_str())];
        v.extend(self.labels.iter().filter(|l| l.name != "job" && l.name != "instance").cloned());
        v
    }

    fn key(&self) -> String {
        format!(
            "{}|{}|{:?}|{:?}",
            self.job,
            self.instance,
            self.health_url.as_ref().map(Url::as_str),
            self.metrics_url.as_ref().map(Url::as_str)
        )
    }
}

/// Appends the `probe_*` series of one probe result.
pub fn push_probe(r: &probe::ProbeResult, labels: &[Label], ts: i64, batch: &mut Batch) {
    batch.push("probe_success", labels, ts, if r.success { 1.0 } else { 0.0 });
    batch.push("probe_duration_seconds", labels, ts, r.duration.as_secs_f64());
    batch.push("probe_http_status_code", labels, ts, r.status_code as f64);
    for (phase, d) in &r.phases {
        let mut l = labels.to_vec();
        l.push(Label::new("phase", *phase));
        batch.push("probe_http_duration_seconds", &l, ts, d.as_secs_f64());
    }
    if let Some(exp) = r.cert_expiry {
        batch.push("probe_ssl_earliest_cert_expiry", labels, ts, exp as f64);
    }
    for reason in probe::Reason::ALL {
        let mut l = labels.to_vec();
        l.push(Label::new("reason", reason.as_str()));
        batch.push("probe_failed", &l, ts, if r.reason == Some(reason) { 1.0 } else { 0.0 });
    }
    batch.push("probe_health_degraded", labels, ts, if r.degraded { 1.0 } else { 0.0 });
}

/// Runs one target until `stop`. When the target was removed (rather than the whole collector
/// shutting down; `stop` is a child of `shutdown`), its series are marked stale: a collector
/// restart must not make every series blink out.
async fn run_target(
    t: Target,
    location: String,
    client: reqwest::Client,
    outbox: Outbox,
    metrics: CollectorMetrics,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut stale = Staleness::new();
    let mut ticker = tokio::time::interval(t.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probe_labels = t.target_labels();
    probe_labels.push(Label::new("location", location.as_str()));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {},
        }
        let ts = now_ms();
        let mut batch = Batch::new();
        if let Some(url) = t.health_url.as_ref() {
            let r = tokio::select! {
                _ = stop.cancelled() => break,
                r = probe::probe(url, &t.probe, t.timeout) => r,
            };
            if !r.success {
                tracing::debug!(job = %t.job, instance = %t.instance, reason = r.reason.map(|x| x.as_str()), status = r.status_code, "Health probe failed.");
            }
            metrics.collection("probe", r.success);
            push_probe(&r, &probe_labels, ts, &mut batch);
        }
        if t.metrics_url.is_some() {
            let result = tokio::select! {
                _ = stop.cancelled() => break,
                r = scrape::scrape(&client, &t, t.timeout, ts, &mut batch) => r,
            };
            metrics.collection("scrape", result.is_ok());
            if let Err(e) = result {
                metrics.scrape_failed(e.reason());
            }
        }
        stale.mark(&mut batch, ts);
        outbox.push(batch).await;
    }
    if !shutdown.is_cancelled() {
        outbox.push(stale.end(now_ms())).await;
    }
}

/// Keeps one task per target, following the static list and the discovered containers.
pub async fn run_apps(
    cfg: Arc<CollectorConfig>,
    outbox: Outbox,
    metrics: CollectorMetrics,
    mut views: watch::Receiver<Vec<ContainerView>>,
    shutdown: CancellationToken,
) {
    let client =
        match reqwest::Client::builder().user_agent(concat!("crowsnest-collector/", env!("CARGO_PKG_VERSION"))).build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "Cannot build the scrape client; app targets are off.");
                return;
            }
        };
    let statics: Vec<Target> = cfg.targets.iter().filter_map(|t| Target::from_config(t, cfg.interval)).collect();
    let mut running: HashMap<String, (Target, CancellationToken, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut warned: HashMap<String, String> = HashMap::new();
    loop {
        let mut want: HashMap<String, Target> = statics.iter().map(|t| (t.key(), t.clone())).collect();
        if cfg.discovery.enabled {
            for c in views.borrow_and_update().iter() {
                match discovery::target_from_container(c, &cfg.discovery) {
                    Ok(Some(tc)) => {
                        if let Some(t) = Target::from_config(&tc, cfg.interval) {
                            want.insert(t.key(), t);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let msg = format!("{e:?}");
                        if warned.get(&c.id) != Some(&msg) {
                            tracing::warn!(container = %c.name, error = %msg, "Container asks to be scraped but its labels are unusable.");
                            warned.insert(c.id.clone(), msg);
                        }
                    }
                }
            }
        }
        running.retain(|k, (t, stop, _)| {
            let keep = want.get(k) == Some(t);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for (k, t) in want {
            if running.contains_key(&k) {
                continue;
            }
            tracing::info!(job = %t.job, instance = %t.instance, "Starting app target.");
            let stop = shutdown.child_token();
            let h = tokio::spawn(run_target(
                t.clone(),
                cfg.location.clone(),
                client.clone(),
                outbox.clone(),
                metrics.clone(),
                stop.clone(),
                shutdown.clone(),
            ));
            running.insert(k, (t, stop, h));
        }
        metrics.targets.set(running.len() as i64);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = views.changed() => if r.is_err() {
                // Docker is off: only static targets; wait for shutdown.
                shutdown.cancelled().await;
                break;
            },
        }
    }
    for (_, (_, stop, h)) in running {
        stop.cancel();
        let _ = h.await;
    }
}
