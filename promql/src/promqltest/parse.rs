//! Reads a promqltest script into commands (FORMAT.md sections 1–5 and 7.1–7.2): `load` blocks
//! with the series value notation, `clear`, and `eval instant|range` with their expectations.

use crowsnest_wire::Labels;
use crowsnest_wire::duration::parse_duration_ms;
use regex::Regex;

/// One value slot of a loaded or expected series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeqValue {
    Float(f64),
    Stale,
    Omitted,
    /// A native histogram literal (`{{…}}`), which this engine does not store.
    Histogram,
}

/// A series description: labels and expanded values.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesDesc {
    pub labels: Labels,
    pub values: Vec<SeqValue>,
}

/// How an eval runs.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// `msg:`/`regex:`/any expectation on an error or annotation text.
#[derive(Debug, Clone)]
pub enum TextMatch {
    Any,
    Exact(String),
    Regex(Regex),
}

impl TextMatch {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            TextMatch::Any => true,
            TextMatch::Exact(e) => e == s,
            TextMatch::Regex(r) => r.is_match(s),
        }
    }
}

/// One `eval` command.
#[derive(Debug, Clone)]
pub struct EvalCmd {
    pub line: usize,
    pub kind: EvalKind,
    pub expr: String,
    pub fail: Option<TextMatch>,
    pub ordered: bool,
    pub warn: Vec<TextMatch>,
    pub info: Vec<TextMatch>,
    pub any_warn: bool,
    pub any_info: bool,
    pub no_warn: bool,
    pub no_info: bool,
    pub expected: Vec<SeriesDesc>,
    pub scalar: Option<f64>,
    pub string: Option<String>,
    /// `expect range vector from .. to .. step ..`.
    pub range_vector: Option<(i64, i64, i64)>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Load { line: usize, step: i64, series: Vec<SeriesDesc> },
    Clear,
    Eval(Box<EvalCmd>),
}

fn dur(s: &str) -> Result<i64, String> {
    parse_duration_ms(s.trim()).map(|v| v as i64).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// Parses a PromQL number literal as the test files write them.
pub fn parse_number(s: &str) -> Option<f64> {
    parse_number_opts(s, true)
}

/// Like [`parse_number`]; hexadecimal only when `hex` (series descriptions disallow it because
/// `0x5` would be ambiguous with the repeat syntax).
pub fn parse_number_opts(s: &str, hex: bool) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        b if hex && b.starts_with("0x") => i64::from_str_radix(&b[2..], 16).ok()? as f64,
        b if b.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-')) && !b.is_empty() => {
            b.parse().ok()?
        }
        _ => return None,
    };
    Some(if neg { -v } else { v })
}

/// Splits `a+b` / `a-b` at the operator that is not a sign or an exponent sign.
fn split_op(s: &str) -> Option<(&str, char, &str)> {
    let b = s.as_bytes();
    for i in 1..b.len() {
        if (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') {
            return Some((&s[..i], b[i] as char, &s[i + 1..]));
        }
    }
    None
}

/// Expands one value item (FORMAT.md section 5).
fn expand_item(item: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    if item.contains("{{") {
        let n = match item.rfind("}}x") {
            Some(i) => item[i + 3..].parse::<usize>().map_err(|_| format!("bad item {item}"))? + 1,
            None => 1,
        };
        out.extend(std::iter::repeat_n(SeqValue::Histogram, n));
        return Ok(());
    }
    if item == "_" {
        out.push(SeqValue::Omitted);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
        out.extend(std::iter::repeat_n(SeqValue::Omitted, n));
        return Ok(());
    }
    if item == "stale" {
        out.push(SeqValue::Stale);
        return Ok(());
    }
    if let Some(v) = parse_number_opts(item, false) {
        out.push(SeqValue::Float(v));
        return Ok(());
    }
    let i = item.rfind('x').ok_or_else(|| format!("bad value {item:?}"))?;
    let times: usize = item[i + 1..].parse().map_err(|_| format!("bad repeat in {item:?}"))?;
    let head = &item[..i];
    if let Some(v) = parse_number_opts(head, false) {
        out.extend(std::iter::repeat_n(SeqValue::Float(v), times + 1));
        return Ok(());
    }
    let (a, op, b) = split_op(head).ok_or_else(|| format!("bad value {item:?}"))?;
    let mut v = parse_number_opts(a, false).ok_or_else(|| format!("bad number {a:?}"))?;
    let mut d = parse_number_opts(b, false).ok_or_else(|| format!("bad number {b:?}"))?;
    if op == '-' {
        d = -d;
    }
    for _ in 0..=times {
        out.push(SeqValue::Float(v));
        v += d;
    }
    Ok(())
}

