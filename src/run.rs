//! Runs the parsed command: builds the components from the config, serves them on one listener,
//! and shuts down gracefully on SIGINT/SIGTERM (flushing what the store holds).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use crowsnest_store::service::StoreService;
use crowsnest_wire::ops::{self, Readiness};
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, ServerArgs};
use crate::config::Config;
use crate::healthcheck;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => runtime()?.block_on(up(args)).map(|_| ExitCode::SUCCESS),
        Command::Store(args) => runtime()?.block_on(store(args)).map(|_| ExitCode::SUCCESS),
        Command::Healthcheck { url, timeout } => {
            let timeout = Duration::from_secs_f64(timeout.max(0.001));
            match runtime()?.block_on(healthcheck::probe(&url, timeout)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(reason) => {
                    println!("unhealthy: {reason}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Bench(cmd) => crate::bench::run(cmd).map(|_| ExitCode::SUCCESS),
        Command::CheckConfig { file } => {
            let cfg = Config::load(Some(&file))?;
            println!("{}: OK", file.display());
            print!("{}", serde_norway::to_string(&cfg)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Loads the config file and applies flag/env overrides.
fn load_config(args: &ServerArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// A token cancelled on SIGINT or SIGTERM.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    t.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("Shutdown requested.");
        t.cancel();
    });
    token
}

/// Serves `app` on the configured address until `shutdown` fires.
async fn serve(cfg: &Config, app: axum::Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("listening on {}", cfg.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "Serving.");
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server")
}

async fn store(args: ServerArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&args)?;
    // `crowsnest store --data-dir DIR` keeps the store's files directly in DIR.
    cfg.store.data_dir = cfg.data_dir.clone();
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let store_cfg = cfg.store.clone();
    let reg = registry.clone();
    let service = tokio::task::spawn_blocking(move || StoreService::open(store_cfg, &reg)).await??;
    ready.set(true);
    let app = service.router().merge(ops::router(registry, ready.clone()));
    let result = serve(&cfg, app, shutdown).await;
    ready.set(false);
    service.shutdown().await;
    result
}

async fn up(args: ServerArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&args)?;
    cfg.store.data_dir = cfg.store_dir();
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let store_cfg = cfg.store.clone();
    let reg = registry.clone();
    let service = tokio::task::spawn_blocking(move || StoreService::open(store_cfg, &reg)).await??;
    let app = service.router().merge(ops::router(registry.clone(), ready.clone()));
    ready.set(true);
    let result = serve(&cfg, app, shutdown.clone()).await;
    shutdown.cancel();
    ready.set(false);
    service.shutdown().await;
    result
}
