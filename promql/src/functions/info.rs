//! `info(v, [data-label selector])`: enriches series with the data labels of info metrics
//! (`target_info` by default) that share their identifying labels (`instance`, `job`). Follows
//! Prometheus' `promql/info.go` as its promqltest `info.test` encodes it: info series are looked
//! up as of the base sample's time (honouring `@`/`offset` of a plain selector argument), the
//! newest of churning info series wins, different info metrics with conflicting values fail, and
//! without a matching info series a sample passes unchanged only if the data matchers accept empty
//! labels.

use std::collections::BTreeMap;

use crowsnest_wire::{Labels, METRIC_NAME, MatchOp, Matcher, is_stale_nan};
use promql_parser::parser::Expr;

use crate::engine::QueryError;
use crate::eval::selector::matcher_sets;
use crate::eval::{Evaluator, offset_ms};
use crate::value::{FPoint, SeriesBuilder, StepCursor, Value};

const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// Evaluation-time shift of the base argument: `(at, offset)` of a plain selector.
fn reference(ev: &Evaluator<'_, '_>, e: &Expr) -> (Option<i64>, i64) {
    match e {
        Expr::VectorSelector(vs) => (ev.at_ms(&vs.at), offset_ms(&vs.offset)),
        Expr::Paren(p) => reference(ev, &p.expr),
        Expr::Call(c) if c.args.args.len() == 1 => reference(ev, &c.args.args[0]),
        Expr::Subquery(sq) => {
            let (a, o) = (ev.at_ms(&sq.at), offset_ms(&sq.offset));
            let (ia, io) = reference(ev, &sq.expr);
            (ia.or(a), o + io)
        }
        _ => (None, 0),
    }
}

pub fn info(ev: &Evaluator<'_, '_>, args: &[&Expr]) -> Result<Value, QueryError> {
    let base = ev.eval_vector(args[0])?;
    let (mut name_m, mut data_m): (Vec<Matcher>, Vec<Matcher>) = (Vec::new(), Vec::new());
    if let Some(sel) = args.get(1) {
        let Expr::VectorSelector(vs) = sel else {
            return Err(QueryError::BadData("info() expects a label selector as second argument".into()));
        };
        for m in matcher_sets(vs)?.into_iter().flatten() {
            if m.name == METRIC_NAME { name_m.push(m) } else { data_m.push(m) }
        }
    }
    if name_m.is_empty() {
        name_m.push(Matcher::equal(METRIC_NAME, "target_info"));
    }
    let has_positive = name_m.iter().any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex));
    // Only negative name matchers: the candidates are the info metrics (`*_info`) they leave.
    let mut select_m = name_m.clone();
    if !has_positive {
        select_m.push(
            Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info").map_err(|e| QueryError::BadData(e.to_string()))?,
        );
    }
    let empty_ok = data_m.iter().all(|m| m.matches_empty());
    let (at, offset) = reference(ev, args[0]);
    let lookback = ev.sh.opts.lookback_delta_ms;
    let (lo, hi) = match at {
        Some(a) => (a - offset, a - offset),
        None => (ev.grid.start - offset, ev.grid.end - offset),
    };
    // Info series: labels and samples.
    let mut infos: Vec<(Labels, Vec<FPoint>)> = Vec::new();
    for s in ev.sh.storage.select(&select_m, lo - lookback + 1, hi)? {
        let s = s?;
        infos.push((s.labels, s.samples.iter().map(|x| FPoint { t: x.timestamp, v: x.value }).collect()));
    }
    let value_at = |pts: &[FPoint], t: i64| -> Option<i64> {
        let i = pts.partition_point(|p| p.t <= t);
        (i > 0 && pts[i - 1].t > t - lookback && !is_stale_nan(pts[i - 1].v)).then(|| pts[i - 1].t)
    };
    let mut builder = SeriesBuilder::new();
    let mut cursor = StepCursor::new(&base);
    let mut samples = Vec::new();
    for t in ev.grid.iter() {
        ev.sh.check()?;
        cursor.at(t, &mut samples);
        let rt = at.unwrap_or(t) - offset;
        for s in &samples {
            let b = &base[s.series];
            let is_info = has_positive && name_m.iter().all(|m| m.matches_labels(&b.labels));
            let ident: Vec<&str> = IDENTIFYING.iter().map(|n| b.labels.get(n).unwrap_or("")).collect();
            if is_info || ident.iter().all(|v| v.is_empty()) {
                builder.push(b.labels.clone(), b.drop_name, t, s.v)?;
                continue;
            }
            // Newest matching info series per info metric name.
            let mut best: BTreeMap<&str, (i64, &Labels)> = BTreeMap::new();
            for (l, pts) in &infos {
                if IDENTIFYING.iter().zip(&ident).any(|(n, v)| l.get(n).unwrap_or("") != *v) {
                    continue;
                }
                if !data_m.iter().all(|m| m.matches_labels(l)) {
                    continue;
                }
                if let Some(ts) = value_at(pts, rt) {
                    let name = l.metric_name().unwrap_or("");
                    if best.get(name).is_none_or(|(bt, _)| ts > *bt) {
                        best.insert(name, (ts, l));
                    }
                }
            }
            if best.is_empty() {
                if empty_ok {
                    builder.push(b.labels.clone(), b.drop_name, t, s.v)?;
                }
                continue;
            }
            let mut out = b.labels.clone();
            let mut added: BTreeMap<String, String> = BTreeMap::new();
            for (_, l) in best.values() {
                for lab in l.iter() {
                    if lab.name == METRIC_NAME
                        || IDENTIFYING.contains(&lab.name.as_str())
                        || b.labels.get(&lab.name).is_some()
                    {
                        continue;
                    }
                    if !data_m.is_empty() && !data_m.iter().any(|m| m.name == lab.name) {
                        continue;
                    }
                    if let Some(prev) = added.get(&lab.name)
                        && *prev != lab.value
                    {
                        return Err(QueryError::Execution(format!(
                            "conflicting label: {}={:?} and {:?} from different info metrics",
                            lab.name, prev, lab.value
                        )));
                    }
                    added.insert(lab.name.clone(), lab.value.clone());
                }
            }
            for (n, v) in &added {
                out.set(n, v);
            }
            builder.push(out, b.drop_name, t, s.v)?;
        }
    }
    Ok(Value::Vector(builder.finish()))
}

#[cfg(test)]
mod tests {
    use crowsnest_wire::api::QueryData;
    use crowsnest_wire::{Labels, Sample};
    use tokio_util::sync::CancellationToken;

    use crate::{Engine, MemStorage};

    #[test]
    fn enriches_from_target_info() {
        let s = MemStorage::new();
        s.add(Labels::from_pairs([("__name__", "m"), ("instance", "a"), ("job", "j")]), [Sample::new(0, 5.0)]);
        s.add(
            Labels::from_pairs([("__name__", "target_info"), ("instance", "a"), ("job", "j"), ("version", "1")]),
            [Sample::new(0, 1.0)],
        );
        let out = Engine::default().instant(&s, "info(m)", 0, &CancellationToken::new()).unwrap();
        let QueryData::Vector(v) = out.data else { panic!("not a vector") };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].metric.get("version").map(String::as_str), Some("1"));
        let out = Engine::default().instant(&s, r#"info(m, {version=~"2.*"})"#, 0, &CancellationToken::new()).unwrap();
        assert_eq!(out.data, QueryData::Vector(Vec::new()));
    }
}
