//! The query engine's public face: instant and range queries over a [`Storage`], with limits,
//! timeouts and cancellation. PLACEHOLDER EVALUATION: only bare vector selectors are evaluated
//! here; the full evaluator replaces `evaluate` behind the same API.

use std::time::{Duration, Instant};

use crowsnest_wire::api::{MatrixSeries, Point, QueryData, VectorSample};
use crowsnest_wire::{MatchOp, Matcher, is_stale_nan};
use promql_parser::parser::{self, Expr};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::storage::{Storage, StorageError};

/// Engine limits, mirroring Prometheus' `--query.*` flags.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub lookback_delta_ms: i64,
    pub max_samples: usize,
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { lookback_delta_ms: 300_000, max_samples: 50_000_000, timeout: Duration::from_secs(120) }
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
    pub fn instant(&self, storage: &dyn Storage, query: &str, time_ms: i64, cancel: &CancellationToken) -> Result<QueryOutput, QueryError> {
        let expr = parse(query)?;
        self.evaluate(storage, &expr, time_ms, time_ms, 0, cancel, false)
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive.
    pub fn range(&self, storage: &dyn Storage, query: &str, start_ms: i64, end_ms: i64, step_ms: i64, cancel: &CancellationToken) -> Result<QueryOutput, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::BadData("zero or negative query resolution step widths are not accepted. Try a positive integer".into()));
        }
        let expr = parse(query)?;
        self.evaluate(storage, &expr, start_ms, end_ms, step_ms, cancel, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate(&self, storage: &dyn Storage, expr: &Expr, start: i64, end: i64, step: i64, cancel: &CancellationToken, range: bool) -> Result<QueryOutput, QueryError> {
        let deadline = Instant::now() + self.options.timeout;
        let Expr::VectorSelector(vs) = expr else {
            return Err(QueryError::Execution("only plain selectors are supported by this build".into()));
        };
        let mut matchers = Vec::new();
        if let Some(name) = &vs.name {
            matchers.push(Matcher::equal(crowsnest_wire::METRIC_NAME, name.clone()));
        }
        for m in &vs.matchers.matchers {
            let op = match &m.op {
                promql_parser::label::MatchOp::Equal => MatchOp::Equal,
                promql_parser::label::MatchOp::NotEqual => MatchOp::NotEqual,
                promql_parser::label::MatchOp::Re(_) => MatchOp::Regex,
                promql_parser::label::MatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            matchers.push(Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::BadData(e.to_string()))?);
        }
        let lookback = self.options.lookback_delta_ms;
        let mut vector = Vec::new();
        let mut matrix = Vec::new();
        let mut total = 0usize;
        for series in storage.select(&matchers, start - lookback + 1, end)? {
            if cancel.is_cancelled() {
                return Err(QueryError::Canceled("query execution"));
            }
            if Instant::now() > deadline {
                return Err(QueryError::Timeout("query execution"));
            }
            let series = series?;
            let metric = series.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            let mut points = Vec::new();
            let mut t = start;
            while t <= end {
                // Left-open lookback window (t - lookback, t], as in Prometheus 3.
                let hi = series.samples.partition_point(|s| s.timestamp <= t);
                if hi > 0 {
                    let s = series.samples[hi - 1];
                    if s.timestamp > t - lookback && !is_stale_nan(s.value) {
                        points.push(Point { t, v: s.value });
                    }
                }
                if step == 0 {
                    break;
                }
                t += step;
            }
            total += points.len();
            if total > self.options.max_samples {
                return Err(QueryError::Execution("query processing would load too many samples into memory in query execution".into()));
            }
            if points.is_empty() {
                continue;
            }
            if range {
                matrix.push(MatrixSeries { metric, values: points });
            } else {
                vector.push(VectorSample { metric, value: points[0] });
            }
        }
        let data = if range { QueryData::Matrix(matrix) } else { QueryData::Vector(vector) };
        Ok(QueryOutput { data, warnings: vec![], infos: vec![] })
    }
}

/// Parses a query with promql-parser, mapping errors to `bad_data`.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    parser::parse(query).map_err(|e| QueryError::BadData(format!("1:1: parse error: {e}")))
}
