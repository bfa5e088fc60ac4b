//! Delivery retries and per-destination rate limiting. Exponential backoff with jitter (500 ms
//! initial, ×2, capped at 30 s, bounded by a deadline and an attempt count) as in Alertmanager's
//! `notify.RetryStage`, except that an answer carrying `Retry-After` (Slack's 429) waits exactly
//! that long instead of giving up (alertmanager#2205). The rate limiter spaces requests to one
//! destination (~1/s for Slack webhooks) and is pushed back by `Retry-After`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::FailReason;

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    /// Worth trying again, after `after` if the server said so.
    Retry {
        reason: FailReason,
        after: Option<Duration>,
        message: String,
    },
    /// Will not succeed by retrying.
    Fatal {
        reason: FailReason,
        message: String,
    },
}

/// Maps an HTTP receiver's status to an attempt outcome: 2xx delivered; 429 retried after
/// `Retry-After` (1 s when absent); 5xx retried; any other status is final.
pub fn classify_http(status: u16, retry_after: Option<Duration>, body: &str) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        429 => Attempt::Retry {
            reason: FailReason::rate_limited,
            after: retry_after.or(Some(Duration::from_secs(1))),
            message: format!("HTTP 429: {body}"),
        },
        500..=599 => Attempt::Retry {
            reason: FailReason::server_error,
            after: retry_after,
            message: format!("HTTP {status}: {body}"),
        },
        _ => Attempt::Fatal { reason: FailReason::client_error, message: format!("HTTP {status}: {body}") },
    }
}

/// The final failure of an attempt series.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: FailReason,
    pub message: String,
    pub attempts: u32,
}

/// Bounds of one attempt series.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max_backoff: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { initial: Duration::from_millis(500), max_backoff: Duration::from_secs(30), max_attempts: 12 }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `n+1` after `n` failures (1-based), with ±25 % jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.initial.as_secs_f64() * 2f64.powi(i32::try_from(n.saturating_sub(1)).unwrap_or(30).min(30));
        let capped = base.min(self.max_backoff.as_secs_f64());
        let jitter = 0.75 + rand::random::<f64>() * 0.5;
        Duration::from_secs_f64(capped * jitter)
    }
}

/// Runs `attempt` until it delivers, fails fatally, runs out of attempts, passes `deadline` or
/// `shutdown` fires. `on_attempt` is called before each try (for request counters).
pub async fn retry<F, Fut>(
    policy: RetryPolicy,
    deadline: Instant,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<u32, Failure>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let mut n = 0;
    loop {
        n += 1;
        let outcome = tokio::select! {
            o = tokio::time::timeout_at(deadline, attempt(n)) => o.unwrap_or(Attempt::Retry { reason: FailReason::timeout, after: None, message: "attempt timed out".into() }),
            _ = shutdown.cancelled() => return Err(Failure { reason: FailReason::other, message: "shutting down".into(), attempts: n }),
        };
        let (reason, after, message) = match outcome {
            Attempt::Delivered => return Ok(n),
            Attempt::Fatal { reason, message } => return Err(Failure { reason, message, attempts: n }),
            Attempt::Retry { reason, after, message } => (reason, after, message),
        };
        let wait = after.unwrap_or_else(|| policy.backoff(n));
        if n >= policy.max_attempts || Instant::now() + wait >= deadline {
            return Err(Failure { reason, message, attempts: n });
        }
        tracing::debug!(attempt = n, reason = ?reason, wait_ms = wait.as_millis() as u64, message, "Delivery failed; retrying.");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Err(Failure { reason, message, attempts: n }),
        }
    }
}

/// Spaces requests per destination key.
#[derive(Clone, Default)]
pub struct RateLimiter {
    next: Arc<Mutex<HashMap<String, Instant>>>,
}

impl RateLimiter {
    /// Waits for this destination's next slot (at most `gap` after the previous one), unless
    /// `deadline` comes first (then returns false).
    pub async fn acquire(&self, key: &str, gap: Duration, deadline: Instant) -> bool {
        let slot = {
            let mut map = self.next.lock();
            let now = Instant::now();
            let slot = map.get(key).copied().filter(|t| *t > now).unwrap_or(now);
            if slot >= deadline {
                return false;
            }
            map.insert(key.to_string(), slot + gap);
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }

    /// The destination asked us to wait (`Retry-After`): no slot before `until`.
    pub fn hold_until(&self, key: &str, until: Instant) {
        let mut map = self.next.lock();
        let e = map.entry(key.to_string()).or_insert(until);
        if *e < until {
            *e = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy { initial: Duration::from_millis(5), max_backoff: Duration::from_millis(20), max_attempts: 5 }
    }

    #[tokio::test]
    async fn retries_until_delivered() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        let n = retry(fast(), deadline, &CancellationToken::new(), |_| async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Attempt::Retry { reason: FailReason::server_error, after: None, message: "500".into() }
            } else {
                Attempt::Delivered
            }
        })
        .await
        .unwrap();
        assert_eq!(n, 3);
    }

    #[tokio::test]
    async fn fatal_stops_and_attempts_are_bounded() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let err = retry(fast(), deadline, &CancellationToken::new(), |_| async {
            Attempt::Fatal { reason: FailReason::client_error, message: "invalid_payload".into() }
        })
        .await
        .unwrap_err();
        assert_eq!((err.attempts, err.reason), (1, FailReason::client_error));
        let err = retry(fast(), deadline, &CancellationToken::new(), |_| async {
            Attempt::Retry { reason: FailReason::connection, after: None, message: "refused".into() }
        })
        .await
        .unwrap_err();
        assert_eq!(err.attempts, 5);
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_deadline_bounds() {
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        retry(fast(), start + Duration::from_secs(5), &CancellationToken::new(), |_| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Attempt::Retry {
                    reason: FailReason::rate_limited,
                    after: Some(Duration::from_millis(300)),
                    message: "429".into(),
                }
            } else {
                Attempt::Delivered
            }
        })
        .await
        .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(300));
        let err = retry(fast(), Instant::now() + Duration::from_millis(100), &CancellationToken::new(), |_| async {
            Attempt::Retry {
                reason: FailReason::rate_limited,
                after: Some(Duration::from_secs(10)),
                message: "429".into(),
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.attempts, 1, "a Retry-After beyond the deadline ends the series");
    }

    #[tokio::test]
    async fn rate_limiter_spaces_requests() {
        let rl = RateLimiter::default();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(5);
        for _ in 0..3 {
            assert!(rl.acquire("hook", Duration::from_millis(100), deadline).await);
        }
        assert!(start.elapsed() >= Duration::from_millis(200));
        rl.hold_until("other", Instant::now() + Duration::from_secs(60));
        assert!(!rl.acquire("other", Duration::from_millis(100), deadline).await);
    }
}
