//! The query engine's public face: instant and range queries over a [`Storage`], with limits,
//! timeouts and cancellation, and the conversion of results to the Prometheus API shapes.
//! Evaluation itself lives in [`crate::eval`]; see there for the Prometheus 3.x semantics
//! (left-open windows, delayed name removal) and where they differ from 2.x.

use std::time::Duration;

use crowsnest_wire::api::{MatrixSeries, Metric, Point, QueryData, StringPoint, VectorSample};
use crowsnest_wire::{Labels, METRIC_NAME};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::eval::{Evaluator, Shared};
use crate::storage::{Storage, StorageError};
use crate::value::{Grid, Series, Value};

/// Engine limits, mirroring Prometheus' `--query.*` flags.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`, 5m).
    pub lookback_delta_ms: i64,
    /// Most samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Evaluation time limit (`--query.timeout`).
    pub timeout: Duration,
    /// Step of subqueries written without one (`x[5m:]`); Prometheus uses the global evaluation
    /// interval, 1m by default.
    pub subquery_step_ms: i64,
    /// Threads one query may use to read and window the series of a selection (the cores).
    pub parallelism: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            subquery_step_ms: 60_000,
            parallelism: crate::par::default_parallelism(),
        }
    }
}

/// Why a query failed, classified like Prometheus' API error types.
#[derive(Debug, Error, Clone)]
pub enum QueryError {
    /// Parse errors and invalid arguments: `bad_data`, 400.
    #[error("{0}")]
    BadData(String),
    /// Evaluation errors (limits, many-to-many matching, duplicate series): `execution`, 422.
    #[error("{0}")]
    Execution(String),
    /// `timeout`, 503.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// `canceled`, 499.
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// Storage failures: `internal`, 500 (limits raised by storage become `Execution`).
    #[error("{0}")]
    Storage(StorageError),
}

impl From<StorageError> for QueryError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Limit(m) => QueryError::Execution(m),
            other => QueryError::Storage(other),
        }
    }
}

/// A query's result plus the annotations Prometheus returns beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub data: QueryData,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// A result in the engine's own types (for callers that want labels and floats, e.g. the rule
/// evaluator), names already cleaned up.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    /// Most samples held at once (Prometheus' `peakSamples` statistic).
    pub peak_samples: usize,
}

/// The PromQL engine. Cheap to clone; holds only options.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub options: EngineOptions,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Engine { options }
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant(
        &self,
        storage: &dyn Storage,
        query: &str,
        time_ms: i64,
        cancel: &CancellationToken,
    ) -> Result<QueryOutput, QueryError> {
        let expr = parse(query)?;
        let ev = self.eval_expr(storage, &expr, query, time_ms, time_ms, 0, cancel)?;
        Ok(to_output(ev, false, time_ms, 1))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive.
    pub fn range(
        &self,
        storage: &dyn Storage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: &CancellationToken,
    ) -> Result<QueryOutput, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData("end timestamp must not be before start time".into()));
        }
        let expr = parse(query)?;
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    type_label(other)
                )));
            }
        }
        let ev = self.eval_expr(storage, &expr, query, start_ms, end_ms, step_ms, cancel)?;
        Ok(to_output(ev, true, start_ms, step_ms))
    }

    /// Evaluates an already-parsed expression over `[start, end]` with `step` (0 = instant query)
    /// and returns the engine's own value types. `query` is the text the annotations point into.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_expr(
        &self,
        storage: &dyn Storage,
        expr: &Expr,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: &CancellationToken,
    ) -> Result<Evaluated, QueryError> {
        let mut sh = Shared::new(storage, &self.options, cancel, query, start_ms, end_ms);
        sh.query_step = step_ms.max(0);
        let grid = Grid { start: start_ms, end: end_ms, step: if step_ms > 0 { step_ms } else { 1 } };
        let ev = Evaluator::new(&sh, grid);
        let mut value = ev.eval(expr)?;
        if step_ms > 0 && matches!(value, Value::Matrix(_)) {
            return Err(QueryError::BadData(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
        match &mut value {
            Value::Vector(v) => cleanup_names(v, true)?,
            Value::Matrix(v) => cleanup_names(v, false)?,
            _ => {}
        }
        let warnings = sh.warnings();
        let infos = sh.infos();
        Ok(Evaluated { value, warnings, infos, peak_samples: sh.peak_samples() })
    }
}

fn type_label(t: ValueType) -> &'static str {
    match t {
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
        ValueType::Scalar => "scalar",
        ValueType::Vector => "instant vector",
    }
}

/// Delayed name removal: drops `__name__` (and `__type__`, `__unit__`) where an operation asked
/// for it, then, like Prometheus' `cleanupMetricLabels`, merges series that now share a label set
/// when their points do not overlap (range results) and rejects real collisions.
fn cleanup_names(v: &mut Vec<Series>, merge: bool) -> Result<(), QueryError> {
    let mut any = false;
    for s in v.iter_mut() {
        if s.drop_name {
            s.labels = s.labels.drop_names(&[METRIC_NAME, "__type__", "__unit__"]);
            s.drop_name = false;
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    let dup = || QueryError::Execution("vector cannot contain metrics with the same labelset".into());
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut out: Vec<Series> = Vec::with_capacity(v.len());
    for s in v.drain(..) {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) if merge => {
                let target = &mut out[i];
                let mut pts = std::mem::take(&mut target.points);
                pts.extend(s.points);
                pts.sort_by_key(|p| p.t);
                if pts.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(dup());
                }
                target.points = pts;
            }
            Some(_) => return Err(dup()),
        }
    }
    *v = out;
    Ok(())
}

fn metric(l: &Labels) -> Metric {
    l.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
}

