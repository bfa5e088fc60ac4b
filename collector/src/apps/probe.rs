//! HTTP health probes in blackbox_exporter's style (`prober/http.go`): one GET with a deadline,
//! timed per phase (`resolve`, `connect`, `tls`, `processing`, `transfer`), judged by status
//! code, body regexes and JSON health semantics (Spring Boot actuator `UP`/`DOWN`, the
//! `application/health+json` draft's `pass`/`warn`/`fail`). Unlike blackbox_exporter, a failure
//! names its `reason` (dns, connect, tls, timeout, status, body), and phases that did not happen
//! report no duration at all (blackbox_exporter#579).

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use regex::Regex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use url::Url;

use super::tls;
use crate::config::{HealthSemantics, ProbeConfig};

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Dns,
    Connect,
    Tls,
    Timeout,
    Status,
    Body,
}

impl Reason {
    pub const ALL: [Reason; 6] =
        [Reason::Dns, Reason::Connect, Reason::Tls, Reason::Timeout, Reason::Status, Reason::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Timeout => "timeout",
            Reason::Status => "status",
            Reason::Body => "body",
        }
    }
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeResult {
    pub success: bool,
    pub duration: Duration,
    /// 0 when no response arrived.
    pub status_code: u16,
    /// Phases reached, with their durations.
    pub phases: Vec<(&'static str, Duration)>,
    /// Earliest `notAfter` among the server's certificates (Unix seconds).
    pub cert_expiry: Option<i64>,
    pub reason: Option<Reason>,
    /// The body's JSON health said warn/degraded (the probe still succeeds).
    pub degraded: bool,
}

/// Judgement of a JSON health body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonHealth {
    Up,
    Warn,
    Down,
    Unknown,
}

/// Reads `status` of a health JSON body; None when the body is not JSON or has no string status.
pub fn json_health(body: &[u8]) -> Option<JsonHealth> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let s = v.get("status")?.as_str()?.to_ascii_lowercase();
    Some(match s.as_str() {
        "up" | "pass" | "ok" | "healthy" => JsonHealth::Up,
        "warn" | "degraded" => JsonHealth::Warn,
        "down" | "fail" | "error" | "unhealthy" | "out_of_service" => JsonHealth::Down,
        _ => JsonHealth::Unknown,
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Probes `url` once within `timeout`.
pub async fn probe(url: &Url, cfg: &ProbeConfig, timeout: Duration) -> ProbeResult {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut r = ProbeResult::default();
    let fail = |mut r: ProbeResult, reason: Reason| {
        r.reason = Some(reason);
        r.duration = start.elapsed();
        r
    };
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    // resolve
    let t = Instant::now();
    let addr = match timeout_at(deadline, tokio::net::lookup_host((host.as_str(), port))).await {
        Err(_) => return fail(r, Reason::Timeout),
        Ok(Err(_)) => return fail(r, Reason::Dns),
        Ok(Ok(mut addrs)) => match addrs.next() {
            Some(a) => a,
            None => return fail(r, Reason::Dns),
        },
    };
    r.phases.push(("resolve", t.elapsed()));
    // connect
    let t = Instant::now();
    let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return fail(r, Reason::Timeout),
        Ok(Err(_)) => return fail(r, Reason::Connect),
        Ok(Ok(s)) => s,
    };
    r.phases.push(("connect", t.elapsed()));
    // tls
    let stream: Box<dyn Io> = if url.scheme() == "https" {
        let t = Instant::now();
        let cfg_tls = if cfg.insecure_skip_verify { tls::insecure_config() } else { tls::verifying_config() };
        let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
            Ok(n) => n,
            Err(_) => return fail(r, Reason::Tls),
        };
        let conn = tokio_rustls::TlsConnector::from(cfg_tls);
        match timeout_at(deadline, conn.connect(name, tcp)).await {
            Err(_) => return fail(r, Reason::Timeout),
            Ok(Err(e)) => {
                tracing::debug!(url = %url, error = %e, "TLS handshake failed.");
                return fail(r, Reason::Tls);
            }
            Ok(Ok(s)) => {
                r.phases.push(("tls", t.elapsed()));
                r.cert_expiry =
                    s.get_ref().1.peer_certificates().and_then(|cs| cs.iter().filter_map(|c| tls::not_after(c)).min());
                Box::new(s)
            }
        }
    } else {
        Box::new(tcp)
    };
    // processing: request sent, response head received
    let t = Instant::now();
    let (mut sender, conn) = match timeout_at(
        deadline,
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)),
    )
    .await
    {
        Err(_) => return fail(r, Reason::Timeout),
        Ok(Err(_)) => return fail(r, Reason::Connect),
        Ok(Ok(x)) => x,
    };
    let conn_task = tokio::spawn(conn);
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    // Keeps IPv6 brackets, as the Host header needs them.
    let raw_host = url.host_str().unwrap_or_default();
    let authority = match url.port() {
        Some(p) => format!("{raw_host}:{p}"),
        None => raw_host.to_string(),
    };
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, concat!("crowsnest-collector/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::ACCEPT, "application/health+json, application/json;q=0.9, */*;q=0.5")
        .body(Empty::<Bytes>::new());
    let Ok(req) = req else {
        conn_task.abort();
        return fail(r, Reason::Connect);
    };
    let resp = match timeout_at(deadline, sender.send_request(req)).await {
        Err(_) => {
            conn_task.abort();
            return fail(r, Reason::Timeout);
        }
        Ok(Err(_)) => {
            conn_task.abort();
            return fail(r, Reason::Connect);
        }
        Ok(Ok(resp)) => resp,
    };
    r.phases.push(("processing", t.elapsed()));
    r.status_code = resp.status().as_u16();
    // transfer
    let t = Instant::now();
    let body = match timeout_at(deadline, Limited::new(resp.into_body(), cfg.body_size_limit.max(1)).collect()).await {
        Err(_) => {
            conn_task.abort();
            return fail(r, Reason::Timeout);
        }
        Ok(Err(_)) => {
            conn_task.abort();
            return fail(r, Reason::Body);
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    r.phases.push(("transfer", t.elapsed()));
    conn_task.abort();
    let status_ok = if cfg.valid_status_codes.is_empty() {
        (200..300).contains(&r.status_code)
    } else {
        cfg.valid_status_codes.contains(&r.status_code)
    };
    if !status_ok {
        return fail(r, Reason::Status);
    }
    let text = String::from_utf8_lossy(&body);
    if let Some(re) = cfg.fail_if_body_matches_regexp.as_deref().and_then(|s| Regex::new(s).ok())
        && re.is_match(&text)
    {
        return fail(r, Reason::Body);
    }
    if let Some(re) = cfg.fail_if_body_not_matches_regexp.as_deref().and_then(|s| Regex::new(s).ok())
        && !re.is_match(&text)
    {
        return fail(r, Reason::Body);
    }
    if cfg.health_semantics == HealthSemantics::Auto {
        match json_health(&body) {
            Some(JsonHealth::Down) => return fail(r, Reason::Body),
            Some(JsonHealth::Warn) => r.degraded = true,
            _ => {}
        }
    }
    r.success = true;
    r.duration = start.elapsed();
    r
}

#[cfg(test)]
mod tests;
