//! The TSDB admin API, as Prometheus serves it under `--web.enable-admin-api`
//! (prometheus/prometheus `web/api/v1/api.go`: `deleteSeries`, `cleanTombstones`, `snapshot`;
//! <https://prometheus.io/docs/prometheus/latest/querying/api/#tsdb-admin-apis>):
//!
//! - `POST|PUT /api/v1/admin/tsdb/delete_series` with `match[]` (required, repeatable) and
//!   optional `start`/`end` (default: all time) → 204 once the tombstones are durable;
//! - `POST|PUT /api/v1/admin/tsdb/clean_tombstones` → 204;
//! - `POST|PUT /api/v1/admin/tsdb/snapshot` with optional `skip_head` (a boolean) → 200
//!   `{"status":"success","data":{"name":"20260101T120000Z-0123456789abcdef"}}`.
//!
//! Disabled unless `store.admin_api_enabled` (Prometheus' `--web.enable-admin-api`): every route
//! then answers 503 `{"status":"error","errorType":"unavailable","error":"admin APIs disabled"}`
//! exactly like Prometheus. The routes form their own router ([`admin_router`]) so an
//! authentication layer can guard them separately from the query API.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use crowsnest_wire::api::ErrorType;
use serde::Serialize;

use super::error::ApiError;
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use super::{ApiState, success, track_duration};

/// Prometheus' message when the admin API is off.
pub const DISABLED_MESSAGE: &str = "admin APIs disabled";

/// The `/api/v1/admin/tsdb/*` routes (each answers 503 while the admin API is disabled).
pub fn admin_router(state: ApiState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/api/v1/admin/tsdb/delete_series", post(delete_series).put(delete_series))
        .route("/api/v1/admin/tsdb/clean_tombstones", post(clean_tombstones).put(clean_tombstones))
        .route("/api/v1/admin/tsdb/snapshot", post(snapshot).put(snapshot))
        .route_layer(middleware::from_fn_with_state(metrics, track_duration))
        .with_state(state)
}

fn ensure_enabled(s: &ApiState) -> Result<(), ApiError> {
    if s.config.admin_api_enabled { Ok(()) } else { Err(ApiError::new(ErrorType::Unavailable, DISABLED_MESSAGE)) }
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series`.
async fn delete_series(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    ensure_enabled(&s)?;
    if p.all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let sets = p.match_sets()?;
    let db = s.db.clone();
    tokio::task::spawn_blocking(move || db.delete_series(&sets, start, end)).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`.
async fn clean_tombstones(State(s): State<ApiState>) -> Result<Response, ApiError> {
    ensure_enabled(&s)?;
    let db = s.db.clone();
    tokio::task::spawn_blocking(move || db.clean_tombstones()).await??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Serialize)]
struct SnapshotData {
    name: String,
}

/// Go's `strconv.ParseBool`, which Prometheus uses for `skip_head`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot`.
async fn snapshot(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    ensure_enabled(&s)?;
    let skip_head = match p.non_empty("skip_head") {
        None => false,
        Some(v) => parse_bool(v)
            .ok_or_else(|| ApiError::bad_data(format!("unable to parse boolean 'skip_head' argument: {v:?}")))?,
    };
    let db = s.db.clone();
    let name = tokio::task::spawn_blocking(move || db.snapshot(skip_head)).await??;
    Ok(success(SnapshotData { name }, vec![], vec![]))
}

#[cfg(test)]
#[path = "admin/tests.rs"]
mod tests;
