//! Binary operators: arithmetic, comparison (with and without `bool`), `atan2`, the set operators
//! `and`/`or`/`unless`, vector matching with `on`/`ignoring` and `group_left`/`group_right`, and the
//! `fill`/`fill_left`/`fill_right` modifiers. Follows Prometheus' `promql/engine.go`
//! (`VectorBinop`, `VectorAnd/Or/Unless`, `VectorscalarBinop`, `resultMetric`) and
//! <https://prometheus.io/docs/prometheus/latest/querying/operators/>.

use std::collections::{HashMap, HashSet};

use crowsnest_wire::{Labels, METRIC_NAME};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::Evaluator;
use crate::engine::QueryError;
use crate::value::{Series, SeriesBuilder, StepCursor, StepSample, Value, intern};

/// Applies an arithmetic or comparison operator. Comparisons return `(lhs, holds)`.
pub fn apply_op(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_POW => (l.powf(r), true),
        token::T_MOD => (l % r, true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        other => {
            return Err(QueryError::BadData(format!(
                "operator {} not allowed for this operation",
                token::TokenType::new(other)
            )));
        }
    })
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE)
}

/// The label set two series are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(ls)) => labels.keep(&ls.labels),
        Some(LabelModifier::Exclude(ls)) => {
            let mut names: Vec<&str> = ls.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            labels.drop_names(&names)
        }
        None => labels.without_metric_name(),
    }
}

