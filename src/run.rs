//! Runs the parsed command: builds the components from the config, serves them on one listener,
//! and shuts down gracefully on SIGINT/SIGTERM (flushing what the store holds).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crowsnest_alerter::service::Alerter;
use crowsnest_store::service::StoreService;
use crowsnest_web::{Authenticator, Group, RouteGroups, Secret};
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
        Command::Healthcheck { url, timeout, ca_file, insecure } => {
            let timeout = Duration::from_secs_f64(timeout.max(0.001));
            let tls = crowsnest_web::ClientTlsConfig { ca_file, insecure_skip_verify: insecure, ..Default::default() };
            match runtime()?.block_on(healthcheck::probe(&url, timeout, &tls)) {
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
    let tls = &mut cfg.web.tls;
    for (flag, key) in [
        (&args.tls_cert_file, &mut tls.cert_file),
        (&args.tls_key_file, &mut tls.key_file),
        (&args.tls_client_ca_file, &mut tls.client_ca_file),
    ] {
        if flag.is_some() {
            key.clone_from(flag);
        }
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

/// A listener's security, resolved from `web:` once per process.
struct Security {
    tls: Option<Arc<crowsnest_web::tls::ServerConfig>>,
    auth: Arc<Authenticator>,
}

impl Security {
    /// Reads certificates and token files; `internal` is `up`'s token for its own clients.
    fn resolve(cfg: &Config, internal: Option<&Secret>) -> anyhow::Result<Security> {
        let tls = crowsnest_web::tls::server_config(&cfg.web.tls).context("web.tls")?;
        let mut auth = Authenticator::from_config(&cfg.web.auth, |k| std::env::var(k).ok())
            .context("web.auth")?
            .require_client_cert(cfg.web.tls.client_ca_file.is_some());
        if let Some(t) = internal {
            auth = auth.with_internal_token(t);
        }
        let open: Vec<&str> = Group::ALL.iter().filter(|g| auth.is_open(**g)).map(|g| g.name()).collect();
        if !open.is_empty() && !cfg.listen.ip().is_loopback() {
            tracing::warn!(listen = %cfg.listen, open_groups = ?open, "Route groups without credentials are reachable from the network; see web.auth.");
        }
        tracing::info!(tls = tls.is_some(), client_certs = cfg.web.tls.client_ca_file.is_some(), open_groups = ?open, "Listener security.");
        Ok(Security { tls, auth: Arc::new(auth) })
    }
}

/// Binds `addr` (so callers can start clients of it right after).
async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))
}

/// Serves `routes` behind `security` on `listener` until `shutdown` fires.
async fn serve(
    listener: tokio::net::TcpListener,
    routes: RouteGroups,
    security: Security,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let scheme = if security.tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %listener.local_addr()?, scheme, "Serving.");
    crowsnest_web::serve(listener, routes.into_router(security.auth), security.tls, shutdown)
        .await
        .context("HTTP server")
}

/// The operational routes of every listener: health (open) and `/metrics` (read).
fn ops_routes(registry: SharedRegistry, ready: Readiness) -> RouteGroups {
    RouteGroups { open: ops::health_router(ready), read: ops::metrics_router(registry), ..RouteGroups::default() }
}

/// A random per-process token for `up`'s own clients (256 bits, hex).
fn internal_token() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
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
    let security = Security::resolve(&cfg, None)?;
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
    let routes = ops_routes(registry, ready.clone())
        .merge(store_routes(&service))
        .merge(RouteGroups { admin: reload::router(reloader), ..RouteGroups::default() });
    let result = serve(bind(cfg.listen).await?, routes, security, shutdown).await;
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
    let security = Security::resolve(&cfg, None)?;
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let routes = ops_routes(registry.clone(), ready.clone());
    let server = tokio::spawn(serve(bind(listen).await?, routes, security, shutdown.clone()));
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
    let security = Security::resolve(&cfg, None)?;
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
    let routes = ops_routes(registry, ready.clone())
        .merge(alerter_routes(&alerter))
        .merge(RouteGroups { admin: reload::router(reloader), ..RouteGroups::default() });
    let result = serve(bind(listen).await?, routes, security, shutdown.clone()).await;
    shutdown.cancel();
    ready.set(false);
    alerter.stopped().await;
    result
}

async fn up(server: ServerArgs, rules: RuleArgs) -> anyhow::Result<()> {
    let mut cfg = load_config(&server)?;
    let internal = internal_token();
    cfg.wire_up_defaults(&internal);
    apply_rule_args(&mut cfg, rules.clone())?;
    let security = Security::resolve(&cfg, Some(&internal))?;
    let shutdown = shutdown_signal();
    let registry = ops::new_registry();
    let ready = Readiness::new(false);
    let service = open_store(&cfg, &registry).await?;
    // Bind before starting the collector and alerter: they talk to this listener.
    let listener = bind(cfg.listen).await?;
    let alerter = Arc::new(Alerter::start(cfg.alerter.clone(), &registry, shutdown.clone()).await?);
    // A reload keeps this process' internal token: the running collector and alerter hold it.
    let internal_for_reload = internal.clone();
    let reloader = Reloader::new(
        Box::new(move || {
            let mut cfg = load_config(&server)?;
            cfg.wire_up_defaults(&internal_for_reload);
            apply_rule_args(&mut cfg, rules.clone())?;
            Ok(cfg)
        }),
        Some(service.reload_handle()),
        Some(alerter.clone()),
        &registry,
    );
    reload::reload_on_sighup(reloader.clone(), shutdown.clone());
    let routes = ops_routes(registry.clone(), ready.clone())
        .merge(store_routes(&service))
        .merge(alerter_routes(&alerter))
        .merge(RouteGroups { admin: reload::router(reloader), ..RouteGroups::default() });
    tracing::info!(listen = %listener.local_addr()?, data_dir = %cfg.data_dir.display(), "Crowsnest is up.");
    let http = tokio::spawn(serve(listener, routes, security, shutdown.clone()));
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
    http_result?
}

/// The store's routes by auth group. Admin endpoints mount into `admin`.
fn store_routes(service: &StoreService) -> RouteGroups {
    RouteGroups {
        write: service.write_router(),
        read: service.read_router(),
        admin: service.admin_router(),
        ..RouteGroups::default()
    }
}

/// The alerter's routes by auth group: rules/alerts are read, the Alertmanager API is alerting.
fn alerter_routes(alerter: &Alerter) -> RouteGroups {
    RouteGroups { read: alerter.read_router(), alerting: alerter.alerting_router(), ..RouteGroups::default() }
}
