//! Moves collected batches through the disk queue to the remote_write receiver. Producers call
//! [`Outbox::push`], which splits a batch into requests of at most `max_samples_per_send` samples,
//! encodes them and appends them to the queue (synced to disk before it returns). One
//! [`run_shipper`] task sends the oldest record, acknowledges it on success or on a permanent
//! rejection (counted), and otherwise backs off and retries the same record, so order is kept
//! and an outage only delays delivery.

use std::sync::Arc;

use crowsnest_wire::WriteRequest;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::RemoteWriteConfig;
use crate::metrics::CollectorMetrics;
use crate::queue::DiskQueue;
use crate::remote_write::{Backoff, RemoteWriteClient, SendOutcome};
use crate::series::Batch;

/// The producers' side of the queue; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    queue: Arc<Mutex<DiskQueue>>,
    notify: Arc<Notify>,
    metrics: CollectorMetrics,
    max_samples: usize,
}

impl Outbox {
    pub fn new(queue: DiskQueue, metrics: CollectorMetrics, max_samples: usize) -> Self {
        let o = Outbox {
            queue: Arc::new(Mutex::new(queue)),
            notify: Arc::new(Notify::new()),
            metrics,
            max_samples: max_samples.max(1),
        };
        o.update_gauges();
        o
    }

    /// Encodes `batch` into write requests and appends them to the disk queue.
    pub async fn push(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let mut bodies: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut cur = WriteRequest::default();
        let mut n = 0usize;
        for ts in batch.series {
            let k = ts.samples.len();
            if n > 0 && n + k > self.max_samples {
                bodies.push((std::mem::take(&mut cur).encode_snappy(), n as u32));
                n = 0;
            }
            n += k;
            cur.timeseries.push(ts);
        }
        if n > 0 {
            bodies.push((cur.encode_snappy(), n as u32));
        }
        let queue = self.queue.clone();
        let res = tokio::task::spawn_blocking(move || {
            let mut q = queue.lock();
            let mut dropped = 0u64;
            let mut failed = 0u64;
            for (body, samples) in bodies {
                match q.append(&body, samples) {
                    Ok(d) => dropped += d,
                    Err(e) => {
                        tracing::error!(error = %e, "Appending to the collector queue failed; samples dropped.");
                        failed += samples as u64;
                    }
                }
            }
            (dropped, failed)
        })
        .await;
        match res {
            Ok((dropped, failed)) => {
                if dropped > 0 {
                    tracing::warn!(samples = dropped, "Collector queue full; dropped its oldest samples.");
                }
                self.metrics.dropped("queue_full", dropped);
                self.metrics.dropped("queue_error", failed);
            }
            Err(e) => tracing::error!(error = %e, "Queue append task failed."),
        }
        self.update_gauges();
        self.notify.notify_one();
    }

    fn update_gauges(&self) {
        let q = self.queue.lock();
        self.metrics.queue_records.set(q.pending_records() as i64);
        self.metrics.queue_samples.set(q.pending_samples() as i64);
        self.metrics.queue_bytes.set(q.total_bytes() as i64);
    }

    /// Samples waiting in the queue.
    pub fn pending_samples(&self) -> u64 {
        self.queue.lock().pending_samples()
    }

    /// Test helper: takes every queued request off the queue, oldest first.
    #[cfg(test)]
    pub(crate) fn drain_requests(&self) -> Vec<WriteRequest> {
        let mut q = self.queue.lock();
        let mut out = Vec::new();
        while let Ok(Some(r)) = q.peek() {
            if let Ok(w) = WriteRequest::decode_snappy(&r.payload, 1 << 26) {
                out.push(w);
            }
            if q.ack(r.pos).is_err() {
                break;
            }
        }
        out
    }
}

/// Sends queued records until `shutdown`. Records stay on disk when it stops.
pub async fn run_shipper(
    outbox: Outbox,
    cfg: RemoteWriteConfig,
    client: RemoteWriteClient,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(cfg.min_backoff, cfg.max_backoff);
    let m = outbox.metrics.clone();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let q = outbox.queue.clone();
        let rec = match tokio::task::spawn_blocking(move || q.lock().peek()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Reading the collector queue failed.");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "Queue read task failed.");
                None
            }
        };
        let Some(rec) = rec else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = outbox.notify.notified() => {},
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {},
            }
            continue;
        };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            o = client.send(rec.payload) => o,
        };
        let ack = match outcome {
            SendOutcome::Delivered => {
                m.request("success");
                m.samples_sent.inc_by(rec.samples as u64);
                backoff.reset();
                true
            }
            SendOutcome::Rejected { status } => {
                m.request("rejected_4xx");
                m.dropped("rejected", rec.samples as u64);
                tracing::warn!(status, samples = rec.samples, "Dropped a write request the receiver rejected.");
                true
            }
            SendOutcome::Retry { result, after } => {
                m.request(result);
                m.samples_failed.inc_by(rec.samples as u64);
                let delay = backoff.next_delay(after);
                tracing::debug!(result, delay_ms = delay.as_millis() as u64, "remote_write failed; retrying.");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {},
                }
                false
            }
        };
        if ack {
            let q = outbox.queue.clone();
            let pos = rec.pos;
            match tokio::task::spawn_blocking(move || q.lock().ack(pos)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "Acknowledging a queue record failed."),
                Err(e) => tracing::error!(error = %e, "Queue ack task failed."),
            }
            outbox.update_gauges();
        }
    }
}

#[cfg(test)]
mod tests;