/// Splits the value part into items, keeping `{{ … }}` together.
fn split_items(s: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                items.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    items
}

/// Reads a Go-quoted string starting at `s[0]`; returns the value and the bytes consumed.
fn read_quoted(s: &str) -> Result<(String, usize), String> {
    let q = s.chars().next().ok_or("empty")?;
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        if c == q {
            return Ok((out, i + 1));
        }
        if c == '\\' && q != '`' {
            let (_, e) = it.next().ok_or("dangling escape")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' => {
                    let h: String = (0..2).filter_map(|_| it.next().map(|x| x.1)).collect();
                    let b = u8::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                    out.push(char::from(b));
                }
                'u' => {
                    let h: String = (0..4).filter_map(|_| it.next().map(|x| x.1)).collect();
                    let cp = u32::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(cp).ok_or("bad code point")?);
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        } else {
            out.push(c);
        }
    }
    Err(format!("unterminated string in {s:?}"))
}

/// Parses `name{a="b", …} values…`; returns the labels and the value text.
pub fn parse_series_head(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim();
    let name_end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
    let mut pairs: Vec<(String, String)> = Vec::new();
    if name_end > 0 {
        pairs.push(("__name__".into(), line[..name_end].to_string()));
    }
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            }
            let name = if rest.starts_with('"') || rest.starts_with('\'') || rest.starts_with('`') {
                let (n, used) = read_quoted(rest)?;
                rest = &rest[used..];
                n
            } else {
                let e = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                let n = rest[..e].to_string();
                rest = &rest[e..];
                n
            };
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('=') {
                rest = r.trim_start();
                let (v, used) = read_quoted(rest)?;
                rest = &rest[used..];
                pairs.push((name, v));
            } else {
                pairs.push(("__name__".into(), name));
            }
        }
    }
    Ok((Labels::from_pairs(pairs), rest))
}

pub fn parse_series(line: &str) -> Result<SeriesDesc, String> {
    let (labels, rest) = parse_series_head(line)?;
    let mut values = Vec::new();
    for item in split_items(rest) {
        expand_item(&item, &mut values)?;
    }
    Ok(SeriesDesc { labels, values })
}

fn text_match(rest: &str) -> Result<TextMatch, String> {
    let rest = rest.trim();
    if let Some(m) = rest.strip_prefix("msg:") {
        Ok(TextMatch::Exact(m.trim().to_string()))
    } else if let Some(r) = rest.strip_prefix("regex:") {
        Ok(TextMatch::Regex(Regex::new(r.trim()).map_err(|e| e.to_string())?))
    } else {
        Ok(TextMatch::Any)
    }
}

