//! Instant and range vector selectors with `offset` and `@`, the lookback delta and staleness
//! markers. Follows Prometheus' `promql/engine.go` (`evalVectorSelector`, `matrixIterSlice`):
//! an instant selector at `t` takes the newest sample in `(t - lookback, t]` unless it is a
//! staleness marker; a range selector takes the samples in `(t - range, t]` without markers.

use crowsnest_wire::{Labels, MatchOp, Matcher, is_stale_nan};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{MatrixSelector, VectorSelector};

use super::{Evaluator, dur_ms, offset_ms};
use crate::engine::QueryError;
use crate::value::{FPoint, Series};

/// The matcher sets of a selector (one set, or several for `{a="1" or b="2"}`).
pub fn matcher_sets(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, QueryError> {
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, QueryError> {
        let mut out = Vec::new();
        if let Some(name) = &vs.name {
            out.push(Matcher::equal(crowsnest_wire::METRIC_NAME, name.clone()));
        }
        for m in ms {
            let op = match &m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::Regex,
                PMatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            out.push(
                Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::BadData(e.to_string()))?,
            );
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers.or_matchers.iter().map(|g| convert(g)).collect()
    }
}

/// Samples of a series in `(lo, hi]` without staleness markers.
pub fn window(points: &[FPoint], lo: i64, hi: i64) -> impl Iterator<Item = &FPoint> {
    let a = points.partition_point(|p| p.t <= lo);
    let b = points.partition_point(|p| p.t <= hi);
    points[a..b.max(a)].iter().filter(|p| !is_stale_nan(p.v))
}

impl<'a> Evaluator<'_, 'a> {
    /// Streams the series matching `vs` with their samples in `[mint, maxt]`.
    pub fn select_series(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        f: &mut dyn FnMut(Labels, Vec<FPoint>) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let sets = matcher_sets(vs)?;
        let mut seen = std::collections::HashSet::new();
        for set in &sets {
            for s in self.sh.storage.select(set, mint, maxt)? {
                self.sh.check()?;
                let s = s?;
                if sets.len() > 1 && !seen.insert(s.labels.clone()) {
                    continue;
                }
                let pts: Vec<FPoint> = s.samples.iter().map(|x| FPoint { t: x.timestamp, v: x.value }).collect();
                f(s.labels, pts)?;
            }
        }
        Ok(())
    }

    /// The series matching `vs` with loaders for their samples in `[mint, maxt]`, in the order
    /// [`Evaluator::select_series`] streams them (matcher sets in turn, duplicates dropped).
    pub fn select_lazy(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<crate::storage::LazySeries<'a>>, QueryError> {
        let sets = matcher_sets(vs)?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for set in &sets {
            for s in self.sh.storage.select_lazy(set, mint, maxt)? {
                if sets.len() > 1 && !seen.insert(s.labels.clone()) {
                    continue;
                }
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Time span `[min, max]` of the effective evaluation times of a selector over the grid.
    fn eval_span(&self, at: Option<i64>, offset: i64) -> (i64, i64) {
        match at {
            Some(a) => (a - offset, a - offset),
            None => (self.grid.start - offset, self.grid.end - offset),
        }
    }

    /// An instant vector selector at every step. With `ts_mode` the values are the sample
    /// timestamps in seconds (what `timestamp()` returns).
    pub fn eval_vector_selector(&self, vs: &VectorSelector, ts_mode: bool) -> Result<Vec<Series>, QueryError> {
        let at = self.at_ms(&vs.at);
        let offset = offset_ms(&vs.offset);
        let lookback = self.sh.opts.lookback_delta_ms;
        let (lo, hi) = self.eval_span(at, offset);
        let mut out = Vec::new();
        let grid = self.grid;
        self.select_series(vs, lo - lookback + 1, hi, &mut |labels, pts| {
            let mut points = Vec::new();
            let mut pos = 0usize;
            for t in grid.iter() {
                // Effective times never decrease over the steps (constant with `@`).
                let te = at.unwrap_or(t) - offset;
                while pos < pts.len() && pts[pos].t <= te {
                    pos += 1;
                }
                if pos == 0 {
                    continue;
                }
                let p = pts[pos - 1];
                if p.t <= te - lookback || is_stale_nan(p.v) {
                    continue;
                }
                points.push(FPoint { t, v: if ts_mode { p.t as f64 / 1000.0 } else { p.v } });
            }
            if !points.is_empty() {
                self.sh.add_samples(points.len())?;
                out.push(Series { labels, points, drop_name: false });
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Streams each series of a range selector with the raw samples any step can need, and the
    /// window parameters; used by the range-vector functions.
    pub fn for_each_range_series(
        &self,
        ms: &MatrixSelector,
        f: &mut dyn FnMut(Labels, Vec<FPoint>) -> Result<(), QueryError>,
    ) -> Result<RangeWindows, QueryError> {
        let vs = &ms.vs;
        let (mint, maxt) = self.range_selection(ms);
        self.select_series(vs, mint, maxt, &mut |labels, pts| {
            let n = pts.len();
            self.sh.add_samples(n)?;
            let r = f(labels, pts);
            self.sh.release_samples(n);
            r
        })?;
        Ok(RangeWindows { at: self.at_ms(&vs.at), offset: offset_ms(&vs.offset), range: dur_ms(&ms.range) })
    }

    /// `[mint, maxt]` of the samples a range selector needs over the whole grid: from the first
    /// step's window (left-open, hence `+ 1`) to the last step's end, after `offset` and `@`.
    pub fn range_selection(&self, ms: &MatrixSelector) -> (i64, i64) {
        let (lo, hi) = self.eval_span(self.at_ms(&ms.vs.at), offset_ms(&ms.vs.offset));
        (lo - dur_ms(&ms.range) + 1, hi)
    }

    /// A range selector as a value: the raw samples of the window at the grid's last step (an
    /// instant query of `x[5m]`).
    pub fn eval_matrix_selector(&self, ms: &MatrixSelector) -> Result<Vec<Series>, QueryError> {
        let mut out = Vec::new();
        let t = self.grid.end;
        let at = self.at_ms(&ms.vs.at);
        let offset = offset_ms(&ms.vs.offset);
        let range = dur_ms(&ms.range);
        let te = at.unwrap_or(t) - offset;
        self.for_each_range_series(ms, &mut |labels, pts| {
            let points: Vec<FPoint> = window(&pts, te - range, te).copied().collect();
            if !points.is_empty() {
                self.sh.add_samples(points.len())?;
                out.push(Series { labels, points, drop_name: false });
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// How the windows of a range argument sit relative to the evaluation steps.
#[derive(Debug, Clone, Copy)]
pub struct RangeWindows {
    pub at: Option<i64>,
    pub offset: i64,
    pub range: i64,
}

impl RangeWindows {
    /// The window `(lo, hi]` for evaluation step `t`.
    pub fn bounds(&self, t: i64) -> (i64, i64) {
        let hi = self.at.unwrap_or(t) - self.offset;
        (hi - self.range, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_left_open_and_skips_stale() {
        let pts: Vec<FPoint> = [(0, 1.0), (1000, crowsnest_wire::stale_nan()), (2000, 3.0), (3000, 4.0)]
            .iter()
            .map(|&(t, v)| FPoint { t, v })
            .collect();
        let got: Vec<i64> = window(&pts, 0, 3000).map(|p| p.t).collect();
        assert_eq!(got, vec![2000, 3000]);
        let w = RangeWindows { at: Some(10_000), offset: 1000, range: 5000 };
        assert_eq!(w.bounds(99_999), (4000, 9000));
    }
}
