//! The lean per-host collector binary: `crowsnest-collector --config FILE --listen ADDR`.
//! It links only the wire crate and the collector (no sled, lettre or PromQL engine) and serves
//! `/metrics`, `/healthz` and `/ready` on `--listen`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use crowsnest_collector::CollectorConfig;
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
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let app = ops::router(registry.clone(), ready.clone());
    let server_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { server_stop.cancelled().await }).await
    });
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
