//! The notification half of the alerter: an Alertmanager-compatible pipeline (alert store,
//! routing tree, aggregation groups, inhibition, silences, notification log, Slack and e-mail
//! delivery with retries) and Alertmanager's API v2. Follows Alertmanager's architecture
//! (<https://github.com/prometheus/alertmanager/blob/main/doc/arch.svg>).

pub mod amconfig;
pub mod inhibit;
pub mod matchers;
pub mod nflog;
pub mod route;
pub mod silence;
pub mod store;
pub mod template;
pub mod types;

use thiserror::Error;

/// Errors of the notification pipeline and its API.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("config: {0}")]
    Config(#[from] amconfig::ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("{0}")]
    Template(#[from] template::TemplateError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("internal: {0}")]
    Internal(String),
}
