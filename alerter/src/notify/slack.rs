//! Slack incoming-webhook delivery: builds the legacy-attachment payload Alertmanager sends
//! (<https://api.slack.com/reference/messaging/attachments>) from our templates and classifies the
//! answer: `200 ok` delivered, 429 retried after `Retry-After`, 5xx retried, other 4xx (and 200
//! with an error body) fatal with Slack's error text (`invalid_payload`, `no_text`, …).

use std::time::Duration;

use gtmpl::Value;
use serde::Serialize;
use tokio::time::Instant;

use super::amconfig::{GlobalConfig, Secret, SlackConfig, read_secret_file};
use super::metrics::FailReason;
use super::retry::{Attempt, RateLimiter};
use super::template::Templates;

/// Slack truncates titles at 1024 runes; keep texts under its 8000-character attachment advice.
const MAX_TITLE: usize = 1024;
const MAX_TEXT: usize = 7500;
/// Minimum gap between messages to one webhook (Slack allows about one per second).
pub const WEBHOOK_GAP: Duration = Duration::from_millis(1000);

#[derive(Debug, Serialize, PartialEq)]
pub struct Attachment {
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pretext: String,
    pub text: String,
    pub fallback: String,
    pub color: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub footer: String,
    pub mrkdwn_in: Vec<&'static str>,
}

/// The JSON body posted to the webhook.
#[derive(Debug, Serialize, PartialEq)]
pub struct Payload {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub link_names: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// One configured Slack destination.
pub struct Slack {
    cfg: SlackConfig,
    url: Secret,
    url_file: Option<std::path::PathBuf>,
    client: reqwest::Client,
    limiter: RateLimiter,
}

fn truncate(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl Slack {
    pub fn new(
        cfg: SlackConfig,
        global: &GlobalConfig,
        resolve: impl Fn(&str) -> std::path::PathBuf,
        client: reqwest::Client,
        limiter: RateLimiter,
    ) -> Slack {
        let (url, url_file) = if !cfg.api_url.is_empty() {
            (cfg.api_url.clone(), None)
        } else if !cfg.api_url_file.is_empty() {
            (Secret::default(), Some(resolve(&cfg.api_url_file)))
        } else if !global.slack_api_url.is_empty() {
            (global.slack_api_url.clone(), None)
        } else {
            (Secret::default(), Some(resolve(&global.slack_api_url_file)))
        };
        Slack { cfg, url, url_file, client, limiter }
    }

    pub fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    /// Renders the payload for a group.
    pub fn payload(&self, t: &Templates, data: &Value) -> Result<Payload, super::template::TemplateError> {
        let render = |opt: &Option<String>, default: &str| -> Result<String, super::template::TemplateError> {
            match opt {
                Some(text) => t.render(text, data),
                None if default.is_empty() => Ok(String::new()),
                None => t.render_named(default, data),
            }
        };
        let title_link = match &self.cfg.title_link {
            Some(text) => t.render(text, data)?,
            None => t.render(r#"{{ with index .Alerts 0 }}{{ .GeneratorURL }}{{ end }}"#, data)?,
        };
        let attachment = Attachment {
            title: truncate(render(&self.cfg.title, "slack.default.title")?, MAX_TITLE),
            title_link,
            pretext: render(&self.cfg.pretext, "")?,
            text: truncate(render(&self.cfg.text, "slack.default.text")?, MAX_TEXT),
            fallback: render(&self.cfg.fallback, "slack.default.fallback")?,
            color: render(&self.cfg.color, "slack.default.color")?,
            footer: render(&self.cfg.footer, "")?,
            mrkdwn_in: vec!["fallback", "pretext", "text"],
        };
        Ok(Payload {
            channel: self.cfg.channel.clone(),
            username: self.cfg.username.clone(),
            icon_emoji: self.cfg.icon_emoji.clone(),
            icon_url: self.cfg.icon_url.clone(),
            link_names: self.cfg.link_names,
            text: truncate(render(&self.cfg.message_text, "")?, MAX_TEXT),
            attachments: vec![attachment],
        })
    }

    fn url(&self) -> Result<Secret, String> {
        match &self.url_file {
            Some(p) => read_secret_file(p),
            None => Ok(self.url.clone()),
        }
    }

    /// One delivery attempt (after waiting for the webhook's rate-limit slot).
    pub async fn attempt(&self, payload: &Payload, deadline: Instant) -> Attempt {
        let url = match self.url() {
            Ok(u) => u,
            Err(e) => return Attempt::Retry { reason: FailReason::other, after: None, message: e },
        };
        if !self.limiter.acquire(url.expose(), WEBHOOK_GAP, deadline).await {
            return Attempt::Retry {
                reason: FailReason::rate_limited,
                after: None,
                message: "no rate-limit slot before the deadline".into(),
            };
        }
        let resp = match self.client.post(url.expose()).json(payload).send().await {
            Ok(r) => r,
            // reqwest errors may include the URL (a secret): report only the kind.
            Err(e) => {
                return Attempt::Retry {
                    reason: if e.is_timeout() { FailReason::timeout } else { FailReason::connection },
                    after: None,
                    message: describe(&e),
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.unwrap_or_default();
        let text: String = body.trim().chars().take(200).collect();
        classify(status.as_u16(), retry_after, &text, |until| self.limiter.hold_until(url.expose(), until))
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connect error"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_request() {
        "request error"
    } else {
        "transport error"
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() { kind.to_string() } else { format!("{kind}: {detail}") }
}

/// Maps Slack's answer to an attempt outcome: a 2xx counts only with Slack's `ok` body (Slack
/// reports `no_text`, `invalid_payload`, ... with 200 on some paths); other statuses follow the
/// shared HTTP mapping, and a 429 also holds the webhook's rate limiter until `Retry-After`.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &str, hold: impl FnOnce(Instant)) -> Attempt {
    match status {
        200 if body == "ok" || body.is_empty() || body.contains("\"ok\":true") => Attempt::Delivered,
        200..=299 => Attempt::Fatal { reason: FailReason::client_error, message: format!("HTTP {status}: {body}") },
        _ => {
            let outcome = super::retry::classify_http(status, retry_after, body);
            if let Attempt::Retry { reason: FailReason::rate_limited, after: Some(after), .. } = &outcome {
                hold(Instant::now() + *after);
            }
            outcome
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_slack_answers() {
        assert_eq!(classify(200, None, "ok", |_| {}), Attempt::Delivered);
        let mut held = false;
        match classify(429, Some(Duration::from_secs(3)), r#"{"ok":false,"error":"rate_limited"}"#, |_| held = true) {
            Attempt::Retry { reason, after, .. } => {
                assert_eq!((reason, after), (FailReason::rate_limited, Some(Duration::from_secs(3))))
            }
            other => panic!("{other:?}"),
        }
        assert!(held, "429 pushes the rate limiter back");
        assert!(matches!(
            classify(503, None, "rollup_error", |_| {}),
            Attempt::Retry { reason: FailReason::server_error, .. }
        ));
        match classify(400, None, "invalid_payload", |_| {}) {
            Attempt::Fatal { reason, message } => {
                assert_eq!(reason, FailReason::client_error);
                assert!(message.contains("invalid_payload"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(200, None, "no_text", |_| {}), Attempt::Fatal { .. }));
        assert!(matches!(classify(404, None, "channel_not_found", |_| {}), Attempt::Fatal { .. }));
    }

    #[test]
    fn truncates_long_text() {
        let t = truncate("é".repeat(2000), MAX_TITLE);
        assert_eq!(t.chars().count(), MAX_TITLE);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short".into(), 10), "short");
    }
}
