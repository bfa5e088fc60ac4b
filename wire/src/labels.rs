//! The label data model: a series is identified by a sorted, duplicate-free set of labels that
//! includes `__name__`. Also label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus' semantics:
//! regexes are fully anchored, `.` matches newlines, and a missing label matches as the empty string.
//! See <https://prometheus.io/docs/concepts/data_model/>.

use std::fmt;

use regex::Regex;
use thiserror::Error;

use crate::METRIC_NAME;

/// One label pair. Also the remote_write protobuf message `prometheus.Label`, so decoding a
/// write request yields domain labels without a copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label { name: name.into(), value: value.into() }
    }
}

/// A label pair borrowed from a decoded request buffer (see
/// [`crate::remote::borrowed::WriteRequestRef`]): the ingest path validates, hashes and looks up
/// series on these without allocating a `String` per name and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelRef<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

impl LabelRef<'_> {
    pub fn to_label(&self) -> Label {
        Label::new(self.name, self.value)
    }
}

/// Read access to a label pair, owned or borrowed, so validation, hashing and rendering are
/// written once for both.
pub trait LabelPair {
    fn name(&self) -> &str;
    fn value(&self) -> &str;
}

impl LabelPair for Label {
    fn name(&self) -> &str {
        &self.name
    }
    fn value(&self) -> &str {
        &self.value
    }
}

impl LabelPair for LabelRef<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn value(&self) -> &str {
        self.value
    }
}

/// Renders an already sorted label list in Prometheus' notation (what `Labels`' `Display`
/// prints), for borrowed labels that are never turned into a [`Labels`].
pub struct SortedLabelsDisplay<'a, L>(pub &'a [L]);

impl<L: LabelPair> fmt::Display for SortedLabelsDisplay<'_, L> {
    /// Prometheus' notation: `name{a="b", c="d"}`, or `{a="b"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.binary_search_by(|l| l.name().cmp(METRIC_NAME)).map_or("", |i| self.0[i].value());
        f.write_str(name)?;
        let mut first = true;
        let mut any = false;
        for l in self.0.iter().filter(|l| l.name() != METRIC_NAME) {
            if first {
                f.write_str("{")?;
                first = false;
            } else {
                f.write_str(", ")?;
            }
            any = true;
            write!(f, "{}={:?}", l.name(), l.value())?;
        }
        if any {
            f.write_str("}")?;
        } else if name.is_empty() {
            f.write_str("{}")?;
        }
        Ok(())
    }
}

/// Why a label set is not a valid series identity.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LabelError {
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    #[error("empty value for label {0:?}")]
    EmptyValue(String),
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    #[error("labels are not sorted by name: {0:?} after {1:?}")]
    Unsorted(String, String),
    #[error("label value for {0:?} is not valid UTF-8")]
    InvalidUtf8(String),
}

/// A series identity: labels sorted by name, no duplicates, no empty values.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a label set from any pairs: sorts them, drops empty values (an empty value means
    /// "label absent" in Prometheus), and keeps the last of duplicate names.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let v: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        Self::from_vec(v)
    }

    /// Like [`Labels::from_pairs`] from already-built labels.
    pub fn from_vec(mut v: Vec<Label>) -> Self {
        v.retain(|l| !l.value.is_empty());
        // Stable sort then keep the last occurrence of each name.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            if let Some(last) = out.last_mut()
                && last.name == l.name
            {
                *last = l;
                continue;
            }
            out.push(l);
        }
        Labels(out)
    }

    /// Wraps labels that the caller has already validated as sorted and unique (e.g. with
    /// [`validate_sorted`]); does not re-sort.
    pub fn from_sorted_unchecked(v: Vec<Label>) -> Self {
        Labels(v)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|l| l.name.as_str().cmp(name)).ok().map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// Sets (or with an empty value, removes) one label, keeping the set sorted.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// Removes one label.
    pub fn remove(&mut self, name: &str) {
        self.set(name, "");
    }

    /// A copy without the metric name, as PromQL functions and aggregations produce.
    pub fn without_metric_name(&self) -> Labels {
        Labels(self.0.iter().filter(|l| l.name != METRIC_NAME).cloned().collect())
    }

    /// Keeps only the named labels.
    pub fn keep(&self, names: &[impl AsRef<str>]) -> Labels {
        Labels(self.0.iter().filter(|l| names.iter().any(|n| n.as_ref() == l.name)).cloned().collect())
    }

    /// Drops the named labels.
    pub fn drop_names(&self, names: &[impl AsRef<str>]) -> Labels {
        Labels(self.0.iter().filter(|l| !names.iter().any(|n| n.as_ref() == l.name)).cloned().collect())
    }
}

