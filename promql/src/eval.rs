//! The evaluator: walks a parsed [`Expr`] and computes its [`Value`] over an evaluation grid,
//! series by series, mirroring the evaluator in Prometheus' `promql/engine.go`.
//!
//! Semantics are those of Prometheus 3.x as encoded by its promqltest suite:
//! - lookback and range windows are left-open: an instant selector at `t` sees samples in
//!   `(t - lookback, t]`, a range selector `x[d]` samples in `(t - d, t]` (Prometheus 2.x used
//!   closed windows `[t - d, t]`);
//! - `__name__` removal is delayed to the end of the query (Prometheus 3 "delayed name removal"),
//!   so `label_replace` and friends still see the name of a series a function has touched;
//! - an instant query is a range evaluation with one step;
//! - `holt_winters` is called `double_exponential_smoothing` (3.x name; the parser only knows it);
//! - `@ start()/end()` and negative offsets are always enabled (flags in 2.x).
//!
//! Sub-modules hold the node kinds: `selector` (instant/range selectors, offset, `@`),
//! `subquery`, `binary` (operators and vector matching) and `aggregate`.

mod aggregate;
mod binary;
mod labelhash;
pub mod selector;
mod subquery;

pub use aggregate::format_go_float;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr, Offset};
use tokio_util::sync::CancellationToken;

use crate::engine::{EngineOptions, QueryError};
use crate::storage::Storage;
use crate::value::{Grid, Series, Value};

/// Text Prometheus uses when a query exceeds the sample limit.
pub const TOO_MANY_SAMPLES: &str = "query processing would load too many samples into memory in query execution";

/// State shared by every node of one query: storage, limits, counters and annotations.
pub struct Shared<'a> {
    pub storage: &'a dyn Storage,
    pub opts: &'a EngineOptions,
    pub cancel: &'a CancellationToken,
    pub deadline: Instant,
    /// The query's own start and end (what `start()` / `end()` in `@` refer to).
    pub query_start: i64,
    pub query_end: i64,
    /// The query's step in ms (0 for instant queries), what `step()` returns.
    pub query_step: i64,
    /// The query text, used to place annotations (`line:col`).
    pub query: &'a str,
    /// Samples held by the query right now, and the most held at once. Atomic because the
    /// per-series work of a selection runs on several threads (`par`).
    samples: AtomicUsize,
    peak: AtomicUsize,
    pub warnings: Mutex<Vec<String>>,
    pub infos: Mutex<Vec<String>>,
}

