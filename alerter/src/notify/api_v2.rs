//! Alertmanager's HTTP API v2 in the shapes of its `api/v2/openapi.yaml`, enough for `amtool`
//! (alert query, silence add/query/expire), Grafana's Alertmanager data source and Prometheus
//! posting alerts: `/api/v2/alerts` (GET, POST), `/api/v2/alerts/groups`, `/api/v2/silences`
//! (GET, POST), `/api/v2/silence/{id}` (GET, DELETE), `/api/v2/status`, `/api/v2/receivers`.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use crowsnest_wire::Matcher;
use serde_json::{Value, json};

use super::matchers::parse_matchers;
use super::silence::{PostableSilence, Silence, SilenceState};
use super::types::{Alert, fingerprint_hex, to_labels};
use super::{Notifier, NotifyError};
use crate::alert::PostableAlert;

/// Version reported by `/api/v2/status`.
const VERSION: &str = concat!("crowsnest-", env!("CARGO_PKG_VERSION"));

impl IntoResponse for NotifyError {
    fn into_response(self) -> Response {
        let status = match &self {
            NotifyError::BadRequest(_) | NotifyError::Config(_) | NotifyError::Template(_) => StatusCode::BAD_REQUEST,
            NotifyError::NotFound(_) => StatusCode::NOT_FOUND,
            NotifyError::Storage(_) | NotifyError::Encoding(_) | NotifyError::Internal(_) => {
                tracing::error!(error = %self, "API v2 request failed.");
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!("internal error"))).into_response();
            }
        };
        // Alertmanager answers errors with a bare JSON string.
        (status, Json(json!(self.to_string()))).into_response()
    }
}

/// The `/api/v2` routes.
pub fn router(n: Notifier) -> Router {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
        .route("/api/v2/status", get(get_status))
        .route("/api/v2/receivers", get(get_receivers))
        .with_state(n)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Query parameters: repeated `filter=` matchers plus boolean flags.
struct Params {
    filter: Vec<Matcher>,
    flags: BTreeMap<String, bool>,
    receiver: Option<regex::Regex>,
}

fn params(q: Option<String>) -> Result<Params, NotifyError> {
    let mut p = Params { filter: Vec::new(), flags: BTreeMap::new(), receiver: None };
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "filter" => p.filter.extend(parse_matchers(&v).map_err(|e| NotifyError::BadRequest(e.to_string()))?),
            "receiver" => {
                p.receiver = Some(
                    regex::Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| NotifyError::BadRequest(format!("receiver regex: {e}")))?,
                )
            }
            flag => {
                let b =
                    v.parse::<bool>().map_err(|_| NotifyError::BadRequest(format!("{flag}: not a boolean: {v:?}")))?;
                p.flags.insert(flag.to_string(), b);
            }
        }
    }
    Ok(p)
}

impl Params {
    fn flag(&self, name: &str) -> bool {
        self.flags.get(name).copied().unwrap_or(true)
    }
}

fn gettable_alert(n: &Notifier, a: &Alert, firing: &[Alert], now: DateTime<Utc>) -> (Value, Vec<String>, &'static str) {
    let (silenced, inhibited) = super::pipeline::mute_status(&n.shared().pipeline, &a.labels, firing, now);
    let receivers: Vec<String> =
        n.shared().dispatcher.route().matching(&a.labels).iter().map(|o| o.receiver.clone()).collect();
    let state = if silenced.is_empty() && inhibited.is_empty() { "active" } else { "suppressed" };
    let v = json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": ts(a.starts_at),
        "endsAt": ts(a.ends_at),
        "updatedAt": ts(a.updated_at),
        "generatorURL": a.generator_url,
        "fingerprint": fingerprint_hex(a.fingerprint()),
        "receivers": receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "status": {"state": state, "silencedBy": silenced, "inhibitedBy": inhibited, "mutedBy": []},
    });
    (v, receivers, state)
}

fn keep(p: &Params, a: &Alert, receivers: &[String], state: &str, v: &Value) -> bool {
    let wire = to_labels(&a.labels);
    if !crowsnest_wire::labels::matches_all(&p.filter, &wire) {
        return false;
    }
    if let Some(re) = &p.receiver
        && !receivers.iter().any(|r| re.is_match(r))
    {
        return false;
    }
    let silenced = v["status"]["silencedBy"].as_array().is_some_and(|x| !x.is_empty());
    let inhibited = v["status"]["inhibitedBy"].as_array().is_some_and(|x| !x.is_empty());
    (state == "active" && p.flag("active")) || (silenced && p.flag("silenced")) || (inhibited && p.flag("inhibited"))
}

