//! Inhibition: a firing source alert mutes target alerts whose `equal` labels have the same
//! values (a missing label counts as empty). Semantics of Alertmanager's `inhibit/inhibit.go`,
//! including that an alert matching both sides is not muted by alerts that also match both.

use chrono::{DateTime, Utc};
use crowsnest_wire::{MatchOp, Matcher};

use super::amconfig::{ConfigError, InhibitRuleConfig};
use super::matchers::parse_matcher;
use super::types::{Alert, LabelSet, fingerprint_hex, to_labels};

/// One compiled inhibit rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub name: String,
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

fn compile_side(
    new: &[String],
    eq: &std::collections::BTreeMap<String, String>,
    re: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<Matcher>, ConfigError> {
    let mut v = Vec::new();
    for m in new {
        v.push(parse_matcher(m)?);
    }
    for (k, val) in eq {
        v.push(Matcher::equal(k.clone(), val.clone()));
    }
    for (k, val) in re {
        v.push(
            Matcher::new(MatchOp::Regex, k.clone(), val.clone())
                .map_err(|e| ConfigError::Invalid(format!("inhibit rule regex {k}: {e}")))?,
        );
    }
    Ok(v)
}

impl InhibitRule {
    pub fn compile(cfg: &InhibitRuleConfig) -> Result<InhibitRule, ConfigError> {
        Ok(InhibitRule {
            name: cfg.name.clone(),
            source: compile_side(&cfg.source_matchers, &cfg.source_match, &cfg.source_match_re)?,
            target: compile_side(&cfg.target_matchers, &cfg.target_match, &cfg.target_match_re)?,
            equal: cfg.equal.clone(),
        })
    }

    fn equal_labels(&self, a: &LabelSet, b: &LabelSet) -> bool {
        self.equal
            .iter()
            .all(|n| a.get(n).map(String::as_str).unwrap_or("") == b.get(n).map(String::as_str).unwrap_or(""))
    }
}

/// All inhibit rules of a config.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
}

impl Inhibitor {
    pub fn compile(cfgs: &[InhibitRuleConfig]) -> Result<Inhibitor, ConfigError> {
        Ok(Inhibitor { rules: cfgs.iter().map(InhibitRule::compile).collect::<Result<_, _>>()? })
    }

    /// Fingerprints (hex) of the firing alerts in `firing` that inhibit an alert with `labels`.
    pub fn inhibited_by(&self, labels: &LabelSet, firing: &[Alert], now: DateTime<Utc>) -> Vec<String> {
        let target = to_labels(labels);
        let mut out = Vec::new();
        for rule in &self.rules {
            if !crowsnest_wire::labels::matches_all(&rule.target, &target) {
                continue;
            }
            let target_is_source = crowsnest_wire::labels::matches_all(&rule.source, &target);
            for src in firing {
                if src.is_resolved_at(now) || &src.labels == labels {
                    continue;
                }
                let s = to_labels(&src.labels);
                if !crowsnest_wire::labels::matches_all(&rule.source, &s) || !rule.equal_labels(&src.labels, labels) {
                    continue;
                }
                // A source that also matches the target side cannot mute another alert that is both.
                if target_is_source && crowsnest_wire::labels::matches_all(&rule.target, &s) {
                    continue;
                }
                out.push(fingerprint_hex(src.fingerprint()));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn alert(pairs: &[(&str, &str)], end: i64) -> Alert {
        Alert {
            labels: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: LabelSet::new(),
            starts_at: t(0),
            ends_at: t(end),
            updated_at: t(0),
            generator_url: String::new(),
            timeout: false,
        }
    }

    fn inhibitor(equal: &[&str]) -> Inhibitor {
        Inhibitor::compile(&[InhibitRuleConfig {
            source_matchers: vec![r#"alertname="HostDown""#.into()],
            target_matchers: vec![r#"alertname=~"Container.*""#.into()],
            equal: equal.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }])
        .unwrap()
    }

    #[test]
    fn source_mutes_target_with_equal_labels() {
        let inh = inhibitor(&["instance"]);
        let src = alert(&[("alertname", "HostDown"), ("instance", "h1")], 100);
        let tgt = alert(&[("alertname", "ContainerDown"), ("instance", "h1")], 100);
        let other = alert(&[("alertname", "ContainerDown"), ("instance", "h2")], 100);
        let firing = vec![src.clone(), tgt.clone(), other.clone()];
        assert_eq!(inh.inhibited_by(&tgt.labels, &firing, t(1)), vec![fingerprint_hex(src.fingerprint())]);
        assert!(inh.inhibited_by(&other.labels, &firing, t(1)).is_empty(), "instance differs");
        assert!(inh.inhibited_by(&src.labels, &firing, t(1)).is_empty(), "source is not a target");
        assert!(inh.inhibited_by(&tgt.labels, &firing, t(200)).is_empty(), "resolved source mutes nothing");
    }

    #[test]
    fn missing_equal_label_counts_as_empty() {
        let inh = inhibitor(&["cluster"]);
        let src = alert(&[("alertname", "HostDown")], 100);
        let tgt = alert(&[("alertname", "ContainerX")], 100);
        assert_eq!(inh.inhibited_by(&tgt.labels, &[src], t(1)).len(), 1);
    }

    #[test]
    fn both_sides_do_not_mute_each_other() {
        let inh = Inhibitor::compile(&[InhibitRuleConfig {
            source_matchers: vec!["sev=crit".into()],
            target_matchers: vec!["team=db".into()],
            ..Default::default()
        }])
        .unwrap();
        let a = alert(&[("sev", "crit"), ("team", "db"), ("x", "1")], 100);
        let b = alert(&[("sev", "crit"), ("team", "db"), ("x", "2")], 100);
        assert!(inh.inhibited_by(&a.labels, &[a.clone(), b], t(1)).is_empty());
    }
}
