//! Metrics of the notification pipeline, named like Alertmanager's (`alertmanager_notifications_total`
//! …) under the `crowsnest_alerter_` prefix. Label values are bounded: receiver and integration
//! names come from the config, failure reasons from [`FailReason`].

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// Why a notification failed, as a bounded metric label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum FailReason {
    /// Slack (or any HTTP receiver) answered 429.
    rate_limited,
    /// 5xx answer.
    server_error,
    /// Other 4xx answer or an error body (`invalid_payload`, `no_text`, …).
    client_error,
    /// Connecting, TLS or I/O failed.
    connection,
    /// The attempt series ran out of time.
    timeout,
    /// SMTP answered with a transient (4xx) code.
    smtp_transient,
    /// SMTP answered with a permanent (5xx) code.
    smtp_permanent,
    /// A template did not render, or an address did not parse.
    template,
    /// Anything else.
    other,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntegrationLabels {
    pub receiver: String,
    pub integration: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailLabels {
    pub receiver: String,
    pub integration: String,
    pub reason: FailReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IntegrationOnly {
    pub integration: String,
}

/// All notifier metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    pub notifications: Family<IntegrationLabels, Counter>,
    pub notifications_failed: Family<FailLabels, Counter>,
    pub requests: Family<IntegrationLabels, Counter>,
    pub latency: Family<IntegrationOnly, Histogram>,
    pub alerts_received: Family<StatusLabels, Counter>,
    pub alerts_invalid: Counter,
    pub silences: Family<StateLabels, Gauge>,
    pub alerts: Gauge,
    pub aggregation_groups: Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            notifications: Family::default(),
            notifications_failed: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            alerts_received: Family::default(),
            alerts_invalid: Counter::default(),
            silences: Family::default(),
            alerts: Gauge::default(),
            aggregation_groups: Gauge::default(),
        }
    }

    /// Registers everything under `crowsnest_alerter_`.
    pub fn register(&self, registry: &crowsnest_wire::ops::SharedRegistry) {
        let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
        let r = reg.sub_registry_with_prefix("crowsnest_alerter");
        r.register("notifications", "Notifications attempted, by receiver and integration", self.notifications.clone());
        r.register(
            "notifications_failed",
            "Notifications that failed for good (after retries), by reason",
            self.notifications_failed.clone(),
        );
        r.register("notification_requests", "Individual delivery attempts (including retries)", self.requests.clone());
        r.register(
            "notification_latency_seconds",
            "Time to deliver one notification, retries included",
            self.latency.clone(),
        );
        r.register(
            "alerts_received",
            "Alerts received from rule evaluation or the API, by status",
            self.alerts_received.clone(),
        );
        r.register("alerts_invalid", "Posted alerts rejected as invalid", self.alerts_invalid.clone());
        r.register("silences", "Silences by state", self.silences.clone());
        r.register("alerts", "Alerts held in the alert store", self.alerts.clone());
        r.register("aggregation_groups", "Aggregation groups currently alive", self.aggregation_groups.clone());
    }

    pub fn fail(&self, receiver: &str, integration: &str, reason: FailReason) {
        self.notifications_failed
            .get_or_create(&FailLabels { receiver: receiver.to_string(), integration: integration.to_string(), reason })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
