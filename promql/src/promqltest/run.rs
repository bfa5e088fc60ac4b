//! Executes parsed promqltest commands against our engine over a [`MemStorage`] and checks the
//! results as FORMAT.md sections 7.3–7.8 describe: value comparison with `almost.Equal(1e-6)`,
//! ordered results, expected failures and annotations, the `@`-modifier variants and the
//! range-mode cross-check of instant evals.

use std::time::{SystemTime, UNIX_EPOCH};

use crowsnest_wire::api::{MatrixSeries, Metric, QueryData};
use crowsnest_wire::{Labels, Sample, is_stale_nan, stale_nan};
use promql_parser::parser::{AtModifier, Expr};
use tokio_util::sync::CancellationToken;

use super::parse::{Command, EvalCmd, EvalKind, SeqValue, TextMatch, parse_script};
use crate::engine::{Engine, QueryError, QueryOutput};
use crate::storage::MemStorage;

/// Result of one eval.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalOutcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Results of one script, per eval line.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub results: Vec<(usize, EvalOutcome)>,
    /// Set when the script itself could not be read.
    pub error: Option<String>,
}

impl FileReport {
    pub fn count(&self, f: impl Fn(&EvalOutcome) -> bool) -> usize {
        self.results.iter().filter(|(_, o)| f(o)).count()
    }
}

/// `almost.Equal(a, b, 1e-6)` with staleness markers only equal to each other.
pub fn almost_equal(a: f64, b: f64) -> bool {
    const EPS: f64 = 1e-6;
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < EPS * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < EPS
}

/// Runs a script. `skip(line, expr)` names evals that may fail for a known reason (native
/// histograms): they run, and a failure is reported as skipped with that reason.
pub fn run_script(text: &str, engine: &Engine, skip: &dyn Fn(usize, &str) -> Option<String>) -> FileReport {
    let mut report = FileReport::default();
    let cmds = match parse_script(text) {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let storage = MemStorage::new();
    for cmd in cmds {
        match cmd {
            Command::Clear => storage.clear(),
            Command::Load { step, series, .. } => {
                for s in series {
                    let samples: Vec<Sample> = s
                        .values
                        .iter()
                        .enumerate()
                        .filter_map(|(k, v)| match v {
                            SeqValue::Float(f) => Some(Sample::new(k as i64 * step, *f)),
                            SeqValue::Stale => Some(Sample::new(k as i64 * step, stale_nan())),
                            _ => None,
                        })
                        .collect();
                    storage.add(s.labels, samples);
                }
            }
            Command::Eval(e) => {
                let outcome = match promql_parser::parser::parse(&e.expr) {
                    Err(err) => EvalOutcome::Skipped(format!(
                        "promql-parser 0.11 lacks the syntax: {}",
                        classify_parse_failure(&e.expr, &err)
                    )),
                    Ok(expr) => match (run_eval(engine, &storage, &e, &expr), skip(e.line, &e.expr)) {
                        (Ok(()), _) => EvalOutcome::Passed,
                        // A flagged eval that needs what this engine lacks (native histograms) is
                        // skipped when it fails; if it passes anyway it counts as passed.
                        (Err(msg), Some(reason)) => EvalOutcome::Skipped(format!("{reason} — {msg}")),
                        (Err(msg), None) => EvalOutcome::Failed(msg),
                    },
                };
                report.results.push((e.line, outcome));
            }
        }
    }
    report
}

/// Names the Prometheus syntax an unparsable expression uses (the parser only says "invalid").
fn classify_parse_failure(expr: &str, err: &str) -> String {
    let re = |p: &str| regex::Regex::new(p).is_ok_and(|r| r.is_match(expr));
    if re(r"\b(anchored|smoothed)\b") {
        "extended range selectors (anchored/smoothed)".into()
    } else if re(r"\[[^\]]*(step\(\)|range\(\)|[-+*/%^(]|min_of|max_of)[^\]]*\]")
        || re(r"(?i)offset\s*[-+(]?\s*(step|range|min_of|max_of|\()")
        || re(r"@\s*\(")
    {
        "duration expressions".into()
    } else if re(r"[<>=!]=?/") {
        "comparison operators with trimming (`>/`, `</`)".into()
    } else if expr.contains("info(") {
        format!("info() with a data-label selector without a non-empty matcher ({err})")
    } else {
        err.lines().next().unwrap_or("").to_string()
    }
}

const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

fn calls_at_unsafe(e: &Expr) -> bool {
    let text = e.to_string();
    AT_UNSAFE.iter().any(|f| text.contains(&format!("{f}(")))
}

fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_millis((-ms) as u64)
    }
}