impl Evaluator<'_, '_> {
    pub fn eval_binary(&self, b: &BinaryExpr) -> Result<Value, QueryError> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let mut out = Vec::with_capacity(l.len());
                for (a, c) in l.iter().zip(r.iter()) {
                    let (v, keep) = apply_op(op, *a, *c)?;
                    out.push(if is_comparison(op) { if keep { 1.0 } else { 0.0 } } else { v });
                }
                Ok(Value::Scalar(out))
            }
            (Value::Vector(l), Value::Scalar(r)) => {
                Ok(Value::Vector(self.vector_scalar(op, l, &r, false, return_bool)?))
            }
            (Value::Scalar(l), Value::Vector(r)) => {
                Ok(Value::Vector(self.vector_scalar(op, r, &l, true, return_bool)?))
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let m = b.modifier.as_ref();
                match op {
                    token::T_LAND | token::T_LOR | token::T_LUNLESS => {
                        Ok(Value::Vector(self.set_op(op, l, r, m.and_then(|m| m.matching.as_ref()))?))
                    }
                    _ => Ok(Value::Vector(self.vector_vector(op, l, r, m, return_bool)?)),
                }
            }
            _ => Err(QueryError::BadData("binary expression must contain only scalar and instant vector types".into())),
        }
    }

    fn vector_scalar(
        &self,
        op: TokenId,
        mut v: Vec<Series>,
        s: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> Result<Vec<Series>, QueryError> {
        let cmp = is_comparison(op);
        for series in &mut v {
            let mut out = Vec::with_capacity(series.points.len());
            for p in &series.points {
                let sv = s[self.grid.index(p.t)];
                let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
                let (mut val, keep) = apply_op(op, l, r)?;
                if cmp && swap {
                    val = r;
                }
                if return_bool {
                    out.push(crate::value::FPoint { t: p.t, v: if keep { 1.0 } else { 0.0 } });
                } else if keep {
                    out.push(crate::value::FPoint { t: p.t, v: val });
                }
            }
            series.points = out;
            if !cmp || return_bool {
                series.drop_name = true;
            }
        }
        v.retain(|s| !s.points.is_empty());
        Ok(v)
    }

    fn set_op(
        &self,
        op: TokenId,
        l: Vec<Series>,
        r: Vec<Series>,
        matching: Option<&LabelModifier>,
    ) -> Result<Vec<Series>, QueryError> {
        let lsig: Vec<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
        let rsig: Vec<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
        let mut lout: Vec<Series> =
            l.iter().map(|s| Series { labels: s.labels.clone(), points: Vec::new(), drop_name: s.drop_name }).collect();
        let mut rout: Vec<Series> =
            r.iter().map(|s| Series { labels: s.labels.clone(), points: Vec::new(), drop_name: s.drop_name }).collect();
        let (mut lc, mut rc) = (StepCursor::new(&l), StepCursor::new(&r));
        let (mut ls, mut rs) = (Vec::new(), Vec::new());
        for t in self.grid.iter() {
            lc.at(t, &mut ls);
            rc.at(t, &mut rs);
            match op {
                token::T_LAND | token::T_LUNLESS => {
                    let present: HashSet<&Labels> = rs.iter().map(|x| &rsig[x.series]).collect();
                    for x in &ls {
                        if present.contains(&lsig[x.series]) == (op == token::T_LAND) {
                            lout[x.series].points.push(crate::value::FPoint { t, v: x.v });
                        }
                    }
                }
                _ => {
                    let present: HashSet<&Labels> = ls.iter().map(|x| &lsig[x.series]).collect();
                    for x in &ls {
                        lout[x.series].points.push(crate::value::FPoint { t, v: x.v });
                    }
                    for x in &rs {
                        if !present.contains(&rsig[x.series]) {
                            rout[x.series].points.push(crate::value::FPoint { t, v: x.v });
                        }
                    }
                }
            }
        }
        // `or` over a range: a series may come from the left at some steps and from the right
        // at others; Prometheus accumulates output by label set, so these are one series (they
        // never share a step, the right one is dropped wherever the left one matches).
        let by_labels: HashMap<(&Labels, bool), usize> =
            lout.iter().enumerate().map(|(i, s)| ((&s.labels, s.drop_name), i)).collect();
        let mut merges: Vec<(usize, Series)> = Vec::new();
        let mut rest: Vec<Series> = Vec::new();
        for s in rout {
            match by_labels.get(&(&s.labels, s.drop_name)) {
                Some(&i) if !s.points.is_empty() => merges.push((i, s)),
                _ => rest.push(s),
            }
        }
        for (i, s) in merges {
            lout[i].points.extend(s.points);
            lout[i].points.sort_by_key(|p| p.t);
        }
        lout.extend(rest);
        lout.retain(|s| !s.points.is_empty());
        Ok(lout)
    }

    fn vector_vector(
        &self,
        op: TokenId,
        l: Vec<Series>,
        r: Vec<Series>,
        m: Option<&BinModifier>,
        return_bool: bool,
    ) -> Result<Vec<Series>, QueryError> {
        let matching = m.and_then(|m| m.matching.as_ref());
        let card = m.map(|m| m.card.clone()).unwrap_or(VectorMatchCardinality::OneToOne);
        let (fill_l, fill_r) = m.map(|m| (m.fill_values.lhs, m.fill_values.rhs)).unwrap_or((None, None));
        let cmp = is_comparison(op);
        let drop_name = !cmp || return_bool;
        // For group_right the "many" side is the right one: swap so that `one` is always the right.
        let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
        let include: Vec<String> = match &card {
            VectorMatchCardinality::ManyToOne(ls) | VectorMatchCardinality::OneToMany(ls) => ls.labels.clone(),
            _ => Vec::new(),
        };
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        // Like Prometheus, the fill values stay with the internal sides after the group_right swap.
        let (many, one, fill_many, fill_one) =
            if swapped { (&r, &l, fill_l, fill_r) } else { (&l, &r, fill_l, fill_r) };
        let filling = fill_many.is_some() || fill_one.is_some();
        let (sig_ids, sigs) = intern(many.iter().chain(one.iter()).map(|s| signature(&s.labels, matching)));
        let (many_sig, one_sig) = sig_ids.split_at(many.len());
        let mut builder = SeriesBuilder::new();
        // Output series per (many, one) pair: row = many index (last row: many side filled),
        // a short list of (one index, output slot) because matches rarely change over time.
        let mut slot_cache: Vec<Vec<(Option<usize>, usize)>> = vec![Vec::new(); many.len() + 1];
        // Per-step tables indexed by signature id, reset after each step.
        let mut one_by_sig: Vec<Option<StepSample>> = vec![None; sigs.len()];
        let mut matched_sigs: Vec<bool> = vec![false; sigs.len()];
        let mut used_one: Vec<bool> = vec![false; one.len()];
        let mut inserted: Vec<usize> = Vec::new();
        let mut seen_slot: Vec<bool> = Vec::new();
        let (mut mc, mut oc) = (StepCursor::new(many), StepCursor::new(one));
        let (mut ms, mut os): (Vec<StepSample>, Vec<StepSample>) = (Vec::new(), Vec::new());
        let one_side = if swapped { "left" } else { "right" };
        for t in self.grid.iter() {
            self.sh.check()?;
            mc.at(t, &mut ms);
            oc.at(t, &mut os);
            for x in &os {
                let sig = one_sig[x.series];
                if let Some(prev) = one_by_sig[sig] {
                    let sig = &sigs[sig];
                    let mut pair = [go_labels(&one[x.series].labels), go_labels(&one[prev.series].labels)];
                    pair.sort();
                    return Err(QueryError::Execution(format!(
                        "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        go_labels(sig),
                        one_side,
                        pair[0],
                        pair[1]
                    )));
                }
                one_by_sig[sig] = Some(*x);
            }

            let mut pairs: Vec<(Option<StepSample>, Option<StepSample>)> = Vec::new();
            for x in &ms {
                let sig = many_sig[x.series];
                match one_by_sig[sig] {
                    Some(o) => {
                        if one_to_one && std::mem::replace(&mut matched_sigs[sig], true) {
                            return Err(QueryError::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()));
                        }
                        used_one[o.series] = true;
                        pairs.push((Some(*x), Some(o)));
                    }
                    None if fill_one.is_some() => pairs.push((Some(*x), None)),
                    None => {}
                }
            }
            if fill_many.is_some() {
                for o in &os {
                    if !used_one[o.series] {
                        pairs.push((None, Some(*o)));
                    }
                }
            }
            for s in inserted.drain(..) {
                seen_slot[s] = false;
            }
            for (mx, ox) in pairs {
                let mv = mx.map(|x| x.v).or(fill_many).unwrap_or(f64::NAN);
                let ov = ox.map(|x| x.v).or(fill_one).unwrap_or(f64::NAN);
                let (lv, rv) = if swapped { (ov, mv) } else { (mv, ov) };
                let (mut val, keep) = apply_op(op, lv, rv)?;
                if return_bool {
                    val = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                let row = mx.map(|x| x.series).unwrap_or(many.len());
                let one_idx = ox.map(|x| x.series);
                let slot = match slot_cache[row].iter().find(|(o, _)| *o == one_idx) {
                    Some((_, slot)) => *slot,
                    None => {
                        let m = match (mx, ox) {
                            (Some(a), Some(b)) => result_metric(
                                &many[a.series].labels,
                                Some(&one[b.series].labels),
                                matching,
                                one_to_one,
                                &include,
                            ),
                            (Some(a), None) => {
                                result_metric(&many[a.series].labels, None, matching, one_to_one, &include)
                            }
                            (None, Some(b)) => result_metric(&one[b.series].labels, None, matching, true, &[]),
                            (None, None) => Labels::default(),
                        };
                        let dn = drop_name || mx.is_none_or(|x| many[x.series].drop_name);
                        let slot = if filling && dn {
                            builder.slot(m.without_metric_name(), false)
                        } else {
                            builder.slot(m.clone(), dn)
                        };
                        slot_cache[row].push((one_idx, slot));
                        slot
                    }
                };
                if seen_slot.len() <= slot {
                    seen_slot.resize(slot + 1, false);
                }
                if !one_to_one && std::mem::replace(&mut seen_slot[slot], true) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches".into(),
                    ));
                }
                if !one_to_one {
                    inserted.push(slot);
                }
                builder.push_slot(slot, t, val)?;
            }
            for x in &os {
                one_by_sig[one_sig[x.series]] = None;
                used_one[x.series] = false;
            }
            for x in &ms {
                matched_sigs[many_sig[x.series]] = false;
            }
        }
        let out = builder.finish();
        self.sh.add_samples(out.iter().map(|s| s.points.len()).sum())?;
        Ok(out)
    }
}

