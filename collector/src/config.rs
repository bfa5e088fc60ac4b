//! The `collector:` section of the config file (and the whole file of the lean
//! `crowsnest-collector` binary). Every key has a default, so an empty file starts a collector that
//! watches the local Docker Engine and ships to `http://127.0.0.1:9300/api/v1/write`. Durations use
//! Prometheus' syntax (`15s`, `1m`). App targets and their probe/scrape settings live in
//! [`targets`].

pub mod targets;

use std::path::PathBuf;
use std::time::Duration;

use crowsnest_web::{ClientTlsConfig, HttpClientConfig, Secret};
use crowsnest_wire::duration::serde_duration;
use serde::{Deserialize, Serialize};

use crate::error::CollectorError;
pub use targets::{DiscoveryConfig, HealthSemantics, JsonMetric, MetricsFormat, ProbeConfig, TargetConfig};

/// Collector settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// The `instance` label on container series: this host's name. Default: the hostname.
    pub instance: String,
    /// The `location` label on probe results, so one endpoint probed from several hosts can be
    /// told apart. Default: the same as `instance`.
    pub location: String,
    /// How often containers are listed and their stats collected, and the default interval of
    /// app probes and scrapes.
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Where and how samples are shipped.
    pub remote_write: RemoteWriteConfig,
    /// The disk-backed queue between collection and shipping.
    pub queue: QueueConfig,
    /// The Docker Engine connection and container metrics.
    pub docker: DockerConfig,
    /// Discovery of app targets from container labels.
    pub discovery: DiscoveryConfig,
    /// Static app targets (health probes and/or metrics scrapes).
    pub targets: Vec<TargetConfig>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        let host = local_hostname();
        CollectorConfig {
            instance: host.clone(),
            location: host,
            interval: Duration::from_secs(15),
            remote_write: RemoteWriteConfig::default(),
            queue: QueueConfig::default(),
            docker: DockerConfig::default(),
            discovery: DiscoveryConfig::default(),
            targets: Vec::new(),
        }
    }
}

/// remote_write 1.0 client settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// The receiver's URL: our store, Prometheus with `--web.enable-remote-write-receiver`
    /// (`/api/v1/write`) or VictoriaMetrics (`/api/v1/write`).
    pub url: String,
    /// Timeout of one write request.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Most samples in one write request (Prometheus' `max_samples_per_send`).
    pub max_samples_per_send: usize,
    /// First retry delay; doubled after each failure up to `max_backoff`, with full jitter.
    #[serde(with = "serde_duration")]
    pub min_backoff: Duration,
    /// Largest retry delay (also the cap on a receiver's `Retry-After`).
    #[serde(with = "serde_duration")]
    pub max_backoff: Duration,
    /// Optional HTTP basic-auth user name.
    pub basic_auth_username: Option<String>,
    /// Optional HTTP basic-auth password (used with `basic_auth_username`).
    pub basic_auth_password: Option<Secret>,
    /// File holding the basic-auth password (read at start; instead of `basic_auth_password`).
    pub basic_auth_password_file: Option<PathBuf>,
    /// Optional bearer token sent as `Authorization: Bearer ...`.
    pub bearer_token: Option<Secret>,
    /// File holding the bearer token (read at start; instead of `bearer_token`).
    pub bearer_token_file: Option<PathBuf>,
    /// TLS of `https://` receivers: `ca_file`, `cert_file`/`key_file` (client certificate),
    /// `server_name`, `insecure_skip_verify`.
    pub tls: ClientTlsConfig,
}

impl RemoteWriteConfig {
    /// The credentials and TLS settings as the shared client config.
    pub fn http_client(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth_username: self.basic_auth_username.clone(),
            basic_auth_password: self.basic_auth_password.clone(),
            basic_auth_password_file: self.basic_auth_password_file.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls: self.tls.clone(),
        }
    }
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: "http://127.0.0.1:9300/api/v1/write".into(),
            timeout: Duration::from_secs(30),
            max_samples_per_send: 2000,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            basic_auth_username: None,
            basic_auth_password: None,
            basic_auth_password_file: None,
            bearer_token: None,
            bearer_token_file: None,
            tls: ClientTlsConfig::default(),
        }
    }
}

/// Disk-backed queue settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Directory of the queue's segment files (created if missing).
    pub dir: PathBuf,
    /// Most bytes the queue keeps on disk; beyond it the oldest segment is dropped and its
    /// samples are counted in `crowsnest_collector_samples_dropped_total{reason="queue_full"}`.
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one started.
    pub segment_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { dir: PathBuf::from("./data/collector-queue"), max_bytes: 512 << 20, segment_bytes: 8 << 20 }
    }
}

