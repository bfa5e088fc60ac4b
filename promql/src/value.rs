//! The values PromQL expressions evaluate to while a query runs: scalars (one float per step),
//! strings, instant vectors over the evaluation steps and range vectors (raw samples). Mirrors
//! the value types of Prometheus' `promql/value.go`; an instant query is a range evaluation with
//! one step, like Prometheus' own engine.

use std::collections::HashMap;

use crowsnest_wire::Labels;

use crate::engine::QueryError;

/// One float sample of a series (timestamp in ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FPoint {
    pub t: i64,
    pub v: f64,
}

/// A labelled series: for instant vectors one point per evaluation step at which the series has
/// a value; for range vectors the raw samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<FPoint>,
    /// Delayed `__name__` removal (Prometheus 3): the name is dropped when the query finishes, so
    /// that `label_replace` can still read it.
    pub drop_name: bool,
}

/// A PromQL value over all evaluation steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One value per step (index = step number).
    Scalar(Vec<f64>),
    String(String),
    /// An instant vector at every step.
    Vector(Vec<Series>),
    /// A range vector (only valid as a function argument or the result of an instant query).
    Matrix(Vec<Series>),
}

impl Value {
    /// Number of points held, for the max-samples accounting.
    pub fn sample_count(&self) -> usize {
        match self {
            Value::Scalar(v) => v.len(),
            Value::String(_) => 1,
            Value::Vector(s) | Value::Matrix(s) => s.iter().map(|s| s.points.len()).sum(),
        }
    }
}

/// The evaluation grid: `start`, `start+step`, …, `end` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Step index of a timestamp on the grid.
    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.ts(i))
    }
}

/// One element of an instant vector at one step: which input series, and its value.
#[derive(Debug, Clone, Copy)]
pub struct StepSample {
    pub series: usize,
    pub v: f64,
}

/// Walks a vector's series step by step, yielding the samples present at each step.
pub struct StepCursor<'a> {
    series: &'a [Series],
    pos: Vec<usize>,
}

impl<'a> StepCursor<'a> {
    pub fn new(series: &'a [Series]) -> Self {
        StepCursor { series, pos: vec![0; series.len()] }
    }

    /// The samples at timestamp `t`; calls must come with increasing `t`.
    pub fn at(&mut self, t: i64, out: &mut Vec<StepSample>) {
        out.clear();
        for (i, s) in self.series.iter().enumerate() {
            let p = &mut self.pos[i];
            while *p < s.points.len() && s.points[*p].t < t {
                *p += 1;
            }
            if *p < s.points.len() && s.points[*p].t == t {
                out.push(StepSample { series: i, v: s.points[*p].v });
            }
        }
    }
}

/// Maps label sets to dense ids (signatures, group keys) so per-step work hashes integers.
pub fn intern(keys: impl IntoIterator<Item = Labels>) -> (Vec<usize>, Vec<Labels>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut uniq = Vec::new();
    let ids = keys
        .into_iter()
        .map(|k| {
            *index.entry(k).or_insert_with_key(|k| {
                uniq.push(k.clone());
                uniq.len() - 1
            })
        })
        .collect();
    (ids, uniq)
}

/// Collects output samples step by step into series keyed by label set.
#[derive(Default)]
pub struct SeriesBuilder {
    index: HashMap<(Labels, bool), usize>,
    pub series: Vec<Series>,
}

impl SeriesBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one point; two points for the same series at the same step is the Prometheus error
    /// "vector cannot contain metrics with the same labelset".
    pub fn push(&mut self, labels: Labels, drop_name: bool, t: i64, v: f64) -> Result<(), QueryError> {
        let slot = self.slot(labels, drop_name);
        self.push_slot(slot, t, v)
    }

    /// The output series for a label set (created on first use), for callers that cache it.
    pub fn slot(&mut self, labels: Labels, drop_name: bool) -> usize {
        let key = (labels, drop_name);
        match self.index.get(&key) {
            Some(i) => *i,
            None => {
                let i = self.series.len();
                self.series.push(Series { labels: key.0.clone(), points: Vec::new(), drop_name });
                self.index.insert(key, i);
                i
            }
        }
    }

    /// Adds one point to a series obtained from [`SeriesBuilder::slot`].
    pub fn push_slot(&mut self, slot: usize, t: i64, v: f64) -> Result<(), QueryError> {
        let pts = &mut self.series[slot].points;
        if pts.last().is_some_and(|p| p.t == t) {
            return Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()));
        }
        pts.push(FPoint { t, v });
        Ok(())
    }

    pub fn finish(self) -> Vec<Series> {
        self.series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_and_cursor() {
        let g = Grid { start: 0, end: 20, step: 10 };
        assert_eq!(g.iter().collect::<Vec<_>>(), vec![0, 10, 20]);
        let s = vec![Series { labels: Labels::default(), points: vec![FPoint { t: 10, v: 1.0 }], drop_name: false }];
        let mut c = StepCursor::new(&s);
        let mut out = Vec::new();
        c.at(0, &mut out);
        assert!(out.is_empty());
        c.at(10, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn builder_rejects_duplicates() {
        let mut b = SeriesBuilder::new();
        b.push(Labels::default(), false, 0, 1.0).unwrap();
        assert!(b.push(Labels::default(), false, 0, 2.0).is_err());
        b.push(Labels::default(), false, 10, 2.0).unwrap();
        assert_eq!(b.finish()[0].points.len(), 2);
    }
}
