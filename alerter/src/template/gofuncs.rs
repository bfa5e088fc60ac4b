//! Go `text/template` builtins that gtmpl 0.7 gets wrong for alert templates, replaced by ours:
//! `printf` (gtmpl stores integral floats as integers, so `printf "%.2f" $value` failed) and the
//! comparisons `eq ne lt le gt ge` (gtmpl cannot compare an integer with a float). `$value` is
//! handed to templates as Go's `%v` text of the float (gtmpl also truncates negative floats), so
//! these functions, like Prometheus' own (`convertToFloat`), accept numeric strings as numbers.
//! `printf` supports the verbs `v s d f F e E g G q x X t %` with flags `-+ 0` and width/precision.

use std::cmp::Ordering;

use gtmpl::{FuncError, Value};

use super::funcs::go_shortest;
use super::gofmt::format_g;

/// The builtins this module replaces, registered after gtmpl's.
pub const OVERRIDES: &[(&str, gtmpl::Func)] =
    &[("printf", printf), ("eq", eq), ("ne", ne), ("lt", lt), ("le", le), ("gt", gt), ("ge", ge)];

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

/// A value as a number: any gtmpl number, or a string that parses as one.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => {
            n.as_f64().or_else(|| n.as_i64().map(|i| i as f64)).or_else(|| n.as_u64().map(|u| u as f64))
        }
        Value::String(s) => crowsnest_wire::api::parse_value(s.trim()),
        _ => None,
    }
}

/// Go's `%v` text of a value.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) => go_shortest(f),
            None => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::NoValue => String::new(),
        Value::Nil => "<nil>".into(),
        other => other.to_string(),
    }
}

fn compare(a: &Value, b: &Value) -> Result<Ordering, FuncError> {
    let numeric = matches!(a, Value::Number(_)) || matches!(b, Value::Number(_));
    match (a, b) {
        _ if numeric => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| err("cannot compare NaN")),
            _ => Err(err(format!("incompatible types for comparison: {a} and {b}"))),
        },
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::NoValue | Value::Nil, Value::NoValue | Value::Nil) => Ok(Ordering::Equal),
        (Value::NoValue | Value::Nil, Value::String(y)) => Ok("".cmp(y.as_str())),
        (Value::String(x), Value::NoValue | Value::Nil) => Ok(x.as_str().cmp("")),
        _ => Err(err(format!("incompatible types for comparison: {a} and {b}"))),
    }
}

fn two<'a>(args: &'a [Value], name: &str) -> Result<(&'a Value, &'a Value), FuncError> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(err(format!("{name}: expected 2 arguments"))),
    }
}

