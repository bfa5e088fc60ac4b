//! Applying a function to the sliding windows of a range argument, series by series and step by
//! step (Prometheus' `rangeEval` path for matrix-argument functions).

use promql_parser::parser::Expr;

use crate::engine::QueryError;
use crate::eval::Evaluator;
use crate::value::{FPoint, Series};

/// Fewest series of a selection worth splitting over threads.
const PAR_MIN_SERIES: usize = 8;

/// Where the current window sits.
#[derive(Debug, Clone, Copy)]
pub struct WindowCtx {
    /// Window `(lo, hi]` in ms.
    pub lo: i64,
    pub hi: i64,
    /// The evaluation step's timestamp.
    pub t: i64,
    pub range_ms: i64,
    /// Known: no value in the window is lower than the one before it (no counter reset), so
    /// `rate` and `increase` can skip their reset scan. `false` means unknown.
    pub no_drops: bool,
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
    let mut out = Vec::new();
    ev.for_each_range_input(arg, &mut |labels, drop_name, mut pts| {
        pts.retain(|p| !crowsnest_wire::is_stale_nan(p.v));
        let points = slide(ev, arg, &pts, false, &mut |s, w, i| f(s, w, i, &labels));
        out.extend(output_series(ev, labels, points, drop_name || !keep_name)?);
        Ok(())
    })?;
    Ok(out)
}

/// The output series of one input series, counted against the sample limit; `None` when no
/// window produced a value.
fn output_series(
    ev: &Evaluator<'_, '_>,
    labels: crowsnest_wire::Labels,
    points: Vec<FPoint>,
    drop_name: bool,
) -> Result<Option<Series>, QueryError> {
    if points.is_empty() {
        return Ok(None);
    }
    ev.sh.add_samples(points.len())?;
    Ok(Some(Series { labels, points, drop_name }))
}

/// A window function without side effects, so it may run on several threads.
pub type SyncWindowFn<'f> = dyn Fn(&[FPoint], &WindowCtx, usize) -> Option<f64> + Sync + 'f;

/// [`over_windows`] for a side-effect-free `f`. When the range argument is a range selector, its
/// series are read from storage and windowed on up to `parallelism` threads (each series on one
/// thread, results in the sequential order); subqueries take the sequential path.
///
/// With `count_drops`, each window tells `f` whether it holds a value drop ([`WindowCtx::no_drops`]),
/// from one pass over the series instead of one per window (windows overlap when the step is
/// shorter than the range: a 5m rate at a 15s step sees every sample 20 times).
pub fn over_windows_par(
    ev: &Evaluator<'_, '_>,
    arg: &Expr,
    keep_name: bool,
    count_drops: bool,
    f: &SyncWindowFn<'_>,
) -> Result<Vec<Series>, QueryError> {
    let Expr::MatrixSelector(ms) = strip_parens(arg) else {
        return over_windows(ev, arg, keep_name, &mut |s, w, i, _| f(s, w, i));
    };
    let (mint, maxt) = ev.range_selection(ms);
    let selected = ev.select_lazy(&ms.vs, mint, maxt)?;
    let threads = if selected.len() < PAR_MIN_SERIES { 1 } else { ev.sh.opts.parallelism };
    crate::par::par_filter_map(selected, threads, |series| {
        ev.sh.check()?;
        let samples = (series.load)()?;
        let n = samples.len();
        ev.sh.add_samples(n)?;
        let pts: Vec<FPoint> = samples
            .iter()
            .filter(|s| !crowsnest_wire::is_stale_nan(s.value))
            .map(|s| FPoint { t: s.timestamp, v: s.value })
            .collect();
        drop(samples);
        let points = slide(ev, arg, &pts, count_drops, &mut |s, w, i| f(s, w, i));
        ev.sh.release_samples(n);
        output_series(ev, series.labels, points, !keep_name)
    })
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

/// A window function of one series (the series is fixed by the caller).
type StepWindowFn<'f> = dyn FnMut(&[FPoint], &WindowCtx, usize) -> Option<f64> + 'f;

/// Applies `f` to the window of every grid step over `pts` (sorted, no staleness markers).
fn slide(
    ev: &Evaluator<'_, '_>,
    arg: &Expr,
    pts: &[FPoint],
    count_drops: bool,
    f: &mut StepWindowFn<'_>,
) -> Vec<FPoint> {
    // drops[i]: how many of pts[1..=i] are lower than their predecessor.
    let drops: Vec<u32> = if count_drops {
        let mut n = 0u32;
        let mut out = Vec::with_capacity(pts.len());
        out.push(0);
        for w in pts.windows(2) {
            n += u32::from(w[1].v < w[0].v);
            out.push(n);
        }
        out
    } else {
        Vec::new()
    };
    let mut points = Vec::new();
    let (mut a, mut b) = (0usize, 0usize);
    for (i, t) in ev.grid.iter().enumerate() {
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
        let no_drops = count_drops && drops[b - 1] == drops[a];
        let w = WindowCtx { lo, hi, t, range_ms: hi - lo, no_drops };
        if let Some(v) = f(&pts[a..b], &w, i) {
            points.push(FPoint { t, v });
        }
    }
    points
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
