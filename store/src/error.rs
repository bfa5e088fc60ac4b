//! The store's error type. HTTP status mapping happens in one place in the HTTP layer.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Limit(String),
}
