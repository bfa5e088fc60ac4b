//! The `*_over_time` family over a window of float samples: avg min max sum count last first
//! quantile stddev stdvar mad present, `ts_of_{min,max,first,last}_over_time`, and
//! `double_exponential_smoothing`. Mirrors Prometheus' `promql/functions.go` (3.x), including the
//! Kahan-compensated sums and the switch to an incremental mean when a sum would overflow.

use super::math::{kahan_sum_inc, quantile};
use crate::value::FPoint;

pub fn avg(s: &[FPoint]) -> f64 {
    let (mut sum, mut mean, mut c) = (s[0].v, s[0].v, 0.0);
    let mut incremental = false;
    for (i, p) in s.iter().enumerate().skip(1) {
        let count = (i + 1) as f64;
        if !incremental {
            let (ns, nc) = kahan_sum_inc(p.v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if p.v.is_infinite() && (mean > 0.0) == (p.v > 0.0) {
                continue;
            }
            if !p.v.is_infinite() && !p.v.is_nan() {
                continue;
            }
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_sum_inc(p.v / count, q * mean, q * c);
    }
    let count = s.len() as f64;
    if incremental { mean + c } else { sum / count + c / count }
}

pub fn sum(s: &[FPoint]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for p in s {
        (sum, c) = kahan_sum_inc(p.v, sum, c);
    }
    sum + c
}

pub fn max(s: &[FPoint]) -> f64 {
    let mut m = s[0].v;
    for p in s {
        if p.v > m || m.is_nan() {
            m = p.v;
        }
    }
    m
}

pub fn min(s: &[FPoint]) -> f64 {
    let mut m = s[0].v;
    for p in s {
        if p.v < m || m.is_nan() {
            m = p.v;
        }
    }
    m
}

/// Population variance with compensated running sums.
pub fn variance(s: &[FPoint]) -> f64 {
    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + cm);
        (mean, cm) = kahan_sum_inc(delta / count, mean, cm);
        (aux, ca) = kahan_sum_inc(delta * (p.v - (mean + cm)), aux, ca);
    }
    (aux + ca) / count
}

pub fn quantile_over(q: f64, s: &[FPoint]) -> f64 {
    let mut v: Vec<f64> = s.iter().map(|p| p.v).collect();
    quantile(q, &mut v)
}

/// Median absolute deviation.
pub fn mad(s: &[FPoint]) -> f64 {
    if s.iter().any(|p| p.v.is_nan()) {
        return f64::NAN;
    }
    let mut v: Vec<f64> = s.iter().map(|p| p.v).collect();
    let median = quantile(0.5, &mut v);
    let mut dev: Vec<f64> = s.iter().map(|p| (p.v - median).abs()).collect();
    quantile(0.5, &mut dev)
}

/// Timestamp (seconds) of the sample picked by `better(candidate, current)`; ties keep the
/// later sample.
pub fn ts_of(s: &[FPoint], better: fn(f64, f64) -> bool) -> f64 {
    let mut best = s[0];
    for p in &s[1..] {
        if better(p.v, best.v) || best.v.is_nan() {
            best = *p;
        }
    }
    best.t as f64 / 1000.0
}

/// Holt's linear smoothing; `None` with fewer than two samples.
pub fn double_exponential_smoothing(s: &[FPoint], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let mut s1 = s[0].v;
    let mut s0;
    let mut b = s[1].v - s[0].v;
    let trend = |i: usize, s0: f64, s1: f64, b: f64| if i == 0 { b } else { tf * (s1 - s0) + (1.0 - tf) * b };
    s0 = s1;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        b = trend(i - 1, s0, s1, b);
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[f64]) -> Vec<FPoint> {
        v.iter().enumerate().map(|(i, &v)| FPoint { t: i as i64 * 1000, v }).collect()
    }

    #[test]
    fn basic_aggregates() {
        let s = pts(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(avg(&s), 2.5);
        assert_eq!(sum(&s), 10.0);
        assert_eq!(max(&s), 4.0);
        assert_eq!(min(&s), 1.0);
        assert!((variance(&s) - 1.25).abs() < 1e-12);
        assert_eq!(mad(&s), 1.0);
        assert_eq!(ts_of(&s, |a, b| a >= b), 3.0);
    }

    #[test]
    fn avg_survives_overflow() {
        let s = pts(&[f64::MAX, f64::MAX]);
        assert_eq!(avg(&s), f64::MAX);
    }

    #[test]
    fn nan_handling_in_max() {
        let s = pts(&[f64::NAN, 1.0]);
        assert_eq!(max(&s), 1.0);
    }
}
