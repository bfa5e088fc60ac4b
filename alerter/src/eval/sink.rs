//! Alert sinks besides the built-in notifier: an external Alertmanager over API v2
//! (`POST /api/v2/alerts`, what Prometheus' notifier does) and a fan-out to several sinks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::alert::{AlertSink, PostableAlert};

/// Posts alerts to one Alertmanager. Failures are logged (the next evaluation re-sends firing
/// alerts, as Prometheus does).
#[derive(Debug, Clone)]
pub struct AlertmanagerSink {
    http: reqwest::Client,
    url: String,
}

impl AlertmanagerSink {
    pub fn new(base_url: &str) -> Result<Self, crowsnest_web::WebError> {
        Self::with_http(base_url, &crowsnest_web::HttpClientConfig::default())
    }

    /// Like [`AlertmanagerSink::new`] with credentials and TLS settings.
    pub fn with_http(base_url: &str, cfg: &crowsnest_web::HttpClientConfig) -> Result<Self, crowsnest_web::WebError> {
        let http = cfg
            .client_builder()?
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| crowsnest_web::WebError::Client(e.to_string()))?;
        Ok(AlertmanagerSink { http, url: format!("{}/api/v2/alerts", base_url.trim_end_matches('/')) })
    }
}

#[async_trait]
impl AlertSink for AlertmanagerSink {
    async fn send(&self, alerts: Vec<PostableAlert>) {
        if alerts.is_empty() {
            return;
        }
        let n = alerts.len();
        match self.http.post(&self.url).json(&alerts).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(url = %self.url, alerts = n, "Sent alerts to Alertmanager.")
            }
            Ok(r) => tracing::warn!(url = %self.url, status = %r.status(), alerts = n, "Alertmanager rejected alerts."),
            Err(e) => tracing::warn!(url = %self.url, error = %e, alerts = n, "Sending alerts to Alertmanager failed."),
        }
    }
}

/// Sends every batch to each inner sink in turn.
#[derive(Clone, Default)]
pub struct FanoutSink(pub Vec<Arc<dyn AlertSink>>);

#[async_trait]
impl AlertSink for FanoutSink {
    async fn send(&self, alerts: Vec<PostableAlert>) {
        if alerts.is_empty() {
            return;
        }
        for s in &self.0 {
            s.send(alerts.clone()).await;
        }
    }
}

/// Keeps every batch in memory (tests, `test-rules`).
#[derive(Default)]
pub struct CollectingSink(pub parking_lot::Mutex<Vec<PostableAlert>>);

#[async_trait]
impl AlertSink for CollectingSink {
    async fn send(&self, alerts: Vec<PostableAlert>) {
        self.0.lock().extend(alerts);
    }
}
