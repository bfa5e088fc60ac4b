//! Deterministic data set for the PromQL differential test (`tests/promql_differential.rs`):
//! counters with resets, gauges, a classic histogram (`_bucket` with `le`, `_sum`, `_count`),
//! series with gaps and staleness markers, info-style and 0/1 series, and a series holding an
//! ordinary NaN and +Inf, a series that ends without a staleness marker, over several label
//! dimensions.
//!
//! Samples sit every 15 s at a 1.234 s offset from a minute boundary, so no window edge of the
//! queries (evaluated at x.5 s times) ever coincides with a sample: Prometheus 2.x used closed
//! windows `[t-d, t]`, 3.x left-open ones `(t-d, t]`, and the test must not depend on that.

use crowsnest_wire::{Label, Sample, TimeSeries, stale_nan};

/// Scrape interval of the generated data.
pub const INTERVAL_MS: i64 = 15_000;
/// Offset of every sample from the (minute-aligned) start, so samples never sit on a window edge.
pub const OFFSET_MS: i64 = 1_234;
/// Samples per series (200 x 15 s = 50 min, well inside Prometheus' 1 h out-of-bounds limit).
pub const STEPS: i64 = 200;

/// Bucket bounds of the generated classic histogram.
const BUCKETS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const INSTANCES: [&str; 3] = ["a", "b", "c"];

/// SplitMix64 hash of (seed, step) mapped to [0, 1): deterministic "noise" without a RNG crate.
fn noise(seed: u64, step: i64) -> f64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(step as u64).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    let mut v: Vec<Label> = pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Timestamp (ms) of step `i` for data starting at `t0_ms`.
pub fn ts(t0_ms: i64, i: i64) -> i64 {
    t0_ms + OFFSET_MS + i * INTERVAL_MS
}

