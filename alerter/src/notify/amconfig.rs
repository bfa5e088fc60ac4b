//! The Alertmanager configuration file (`alertmanager.yml`) in the subset Crowsnest implements:
//! `global` (SMTP and Slack defaults, `resolve_timeout`), the `route` tree, `inhibit_rules`,
//! `receivers` with `slack_configs`, `email_configs` and `webhook_configs`, and `templates`. Follows
//! <https://prometheus.io/docs/alerting/latest/configuration/>. Parsing is strict (unknown keys are
//! errors naming the key), secrets never appear in `Debug` output or in the `/api/v2/status` dump.
//!
//! Deliberate differences from Alertmanager: `send_resolved` defaults to `true` for Slack and
//! e-mail (users expect resolved notices, alertmanager#630).

mod receivers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crowsnest_wire::duration::{serde_duration, serde_opt_duration};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use receivers::{EmailConfig, ReceiverConfig, SlackConfig, TlsConfig, WebhookConfig, split_host_port};

use super::matchers::{MatcherError, parse_matcher};

/// Why an Alertmanager config could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid Alertmanager config: {0}")]
    Invalid(String),
    #[error("invalid Alertmanager config: {0}")]
    Matcher(#[from] MatcherError),
}

/// A string that is never printed: `Debug` and serialisation show `<secret>`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<secret>" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<secret>" })
    }
}

/// The whole `alertmanager.yml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Defaults shared by receivers and the resolve timeout.
    pub global: GlobalConfig,
    /// The routing tree; its root must name a receiver and carry no matchers.
    pub route: RouteConfig,
    /// Rules that mute target alerts while a matching source alert fires.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named notification destinations.
    pub receivers: Vec<ReceiverConfig>,
    /// Globs of template files (relative to the config file) holding `{{ define }}` blocks.
    pub templates: Vec<String>,
    /// Directory relative paths (`*_file`, `templates`) resolve against; set by [`load`].
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for AlertmanagerConfig {
    /// The built-in config used when no file is given: everything goes to a log-only receiver.
    fn default() -> Self {
        AlertmanagerConfig {
            global: GlobalConfig::default(),
            route: RouteConfig { receiver: Some(DEFAULT_RECEIVER.to_string()), ..RouteConfig::default() },
            inhibit_rules: Vec::new(),
            receivers: vec![ReceiverConfig { name: DEFAULT_RECEIVER.to_string(), ..ReceiverConfig::default() }],
            templates: Vec::new(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// Name of the receiver in the built-in config; it has no integrations, so notifications are only logged.
pub const DEFAULT_RECEIVER: &str = "log";

/// The `global` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// How long an alert without `endsAt` stays firing after it was last received.
    #[serde(with = "serde_duration")]
    pub resolve_timeout: Duration,
    /// Default sender address for e-mail.
    pub smtp_from: String,
    /// Default EHLO/HELO name.
    pub smtp_hello: String,
    /// Default SMTP server as `host:port`.
    pub smtp_smarthost: String,
    /// Default SMTP AUTH user.
    pub smtp_auth_username: String,
    /// Default SMTP AUTH password.
    pub smtp_auth_password: Secret,
    /// File holding the default SMTP AUTH password.
    pub smtp_auth_password_file: String,
    /// Default for `require_tls`: demand STARTTLS on non-implicit-TLS connections.
    pub smtp_require_tls: bool,
    /// Default Slack incoming-webhook URL.
    pub slack_api_url: Secret,
    /// File holding the default Slack webhook URL.
    pub slack_api_url_file: String,
    /// Base URL of this alerter, exposed to templates as `.ExternalURL`.
    pub external_url: String,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: Duration::from_secs(300),
            smtp_from: String::new(),
            smtp_hello: "localhost".to_string(),
            smtp_smarthost: String::new(),
            smtp_auth_username: String::new(),
            smtp_auth_password: Secret::default(),
            smtp_auth_password_file: String::new(),
            smtp_require_tls: true,
            slack_api_url: Secret::default(),
            slack_api_url_file: String::new(),
            external_url: String::new(),
        }
    }
}

/// One node of the routing tree. Unset options inherit from the parent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Receiver for alerts that stop at this node.
    pub receiver: Option<String>,
    /// Labels that split alerts into notification groups; `...` means all labels.
    pub group_by: Option<Vec<String>>,
    /// Matchers in Alertmanager syntax (`severity=~"crit|warn"`).
    pub matchers: Vec<String>,
    /// Legacy equality matchers.
    #[serde(rename = "match")]
    pub match_eq: std::collections::BTreeMap<String, String>,
    /// Legacy regex matchers.
    pub match_re: std::collections::BTreeMap<String, String>,
    /// Wait before the first notification of a new group (default 30s).
    #[serde(with = "serde_opt_duration")]
    pub group_wait: Option<Duration>,
    /// Minimum gap between notifications about a changed group (default 5m).
    #[serde(with = "serde_opt_duration")]
    pub group_interval: Option<Duration>,
    /// Resend an unchanged firing group after this long (default 4h).
    #[serde(with = "serde_opt_duration")]
    pub repeat_interval: Option<Duration>,
    /// Keep matching later siblings after this route matched.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Child routes, tried in order.
    pub routes: Vec<RouteConfig>,
}