/// Pins every selector and subquery without `@` to `at` (the runner's step-invariance check).
fn pin_at(e: &mut Expr, at: i64) {
    match e {
        Expr::VectorSelector(vs) if vs.at.is_none() => vs.at = Some(AtModifier::At(system_time(at))),
        Expr::MatrixSelector(ms) if ms.vs.at.is_none() => ms.vs.at = Some(AtModifier::At(system_time(at))),
        Expr::Subquery(sq) if sq.at.is_none() => {
            sq.at = Some(AtModifier::At(system_time(at)));
        }
        Expr::Aggregate(a) => {
            pin_at(&mut a.expr, at);
            if let Some(p) = &mut a.param {
                pin_at(p, at);
            }
        }
        Expr::Unary(u) => pin_at(&mut u.expr, at),
        Expr::Binary(b) => {
            pin_at(&mut b.lhs, at);
            pin_at(&mut b.rhs, at);
        }
        Expr::Paren(p) => pin_at(&mut p.expr, at),
        Expr::Call(c) => {
            for a in &mut c.args.args {
                pin_at(a, at);
            }
        }
        _ => {}
    }
}

fn run_eval(engine: &Engine, storage: &MemStorage, e: &EvalCmd, expr: &Expr) -> Result<(), String> {
    let token = CancellationToken::new();
    match e.kind {
        EvalKind::Range { start, end, step } => {
            let res = engine
                .eval_expr(storage, expr, &e.expr, start, end, step, &token)
                .map(|r| r.into_output(true, start, step));
            if let Some(r) = check_error(e, res)? {
                check_annotations(e, &r)?;
                if e.ordered {
                    return Err("expect ordered is not allowed with range queries".into());
                }
                compare(e, &r.data, Some((start, step)))?;
            }
            Ok(())
        }
        EvalKind::Instant { at } => {
            let mut queries: Vec<(Expr, i64)> = vec![(expr.clone(), at)];
            if !calls_at_unsafe(expr) {
                let times: Vec<i64> =
                    if at == 0 { vec![-1000, 0, 1000] } else { vec![-10 * at, 0, at / 5, at, 10 * at] };
                for t in times {
                    let mut x = expr.clone();
                    pin_at(&mut x, at);
                    queries.push((x, t));
                }
            }
            let skip_range_check = e.range_vector.is_some()
                || e.string.is_some()
                || e.ordered
                || ["start()", "end()", "range()", "step()"].iter().any(|f| e.expr.contains(f));
            for (i, (q, t)) in queries.iter().enumerate() {
                let what = if i == 0 { String::new() } else { format!(" [@ variant evaluated at {t}ms]") };
                let res = engine.eval_expr(storage, q, &e.expr, *t, *t, 0, &token).map(|r| r.into_output(false, *t, 1));
                let Some(r) = check_error(e, res).map_err(|m| format!("{m}{what}"))? else { continue };
                check_annotations(e, &r).map_err(|m| format!("{m}{what}"))?;
                let range = e.range_vector.map(|(a, _, s)| (a, s));
                compare(e, &r.data, range).map_err(|m| format!("{m}{what}"))?;
                if skip_range_check {
                    continue;
                }
                let rr = engine
                    .eval_expr(storage, q, &e.expr, t - 60_000, t + 60_000, 60_000, &token)
                    .map(|r| r.into_output(true, t - 60_000, 60_000));
                let rr = rr.map_err(|err| format!("range-mode cross-check failed: {err}{what}"))?;
                let QueryData::Matrix(m) = rr.data else {
                    return Err(format!("range-mode cross-check returned no matrix{what}"));
                };
                if !m.windows(2).all(|w| labels_of(&w[0].metric) <= labels_of(&w[1].metric)) {
                    return Err(format!("range-mode cross-check result is not sorted{what}"));
                }
                let data = match r.data {
                    QueryData::Scalar(_) => {
                        let v = m
                            .first()
                            .and_then(|s| s.values.iter().find(|p| p.t == *t))
                            .map(|p| p.v)
                            .unwrap_or(f64::NAN);
                        QueryData::Scalar(crowsnest_wire::api::Point { t: *t, v })
                    }
                    _ => QueryData::Vector(
                        m.iter()
                            .filter_map(|s| {
                                s.values
                                    .iter()
                                    .find(|p| p.t == *t)
                                    .map(|p| crowsnest_wire::api::VectorSample { metric: s.metric.clone(), value: *p })
                            })
                            .collect(),
                    ),
                };
                let mut e2 = e.clone();
                e2.ordered = false;
                compare(&e2, &data, None).map_err(|m| format!("range-mode cross-check: {m}{what}"))?;
            }
            Ok(())
        }
    }
}

