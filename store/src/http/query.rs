//! PromQL endpoints: `/api/v1/query`, `/api/v1/query_range`, `/api/v1/query_exemplars`,
//! `/api/v1/format_query`, following `query`, `queryRange`, `queryExemplars` and `formatQuery`
//! in prometheus/prometheus `web/api/v1/api.go`: parameter checks and messages, the points limit
//! (`query.max_points_per_range_query`, Prometheus' 11,000), `limit` truncation, at most 10 warnings/infos. Evaluation runs on the blocking pool
//! behind a semaphore (`query.max_concurrent`, waiting requests queue), with a deadline of
//! min(`timeout` parameter, `query.timeout`) and a cancellation token that fires when the client
//! goes away (the handler future is dropped, its drop guard cancels).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crowsnest_promql::{QueryOutput, engine::parse};
use crowsnest_wire::api::{ErrorType, QueryData};
use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use super::series::TRUNCATED_WARNING;
use super::{ApiState, success};

/// Annotations of each kind sent before the rest is summarised.
pub const MAX_ANNOTATIONS: usize = 10;

/// What to evaluate.
#[derive(Debug, Clone, Copy)]
enum Job {
    Instant { time: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// `GET|POST /api/v1/query`.
pub async fn query(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    let limit = p.limit()?;
    let time = p.time_or("time", chrono::Utc::now().timestamp_millis())?;
    let timeout = p.duration_opt("timeout")?;
    let lookback = p.duration_opt("lookback_delta")?;
    let query = p.get("query").unwrap_or("").to_string();
    let out = evaluate(&s, query, Job::Instant { time }, timeout, lookback).await?;
    Ok(respond(out, limit))
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    let limit = p.limit()?;
    let start = p.time_required("start")?;
    let end = p.time_required("end")?;
    if end < start {
        return Err(ApiError::invalid_param("end", "end timestamp must not be before start time"));
    }
    let step = super::params::parse_duration_param(p.get("step").unwrap_or(""))
        .map_err(|e| ApiError::invalid_param("step", e))?;
    if step <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let max_points = s.db.config().query.max_points_per_range_query;
    if (end as i128 - start as i128) / step as i128 > max_points as i128 {
        return Err(ApiError::bad_data(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
            thousands(max_points)
        ))
        .with_limit("max_points_per_range_query"));
    }
    let timeout = p.duration_opt("timeout")?;
    let lookback = p.duration_opt("lookback_delta")?;
    let query = p.get("query").unwrap_or("").to_string();
    let out = evaluate(&s, query, Job::Range { start, end, step }, timeout, lookback).await?;
    Ok(respond(out, limit))
}

/// Runs one query under the concurrency limit, deadline and cancellation rules.
async fn evaluate(
    s: &ApiState,
    query: String,
    job: Job,
    timeout_ms: Option<i64>,
    lookback_ms: Option<i64>,
) -> Result<QueryOutput, ApiError> {
    let cfg = s.db.config();
    let mut timeout = cfg.query.timeout;
    if let Some(t) = timeout_ms {
        timeout = timeout.min(Duration::from_millis(t.max(0) as u64));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let token = CancellationToken::new();
    // Fires when this future is dropped, i.e. when the client disconnected.
    let _cancel_on_drop = token.clone().drop_guard();
    let permit = match tokio::time::timeout_at(deadline, s.query_slots.clone().acquire_owned()).await {
        Err(_) => {
            return Err(ApiError::timeout(format!(
                "query timed out in query queue ({} queries already running, store.query.max_concurrent)",
                s.query_slots_total.load(std::sync::atomic::Ordering::Relaxed)
            ))
            .with_limit("max_concurrent"));
        }
        Ok(Err(_)) => return Err(ApiError::new(ErrorType::Unavailable, "the query engine is shutting down")),
        Ok(Ok(permit)) => permit,
    };
    let mut engine = (*s.engine).clone();
    // Reloadable settings (`/-/reload`) apply to the next query.
    engine.options.lookback_delta_ms = i64::try_from(cfg.query.lookback_delta.as_millis()).unwrap_or(i64::MAX);
    engine.options.max_samples = cfg.query.max_samples;
    engine.options.parallelism = cfg.query.workers_per_query();
    engine.options.timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
    if let Some(lb) = lookback_ms.filter(|l| *l > 0) {
        engine.options.lookback_delta_ms = lb;
    }
    let db = s.db.clone();
    let tok = token.clone();
    let task = tokio::task::spawn_blocking(move || {
        // The slot stays taken until evaluation really stops, even after a timeout answer.
        let _permit = permit;
        crate::db::take_corrupt_chunks_seen();
        let out = match job {
            Job::Instant { time } => engine.instant(&*db, &query, time, &tok),
            Job::Range { start, end, step } => engine.range(&*db, &query, start, end, step, &tok),
        };
        let corrupt = crate::db::take_corrupt_chunks_seen();
        out.map(|mut o| {
            if corrupt > 0 {
                o.warnings.push(format!("{corrupt} {CORRUPT_WARNING}"));
            }
            o
        })
    });
    match tokio::time::timeout_at(deadline, task).await {
        Err(_) => {
            token.cancel();
            Err(ApiError::timeout("query timed out in expression evaluation").with_limit("timeout"))
        }
        Ok(joined) => Ok(joined??),
    }
}

/// The warning added when stored chunks failed their checksum during a query (after the count).
pub const CORRUPT_WARNING: &str =
    "stored chunk(s) failed their checksum and were skipped; the result lacks their samples";

/// `11000` → `11,000`, as Prometheus words its points limit.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The success envelope: `limit` applied to vector/matrix results, annotations capped.
fn respond(out: QueryOutput, limit: Option<usize>) -> Response {
    let mut warnings = cap_annotations(out.warnings, "warning");
    let infos = cap_annotations(out.infos, "info");
    let mut data = out.data;
    if let Some(l) = limit {
        let cut = match &mut data {
            QueryData::Vector(v) if v.len() > l => {
                v.truncate(l);
                true
            }
            QueryData::Matrix(m) if m.len() > l => {
                m.truncate(l);
                true
            }
            _ => false,
        };
        if cut {
            warnings.push(TRUNCATED_WARNING.to_string());
        }
    }
    success(data, warnings, infos)
}

/// Keeps the first [`MAX_ANNOTATIONS`] and summarises the rest as Prometheus does.
pub fn cap_annotations(mut v: Vec<String>, kind: &str) -> Vec<String> {
    if v.len() > MAX_ANNOTATIONS {
        let more = v.len() - MAX_ANNOTATIONS;
        v.truncate(MAX_ANNOTATIONS);
        v.push(format!("{more} more {kind} annotations omitted"));
    }
    v
}

/// `GET|POST /api/v1/query_exemplars`: exemplars are not stored, so a valid request gets an
/// empty list (Grafana's probe sends millisecond epochs as `start`/`end`; they parse as seconds).
pub async fn query_exemplars(p: Params) -> Result<Response, ApiError> {
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::invalid_param("end", "end timestamp must not be before start time"));
    }
    let expr = parse(p.get("query").unwrap_or(""))?;
    if !has_selector(&expr) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(success(Vec::<()>::new(), vec![], vec![]))
}

