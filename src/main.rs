//! The `crowsnest` command: a thin CLI over the library crates. `up` runs the whole stack in one
//! process; `store`, `collector`, `alerter` run one piece; the rest are tools (healthcheck, import,
//! config and rule checks, benchmarks). Parsing and dispatch only: logic lives in the modules.

mod bench;
mod cli;
mod config;
mod healthcheck;
mod import;
mod reload;
mod run;
mod shipped;
mod telemetry;

use clap::Parser;

/// mimalloc instead of glibc's malloc: remote_write ingest allocates a label `String` per label per
/// series per request and frees it moments later; glibc spent ~30 % of ingest CPU in malloc/free
/// (perf profile in BENCHMARKS.md), mimalloc's thread-local free lists make that cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    telemetry::init(&args.log_level, args.log_format);
    match run::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crowsnest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
