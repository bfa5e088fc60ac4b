//! App target settings: static targets from the config file and the discovery of targets from
//! container labels. A target has a health URL (probed in blackbox_exporter's style), a metrics
//! URL (scraped like Prometheus), or both. Probe keys mirror blackbox_exporter's http module
//! (<https://github.com/prometheus/blackbox_exporter/blob/master/CONFIGURATION.md>); scrape keys
//! mirror Prometheus' `scrape_config` (`sample_limit`, `honor_labels`).

use std::collections::BTreeMap;
use std::time::Duration;

use crowsnest_wire::duration::{serde_duration, serde_opt_duration};
use serde::{Deserialize, Serialize};

/// One static target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    /// The `job` label.
    pub job: String,
    /// The `instance` label. Default: `host:port` of the metrics URL, else of the health URL.
    pub instance: Option<String>,
    /// URL probed for health (blackbox-style `probe_*` series).
    pub health_url: Option<String>,
    /// URL scraped for metrics.
    pub metrics_url: Option<String>,
    /// Body format of `metrics_url`.
    pub format: MetricsFormat,
    /// For `format: json`: which values become gauges.
    pub json_metrics: Vec<JsonMetric>,
    /// Probe and scrape interval. Default: the collector's `interval`.
    #[serde(with = "serde_opt_duration")]
    pub interval: Option<Duration>,
    /// Timeout of one probe or scrape. Default: 10s, at most the interval.
    #[serde(with = "serde_opt_duration")]
    pub timeout: Option<Duration>,
    /// Most samples one scrape may return; above it the scrape fails (`up` 0), as in Prometheus.
    /// 0 means no limit. Failures count in
    /// `crowsnest_collector_scrapes_failed_total{reason="sample_limit"}`.
    pub sample_limit: usize,
    /// Largest scrape response body read, in bytes (Prometheus' `body_size_limit`); a bigger one
    /// fails the scrape (`up` 0, reason `body_size_limit`). Must be positive.
    pub body_size_limit: usize,
    /// On a clash between a scraped label and a target label, keep the scraped one (true) or
    /// rename it to `exported_<name>` (false), as Prometheus' `honor_labels`.
    pub honor_labels: bool,
    /// Extra labels on every series of this target.
    pub labels: BTreeMap<String, String>,
    /// How the health response is judged.
    pub probe: ProbeConfig,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            job: String::new(),
            instance: None,
            health_url: None,
            metrics_url: None,
            format: MetricsFormat::Prometheus,
            json_metrics: Vec::new(),
            interval: None,
            timeout: None,
            sample_limit: 0,
            body_size_limit: DEFAULT_SCRAPE_BODY_SIZE_LIMIT,
            honor_labels: false,
            labels: BTreeMap::new(),
            probe: ProbeConfig::default(),
        }
    }
}

/// Default `body_size_limit` of a scrape: 64 MiB, far above any sane exposition.
pub const DEFAULT_SCRAPE_BODY_SIZE_LIMIT: usize = 64 << 20;

impl TargetConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.body_size_limit == 0 {
            return Err("body_size_limit must be positive".into());
        }
        if self.job.is_empty() {
            return Err("job must not be empty".into());
        }
        if self.health_url.is_none() && self.metrics_url.is_none() {
            return Err("needs health_url or metrics_url".into());
        }
        for u in self.health_url.iter().chain(self.metrics_url.iter()) {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") => {}
                _ => return Err(format!("{u:?} is not an http(s) URL")),
            }
        }
        if self.format == MetricsFormat::Json && self.metrics_url.is_some() && self.json_metrics.is_empty() {
            return Err("format json needs json_metrics".into());
        }
        if self.interval.is_some_and(|d| d < Duration::from_millis(100)) {
            return Err("interval must be at least 100ms".into());
        }
        self.probe.validate()
    }
}

