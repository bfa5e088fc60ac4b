//! Prometheus' template functions (`template/template.go` in prometheus/prometheus) for gtmpl.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use gtmpl::{Func, FuncError, Value};
use regex::Regex;

use super::gofmt::format_g;

/// The functions registered on every alert template.
pub const FUNCS: &[(&str, Func)] = &[
    ("humanize", humanize),
    ("humanize1024", humanize1024),
    ("humanizeDuration", humanize_duration),
    ("humanizePercentage", humanize_percentage),
    ("humanizeTimestamp", humanize_timestamp),
    ("toUpper", to_upper),
    ("toLower", to_lower),
    ("title", title),
    ("match", match_re),
    ("reReplaceAll", re_replace_all),
    ("stripPort", strip_port),
    ("stripDomain", strip_domain),
    ("parseDuration", parse_duration),
    ("urlQueryEscape", url_query_escape),
];

fn err(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

/// Prometheus' `convertToFloat`: numbers as they are, strings parsed.
fn float_arg(args: &[Value], name: &str) -> Result<f64, FuncError> {
    match args {
        [v @ (Value::Number(_) | Value::String(_))] => {
            super::gofuncs::number(v).ok_or_else(|| err(format!("{name}: can't convert {v} to float")))
        }
        [Value::Bool(_)] | [Value::Nil] => Err(err(format!("{name}: can't convert to float"))),
        _ => Err(err(format!("{name}: expected exactly one argument"))),
    }
}

fn str_arg(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::NoValue | Value::Nil) => Ok(String::new()),
        Some(other) => Ok(other.to_string()),
        None => Err(err(format!("{name}: missing argument {}", i + 1))),
    }
}

fn humanize_base(v: f64, base: f64, big: &[&str], small: &[&str]) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, 4);
    }
    let mut v = v;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in big {
            if v.abs() < base {
                break;
            }
            prefix = p;
            v /= base;
        }
    } else {
        for p in small {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= base;
        }
    }
    format!("{}{prefix}", format_g(v, 4))
}

pub fn humanize(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args, "humanize")?;
    Ok(Value::from(humanize_base(
        v,
        1000.0,
        &["k", "M", "G", "T", "P", "E", "Z", "Y"],
        &["m", "u", "n", "p", "f", "a", "z", "y"],
    )))
}

