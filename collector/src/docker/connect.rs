//! Building the bollard client: the local socket by default, `DOCKER_HOST` when set, `tcp://`
//! with TLS when a certificate directory is configured (or `DOCKER_TLS_VERIFY` +
//! `DOCKER_CERT_PATH`, as the docker CLI does). bollard connects lazily and reconnects per
//! request, so a daemon restart only fails the calls made while it is down.

use std::path::PathBuf;

use bollard::{API_DEFAULT_VERSION, Docker};

use crate::config::DockerConfig;

/// Creates the client (no network traffic yet).
pub fn connect(cfg: &DockerConfig) -> Result<Docker, bollard::errors::Error> {
    let host = cfg
        .host
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
    let secs = cfg.timeout.as_secs().max(1);
    let cert_dir: Option<PathBuf> = cfg.tls_cert_path.clone().or_else(|| {
        std::env::var("DOCKER_TLS_VERIFY").ok().filter(|v| !v.is_empty() && v != "0")?;
        Some(
            std::env::var("DOCKER_CERT_PATH")
                .ok()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".docker")),
        )
    });
    if host.starts_with("unix://") || host.starts_with('/') {
        let path = host.strip_prefix("unix://").unwrap_or(&host);
        return Docker::connect_with_unix(path, secs, API_DEFAULT_VERSION);
    }
    if host.starts_with("tcp://") || host.starts_with("http://") || host.starts_with("https://") {
        if let Some(dir) = cert_dir {
            return Docker::connect_with_ssl(
                &host,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                secs,
                API_DEFAULT_VERSION,
            );
        }
        return Docker::connect_with_http(&host, secs, API_DEFAULT_VERSION);
    }
    Docker::connect_with_host(&host)
}
