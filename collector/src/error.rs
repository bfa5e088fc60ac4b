//! The collector's one error type. Collection errors (a failed probe, a hung stats call) are not
//! errors of the collector: they become series and counters. These are the ones that stop it.

use thiserror::Error;

/// Why the collector could not start or had to stop.
#[derive(Debug, Error)]
pub enum CollectorError {
    /// The configuration is invalid.
    #[error("invalid collector config: {0}")]
    Config(String),
    /// The disk queue could not be opened or written.
    #[error("queue {path}: {source}")]
    Queue {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(String),
    /// A background task panicked or was aborted.
    #[error("task failed: {0}")]
    Task(String),
}
