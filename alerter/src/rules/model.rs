//! The rule-file YAML exactly as Prometheus reads it (`model/rulefmt/rulefmt.go`): `groups` of
//! `name`, `interval`, `limit`, `query_offset`, `labels`, `rules`; each rule either `record` or
//! `alert` with `expr`, `for`, `keep_firing_for`, `labels`, `annotations`. Unknown keys are errors,
//! like Prometheus' strict decoding.

use std::collections::BTreeMap;
use std::time::Duration;

use crowsnest_wire::duration::serde_opt_duration;
use serde::{Deserialize, Deserializer};

/// A whole rule file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<RuleGroupNode>,
}

/// One `groups[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroupNode {
    #[serde(default)]
    pub name: String,
    /// Evaluation interval; the global `evaluation_interval` when absent.
    #[serde(default, with = "serde_opt_duration")]
    pub interval: Option<Duration>,
    #[serde(default)]
    pub limit: usize,
    #[serde(default, with = "serde_opt_duration")]
    pub query_offset: Option<Duration>,
    /// Labels added to every rule of the group (Prometheus 3.x); rule labels win.
    #[serde(default, deserialize_with = "scalar_map")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<RuleNode>,
}

/// One `rules[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleNode {
    #[serde(default, deserialize_with = "opt_scalar")]
    pub record: Option<String>,
    #[serde(default, deserialize_with = "opt_scalar")]
    pub alert: Option<String>,
    #[serde(default, deserialize_with = "opt_scalar")]
    pub expr: Option<String>,
    #[serde(default, rename = "for", with = "serde_opt_duration")]
    pub for_: Option<Duration>,
    #[serde(default, with = "serde_opt_duration")]
    pub keep_firing_for: Option<Duration>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub annotations: BTreeMap<String, String>,
}

/// A YAML scalar read as text, as Go's yaml decoder does for string fields (`expr: 1`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(Scalar::into_string))
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m: Option<BTreeMap<String, Scalar>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_string())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_rule_file() {
        let f: RuleFile = serde_norway::from_str(
            "groups:\n- name: g\n  interval: 30s\n  limit: 3\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 1m\n    keep_firing_for: 5m\n    labels: {severity: 1}\n    annotations: {summary: x}\n  - record: r:x\n    expr: 1\n",
        )
        .unwrap();
        let g = &f.groups[0];
        assert_eq!(g.interval, Some(Duration::from_secs(30)));
        assert_eq!(g.limit, 3);
        assert_eq!(g.rules[0].for_, Some(Duration::from_secs(60)));
        assert_eq!(g.rules[0].keep_firing_for, Some(Duration::from_secs(300)));
        assert_eq!(g.rules[0].labels["severity"], "1");
        assert_eq!(g.rules[1].expr.as_deref(), Some("1"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = serde_norway::from_str::<RuleFile>(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    fro: 1m\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("fro"), "{e}");
        assert_eq!(e.location().map(|l| l.line()), Some(6));
    }
}
