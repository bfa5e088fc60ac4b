//! PromQL function calls: argument evaluation and dispatch to the function families in the
//! sub-modules. The function list and semantics follow
//! <https://prometheus.io/docs/prometheus/latest/querying/functions/> and Prometheus'
//! `promql/functions.go`. Native histograms are not stored by Crowsnest, so the functions that
//! only read them (`histogram_count` …) fail with a clear error instead of answering empty.

pub mod histogram;
pub mod info;
pub mod label;
pub mod math;
pub mod over_time;
pub mod rate;
pub mod sort;
pub mod time;
pub mod window;

use crowsnest_wire::Labels;
use promql_parser::parser::{Call, Expr};

use crate::engine::QueryError;
use crate::eval::Evaluator;
use crate::value::{FPoint, Series, Value};
use window::{WindowCtx, over_windows, over_windows_par};

/// Evaluates a function call.
pub fn call(ev: &Evaluator<'_, '_>, c: &Call) -> Result<Value, QueryError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
    if let Some(f) = math::simple(name) {
        return Ok(Value::Vector(map_values(ev.eval_vector(args[0])?, f)));
    }
    let n = ev.grid.len();
    match name {
        "time" => Ok(Value::Scalar(ev.grid.iter().map(|t| t as f64 / 1000.0).collect())),
        "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; n])),
        "step" => Ok(Value::Scalar(vec![ev.sh.query_step as f64 / 1000.0; n])),
        "min_of" | "max_of" => {
            let mut acc = ev.eval_scalar(args[0])?;
            for a in &args[1..] {
                let b = ev.eval_scalar(a)?;
                for (x, y) in acc.iter_mut().zip(b) {
                    *x = if name == "min_of" { math::go_min(*x, y) } else { math::go_max(*x, y) };
                }
            }
            Ok(Value::Scalar(acc))
        }
        "histogram_quantiles" => histogram::histogram_quantiles(ev, &args),
        "start" => Ok(Value::Scalar(vec![ev.sh.query_start as f64 / 1000.0; n])),
        "end" => Ok(Value::Scalar(vec![ev.sh.query_end as f64 / 1000.0; n])),
        "range" => Ok(Value::Scalar(vec![(ev.sh.query_end - ev.sh.query_start) as f64 / 1000.0; n])),
        "vector" => {
            let s = ev.eval_scalar(args[0])?;
            let points = s.iter().enumerate().map(|(i, v)| FPoint { t: ev.grid.ts(i), v: *v }).collect();
            Ok(Value::Vector(vec![Series { labels: Labels::default(), points, drop_name: false }]))
        }
        "scalar" => {
            let v = ev.eval_vector(args[0])?;
            let mut out = vec![f64::NAN; n];
            let mut count = vec![0u32; n];
            for s in &v {
                for p in &s.points {
                    let i = ev.grid.index(p.t);
                    count[i] += 1;
                    out[i] = p.v;
                }
            }
            for (o, c) in out.iter_mut().zip(count) {
                if c != 1 {
                    *o = f64::NAN;
                }
            }
            Ok(Value::Scalar(out))
        }
        "round" => {
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a)?,
                None => vec![1.0; n],
            };
            let v = ev.eval_vector(args[0])?;
            Ok(Value::Vector(map_values_step(ev, v, |v, i| math::round(v, to[i]))))
        }
        "clamp" => {
            let lo = ev.eval_scalar(args[1])?;
            let hi = ev.eval_scalar(args[2])?;
            let v = ev.eval_vector(args[0])?;
            let mut out = map_values_step(ev, v, |v, i| math::go_max(lo[i], math::go_min(hi[i], v)));
            for s in &mut out {
                s.points.retain(|p| {
                    let i = ev.grid.index(p.t);
                    hi[i] >= lo[i]
                });
            }
            out.retain(|s| !s.points.is_empty());
            Ok(Value::Vector(out))
        }
        "clamp_min" | "clamp_max" => {
            let b = ev.eval_scalar(args[1])?;
            let v = ev.eval_vector(args[0])?;
            let max = name == "clamp_max";
            Ok(Value::Vector(map_values_step(
                ev,
                v,
                |v, i| if max { math::go_min(b[i], v) } else { math::go_max(b[i], v) },
            )))
        }
        "timestamp" => {
            let mut inner = args[0];
            while let Expr::Paren(p) = inner {
                inner = &p.expr;
            }
            let mut v = match inner {
                Expr::VectorSelector(vs) => ev.eval_vector_selector(vs, true)?,
                _ => {
                    let mut v = ev.eval_vector(args[0])?;
                    for s in &mut v {
                        for p in &mut s.points {
                            p.v = p.t as f64 / 1000.0;
                        }
                    }
                    v
                }
            };
            for s in &mut v {
                s.drop_name = true;
            }
            Ok(Value::Vector(v))
        }
        "absent" => absent(ev, args[0], false),
        "absent_over_time" => absent(ev, args[0], true),
        "info" => info::info(ev, &args),
        "label_replace" => label::label_replace(ev, &args),
        "label_join" => label::label_join(ev, &args),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => sort::sort(ev, name, &args),
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute" | "month" | "year" => {
            time::date_fn(ev, name, args.first().copied())
        }
        "histogram_quantile" => histogram::histogram_quantile(ev, &args),
        "histogram_fraction" => histogram::histogram_fraction(ev, &args),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
            Err(QueryError::Execution(format!(
                "{name}() needs native histograms, which this engine does not store; use classic `_bucket`/`_sum`/`_count` series"
            )))
        }
        _ => range_function(ev, name, &args),
    }
}

