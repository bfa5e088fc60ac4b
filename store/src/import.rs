//! Importing the text exposition format (Prometheus 0.0.4 or OpenMetrics 1.0) into the store:
//! parsed samples are grouped into remote_write-shaped series batches and appended. Shared by
//! `POST /api/v1/import/prometheus` (VictoriaMetrics' endpoint of that name) and the offline
//! backfill of `crowsnest import --data-dir`. Bad lines are reported with line numbers and the good
//! ones are still imported; samples without a timestamp get "now".

use std::collections::HashMap;

use crowsnest_wire::exposition::{self, Format, LineError, ParsedSample};
use crowsnest_wire::{Labels, Sample, TimeSeries};

use crate::db::{Db, Rejection};
use crate::error::StoreError;

/// Most samples handed to one `Db::append` call, so a big import is several WAL batches.
pub const BATCH_SAMPLES: usize = 50_000;
/// How many rejections / bad lines an error message lists before summarising the rest.
pub const MAX_LISTED: usize = 5;

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportSummary {
    /// Sample lines parsed successfully.
    pub samples: u64,
    /// Distinct series among them.
    pub series: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: Vec<Rejection>,
    pub line_errors: Vec<LineError>,
    /// Answers of a remote store that refused (part of) a batch (`crowsnest import --url`).
    pub refused_batches: Vec<String>,
}

impl ImportSummary {
    /// Samples the store refused.
    pub fn rejected_samples(&self) -> u64 {
        self.rejected.iter().map(|r| r.samples).sum()
    }

    /// Adds another summary (one chunk of a large file) to this one.
    pub fn merge(&mut self, other: ImportSummary) {
        self.samples += other.samples;
        self.series += other.series;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected.extend(other.rejected);
        self.line_errors.extend(other.line_errors);
        self.refused_batches.extend(other.refused_batches);
    }

    /// Whether anything was wrong with the input.
    pub fn has_problems(&self) -> bool {
        !self.rejected.is_empty() || !self.line_errors.is_empty() || !self.refused_batches.is_empty()
    }

    /// One line for logs and the CLI: `imported 10 samples of 3 series (1 duplicate), ...`.
    pub fn summary_line(&self) -> String {
        let mut line = format!(
            "imported {} samples of {} series ({} duplicates ignored), {} samples rejected, {} bad lines",
            self.accepted,
            self.series,
            self.duplicates,
            self.rejected_samples(),
            self.line_errors.len()
        );
        if !self.refused_batches.is_empty() {
            line.push_str(&format!(", {} batches partly refused by the store", self.refused_batches.len()));
        }
        line
    }

    /// The problems, for a 400 answer or the CLI: the first few bad lines and rejections.
    pub fn problems(&self) -> String {
        let mut parts = Vec::new();
        if !self.line_errors.is_empty() {
            parts.push(format!(
                "{} bad lines: {}",
                self.line_errors.len(),
                list(self.line_errors.iter().map(ToString::to_string), self.line_errors.len())
            ));
        }
        if !self.rejected.is_empty() {
            parts.push(describe_rejections(&self.rejected));
        }
        if !self.refused_batches.is_empty() {
            parts.push(format!(
                "refused batches: {}",
                list(self.refused_batches.iter().cloned(), self.refused_batches.len())
            ));
        }
        parts.join("; ")
    }
}

fn list(items: impl Iterator<Item = String>, total: usize) -> String {
    let mut shown: Vec<String> = items.take(MAX_LISTED).collect();
    if total > MAX_LISTED {
        shown.push(format!("and {} more", total - MAX_LISTED));
    }
    shown.join(", ")
}

/// Describes refused samples for a 400 answer: the count and the first few series with reasons.
pub fn describe_rejections(rejected: &[Rejection]) -> String {
    let samples: u64 = rejected.iter().map(|r| r.samples).sum();
    let items = rejected.iter().map(|r| {
        if r.detail.is_empty() {
            format!("{} ({})", r.series, r.reason.as_str())
        } else {
            format!("{} ({}: {})", r.series, r.reason.as_str(), r.detail)
        }
    });
    format!("{samples} samples of {} series rejected: {}", rejected.len(), list(items, rejected.len()))
}

