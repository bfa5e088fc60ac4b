//! Aggregation operators (`sum min max avg group stddev stdvar count count_values bottomk topk
//! quantile limitk limit_ratio`) with `by`/`without`. Follows Prometheus' `promql/engine.go`
//! (`aggregation`, `aggregationK`, `aggregationCountValues`): Kahan-compensated sums, an
//! incremental mean once a sum would overflow, Welford variance, NaN ordered lowest for `topk`.

use std::collections::HashMap;

use crowsnest_wire::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::Evaluator;
use crate::engine::QueryError;
use crate::functions::math::{kahan_sum_inc, quantile};
use crate::value::{Series, SeriesBuilder, StepCursor, StepSample, Value};

/// Running state of one group at one step.
#[derive(Default, Clone)]
struct Group {
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental: bool,
    values: Vec<f64>,
    members: Vec<StepSample>,
}

fn grouping_labels(labels: &Labels, m: Option<&LabelModifier>) -> Labels {
    match m {
        Some(LabelModifier::Include(ls)) => labels.keep(&ls.labels),
        Some(LabelModifier::Exclude(ls)) => {
            let mut names: Vec<&str> = ls.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            labels.drop_names(&names)
        }
        None => Labels::default(),
    }
}

/// Formats a float like Go's `strconv.FormatFloat(v, 'f', -1, 64)` (count_values' label).
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

impl Evaluator<'_, '_> {
    pub fn eval_aggregate(&self, a: &AggregateExpr) -> Result<Value, QueryError> {
        let op = a.op.id();
        let mut param_scalar: Option<Vec<f64>> = None;
        let mut param_string: Option<String> = None;
        if let Some(p) = &a.param {
            match self.eval(p)? {
                Value::Scalar(v) => param_scalar = Some(v),
                Value::String(s) => param_string = Some(s),
                _ => return Err(QueryError::BadData("aggregation parameter must be a scalar or string".into())),
            }
        }
        let input = self.eval_vector(&a.expr)?;
        let modifier = a.modifier.as_ref();
        let keys: Vec<Labels> = input.iter().map(|s| grouping_labels(&s.labels, modifier)).collect();
        let name = token::token_display(op);
        if op == token::T_COUNT_VALUES {
            let label = param_string.ok_or_else(|| QueryError::BadData("count_values needs a label name".into()))?;
            if !crowsnest_wire::labels::is_valid_label_name(&label) {
                return Err(QueryError::Execution(format!("invalid label name {label:?}")));
            }
            return Ok(Value::Vector(self.count_values(&input, &keys, &label)?));
        }
        let mut builder = SeriesBuilder::new();
        let mut cursor = StepCursor::new(&input);
        let mut samples = Vec::new();
        let mut warned_q = false;
        for (step, t) in self.grid.iter().enumerate() {
            self.sh.check()?;
            cursor.at(t, &mut samples);
            let param = param_scalar.as_ref().map(|p| p[step]);
            let mut order: Vec<usize> = Vec::new();
            let mut groups: HashMap<&Labels, usize> = HashMap::new();
            let mut states: Vec<Group> = Vec::new();
            for s in &samples {
                let key = &keys[s.series];
                let gi = *groups.entry(key).or_insert_with(|| {
                    states.push(Group::default());
                    order.push(s.series);
                    states.len() - 1
                });
                accumulate(op, &mut states[gi], *s);
            }
            match op {
                token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO => {
                    let p = param.unwrap_or(f64::NAN);
                    if p.is_nan() {
                        let what = if op == token::T_LIMIT_RATIO { "Ratio" } else { "Parameter" };
                        return Err(QueryError::Execution(format!("{what} value is NaN")));
                    }
                    for g in &states {
                        for s in select_k(op, p, &g.members, &input, self, name) {
                            let src = &input[s.series];
                            builder.push(src.labels.clone(), src.drop_name, t, s.v)?;
                        }
                    }
                }
                _ => {
                    for (gi, g) in states.iter().enumerate() {
                        let v = match op {
                            token::T_SUM => g.value + g.kahan,
                            token::T_AVG => {
                                if g.incremental {
                                    g.mean + g.kahan
                                } else {
                                    (g.value + g.kahan) / g.count
                                }
                            }
                            token::T_COUNT => g.count,
                            token::T_GROUP => 1.0,
                            token::T_MIN | token::T_MAX => g.value,
                            token::T_STDVAR => g.value / g.count,
                            token::T_STDDEV => (g.value / g.count).sqrt(),
                            token::T_QUANTILE => {
                                let q = param.unwrap_or(f64::NAN);
                                if !(0.0..=1.0).contains(&q) && !warned_q {
                                    warned_q = true;
                                    self.sh.warn(format!("quantile value should be between 0 and 1, got {}", format_go_float(q)), "quantile");
                                }
                                quantile(q, &mut g.values.clone())
                            }
                            other => return Err(QueryError::BadData(format!("unsupported aggregation {}", token::token_display(other)))),
                        };
                        builder.push(keys[order[gi]].clone(), false, t, v)?;
                    }
                }
            }
        }
        let out = builder.finish();
        self.sh.add_samples(out.iter().map(|s| s.points.len()).sum())?;
        Ok(Value::Vector(out))
    }