/// Applies `f` to every value; the result loses its metric name.
fn map_values(mut v: Vec<Series>, f: fn(f64) -> f64) -> Vec<Series> {
    for s in &mut v {
        s.drop_name = true;
        for p in &mut s.points {
            p.v = f(p.v);
        }
    }
    v
}

/// Like [`map_values`] with access to the step index (for scalar arguments).
fn map_values_step(ev: &Evaluator<'_, '_>, mut v: Vec<Series>, f: impl Fn(f64, usize) -> f64) -> Vec<Series> {
    for s in &mut v {
        s.drop_name = true;
        for p in &mut s.points {
            p.v = f(p.v, ev.grid.index(p.t));
        }
    }
    v
}

/// Labels `absent()` reports: the equality matchers of a plain selector argument.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        Expr::Paren(p) => return absent_labels(&p.expr),
        _ => return Labels::default(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut dup: Vec<String> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == crowsnest_wire::METRIC_NAME {
            continue;
        }
        if vs.matchers.matchers.iter().filter(|x| x.name == m.name).count() > 1 {
            dup.push(m.name.clone());
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) {
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    pairs.retain(|(n, _)| !dup.contains(n));
    Labels::from_pairs(pairs)
}

fn absent(ev: &Evaluator<'_, '_>, arg: &Expr, over_time: bool) -> Result<Value, QueryError> {
    let mut present = vec![false; ev.grid.len()];
    if over_time {
        over_windows(ev, arg, false, &mut |_, _, i, _| {
            present[i] = true;
            None
        })?;
    } else {
        for s in ev.eval_vector(arg)? {
            for p in &s.points {
                present[ev.grid.index(p.t)] = true;
            }
        }
    }
    let points: Vec<FPoint> =
        present.iter().enumerate().filter(|(_, p)| !**p).map(|(i, _)| FPoint { t: ev.grid.ts(i), v: 1.0 }).collect();
    if points.is_empty() {
        return Ok(Value::Vector(Vec::new()));
    }
    Ok(Value::Vector(vec![Series { labels: absent_labels(arg), points, drop_name: false }]))
}

/// Adds Prometheus' "might not be a counter" info for `rate`/`increase` over badly named metrics.
fn counter_info(ev: &Evaluator<'_, '_>, name: &str, labels: &Labels) {
    if !matches!(name, "rate" | "increase") {
        return;
    }
    if let Some(metric) = labels.metric_name()
        && !["_total", "_sum", "_count", "_bucket"].iter().any(|s| metric.ends_with(s))
    {
        ev.sh.info_at(
            format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"),
            &ev.sh.arg_position(name, 0),
        );
    }
}

/// Functions whose first range-vector argument is windowed per step.
fn range_function(ev: &Evaluator<'_, '_>, name: &str, args: &[&Expr]) -> Result<Value, QueryError> {
    let mut scalar_args: Vec<Vec<f64>> = Vec::new();
    let range_idx = match name {
        "quantile_over_time" => 1,
        _ => 0,
    };
    for (i, a) in args.iter().enumerate() {
        if i != range_idx {
            scalar_args.push(ev.eval_scalar(a)?);
        }
    }
    let p = |k: usize, i: usize| scalar_args.get(k).map(|v| v[i]).unwrap_or(f64::NAN);
    let arg = args[range_idx];
    if name == "double_exponential_smoothing" {
        for i in 0..ev.grid.len() {
            let (sf, tf) = (p(0, i), p(1, i));
            if !(sf > 0.0 && sf < 1.0) {
                return Err(QueryError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"
                )));
            }
            if !(tf > 0.0 && tf < 1.0) {
                return Err(QueryError::Execution(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf}")));
            }
        }
    }
    if name == "quantile_over_time"
        && let Some(q) = (0..ev.grid.len()).map(|i| p(0, i)).find(|q| !(0.0..=1.0).contains(q))
    {
        ev.sh.warn_at(
            format!("quantile value should be between 0 and 1, got {}", crate::eval::format_go_float(q)),
            &ev.sh.arg_position("quantile_over_time", 0),
        );
    }
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    type RangeFn<'p> = Box<dyn Fn(&[FPoint], &WindowCtx, usize) -> Option<f64> + Sync + 'p>;
    let f: RangeFn<'_> = match name {
        "rate" => Box::new(|s, w, _| rate::extrapolated_rate(s, w, true, true)),
        "increase" => Box::new(|s, w, _| rate::extrapolated_rate(s, w, true, false)),
        "delta" => Box::new(|s, w, _| rate::extrapolated_rate(s, w, false, false)),
        "irate" => Box::new(|s, _, _| rate::instant_value(s, true)),
        "idelta" => Box::new(|s, _, _| rate::instant_value(s, false)),
        "deriv" => Box::new(|s, _, _| rate::deriv(s)),
        "predict_linear" => Box::new(|s, w, i| rate::predict_linear(s, w, p(0, i))),
        "resets" => Box::new(|s, _, _| rate::resets(s)),
        "changes" => Box::new(|s, _, _| rate::changes(s)),
        "avg_over_time" => Box::new(|s, _, _| Some(over_time::avg(s))),
        "sum_over_time" => Box::new(|s, _, _| Some(over_time::sum(s))),
        "min_over_time" => Box::new(|s, _, _| Some(over_time::min(s))),
        "max_over_time" => Box::new(|s, _, _| Some(over_time::max(s))),
        "count_over_time" => Box::new(|s, _, _| Some(s.len() as f64)),
        "last_over_time" => Box::new(|s, _, _| s.last().map(|p| p.v)),
        "first_over_time" => Box::new(|s, _, _| s.first().map(|p| p.v)),
        "present_over_time" => Box::new(|_, _, _| Some(1.0)),
        "stddev_over_time" => Box::new(|s, _, _| Some(over_time::variance(s).sqrt())),
        "stdvar_over_time" => Box::new(|s, _, _| Some(over_time::variance(s))),
        "mad_over_time" => Box::new(|s, _, _| Some(over_time::mad(s))),
        "quantile_over_time" => Box::new(|s, _, i| Some(over_time::quantile_over(p(0, i), s))),
        "ts_of_min_over_time" => Box::new(|s, _, _| Some(over_time::ts_of(s, |a, b| a <= b))),
        "ts_of_max_over_time" => Box::new(|s, _, _| Some(over_time::ts_of(s, |a, b| a >= b))),
        "ts_of_first_over_time" => Box::new(|s, _, _| s.first().map(|p| p.t as f64 / 1000.0)),
        "ts_of_last_over_time" => Box::new(|s, _, _| s.last().map(|p| p.t as f64 / 1000.0)),
        "double_exponential_smoothing" => {
            Box::new(|s, _, i| over_time::double_exponential_smoothing(s, p(0, i), p(1, i)))
        }
        other => return Err(QueryError::BadData(format!("function {other:?} is not supported by this engine"))),
    };
    let count_drops = matches!(name, "rate" | "increase");
    let out = over_windows_par(ev, arg, keep_name, count_drops, &*f)?;
    // Every output series had a window with a value: those are the series the info is about.
    for s in &out {
        counter_info(ev, name, &s.labels);
    }
    Ok(Value::Vector(out))
}
