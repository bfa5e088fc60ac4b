//! `label_replace` and `label_join`. Mirrors Prometheus' `funcLabelReplace` / `funcLabelJoin`:
//! the regex is fully anchored, `$1`/`${name}` expand like Go's `Regexp.ExpandString`, an empty
//! result removes the label, and writing `__name__` cancels the delayed name removal.

use regex::Regex;

use crate::engine::QueryError;
use crate::eval::Evaluator;
use crate::value::{Series, SeriesBuilder, Value};
use promql_parser::parser::Expr;

fn string_arg(ev: &Evaluator<'_, '_>, e: &Expr) -> Result<String, QueryError> {
    match ev.eval(e)? {
        Value::String(s) => Ok(s),
        _ => Err(QueryError::BadData("expected string argument".into())),
    }
}

/// Label names are any non-empty valid UTF-8 (Prometheus 3 UTF-8 names).
fn valid_label_name(n: &str) -> bool {
    !n.is_empty()
}

/// Re-keys series after their labels changed, failing on a label-set collision within a step.
fn rebuild(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let mut b = SeriesBuilder::new();
    let mut all: Vec<(usize, crate::value::FPoint)> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        all.extend(s.points.iter().map(|p| (i, *p)));
    }
    all.sort_by_key(|(i, p)| (p.t, *i));
    for (i, p) in all {
        b.push(series[i].labels.clone(), series[i].drop_name, p.t, p.v)?;
    }
    Ok(b.finish())
}

pub fn label_replace(ev: &Evaluator<'_, '_>, args: &[&Expr]) -> Result<Value, QueryError> {
    let mut v = ev.eval_vector(args[0])?;
    let dst = string_arg(ev, args[1])?;
    let repl = string_arg(ev, args[2])?;
    let src = string_arg(ev, args[3])?;
    let re_src = string_arg(ev, args[4])?;
    let re = Regex::new(&format!("^(?s:{re_src})$"))
        .map_err(|_| QueryError::Execution(format!("invalid regular expression in label_replace(): {re_src}")))?;
    if !valid_label_name(&dst) {
        return Err(QueryError::Execution(format!("invalid destination label name in label_replace(): {dst}")));
    }
    for s in &mut v {
        let val = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&val) {
            let mut out = String::new();
            caps.expand(&repl, &mut out);
            s.labels.set(&dst, &out);
            if dst == crowsnest_wire::METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    Ok(Value::Vector(rebuild(v)?))
}

pub fn label_join(ev: &Evaluator<'_, '_>, args: &[&Expr]) -> Result<Value, QueryError> {
    let mut v = ev.eval_vector(args[0])?;
    let dst = string_arg(ev, args[1])?;
    let sep = string_arg(ev, args[2])?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        srcs.push(string_arg(ev, a)?);
    }
    if !valid_label_name(&dst) {
        return Err(QueryError::Execution(format!("invalid destination label name in label_join(): {dst}")));
    }
    for s in &mut v {
        let joined = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect::<Vec<_>>().join(&sep);
        s.labels.set(&dst, &joined);
        if dst == crowsnest_wire::METRIC_NAME {
            s.drop_name = false;
        }
    }
    Ok(Value::Vector(rebuild(v)?))
}

#[cfg(test)]
mod tests {
    use crowsnest_wire::api::QueryData;
    use crowsnest_wire::{Labels, Sample};
    use tokio_util::sync::CancellationToken;

    use crate::{Engine, MemStorage, QueryError};

    fn run(q: &str) -> Result<Vec<std::collections::BTreeMap<String, String>>, QueryError> {
        let s = MemStorage::new();
        s.add(
            Labels::from_pairs([("__name__", "up"), ("instance", "host:9100"), ("job", "node")]),
            [Sample::new(0, 1.0)],
        );
        s.add(
            Labels::from_pairs([("__name__", "up"), ("instance", "other:9100"), ("job", "node")]),
            [Sample::new(0, 1.0)],
        );
        match Engine::default().instant(&s, q, 0, &CancellationToken::new())?.data {
            QueryData::Vector(v) => Ok(v.into_iter().map(|s| s.metric).collect()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replace_expands_groups_and_keeps_on_mismatch() {
        let got = run(r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#).unwrap();
        assert!(got.iter().any(|m| m.get("host").map(String::as_str) == Some("host")));
        let got = run(r#"label_replace(up, "host", "$1", "instance", "nomatch")"#).unwrap();
        assert!(got.iter().all(|m| !m.contains_key("host")));
        assert!(run(r#"label_replace(up, "host", "$1", "instance", "(")"#).is_err());
    }

    #[test]
    fn join_and_collisions() {
        let got = run(r#"label_join(up, "both", "/", "job", "instance")"#).unwrap();
        assert!(got.iter().any(|m| m.get("both").map(String::as_str) == Some("node/host:9100")));
        // Overwriting the only distinguishing label makes two identical series.
        assert!(run(r#"label_replace(up, "instance", "x", "", "")"#).is_err());
    }
}
