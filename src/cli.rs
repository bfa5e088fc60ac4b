//! Command-line arguments. Flags override the config file; env vars override defaults of flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "crowsnest", version, about = "Monitoring and metrics for Docker hosts: collector, store, alerter.")]
pub struct Cli {
    /// Log level or filter (`info`, `debug`, `crowsnest_store=debug`); RUST_LOG wins.
    #[arg(long, global = true, env = "CROWSNEST_LOG", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, global = true, env = "CROWSNEST_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by the server commands.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// The YAML config file (all keys optional).
    #[arg(long, short = 'c', env = "CROWSNEST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder (overrides `data_dir`).
    #[arg(long, env = "CROWSNEST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides `listen`).
    #[arg(long, env = "CROWSNEST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain: serve HTTPS (overrides `web.tls.cert_file`; needs --tls-key-file).
    #[arg(long, env = "CROWSNEST_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file (overrides `web.tls.key_file`).
    #[arg(long, env = "CROWSNEST_TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle for client certificates (overrides `web.tls.client_ca_file`).
    #[arg(long, env = "CROWSNEST_TLS_CLIENT_CA_FILE", value_name = "FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
}

/// Flags of the commands that evaluate rules.
#[derive(Debug, Args, Clone, Default)]
pub struct RuleArgs {
    /// A Prometheus rule file or glob; repeatable. Added to `alerter.rule_files`.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<String>,
    /// An Alertmanager-format routing/receivers YAML (overrides `alerter.alertmanager_config`).
    #[arg(long, value_name = "FILE")]
    pub alertmanager_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole stack in one process: store, collector (local Docker) and alerter.
    Up {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Run the time-series store alone (remote_write in, Prometheus query API out).
    Store(ServerArgs),
    /// Run the collector alone (per host): Docker, probes and scrapes, shipped by remote_write.
    Collector(ServerArgs),
    /// Run the alerter alone against any Prometheus-compatible query API.
    Alerter {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Backfill a Prometheus text / OpenMetrics file into a data dir or a running store.
    Import(crate::import::ImportArgs),
    /// Check rule files like `promtool check rules` (file:line: message for each problem).
    CheckRules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run rule unit tests in promtool's format (`rule_files`, `tests`, `alert_rule_test`, ...).
    TestRules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Exit 0 if URL answers 2xx within the timeout, else 1 with a reason (Docker HEALTHCHECK).
    Healthcheck {
        /// e.g. http://127.0.0.1:9300/ready
        url: String,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        /// PEM CA bundle to verify an https URL's certificate with (default: system roots).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Accept any certificate of an https URL (self-signed certificates in HEALTHCHECKs).
        #[arg(long)]
        insecure: bool,
    },
    /// Load generator and query-latency benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}