/// `GET|POST /api/v1/format_query`: the expression pretty-printed like Prometheus' `Pretty(0)`.
pub async fn format_query(p: Params) -> Result<Response, ApiError> {
    let expr = parse(p.get("query").unwrap_or(""))?;
    Ok(success(expr.prettify(), vec![], vec![]))
}

/// Does the expression select any series?
fn has_selector(expr: &Expr) -> bool {
    struct Finder(bool);
    impl ExprVisitor for Finder {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
            if matches!(e, Expr::VectorSelector(_) | Expr::MatrixSelector(_)) {
                self.0 = true;
                return Ok(false);
            }
            Ok(true)
        }
    }
    let mut f = Finder(false);
    let _ = walk_expr(&mut f, expr);
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_capped() {
        let v: Vec<String> = (0..13).map(|i| format!("w{i}")).collect();
        let c = cap_annotations(v, "warning");
        assert_eq!(c.len(), 11);
        assert_eq!(c[10], "3 more warning annotations omitted");
        assert_eq!(cap_annotations(vec!["a".into()], "info"), vec!["a"]);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(11_000), "11,000");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn finds_selectors() {
        assert!(has_selector(&parse("sum(rate(x[5m]))").unwrap()));
        assert!(!has_selector(&parse("1 + 1").unwrap()));
        assert!(!has_selector(&parse("vector(1)").unwrap()));
    }
}
