//! The engine's public API over a `MemStorage`: result shapes, error classes, limits,
//! cancellation and annotations, plus a property test of `sum`/`avg` against a direct computation.

use crowsnest_promql::{Engine, EngineOptions, MemStorage, QueryError};
use crowsnest_wire::api::QueryData;
use crowsnest_wire::{Labels, Sample};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

fn storage() -> MemStorage {
    let s = MemStorage::new();
    for (job, step) in [("a", 1.0), ("b", 2.0)] {
        let l = Labels::from_pairs([("__name__", "requests_total"), ("job", job)]);
        s.add(l, (0..=60).map(|i| Sample::new(i * 15_000, i as f64 * step)));
    }
    s
}

#[test]
fn instant_vector_and_scalar() {
    let e = Engine::default();
    let t = CancellationToken::new();
    let out = e.instant(&storage(), "sum(rate(requests_total[5m]))", 600_000, &t).unwrap();
    let QueryData::Vector(v) = out.data else { panic!("not a vector") };
    assert_eq!(v.len(), 1);
    assert!((v[0].value.v - 3.0 / 15.0).abs() < 1e-9, "{}", v[0].value.v);
    assert!(v[0].metric.is_empty());
    let out = e.instant(&storage(), "1 + 1", 4_000, &t).unwrap();
    assert_eq!(out.data, QueryData::Scalar(crowsnest_wire::api::Point { t: 4_000, v: 2.0 }));
}

#[test]
fn range_query_is_a_sorted_matrix() {
    let e = Engine::default();
    let out = e.range(&storage(), "requests_total", 0, 120_000, 60_000, &CancellationToken::new()).unwrap();
    let QueryData::Matrix(m) = out.data else { panic!("not a matrix") };
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].metric.get("job").map(String::as_str), Some("a"));
    assert_eq!(m[1].values.iter().map(|p| p.v).collect::<Vec<_>>(), vec![0.0, 8.0, 16.0]);
    let scalar = e.range(&storage(), "time()", 0, 120_000, 60_000, &CancellationToken::new()).unwrap();
    let QueryData::Matrix(m) = scalar.data else { panic!("not a matrix") };
    assert_eq!(m[0].values.iter().map(|p| p.v).collect::<Vec<_>>(), vec![0.0, 60.0, 120.0]);
}

#[test]
fn error_classes() {
    let e = Engine::default();
    let t = CancellationToken::new();
    assert!(matches!(e.instant(&storage(), "sum(", 0, &t), Err(QueryError::BadData(_))));
    assert!(matches!(e.range(&storage(), "requests_total[5m]", 0, 60_000, 15_000, &t), Err(QueryError::BadData(_))));
    assert!(matches!(e.range(&storage(), "up", 0, 60_000, 0, &t), Err(QueryError::BadData(_))));
    let small = Engine::new(EngineOptions { max_samples: 10, ..EngineOptions::default() });
    match small.range(&storage(), "requests_total", 0, 600_000, 15_000, &t) {
        Err(QueryError::Execution(m)) => assert!(m.contains("too many samples"), "{m}"),
        other => panic!("expected the sample limit, got {other:?}"),
    }
    let canceled = CancellationToken::new();
    canceled.cancel();
    assert!(matches!(e.instant(&storage(), "requests_total", 0, &canceled), Err(QueryError::Canceled(_))));
    assert!(matches!(e.instant(&storage(), "histogram_count(requests_total)", 0, &t), Err(QueryError::Execution(_))));
}

#[test]
fn annotations_come_back() {
    let e = Engine::default();
    let s = MemStorage::new();
    s.add(Labels::from_pairs([("__name__", "temperature")]), (0..10).map(|i| Sample::new(i * 15_000, i as f64)));
    let out = e.instant(&s, "rate(temperature[1m])", 120_000, &CancellationToken::new()).unwrap();
    assert_eq!(out.infos, vec!["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"temperature\" (1:6)".to_string()]);
    let out = e.instant(&s, "quantile(2, temperature)", 120_000, &CancellationToken::new()).unwrap();
    assert_eq!(out.warnings.len(), 1);
}

proptest! {
    #[test]
    fn sum_and_avg_match_direct_computation(values in proptest::collection::vec(-1e6f64..1e6, 1..20)) {
        let s = MemStorage::new();
        for (i, v) in values.iter().enumerate() {
            s.add(Labels::from_pairs([("__name__", "g"), ("i", &i.to_string())]), [Sample::new(0, *v)]);
        }
        let e = Engine::default();
        let t = CancellationToken::new();
        let get = |q: &str| match e.instant(&s, q, 0, &t).unwrap().data {
            QueryData::Vector(v) => v[0].value.v,
            other => panic!("{other:?}"),
        };
        let sum: f64 = values.iter().sum();
        prop_assert!((get("sum(g)") - sum).abs() <= 1e-6 * (1.0 + sum.abs()));
        prop_assert!((get("avg(g)") - sum / values.len() as f64).abs() <= 1e-6 * (1.0 + sum.abs()));
        prop_assert_eq!(get("count(g)"), values.len() as f64);
        let max = values.iter().cloned().fold(f64::MIN, f64::max);
        prop_assert_eq!(get("max(g)"), max);
    }
}

#[test]
fn native_samples_for_rule_evaluation() {
    let e = Engine::default();
    let expr = crowsnest_promql::engine::parse("requests_total > 10").unwrap();
    let got = e
        .eval_expr(&storage(), &expr, "requests_total > 10", 150_000, 150_000, 0, &CancellationToken::new())
        .unwrap()
        .into_samples();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.get("job"), Some("b"));
    assert_eq!(got[0].1, 20.0);
}

