//! Crowsnest's time-series database: remote_write ingest into compressed chunks on sled, a label
//! index, retention, and the Prometheus HTTP API in front of it.
//!
//! - [`config`]: the `store:` section of the config file, validated into settings.
//! - [`db`]: the database facade ([`Db`]) the HTTP layer and the PromQL engine talk to.
//! - [`error`]: the crate's error type.
//! - [`http`]: the Prometheus-compatible `/api/v1` (ingest, query, metadata, status).
//! - [`import`]: text exposition import shared by the HTTP endpoint and `crowsnest import`.
//! - [`service`]: [`StoreService`], the store as one runnable piece (Db + API + background tasks).

pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod import;
pub mod service;

pub use config::StoreConfig;
pub use db::Db;
pub use error::StoreError;
pub use service::StoreService;
