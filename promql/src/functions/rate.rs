//! Counter and gauge rate functions over a window: `rate increase delta` (with Prometheus'
//! extrapolation), `irate idelta`, `deriv predict_linear` (least squares), `resets changes`.
//! Mirrors `extrapolatedRate`, `instantValue`, `linearRegression` in Prometheus'
//! `promql/functions.go` (3.x).

use super::math::kahan_sum_inc;
use super::window::WindowCtx;
use crate::value::FPoint;

/// `rate`, `increase` (counters) and `delta` (gauges) with extrapolation to the window edges.
pub fn extrapolated_rate(s: &[FPoint], w: &WindowCtx, is_counter: bool, is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter && !w.no_drops {
        let mut prev = first.v;
        for p in &s[1..] {
            if p.v < prev {
                result += prev;
            }
            prev = p.v;
        }
    }
    let mut to_start = (first.t - w.lo) as f64 / 1000.0;
    let mut to_end = (w.hi - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (s.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= w.range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` / `idelta`: from the last two samples.
pub fn instant_value(s: &[FPoint], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let last = s[s.len() - 1];
    let prev = s[s.len() - 2];
    let mut v = if is_rate && last.v < prev.v { last.v } else { last.v - prev.v };
    let dt = last.t - prev.t;
    if dt == 0 {
        return None;
    }
    if is_rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares fit of the samples against time (seconds relative to `intercept_t`).
pub fn linear_regression(s: &[FPoint], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_sum_inc(x, sx, cx);
        (sy, cy) = kahan_sum_inc(p.v, sy, cy);
        (sxy, cxy) = kahan_sum_inc(x * p.v, sxy, cxy);
        (sx2, cx2) = kahan_sum_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

pub fn deriv(s: &[FPoint]) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    Some(linear_regression(s, s[0].t).0)
}

/// `predict_linear(v, seconds)` evaluated relative to the step time.
pub fn predict_linear(s: &[FPoint], w: &WindowCtx, seconds: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(s, w.t);
    Some(slope * seconds + intercept)
}

pub fn resets(s: &[FPoint]) -> Option<f64> {
    Some(s.windows(2).filter(|p| p[1].v < p[0].v).count() as f64)
}

pub fn changes(s: &[FPoint]) -> Option<f64> {
    Some(s.windows(2).filter(|p| !(p[1].v == p[0].v || (p[1].v.is_nan() && p[0].v.is_nan()))).count() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, f64)]) -> Vec<FPoint> {
        v.iter().map(|&(t, v)| FPoint { t, v }).collect()
    }

    #[test]
    fn rate_of_steady_counter() {
        // 0, 10, 20 … every 60s; window (0, 300s] at t=300s sees 60..300 → 10/60 per second.
        let s = pts(&[(60_000, 10.0), (120_000, 20.0), (180_000, 30.0), (240_000, 40.0), (300_000, 50.0)]);
        let w = WindowCtx { lo: 0, hi: 300_000, t: 300_000, range_ms: 300_000, no_drops: false };
        let r = extrapolated_rate(&s, &w, true, true).unwrap();
        let known = WindowCtx { no_drops: true, ..w };
        assert_eq!(extrapolated_rate(&s, &known, true, true), Some(r));
        assert!((r - 10.0 / 60.0).abs() < 1e-12, "{r}");
        assert_eq!(extrapolated_rate(&s[..1], &w, true, true), None);
    }

    #[test]
    fn counter_reset_and_changes() {
        let s = pts(&[(0, 5.0), (1000, 1.0), (2000, 1.0), (3000, 2.0)]);
        assert_eq!(resets(&s), Some(1.0));
        assert_eq!(changes(&s), Some(2.0));
        assert_eq!(instant_value(&s, true), Some(1.0));
    }

    #[test]
    fn regression_slope() {
        let s = pts(&[(0, 1.0), (1000, 3.0), (2000, 5.0)]);
        assert!((deriv(&s).unwrap() - 2.0).abs() < 1e-12);
    }
}
