//! The alert hand-off between rule evaluation and notification: Alertmanager's `postableAlert`
//! (API v2, `POST /api/v2/alerts`), which is also what real Prometheus sends us when it uses
//! Crowsnest as its Alertmanager.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One alert as Prometheus posts it to Alertmanager. `ends_at` in the past means resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// Where evaluated alerts go: the in-process notification pipeline, or an Alertmanager over HTTP.
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Hands over firing alerts (re-sent every evaluation, like Prometheus) and resolved ones.
    async fn send(&self, alerts: Vec<PostableAlert>);
}
