//! The promtool rule unit-test file format
//! (<https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/>).

use std::collections::BTreeMap;
use std::time::Duration;

use crowsnest_wire::duration::{serde_duration, serde_opt_duration};
use serde::Deserialize;

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// A whole test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub rule_files: Vec<String>,
    #[serde(default = "one_minute", with = "serde_duration")]
    pub evaluation_interval: Duration,
    /// Accepted; groups are evaluated in file order, which satisfies the listed order for
    /// groups given in that order.
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    /// Accepted; comparisons are always slightly fuzzy (relative 1e-9).
    #[serde(default)]
    pub fuzzy_compare: bool,
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// One `tests[]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// Input series step; `evaluation_interval` when absent.
    #[serde(default, with = "serde_opt_duration")]
    pub interval: Option<Duration>,
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    pub promql_expr_test: Vec<PromqlTestCase>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub external_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    pub series: String,
    #[serde(default)]
    pub values: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCase {
    #[serde(with = "serde_duration")]
    pub eval_time: Duration,
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCase {
    pub expr: String,
    #[serde(with = "serde_duration")]
    pub eval_time: Duration,
    #[serde(default)]
    pub exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpSample {
    #[serde(default)]
    pub labels: String,
    pub value: f64,
}
