//! `crowsnest bench ...`: the load generator and query-latency harness behind BENCHMARKS.md.
//! `bench/compare.sh` drives them against Crowsnest, Prometheus and VictoriaMetrics in one run.

pub mod ingest;
pub mod procstat;
pub mod query;
pub mod soak;
pub mod workload;

/// `crowsnest bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Pre-encode a realistic remote_write workload into a folder.
    Generate(ingest::GenerateArgs),
    /// Send a generated workload to a remote_write URL and measure throughput, CPU and memory.
    Ingest(ingest::IngestArgs),
    /// Measure dashboard query latency against a Prometheus-compatible API.
    Query(query::QueryArgs),
    /// Sustained remote_write at a fixed rate with concurrent dashboard queries; samples the
    /// server's RSS and checks at the end that no acknowledged sample is missing.
    Soak(soak::SoakArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Generate(a) => {
            let m = ingest::generate(&a)?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
        BenchCommand::Ingest(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            let r = rt.block_on(ingest::ingest(&a))?;
            if r.failed_requests > 0 {
                anyhow::bail!("{} requests failed", r.failed_requests);
            }
        }
        BenchCommand::Query(a) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(query::run(&a))?;
        }
        BenchCommand::Soak(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let r = rt.block_on(soak::run(a))?;
            if r.samples_lost != 0 || r.write_requests_failed > 0 {
                anyhow::bail!(
                    "{} acknowledged samples missing, {} write requests given up",
                    r.samples_lost,
                    r.write_requests_failed
                );
            }
        }
    }
    Ok(())
}
