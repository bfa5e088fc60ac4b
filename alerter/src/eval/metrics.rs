//! The evaluator's own metrics, named like Prometheus' rule manager (`rules/group.go`,
//! `rules/manager.go`) so existing dashboards and alerts on `prometheus_rule_*` work. The
//! `rule_group` label is `<file>;<group>` as in Prometheus (bounded by the loaded rule files).

use std::sync::atomic::AtomicU64;

use crowsnest_wire::ops::SharedRegistry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

type GroupLabels = Vec<(&'static str, String)>;

/// Counters and gauges per rule group.
#[derive(Clone, Default)]
pub struct RuleMetrics {
    pub evaluations: Family<GroupLabels, Counter>,
    pub evaluation_failures: Family<GroupLabels, Counter>,
    pub last_duration_seconds: Family<GroupLabels, Gauge<f64, AtomicU64>>,
    pub last_evaluation_timestamp_seconds: Family<GroupLabels, Gauge<f64, AtomicU64>>,
    pub alerts_sent: Counter,
}

/// The label set of one group.
pub fn group_labels(file: &str, group: &str) -> GroupLabels {
    vec![("rule_group", format!("{file};{group}"))]
}

impl RuleMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &SharedRegistry) -> RuleMetrics {
        let m = RuleMetrics::default();
        let mut r = registry.lock().unwrap_or_else(|e| e.into_inner());
        r.register("prometheus_rule_evaluations", "Rule evaluations, per group.", m.evaluations.clone());
        r.register(
            "prometheus_rule_evaluation_failures",
            "Rule evaluations that failed, per group.",
            m.evaluation_failures.clone(),
        );
        r.register(
            "prometheus_rule_group_last_duration_seconds",
            "Duration of the last evaluation of the group.",
            m.last_duration_seconds.clone(),
        );
        r.register(
            "prometheus_rule_group_last_evaluation_timestamp_seconds",
            "Time of the last evaluation of the group.",
            m.last_evaluation_timestamp_seconds.clone(),
        );
        r.register(
            "crowsnest_alerter_alerts_sent",
            "Alerts handed to the notification pipeline.",
            m.alerts_sent.clone(),
        );
        m
    }
}
