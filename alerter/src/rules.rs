//! Prometheus rule files: the YAML model ([`model`]), loading from files and globs into evaluable
//! groups ([`load`]), and `promtool check rules`-style validation with `file:line` messages
//! ([`check`]). Follows Prometheus' `model/rulefmt/rulefmt.go` and
//! <https://prometheus.io/docs/prometheus/latest/configuration/recording_rules/>.

pub mod check;
pub mod lines;
pub mod load;
pub mod model;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use check::{check_files, check_text};
pub use load::{DEFAULT_MAX_RULES_PER_GROUP, expand_globs, load_files, load_files_limited, load_text};

/// One problem found in a rule file, located like `promtool check rules` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

/// A validated rule group, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// The file the group came from (shown in `/api/v1/rules` and used to key persisted state).
    pub file: String,
    pub interval: Duration,
    /// Maximum alerts (or series) per rule; 0 = unlimited. Exceeding it fails the whole rule.
    pub limit: usize,
    pub query_offset: Duration,
    pub rules: Vec<Rule>,
}

/// A rule of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.name,
            Rule::Recording(r) => &r.name,
        }
    }

    pub fn expr(&self) -> &str {
        match self {
            Rule::Alerting(r) => &r.expr,
            Rule::Recording(r) => &r.expr,
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            Rule::Alerting(r) => &r.labels,
            Rule::Recording(r) => &r.labels,
        }
    }
}

/// An alerting rule; labels and annotations may hold Go templates.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingRule {
    pub name: String,
    pub expr: String,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    /// Group labels merged with the rule's own (rule labels win).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// A recording rule: `expr`'s result is written back as metric `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRule {
    pub name: String,
    pub expr: String,
    pub labels: BTreeMap<String, String>,
}
