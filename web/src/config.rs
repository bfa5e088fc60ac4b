//! The `web:` config section (listener TLS and per-route-group authentication, modelled on
//! Prometheus' `--web.config.file`: <https://prometheus.io/docs/prometheus/latest/configuration/https/>)
//! and [`HttpClientConfig`], the auth/TLS settings of an outgoing HTTP client (Prometheus'
//! `http_config`: `basic_auth`, `authorization`, `tls_config`). Strict serde with defaults;
//! [`WebConfig::validate`] checks what serde cannot. Secrets are [`Secret`]s from parsing on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::WebError;
use crate::secret::Secret;

/// Listener security: TLS and authentication. Everything off by default (plain HTTP, open API),
/// which is safe only because the default `listen` is 127.0.0.1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve HTTPS instead of HTTP.
    pub tls: ServerTlsConfig,
    /// Who may call which route group.
    pub auth: AuthConfig,
}

impl WebConfig {
    /// Checks pairs of TLS files and the shape of bcrypt hashes.
    pub fn validate(&self) -> Result<(), WebError> {
        self.tls.validate()?;
        self.auth.validate()
    }
}

/// Listener TLS (rustls). Certificate files are read at start; a restart picks up new ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    /// PEM certificate chain (leaf first). Setting it (with `key_file`) turns HTTPS on.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle for client certificates (mutual TLS). Requests to authenticated route groups
    /// must then come with a certificate signed by it; `/healthz` and `/ready` stay reachable
    /// without one so a Docker HEALTHCHECK needs no client key.
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTlsConfig {
    /// True when HTTPS is configured.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    fn validate(&self) -> Result<(), WebError> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) | (None, Some(_)) => {
                Err(WebError::Config("web.tls: cert_file and key_file must be set together".into()))
            }
            (None, None) if self.client_ca_file.is_some() => {
                Err(WebError::Config("web.tls: client_ca_file needs cert_file and key_file".into()))
            }
            _ => Ok(()),
        }
    }
}

/// Credentials per route group. A group with no credentials at all (its own or `all`'s) is open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Credentials accepted by every group (one token for the whole API).
    pub all: GroupAuth,
    /// `/api/v1/write`, `/api/v1/import/prometheus`.
    pub write: GroupAuth,
    /// The query API, `/api/v1/rules`, `/api/v1/alerts`, `/metrics`.
    pub read: GroupAuth,
    /// `/api/v1/admin/tsdb/*`, `/-/reload`.
    pub admin: GroupAuth,
    /// The Alertmanager API v2 (`/api/v2/*`).
    pub alerting: GroupAuth,
}

impl AuthConfig {
    fn validate(&self) -> Result<(), WebError> {
        for (name, g) in self.named() {
            g.validate(name)?;
        }
        Ok(())
    }

    /// The groups with their config names.
    pub fn named(&self) -> [(&'static str, &GroupAuth); 5] {
        [
            ("all", &self.all),
            ("write", &self.write),
            ("read", &self.read),
            ("admin", &self.admin),
            ("alerting", &self.alerting),
        ]
    }
}

/// The credentials one route group accepts; any one of them lets a request in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupAuth {
    /// Accepted `Authorization: Bearer <token>` values.
    pub bearer_tokens: Vec<Secret>,
    /// Files each holding one accepted token (read at start; a trailing newline is dropped).
    pub bearer_token_files: Vec<PathBuf>,
    /// HTTP basic-auth users and their bcrypt password hashes (`$2y$…`, e.g. from
    /// `htpasswd -nbBC 10 user pass`), like Prometheus' `basic_auth_users`.
    pub basic_auth_users: BTreeMap<String, Secret>,
}

impl GroupAuth {
    fn validate(&self, name: &str) -> Result<(), WebError> {
        if self.bearer_tokens.iter().any(Secret::is_empty) {
            return Err(WebError::Config(format!("web.auth.{name}.bearer_tokens: a token is empty")));
        }
        for (user, hash) in &self.basic_auth_users {
            if user.is_empty() || user.contains(':') {
                return Err(WebError::Config(format!(
                    "web.auth.{name}.basic_auth_users: user name {user:?} must be non-empty and without ':'"
                )));
            }
            if hash.expose().parse::<bcrypt::HashParts>().is_err() {
                return Err(WebError::Config(format!(
                    "web.auth.{name}.basic_auth_users.{user}: not a bcrypt hash (expected $2y$…)"
                )));
            }
        }
        Ok(())
    }
}