impl Evaluated {
    /// The instant-vector view a rule evaluator wants: each series' label set with its value at
    /// the last step (a scalar becomes one sample without labels; strings and range vectors give
    /// nothing).
    pub fn into_samples(self) -> Vec<(Labels, f64)> {
        match self.value {
            Value::Vector(v) => v.into_iter().filter_map(|s| s.points.last().map(|p| (s.labels, p.v))).collect(),
            Value::Scalar(v) => v.last().map(|x| vec![(Labels::default(), *x)]).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Converts to API data (see [`to_output`]); `range` with the query's `start` and `step`.
    pub fn into_output(self, range: bool, start: i64, step: i64) -> QueryOutput {
        to_output(self, range, start, step)
    }
}

/// Converts an evaluation to API data: instant vectors keep their order, range results are
/// matrices sorted by labels.
fn to_output(ev: Evaluated, range: bool, start: i64, step: i64) -> QueryOutput {
    let data = match ev.value {
        Value::Scalar(v) if range => {
            // A scalar range result is one series without labels.
            QueryData::Matrix(vec![MatrixSeries {
                metric: Metric::new(),
                values: v.into_iter().enumerate().map(|(i, v)| Point { t: start + i as i64 * step, v }).collect(),
            }])
        }
        Value::Scalar(v) => QueryData::Scalar(Point { t: start, v: v.first().copied().unwrap_or(f64::NAN) }),
        Value::String(s) => QueryData::String(StringPoint { t: start, v: s }),
        Value::Vector(v) if !range => QueryData::Vector(
            v.into_iter()
                .filter_map(|s| {
                    s.points.last().map(|p| VectorSample { metric: metric(&s.labels), value: Point { t: p.t, v: p.v } })
                })
                .collect(),
        ),
        Value::Vector(mut v) | Value::Matrix(mut v) => {
            v.sort_by(|a, b| a.labels.cmp(&b.labels));
            QueryData::Matrix(
                v.into_iter()
                    .map(|s| MatrixSeries {
                        metric: metric(&s.labels),
                        values: s.points.into_iter().map(|p| Point { t: p.t, v: p.v }).collect(),
                    })
                    .collect(),
            )
        }
    };
    QueryOutput { data, warnings: ev.warnings, infos: ev.infos }
}

/// Parses a query with promql-parser, mapping errors to `bad_data`.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    check_unitless_durations(query)?;
    parser::parse(query).map_err(|e| QueryError::BadData(format!("1:1: parse error: {e}")))
}

/// Largest unit-less duration (seconds) handed to promql-parser: about 31 million years.
const MAX_UNITLESS_DURATION_SECS: f64 = 1e15;

/// promql-parser 0.11 turns a unit-less number in a duration position (`x[1e20]`, `[5:1e20]`,
/// `offset 1e20`) into `Duration::from_secs_f64`, which panics when the value is too big or
/// negative (found by the `promql_eval` fuzz target). Such numbers are refused here first.
/// Quoted strings and comments are skipped so label values are never inspected.
fn check_unitless_durations(query: &str) -> Result<(), QueryError> {
    let b = query.as_bytes();
    let mut i = 0;
    let mut after_duration_opener = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' && c != b'`' { 2 } else { 1 };
                }
                i += 1;
                after_duration_opener = false;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' | b':' => {
                after_duration_opener = true;
                i += 1;
                continue;
            }
            _ if c.is_ascii_whitespace() || c == b'-' || c == b'+' => {
                i += 1;
                continue;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                // Metric names may contain colons (`job:rate:1`); they are not subquery steps.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                    i += 1;
                }
                after_duration_opener = query[start..i].eq_ignore_ascii_case("offset");
                continue;
            }
            _ if after_duration_opener && (c.is_ascii_digit() || c == b'.') => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                    // An exponent sign belongs to the number (`1e+20`).
                    if (b[i] == b'e' || b[i] == b'E') && matches!(b.get(i + 1), Some(b'+' | b'-')) {
                        i += 1;
                    }
                    i += 1;
                }
                let token = &query[start..i];
                if let Some(v) = unitless_number(token)
                    && !(v.is_finite() && v.abs() <= MAX_UNITLESS_DURATION_SECS)
                {
                    return Err(QueryError::BadData(format!("1:1: parse error: duration {token:?} is out of range")));
                }
                after_duration_opener = false;
                continue;
            }
            _ => after_duration_opener = false,
        }
        i += 1;
    }
    Ok(())
}

/// The value of a token that is a plain or hexadecimal number (no duration unit).
fn unitless_number(token: &str) -> Option<f64> {
    let t = token.replace('_', "");
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u128::from_str_radix(hex, 16).ok().map(|v| v as f64).or(Some(f64::INFINITY));
    }
    t.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz/corpus/promql_eval/huge_range.promql): promql-parser panicked in
    /// `Duration::from_secs_f64` on huge unit-less durations; they are `bad_data` now.
    #[test]
    fn huge_unitless_durations_are_bad_data() {
        for q in [
            "sum by (job) (rate(http_requests_total[0000000000000000000000000000000000000086552543798491446000]))",
            "x[1e20]",
            "x[5m:1e+20]",
            "x offset 1e20",
            "x OFFSET -1e20",
            "x[0xFFFFFFFFFFFFFFFFFFFF]",
        ] {
            let e = parse(q).unwrap_err();
            assert!(matches!(&e, QueryError::BadData(m) if m.contains("out of range")), "{q}: {e}");
        }
        for q in ["rate(x[5m])", "x offset 5m", "max_over_time(x[1h:5m])", "job:rate:1e99", "x{a=\"[1e99\"}"] {
            assert!(parse(q).is_ok(), "{q}");
        }
    }
}