/// Docker Engine settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Collect container metrics at all.
    pub enabled: bool,
    /// `unix:///var/run/docker.sock`, `tcp://host:2376` or `https://host:2376`. Default: the
    /// `DOCKER_HOST` environment variable, else the local socket.
    pub host: Option<String>,
    /// Directory with `ca.pem`, `cert.pem`, `key.pem` for a TLS `tcp://` host. Default: the
    /// `DOCKER_CERT_PATH` environment variable when `DOCKER_TLS_VERIFY` is set.
    pub tls_cert_path: Option<PathBuf>,
    /// Timeout of each Docker API call (list, inspect, one stats call); a hung call is abandoned.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Most inspect calls, and separately most one-shot stats calls, in flight at once. Health,
    /// state and restarts come from inspect (~5 ms) and never wait for stats; stats calls run in
    /// the background, one per running container at a time. They mostly wait inside dockerd
    /// (~1 s each on Engine < 24.0.7 with cgroup v1, moby/moby#46448), so the default is 32: 100
    /// containers' stats take ~3-4 s there. Lower it to spread dockerd's load on huge hosts.
    pub concurrency: usize,
    /// The `job` label on container series.
    pub job: String,
    /// Container labels copied onto container series as `container_label_<sanitized key>`.
    /// Never all labels: cardinality explosions are the top complaint about cAdvisor.
    pub label_allowlist: Vec<String>,
    /// Extra allow-listed container labels, added to `label_allowlist`.
    pub extra_labels: Vec<String>,
    /// Also report containers that are not running (state, exit code, restart count, health).
    pub include_stopped: bool,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            enabled: true,
            host: None,
            tls_cert_path: None,
            timeout: Duration::from_secs(10),
            concurrency: 32,
            job: "docker".into(),
            label_allowlist: vec![
                "com.docker.compose.project".into(),
                "com.docker.compose.service".into(),
                "com.docker.swarm.service.name".into(),
                "com.docker.swarm.task.name".into(),
                "com.docker.stack.namespace".into(),
            ],
            extra_labels: Vec::new(),
            include_stopped: true,
        }
    }
}

impl CollectorConfig {
    /// Checks what serde cannot: non-zero sizes and intervals, parseable URLs and regexes.
    pub fn validate(&self) -> Result<(), CollectorError> {
        let bad = |m: String| Err(CollectorError::Config(m));
        if self.instance.is_empty() {
            return bad("instance must not be empty".into());
        }
        if self.interval < Duration::from_millis(100) {
            return bad("interval must be at least 100ms".into());
        }
        match url::Url::parse(&self.remote_write.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return bad(format!("remote_write.url {:?} is not an http(s) URL", self.remote_write.url)),
        }
        self.remote_write.http_client().validate("remote_write").map_err(|e| CollectorError::Config(e.to_string()))?;
        if self.remote_write.max_samples_per_send == 0 {
            return bad("remote_write.max_samples_per_send must be > 0".into());
        }
        if self.remote_write.min_backoff.is_zero() || self.remote_write.min_backoff > self.remote_write.max_backoff {
            return bad("remote_write.min_backoff must be > 0 and <= max_backoff".into());
        }
        if self.queue.segment_bytes < 4096 || self.queue.max_bytes < 2 * self.queue.segment_bytes {
            return bad("queue.segment_bytes must be >= 4096 and queue.max_bytes >= 2 * segment_bytes".into());
        }
        if self.docker.concurrency == 0 {
            return bad("docker.concurrency must be > 0".into());
        }
        if self.docker.timeout.is_zero() {
            return bad("docker.timeout must be > 0".into());
        }
        for t in &self.targets {
            t.validate().map_err(|m| CollectorError::Config(format!("target {:?}: {m}", t.job)))?;
        }
        Ok(())
    }

    /// The Docker allow-list with `extra_labels` merged in.
    pub fn docker_label_allowlist(&self) -> Vec<String> {
        let mut v = self.docker.label_allowlist.clone();
        for l in &self.docker.extra_labels {
            if !v.contains(l) {
                v.push(l.clone());
            }
        }
        v
    }
}

/// This host's name: `HOSTNAME`, else `/proc/sys/kernel/hostname`, else `/etc/hostname`.
pub fn local_hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.trim().is_empty()
    {
        return h.trim().to_string();
    }
    for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(h) = std::fs::read_to_string(p)
            && !h.trim().is_empty()
        {
            return h.trim().to_string();
        }
    }
    "localhost".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_yaml_gives_valid_defaults() {
        let c: CollectorConfig = serde_norway::from_str("{}").unwrap();
        c.validate().unwrap();
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.remote_write.url, "http://127.0.0.1:9300/api/v1/write");
    }

    #[test]
    fn full_yaml_round_trips_and_unknown_keys_fail() {
        let y = r#"
instance: h1
location: eu
interval: 10s
remote_write: {url: "http://x:9090/api/v1/write", min_backoff: 50ms, max_backoff: 5s}
queue: {dir: /tmp/q, max_bytes: 1048576, segment_bytes: 65536}
docker: {host: "unix:///var/run/docker.sock", extra_labels: [team]}
targets:
  - job: api
    health_url: http://127.0.0.1:8080/health
    probe: {valid_status_codes: [200, 204], fail_if_body_not_matches_regexp: "UP"}
  - job: pharo
    metrics_url: http://127.0.0.1:8081/stats
    format: json
    json_metrics: [{path: gc.count, name: pharo_gc_count}]
"#;
        let c: CollectorConfig = serde_norway::from_str(y).unwrap();
        c.validate().unwrap();
        assert_eq!(c.targets.len(), 2);
        assert!(c.docker_label_allowlist().contains(&"team".to_string()));
        let back: CollectorConfig = serde_norway::from_str(&serde_norway::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_norway::from_str::<CollectorConfig>("intervall: 5s").is_err());
    }

    #[test]
    fn shipped_example_loads() {
        let c: CollectorConfig = serde_norway::from_str(include_str!("../collector.example.yml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.targets.len(), 2);
    }

    #[test]
    fn validate_rejects_nonsense() {
        let mut c = CollectorConfig::default();
        c.remote_write.url = "ftp://x".into();
        assert!(c.validate().is_err());
        let mut c = CollectorConfig::default();
        c.queue.max_bytes = 10;
        assert!(c.validate().is_err());
    }
}