impl fmt::Display for Labels {
    /// Prometheus' notation: `name{a="b", c="d"}`, or `{a="b"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SortedLabelsDisplay(&self.0).fmt(f)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// True for a legal Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True for a legal metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Checks a label list as remote_write senders must send it: names valid, sorted, unique, values
/// non-empty. The store rejects anything else with a 400 naming the problem.
pub fn validate_sorted<L: LabelPair>(labels: &[L]) -> Result<(), LabelError> {
    let mut prev: Option<&str> = None;
    for l in labels {
        let (name, value) = (l.name(), l.value());
        if name == METRIC_NAME {
            if !is_valid_metric_name(value) {
                return Err(LabelError::InvalidMetricName(value.to_string()));
            }
        } else if !is_valid_label_name(name) {
            return Err(LabelError::InvalidName(name.to_string()));
        }
        if value.is_empty() {
            return Err(LabelError::EmptyValue(name.to_string()));
        }
        if let Some(p) = prev {
            match p.cmp(name) {
                std::cmp::Ordering::Equal => return Err(LabelError::Duplicate(name.to_string())),
                std::cmp::Ordering::Greater => {
                    return Err(LabelError::Unsorted(name.to_string(), p.to_string()));
                }
                std::cmp::Ordering::Less => {}
            }
        }
        prev = Some(name);
    }
    Ok(())
}

/// The four PromQL label-matching operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// A label matcher. Regex matchers are compiled once, fully anchored (`^(?s:…)$`) as in Prometheus.
#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

impl Matcher {
    /// Builds a matcher; fails only for an invalid regular expression.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self, regex::Error> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Regex::new(&format!("^(?s:{value})$"))?),
            _ => None,
        };
        Ok(Matcher { name: name.into(), op, value, re })
    }

    /// Shorthand for an equality matcher (cannot fail).
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher { name: name.into(), op: MatchOp::Equal, value: value.into(), re: None }
    }

    /// Does a label value (empty when the label is absent) match?
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Does this matcher accept a series that lacks the label? (`foo=""`, `foo!="x"`, `foo=~".*"`…)
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Does the whole label set match?
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// For a regex matcher whose pattern is a plain alternation of literals (`a|b|c`), the
    /// literals; lets the index answer it with postings look-ups instead of a scan.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        if self.op != MatchOp::Regex {
            return None;
        }
        let parts: Vec<&str> = self.value.split('|').collect();
        if parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':' || c == '/')
        }) {
            Some(parts.into_iter().map(str::to_string).collect())
        } else {
            None
        }
    }
}

/// True when all matchers accept the label set.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pairs_sorts_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.to_string(), "{a=\"3\", b=\"2\"}");
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn display_with_name() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        assert_eq!(l.to_string(), "up{job=\"x\"}");
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
    }

    #[test]
    fn validation() {
        let ok = vec![Label::new("__name__", "up"), Label::new("job", "a")];
        assert!(validate_sorted(&ok).is_ok());
        let unsorted = vec![Label::new("job", "a"), Label::new("__name__", "up")];
        assert!(matches!(validate_sorted(&unsorted), Err(LabelError::Unsorted(..))));
        let dup = vec![Label::new("a", "1"), Label::new("a", "2")];
        assert!(matches!(validate_sorted(&dup), Err(LabelError::Duplicate(_))));
        let bad = vec![Label::new("1a", "1")];
        assert!(matches!(validate_sorted(&bad), Err(LabelError::InvalidName(_))));
        let empty = vec![Label::new("a", "")];
        assert!(matches!(validate_sorted(&empty), Err(LabelError::EmptyValue(_))));
        let badname = vec![Label::new("__name__", "a-b")];
        assert!(matches!(validate_sorted(&badname), Err(LabelError::InvalidMetricName(_))));
    }

    #[test]
    fn regex_is_anchored_and_dotall() {
        let m = Matcher::new(MatchOp::Regex, "a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"));
        assert!(!m.matches("foox"));
        let m = Matcher::new(MatchOp::Regex, "a", ".*").unwrap();
        assert!(m.matches("a\nb"));
        assert!(m.matches_empty());
        let m = Matcher::new(MatchOp::NotRegex, "a", "x|y").unwrap();
        assert!(m.matches("z"));
        assert!(!m.matches("x"));
    }

    #[test]
    fn set_matches() {
        let m = Matcher::new(MatchOp::Regex, "a", "x|y|z").unwrap();
        assert_eq!(m.set_matches().unwrap(), vec!["x", "y", "z"]);
        let m = Matcher::new(MatchOp::Regex, "a", "x.*").unwrap();
        assert!(m.set_matches().is_none());
    }
}
