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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole stack in one process: store, collector (local Docker) and alerter.
    Up(ServerArgs),
    /// Run the time-series store alone (remote_write in, Prometheus query API out).
    Store(ServerArgs),
    /// Exit 0 if URL answers 2xx within the timeout, else 1 with a reason (Docker HEALTHCHECK).
    Healthcheck {
        /// e.g. http://127.0.0.1:9300/ready
        url: String,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
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