/// `eq a b c…`: true when `a` equals any of the others (Go semantics).
pub fn eq(args: &[Value]) -> Result<Value, FuncError> {
    let Some((first, rest)) = args.split_first().filter(|(_, r)| !r.is_empty()) else {
        return Err(err("eq: expected at least 2 arguments"));
    };
    for r in rest {
        if compare(first, r)? == Ordering::Equal {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

pub fn ne(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two(args, "ne")?;
    Ok(Value::Bool(compare(a, b)? != Ordering::Equal))
}

pub fn lt(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two(args, "lt")?;
    Ok(Value::Bool(compare(a, b)? == Ordering::Less))
}

pub fn le(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two(args, "le")?;
    Ok(Value::Bool(compare(a, b)? != Ordering::Greater))
}

pub fn gt(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two(args, "gt")?;
    Ok(Value::Bool(compare(a, b)? == Ordering::Greater))
}

pub fn ge(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two(args, "ge")?;
    Ok(Value::Bool(compare(a, b)? != Ordering::Less))
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn go_exp(x: f64, prec: usize, upper: bool) -> String {
    if !x.is_finite() {
        return go_shortest(x);
    }
    let s = format!("{x:.prec$e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let out = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    if upper { out.to_uppercase() } else { out }
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    let num = || number(arg);
    let body = match verb {
        'v' | 's' => {
            let t = text(arg);
            match spec.prec {
                Some(p) if verb == 's' => t.chars().take(p).collect(),
                _ => t,
            }
        }
        'q' => format!("{:?}", text(arg)),
        't' => text(arg),
        'd' => match num() {
            Some(x) if x.fract() == 0.0 && x.is_finite() => format!("{}", x as i64),
            _ => format!("%!d({})", text(arg)),
        },
        'f' | 'F' => match num() {
            Some(x) if x.is_finite() => format!("{x:.*}", spec.prec.unwrap_or(6)),
            Some(x) => go_shortest(x),
            None => format!("%!f({})", text(arg)),
        },
        'e' | 'E' => {
            num().map_or_else(|| format!("%!e({})", text(arg)), |x| go_exp(x, spec.prec.unwrap_or(6), verb == 'E'))
        }
        'g' | 'G' => num().map_or_else(
            || format!("%!g({})", text(arg)),
            |x| {
                let s = spec.prec.map_or_else(|| go_shortest(x), |p| format_g(x, p.max(1)));
                if verb == 'G' { s.to_uppercase() } else { s }
            },
        ),
        'x' | 'X' => {
            let s = match num() {
                Some(x) if x.fract() == 0.0 && x.is_finite() && matches!(arg, Value::Number(_)) => {
                    format!("{:x}", x as i64)
                }
                _ => text(arg).bytes().map(|b| format!("{b:02x}")).collect(),
            };
            if verb == 'X' { s.to_uppercase() } else { s }
        }
        other => format!("%!{other}({})", text(arg)),
    };
    let numeric = matches!(verb, 'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G');
    let body = if numeric && !body.starts_with('-') && (spec.plus || spec.space) {
        format!("{}{body}", if spec.plus { '+' } else { ' ' })
    } else {
        body
    };
    let len = body.chars().count();
    match spec.width {
        Some(w) if w > len => {
            let pad = w - len;
            if spec.minus {
                format!("{body}{}", " ".repeat(pad))
            } else if spec.zero && numeric {
                let (sign, digits) =
                    if body.starts_with(['-', '+', ' ']) { body.split_at(1) } else { ("", body.as_str()) };
                format!("{sign}{}{digits}", "0".repeat(pad))
            } else {
                format!("{}{body}", " ".repeat(pad))
            }
        }
        _ => body,
    }
}

/// Go's `fmt.Sprintf` for the verbs above.
pub fn printf(args: &[Value]) -> Result<Value, FuncError> {
    let Some(Value::String(f)) = args.first() else {
        return Err(err("printf: the first argument must be a format string"));
    };
    let mut out = String::new();
    let mut rest = args[1..].iter();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&fl) = chars.peek() {
            match fl {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize).min(1000));
                chars.next();
            }
            n
        };
        spec.width = digits(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(digits(&mut chars).unwrap_or(0));
        }
        match chars.next() {
            None => out.push_str("%!(NOVERB)"),
            Some('%') => out.push('%'),
            Some(verb) => match rest.next() {
                Some(arg) => out.push_str(&format_one(verb, &spec, arg)),
                None => out.push_str(&format!("%!{verb}(MISSING)")),
            },
        }
    }
    let extra: Vec<String> = rest.map(text).collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    Ok(Value::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(args: &[Value]) -> String {
        printf(args).unwrap().to_string()
    }

    #[test]
    fn printf_like_go() {
        assert_eq!(pf(&[Value::from("%.2f"), Value::from("1234567")]), "1234567.00");
        assert_eq!(
            pf(&[Value::from("%.2f|%d|%s"), Value::from(95.0), Value::from(3.0), Value::from("x")]),
            "95.00|3|x"
        );
        assert_eq!(
            pf(&[
                Value::from("%5.1f|%-4d|%04d|%+d"),
                Value::from("2.25"),
                Value::from(7.0),
                Value::from(-7.0),
                Value::from(5.0)
            ]),
            "  2.2|7   |-007|+5"
        );
        assert_eq!(
            pf(&[
                Value::from("%e %g %v %q %x %%"),
                Value::from(1234.5),
                Value::from("0.5"),
                Value::from("-2.5"),
                Value::from("a"),
                Value::from(255.0)
            ]),
            "1.234500e+03 0.5 -2.5 \"a\" ff %"
        );
        assert_eq!(pf(&[Value::from("%d %s")]), "%!d(MISSING) %!s(MISSING)");
        assert_eq!(pf(&[Value::from("x"), Value::from(1.0)]), "x%!(EXTRA 1)");
        assert!(printf(&[Value::from(1.0)]).is_err());
    }

    #[test]
    fn comparisons_mix_numbers_and_strings() {
        let t = |v: Result<Value, FuncError>| v.unwrap().to_string();
        assert_eq!(t(gt(&[Value::from("95"), Value::from(80.5)])), "true");
        assert_eq!(t(lt(&[Value::from("-2.5"), Value::from(-2.0)])), "true");
        assert_eq!(t(ge(&[Value::from(3.0), Value::from(3.0)])), "true");
        assert_eq!(t(eq(&[Value::from("critical"), Value::from("warning"), Value::from("critical")])), "true");
        assert_eq!(t(ne(&[Value::from("a"), Value::from("a")])), "false");
        assert_eq!(t(le(&[Value::from("b"), Value::from("a")])), "false");
        assert!(gt(&[Value::from("abc"), Value::from(1.0)]).is_err());
        assert!(eq(&[Value::from(1.0)]).is_err());
    }
}