/// Found by the differential test against Prometheus: in a range query, `a > x or a < y` takes
/// the same series from the left at some steps and from the right at others; it must come back
/// as one series (Prometheus accumulates range output by label set), also inside a subquery.
#[test]
fn or_over_a_range_merges_the_same_series_from_both_sides() {
    let e = Engine::default();
    let t = CancellationToken::new();
    let q = "requests_total{job=\"a\"} > 40 or requests_total{job=\"a\"} < 20";
    let out = e.range(&storage(), q, 0, 900_000, 60_000, &t).unwrap();
    let QueryData::Matrix(m) = out.data else { panic!("not a matrix") };
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].values.iter().map(|p| p.t / 60_000).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 11, 12, 13, 14, 15]);
    let sq = format!("count_over_time(({q})[15m:1m])");
    let out = e.instant(&storage(), &sq, 900_000, &t).unwrap();
    let QueryData::Vector(v) = out.data else { panic!("not a vector") };
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].value.v, 9.0);
}

/// A subquery whose inner grid alone exceeds the sample limit is refused before it is built,
/// instead of allocating it and running past the query deadline.
#[test]
fn huge_subquery_grid_is_refused_up_front() {
    use crowsnest_promql::{Engine, EngineOptions, MemStorage, QueryError};
    let engine = Engine::new(EngineOptions { max_samples: 1_000_000, ..EngineOptions::default() });
    let storage = MemStorage::new();
    let token = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let err = engine.instant(&storage, "count_over_time(vector(1)[30d:10ms])", 2_592_000_000, &token).unwrap_err();
    assert!(matches!(err, QueryError::Execution(ref m) if m.contains("too many samples")), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// Many series with counter resets, gaps and staleness markers, for comparing evaluation paths.
fn many_series() -> MemStorage {
    let s = MemStorage::new();
    for i in 0..40u32 {
        let l = Labels::from_pairs([
            ("__name__", "work_total".to_string()),
            ("group", (i % 3).to_string()),
            ("id", i.to_string()),
        ]);
        let mut v = 0.0;
        let samples: Vec<Sample> = (0..400i64)
            .filter(|k| (k + i64::from(i)) % 17 != 0)
            .map(|k| {
                v += f64::from(i % 7) + (k % 5) as f64 * 0.25;
                if (k + i64::from(i)) % 97 == 0 {
                    v = 0.0; // a counter reset
                }
                let value = if k == 300 && i % 4 == 0 { crowsnest_wire::stale_nan() } else { v };
                Sample::new(k * 15_000 + i64::from(i) * 7, value)
            })
            .collect();
        s.add(l, samples);
    }
    s
}

/// Series are read and windowed on several threads, and simple aggregations are accumulated
/// series by series: answers, their order and the annotations must not depend on either.
#[test]
fn parallel_and_series_major_paths_match_sequential() {
    let data = many_series();
    let t = CancellationToken::new();
    let one = Engine::new(EngineOptions { parallelism: 1, ..EngineOptions::default() });
    let four = Engine::new(EngineOptions { parallelism: 4, ..EngineOptions::default() });
    for q in [
        "rate(work_total[1m])",
        "increase(work_total[2m])",
        "sum by (group) (rate(work_total[1m]))",
        "avg without (id) (irate(work_total[45s]))",
        "max_over_time(work_total[3m]) - min_over_time(work_total[3m])",
        "topk(3, deriv(work_total[2m]))",
        "stddev(changes(work_total[5m]))",
        "count by (group) (resets(work_total[10m]))",
        "rate(work_total{group=\"1\"}[1m] offset 30s)",
        "sum(rate(work_total[1m] @ 3000))",
    ] {
        for (start, end, step) in [(0, 6_000_000, 15_000), (0, 6_000_000, 60_000), (4_500_000, 4_500_000, 1)] {
            let a = one.range(&data, q, start, end, step, &t).unwrap();
            let b = four.range(&data, q, start, end, step, &t).unwrap();
            assert_eq!(a.data, b.data, "{q} over {start}..{end} step {step}");
            assert_eq!((a.warnings, a.infos), (b.warnings, b.infos), "{q}");
            let ia = one.instant(&data, q, end, &t).unwrap();
            let ib = four.instant(&data, q, end, &t).unwrap();
            assert_eq!(ia.data, ib.data, "instant {q} at {end}");
        }
    }
}

/// Both aggregation paths against an identity: grouping by a label unique per series makes
/// `sum`, `min`, `max` and `avg` return each input series unchanged (name dropped). A 15s step
/// keeps the (group, step) cells few (series-major path); a 1s step exceeds the cell cap
/// (step-by-step path).
#[test]
fn both_aggregation_paths_match_the_identity() {
    let data = many_series();
    let t = CancellationToken::new();
    let e = Engine::default();
    let points = |q: &str, step: i64| -> Vec<(String, Vec<(i64, u64)>)> {
        let out = e.range(&data, q, 0, 6_000_000, step, &t).unwrap();
        let QueryData::Matrix(m) = out.data else { panic!("not a matrix") };
        let mut v: Vec<(String, Vec<(i64, u64)>)> = m
            .into_iter()
            .map(|s| (s.metric["id"].clone(), s.values.iter().map(|p| (p.t, p.v.to_bits())).collect()))
            .collect();
        v.sort();
        v
    };
    for step in [15_000, 1_000] {
        let want = points("rate(work_total[1m])", step);
        assert_eq!(want.len(), 40);
        for op in ["sum", "min", "max", "avg"] {
            assert_eq!(points(&format!("{op} by (id) (rate(work_total[1m]))"), step), want, "{op} at step {step}");
        }
    }
}
