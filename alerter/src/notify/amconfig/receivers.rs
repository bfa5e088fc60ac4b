//! Receiver sections of `alertmanager.yml`: `slack_configs`, `email_configs` and `webhook_configs`, with the field
//! names and meaning of <https://prometheus.io/docs/alerting/latest/configuration/#slack_config>
//! and `#email_config`. Unset fields fall back to `global` when the integration is built.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{GlobalConfig, Secret};

/// A named destination with its integrations. A receiver without any only logs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// Name that routes refer to.
    pub name: String,
    /// Slack incoming-webhook integrations.
    pub slack_configs: Vec<SlackConfig>,
    /// E-mail integrations.
    pub email_configs: Vec<EmailConfig>,
    /// Generic webhook integrations (Alertmanager's webhook JSON, version 4).
    pub webhook_configs: Vec<WebhookConfig>,
}

impl ReceiverConfig {
    pub(super) fn validate(&self, global: &GlobalConfig) -> Result<(), String> {
        for (i, s) in self.slack_configs.iter().enumerate() {
            if s.api_url.is_empty()
                && s.api_url_file.is_empty()
                && global.slack_api_url.is_empty()
                && global.slack_api_url_file.is_empty()
            {
                return Err(format!(
                    "receiver {:?} slack_configs[{i}]: no api_url or api_url_file (and no global slack_api_url)",
                    self.name
                ));
            }
            if !s.api_url.is_empty() && !s.api_url_file.is_empty() {
                return Err(format!(
                    "receiver {:?} slack_configs[{i}]: at most one of api_url and api_url_file",
                    self.name
                ));
            }
            if !s.api_url.is_empty() && url::Url::parse(s.api_url.expose()).is_err() {
                return Err(format!("receiver {:?} slack_configs[{i}]: api_url is not a valid URL", self.name));
            }
        }
        for (i, w) in self.webhook_configs.iter().enumerate() {
            let at = format!("receiver {:?} webhook_configs[{i}]", self.name);
            match (w.url.is_empty(), w.url_file.is_empty()) {
                (true, true) => return Err(format!("{at}: one of url and url_file is required")),
                (false, false) => return Err(format!("{at}: at most one of url and url_file")),
                (false, true) if url::Url::parse(w.url.expose()).is_err() => {
                    return Err(format!("{at}: url is not a valid URL"));
                }
                _ => {}
            }
        }
        for (i, e) in self.email_configs.iter().enumerate() {
            let at = format!("receiver {:?} email_configs[{i}]", self.name);
            if e.to.trim().is_empty() {
                return Err(format!("{at}: missing to address"));
            }
            if e.from.is_empty() && global.smtp_from.is_empty() {
                return Err(format!("{at}: no from address (and no global smtp_from)"));
            }
            let host = if e.smarthost.is_empty() { &global.smtp_smarthost } else { &e.smarthost };
            if host.is_empty() {
                return Err(format!("{at}: no smarthost (and no global smtp_smarthost)"));
            }
            if split_host_port(host).is_none() {
                return Err(format!("{at}: smarthost {host:?} is not host:port"));
            }
            if e.tls_config.cert_file.is_empty() != e.tls_config.key_file.is_empty() {
                return Err(format!("{at}: tls_config.cert_file and key_file must be set together"));
            }
            if !e.auth_password.is_empty() && !e.auth_password_file.is_empty() {
                return Err(format!("{at}: at most one of auth_password and auth_password_file"));
            }
        }
        Ok(())
    }
}

/// Splits `host:port` (IPv6 hosts in brackets).
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

fn yes() -> bool {
    true
}

/// One `slack_configs` entry (incoming webhooks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Also notify when alerts resolve (default true, unlike Alertmanager).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Incoming-webhook URL.
    #[serde(default)]
    pub api_url: Secret,
    /// File holding the webhook URL.
    #[serde(default)]
    pub api_url_file: String,
    /// Channel override (legacy webhooks only).
    #[serde(default)]
    pub channel: String,
    /// User name override.
    #[serde(default)]
    pub username: String,
    /// Emoji used as the icon, e.g. `:rotating_light:`.
    #[serde(default)]
    pub icon_emoji: String,
    /// Image URL used as the icon.
    #[serde(default)]
    pub icon_url: String,
    /// Link @names and #channels in the text.
    #[serde(default)]
    pub link_names: bool,
    /// Attachment title template.
    #[serde(default)]
    pub title: Option<String>,
    /// Attachment title link template (defaults to the first alert's generator URL).
    #[serde(default)]
    pub title_link: Option<String>,
    /// Attachment text template.
    #[serde(default)]
    pub text: Option<String>,
    /// Text above the attachment.
    #[serde(default)]
    pub pretext: Option<String>,
    /// Plain-text summary for clients that cannot show attachments.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Attachment colour template (default: `danger` when firing, `good` when resolved).
    #[serde(default)]
    pub color: Option<String>,
    /// Attachment footer template.
    #[serde(default)]
    pub footer: Option<String>,
    /// Top-level message `text` template (the notification preview).
    #[serde(default)]
    pub message_text: Option<String>,
}

/// TLS settings for SMTP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with extra CA certificates to trust.
    pub ca_file: String,
    /// Name to verify the server certificate against (default: the smarthost's host).
    pub server_name: String,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
    /// PEM client certificate for servers that demand one (with `key_file`).
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
}

/// One `email_configs` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Also notify when alerts resolve (default true, unlike Alertmanager).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Recipients, comma-separated (templated).
    #[serde(default)]
    pub to: String,
    /// Sender (default `global.smtp_from`).
    #[serde(default)]
    pub from: String,
    /// SMTP server `host:port` (default `global.smtp_smarthost`); port 465 means implicit TLS.
    #[serde(default)]
    pub smarthost: String,
    /// EHLO name (default `global.smtp_hello`).
    #[serde(default)]
    pub hello: String,
    /// AUTH user name (default `global.smtp_auth_username`).
    #[serde(default)]
    pub auth_username: String,
    /// AUTH password (PLAIN or LOGIN).
    #[serde(default)]
    pub auth_password: Secret,
    /// File holding the AUTH password.
    #[serde(default)]
    pub auth_password_file: String,
    /// Require STARTTLS (default `global.smtp_require_tls`, itself true).
    #[serde(default)]
    pub require_tls: Option<bool>,
    /// Use TLS from the first byte (default: only on port 465).
    #[serde(default)]
    pub force_implicit_tls: Option<bool>,
    /// Certificate verification settings.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// HTML body template (default `email.default.html`).
    #[serde(default)]
    pub html: Option<String>,
    /// Plain-text body template (default `email.default.text`).
    #[serde(default)]
    pub text: Option<String>,
    /// Extra or overriding headers (templated); `Subject`, `To`, `From` have defaults.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One `webhook_configs` entry: POSTs Alertmanager's webhook JSON to `url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Also notify when alerts resolve (default true, as in Alertmanager's webhook).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Endpoint to POST to.
    #[serde(default)]
    pub url: Secret,
    /// File holding the endpoint URL.
    #[serde(default)]
    pub url_file: String,
    /// Send at most this many alerts per message (0 = all), the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
}
