//! `histogram_quantile` over classic histograms (`le` bucket series). Mirrors Prometheus'
//! `funcHistogramQuantile` and `BucketQuantile` (`promql/quantile.go`): buckets are grouped by
//! all labels but `le`, sorted, coalesced, forced monotonic (with an info annotation), and the
//! quantile interpolated linearly inside its bucket.

use std::collections::HashMap;

use crowsnest_wire::Labels;
use promql_parser::parser::Expr;

use crate::engine::QueryError;
use crate::eval::{Evaluator, format_go_float};
use crate::value::{SeriesBuilder, StepCursor, Value};

/// One classic bucket: upper bound and cumulative count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub upper: f64,
    pub count: f64,
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < eps * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < eps
}

/// The φ-quantile of classic buckets; the flag says whether monotonicity had to be forced.
pub fn bucket_quantile(q: f64, buckets: &mut [Bucket]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(mut merged) = prepare(buckets) else { return (f64::NAN, false) };
    let mut forced = false;
    let mut prev = merged[0].count;
    for b in merged.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            b.count = prev;
            continue;
        }
        if cur < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    if merged.len() < 2 {
        return (f64::NAN, forced);
    }
    let n = merged.len();
    let observations = merged[n - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = merged[..n - 1].partition_point(|x| x.count < rank);
    if b == n - 1 {
        return (merged[n - 2].upper, forced);
    }
    if b == 0 && merged[0].upper <= 0.0 {
        return (merged[0].upper, forced);
    }
    let mut start = 0.0;
    let end = merged[b].upper;
    let mut count = merged[b].count;
    if b > 0 {
        start = merged[b - 1].upper;
        count -= merged[b - 1].count;
        rank -= merged[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

pub fn histogram_quantile(ev: &Evaluator<'_, '_>, args: &[&Expr]) -> Result<Value, QueryError> {
    let qs = ev.eval_scalar(args[0])?;
    let input = ev.eval_vector(args[1])?;
    let mut builder = SeriesBuilder::new();
    quantiles_into(ev, &qs, &input, None, &mut builder)?;
    Ok(Value::Vector(builder.finish()))
}

/// `histogram_quantiles(v, "label", q1, q2, …)`: one output series per quantile, told apart by
/// `label` set to the quantile.
pub fn histogram_quantiles(ev: &Evaluator<'_, '_>, args: &[&Expr]) -> Result<Value, QueryError> {
    let input = ev.eval_vector(args[0])?;
    let label = match ev.eval(args[1])? {
        Value::String(s) => s,
        _ => return Err(QueryError::BadData("expected string label name".into())),
    };
    let mut builder = SeriesBuilder::new();
    for a in &args[2..] {
        let qs = ev.eval_scalar(a)?;
        quantiles_into(ev, &qs, &input, Some(&label), &mut builder)?;
    }
    Ok(Value::Vector(builder.finish()))
}

/// Renders a quantile as a label value (`0.0`, `0.25`, `NaN`).
fn quantile_label(q: f64) -> String {
    if q.is_finite() && q.fract() == 0.0 { format!("{q:.1}") } else { format_go_float(q) }
}

/// What to compute from each group of buckets at one step.
#[derive(Clone, Copy)]
enum BucketOp<'a> {
    Quantile(&'a [f64]),
    Fraction(&'a [f64], &'a [f64]),
}

fn quantiles_into(
    ev: &Evaluator<'_, '_>,
    qs: &[f64],
    input: &[crate::value::Series],
    label: Option<&str>,
    builder: &mut SeriesBuilder,
) -> Result<(), QueryError> {
    buckets_into(ev, BucketOp::Quantile(qs), input, label, builder)
}

/// `histogram_fraction(lower, upper, v)` over classic buckets.
pub fn histogram_fraction(ev: &Evaluator<'_, '_>, args: &[&Expr]) -> Result<Value, QueryError> {
    let lower = ev.eval_scalar(args[0])?;
    let upper = ev.eval_scalar(args[1])?;
    let input = ev.eval_vector(args[2])?;
    let mut builder = SeriesBuilder::new();
    buckets_into(ev, BucketOp::Fraction(&lower, &upper), &input, None, &mut builder)?;
    Ok(Value::Vector(builder.finish()))
}

/// Sorts by upper bound and merges buckets with equal bounds; `None` without a `+Inf` bucket.
fn prepare(buckets: &mut [Bucket]) -> Option<Vec<Bucket>> {
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => merged.push(*b),
        }
    }
    Some(merged)
}

/// Observations of a bucket `(lo, hi]` holding `cnt` that lie below `v`: linear inside finite
/// buckets; the `+Inf` bucket's observations count as above any finite `v`, the `-Inf` bucket's
/// as below it (no interpolation over an infinite width).
fn partial(lo: f64, hi: f64, cnt: f64, v: f64) -> f64 {
    if hi.is_infinite() {
        0.0
    } else if lo.is_infinite() {
        cnt
    } else {
        cnt * (v - lo) / (hi - lo)
    }
}

/// Fraction of observations in `[lower, upper]`, interpolating linearly inside finite buckets; the
/// first bucket starts at 0 when its bound is positive.
pub fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [Bucket]) -> f64 {
    let Some(b) = prepare(buckets) else { return f64::NAN };
    let count = b[b.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, bk) in b.iter().enumerate() {
        let lo = if i == 0 { if bk.upper > 0.0 { 0.0 } else { f64::NEG_INFINITY } } else { b[i - 1].upper };
        let hi = bk.upper;
        let cnt = bk.count - if i == 0 { 0.0 } else { b[i - 1].count };
        if !lower_set && lo >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lo >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lo < lower && hi > lower {
            lower_rank = rank + partial(lo, hi, cnt, lower);
            lower_set = true;
        }
        if !upper_set && lo < upper && hi > upper {
            upper_rank = rank + partial(lo, hi, cnt, upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += cnt;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn buckets_into(
    ev: &Evaluator<'_, '_>,
    op: BucketOp<'_>,
    input: &[crate::value::Series],
    label: Option<&str>,
    builder: &mut SeriesBuilder,
) -> Result<(), QueryError> {
    // Group key (labels without `le`) and parsed upper bound per input series.
    let mut keys: Vec<Option<(Labels, f64)>> = Vec::with_capacity(input.len());
    for s in input {
        let le = s.labels.get("le").unwrap_or("");
        match crowsnest_wire::api::parse_value(le) {
            Some(ub) if !le.is_empty() => {
                let mut l = s.labels.clone();
                l.remove("le");
                keys.push(Some((l, ub)));
            }
            _ => {
                keys.push(None);
                let name = s.labels.metric_name().unwrap_or("");
                ev.sh.warn_at(
                    format!(
                        "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {name:?}"
                    ),
                    &vec_pos(ev, op, label.is_some()),
                );
            }
        }
    }
    let mut cursor = StepCursor::new(input);
    let mut samples = Vec::new();
    for (step, t) in ev.grid.iter().enumerate() {
        let q = match op {
            BucketOp::Quantile(qs) => qs[step],
            BucketOp::Fraction(..) => 0.0,
        };
        if !(0.0..=1.0).contains(&q) {
            let pos = if label.is_some() {
                ev.sh.arg_position("histogram_quantiles", 2)
            } else {
                ev.sh.arg_position("histogram_quantile", 0)
            };
            ev.sh.warn_at(format!("quantile value should be between 0 and 1, got {}", format_go_float(q)), &pos);
        }
        cursor.at(t, &mut samples);
        let mut order: Vec<&Labels> = Vec::new();
        let mut groups: HashMap<&Labels, Vec<Bucket>> = HashMap::new();
        for s in &samples {
            if let Some((l, ub)) = &keys[s.series] {
                groups
                    .entry(l)
                    .or_insert_with(|| {
                        order.push(l);
                        Vec::new()
                    })
                    .push(Bucket { upper: *ub, count: s.v });
            }
        }
        for l in order {
            let Some(b) = groups.get_mut(l) else { continue };
            let (v, forced) = match op {
                BucketOp::Quantile(_) => bucket_quantile(q, b),
                BucketOp::Fraction(lo, hi) => (bucket_fraction(lo[step], hi[step], b), false),
            };
            if forced {
                let name = l.metric_name().unwrap_or("");
                ev.sh.info_at(
                    format!("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"),
                    &vec_pos(ev, op, label.is_some()),
                );
            }
            let mut out = l.clone();
            if let Some(name) = label {
                out.set(name, &quantile_label(q));
            }
            builder.push(out, true, t, v)?;
        }
    }
    Ok(())
}

/// Position of the histogram (vector) argument, where Prometheus anchors its annotations.
fn vec_pos(ev: &Evaluator<'_, '_>, op: BucketOp<'_>, plural: bool) -> String {
    match op {
        BucketOp::Fraction(..) => ev.sh.arg_position("histogram_fraction", 2),
        BucketOp::Quantile(_) if plural => ev.sh.arg_position("histogram_quantiles", 0),
        BucketOp::Quantile(_) => ev.sh.arg_position("histogram_quantile", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[(f64, f64)]) -> Vec<Bucket> {
        v.iter().map(|&(upper, count)| Bucket { upper, count }).collect()
    }

    #[test]
    fn interpolates_in_bucket() {
        let mut x = b(&[(0.1, 10.0), (0.5, 20.0), (f64::INFINITY, 20.0)]);
        let (v, forced) = bucket_quantile(0.75, &mut x);
        assert!(!forced);
        assert!((v - 0.3).abs() < 1e-12);
    }

    #[test]
    fn fraction_interpolates() {
        let mut x = b(&[(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (f64::INFINITY, 100.0)]);
        assert!((bucket_fraction(0.0, 1.5, &mut x) - 0.02).abs() < 1e-12);
        let mut y = b(&[(-3.0, 10.0), (-2.0, 12.0), (-1.0, 15.0), (f64::INFINITY, 100.0)]);
        assert!((bucket_fraction(-4.0, -2.0, &mut y) - 0.02).abs() < 1e-12);
        assert!((bucket_fraction(f64::NEG_INFINITY, -1.5, &mut y) - 0.135).abs() < 1e-12);
    }

    #[test]
    fn forces_monotonicity_and_needs_inf() {
        let mut x = b(&[(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 10.0)]);
        assert!(bucket_quantile(0.5, &mut x).1);
        let mut y = b(&[(1.0, 10.0)]);
        assert!(bucket_quantile(0.5, &mut y).0.is_nan());
    }
}