/// Go's `labels.Labels.String()`: every label inside braces, `__name__` included.
pub fn go_labels(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", parts.join(", "))
}

/// The labels of a binary operation's result (Prometheus' `resultMetric`; the name is kept and
/// dropped at the end of the query when the operation changes the metric's meaning).
fn result_metric(
    lhs: &Labels,
    rhs: Option<&Labels>,
    matching: Option<&LabelModifier>,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut out = lhs.clone();
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(ls)) => out = out.keep(&ls.labels),
            Some(LabelModifier::Exclude(ls)) => out = out.drop_names(&ls.labels),
            None => {}
        }
        return out;
    }
    if let Some(rhs) = rhs {
        for name in include {
            match rhs.get(name) {
                Some(v) => out.set(name, v),
                None => out.remove(name),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql_parser::label::Labels as PLabels;

    #[test]
    fn comparison_keeps_lhs_value() {
        assert_eq!(apply_op(token::T_GTR, 3.0, 1.0).unwrap(), (3.0, true));
        assert_eq!(apply_op(token::T_EQLC, 3.0, 1.0).unwrap(), (3.0, false));
        assert_eq!(apply_op(token::T_MOD, -7.0, 3.0).unwrap().0, -1.0);
        assert!(apply_op(token::T_LAND, 1.0, 1.0).is_err());
    }

    #[test]
    fn signatures_and_result_labels() {
        let l = Labels::from_pairs([("__name__", "m"), ("a", "1"), ("b", "2")]);
        let on = LabelModifier::Include(PLabels::new(vec!["a"]));
        let ignoring = LabelModifier::Exclude(PLabels::new(vec!["a"]));
        assert_eq!(signature(&l, Some(&on)), Labels::from_pairs([("a", "1")]));
        assert_eq!(signature(&l, Some(&ignoring)), Labels::from_pairs([("b", "2")]));
        assert_eq!(signature(&l, None), Labels::from_pairs([("a", "1"), ("b", "2")]));
        let rhs = Labels::from_pairs([("a", "1"), ("c", "3")]);
        let out = result_metric(&l, Some(&rhs), Some(&on), false, &["c".to_string(), "b".to_string()]);
        assert_eq!(out, Labels::from_pairs([("__name__", "m"), ("a", "1"), ("c", "3")]));
        assert_eq!(go_labels(&l), "{__name__=\"m\", a=\"1\", b=\"2\"}");
    }
}
