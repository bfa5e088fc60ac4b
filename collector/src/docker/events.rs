//! The Docker event stream (`GET /events?filters={"type":["container"]}`): counts container
//! events per container and action for `container_events_total{action}`, and wakes the collection
//! loop on state changes so a dead or removed container is seen at once rather than at the next
//! interval. `health_status: healthy` and friends count as `health_status`; exec events (every
//! healthcheck probe makes some) are ignored. The stream is reconnected with backoff and `since` = one nanosecond after the last
//! event seen, as `seconds.nanoseconds` (the daemon keeps only its last 256 events, so the next full list is the real resync).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::CollectorMetrics;
use crate::remote_write::Backoff;

/// Actions counted, each exported (also at 0) for every container.
pub const ACTIONS: [&str; 9] = ["start", "die", "oom", "kill", "stop", "restart", "health_status", "pause", "unpause"];
/// Actions after which the collection loop runs at once.
const WAKE_ON: [&str; 5] = ["start", "die", "destroy", "health_status", "oom"];

/// Event counts per container id and action; shared with the collection loop.
#[derive(Clone, Default)]
pub struct EventCounts {
    inner: Arc<Mutex<HashMap<String, HashMap<&'static str, u64>>>>,
    /// Exit code of the last `die` per container (its `exitCode` attribute): the inspect body
    /// resets `ExitCode` to 0 when a restart policy starts the container again.
    exits: Arc<Mutex<HashMap<String, i64>>>,
    /// Notified on state-changing events.
    pub wake: Arc<Notify>,
}

/// Maps an event action to the counted action, if it is one.
pub fn normalize_action(action: &str) -> Option<&'static str> {
    let base = action.split(':').next().unwrap_or("").trim();
    ACTIONS.iter().copied().chain(std::iter::once("destroy")).find(|a| *a == base)
}

impl EventCounts {
    /// Records one event; returns whether the collection loop should run now.
    pub fn record(&self, id: &str, action: &str) -> bool {
        let Some(a) = normalize_action(action) else { return false };
        if a == "destroy" {
            self.inner.lock().remove(id);
            self.exits.lock().remove(id);
        } else {
            *self.inner.lock().entry(id.to_string()).or_default().entry(a).or_default() += 1;
        }
        WAKE_ON.contains(&a)
    }

    /// Records the exit code of a `die` event.
    pub fn record_exit(&self, id: &str, code: i64) {
        self.exits.lock().insert(id.to_string(), code);
    }

    /// Exit code of the last `die` seen for a container.
    pub fn last_exit(&self, id: &str) -> Option<i64> {
        self.exits.lock().get(id).copied()
    }

    /// Counts of one container, for every action in [`ACTIONS`].
    pub fn counts(&self, id: &str) -> [(&'static str, u64); ACTIONS.len()] {
        let g = self.inner.lock();
        let m = g.get(id);
        ACTIONS.map(|a| (a, m.and_then(|m| m.get(a)).copied().unwrap_or(0)))
    }

    /// Forgets containers that are gone (their destroy event may have been missed).
    pub fn forget(&self, gone: &[String]) {
        let mut g = self.inner.lock();
        let mut e = self.exits.lock();
        for id in gone {
            g.remove(id);
            e.remove(id);
        }
    }
}

/// Follows the event stream until `shutdown`, reconnecting with backoff.
pub async fn follow_events(
    docker: Docker,
    counts: EventCounts,
    metrics: CollectorMetrics,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    // Nanoseconds of the last event seen; reconnects ask for events strictly after it.
    let mut since: Option<i64> = None;
    loop {
        let filters = HashMap::from([("type", vec!["container"])]);
        let mut opts = EventsOptionsBuilder::default().filters(&filters);
        let since_s = since.map(|n| {
            let n = n + 1;
            format!("{}.{:09}", n.div_euclid(1_000_000_000), n.rem_euclid(1_000_000_000))
        });
        if let Some(s) = since_s.as_deref() {
            opts = opts.since(s);
        }
        let mut stream = docker.events(Some(opts.build()));
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => return,
                i = stream.next() => i,
            };
            match item {
                Some(Ok(ev)) => {
                    backoff.reset();
                    metrics.docker_events.inc();
                    if let Some(t) = ev.time_nano.or(ev.time.map(|s| s * 1_000_000_000)) {
                        since = Some(t);
                    }
                    let id = ev.actor.as_ref().and_then(|a| a.id.as_deref()).unwrap_or_default();
                    let action = ev.action.as_deref().unwrap_or_default();
                    tracing::debug!(id, action, "Container event.");
                    if action == "die" {
                        let code = ev
                            .actor
                            .as_ref()
                            .and_then(|a| a.attributes.as_ref())
                            .and_then(|m| m.get("exitCode"))
                            .and_then(|c| c.parse().ok());
                        if let Some(code) = code {
                            counts.record_exit(id, code);
                        }
                    }
                    if counts.record(id, action) {
                        counts.wake.notify_one();
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Docker event stream failed; reconnecting.");
                    break;
                }
                None => {
                    tracing::info!("Docker event stream ended; reconnecting.");
                    break;
                }
            }
        }
        let delay = backoff.next_delay(None);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_normalizes() {
        let c = EventCounts::default();
        assert!(c.record("a", "die"));
        assert!(c.record("a", "health_status: unhealthy"));
        assert!(!c.record("a", "exec_start: /bin/sh -c true"));
        assert!(!c.record("a", "kill"));
        assert!(c.record("a", "start"));
        let m: HashMap<_, _> = c.counts("a").into_iter().collect();
        assert_eq!(m["die"], 1);
        assert_eq!(m["health_status"], 1);
        assert_eq!(m["kill"], 1);
        assert_eq!(m["oom"], 0);
        assert!(c.record("a", "destroy"));
        assert_eq!(c.counts("a").iter().map(|x| x.1).sum::<u64>(), 0);
        assert_eq!(normalize_action("exec_die"), None);
    }
}