/// One `inhibit_rules` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InhibitRuleConfig {
    /// Optional name, for logs.
    pub name: String,
    /// Matchers selecting the alerts that mute others.
    pub source_matchers: Vec<String>,
    /// Matchers selecting the alerts that can be muted.
    pub target_matchers: Vec<String>,
    /// Legacy equality form of `source_matchers`.
    pub source_match: std::collections::BTreeMap<String, String>,
    /// Legacy regex form of `source_matchers`.
    pub source_match_re: std::collections::BTreeMap<String, String>,
    /// Legacy equality form of `target_matchers`.
    pub target_match: std::collections::BTreeMap<String, String>,
    /// Legacy regex form of `target_matchers`.
    pub target_match_re: std::collections::BTreeMap<String, String>,
    /// Labels whose values must be equal in source and target (missing counts as empty).
    pub equal: Vec<String>,
}

/// Reads, parses and validates an Alertmanager config file; relative paths in it resolve
/// against the file's directory.
pub fn load(path: &Path) -> Result<AlertmanagerConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let mut cfg = parse(&text).map_err(|e| match e {
        ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_path_buf(), message },
        other => other,
    })?;
    cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    Ok(cfg)
}

/// Parses and validates config text (paths resolve against the current directory).
pub fn parse(text: &str) -> Result<AlertmanagerConfig, ConfigError> {
    let mut cfg: AlertmanagerConfig = serde_norway::from_str(text)
        .map_err(|e| ConfigError::Parse { path: PathBuf::from("<config>"), message: e.to_string() })?;
    cfg.base_dir = PathBuf::from(".");
    cfg.validate()?;
    Ok(cfg)
}

impl AlertmanagerConfig {
    /// Checks everything serde cannot: receiver references, matcher syntax, interval sanity,
    /// that each Slack/e-mail config has a destination.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut names = std::collections::HashSet::new();
        for r in &self.receivers {
            if r.name.is_empty() {
                return invalid("receiver without a name".into());
            }
            if !names.insert(r.name.as_str()) {
                return invalid(format!("receiver {:?} defined twice", r.name));
            }
            r.validate(&self.global).map_err(ConfigError::Invalid)?;
        }
        let root = &self.route;
        if root.receiver.is_none() {
            return invalid("the root route must name a receiver".into());
        }
        if !root.matchers.is_empty() || !root.match_eq.is_empty() || !root.match_re.is_empty() {
            return invalid("the root route must not have matchers".into());
        }
        if root.continue_matching {
            return invalid("the root route cannot have continue set".into());
        }
        self.validate_route(root, "route")?;
        for (i, rule) in self.inhibit_rules.iter().enumerate() {
            for m in rule.source_matchers.iter().chain(&rule.target_matchers) {
                parse_matcher(m)?;
            }
            for re in rule.source_match_re.values().chain(rule.target_match_re.values()) {
                crowsnest_wire::Matcher::new(crowsnest_wire::MatchOp::Regex, "x", re.as_str())
                    .map_err(|e| ConfigError::Invalid(format!("inhibit_rules[{i}]: invalid regex {re:?}: {e}")))?;
            }
        }
        Ok(())
    }

    fn validate_route(&self, route: &RouteConfig, at: &str) -> Result<(), ConfigError> {
        if let Some(r) = &route.receiver
            && !self.receivers.iter().any(|x| &x.name == r)
        {
            return Err(ConfigError::Invalid(format!("{at}: undefined receiver {r:?}")));
        }
        for m in &route.matchers {
            parse_matcher(m)?;
        }
        for re in route.match_re.values() {
            crowsnest_wire::Matcher::new(crowsnest_wire::MatchOp::Regex, "x", re.as_str())
                .map_err(|e| ConfigError::Invalid(format!("{at}: invalid match_re {re:?}: {e}")))?;
        }
        if let Some(g) = &route.group_by
            && g.iter().any(|l| l == "...")
            && g.len() > 1
        {
            return Err(ConfigError::Invalid(format!("{at}: group_by '...' must be the only entry")));
        }
        for (name, d) in [("group_interval", route.group_interval), ("repeat_interval", route.repeat_interval)] {
            if d == Some(Duration::ZERO) {
                return Err(ConfigError::Invalid(format!("{at}: {name} cannot be zero")));
            }
        }
        for (i, child) in route.routes.iter().enumerate() {
            self.validate_route(child, &format!("{at}.routes[{i}]"))?;
        }
        Ok(())
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    /// The config as YAML with secrets replaced by `<secret>` (for `/api/v2/status`).
    pub fn redacted_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }
}

/// Reads a `*_file` secret, trimming the trailing newline editors add.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    std::fs::read_to_string(path)
        .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
        .map_err(|e| format!("reading {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