/// Body format of a metrics endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetricsFormat {
    /// Prometheus text 0.0.4 or OpenMetrics (negotiated and detected).
    #[default]
    Prometheus,
    /// A JSON document; values picked by `json_metrics`.
    Json,
}

/// One value (or subtree of values) of a JSON metrics document turned into gauges.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct JsonMetric {
    /// Dot path into the document (`gc.collections`, `pools.0.used`). When it names an object or
    /// array, every numeric (or boolean) leaf below becomes a gauge named
    /// `<name>_<sub_path>`.
    pub path: String,
    /// Metric name. Default: the path with non-name characters replaced by `_`.
    pub name: Option<String>,
    /// Extra labels for this metric.
    pub labels: BTreeMap<String, String>,
}

/// How a health response is judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Accepted HTTP status codes; empty means any 2xx (blackbox_exporter's default).
    pub valid_status_codes: Vec<u16>,
    /// The probe fails (reason `body`) unless the body matches this regex.
    pub fail_if_body_not_matches_regexp: Option<String>,
    /// The probe fails (reason `body`) when the body matches this regex.
    pub fail_if_body_matches_regexp: Option<String>,
    /// How a JSON body's `status` is read.
    pub health_semantics: HealthSemantics,
    /// Skip TLS certificate verification (the expiry is still reported).
    pub insecure_skip_verify: bool,
    /// Largest body read, in bytes.
    pub body_size_limit: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            valid_status_codes: Vec::new(),
            fail_if_body_not_matches_regexp: None,
            fail_if_body_matches_regexp: None,
            health_semantics: HealthSemantics::Auto,
            insecure_skip_verify: false,
            body_size_limit: 1 << 20,
        }
    }
}

impl ProbeConfig {
    fn validate(&self) -> Result<(), String> {
        for r in self.fail_if_body_matches_regexp.iter().chain(self.fail_if_body_not_matches_regexp.iter()) {
            regex::Regex::new(r).map_err(|e| format!("bad regex {r:?}: {e}"))?;
        }
        if self.valid_status_codes.iter().any(|c| !(100..=599).contains(c)) {
            return Err("valid_status_codes must be HTTP status codes".into());
        }
        Ok(())
    }
}

/// JSON health semantics.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HealthSemantics {
    /// When the body is JSON with a `status` field, judge it (Spring Boot `UP`/`DOWN`, the
    /// `application/health+json` draft's `pass`/`warn`/`fail`, `ok`/`error`); otherwise only the
    /// status code and regexes count.
    #[default]
    Auto,
    /// Ignore the body's `status`.
    None,
}

/// Discovery of targets from container labels.
///
/// | label | meaning |
/// |---|---|
/// | `crowsnest.scrape=true` | the container is a target (required) |
/// | `crowsnest.port` | port to use (default: the only exposed port) |
/// | `crowsnest.path` | metrics path (default `/metrics`; `none` for probe-only) |
/// | `crowsnest.scheme` | `http` (default) or `https` |
/// | `crowsnest.health` | health path to probe (e.g. `/health`) |
/// | `crowsnest.format` | `prometheus` (default) or `json` |
/// | `crowsnest.json_paths` | for json: comma-separated dot paths |
/// | `crowsnest.interval` | probe/scrape interval (`30s`) |
/// | `crowsnest.job` | the `job` label (default: compose service, else the container name) |
/// | `crowsnest.network` | network whose address to use (default: the first with an address) |
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Discover targets from container labels.
    pub enabled: bool,
    /// Label prefix (`crowsnest` → `crowsnest.scrape`, ...).
    pub label_prefix: String,
    /// `network` (container address on its network), `published` (a published host port on
    /// 127.0.0.1) or `auto` (network address when there is one, else a published port).
    pub address: AddressMode,
    /// Timeout of discovered targets' probes and scrapes.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            enabled: true,
            label_prefix: "crowsnest".into(),
            address: AddressMode::Auto,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Which address of a discovered container is used.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AddressMode {
    #[default]
    Auto,
    Network,
    Published,
}
