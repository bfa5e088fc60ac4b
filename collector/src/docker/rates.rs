//! Rates computed by the collector itself from successive one-shot stats samples (one-shot stats
//! carry no `precpu_stats`): CPU cores in use and network bytes per second. A counter that went
//! down or a new `StartedAt` means the container restarted (new cgroup), so no rate is produced
//! for that interval instead of a huge negative or bogus one. Exported as
//! `crowsnest_container_cpu_usage_cores` and
//! `crowsnest_container_network_{receive,transmit}_bytes_per_second` (instant values for
//! dashboards that want them without PromQL `rate`).

use std::collections::HashMap;

/// One container's counters at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSample {
    pub at_ms: i64,
    pub started_at: String,
    pub cpu_ns: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Rates over the last interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    pub cpu_cores: Option<f64>,
    pub rx_bytes_per_sec: Option<f64>,
    pub tx_bytes_per_sec: Option<f64>,
}

/// Previous samples per container id.
#[derive(Debug, Default)]
pub struct RateTracker {
    prev: HashMap<String, CounterSample>,
}

fn per_sec(prev: u64, cur: u64, dt_s: f64) -> Option<f64> {
    (cur >= prev).then(|| (cur - prev) as f64 / dt_s)
}

impl RateTracker {
    /// Records `cur` for `id` and returns the rates since its previous sample.
    pub fn observe(&mut self, id: &str, cur: CounterSample) -> Rates {
        let rates = match self.prev.get(id) {
            Some(p) if p.started_at == cur.started_at && cur.at_ms > p.at_ms => {
                let dt = (cur.at_ms - p.at_ms) as f64 / 1000.0;
                Rates {
                    cpu_cores: match (p.cpu_ns, cur.cpu_ns) {
                        (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1e9 / dt),
                        _ => None,
                    },
                    rx_bytes_per_sec: per_sec(p.rx_bytes, cur.rx_bytes, dt),
                    tx_bytes_per_sec: per_sec(p.tx_bytes, cur.tx_bytes, dt),
                }
            }
            _ => Rates::default(),
        };
        self.prev.insert(id.to_string(), cur);
        rates
    }

    /// Forgets containers not in `alive`.
    pub fn retain(&mut self, alive: &std::collections::HashSet<String>) {
        self.prev.retain(|k, _| alive.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: i64, start: &str, cpu: u64, rx: u64) -> CounterSample {
        CounterSample { at_ms: at, started_at: start.into(), cpu_ns: Some(cpu), rx_bytes: rx, tx_bytes: rx / 2 }
    }

    #[test]
    fn computes_rates_and_handles_resets() {
        let mut t = RateTracker::default();
        assert_eq!(t.observe("a", s(0, "t0", 0, 0)), Rates::default());
        // 15 s later: 7.5 s of CPU = half a core; 1500 bytes = 100 B/s.
        let r = t.observe("a", s(15_000, "t0", 7_500_000_000, 1500));
        assert_eq!(r.cpu_cores, Some(0.5));
        assert_eq!(r.rx_bytes_per_sec, Some(100.0));
        assert_eq!(r.tx_bytes_per_sec, Some(50.0));
        // Restart: new start time, counters back near zero -> no rate this time.
        assert_eq!(t.observe("a", s(30_000, "t1", 1_000, 10)), Rates::default());
        let r = t.observe("a", s(45_000, "t1", 1_000 + 15_000_000_000, 10));
        assert_eq!(r.cpu_cores, Some(1.0));
        // A counter going down without a new start time is also not a rate.
        let r = t.observe("a", s(60_000, "t1", 5, 10));
        assert_eq!(r.cpu_cores, None);
        assert_eq!(r.rx_bytes_per_sec, Some(0.0));
        t.retain(&Default::default());
        assert!(t.prev.is_empty());
    }
}
