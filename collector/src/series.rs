//! Building remote_write series from collected values, and Prometheus staleness handling: when a
//! series a source wrote last cycle is missing this cycle (a container vanished, a probe's failure
//! reason changed, a scraped metric disappeared), a staleness marker is written for it so queries
//! and alerts see it gone at once instead of after the 5 minute lookback. This mirrors what
//! Prometheus' scrape loop does (`scrape/scrape.go`, staleness handling).

use std::collections::HashSet;

use crowsnest_wire::{Label, Labels, Sample, TimeSeries, stale_nan};

/// The samples of one collection cycle of one source.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub series: Vec<TimeSeries>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds one sample of metric `name` with `labels` (which must not contain `__name__`).
    pub fn push(&mut self, name: &str, labels: &[Label], ts_ms: i64, value: f64) {
        let mut v = Vec::with_capacity(labels.len() + 1);
        v.push(Label::new(crowsnest_wire::METRIC_NAME, name));
        v.extend(labels.iter().cloned());
        self.push_labels(Labels::from_vec(v), ts_ms, value);
    }

    /// Adds one sample of an already-complete label set.
    pub fn push_labels(&mut self, labels: Labels, ts_ms: i64, value: f64) {
        self.series.push(TimeSeries { labels: labels.into_vec(), samples: vec![Sample::new(ts_ms, value)] });
    }

    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn extend(&mut self, other: Batch) {
        self.series.extend(other.series);
    }
}

/// Remembers which series a source wrote last cycle, to mark the missing ones stale.
#[derive(Debug, Default)]
pub struct Staleness {
    last: HashSet<Vec<Label>>,
}

impl Staleness {
    pub fn new() -> Self {
        Staleness::default()
    }

    /// Appends staleness markers at `ts_ms` to `batch` for every series written last time but not
    /// in `batch` now, then remembers `batch`'s series for next time.
    pub fn mark(&mut self, batch: &mut Batch, ts_ms: i64) {
        let now: HashSet<Vec<Label>> = batch.series.iter().map(|s| s.labels.clone()).collect();
        let gone: Vec<Vec<Label>> = self.last.difference(&now).cloned().collect();
        for labels in gone {
            batch.series.push(TimeSeries { labels, samples: vec![Sample::new(ts_ms, stale_nan())] });
        }
        self.last = now;
    }

    /// Marks everything written last time stale (the source is going away) and forgets it.
    pub fn end(&mut self, ts_ms: i64) -> Batch {
        let mut b = Batch::new();
        for labels in self.last.drain() {
            b.series.push(TimeSeries { labels, samples: vec![Sample::new(ts_ms, stale_nan())] });
        }
        b
    }

    /// Number of series remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Sanitises a Docker label key into a Prometheus label name the way cAdvisor does
/// (`[^a-zA-Z0-9_]` → `_`, with a leading `_` when it starts with a digit).
pub fn sanitize_label_name(key: &str) -> String {
    let mut s: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_series_get_exactly_one_marker() {
        let mut st = Staleness::new();
        let mut b = Batch::new();
        b.push("m", &[Label::new("id", "a")], 1000, 1.0);
        b.push("m", &[Label::new("id", "b")], 1000, 2.0);
        st.mark(&mut b, 1000);
        assert_eq!(b.series.len(), 2);
        let mut b = Batch::new();
        b.push("m", &[Label::new("id", "a")], 2000, 1.0);
        st.mark(&mut b, 2000);
        assert_eq!(b.series.len(), 2);
        let stale: Vec<_> = b.series.iter().filter(|s| crowsnest_wire::is_stale_nan(s.samples[0].value)).collect();
        assert_eq!(stale.len(), 1);
        assert!(stale[0].labels.iter().any(|l| l.value == "b"));
        // The marker is written once, not every cycle.
        let mut b = Batch::new();
        b.push("m", &[Label::new("id", "a")], 3000, 1.0);
        st.mark(&mut b, 3000);
        assert_eq!(b.series.len(), 1);
        let end = st.end(4000);
        assert_eq!(end.series.len(), 1);
        assert!(st.is_empty());
    }

    #[test]
    fn sanitizes_like_cadvisor() {
        assert_eq!(sanitize_label_name("com.docker.compose.service"), "com_docker_compose_service");
        assert_eq!(sanitize_label_name("1x-y"), "_1x_y");
    }
}
