//! A Slack-shaped incoming-webhook receiver for the end-to-end tests, following Slack's rules as
//! summarised in `shared/reference/alerting.md` §6: `POST /services/T…/B…/…` with
//! `Content-Type: application/json`; the body must be a JSON object with a non-empty `text`, or
//! non-empty `blocks` (at most 50), or `attachments` each carrying `text` or `fallback`;
//! success is HTTP 200 with the plain-text body `ok`; errors are plain-text codes
//! (`invalid_payload`, `no_text`, `invalid_blocks`, `invalid_attachments`, `no_service`).
//! It can be scripted to answer 429 with `Retry-After` or 5xx, like Slack under load.
//!
//! The server runs on its own thread with a small Tokio runtime, so both plain `#[test]`s and
//! async tests can use it. Arrival times are `Instant`s of this process, so latencies can be
//! measured against a moment the test recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One scripted answer (used instead of `200 ok` for the next request).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: &'static str,
    /// Seconds for the `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Reply {
    /// Slack's rate-limit answer.
    pub fn rate_limited(retry_after: u64) -> Reply {
        Reply {
            status: 429,
            body: r#"{"retry_after":1,"ok":false,"error":"rate_limited"}"#,
            retry_after: Some(retry_after),
        }
    }

    /// Slack's internal error.
    pub fn rollup_error() -> Reply {
        Reply { status: 500, body: "rollup_error", retry_after: None }
    }
}

/// An accepted message.
#[derive(Clone, Debug)]
pub struct SlackMessage {
    pub at: Instant,
    pub path: String,
    pub body: Value,
}

impl SlackMessage {
    /// All human-visible text of the message (top-level text and every attachment's title,
    /// text, fallback and color), for content checks.
    pub fn text(&self) -> String {
        let mut out = self.body["text"].as_str().unwrap_or("").to_string();
        for a in self.body["attachments"].as_array().into_iter().flatten() {
            for key in ["title", "text", "fallback", "color"] {
                out.push_str(" | ");
                out.push_str(a[key].as_str().unwrap_or(""));
            }
        }
        out
    }
}

#[derive(Default)]
struct Log {
    messages: Vec<SlackMessage>,
    /// Every request: arrival, status answered, error code (empty on success).
    attempts: Vec<(Instant, u16, String)>,
    script: VecDeque<Reply>,
    /// Delays before handling the next requests (a receiver that hangs).
    hangs: VecDeque<std::time::Duration>,
    /// Requests that started hanging (whether or not they completed).
    hung: usize,
}

/// The running receiver; stopped when dropped.
pub struct SlackReceiver {
    /// The webhook URL to put into `slack_configs[].api_url`.
    pub url: String,
    log: Arc<Mutex<Log>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlackReceiver {
    /// Starts on a free loopback port.
    pub fn start() -> SlackReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind Slack receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Log::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = log.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app =
                    axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                        let state = state.clone();
                        async move {
                            let hang = {
                                let mut log = state.lock().unwrap_or_else(|e| e.into_inner());
                                let h = log.hangs.pop_front();
                                log.hung += usize::from(h.is_some());
                                h
                            };
                            // A connection cut while hanging drops this future: nothing recorded.
                            if let Some(d) = hang {
                                tokio::time::sleep(d).await;
                            }
                            hook(&state, &method, &uri, &headers, &body)
                        }
                    });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        SlackReceiver {
            url: format!("http://{addr}/services/T0E2E/B0E2E/xxxxxxxxxxxxxxxxxxxxxxxx"),
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Queues answers for the next requests (after them: `200 ok`).
    pub fn script(&self, replies: &[Reply]) {
        self.lock().script.extend(replies.iter().cloned());
    }

    /// Makes each of the next `n` requests hang for `delay` before being handled as usual (an
    /// answer only after `delay`; if the sender gives up or dies first, nothing is recorded).
    pub fn hang_next(&self, n: usize, delay: std::time::Duration) {
        self.lock().hangs.extend(std::iter::repeat_n(delay, n));
    }

    /// Requests that started hanging so far.
    pub fn hung_requests(&self) -> usize {
        self.lock().hung
    }

    /// Drops the scripted answers not used yet (from now on: `200 ok`).
    pub fn clear_script(&self) {
        self.lock().script.clear();
    }

    /// Accepted messages in arrival order.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.lock().messages.clone()
    }

    /// Every request as (arrival, status, error code).
    pub fn attempts(&self) -> Vec<(Instant, u16, String)> {
        self.lock().attempts.clone()
    }

    /// Requests refused because the payload broke Slack's rules (not scripted refusals).
    pub fn invalid_payloads(&self) -> Vec<String> {
        self.lock()
            .attempts
            .iter()
            .filter(|(_, s, code)| *s != 200 && !code.starts_with("scripted"))
            .map(|(_, s, code)| format!("{s} {code}"))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SlackReceiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks a payload against Slack's rules; `Err(code)` is Slack's plain-text error.
pub fn validate(headers: &HeaderMap, body: &str) -> Result<Value, &'static str> {
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json_type {
        return Err("invalid_payload");
    }
    let v: Value = serde_json::from_str(body).map_err(|_| "invalid_payload")?;
    if !v.is_object() {
        return Err("invalid_payload");
    }
    let nonempty = |v: &Value| v.as_str().is_some_and(|s| !s.trim().is_empty());
    let blocks = match &v["blocks"] {
        Value::Null => Vec::new(),
        Value::Array(b) => b.clone(),
        _ => return Err("invalid_blocks"),
    };
    if blocks.len() > 50 || blocks.iter().any(|b| !b["type"].is_string()) {
        return Err("invalid_blocks");
    }
    let attachments = match &v["attachments"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        _ => return Err("invalid_attachments"),
    };
    if attachments.iter().any(|a| !a.is_object() || (!nonempty(&a["text"]) && !nonempty(&a["fallback"]))) {
        return Err("invalid_attachments");
    }
    if !nonempty(&v["text"]) && blocks.is_empty() && attachments.is_empty() {
        return Err("no_text");
    }
    let too_long = |s: &Value, max: usize| s.as_str().is_some_and(|s| s.chars().count() > max);
    if too_long(&v["text"], 40_000) || attachments.iter().any(|a| too_long(&a["text"], 40_000)) {
        return Err("msg_too_long");
    }
    Ok(v)
}

fn respond(log: &mut Log, at: Instant, status: u16, code: String, text: String, retry_after: Option<u64>) -> Response {
    log.attempts.push((at, status, code));
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), text).into_response();
    if let Some(s) = retry_after {
        resp.headers_mut().insert("retry-after", s.into());
    }
    resp
}

fn hook(log: &Mutex<Log>, method: &Method, uri: &Uri, headers: &HeaderMap, body: &str) -> Response {
    let now = Instant::now();
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    if method != Method::POST || !uri.path().starts_with("/services/") {
        return respond(&mut log, now, 404, "no_service".into(), "no_service".into(), None);
    }
    let v = match validate(headers, body) {
        Ok(v) => v,
        Err(code) => return respond(&mut log, now, 400, code.into(), code.into(), None),
    };
    if let Some(r) = log.script.pop_front() {
        return respond(&mut log, now, r.status, format!("scripted {}", r.status), r.body.into(), r.retry_after);
    }
    log.messages.push(SlackMessage { at: now, path: uri.path().to_string(), body: v });
    respond(&mut log, now, 200, String::new(), "ok".into(), None)
}
