//! Crowsnest's time-series database: remote_write ingest into compressed chunks on sled, a label
//! index, retention, and the Prometheus HTTP API in front of it.
//!
//! - [`config`]: the `store:` section of the config file, validated into settings.
//! - [`db`]: the database facade ([`Db`]) the HTTP layer and the PromQL engine talk to.
//! - [`error`]: the crate's error type.

pub mod config;
pub mod db;
pub mod error;

pub use config::StoreConfig;
pub use db::Db;
pub use error::StoreError;
