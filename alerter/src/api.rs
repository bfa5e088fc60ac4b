//! `GET /api/v1/rules` and `GET /api/v1/alerts` in Prometheus' exact JSON shape
//! (`web/api/v1/api.go` `rules`/`alerts`), which Grafana decodes strictly: RFC 3339
//! `lastEvaluation` (`0001-01-01T00:00:00Z` when never evaluated), numeric `interval` and
//! `evaluationTime` (seconds), `health`, `lastError`, alert `value` in Go's `%e` form. Filters:
//! `type=alert|record`, `rule_name[]`, `rule_group[]`, `file[]` (also without `[]`, as Grafana
//! sends both), `exclude_alerts`, and pagination with `group_limit` / `group_next_token`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use crowsnest_wire::api::{Envelope, ErrorType};
use serde::Serialize;
use serde_json::{Value, json};

use crate::eval::{GroupRuntime, RuleRuntime};
use crate::rules::Rule;
use crate::state::{Alert, AlertState};

/// The loaded groups, replaced whole when rules are reloaded.
pub type SharedGroups = Arc<parking_lot::RwLock<Arc<Vec<Arc<GroupRuntime>>>>>;

/// The groups the API reports on.
#[derive(Clone)]
pub struct ApiState {
    pub groups: SharedGroups,
}

/// Router with the two endpoints over a fixed set of groups.
pub fn router(groups: Arc<Vec<Arc<GroupRuntime>>>) -> Router {
    router_shared(Arc::new(parking_lot::RwLock::new(groups)))
}

/// Router with the two endpoints over groups a reload may replace.
pub fn router_shared(groups: SharedGroups) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(ApiState { groups })
}

/// Go's `time.Time` JSON form; the zero time when never set.
pub fn rfc3339(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `1.234e+03`, `NaN`, `+Inf`.
pub fn format_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// Seconds as a JSON number, integral when whole (`60`, not `60.0`), like Go's float encoding.
fn secs(d: std::time::Duration) -> Value {
    if d.subsec_nanos() == 0 { json!(d.as_secs()) } else { json!(d.as_secs_f64()) }
}

fn bad_data(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(Envelope::<()>::error(ErrorType::BadData, msg))).into_response()
}

fn params(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn values<'a>(p: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let arr = format!("{name}[]");
    p.iter().filter(|(k, _)| k == name || *k == arr).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()).collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: &'static str,
    active_at: String,
    value: String,
}

fn api_alert(a: &Alert) -> ApiAlert {
    ApiAlert {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: a.state.as_str(),
        active_at: rfc3339(DateTime::from_timestamp_millis(a.active_at)),
        value: format_e(a.value),
    }
}

fn active(rr: &RuleRuntime) -> impl Iterator<Item = &Alert> {
    rr.alerts.alerts.values().filter(|a| a.state != AlertState::Inactive)
}

fn rule_json(rule: &Rule, rr: &RuleRuntime, with_alerts: bool) -> Value {
    let mut v = json!({
        "name": rule.name(),
        "query": rule.expr(),
        "labels": rule.labels(),
        "health": rr.health.as_str(),
        "evaluationTime": rr.evaluation_time.as_secs_f64(),
        "lastEvaluation": rfc3339(rr.last_evaluation),
    });
    if !rr.last_error.is_empty() {
        v["lastError"] = json!(rr.last_error);
    }
    match rule {
        Rule::Recording(_) => v["type"] = json!("recording"),
        Rule::Alerting(r) => {
            let state = active(rr).map(|a| a.state).max_by_key(|s| *s as u8).unwrap_or(AlertState::Inactive);
            v["type"] = json!("alerting");
            v["state"] = json!(state.as_str());
            v["duration"] = secs(r.for_);
            v["keepFiringFor"] = secs(r.keep_firing_for);
            v["annotations"] = json!(r.annotations);
            let alerts: Vec<ApiAlert> = if with_alerts { active(rr).map(api_alert).collect() } else { vec![] };
            v["alerts"] = json!(alerts);
        }
    }
    v
}

fn group_token(g: &GroupRuntime) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{};{}", g.group.file, g.group.name))
}

async fn rules(State(s): State<ApiState>, RawQuery(raw): RawQuery) -> Response {
    let p = params(raw);
    let (want_alerting, want_recording) = match values(&p, "type").first().copied() {
        None => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => return bad_data(&format!("invalid query parameter type='{other}'")),
    };
    let names = values(&p, "rule_name");
    let group_names = values(&p, "rule_group");
    let files = values(&p, "file");
    let exclude_alerts = matches!(values(&p, "exclude_alerts").first().copied(), Some("true" | "1"));
    let group_limit = match values(&p, "group_limit").first() {
        None => 0usize,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return bad_data("group_limit needs to be greater than 0"),
        },
    };
    let next_token = values(&p, "group_next_token").first().map(|s| s.to_string());
    let mut out = Vec::new();
    let mut started = next_token.is_none();
    let mut more = None;
    let groups = s.groups.read().clone();
    for g in groups.iter() {
        if !group_names.is_empty() && !group_names.contains(&g.group.name.as_str()) {
            continue;
        }
        if !files.is_empty() && !files.contains(&g.group.file.as_str()) {
            continue;
        }
        if !started {
            if Some(group_token(g)) == next_token {
                started = true;
            } else {
                continue;
            }
        }
        if group_limit > 0 && out.len() == group_limit {
            more = Some(group_token(g));
            break;
        }
        let st = g.status.lock();
        let rules: Vec<Value> = g
            .group
            .rules
            .iter()
            .zip(&st.rules)
            .filter(|(r, _)| match r {
                Rule::Alerting(_) => want_alerting,
                Rule::Recording(_) => want_recording,
            })
            .filter(|(r, _)| names.is_empty() || names.contains(&r.name()))
            .map(|(r, rr)| rule_json(r, rr, !exclude_alerts))
            .collect();
        if rules.is_empty() && !(names.is_empty() && want_alerting && want_recording) {
            continue;
        }
        out.push(json!({
            "name": g.group.name,
            "file": g.group.file,
            "rules": rules,
            "interval": secs(g.group.interval),
            "limit": g.group.limit,
            "evaluationTime": st.evaluation_time.as_secs_f64(),
            "lastEvaluation": rfc3339(st.last_evaluation),
        }));
    }
    if !started {
        return bad_data("invalid group_next_token");
    }
    let mut data = json!({ "groups": out });
    if let Some(t) = more {
        data["groupNextToken"] = json!(t);
    }
    axum::Json(Envelope::success(data)).into_response()
}

async fn alerts(State(s): State<ApiState>) -> Response {
    let mut out = Vec::new();
    let groups = s.groups.read().clone();
    for g in groups.iter() {
        let st = g.status.lock();
        for rr in &st.rules {
            out.extend(active(rr).map(api_alert));
        }
    }
    axum::Json(Envelope::success(json!({ "alerts": out }))).into_response()
}

#[cfg(test)]
#[path = "api/tests.rs"]
mod tests;
