//! Runs the parsed command: builds the components from the config, serves them on one listener,
//! and shuts down gracefully on SIGINT/SIGTERM (flushing what the store holds).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crowsnest_alerter::service::Alerter;
use crowsnest_store::service::StoreService;
use crowsnest_wire::ops::{self, Readiness, SharedRegistry};
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, RuleArgs, ServerArgs};
use crate::config::Config;
use crate::reload::{self, Reloader};
use crate::{healthcheck, shipped};

/// Default listener of `crowsnest collector` (the store's 9300 is usually taken on the same host).
const COLLECTOR_LISTEN: &str = "127.0.0.1:9301";

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up { server, rules } => runtime()?.block_on(up(server, rules)).map(|_| ExitCode::SUCCESS),
        Command::Store(args) => runtime()?.block_on(store(args)).map(|_| ExitCode::SUCCESS),
        Command::Collector(args) => runtime()?.block_on(collector(args)).map(|_| ExitCode::SUCCESS),
        Command::Alerter { server, rules } => runtime()?.block_on(alerter(server, rules)).map(|_| ExitCode::SUCCESS),
        Command::Import(args) => crate::import::run(args).map(|_| ExitCode::SUCCESS),
        Command::CheckRules { files } => {
            let problems = crowsnest_alerter::rules::check_files(&files);
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                for f in &files {
                    println!("{}: SUCCESS", f.display());
                }
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{} problem(s) found", problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::TestRules { files } => {
            let report = crowsnest_alerter::unittest::run_files(&files);
            print!("{report}");
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
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
            print!("{}", crate::config::redacted_yaml(&cfg)?);
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

/// Applies `--rules` / `--alertmanager-config` and the shipped rule pack.
fn apply_rule_args(cfg: &mut Config, rules: RuleArgs) -> anyhow::Result<()> {
    cfg.alerter.rule_files.extend(rules.rules);
    if let Some(am) = rules.alertmanager_config {
        cfg.alerter.alertmanager_config = Some(am);
    }
    if cfg.shipped_rules {
        let path = shipped::write_rule_pack(&cfg.data_dir).context("writing the shipped rule pack")?;
        cfg.alerter.rule_files.insert(0, path.to_string_lossy().into_owned());
    }
    cfg.alerter.validate()?;
    Ok(())
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

/// Serves `app` on `addr` until `shutdown` fires.
async fn serve(addr: SocketAddr, app: axum::Router, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    tracing::info!(listen = %listener.local_addr()?, "Serving.");
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server")
}

/// Opens the store (WAL replay happens here, before the listener answers).
async fn open_store(cfg: &Config, registry: &SharedRegistry) -> anyhow::Result<StoreService> {
    let store_cfg = cfg.store.clone();
    let reg = registry.clone();
    Ok(tokio::task::spawn_blocking(move || StoreService::open(store_cfg, &reg)).await??)
}

async fn store(args: ServerArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&args)?;
    // `crowsnest store --data-dir DIR` keeps the store's files directly in DIR.
    cfg.store.data_dir = cfg.data_dir.clone();
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let service = open_store(&cfg, &registry).await?;
    let reloader = Reloader::new(
        Box::new(move || {
            let mut cfg = load_config(&args)?;
            cfg.store.data_dir = cfg.data_dir.clone();
            Ok(cfg)
        }),
        Some(service.reload_handle()),
        None,
        &registry,
    );
    reload::reload_on_sighup(reloader.clone(), shutdown.clone());
    ready.set(true);
    // Admin group (TSDB admin API, reload): its own routers so access control can wrap them.
    let admin = service.admin_router().merge(reload::router(reloader));
    let app = service.router().merge(admin).merge(ops::router(registry, ready.clone()));
    let result = serve(cfg.listen, app, shutdown).await;
    ready.set(false);
    service.shutdown().await;
    result
}

async fn collector(args: ServerArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&args)?;
    let default_queue = crowsnest_collector::config::CollectorConfig::default().queue.dir;
    if cfg.collector.queue.dir == default_queue {
        cfg.collector.queue.dir = cfg.data_dir.join("collector-queue");
    }
    let listen = match args.listen {
        Some(l) => l,
        None if cfg.listen == Config::default().listen => COLLECTOR_LISTEN.parse()?,
        None => cfg.listen,
    };
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let app = ops::router(registry.clone(), ready.clone());
    let server = tokio::spawn(serve(listen, app, shutdown.clone()));
    let result = crowsnest_collector::run(cfg.collector, registry, ready, shutdown.clone()).await;
    shutdown.cancel();
    server.await??;
    result.map_err(Into::into)
}

async fn alerter(server: ServerArgs, rules: RuleArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&server)?;
    cfg.wire_alerter_defaults();
    apply_rule_args(&mut cfg, rules.clone())?;
    let listen = server.listen.unwrap_or(cfg.listen);
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let alerter = Arc::new(Alerter::start(cfg.alerter.clone(), &registry, shutdown.clone()).await?);
    let reloader = Reloader::new(
        Box::new(move || {
            let mut cfg = load_config(&server)?;
            cfg.wire_alerter_defaults();
            apply_rule_args(&mut cfg, rules.clone())?;
            Ok(cfg)
        }),
        None,
        Some(alerter.clone()),
        &registry,
    );
    reload::reload_on_sighup(reloader.clone(), shutdown.clone());
    ready.set(true);
    let app = alerter.router().merge(reload::router(reloader)).merge(ops::router(registry, ready.clone()));
    let result = serve(listen, app, shutdown.clone()).await;
    shutdown.cancel();
    ready.set(false);
    alerter.stopped().await;
    result
}

async fn up(server: ServerArgs, rules: RuleArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&server)?;
    cfg.wire_up_defaults();
    apply_rule_args(&mut cfg, rules.clone())?;
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let service = open_store(&cfg, &registry).await?;
    // Bind before starting the collector and alerter: they talk to this listener.
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("listening on {}", cfg.listen))?;
    let alerter = Arc::new(Alerter::start(cfg.alerter.clone(), &registry, shutdown.clone()).await?);
    let reloader = Reloader::new(
        Box::new(move || {
            let mut cfg = load_config(&server)?;
            cfg.wire_up_defaults();
            apply_rule_args(&mut cfg, rules.clone())?;
            Ok(cfg)
        }),
        Some(service.reload_handle()),
        Some(alerter.clone()),
        &registry,
    );
    reload::reload_on_sighup(reloader.clone(), shutdown.clone());
    // Admin group (TSDB admin API, reload): its own routers so access control can wrap them.
    let admin = service.admin_router().merge(reload::router(reloader));
    let app = service.router().merge(admin).merge(alerter.router()).merge(ops::router(registry.clone(), ready.clone()));
    tracing::info!(listen = %listener.local_addr()?, data_dir = %cfg.data_dir.display(), "Crowsnest is up.");
    let server_stop = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(async move { server_stop.cancelled().await })
            .await
    });
    let collector_ready = Readiness::new(false);
    let collector_run =
        crowsnest_collector::run(cfg.collector.clone(), registry.clone(), collector_ready, shutdown.clone());
    let collector = tokio::spawn(async move {
        // The store and alerter keep serving if the collector cannot start (e.g. a bad target).
        if let Err(e) = collector_run.await {
            tracing::error!(error = %e, "Collector stopped with an error.");
        }
    });
    ready.set(true);
    shutdown.cancelled().await;
    ready.set(false);
    let _ = collector.await;
    alerter.stopped().await;
    let http_result = http.await;
    service.shutdown().await;
    http_result?.context("HTTP server")
}
