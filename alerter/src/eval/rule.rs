//! Turning one rule's query result into its outputs, as `rules/recording.go` and
//! `rules/alerting.go` do: recording rules rename and relabel the samples; alerting rules drop
//! `__name__`, add the (templated) rule labels and `alertname`, and template the annotations.

use std::collections::{BTreeMap, BTreeSet};

use crate::rules::{AlertingRule, RecordingRule};
use crate::state::{Element, key_of};
use crate::template::{TemplateData, expand_or_error};

use super::EvalError;
use super::client::Sample;

/// Applies rule labels: each set label overrides; an empty value removes the label.
fn apply_labels(labels: &mut BTreeMap<String, String>, extra: &BTreeMap<String, String>) {
    for (k, v) in extra {
        if v.is_empty() {
            labels.remove(k);
        } else {
            labels.insert(k.clone(), v.clone());
        }
    }
}

/// Output samples of a recording rule (`__name__` = record name), checked for duplicates and `limit`.
pub fn recording_output(rule: &RecordingRule, samples: Vec<Sample>, limit: usize) -> Result<Vec<Sample>, EvalError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(samples.len());
    for (mut labels, v) in samples {
        labels.insert(crowsnest_wire::METRIC_NAME.to_string(), rule.name.clone());
        apply_labels(&mut labels, &rule.labels);
        if !seen.insert(key_of(&labels)) {
            return Err(EvalError::Rule(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            ));
        }
        out.push((labels, v));
    }
    if limit > 0 && out.len() > limit {
        return Err(EvalError::Rule(format!("exceeded limit of {limit} with {} series", out.len())));
    }
    Ok(out)
}

/// Template inputs that do not change per sample.
#[derive(Debug, Clone, Copy)]
pub struct AlertContext<'a> {
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
}

/// The alert elements of an alerting rule's result.
pub fn alert_elements(rule: &AlertingRule, samples: Vec<Sample>, ctx: AlertContext<'_>) -> Vec<Element> {
    samples
        .into_iter()
        .map(|(metric, value)| {
            let data = TemplateData {
                labels: &metric,
                value,
                external_labels: ctx.external_labels,
                external_url: ctx.external_url,
            };
            let name = format!("__alert_{}", rule.name);
            let mut labels = metric.clone();
            labels.remove(crowsnest_wire::METRIC_NAME);
            let expanded: BTreeMap<String, String> =
                rule.labels.iter().map(|(k, v)| (k.clone(), expand_or_error(&name, v, data))).collect();
            apply_labels(&mut labels, &expanded);
            labels.insert("alertname".into(), rule.name.clone());
            let annotations =
                rule.annotations.iter().map(|(k, v)| (k.clone(), expand_or_error(&name, v, data))).collect();
            Element { labels, annotations, value }
        })
        .collect()
}

/// Prometheus' `TableLinkForExpression`, appended to the external URL.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!("{}/graph?g0.expr={q}&g0.tab=1", external_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn recording_renames_relabels_and_checks() {
        let r =
            RecordingRule { name: "job:up:sum".into(), expr: "x".into(), labels: m(&[("env", "prod"), ("drop", "")]) };
        let out = recording_output(&r, vec![(m(&[("__name__", "up"), ("job", "a"), ("drop", "x")]), 1.0)], 0).unwrap();
        assert_eq!(out[0].0, m(&[("__name__", "job:up:sum"), ("env", "prod"), ("job", "a")]));
        let two = vec![(m(&[("job", "a"), ("i", "1")]), 1.0), (m(&[("job", "a"), ("i", "2")]), 1.0)];
        assert!(
            recording_output(&r, two.clone(), 1).unwrap_err().to_string().contains("exceeded limit of 1 with 2 series")
        );
        let r2 = RecordingRule { labels: m(&[("i", "same")]), ..r };
        assert!(recording_output(&r2, two, 0).unwrap_err().to_string().contains("same labelset"));
    }

    #[test]
    fn alert_elements_template_labels_and_annotations() {
        let r = AlertingRule {
            name: "HighLoad".into(),
            expr: "load > 1".into(),
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            labels: m(&[("severity", "{{ if gt $value 5.0 }}critical{{ else }}warning{{ end }}")]),
            annotations: m(&[("summary", "{{ $labels.instance }} load {{ $value }} in {{ $externalLabels.dc }}")]),
        };
        let ext = m(&[("dc", "eu")]);
        let els = alert_elements(
            &r,
            vec![(m(&[("__name__", "load"), ("instance", "h1")]), 7.0)],
            AlertContext { external_labels: &ext, external_url: "" },
        );
        assert_eq!(els[0].labels, m(&[("alertname", "HighLoad"), ("instance", "h1"), ("severity", "critical")]));
        assert_eq!(els[0].annotations["summary"], "h1 load 7 in eu");
    }

    #[test]
    fn generator_url_escapes_expr() {
        assert_eq!(generator_url("http://h:9090/", "up == 0"), "http://h:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1");
    }
}
