//! Generic webhook delivery: POSTs Alertmanager's webhook payload (version 4, see
//! <https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>) and classifies the
//! answer like Alertmanager's `notify.Retrier`: 2xx delivered, 5xx retried, 429 retried after
//! `Retry-After`, any other status fatal.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::amconfig::{Secret, WebhookConfig, read_secret_file};
use super::metrics::FailReason;
use super::retry::Attempt;
use super::types::{Alert, LabelSet, fingerprint_hex};

/// One configured webhook.
pub struct Webhook {
    cfg: WebhookConfig,
    url_file: Option<std::path::PathBuf>,
    client: reqwest::Client,
}

/// What the payload describes besides the alerts.
pub struct GroupInfo<'a> {
    pub receiver: &'a str,
    pub group_key: &'a str,
    pub group_labels: &'a LabelSet,
    pub external_url: &'a str,
}

fn common(sets: &[&LabelSet]) -> LabelSet {
    let Some(first) = sets.first() else { return LabelSet::new() };
    first
        .iter()
        .filter(|(k, v)| sets.iter().all(|s| s.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Webhook {
    pub fn new(cfg: WebhookConfig, resolve: impl Fn(&str) -> std::path::PathBuf, client: reqwest::Client) -> Webhook {
        let url_file = (!cfg.url_file.is_empty()).then(|| resolve(&cfg.url_file));
        Webhook { cfg, url_file, client }
    }

    pub fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    /// Alertmanager's webhook message for a group.
    pub fn payload(&self, g: &GroupInfo<'_>, alerts: &[Alert], now: DateTime<Utc>) -> Value {
        let firing = alerts.iter().any(|a| !a.is_resolved_at(now));
        let max = if self.cfg.max_alerts == 0 { alerts.len() } else { self.cfg.max_alerts.min(alerts.len()) };
        let labels: Vec<&LabelSet> = alerts.iter().map(|a| &a.labels).collect();
        let annotations: Vec<&LabelSet> = alerts.iter().map(|a| &a.annotations).collect();
        let list: Vec<Value> = alerts[..max]
            .iter()
            .map(|a| {
                let resolved = a.is_resolved_at(now);
                json!({
                    "status": if resolved { "resolved" } else { "firing" },
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": ts(a.starts_at),
                    "endsAt": if resolved { ts(a.ends_at) } else { "0001-01-01T00:00:00Z".to_string() },
                    "generatorURL": a.generator_url,
                    "fingerprint": fingerprint_hex(a.fingerprint()),
                })
            })
            .collect();
        json!({
            "version": "4",
            "groupKey": g.group_key,
            "truncatedAlerts": alerts.len() - max,
            "status": if firing { "firing" } else { "resolved" },
            "receiver": g.receiver,
            "groupLabels": g.group_labels,
            "commonLabels": common(&labels),
            "commonAnnotations": common(&annotations),
            "externalURL": g.external_url,
            "alerts": list,
        })
    }

    fn url(&self) -> Result<Secret, String> {
        match &self.url_file {
            Some(p) => read_secret_file(p),
            None => Ok(self.cfg.url.clone()),
        }
    }

    /// One delivery attempt.
    pub async fn attempt(&self, payload: &Value) -> Attempt {
        let url = match self.url() {
            Ok(u) => u,
            Err(message) => return Attempt::Retry { reason: FailReason::other, after: None, message },
        };
        let resp = match self.client.post(url.expose()).json(payload).send().await {
            Ok(r) => r,
            Err(e) => {
                let reason = if e.is_timeout() { FailReason::timeout } else { FailReason::connection };
                // The URL may carry a token: report the error kind without it.
                return Attempt::Retry { reason, after: None, message: e.without_url().to_string() };
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: String = resp.text().await.unwrap_or_default().trim().chars().take(200).collect();
        classify(status, retry_after, &body)
    }
}

/// Maps an HTTP status to an attempt outcome (the shared mapping in [`super::retry`]).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> Attempt {
    super::retry::classify_http(status, retry_after, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn alert(inst: &str, end: i64) -> Alert {
        Alert {
            labels: [("alertname", "A"), ("instance", inst)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: LabelSet::new(),
            starts_at: t(0),
            ends_at: t(end),
            updated_at: t(0),
            generator_url: "http://prom/graph".into(),
            timeout: false,
        }
    }

    #[test]
    fn payload_matches_alertmanager_v4() {
        let cfg = WebhookConfig {
            send_resolved: true,
            url: Secret("http://x/hook".into()),
            url_file: String::new(),
            max_alerts: 1,
        };
        let w = Webhook::new(cfg, |p: &str| std::path::PathBuf::from(p), reqwest::Client::new());
        let group: LabelSet = [("alertname".to_string(), "A".to_string())].into();
        let g = GroupInfo {
            receiver: "hook",
            group_key: "{}:{alertname=\"A\"}",
            group_labels: &group,
            external_url: "http://am",
        };
        let v = w.payload(&g, &[alert("h1", 100), alert("h2", 5)], t(10));
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["truncatedAlerts"], 1);
        assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(v["commonLabels"], json!({"alertname": "A"}));
        assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn classification() {
        assert_eq!(classify(204, None, ""), Attempt::Delivered);
        assert!(matches!(classify(502, None, ""), Attempt::Retry { reason: FailReason::server_error, .. }));
        assert!(matches!(classify(429, None, ""), Attempt::Retry { after: Some(_), .. }));
        assert!(matches!(classify(401, None, "nope"), Attempt::Fatal { .. }));
    }
}
