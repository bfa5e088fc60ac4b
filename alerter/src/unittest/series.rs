//! promtool's input-series notation (`cmd/promtool/unittest.go`, `promql/promqltest`): a series
//! selector `metric{label="value"}` and a values string of space-separated terms: numbers
//! (`1`, `-2.5`, `1e3`, `Inf`, `NaN`), `a+bxN` / `a-bxN` (a then N more samples stepping by b),
//! `axN` (a, N+1 times), `_` (missing), `_xN` (N missing) and `stale` (staleness marker).

use std::collections::BTreeMap;

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};

/// One parsed value term: `None` = no sample at this step.
pub type Slot = Option<f64>;

/// Parses `metric{a="b"}` (name optional) into labels (incl. `__name__`).
pub fn parse_series(s: &str) -> Result<BTreeMap<String, String>, String> {
    let expr = parser::parse(s).map_err(|e| format!("invalid series {s:?}: {}", e.trim()))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("invalid series {s:?}: not a plain series selector"));
    };
    let mut out = BTreeMap::new();
    if let Some(n) = vs.name {
        out.insert(crowsnest_wire::METRIC_NAME.to_string(), n);
    }
    for m in vs.matchers.matchers {
        if m.op != MatchOp::Equal {
            return Err(format!("invalid series {s:?}: only '=' matchers describe a series"));
        }
        out.insert(m.name, m.value);
    }
    Ok(out)
}

fn number(s: &str) -> Result<f64, String> {
    crowsnest_wire::api::parse_value(s).ok_or_else(|| format!("invalid value {s:?}"))
}

/// Splits `a+b` / `a-b` at the operator that is not a leading sign nor an exponent sign.
fn split_step(s: &str) -> Option<(&str, char, &str)> {
    let b = s.as_bytes();
    (1..b.len()).rev().find_map(|i| {
        let c = b[i] as char;
        if (c == '+' || c == '-') && !matches!(b[i - 1], b'e' | b'E') { Some((&s[..i], c, &s[i + 1..])) } else { None }
    })
}

/// Expands a values string into one slot per step.
pub fn parse_values(s: &str) -> Result<Vec<Slot>, String> {
    let mut out = Vec::new();
    for term in s.split_whitespace() {
        if term == "_" {
            out.push(None);
            continue;
        }
        if term == "stale" {
            out.push(Some(crowsnest_wire::stale_nan()));
            continue;
        }
        if term.starts_with("{{") {
            return Err(format!("native histogram values are not supported: {term:?}"));
        }
        let expansion = term
            .rsplit_once('x')
            .filter(|(h, c)| !h.is_empty() && !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
        let Some((head, count)) = expansion else {
            out.push(Some(number(term)?));
            continue;
        };
        let n: usize = count.parse().map_err(|_| format!("invalid repetition in {term:?}"))?;
        if n > 1_000_000 {
            return Err(format!("repetition too large in {term:?}"));
        }
        if head == "_" {
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        let (start, step) = match split_step(head) {
            Some((a, op, b)) => {
                let b = number(b)?;
                (number(a)?, if op == '-' { -b } else { b })
            }
            None => (number(head)?, 0.0),
        };
        out.extend((0..=n).map(|i| Some(start + step * i as f64)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_promtool_notation() {
        assert_eq!(parse_values("-2+4x3").unwrap(), vec![Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]);
        assert_eq!(parse_values(" 1-2x4").unwrap(), vec![Some(1.0), Some(-1.0), Some(-3.0), Some(-5.0), Some(-7.0)]);
        assert_eq!(parse_values("1x2").unwrap(), vec![Some(1.0); 3]);
        assert_eq!(parse_values("1 _x3 2").unwrap(), vec![Some(1.0), None, None, None, Some(2.0)]);
        assert_eq!(parse_values("1e3+1e2x1").unwrap(), vec![Some(1000.0), Some(1100.0)]);
        let v = parse_values("1 stale _ Inf").unwrap();
        assert!(crowsnest_wire::is_stale_nan(v[1].unwrap()));
        assert_eq!(v[2], None);
        assert_eq!(v[3], Some(f64::INFINITY));
        assert!(parse_values("abc").is_err());
        assert!(parse_values("1+x").is_err());
        assert!(parse_values("x").is_err());
    }

    proptest::proptest! {
        #[test]
        fn values_never_panic(s in "[-+0-9x_. a-z{}]{0,30}") {
            let _ = parse_values(&s);
        }

        /// `a+bxN` always yields N+1 samples stepping by b.
        #[test]
        fn expansion_counts(a in -1000i32..1000, b in 0i32..100, n in 0usize..50) {
            let v = parse_values(&format!("{a}+{b}x{n}")).unwrap();
            proptest::prop_assert_eq!(v.len(), n + 1);
            proptest::prop_assert_eq!(v[n], Some(f64::from(a) + f64::from(b) * n as f64));
        }
    }

    #[test]
    fn parses_series_selectors() {
        let l = parse_series(r#"up{job="a", instance="b\"c"}"#).unwrap();
        assert_eq!(l["__name__"], "up");
        assert_eq!(l["instance"], "b\"c");
        assert_eq!(parse_series(r#"{job="a"}"#).unwrap().len(), 1);
        assert!(parse_series(r#"up{job=~"a"}"#).is_err());
        assert!(parse_series("sum(up)").is_err());
    }
}
