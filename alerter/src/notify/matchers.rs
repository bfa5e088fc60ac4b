//! Alertmanager's label-matcher syntax for routes, inhibit rules, silences and API filters:
//! `name="value"`, `name=~"regex"`, `name!="v"`, `name!~"re"`, with unquoted values allowed and an
//! optional surrounding `{…}` list (`{a="b", c=~"d"}`). Follows Alertmanager's
//! `matcher/parse` (the UTF-8 matchers parser) in its common, classic-compatible subset.

use crowsnest_wire::{MatchOp, Matcher};
use thiserror::Error;

/// Why a matcher string could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MatcherError {
    #[error("matcher {0:?}: no operator (=, !=, =~, !~)")]
    NoOperator(String),
    #[error("matcher {0:?}: empty label name")]
    EmptyName(String),
    #[error("matcher {0:?}: bad quoting in value")]
    BadQuote(String),
    #[error("matcher {0:?}: invalid regex: {1}")]
    BadRegex(String, String),
}

/// Parses one matcher such as `severity=~"crit|warn"`.
pub fn parse_matcher(s: &str) -> Result<Matcher, MatcherError> {
    let text = s.trim();
    let (pos, op, oplen) = find_operator(text).ok_or_else(|| MatcherError::NoOperator(s.to_string()))?;
    let name = unquote(text[..pos].trim()).ok_or_else(|| MatcherError::BadQuote(s.to_string()))?;
    if name.is_empty() {
        return Err(MatcherError::EmptyName(s.to_string()));
    }
    let raw = text[pos + oplen..].trim();
    let value = unquote(raw).ok_or_else(|| MatcherError::BadQuote(s.to_string()))?;
    Matcher::new(op, name, value).map_err(|e| MatcherError::BadRegex(s.to_string(), e.to_string()))
}

/// Parses a list of matchers: either one matcher, or `{m1, m2}` / `m1, m2` separated by commas
/// outside quotes.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, MatcherError> {
    let mut text = s.trim();
    if let Some(inner) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        text = inner;
    }
    split_outside_quotes(text).into_iter().filter(|p| !p.trim().is_empty()).map(parse_matcher).collect()
}

fn find_operator(text: &str) -> Option<(usize, MatchOp, usize)> {
    let bytes = text.as_bytes();
    let mut in_quote = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'=' if !in_quote => {
                return Some(if bytes.get(i + 1) == Some(&b'~') {
                    (i, MatchOp::Regex, 2)
                } else {
                    (i, MatchOp::Equal, 1)
                });
            }
            b'!' if !in_quote => match bytes.get(i + 1) {
                Some(b'=') => return Some((i, MatchOp::NotEqual, 2)),
                Some(b'~') => return Some((i, MatchOp::NotRegex, 2)),
                _ => {}
            },
            _ => {}
        }
        i += 1;
    }
    None
}

/// Strips surrounding double quotes and resolves `\"`, `\\`, `\n`; unquoted text is returned as is.
fn unquote(s: &str) -> Option<String> {
    let Some(inner) = s.strip_prefix('"') else {
        return if s.contains('"') { None } else { Some(s.to_string()) };
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn split_outside_quotes(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quote = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            ',' if !in_quote => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Renders a matcher the way Alertmanager prints it (`name="value"`).
pub fn format_matcher(m: &Matcher) -> String {
    format!("{}{}{:?}", m.name, m.op, m.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_all_operators_and_quoting() {
        let m = parse_matcher(r#"severity=~"crit|warn""#).unwrap();
        assert_eq!((m.name.as_str(), m.op, m.value.as_str()), ("severity", MatchOp::Regex, "crit|warn"));
        assert!(m.matches("warn") && !m.matches("info"));
        let m = parse_matcher("team!=db").unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::NotEqual, "db"));
        let m = parse_matcher(r#"x!~"a.*""#).unwrap();
        assert_eq!(m.op, MatchOp::NotRegex);
        let m = parse_matcher(r#"msg="a \"q\", b""#).unwrap();
        assert_eq!(m.value, r#"a "q", b"#);
        let m = parse_matcher("empty=").unwrap();
        assert_eq!(m.value, "");
    }

    #[test]
    fn parses_lists() {
        let ms = parse_matchers(r#"{alertname="A", instance=~"h.*"}"#).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[1].name, "instance");
        let ms = parse_matchers(r#"a="x,y",b=c"#).unwrap();
        assert_eq!(ms[0].value, "x,y");
        assert_eq!(ms[1].value, "c");
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse_matcher("novalue"), Err(MatcherError::NoOperator(_))));
        assert!(matches!(parse_matcher("=x"), Err(MatcherError::EmptyName(_))));
        assert!(matches!(parse_matcher(r#"a="unterminated"#), Err(MatcherError::BadQuote(_))));
        assert!(matches!(parse_matcher(r#"a=~"(""#), Err(MatcherError::BadRegex(..))));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(name in "[a-zA-Z_][a-zA-Z0-9_]{0,10}", value in "[ -~]{0,20}") {
            let m = Matcher::equal(name.clone(), value.clone());
            let back = parse_matcher(&format_matcher(&m)).unwrap();
            prop_assert_eq!(back.name, name);
            prop_assert_eq!(back.value, value);
        }
    }
}
