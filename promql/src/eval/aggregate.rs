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
use crate::value::{Grid, Series, SeriesBuilder, StepCursor, StepSample, Value, intern};

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
    drop_name: bool,
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
        let name = a.op.to_string();
        if op == token::T_COUNT_VALUES {
            let label = param_string.ok_or_else(|| QueryError::BadData("count_values needs a label name".into()))?;
            // Prometheus 3 accepts any UTF-8 label name; only the empty name is invalid.
            if label.is_empty() {
                return Err(QueryError::Execution(format!("invalid label name {label:?}")));
            }
            return Ok(Value::Vector(self.count_values(&input, &keys, &label)?));
        }
        let mut builder = SeriesBuilder::new();
        let mut cursor = StepCursor::new(&input);
        let mut samples = Vec::new();
        let mut warned_q = false;
        let (gids, uniq) = intern(keys.iter().cloned());
        let mut state_of = vec![usize::MAX; uniq.len()];
        let mut slots: Vec<[Option<usize>; 2]> = vec![[None, None]; uniq.len()];
        let mut cells = SeriesMajor::try_new(op, &input, &gids, uniq.len(), self.grid);
        for (step, t) in self.grid.iter().enumerate() {
            self.sh.check()?;
            let param = param_scalar.as_ref().map(|p| p[step]);
            // `order[gi]`: the first input series (by index) of group `gi` at this step; groups
            // are numbered in that order, as Prometheus emits them.
            let mut order: Vec<usize> = Vec::new();
            let mut states: Vec<Group> = Vec::new();
            if let Some(cells) = cells.as_mut() {
                cells.take_step(step, &mut order, &mut states);
            } else {
                cursor.at(t, &mut samples);
                for s in &samples {
                    let gid = gids[s.series];
                    let gi = if state_of[gid] == usize::MAX {
                        state_of[gid] = states.len();
                        states.push(Group::default());
                        order.push(s.series);
                        states.len() - 1
                    } else {
                        state_of[gid]
                    };
                    states[gi].drop_name |= input[s.series].drop_name;
                    accumulate(op, &mut states[gi], *s);
                }
                for &s in &order {
                    state_of[gids[s]] = usize::MAX;
                }
            }
            match op {
                token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK | token::T_LIMIT_RATIO => {
                    let p = param.unwrap_or(f64::NAN);
                    if p.is_nan() {
                        let what = if op == token::T_LIMIT_RATIO { "Ratio" } else { "Parameter" };
                        return Err(QueryError::Execution(format!("{what} value is NaN")));
                    }
                    for g in &states {
                        for s in select_k(op, p, &g.members, &input, self, &name) {
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
                                    self.sh.warn_at(
                                        format!("quantile value should be between 0 and 1, got {}", format_go_float(q)),
                                        &self.sh.arg_position("quantile", 0),
                                    );
                                }
                                quantile(q, &mut g.values.clone())
                            }
                            other => {
                                return Err(QueryError::BadData(format!(
                                    "unsupported aggregation {}",
                                    token::TokenType::new(other)
                                )));
                            }
                        };
                        let key = &keys[order[gi]];
                        let dn = g.drop_name && key.metric_name().is_some();
                        let cache = &mut slots[gids[order[gi]]][usize::from(dn)];
                        let slot = *cache.get_or_insert_with(|| builder.slot(key.clone(), dn));
                        builder.push_slot(slot, t, v)?;
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

/// Most (group, step) cells [`SeriesMajor`] holds (about 100 bytes each, so ~13 MB per running
/// aggregation at most); beyond it the step-by-step walk is used.
const SERIES_MAJOR_MAX_CELLS: usize = 1 << 17;

/// The groups of every step, accumulated series by series before the output is built. Walking
/// all input series at every step (the general path) costs `series × steps` cursor checks even
/// where a series has no sample; here each input point is touched once. Only for operators whose
/// state is a few numbers, and only while `groups × steps` stays small. Points of a series are
/// visited in step order and series in index order, so every group sees its values in the same
/// order as in the step-by-step walk and sums come out bit for bit the same.
struct SeriesMajor {
    groups: usize,
    cells: Vec<Group>,
    /// First input series of each cell, `usize::MAX` when the cell is empty.
    first: Vec<usize>,
}

impl SeriesMajor {
    fn try_new(op: TokenId, input: &[Series], gids: &[usize], groups: usize, grid: Grid) -> Option<Self> {
        let simple = matches!(
            op,
            token::T_SUM
                | token::T_AVG
                | token::T_COUNT
                | token::T_GROUP
                | token::T_MIN
                | token::T_MAX
                | token::T_STDDEV
                | token::T_STDVAR
        );
        let steps = grid.len();
        let n = groups.checked_mul(steps)?;
        if !simple || n > SERIES_MAJOR_MAX_CELLS || input.len() < 2 {
            return None;
        }
        let mut cells = vec![Group::default(); n];
        let mut first = vec![usize::MAX; n];
        for (si, s) in input.iter().enumerate() {
            let gid = gids[si];
            for p in &s.points {
                if p.t < grid.start || p.t > grid.end || (p.t - grid.start) % grid.step != 0 {
                    return None; // not on the grid: leave it to the general path
                }
                let c = grid.index(p.t) * groups + gid;
                if first[c] == usize::MAX {
                    first[c] = si;
                }
                cells[c].drop_name |= s.drop_name;
                accumulate(op, &mut cells[c], StepSample { series: si, v: p.v });
            }
        }
        Some(SeriesMajor { groups, cells, first })
    }

    /// Moves the non-empty groups of `step` into `states`, ordered by their first series.
    fn take_step(&mut self, step: usize, order: &mut Vec<usize>, states: &mut Vec<Group>) {
        let base = step * self.groups;
        let mut present: Vec<(usize, usize)> = (0..self.groups)
            .filter(|g| self.first[base + g] != usize::MAX)
            .map(|g| (self.first[base + g], g))
            .collect();
        present.sort_unstable();
        for (first, g) in present {
            order.push(first);
            states.push(std::mem::take(&mut self.cells[base + g]));
        }
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
        token::T_MIN if (first || g.value > v || g.value.is_nan()) => {
            g.value = v;
        }
        token::T_MAX if (first || g.value < v || g.value.is_nan()) => {
            g.value = v;
        }
        token::T_STDDEV | token::T_STDVAR => {
            if first {
                g.mean = v;
                g.value = if v.is_nan() || v.is_infinite() { f64::NAN } else { 0.0 };
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
fn select_k(
    op: TokenId,
    p: f64,
    members: &[StepSample],
    input: &[Series],
    ev: &Evaluator<'_, '_>,
    name: &str,
) -> Vec<StepSample> {
    if op == token::T_LIMIT_RATIO {
        let mut r = p;
        if !(-1.0..=1.0).contains(&r) {
            let capped = r.clamp(-1.0, 1.0);
            ev.sh.warn_at(
                format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    format_go_float(r),
                    format_go_float(capped)
                ),
                &ev.sh.arg_position(name, 0),
            );
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
    v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
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
    });
    v.truncate(k);
    v
}

/// `limit_ratio`'s deterministic sampling (Prometheus' `HashRatioSampler`): a series is kept when
/// its label hash, as a fraction of the hash space, is below the ratio (or, for negative ratios,
/// at or above `1 + ratio`).
fn ratio_keep(ratio: f64, labels: &Labels) -> bool {
    let off = super::labelhash::labels_hash(labels) as f64 / u64::MAX as f64;
    (ratio >= 0.0 && off < ratio) || (ratio < 0.0 && off >= 1.0 + ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formatting() {
        assert_eq!(format_go_float(1.0), "1");
        assert_eq!(format_go_float(0.25), "0.25");
        assert_eq!(format_go_float(f64::INFINITY), "+Inf");
        assert_eq!(format_go_float(f64::NAN), "NaN");
    }

    #[test]
    fn grouping_by_and_without() {
        use promql_parser::label::Labels as PLabels;
        let l = Labels::from_pairs([("__name__", "m"), ("a", "1"), ("b", "2")]);
        assert_eq!(
            grouping_labels(&l, Some(&LabelModifier::Include(PLabels::new(vec!["a"])))),
            Labels::from_pairs([("a", "1")])
        );
        assert_eq!(
            grouping_labels(&l, Some(&LabelModifier::Exclude(PLabels::new(vec!["a"])))),
            Labels::from_pairs([("b", "2")])
        );
        assert_eq!(grouping_labels(&l, None), Labels::default());
    }

    #[test]
    fn stddev_accumulates_population_variance() {
        let mut g = Group::default();
        for (i, v) in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0].into_iter().enumerate() {
            accumulate(token::T_STDDEV, &mut g, StepSample { series: i, v });
        }
        assert!((g.value / g.count - 4.0).abs() < 1e-12);
    }
}