/// Applies the failure expectation; `Ok(None)` means an expected failure happened.
fn check_error(e: &EvalCmd, res: Result<QueryOutput, QueryError>) -> Result<Option<QueryOutput>, String> {
    match (&e.fail, res) {
        (Some(m), Err(err)) => {
            let text = err.to_string();
            if m.matches(&text) {
                Ok(None)
            } else {
                Err(format!("error {text:?} does not match the expected failure {m:?}"))
            }
        }
        (Some(_), Ok(_)) => Err("expected an error, query succeeded".into()),
        (None, Err(err)) => Err(format!("unexpected error: {err}")),
        (None, Ok(r)) => Ok(Some(r)),
    }
}

fn check_kind(kind: &str, actual: &[String], expected: &[TextMatch], any: bool, none: bool) -> Result<(), String> {
    if none && !actual.is_empty() {
        return Err(format!("expected no {kind} annotations, got {actual:?}"));
    }
    if any && actual.is_empty() {
        return Err(format!("expected at least one {kind} annotation, got none"));
    }
    if expected.is_empty() {
        return Ok(());
    }
    for m in expected {
        if !actual.iter().any(|a| m.matches(a)) {
            return Err(format!("expected {kind} {m:?} not among {actual:?}"));
        }
    }
    for a in actual {
        if !expected.iter().any(|m| m.matches(a)) {
            return Err(format!("unexpected {kind} annotation {a:?}"));
        }
    }
    Ok(())
}

fn check_annotations(e: &EvalCmd, r: &QueryOutput) -> Result<(), String> {
    check_kind("warning", &r.warnings, &e.warn, e.any_warn, e.no_warn)?;
    check_kind("info", &r.infos, &e.info, e.any_info, e.no_info)
}

fn labels_of(m: &Metric) -> Labels {
    Labels::from_pairs(m.iter().map(|(k, v)| (k.clone(), v.clone())))
}

