//! Crowsnest's per-host collector: container stats, health and lifecycle from the Docker Engine
//! (bollard), blackbox-style health probes and Prometheus/JSON scrapes of app endpoints, all
//! shipped with remote_write 1.0 through a disk-backed queue.
//!
//! [`run`] is the whole collector: `crowsnest up`, `crowsnest collector` and the lean
//! `crowsnest-collector` binary call it. The seams are standard protocols: it only knows a
//! remote_write URL.

pub mod apps;
pub mod config;
pub mod docker;
pub mod error;
pub mod metrics;
pub mod queue;
pub mod remote_write;
pub mod series;
pub mod shipper;

use crowsnest_wire::ops::{Readiness, SharedRegistry};
use tokio_util::sync::CancellationToken;

pub use config::CollectorConfig;
pub use error::CollectorError;

use crate::metrics::CollectorMetrics;
use crate::queue::DiskQueue;
use crate::remote_write::RemoteWriteClient;
use crate::shipper::{Outbox, run_shipper};

/// Runs the collector until `shutdown` is cancelled. `ready` turns true once the queue is open
/// and the loops are started. Returns an error only when it cannot start (bad config, queue
/// directory unusable); collection failures become series and counters.
pub async fn run(
    config: CollectorConfig,
    registry: SharedRegistry,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<(), CollectorError> {
    config.validate()?;
    let metrics = CollectorMetrics::register(&registry);
    let dir = config.queue.dir.clone();
    let (max, seg) = (config.queue.max_bytes, config.queue.segment_bytes);
    let (queue, report) = tokio::task::spawn_blocking(move || DiskQueue::open(&dir, max, seg))
        .await
        .map_err(|e| CollectorError::Task(e.to_string()))?
        .map_err(|source| CollectorError::Queue { path: config.queue.dir.display().to_string(), source })?;
    tracing::info!(dir = %config.queue.dir.display(), pending_samples = report.pending_samples, truncated_bytes = report.truncated_bytes, "Collector queue opened.");
    let outbox = Outbox::new(queue, metrics.clone(), config.remote_write.max_samples_per_send);
    let client = RemoteWriteClient::new(&config.remote_write)?;

    let tracker = tokio_util::task::TaskTracker::new();
    tracker.spawn(run_shipper(outbox.clone(), config.remote_write.clone(), client, shutdown.clone()));
    let config = std::sync::Arc::new(config);
    let (views_tx, views_rx) = tokio::sync::watch::channel(Vec::new());
    tracker.spawn(apps::run_apps(config.clone(), outbox.clone(), metrics.clone(), views_rx, shutdown.clone()));
    if config.docker.enabled {
        tracker.spawn(docker::run_docker(config.clone(), outbox.clone(), metrics.clone(), views_tx, shutdown.clone()));
    } else {
        drop(views_tx);
    }
    tracker.close();
    ready.set(true);
    tracing::info!(url = %config.remote_write.url, instance = %config.instance, "Collector started.");
    shutdown.cancelled().await;
    ready.set(false);
    tracker.wait().await;
    tracing::info!("Collector stopped.");
    Ok(())
}
