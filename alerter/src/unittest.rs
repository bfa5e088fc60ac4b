//! `crowsnest test-rules`: promtool's rule unit tests (`cmd/promtool/unittest.go`), evaluated
//! in-process: input series go into a `crowsnest_promql::MemStorage`, every rule group is
//! evaluated by the real evaluator ([`crate::eval::eval_group`]) at each `evaluation_interval`
//! step from 0 over an [`EngineClient`], recording-rule results and `ALERTS` are written back
//! into the same storage, firing alerts are compared at each `eval_time` (state of the last
//! evaluation at or before it), and `promql_expr_test` queries run after the rule evaluations.

pub mod model;
pub mod series;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use crowsnest_promql::{Engine, MemStorage};
use crowsnest_wire::{Label, Labels, Sample, TimeSeries};

use crate::eval::sink::CollectingSink;
use crate::eval::{EngineClient, EvalContext, EvalError, GroupRuntime, QueryClient, SeriesWriter, eval_group};
use crate::rules::{self, Rule};
use crate::state::AlertState;
use model::{AlertTestCase, PromqlTestCase, TestFile, TestGroup};

/// The outcome of one test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileResult {
    pub file: PathBuf,
    /// Empty when every test passed.
    pub errors: Vec<String>,
}

/// The outcome of a `test-rules` run; prints like promtool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub files: Vec<FileResult>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.files.iter().all(|f| f.errors.is_empty())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.files {
            writeln!(f, "Unit Testing:  {}", r.file.display())?;
            if r.errors.is_empty() {
                writeln!(f, "  SUCCESS")?;
            } else {
                writeln!(f, "  FAILED:")?;
                for e in &r.errors {
                    for line in e.lines() {
                        writeln!(f, "    {line}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs every test file. Synchronous: evaluation is in-process and never waits on I/O.
pub fn run_files(files: &[PathBuf]) -> Report {
    Report { files: files.iter().map(|f| FileResult { file: f.clone(), errors: run_file(f) }).collect() }
}

fn run_file(path: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("cannot read file: {e}")],
    };
    let tf: TestFile = match serde_norway::from_str(&text) {
        Ok(t) => t,
        Err(e) => return vec![e.to_string()],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let patterns: Vec<String> = tf
        .rule_files
        .iter()
        .map(|r| if Path::new(r).is_absolute() { r.clone() } else { base.join(r).display().to_string() })
        .collect();
    let groups =
        match rules::expand_globs(&patterns).and_then(|files| rules::load_files(&files, tf.evaluation_interval)) {
            Ok(g) => g,
            Err(problems) => return problems.iter().map(|p| p.to_string()).collect(),
        };
    let mut errors = Vec::new();
    for (i, tg) in tf.tests.iter().enumerate() {
        let label = if tg.name.is_empty() { format!("test {}", i + 1) } else { tg.name.clone() };
        for e in futures::executor::block_on(run_group(&tf, tg, &groups)) {
            errors.push(format!("{label}: {e}"));
        }
    }
    errors
}

/// Writes rule output into the test storage.
struct MemWriter(Arc<MemStorage>);

#[async_trait]
impl SeriesWriter for MemWriter {
    async fn write(&self, series: Vec<TimeSeries>) -> Result<(), EvalError> {
        for s in series {
            self.0.add(Labels::from_vec(s.labels), s.samples);
        }
        Ok(())
    }
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

async fn run_group(tf: &TestFile, tg: &TestGroup, groups: &[rules::Group]) -> Vec<String> {
    let storage = Arc::new(MemStorage::new());
    let step = ms(tg.interval.unwrap_or(tf.evaluation_interval)).max(1);
    for s in &tg.input_series {
        let labels = match series::parse_series(&s.series) {
            Ok(l) => l,
            Err(e) => return vec![e],
        };
        let values = match series::parse_values(&s.values) {
            Ok(v) => v,
            Err(e) => return vec![format!("series {:?}: {e}", s.series)],
        };
        let samples = values.iter().enumerate().filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step, v)));
        storage.add(Labels::from_vec(labels.into_iter().map(|(k, v)| Label::new(k, v)).collect()), samples);
    }
    let client = Arc::new(EngineClient { engine: Engine::default(), storage: storage.clone() });
    let ctx = EvalContext {
        query: client.clone(),
        writer: Some(Arc::new(MemWriter(storage.clone()))),
        sink: Arc::new(CollectingSink::default()),
        external_labels: tg.external_labels.clone(),
        external_url: tg.external_url.clone(),
        resend_delay: std::time::Duration::from_secs(60),
        persist: None,
        metrics: None,
    };
    let runtimes: Vec<GroupRuntime> = groups.iter().cloned().map(GroupRuntime::new).collect();
    let eval_step = ms(tf.evaluation_interval).max(1);
    let mut alert_tests: Vec<&AlertTestCase> = tg.alert_rule_test.iter().collect();
    alert_tests.sort_by_key(|t| t.eval_time);
    let max_t = alert_tests
        .iter()
        .map(|t| ms(t.eval_time))
        .chain(tg.promql_expr_test.iter().map(|t| ms(t.eval_time)))
        .max()
        .unwrap_or(0);
    let mut errors = Vec::new();
    let mut next = 0;
    let mut ts = 0;
    while ts <= max_t {
        for g in &runtimes {
            eval_group(g, &ctx, ts).await;
        }
        while next < alert_tests.len() && ms(alert_tests[next].eval_time) < ts + eval_step {
            if let Some(e) = check_alerts(alert_tests[next], &runtimes) {
                errors.push(e);
            }
            next += 1;
        }
        ts += eval_step;
    }
    for t in &tg.promql_expr_test {
        if let Some(e) = check_expr(t, client.as_ref()).await {
            errors.push(e);
        }
    }
    errors
}

type LabelsAndAnnotations = (BTreeMap<String, String>, BTreeMap<String, String>);

fn check_alerts(t: &AlertTestCase, runtimes: &[GroupRuntime]) -> Option<String> {
    let mut got: Vec<LabelsAndAnnotations> = Vec::new();
    let mut rule_errors = Vec::new();
    for g in runtimes {
        let st = g.status.lock();
        for (rule, rr) in g.group.rules.iter().zip(&st.rules) {
            if let Rule::Alerting(r) = rule {
                if r.name != t.alertname {
                    continue;
                }
                if !rr.last_error.is_empty() {
                    rule_errors.push(rr.last_error.clone());
                }
                got.extend(
                    rr.alerts
                        .alerts
                        .values()
                        .filter(|a| a.state == AlertState::Firing)
                        .map(|a| (a.labels.clone(), a.annotations.clone())),
                );
            }
        }
    }
    let mut exp: Vec<LabelsAndAnnotations> = t
        .exp_alerts
        .iter()
        .map(|e| {
            let mut l = e.exp_labels.clone();
            l.insert("alertname".into(), t.alertname.clone());
            (l, e.exp_annotations.clone())
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    let mut msg = format!(
        "alertname: {}, time: {},\n    exp:{}\n    got:{}",
        t.alertname,
        crowsnest_wire::duration::format_duration(t.eval_time),
        show_alerts(&exp),
        show_alerts(&got)
    );
    for e in rule_errors {
        msg.push_str(&format!("\n    rule error: {e}"));
    }
    Some(msg)
}

fn show_alerts(v: &[LabelsAndAnnotations]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|(l, a)| format!("\n        labels: {}, annotations: {}", show_labels(l), show_labels(a)))
        .collect();
    if items.is_empty() { "[]".into() } else { items.concat() }
}

fn show_labels(l: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

async fn check_expr(t: &PromqlTestCase, client: &dyn QueryClient) -> Option<String> {
    let head = format!("expr: {:?}, time: {}", t.expr, crowsnest_wire::duration::format_duration(t.eval_time));
    let got = match client.query(&t.expr, ms(t.eval_time)).await {
        Ok(g) => g,
        Err(e) => return Some(format!("{head}, err: {e}")),
    };
    let mut exp = Vec::new();
    for s in &t.exp_samples {
        let labels = if s.labels.trim().is_empty() { Ok(BTreeMap::new()) } else { series::parse_series(&s.labels) };
        match labels {
            Ok(l) => exp.push((l, s.value)),
            Err(e) => return Some(format!("{head}, {e}")),
        }
    }
    let mut got = got;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && close(g.1, e.1));
    if same {
        return None;
    }
    let show = |v: &[(BTreeMap<String, String>, f64)]| {
        v.iter().map(|(l, x)| format!("{} {x}", show_labels(l))).collect::<Vec<_>>().join(", ")
    };
    Some(format!("{head},\n    exp: [{}]\n    got: [{}]", show(&exp), show(&got)))
}

#[cfg(test)]
#[path = "unittest/tests.rs"]
mod tests;
