//! The remote_write 1.0 HTTP client and its retry policy. One call sends one snappy-compressed
//! protobuf body and classifies the answer as the spec asks
//! (<https://prometheus.io/docs/specs/remote_write_spec/#retries-backoff>): 2xx delivered; 5xx,
//! 429 and network errors retried with exponential backoff and jitter, honouring `Retry-After`;
//! any other 4xx is the sender's fault, so the request is dropped and counted.

use std::time::Duration;

use crowsnest_wire::remote::headers;
use rand::Rng;

use crate::config::RemoteWriteConfig;
use crate::error::CollectorError;

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// How one write attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver accepted the samples.
    Delivered,
    /// Try again later; `after` is the receiver's `Retry-After`, when it sent one.
    Retry { result: &'static str, after: Option<Duration> },
    /// The receiver refused the request for good (4xx other than 429).
    Rejected { status: u16 },
}

/// A remote_write sender.
#[derive(Clone)]
pub struct RemoteWriteClient {
    http: reqwest::Client,
    cfg: RemoteWriteConfig,
}

impl RemoteWriteClient {
    pub fn new(cfg: &RemoteWriteConfig) -> Result<Self, CollectorError> {
        // Credentials travel as a sensitive default header (see `crowsnest_web::client`).
        let http = cfg
            .http_client()
            .client_builder()
            .map_err(|e| CollectorError::Http(e.to_string()))?
            .timeout(cfg.timeout)
            .user_agent(concat!("crowsnest-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CollectorError::Http(e.to_string()))?;
        Ok(RemoteWriteClient { http, cfg: cfg.clone() })
    }

    /// Sends one snappy-compressed `WriteRequest` body.
    pub async fn send(&self, body: Vec<u8>) -> SendOutcome {
        let req = self
            .http
            .post(&self.cfg.url)
            .header(headers::CONTENT_ENCODING, headers::SNAPPY)
            .header(headers::CONTENT_TYPE, headers::PROTOBUF)
            .header(headers::VERSION, headers::VERSION_1)
            .body(body);
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                if status.is_success() {
                    SendOutcome::Delivered
                } else if status.as_u16() == 429 {
                    SendOutcome::Retry { result: "retry_429", after }
                } else if status.is_server_error() {
                    SendOutcome::Retry { result: "retry_5xx", after }
                } else {
                    let text = resp.text().await.unwrap_or_default();
                    tracing::warn!(status = status.as_u16(), body = %text.chars().take(300).collect::<String>(), "remote_write receiver rejected a request; dropping it.");
                    SendOutcome::Rejected { status: status.as_u16() }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "remote_write request failed.");
                SendOutcome::Retry {
                    result: if e.is_timeout() { "retry_timeout" } else { "retry_network" },
                    after: None,
                }
            }
        }
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// Exponential backoff with jitter: the n-th consecutive failure waits a random time in
/// `[d/2, d]` where `d = min(max, min * 2^n)`. A `Retry-After` replaces the computed delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, failures: 0 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.failures.min(20)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        if let Some(after) = retry_after {
            return after;
        }
        let lo = exp / 2;
        let jitter = rand::rng().random_range(0..=(exp - lo).as_millis() as u64);
        lo + Duration::from_millis(jitter)
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay(None)).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100), "{d:?}");
        assert!(d[3] >= Duration::from_millis(400) && d[3] <= Duration::from_millis(800), "{d:?}");
        assert!(d.iter().all(|x| *x <= Duration::from_secs(2)));
        assert!(d[7] >= Duration::from_secs(1));
        assert_eq!(b.next_delay(Some(Duration::from_secs(7))), Duration::from_secs(7));
        b.reset();
        assert!(b.next_delay(None) <= Duration::from_millis(100));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let d = parse_retry_after(&future).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }
}
