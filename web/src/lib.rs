//! Crowsnest's security layer, shared by every listener and outgoing HTTP client of the workspace
//! (the store, the alerter, the collector and the `crowsnest` binary), kept out of `crowsnest-wire`
//! so the wire types stay free of TLS and crypto dependencies.
//!
//! - [`config`]: the `web:` section (listener TLS, per-group auth) and [`config::HttpClientConfig`].
//! - [`auth`]: route groups ([`auth::RouteGroups`]), the [`auth::Authenticator`] middleware.
//! - [`tls`]: rustls server/client configs (ring provider), certificate pinning.
//! - [`serve()`]: HTTP or HTTPS serving with graceful shutdown.
//! - [`client`]: reqwest clients with configured auth and TLS.
//! - [`secret`]: [`Secret`], the string that prints as `<secret>`.

pub mod auth;
pub mod client;
pub mod config;
pub mod secret;
mod serve;
pub mod tls;

use std::path::PathBuf;

pub use auth::{Authenticator, Group, RouteGroups};
pub use config::{AuthConfig, ClientTlsConfig, GroupAuth, HttpClientConfig, ServerTlsConfig, WebConfig};
pub use secret::Secret;
pub use serve::{HANDSHAKE_TIMEOUT, serve};

/// Everything that can go wrong while setting up security. Messages name files and keys, never
/// the secrets in them.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    Config(String),
    #[error("reading {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client setup: {0}")]
    Client(String),
}
