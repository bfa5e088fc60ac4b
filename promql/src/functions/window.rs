//! Applying a function to the sliding windows of a range argument, series by series and step by
//! step (Prometheus' `rangeEval` path for matrix-argument functions).

use promql_parser::parser::Expr;

use crate::engine::QueryError;
use crate::eval::Evaluator;
use crate::value::{FPoint, Series};

/// Where the current window sits.
#[derive(Debug, Clone, Copy)]
pub struct WindowCtx {
    /// Window `(lo, hi]` in ms.
    pub lo: i64,
    pub hi: i64,
    /// The evaluation step's timestamp.
    pub t: i64,
    pub range_ms: i64,
}

/// A function of one window: samples, where the window sits, the step index and the series.
pub type WindowFn<'f> = dyn FnMut(&[FPoint], &WindowCtx, usize, &crowsnest_wire::Labels) -> Option<f64> + 'f;

/// Evaluates `f` over every window of the range argument `arg`. `params[i][step]` are the scalar
/// arguments. Returns one output series per input series that produced any value.
pub fn over_windows(
    ev: &Evaluator<'_, '_>,
    arg: &Expr,
    keep_name: bool,
    f: &mut WindowFn<'_>,
) -> Result<Vec<Series>, QueryError> {
    let grid = ev.grid;
    let mut out = Vec::new();
    ev.for_each_range_input(arg, &mut |labels, drop_name, mut pts| {
        pts.retain(|p| !crowsnest_wire::is_stale_nan(p.v));
        let mut points = Vec::new();
        let (mut a, mut b) = (0usize, 0usize);
        for (i, t) in grid.iter().enumerate() {
            let (lo, hi) = windows_of(ev, arg, t);
            // Window bounds never move backwards from one step to the next: slide two cursors.
            while a < pts.len() && pts[a].t <= lo {
                a += 1;
            }
            while b < pts.len() && pts[b].t <= hi {
                b += 1;
            }
            if a >= b {
                continue;
            }
            let w = WindowCtx { lo, hi, t, range_ms: hi - lo };
            if let Some(v) = f(&pts[a..b], &w, i, &labels) {
                points.push(FPoint { t, v });
            }
        }
        if !points.is_empty() {
            ev.sh.add_samples(points.len())?;
            out.push(Series { labels, points, drop_name: drop_name || !keep_name });
        }
        Ok(())
    })?;
    Ok(out)
}

/// The `(lo, hi]` window of a range argument at step `t`.
pub fn windows_of(ev: &Evaluator<'_, '_>, arg: &Expr, t: i64) -> (i64, i64) {
    use crate::eval::{dur_ms, offset_ms};
    match arg {
        Expr::Paren(p) => windows_of(ev, &p.expr, t),
        Expr::MatrixSelector(ms) => {
            let hi = ev.at_ms(&ms.vs.at).unwrap_or(t) - offset_ms(&ms.vs.offset);
            (hi - dur_ms(&ms.range), hi)
        }
        Expr::Subquery(sq) => {
            let hi = ev.at_ms(&sq.at).unwrap_or(t) - offset_ms(&sq.offset);
            (hi - dur_ms(&sq.range), hi)
        }
        _ => (t, t),
    }
}