/// Parses a whole script.
pub fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| if l.trim().starts_with('#') { String::new() } else { l.trim().to_string() })
        .collect();
    let inst = Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
        .map_err(|e| e.to_string())?;
    let range = Regex::new(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$")
        .map_err(|e| e.to_string())?;
    let range_vec = Regex::new(r"^\s*from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)").map_err(|x| x.to_string())?;
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let lineno = i + 1;
        let first = l.split_whitespace().next().unwrap_or("").to_lowercase();
        let mut body = Vec::new();
        let mut j = i + 1;
        while j < lines.len() && !lines[j].is_empty() {
            body.push((j + 1, lines[j].clone()));
            j += 1;
        }
        if first == "clear" {
            cmds.push(Command::Clear);
            i += 1;
            continue;
        }
        i = j;
        if first.starts_with("load") {
            let step = dur(l.split_whitespace().nth(1).ok_or("load without step")?)?;
            let mut series: Vec<SeriesDesc> = Vec::new();
            for (n, b) in &body {
                let head = b.split_whitespace().next().unwrap_or("");
                if head.ends_with("@st") {
                    continue;
                }
                let d = parse_series(b).map_err(|e| format!("line {n}: {e}"))?;
                if let Some(p) = series.iter().position(|s| s.labels == d.labels) {
                    series[p] = d;
                } else {
                    series.push(d);
                }
            }
            cmds.push(Command::Load { line: lineno, step, series });
            continue;
        }
        if !first.starts_with("eval") {
            return Err(format!("line {lineno}: invalid command {first:?}"));
        }
        let (suffix, kind, expr) = if let Some(c) = inst.captures(l) {
            let at = dur(c.get(2).map(|m| m.as_str()).unwrap_or(""))?;
            (c.get(1).map(|m| m.as_str().to_string()), EvalKind::Instant { at }, c[3].to_string())
        } else if let Some(c) = range.captures(l) {
            let (start, end, step) = (dur(&c[2])?, dur(&c[3])?, dur(&c[4])?);
            (c.get(1).map(|m| m.as_str().to_string()), EvalKind::Range { start, end, step }, c[5].to_string())
        } else {
            return Err(format!("line {lineno}: invalid eval {l:?}"));
        };
        let mut e = EvalCmd {
            line: lineno,
            kind,
            expr,
            fail: None,
            ordered: suffix.as_deref() == Some("ordered"),
            warn: Vec::new(),
            info: Vec::new(),
            any_warn: suffix.as_deref() == Some("warn"),
            any_info: suffix.as_deref() == Some("info"),
            no_warn: false,
            no_info: false,
            expected: Vec::new(),
            scalar: None,
            string: None,
            range_vector: None,
        };
        if suffix.as_deref() == Some("fail") {
            e.fail = Some(TextMatch::Any);
        }
        for (n, b) in &body {
            if e.fail.is_some() {
                if let Some(m) = b.strip_prefix("expected_fail_message") {
                    e.fail = Some(TextMatch::Exact(m.trim().to_string()));
                    break;
                }
                if let Some(r) = b.strip_prefix("expected_fail_regexp") {
                    e.fail = Some(TextMatch::Regex(Regex::new(r.trim()).map_err(|x| x.to_string())?));
                    break;
                }
            }
            if let Some(r) = b.strip_prefix("expect range vector") {
                let c = range_vec.captures(r).ok_or_else(|| format!("line {n}: bad expect range vector"))?;
                let (a, bb, s) = (dur(&c[1])?, dur(&c[2])?, dur(&c[3])?);
                e.range_vector = Some((a, bb, s));
                e.kind = EvalKind::Instant { at: bb };
                continue;
            }
            if let Some(r) = b.strip_prefix("expect string") {
                let r = r.trim();
                e.string = Some(read_quoted(r)?.0);
                continue;
            }
            let mut words = b.split_whitespace();
            if words.next() == Some("expect") {
                let ty = words.next().unwrap_or("");
                let rest = b.trim_start_matches("expect").trim_start().trim_start_matches(ty);
                match ty {
                    "fail" => e.fail = Some(text_match(rest)?),
                    "warn" => e.warn.push(text_match(rest)?),
                    "info" => e.info.push(text_match(rest)?),
                    "no_warn" => e.no_warn = true,
                    "no_info" => e.no_info = true,
                    "ordered" => e.ordered = true,
                    other => return Err(format!("line {n}: unknown expectation {other:?}")),
                }
                continue;
            }
            if let Some(v) = parse_number(b.trim()) {
                e.scalar = Some(v);
                break;
            }
            e.expected.push(parse_series(b).map_err(|x| format!("line {n}: {x}"))?);
        }
        cmds.push(Command::Eval(Box::new(e)));
    }
    Ok(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_value_notation() {
        let d = parse_series("m{a=\"b\"} 0+10x3 _ 7x1 stale _x2 -1-1x1 0x1").unwrap();
        use SeqValue::*;
        assert_eq!(
            d.values,
            vec![
                Float(0.0),
                Float(10.0),
                Float(20.0),
                Float(30.0),
                Omitted,
                Float(7.0),
                Float(7.0),
                Stale,
                Omitted,
                Omitted,
                Float(-1.0),
                Float(-2.0),
                Float(0.0),
                Float(0.0)
            ]
        );
        assert_eq!(d.labels.get("a"), Some("b"));
        assert_eq!(d.labels.metric_name(), Some("m"));
    }

    #[test]
    fn parses_eval_block() {
        let s = "load 1m\n  x 1 2\n\neval instant at 1m x\n  expect warn msg: foo\n  x 2\n\neval range from 0 to 1m step 30s x\n  x 1 _ 2\n";
        let c = parse_script(s).unwrap();
        assert_eq!(c.len(), 3);
        let Command::Eval(e) = &c[1] else { panic!("not eval") };
        assert_eq!(e.kind, EvalKind::Instant { at: 60_000 });
        assert_eq!(e.warn.len(), 1);
        assert_eq!(e.expected.len(), 1);
    }
}
