//! The `alerter:` section of Crowsnest's config: where to query, where to write `ALERTS` and
//! recording-rule results, which rule files to load, evaluation timing (defaults from
//! Prometheus' `config.DefaultGlobalConfig` and `cmd/prometheus/main.go` flags), and where the
//! alerts go. Strict serde, defaults in code, [`AlerterConfig::validate`] before use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crowsnest_web::HttpClientConfig;
use crowsnest_wire::duration::serde_duration;
use crowsnest_wire::labels::is_valid_label_name;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A config value that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("alerter config: {0}")]
pub struct ConfigError(pub String);

/// Settings of the rule evaluator and its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlerterConfig {
    /// Base URL of a Prometheus-compatible query API (`<url>/api/v1/query`): our store, or a real
    /// Prometheus.
    pub query_url: String,
    /// remote_write endpoint for `ALERTS`, `ALERTS_FOR_STATE` and recording-rule results. Empty
    /// disables writing (recording rules are then evaluated but their results are dropped).
    pub remote_write_url: String,
    /// Rule files or globs in Prometheus' rule format (`--rules PATH` adds to these).
    pub rule_files: Vec<String>,
    /// Most rules one group may hold; a bigger group is refused at load with a problem naming
    /// it (Mimir's `ruler_max_rules_per_rule_group`). Groups run their rules one after another
    /// within an interval, so an oversized group silently misses evaluations instead.
    pub max_rules_per_group: usize,
    /// Default group evaluation interval (Prometheus' `global.evaluation_interval`, 1m).
    #[serde(with = "serde_duration")]
    pub evaluation_interval: Duration,
    /// Timeout of one rule query.
    #[serde(with = "serde_duration")]
    pub query_timeout: Duration,
    /// Minimum gap between re-sends of a still-firing alert (`--rules.alert.resend-delay`, 1m).
    #[serde(with = "serde_duration")]
    pub resend_delay: Duration,
    /// Downtime after which pending `for` timers restart instead of resuming
    /// (`--rules.alert.for-outage-tolerance`, 1h).
    #[serde(with = "serde_duration")]
    pub for_outage_tolerance: Duration,
    /// Minimum time between a restart and a restored pending alert firing
    /// (`--rules.alert.for-grace-period`, 10m).
    #[serde(with = "serde_duration")]
    pub for_grace_period: Duration,
    /// Labels added to every alert sent and available as `$externalLabels` in templates
    /// (Prometheus' `global.external_labels`; not added to written series).
    pub external_labels: BTreeMap<String, String>,
    /// Public URL alerts link back to in `generatorURL` (`<url>/graph?g0.expr=…`); empty = `query_url`.
    pub external_url: String,
    /// Directory of the alerter's sled database (alert state, silences, notification log).
    pub data_dir: PathBuf,
    /// Alertmanager-format routing/receivers YAML for the built-in notifier (`--alertmanager-config`).
    pub alertmanager_config: Option<PathBuf>,
    /// External Alertmanagers to POST alerts to (`<url>/api/v2/alerts`), besides the built-in notifier.
    pub alertmanager_urls: Vec<String>,
    /// Credentials and TLS for `query_url` (Prometheus' `http_config`: `basic_auth_username`,
    /// `basic_auth_password[_file]`, `bearer_token[_file]`, `tls: {ca_file, cert_file, key_file,
    /// server_name, insecure_skip_verify}`).
    pub query_http: HttpClientConfig,
    /// Credentials and TLS for `remote_write_url`.
    pub remote_write_http: HttpClientConfig,
    /// Credentials and TLS for every `alertmanager_urls` entry.
    pub alertmanager_http: HttpClientConfig,
}

impl Default for AlerterConfig {
    fn default() -> Self {
        AlerterConfig {
            query_url: "http://127.0.0.1:9300".into(),
            remote_write_url: "http://127.0.0.1:9300/api/v1/write".into(),
            rule_files: Vec::new(),
            max_rules_per_group: crate::rules::DEFAULT_MAX_RULES_PER_GROUP,
            evaluation_interval: Duration::from_secs(60),
            query_timeout: Duration::from_secs(60),
            resend_delay: Duration::from_secs(60),
            for_outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            data_dir: PathBuf::from("data/alerter"),
            alertmanager_config: None,
            alertmanager_urls: Vec::new(),
            query_http: HttpClientConfig::default(),
            remote_write_http: HttpClientConfig::default(),
            alertmanager_http: HttpClientConfig::default(),
        }
    }
}

fn check_url(what: &str, s: &str) -> Result<(), ConfigError> {
    let u = url::Url::parse(s).map_err(|e| ConfigError(format!("{what}: {s:?}: {e}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(ConfigError(format!("{what}: {s:?}: scheme must be http or https")));
    }
    Ok(())
}

impl AlerterConfig {
    /// Checks URLs, durations and label names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url("query_url", &self.query_url)?;
        if !self.remote_write_url.is_empty() {
            check_url("remote_write_url", &self.remote_write_url)?;
        }
        if !self.external_url.is_empty() {
            check_url("external_url", &self.external_url)?;
        }
        for u in &self.alertmanager_urls {
            check_url("alertmanager_urls", u)?;
        }
        for (what, c) in [
            ("query_http", &self.query_http),
            ("remote_write_http", &self.remote_write_http),
            ("alertmanager_http", &self.alertmanager_http),
        ] {
            c.validate(what).map_err(|e| ConfigError(e.to_string()))?;
        }
        for (what, d) in [("evaluation_interval", self.evaluation_interval), ("query_timeout", self.query_timeout)] {
            if d.is_zero() {
                return Err(ConfigError(format!("{what} must be greater than 0")));
            }
        }
        if self.max_rules_per_group == 0 {
            return Err(ConfigError("max_rules_per_group must be at least 1".into()));
        }
        for k in self.external_labels.keys() {
            if !is_valid_label_name(k) {
                return Err(ConfigError(format!("external_labels: invalid label name {k:?}")));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError("data_dir must be set".into()));
        }
        Ok(())
    }

    /// The URL `generatorURL` links are built on.
    pub fn effective_external_url(&self) -> &str {
        if self.external_url.is_empty() { &self.query_url } else { &self.external_url }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_prometheus() {
        let c = AlerterConfig::default();
        c.validate().unwrap();
        assert_eq!(c.evaluation_interval, Duration::from_secs(60));
        assert_eq!(c.effective_external_url(), "http://127.0.0.1:9300");
    }

    #[test]
    fn parses_yaml_strictly() {
        let c: AlerterConfig = serde_norway::from_str(
            "query_url: http://127.0.0.1:9090\nevaluation_interval: 15s\nrule_files: ['/etc/rules/*.yml']\nexternal_labels: {cluster: prod}\nalertmanager_urls: [http://127.0.0.1:9093]\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.evaluation_interval, Duration::from_secs(15));
        assert_eq!(c.resend_delay, Duration::from_secs(60));
        assert!(serde_norway::from_str::<AlerterConfig>("evaluation_intervall: 15s\n").is_err());
    }

    #[test]
    fn rejects_bad_values() {
        let bad = |f: fn(&mut AlerterConfig)| {
            let mut c = AlerterConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.query_url = "ftp://x".into()));
        assert!(bad(|c| c.query_url = "not a url".into()));
        assert!(bad(|c| c.evaluation_interval = Duration::ZERO));
        assert!(bad(|c| {
            c.external_labels.insert("bad-name".into(), "x".into());
        }));
        assert!(!bad(|c| c.remote_write_url.clear()));
        assert!(bad(|c| c.max_rules_per_group = 0));
    }
}