    fn count_values(&self, input: &[Series], keys: &[Labels], label: &str) -> Result<Vec<Series>, QueryError> {
        let mut builder = SeriesBuilder::new();
        let mut cursor = StepCursor::new(input);
        let mut samples = Vec::new();
        for t in self.grid.iter() {
            cursor.at(t, &mut samples);
            let mut counts: Vec<(Labels, f64)> = Vec::new();
            let mut idx: HashMap<Labels, usize> = HashMap::new();
            for s in &samples {
                let mut l = keys[s.series].clone();
                l.set(label, &format_go_float(s.v));
                let i = *idx.entry(l.clone()).or_insert_with(|| {
                    counts.push((l, 0.0));
                    counts.len() - 1
                });
                counts[i].1 += 1.0;
            }
            for (l, c) in counts {
                builder.push(l, false, t, c)?;
            }
        }
        Ok(builder.finish())
    }
}

fn accumulate(op: TokenId, g: &mut Group, s: StepSample) {
    let first = g.count == 0.0;
    g.count += 1.0;
    let v = s.v;
    match op {
        token::T_SUM => {
            let (a, c) = kahan_sum_inc(v, g.value, g.kahan);
            g.value = a;
            g.kahan = c;
        }
        token::T_AVG => {
            if first {
                g.value = v;
                g.mean = v;
                return;
            }
            if !g.incremental {
                let (a, c) = kahan_sum_inc(v, g.value, g.kahan);
                if !a.is_infinite() {
                    g.value = a;
                    g.kahan = c;
                    return;
                }
                g.incremental = true;
                g.mean = g.value / (g.count - 1.0);
                g.kahan /= g.count - 1.0;
            }
            if g.mean.is_infinite() {
                if v.is_infinite() && (g.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            let current = g.mean + g.kahan;
            let (a, c) = kahan_sum_inc(v / g.count - current / g.count, g.mean, g.kahan);
            g.mean = a;
            g.kahan = c;
        }
        token::T_MIN => {
            if first || g.value > v || g.value.is_nan() {
                g.value = v;
            }
        }
        token::T_MAX => {
            if first || g.value < v || g.value.is_nan() {
                g.value = v;
            }
        }
        token::T_STDDEV | token::T_STDVAR => {
            if first {
                g.mean = v;
                g.value = 0.0;
                return;
            }
            let delta = v - g.mean;
            g.mean += delta / g.count;
            g.value += delta * (v - g.mean);
        }
        token::T_QUANTILE => g.values.push(v),
        token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO => g.members.push(s),
        _ => {}
    }
}

/// `topk`/`bottomk`/`limitk`/`limit_ratio` for one group at one step, in output order.
fn select_k(op: TokenId, p: f64, members: &[StepSample], input: &[Series], ev: &Evaluator<'_, '_>, name: &str) -> Vec<StepSample> {
    if op == token::T_LIMIT_RATIO {
        let mut r = p;
        if !(-1.0..=1.0).contains(&r) {
            let capped = r.clamp(-1.0, 1.0);
            ev.sh.warn(format!("ratio value should be between -1 and 1, got {}, capping to {}", format_go_float(r), format_go_float(capped)), name);
            r = capped;
        }
        return members.iter().copied().filter(|s| ratio_keep(r, &input[s.series].labels)).collect();
    }
    if p < 1.0 {
        return Vec::new();
    }
    let k = if p >= members.len() as f64 { members.len() } else { p as usize };
    if op == token::T_LIMITK {
        return members.iter().take(k).copied().collect();
    }
    let mut v: Vec<StepSample> = members.to_vec();
    let top = op == token::T_TOPK;
    // NaN sorts as the smallest value for topk and the largest for bottomk.
    v.sort_by(|a, b| {
        let ord = match (a.v.is_nan(), b.v.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => {
                if top {
                    b.v.partial_cmp(&a.v).unwrap_or(std::cmp::Ordering::Equal)
                } else {
                    a.v.partial_cmp(&b.v).unwrap_or(std::cmp::Ordering::Equal)
                }
            }
        };
        ord
    });
    v.truncate(k);
    v
}

/// `limit_ratio`'s deterministic sampling: a series is kept when its label hash, as a fraction
/// of the hash space, is below the ratio (or, for negative ratios, at or above `1 + ratio`).
fn ratio_keep(ratio: f64, labels: &Labels) -> bool {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    let off = h.finish() as f64 / u64::MAX as f64;
    (ratio >= 0.0 && off < ratio) || (ratio < 0.0 && off >= 1.0 + ratio)
}
