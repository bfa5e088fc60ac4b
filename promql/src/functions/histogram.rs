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
pub fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.upper.partial_cmp(&b.upper).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => merged.push(*b),
        }
    }
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
    let anchor = "histogram_quantile(";
    let arg_anchor = ev.sh.query.find(anchor).map(|i| &ev.sh.query[i + anchor.len()..]).map(|s| s.trim_start()).and_then(|s| s.get(..1)).unwrap_or("h").to_string();
    let _ = arg_anchor;
    // Group key (labels without `le`) and parsed upper bound per input series.
    let mut keys: Vec<Option<(Labels, f64)>> = Vec::with_capacity(input.len());
    for s in &input {
        let le = s.labels.get("le").unwrap_or("");
        match crowsnest_wire::api::parse_value(le).or_else(|| le.parse::<f64>().ok()) {
            Some(ub) if !le.is_empty() => {
                let mut l = s.labels.clone();
                l.remove("le");
                keys.push(Some((l, ub)));
            }
            _ => {
                keys.push(None);
                let name = s.labels.metric_name().unwrap_or("");
                ev.sh.warn(format!("bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {name:?}"), &histogram_arg_text(ev));
            }
        }
    }
    let mut builder = SeriesBuilder::new();
    let mut cursor = StepCursor::new(&input);
    let mut samples = Vec::new();
    for (step, t) in ev.grid.iter().enumerate() {
        let q = qs[step];
        cursor.at(t, &mut samples);
        if samples.is_empty() {
            continue;
        }
        if !(0.0..=1.0).contains(&q) {
            ev.sh.warn(format!("quantile value should be between 0 and 1, got {}", format_go_float(q)), "histogram_quantile");
        }
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
            let (v, forced) = bucket_quantile(q, b);
            if forced {
                let name = l.metric_name().unwrap_or("");
                ev.sh.info(
                    format!("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"),
                    &histogram_arg_text(ev),
                );
            }
            builder.push(l.clone(), true, t, v)?;
        }
    }
    Ok(Value::Vector(builder.finish()))
}

/// Text where the second argument of `histogram_quantile` starts (annotation anchor).
fn histogram_arg_text(ev: &Evaluator<'_, '_>) -> String {
    let q = ev.sh.query;
    let Some(i) = q.find("histogram_quantile(") else { return String::new() };
    let rest = &q[i + "histogram_quantile(".len()..];
    let mut depth = 0;
    for (j, c) in rest.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                let arg = rest[j + 1..].trim_start();
                return arg.chars().take(12).collect();
            }
            _ => {}
        }
    }
    String::new()
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
    fn forces_monotonicity_and_needs_inf() {
        let mut x = b(&[(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 10.0)]);
        assert!(bucket_quantile(0.5, &mut x).1);
        let mut y = b(&[(1.0, 10.0)]);
        assert!(bucket_quantile(0.5, &mut y).0.is_nan());
    }
}