impl<'a> Shared<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: &'a dyn Storage,
        opts: &'a EngineOptions,
        cancel: &'a CancellationToken,
        query: &'a str,
        query_start: i64,
        query_end: i64,
    ) -> Self {
        Shared {
            storage,
            opts,
            cancel,
            deadline: Instant::now() + opts.timeout,
            query_start,
            query_end,
            query_step: 0,
            query,
            samples: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            warnings: Mutex::new(Vec::new()),
            infos: Mutex::new(Vec::new()),
        }
    }

    /// Stops evaluation on cancellation or timeout.
    pub fn check(&self) -> Result<(), QueryError> {
        if self.cancel.is_cancelled() {
            return Err(QueryError::Canceled("expression evaluation"));
        }
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    /// Accounts `n` more samples held in memory; fails past `max_samples`.
    pub fn add_samples(&self, n: usize) -> Result<(), QueryError> {
        let cur = self.samples.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(cur, Ordering::Relaxed);
        if cur > self.opts.max_samples {
            return Err(QueryError::Execution(TOO_MANY_SAMPLES.into()));
        }
        Ok(())
    }

    /// Releases `n` samples from the accounting.
    pub fn release_samples(&self, n: usize) {
        let _ = self.samples.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(n)));
    }

    /// The most samples held at once so far.
    pub fn peak_samples(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Locks an annotation list; a panic elsewhere cannot leave it inconsistent (push only).
    fn notes(list: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
        list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The warnings so far.
    pub fn warnings(&self) -> Vec<String> {
        Self::notes(&self.warnings).clone()
    }

    /// The infos so far.
    pub fn infos(&self) -> Vec<String> {
        Self::notes(&self.infos).clone()
    }

    /// Renders `(line:col)` of the first occurrence of `needle` in the query (1-based).
    pub fn position(&self, needle: &str) -> String {
        let idx = self.query.find(needle).unwrap_or(0);
        let before = &self.query[..idx];
        let line = before.matches('\n').count() + 1;
        let col = idx - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        format!("({line}:{col})")
    }

    /// `(line:col)` of argument `idx` of the first call of `func` in the query text.
    pub fn arg_position(&self, func: &str, idx: usize) -> String {
        let q = self.query;
        let mut from = 0;
        while let Some(off) = q[from..].find(func) {
            let start = from + off;
            from = start + func.len();
            let before_ok = q[..start].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let rest = q[from..].trim_start();
            if !before_ok || !rest.starts_with('(') {
                continue;
            }
            let mut pos = q.len() - rest.len() + 1;
            let mut depth = 0i32;
            let mut arg = 0;
            let mut in_str: Option<char> = None;
            for (i, c) in q[pos..].char_indices() {
                if let Some(qc) = in_str {
                    if c == qc {
                        in_str = None;
                    }
                    continue;
                }
                match c {
                    '"' | '\'' | '`' => in_str = Some(c),
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' => depth -= 1,
                    ',' if depth == 0 => {
                        arg += 1;
                        if arg == idx {
                            pos = pos + i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if arg < idx {
                break;
            }
            let lead = q[pos..].len() - q[pos..].trim_start().len();
            return self.position_of(pos + lead);
        }
        "(1:1)".into()
    }

    /// `(line:col)` of a byte offset.
    pub fn position_of(&self, idx: usize) -> String {
        let before = &self.query[..idx.min(self.query.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        format!("({line}:{col})")
    }

    /// Adds a `PromQL warning:` annotation at an already rendered position.
    pub fn warn_at(&self, msg: impl AsRef<str>, pos: &str) {
        let text = format!("PromQL warning: {} {}", msg.as_ref(), pos);
        let mut w = Self::notes(&self.warnings);
        if !w.contains(&text) {
            w.push(text);
        }
    }

    /// Adds a `PromQL info:` annotation at an already rendered position.
    pub fn info_at(&self, msg: impl AsRef<str>, pos: &str) {
        let text = format!("PromQL info: {} {}", msg.as_ref(), pos);
        let mut w = Self::notes(&self.infos);
        if !w.contains(&text) {
            w.push(text);
        }
    }

    /// Adds a `PromQL warning:` annotation about the node whose text starts with `anchor`.
    pub fn warn(&self, msg: impl AsRef<str>, anchor: &str) {
        let text = format!("PromQL warning: {} {}", msg.as_ref(), self.position(anchor));
        let mut w = Self::notes(&self.warnings);
        if !w.contains(&text) {
            w.push(text);
        }
    }
}

/// Evaluates expressions over one grid (the query's, or a subquery's).
pub struct Evaluator<'s, 'a> {
    pub sh: &'s Shared<'a>,
    pub grid: Grid,
}

/// Milliseconds of a parser duration.
pub fn dur_ms(d: &std::time::Duration) -> i64 {
    d.as_millis() as i64
}

/// Signed offset in ms (positive = into the past).
pub fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => dur_ms(d),
        Some(Offset::Neg(d)) => -dur_ms(d),
        None => 0,
    }
}

/// Milliseconds since the epoch of a `SystemTime` (negative before it).
pub fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

impl<'s, 'a> Evaluator<'s, 'a> {
    pub fn new(sh: &'s Shared<'a>, grid: Grid) -> Self {
        Evaluator { sh, grid }
    }

    /// A child evaluator over another grid (subqueries).
    pub fn with_grid(&self, grid: Grid) -> Evaluator<'s, 'a> {
        Evaluator { sh: self.sh, grid }
    }

    /// The fixed evaluation time of an `@` modifier.
    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.sh.query_start),
            Some(AtModifier::End) => Some(self.sh.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// Evaluates any expression. Sample accounting: while a node runs, its children's results
    /// count as held; once it returns, only its own result stays counted.
    pub fn eval(&self, e: &Expr) -> Result<Value, QueryError> {
        let before = self.sh.samples.load(Ordering::Relaxed);
        let v = self.eval_node(e)?;
        self.sh.samples.store(before, Ordering::Relaxed);
        self.sh.add_samples(v.sample_count())?;
        Ok(v)
    }

    fn eval_node(&self, e: &Expr) -> Result<Value, QueryError> {
        self.sh.check()?;
        let n = self.grid.len();
        match e {
            Expr::NumberLiteral(l) => Ok(Value::Scalar(vec![l.val; n])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(mut ss) => {
                    for s in &mut ss {
                        s.drop_name = true;
                        for p in &mut s.points {
                            p.v = -p.v;
                        }
                    }
                    Ok(Value::Vector(ss))
                }
                _ => Err(QueryError::BadData(
                    "unary expression only allowed on expressions of type scalar or instant vector".into(),
                )),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.eval_vector_selector(vs, false)?)),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.eval_matrix_selector(ms)?)),
            Expr::Subquery(sq) => Ok(Value::Matrix(self.eval_subquery_matrix(sq)?)),
            Expr::Binary(b) => self.eval_binary(b),
            Expr::Aggregate(a) => self.eval_aggregate(a),
            Expr::Call(c) => crate::functions::call(self, c),
            Expr::Extension(_) => Err(QueryError::BadData("extension expressions are not supported".into())),
        }
    }

    /// Evaluates an expression that must yield an instant vector.
    pub fn eval_vector(&self, e: &Expr) -> Result<Vec<Series>, QueryError> {
        match self.eval(e)? {
            Value::Vector(v) => Ok(v),
            other => Err(QueryError::BadData(format!("expected instant vector, got {}", type_name(&other)))),
        }
    }

    /// Evaluates an expression that must yield a scalar (one value per step).
    pub fn eval_scalar(&self, e: &Expr) -> Result<Vec<f64>, QueryError> {
        match self.eval(e)? {
            Value::Scalar(v) => Ok(v),
            other => Err(QueryError::BadData(format!("expected scalar, got {}", type_name(&other)))),
        }
    }
}

/// Prometheus' name for a value type.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
    }
}