async fn get_alerts(State(n): State<Notifier>, RawQuery(q): RawQuery) -> Result<Json<Vec<Value>>, NotifyError> {
    let p = params(q)?;
    let now = Utc::now();
    let firing = n.shared().pipeline.store.firing(now);
    let mut out: Vec<(String, Value)> = Vec::new();
    for a in &firing {
        let (v, receivers, state) = gettable_alert(&n, a, &firing, now);
        if keep(&p, a, &receivers, state, &v) {
            out.push((fingerprint_hex(a.fingerprint()), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Json(out.into_iter().map(|(_, v)| v).collect()))
}

async fn post_alerts(State(n): State<Notifier>, body: axum::body::Bytes) -> Result<StatusCode, NotifyError> {
    let alerts: Vec<PostableAlert> =
        serde_json::from_slice(&body).map_err(|e| NotifyError::BadRequest(format!("decoding alerts: {e}")))?;
    n.receive(alerts).await?;
    Ok(StatusCode::OK)
}

async fn get_groups(State(n): State<Notifier>, RawQuery(q): RawQuery) -> Result<Json<Vec<Value>>, NotifyError> {
    let p = params(q)?;
    let now = Utc::now();
    let firing = n.shared().pipeline.store.firing(now);
    let mut out = Vec::new();
    for g in n.shared().dispatcher.groups() {
        if let Some(re) = &p.receiver
            && !re.is_match(&g.opts.receiver)
        {
            continue;
        }
        let alerts: Vec<Value> = g
            .alerts()
            .iter()
            .filter(|a| !a.is_resolved_at(now))
            .filter_map(|a| {
                let (v, receivers, state) = gettable_alert(&n, a, &firing, now);
                keep(&p, a, &receivers, state, &v).then_some(v)
            })
            .collect();
        if !alerts.is_empty() {
            out.push(json!({"labels": g.labels, "receiver": {"name": g.opts.receiver}, "alerts": alerts}));
        }
    }
    Ok(Json(out))
}

fn gettable_silence(s: &Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now).as_str()},
        "updatedAt": ts(s.updated_at),
        "matchers": s.matchers,
        "startsAt": ts(s.starts_at),
        "endsAt": ts(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

/// Alertmanager's filter on silences: the silence's equality matchers, taken as a label set,
/// must satisfy every filter matcher.
fn silence_matches_filter(s: &Silence, filter: &[Matcher]) -> bool {
    let labels = crowsnest_wire::Labels::from_pairs(
        s.matchers.iter().filter(|m| !m.is_regex && m.is_equal).map(|m| (m.name.as_str(), m.value.as_str())),
    );
    crowsnest_wire::labels::matches_all(filter, &labels)
}

async fn get_silences(State(n): State<Notifier>, RawQuery(q): RawQuery) -> Result<Json<Vec<Value>>, NotifyError> {
    let p = params(q)?;
    let now = Utc::now();
    let mut list: Vec<Silence> =
        n.shared().pipeline.silences.list().into_iter().filter(|s| silence_matches_filter(s, &p.filter)).collect();
    // Active first (ending soonest), then pending (starting soonest), then expired (newest first).
    list.sort_by(|a, b| {
        let rank = |s: &Silence| match s.state(now) {
            SilenceState::Active => 0,
            SilenceState::Pending => 1,
            SilenceState::Expired => 2,
        };
        rank(a).cmp(&rank(b)).then_with(|| match a.state(now) {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    Ok(Json(list.iter().map(|s| gettable_silence(s, now)).collect()))
}

async fn post_silence(State(n): State<Notifier>, body: axum::body::Bytes) -> Result<Json<Value>, NotifyError> {
    let s: PostableSilence =
        serde_json::from_slice(&body).map_err(|e| NotifyError::BadRequest(format!("decoding silence: {e}")))?;
    let id = n.shared().pipeline.silences.set(s, Utc::now()).await?;
    tracing::info!(silence = %id, "Silence set.");
    Ok(Json(json!({"silenceID": id})))
}

async fn get_silence(State(n): State<Notifier>, Path(id): Path<String>) -> Result<Json<Value>, NotifyError> {
    let s = n
        .shared()
        .pipeline
        .silences
        .get(&id)
        .ok_or_else(|| NotifyError::NotFound(format!("silence {id} not found")))?;
    Ok(Json(gettable_silence(&s, Utc::now())))
}

async fn delete_silence(State(n): State<Notifier>, Path(id): Path<String>) -> Result<StatusCode, NotifyError> {
    n.shared().pipeline.silences.expire(&id, Utc::now()).await?;
    tracing::info!(silence = %id, "Silence expired.");
    Ok(StatusCode::OK)
}

async fn get_status(State(n): State<Notifier>) -> Json<Value> {
    let s = n.shared();
    Json(json!({
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": {"version": VERSION, "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""},
        "config": {"original": s.cfg.redacted_yaml()},
        "uptime": ts(s.started),
    }))
}

async fn get_receivers(State(n): State<Notifier>) -> Json<Value> {
    Json(Value::Array(n.shared().cfg.receivers.iter().map(|r| json!({"name": r.name})).collect()))
}

#[cfg(test)]
mod tests;
