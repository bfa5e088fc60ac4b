//! Subqueries (`expr[range:step]`) and the common access to range arguments (range selectors or
//! subqueries) used by the `*_over_time`, `rate`… functions. Follows Prometheus'
//! `promql/engine.go` (`case *parser.SubqueryExpr`): the inner expression is evaluated at the
//! step-aligned timestamps (multiples of the step since the epoch) after `start - offset - range`.

use crowsnest_wire::Labels;
use promql_parser::parser::{Expr, SubqueryExpr};

use super::selector::{RangeWindows, window};
use super::{Evaluator, dur_ms, offset_ms};
use crate::engine::QueryError;
use crate::value::{FPoint, Grid, Series, Value};

impl Evaluator<'_, '_> {
    /// Evaluates the inner expression of a subquery over the grid all outer steps need.
    fn eval_subquery_inner(&self, sq: &SubqueryExpr) -> Result<(Vec<Series>, RangeWindows), QueryError> {
        let at = self.at_ms(&sq.at);
        let offset = offset_ms(&sq.offset);
        let range = dur_ms(&sq.range);
        let step = sq.step.as_ref().map(dur_ms).filter(|s| *s > 0).unwrap_or(self.sh.opts.subquery_step_ms.max(1));
        let (lo, hi) = match at {
            Some(a) => (a - offset, a - offset),
            None => (self.grid.start - offset, self.grid.end - offset),
        };
        let first = lo - range;
        let mut start = first.div_euclid(step) * step;
        if start <= first {
            start += step;
        }
        let windows = RangeWindows { at, offset, range };
        if start > hi {
            return Ok((Vec::new(), windows));
        }
        // Every inner series holds one point per inner step: a grid longer than the sample limit
        // can never fit, and refusing it up front avoids allocating it (`vector(1)[30d:10ms]`).
        let steps = ((hi - start) / step + 1) as usize;
        if steps > self.sh.opts.max_samples {
            return Err(QueryError::Execution(super::TOO_MANY_SAMPLES.into()));
        }
        self.sh.check()?;
        let inner = self.with_grid(Grid { start, end: hi, step });
        let series = match inner.eval(&sq.expr)? {
            Value::Vector(v) => v,
            Value::Scalar(v) => {
                let points = v.iter().enumerate().map(|(i, x)| FPoint { t: inner.grid.ts(i), v: *x }).collect();
                vec![Series { labels: Labels::default(), points, drop_name: false }]
            }
            _ => return Err(QueryError::BadData("subquery is only allowed on instant vector".into())),
        };
        Ok((series, windows))
    }

    /// A subquery as a value (an instant query of `expr[5m:1m]`): the points in the window of
    /// the grid's last step.
    pub fn eval_subquery_matrix(&self, sq: &SubqueryExpr) -> Result<Vec<Series>, QueryError> {
        let (series, w) = self.eval_subquery_inner(sq)?;
        let (lo, hi) = w.bounds(self.grid.end);
        Ok(series
            .into_iter()
            .filter_map(|s| {
                let points: Vec<FPoint> = window(&s.points, lo, hi).copied().collect();
                (!points.is_empty()).then_some(Series { labels: s.labels, points, drop_name: s.drop_name })
            })
            .collect())
    }

    /// Streams every series of a range argument (range selector or subquery, possibly in
    /// parentheses) as `(labels, drop_name, samples)` and says how its windows sit.
    pub fn for_each_range_input(
        &self,
        e: &Expr,
        f: &mut dyn FnMut(Labels, bool, Vec<FPoint>) -> Result<(), QueryError>,
    ) -> Result<RangeWindows, QueryError> {
        match e {
            Expr::Paren(p) => self.for_each_range_input(&p.expr, f),
            Expr::MatrixSelector(ms) => self.for_each_range_series(ms, &mut |l, pts| f(l, false, pts)),
            Expr::Subquery(sq) => {
                let (series, w) = self.eval_subquery_inner(sq)?;
                for s in series {
                    self.sh.check()?;
                    f(s.labels, s.drop_name, s.points)?;
                }
                Ok(w)
            }
            _ => Err(QueryError::BadData("expected type range vector in call to function".into())),
        }
    }
}