pub fn humanize1024(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args, "humanize1024")?;
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return Ok(Value::from(format_g(v, 4)));
    }
    Ok(Value::from(humanize_base(v, 1024.0, &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"], &[])))
}

pub fn humanize_duration(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args, "humanizeDuration")?;
    if v.is_nan() || v.is_infinite() {
        return Ok(Value::from(format_g(v, 4)));
    }
    if v == 0.0 {
        return Ok(Value::from("0s"));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let a = v.abs();
        let d = a as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        let out = if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", format_g(a, 4))
        };
        return Ok(Value::from(out));
    }
    let mut v = v;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    Ok(Value::from(format!("{}{prefix}s", format_g(v, 4))))
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`.
pub fn go_shortest(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        format!("{v}")
    }
}

pub fn humanize_percentage(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args, "humanizePercentage")?;
    Ok(Value::from(format!("{}%", format_g(v * 100.0, 4))))
}

pub fn humanize_timestamp(args: &[Value]) -> Result<Value, FuncError> {
    let v = float_arg(args, "humanizeTimestamp")?;
    if v.is_nan() || v.is_infinite() {
        return Ok(Value::from(format_g(v, 4)));
    }
    // Prometheus: `model.TimeFromUnixNano(int64(v * 1e9)).Time().UTC()` (millisecond precision,
    // truncated toward zero), printed with `time.Time.String`, whose fraction drops trailing zeros.
    let ms = ((v * 1e9) as i64) / 1_000_000;
    let t = DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| err("humanizeTimestamp: out of range"))?;
    let nanos = t.timestamp_subsec_nanos();
    let frac = if nanos == 0 { String::new() } else { format!(".{nanos:09}").trim_end_matches('0').to_string() };
    Ok(Value::from(format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))))
}

pub fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(str_arg(args, 0, "toUpper")?.to_uppercase()))
}

pub fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(str_arg(args, 0, "toLower")?.to_lowercase()))
}

/// Go's `strings.Title`: upper-cases the first letter of every word.
pub fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    Ok(Value::from(out))
}

fn regex_for(pattern: &str) -> Result<Regex, FuncError> {
    Regex::new(pattern).map_err(|e| err(format!("bad regexp: {e}")))
}

pub fn match_re(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex_for(&str_arg(args, 0, "match")?)?;
    Ok(Value::Bool(re.is_match(&str_arg(args, 1, "match")?)))
}

pub fn re_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    let re = regex_for(&str_arg(args, 0, "reReplaceAll")?)?;
    let repl = str_arg(args, 1, "reReplaceAll")?;
    let text = str_arg(args, 2, "reReplaceAll")?;
    Ok(Value::from(re.replace_all(&text, repl.as_str()).into_owned()))
}

pub fn strip_port(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "stripPort")?;
    static V6: OnceLock<Option<Regex>> = OnceLock::new();
    let v6 = V6.get_or_init(|| Regex::new(r"^\[(.*)\]:\d+$").ok());
    if let Some(c) = v6.as_ref().and_then(|r| r.captures(&s)) {
        return Ok(Value::from(c.get(1).map_or("", |m| m.as_str())));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => Ok(Value::from(host)),
        _ => Ok(Value::from(s)),
    }
}

pub fn strip_domain(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "stripDomain")?;
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h.to_string(), format!(":{p}")),
        _ => (s.clone(), String::new()),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(Value::from(s));
    }
    let short = host.split('.').next().unwrap_or("");
    Ok(Value::from(format!("{short}{port}")))
}

pub fn parse_duration(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "parseDuration")?;
    let ms = crowsnest_wire::duration::parse_duration_ms(&s).map_err(|e| err(e.to_string()))?;
    Ok(Value::from(ms as f64 / 1000.0))
}

pub fn url_query_escape(args: &[Value]) -> Result<Value, FuncError> {
    let s = str_arg(args, 0, "urlQueryEscape")?;
    Ok(Value::from(url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(f: Func, v: Value) -> String {
        f(&[v]).unwrap().to_string()
    }

    #[test]
    fn humanizers_match_prometheus() {
        assert_eq!(call(humanize, Value::from(0.0)), "0");
        assert_eq!(call(humanize, Value::from(1.0)), "1");
        assert_eq!(call(humanize, Value::from(1234.0)), "1.234k");
        assert_eq!(call(humanize, Value::from(0.0123)), "12.3m");
        assert_eq!(call(humanize, Value::from("2500")), "2.5k");
        assert_eq!(call(humanize1024, Value::from(1024.0 * 1024.0)), "1Mi");
        assert_eq!(call(humanize1024, Value::from(1.0)), "1");
        assert_eq!(call(humanize_duration, Value::from(0.0)), "0s");
        assert_eq!(call(humanize_duration, Value::from(3.5)), "3.5s");
        assert_eq!(call(humanize_duration, Value::from(65.0)), "1m 5s");
        assert_eq!(call(humanize_duration, Value::from(3600.0)), "1h 0m 0s");
        assert_eq!(call(humanize_duration, Value::from(0.25)), "250ms");
        assert_eq!(call(humanize_duration, Value::from(-65.0)), "-1m 5s");
        assert_eq!(call(humanize_percentage, Value::from(0.5)), "50%");
        assert_eq!(call(humanize_timestamp, Value::from(0.0)), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(call(humanize_timestamp, Value::from("-2.5")), "1969-12-31 23:59:57.5 +0000 UTC");
        assert_eq!(call(humanize_timestamp, Value::from("0.000123")), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(call(humanize_timestamp, Value::from("1.25")), "1970-01-01 00:00:01.25 +0000 UTC");
        assert_eq!(call(parse_duration, Value::from("1m30s")), "90");
        assert_eq!(call(strip_domain, Value::from("foo.example.com:9100")), "foo:9100");
        assert_eq!(call(strip_port, Value::from("[::1]:9100")), "::1");
        assert_eq!(call(url_query_escape, Value::from("a b&c")), "a+b%26c");
        assert!(humanize(&[Value::from("x")]).is_err());
        assert_eq!(call(humanize, Value::from("+Inf")), "+Inf");
        assert_eq!(call(humanize, Value::from("-2.5")), "-2.5");
        assert_eq!(go_shortest(1234567.0), "1.234567e+06");
        assert_eq!(go_shortest(123456.0), "123456");
        assert_eq!(go_shortest(1e6), "1e+06");
        assert_eq!(go_shortest(0.0001), "0.0001");
        assert_eq!(go_shortest(0.00001), "1e-05");
        assert_eq!(go_shortest(-2.5), "-2.5");
        assert_eq!(go_shortest(0.1 + 0.2), "0.30000000000000004");
    }

    proptest::proptest! {
        #[test]
        fn humanize_never_panics(v in proptest::num::f64::ANY) {
            let _ = humanize(&[Value::from(v)]);
            let _ = humanize1024(&[Value::from(v)]);
            let _ = humanize_duration(&[Value::from(v)]);
        }
    }
}