/// Groups parsed samples by series (first-seen order), timestamps ascending within a series;
/// samples without a timestamp get `default_ts`.
pub fn group_samples(samples: impl IntoIterator<Item = ParsedSample>, default_ts: i64) -> Vec<TimeSeries> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<TimeSeries> = Vec::new();
    for s in samples {
        let sample = Sample::new(s.timestamp.unwrap_or(default_ts), s.value);
        match index.get(&s.labels) {
            Some(&i) => out[i].samples.push(sample),
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(TimeSeries { labels: s.labels.into_vec(), samples: vec![sample] });
            }
        }
    }
    for ts in &mut out {
        ts.samples.sort_by_key(|s| s.timestamp);
    }
    out
}

/// Splits series into batches of about `max_samples` samples (a series is never split).
pub fn batches(series: Vec<TimeSeries>, max_samples: usize) -> Vec<Vec<TimeSeries>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut n = 0;
    for ts in series {
        n += ts.samples.len();
        cur.push(ts);
        if n >= max_samples {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses `text` and appends what parses (blocking). `line_offset` is added to reported line
/// numbers when `text` is one chunk of a larger file.
pub fn import_text(
    db: &Db,
    text: &str,
    format: Format,
    now_ms: i64,
    line_offset: usize,
) -> Result<ImportSummary, StoreError> {
    let mut parsed = exposition::parse(text, format);
    for e in &mut parsed.errors {
        e.line += line_offset;
    }
    if !parsed.metadata.is_empty() {
        db.append_metadata(parsed.metadata);
    }
    let mut summary =
        ImportSummary { samples: parsed.samples.len() as u64, line_errors: parsed.errors, ..Default::default() };
    let series = group_samples(parsed.samples, now_ms);
    summary.series = series.len() as u64;
    for batch in batches(series, BATCH_SAMPLES) {
        let outcome = db.append(batch)?;
        summary.accepted += outcome.accepted;
        summary.duplicates += outcome.duplicates;
        summary.rejected.extend(outcome.rejected);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crowsnest_promql::Storage;
    use crowsnest_wire::Matcher;

    #[test]
    fn groups_and_sorts() {
        let e = exposition::parse("a{x=\"1\"} 1 3000\nb 2 1000\na{x=\"1\"} 0 2000\nc 5\n", Format::Prometheus);
        let g = group_samples(e.samples, 9000);
        assert_eq!(g.len(), 3);
        assert_eq!(g[0].samples.iter().map(|s| s.timestamp).collect::<Vec<_>>(), vec![2000, 3000]);
        assert_eq!(g[2].samples[0].timestamp, 9000);
        let b = batches(g, 2);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].len(), 1);
    }

    #[test]
    fn imports_good_lines_and_reports_bad() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() };
        let db = Db::open(cfg, &crowsnest_wire::ops::new_registry()).unwrap();
        let text = "# TYPE m gauge\nm{a=\"1\"} 1 1000\nbroken{ 1\nm{a=\"1\"} 2 2000\nm{a=\"2\"} 3\n";
        let s = import_text(&db, text, Format::Prometheus, 5000, 10).unwrap();
        assert_eq!((s.samples, s.series, s.accepted), (3, 2, 3));
        assert_eq!(s.line_errors.len(), 1);
        assert_eq!(s.line_errors[0].line, 13);
        assert!(s.problems().starts_with("1 bad lines: line 13:"), "{}", s.problems());
        let got: Vec<_> = db.select(&[Matcher::equal("a", "2")], 0, 10_000).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].samples, vec![Sample::new(5000, 3.0)]);
        assert_eq!(db.metadata(Some("m"), None)["m"][0].kind, "gauge");
    }
}
