//! `sort`, `sort_desc`, `sort_by_label`, `sort_by_label_desc`. Ordering only matters for instant
//! queries; range results are always sorted by labels, so a range query gets Prometheus' warning.
//! `sort_by_label` compares label values in natural order, then the full label sets.

use std::cmp::Ordering;

use promql_parser::parser::Expr;

use crate::engine::QueryError;
use crate::eval::Evaluator;
use crate::value::{Series, Value};

/// Natural ("human") string order: digit runs compare by numeric value.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

fn value_at_end(s: &Series) -> f64 {
    s.points.last().map(|p| p.v).unwrap_or(f64::NAN)
}

pub fn sort(ev: &Evaluator<'_, '_>, name: &str, args: &[&Expr]) -> Result<Value, QueryError> {
    let mut v = ev.eval_vector(args[0])?;
    let mut labels = Vec::new();
    for a in &args[1..] {
        match ev.eval(a)? {
            Value::String(s) => labels.push(s),
            _ => return Err(QueryError::BadData("expected string argument".into())),
        }
    }
    if ev.grid.len() > 1 {
        ev.sh.warn("sort is ineffective for range queries since results are always ordered by labels", name);
        return Ok(Value::Vector(v));
    }
    match name {
        "sort" | "sort_desc" => {
            let desc = name == "sort_desc";
            v.sort_by(|a, b| {
                let (x, y) = (value_at_end(a), value_at_end(b));
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ if desc => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                    _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                }
            });
        }
        _ => {
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let mut o = Ordering::Equal;
                for l in &labels {
                    let (x, y) = (a.labels.get(l).unwrap_or(""), b.labels.get(l).unwrap_or(""));
                    if x != y {
                        o = natural_cmp(x, y);
                        break;
                    }
                }
                if o == Ordering::Equal {
                    o = a.labels.cmp(&b.labels);
                }
                if desc { o.reverse() } else { o }
            });
        }
    }
    Ok(Value::Vector(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    }
}