fn compare(e: &EvalCmd, data: &QueryData, range: Option<(i64, i64)>) -> Result<(), String> {
    if let Some(s) = &e.string {
        return match data {
            QueryData::String(p) if &p.v == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    if let Some(want) = e.scalar {
        return match data {
            QueryData::Scalar(p) if almost_equal(p.v, want) => Ok(()),
            QueryData::Scalar(p) => Err(format!("expected scalar {want}, got {}", p.v)),
            other => Err(format!("expected scalar {want}, got {}", brief(other))),
        };
    }
    match data {
        QueryData::Scalar(p) => Err(format!("expected series, got scalar {}", p.v)),
        QueryData::String(s) => Err(format!("expected series, got string {:?}", s.v)),
        QueryData::Vector(v) => {
            if range.is_some() {
                return Err("expected a range vector, got an instant vector".into());
            }
            let mut seen = vec![false; e.expected.len()];
            for (pos, s) in v.iter().enumerate() {
                let l = labels_of(&s.metric);
                let Some(i) = e.expected.iter().position(|x| x.labels == l) else {
                    return Err(format!("unexpected metric {l} in result, has value {}", s.value.v));
                };
                seen[i] = true;
                let want = match e.expected[i].values.first() {
                    Some(SeqValue::Float(f)) => *f,
                    Some(SeqValue::Stale) => stale_nan(),
                    other => return Err(format!("expected {other:?} for {l}, got float {}", s.value.v)),
                };
                if e.ordered && pos != i {
                    return Err(format!("expected metric {l} at position {}, got {}", i + 1, pos + 1));
                }
                if !almost_equal(s.value.v, want) {
                    return Err(format!("expected {want} for {l}, got {}", s.value.v));
                }
            }
            if let Some(i) = seen.iter().position(|x| !x) {
                return Err(format!("expected metric {} not found", e.expected[i].labels));
            }
            Ok(())
        }
        QueryData::Matrix(m) => compare_matrix(e, m, range),
    }
}

fn brief(d: &QueryData) -> String {
    match d {
        QueryData::Vector(v) => format!("vector of {}", v.len()),
        QueryData::Matrix(m) => format!("matrix of {}", m.len()),
        QueryData::Scalar(p) => format!("scalar {}", p.v),
        QueryData::String(s) => format!("string {:?}", s.v),
    }
}

fn compare_matrix(e: &EvalCmd, m: &[MatrixSeries], range: Option<(i64, i64)>) -> Result<(), String> {
    let Some((start, step)) = range else {
        return Err("got a range vector, expected an instant vector".into());
    };
    let labels: Vec<Labels> = m.iter().map(|s| labels_of(&s.metric)).collect();
    if !labels.windows(2).all(|w| w[0] <= w[1]) {
        return Err("matrix is not sorted by labels".into());
    }
    let mut seen = vec![false; e.expected.len()];
    for (s, l) in m.iter().zip(&labels) {
        let Some(i) = e.expected.iter().position(|x| &x.labels == l) else {
            return Err(format!("unexpected metric {l} in result, has {} points", s.values.len()));
        };
        seen[i] = true;
        let want: Vec<(i64, f64)> = e.expected[i]
            .values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| match v {
                SeqValue::Float(f) => Some((start + k as i64 * step, *f)),
                SeqValue::Stale => Some((start + k as i64 * step, stale_nan())),
                _ => None,
            })
            .collect();
        let got: Vec<(i64, f64)> = s.values.iter().map(|p| (p.t, p.v)).collect();
        if want.len() != got.len() {
            return Err(format!("expected {} points for {l}, got {}: {got:?}", want.len(), got.len()));
        }
        for (w, g) in want.iter().zip(&got) {
            if w.0 != g.0 || !almost_equal(w.1, g.1) {
                return Err(format!("expected {w:?} for {l}, got {g:?} (all: {got:?})"));
            }
        }
    }
    if let Some(i) = seen.iter().position(|x| !x) {
        return Err(format!("expected metric {} not found", e.expected[i].labels));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_follows_almost_equal() {
        assert!(almost_equal(1.0, 1.0 + 1e-9));
        assert!(!almost_equal(1.0, 1.001));
        assert!(almost_equal(f64::NAN, f64::NAN));
        assert!(!almost_equal(f64::NAN, stale_nan()));
        assert!(!almost_equal(0.0, 1e-300));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY));
    }

    #[test]
    fn parse_failures_are_named() {
        assert!(classify_parse_failure("rate(x[1m] anchored)", "").contains("anchored"));
        assert!(classify_parse_failure("x[26m+4m]", "").contains("duration"));
        assert!(classify_parse_failure("x >/ 1", "").contains("trimming"));
    }

    #[test]
    fn runs_a_script_end_to_end() {
        let script = "load 1m\n  m{a=\"1\"} 0+1x10\n\neval instant at 5m m\n  m{a=\"1\"} 5\n\neval instant at 5m m\n  m{a=\"1\"} 6\n\neval range from 0 to 2m step 1m m * 2\n  {a=\"1\"} 0 2 4\n";
        let r = run_script(script, &Engine::default(), &|_, _| None);
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[0].1, EvalOutcome::Passed);
        assert!(matches!(r.results[1].1, EvalOutcome::Failed(_)));
        assert_eq!(r.results[2].1, EvalOutcome::Passed);
    }
}