/// TLS settings of an outgoing connection. Without any of them the client uses the system's
/// trust store and verifies the host name of the URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM CA bundle to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any server certificate. Testing only: it gives up protection against impostors.
    pub insecure_skip_verify: bool,
    /// Trust exactly this certificate (DER equality), whatever its name or issuer. Not in the
    /// config file: `up` sets it so its own collector and alerter trust the listener's certificate.
    #[serde(skip)]
    pub pinned_cert_file: Option<PathBuf>,
}

impl ClientTlsConfig {
    /// True when anything differs from the default (system roots, URL host name).
    pub fn is_customised(&self) -> bool {
        self != &ClientTlsConfig::default()
    }

    pub fn validate(&self, what: &str) -> Result<(), WebError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(WebError::Config(format!("{what}.tls: cert_file and key_file must be set together")));
        }
        if let Some(n) = &self.server_name
            && rustls::pki_types::ServerName::try_from(n.as_str()).is_err()
        {
            return Err(WebError::Config(format!("{what}.tls.server_name: {n:?} is not a DNS name or IP address")));
        }
        Ok(())
    }
}

/// Auth and TLS of an outgoing HTTP client (one per destination).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpClientConfig {
    /// HTTP basic-auth user name.
    pub basic_auth_username: Option<String>,
    /// HTTP basic-auth password (with `basic_auth_username`).
    pub basic_auth_password: Option<Secret>,
    /// File holding the basic-auth password (read at start).
    pub basic_auth_password_file: Option<PathBuf>,
    /// Token sent as `Authorization: Bearer …`.
    pub bearer_token: Option<Secret>,
    /// File holding the bearer token (read at start).
    pub bearer_token_file: Option<PathBuf>,
    /// TLS of the connection (`https://` URLs).
    pub tls: ClientTlsConfig,
}

impl HttpClientConfig {
    /// Rejects contradictory settings (`what` names the config section in the message).
    pub fn validate(&self, what: &str) -> Result<(), WebError> {
        let basic = self.basic_auth_username.is_some();
        let bearer = self.bearer_token.is_some() || self.bearer_token_file.is_some();
        if basic && bearer {
            return Err(WebError::Config(format!("{what}: set basic_auth_* or bearer_token*, not both")));
        }
        if self.basic_auth_password.is_some() && self.basic_auth_password_file.is_some() {
            return Err(WebError::Config(format!(
                "{what}: set basic_auth_password or basic_auth_password_file, not both"
            )));
        }
        if !basic && (self.basic_auth_password.is_some() || self.basic_auth_password_file.is_some()) {
            return Err(WebError::Config(format!("{what}: basic_auth_password needs basic_auth_username")));
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(WebError::Config(format!("{what}: set bearer_token or bearer_token_file, not both")));
        }
        self.tls.validate(what)
    }

    /// True when no credentials are configured.
    pub fn has_no_credentials(&self) -> bool {
        self.basic_auth_username.is_none() && self.bearer_token.is_none() && self.bearer_token_file.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly_and_validates() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let y = format!(
            "tls: {{cert_file: /c.pem, key_file: /k.pem}}\nauth:\n  write:\n    bearer_tokens: [abc]\n  read:\n    basic_auth_users: {{alice: '{hash}'}}\n"
        );
        let c: WebConfig = serde_norway::from_str(&y).unwrap();
        c.validate().unwrap();
        assert!(c.tls.enabled());
        assert_eq!(c.auth.write.bearer_tokens[0].expose(), "abc");
        assert!(serde_norway::from_str::<WebConfig>("auth: {writes: {}}").is_err());

        let bad = |y: &str| serde_norway::from_str::<WebConfig>(y).unwrap().validate().is_err();
        assert!(bad("tls: {cert_file: /c.pem}"));
        assert!(bad("tls: {client_ca_file: /ca.pem}"));
        assert!(bad("auth: {read: {basic_auth_users: {bob: plaintext}}}"));
        assert!(bad("auth: {read: {bearer_tokens: ['']}}"));
        // The hash never shows in the error.
        let e = serde_norway::from_str::<WebConfig>("auth: {read: {basic_auth_users: {bob: hunter2}}}")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn client_config_rejects_contradictions() {
        let mut c = HttpClientConfig { bearer_token: Some("t".into()), ..Default::default() };
        c.validate("x").unwrap();
        c.basic_auth_username = Some("u".into());
        assert!(c.validate("x").is_err());
        let c = HttpClientConfig { basic_auth_password: Some("p".into()), ..Default::default() };
        assert!(c.validate("x").is_err());
        let mut c = HttpClientConfig::default();
        c.tls.cert_file = Some("/c".into());
        assert!(c.validate("x").is_err());
        c.tls.key_file = Some("/k".into());
        c.tls.server_name = Some("bad name!".into());
        assert!(c.validate("x").is_err());
    }
}