/// Builds every series; `t0_ms` must be minute-aligned. Samples of each series are in time order.
pub fn generate(t0_ms: i64) -> Vec<TimeSeries> {
    let mut out = Vec::new();
    let mut seed = 1u64;
    let mut series = |lbls: &[(&str, &str)], f: &mut dyn FnMut(i64) -> Option<f64>| {
        let samples = (0..STEPS).filter_map(|i| f(i).map(|v| Sample::new(ts(t0_ms, i), v))).collect();
        out.push(TimeSeries { labels: labels(lbls), samples });
    };

    // Counters: 3 instances x 2 methods x 2 codes, different rates, some with resets.
    for (ii, inst) in INSTANCES.iter().enumerate() {
        for (mi, method) in ["GET", "POST"].iter().enumerate() {
            for (ci, code) in ["200", "500"].iter().enumerate() {
                seed += 1;
                let idx = (ii * 4 + mi * 2 + ci) as i64;
                let rate = if ci == 0 { 3.0 + idx as f64 * 0.7 } else { 0.2 + idx as f64 * 0.05 };
                let reset_at = match idx % 4 {
                    1 => Some(80),
                    2 => Some(150),
                    _ => None,
                };
                // Counters start high: windows reaching before the first sample then never
                // extrapolate towards zero, where 2.42 and 2.51+ differ (prometheus#13725).
                let mut value = 10_000.0 * (idx + 1) as f64 + noise(seed, -1) * 10.0;
                let s = seed;
                series(
                    &[
                        ("__name__", "cn_http_requests_total"),
                        ("job", "api"),
                        ("instance", inst),
                        ("method", method),
                        ("code", code),
                    ],
                    &mut |i| {
                        value += rate * 15.0 * (0.5 + noise(s, i));
                        if Some(i) == reset_at {
                            value = noise(s, i) * 5.0;
                        }
                        Some(value)
                    },
                );
            }
        }
    }

    // Gauges: 3 instances x 2 zones, a sine wave plus noise.
    for (ii, inst) in INSTANCES.iter().enumerate() {
        for (zi, zone) in ["cpu", "gpu"].iter().enumerate() {
            seed += 1;
            let s = seed;
            let phase = (ii * 2 + zi) as f64;
            series(
                &[("__name__", "cn_temperature_celsius"), ("job", "node"), ("instance", inst), ("zone", zone)],
                &mut |i| Some(40.0 + 8.0 * (i as f64 / 17.0 + phase).sin() + 3.0 * noise(s, i) + phase * 0.37),
            );
        }
    }

    // Classic histogram per instance: cumulative buckets, _sum and _count; instance c resets.
    for inst in INSTANCES {
        seed += 1;
        let s = seed;
        // A high start, like the counters above (instance c resets to 0 later).
        let mut buckets = [2000.0, 4000.0, 7000.0, 9000.0, 10_000.0, 10_500.0, 11_000.0];
        let mut sum = 2500.0;
        let mut rows: Vec<([f64; 7], f64)> = Vec::new();
        for i in 0..STEPS {
            if inst == "c" && i == 120 {
                buckets = [0.0; 7];
                sum = 0.0;
            }
            let n = 3 + (noise(s, i) * 12.0) as i64;
            for k in 0..n {
                let u = noise(s ^ 0xABCD, i * 64 + k);
                let obs = 0.01 * (u * 5.6).exp(); // 0.01 ..= 2.7: about 1.4 % land in +Inf
                sum += obs;
                for (b, bound) in BUCKETS.iter().enumerate() {
                    if obs <= *bound {
                        buckets[b] += 1.0;
                    }
                }
                buckets[6] += 1.0;
            }
            rows.push((buckets, sum));
        }
        for (b, le) in ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"].iter().enumerate() {
            series(
                &[("__name__", "cn_request_duration_seconds_bucket"), ("job", "api"), ("instance", inst), ("le", le)],
                &mut |i| Some(rows[i as usize].0[b]),
            );
        }
        series(&[("__name__", "cn_request_duration_seconds_sum"), ("job", "api"), ("instance", inst)], &mut |i| {
            Some(rows[i as usize].1)
        });
        series(&[("__name__", "cn_request_duration_seconds_count"), ("job", "api"), ("instance", inst)], &mut |i| {
            Some(rows[i as usize].0[6])
        });
    }

    // Gaps and staleness: a has a 7.5 min hole, b goes stale and comes back, c goes stale for good.
    for inst in INSTANCES {
        seed += 1;
        let s = seed;
        series(&[("__name__", "cn_queue_depth"), ("job", "batch"), ("instance", inst)], &mut |i| match (inst, i) {
            ("a", 60..=89) => None,
            ("b", 100) | ("c", 170) => Some(stale_nan()),
            ("b", 101..=129) | ("c", 171..) => None,
            _ => Some((noise(s, i) * 40.0 - 8.0).round()),
        });
    }

    // A series that simply ends (no staleness marker): visible for the 5 min lookback after it.
    seed += 1;
    let s = seed;
    series(&[("__name__", "cn_ended"), ("job", "batch"), ("instance", "a")], &mut |i| {
        (i <= 150).then(|| 5.0 + noise(s, i) * 3.0 + i as f64 * 0.1)
    });

    // Info-style series and 0/1 "up" series for vector matching and set operations.
    for (inst, version) in [("a", "1.0"), ("b", "1.1"), ("c", "1.0")] {
        series(&[("__name__", "cn_build_info"), ("job", "api"), ("instance", inst), ("version", version)], &mut |_| {
            Some(1.0)
        });
    }
    for job in ["api", "node"] {
        for inst in INSTANCES {
            series(&[("__name__", "cn_up"), ("job", job), ("instance", inst)], &mut |i| {
                Some(if job == "node" && inst == "c" && (100..140).contains(&i) { 0.0 } else { 1.0 })
            });
        }
    }

    // Values in (-1, 1) for the inverse trigonometric functions, sqrt/ln of negatives, sgn, abs.
    for (ii, inst) in INSTANCES.iter().enumerate() {
        seed += 1;
        let s = seed;
        series(&[("__name__", "cn_ratio"), ("job", "node"), ("instance", inst)], &mut |i| {
            Some(0.9 * (i as f64 / 11.0 + ii as f64 * 2.1).sin() * (0.8 + 0.2 * noise(s, i)))
        });
    }

    // An ordinary NaN (not a staleness marker) and +Inf among normal values.
    seed += 1;
    let s = seed;
    series(&[("__name__", "cn_weird"), ("job", "batch"), ("instance", "a")], &mut |i| match i {
        150 | 151 => Some(f64::NAN),
        160 => Some(f64::INFINITY),
        _ => Some(noise(s, i) * 100.0),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counters_only_reset_where_planned() {
        let all = generate(0);
        let bucket = |le: &str| {
            all.iter()
                .find(|s| {
                    s.labels.iter().any(|l| l.value == "cn_request_duration_seconds_bucket")
                        && s.labels.iter().any(|l| l.name == "le" && l.value == le)
                        && s.labels.iter().any(|l| l.value == "a")
                })
                .map(|s| s.samples.clone())
                .unwrap_or_default()
        };
        let (low, inf) = (bucket("0.1"), bucket("+Inf"));
        assert_eq!(low.len(), STEPS as usize);
        assert!(low.iter().zip(&inf).all(|(l, h)| l.value <= h.value));
        assert!(all.iter().all(|s| s.samples.windows(2).all(|w| w[0].timestamp < w[1].timestamp)));
    }
}
