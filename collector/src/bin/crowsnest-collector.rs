//! The lean per-host collector binary: `crowsnest-collector --config FILE --listen ADDR`.
//! It links only the wire crate and the collector (no sled, lettre or PromQL engine) and serves
//! `/metrics`, `/healthz` and `/ready` on `--listen`. `/metrics` is in the `read` auth group: a
//! token from `CROWSNEST_READ_TOKEN` or `CROWSNEST_AUTH_TOKEN` protects it, and
//! `--tls-cert-file`/`--tls-key-file` serve HTTPS (the health endpoints stay open).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use crowsnest_collector::CollectorConfig;
use crowsnest_web::{AuthConfig, Authenticator, RouteGroups, ServerTlsConfig};
use crowsnest_wire::ops;
use tokio_util::sync::CancellationToken;

/// Crowsnest per-host collector.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// YAML config file (the collector section's keys at top level). Without it, defaults.
    #[arg(long, env = "CROWSNEST_COLLECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the /metrics, /healthz and /ready endpoints.
    #[arg(long, default_value = "0.0.0.0:9301")]
    listen: SocketAddr,
    /// Only load and validate the config, then exit.
    #[arg(long)]
    check_config: bool,
    /// PEM certificate chain: serve HTTPS (with --tls-key-file).
    #[arg(long, env = "CROWSNEST_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "CROWSNEST_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let config: CollectorConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_norway::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => CollectorConfig::default(),
    };
    config.validate()?;
    if args.check_config {
        println!("config OK");
        return Ok(());
    }
    let registry = ops::new_registry();
    let ready = ops::Readiness::new(false);
    let shutdown = CancellationToken::new();
    let tls = ServerTlsConfig { cert_file: args.tls_cert_file, key_file: args.tls_key_file, client_ca_file: None };
    let tls = crowsnest_web::tls::server_config(&tls)?;
    let auth = Authenticator::from_config(&AuthConfig::default(), |k| std::env::var(k).ok())?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let app = RouteGroups {
        open: ops::health_router(ready.clone()),
        read: ops::metrics_router(registry.clone()),
        ..RouteGroups::default()
    }
    .into_router(Arc::new(auth));
    let server = tokio::spawn(crowsnest_web::serve(listener, app, tls, shutdown.clone()));
    let signal_stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutdown signal received.");
        signal_stop.cancel();
    });
    let result = crowsnest_collector::run(config, registry, ready, shutdown.clone()).await;
    shutdown.cancel();
    server.await??;
    result.map_err(Into::into)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
