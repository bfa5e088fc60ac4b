//! Reading the shipped Grafana dashboards (dashboards/*.json, Grafana's dashboard JSON model,
//! <https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/>):
//! structural checks, extraction of every PromQL expression (panel targets, annotations, query
//! variables), and template-variable interpolation the way Grafana's Prometheus data source does
//! it before a query reaches the store (`$var`, `${var}`, `${var:fmt}`, `[[var]]`, and the
//! built-ins `$__rate_interval`, `$__interval`, `$__range`...).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use regex::Regex;
use serde_json::Value;

/// The data source uid every panel, target and variable must use.
pub const DATASOURCE_UID: &str = "crowsnest";

/// Values the built-in Grafana variables take in the tests: a 15s scrape interval gives
/// `$__rate_interval` = max(step + scrape, 4 * scrape) = 1m for the default step.
pub const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__rate_interval_ms", "60000"),
    ("__interval", "15s"),
    ("__interval_ms", "15000"),
    ("__range", "1h"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
];

/// One dashboard file.
pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

/// How Grafana sends an expression to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `/api/v1/query_range` (time-series panels, annotations).
    Range,
    /// `/api/v1/query` (stat and table panels with "instant").
    Instant,
    /// A query variable `label_values(<selector>, <label>)`: `/api/v1/label/<label>/values?match[]=`.
    LabelValues { label: String },
}

/// One expression found in a dashboard, as written (variables not yet filled).
#[derive(Debug, Clone)]
pub struct Expression {
    pub dashboard: String,
    pub place: String,
    pub raw: String,
    pub kind: Kind,
}

/// The folder holding the dashboards.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

/// Loads every `dashboards/*.json`, sorted by file name.
pub fn load_all() -> Vec<Dashboard> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("dashboards/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            Dashboard { file: p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), json }
        })
        .collect()
}

/// Every panel, with the panels nested in rows flattened in.
pub fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The template variables.
pub fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"].as_array().into_iter().flatten().collect()
}

/// A variable's query string (new object form `{query: ...}` or the older plain string).
pub fn variable_query(v: &Value) -> Option<&str> {
    v["query"]
        .as_str()
        .or_else(|| v["query"]["query"].as_str())
        .or_else(|| v["definition"].as_str())
        .filter(|q| !q.trim().is_empty())
}

fn ds_uid(v: &Value) -> Option<&str> {
    v["datasource"]["uid"].as_str()
}

/// Structural problems of one dashboard (empty when fine).
pub fn check_structure(d: &Dashboard) -> Vec<String> {
    let mut errs = Vec::new();
    let j = &d.json;
    let f = &d.file;
    let uid = j["uid"].as_str().unwrap_or("");
    if uid.is_empty() || uid.len() > 40 {
        errs.push(format!("{f}: uid {uid:?} must be 1..=40 characters"));
    }
    if j["title"].as_str().is_none_or(|t| t.trim().is_empty()) {
        errs.push(format!("{f}: no title"));
    }
    if j["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        errs.push(format!("{f}: schemaVersion must be >= 36 (datasource referenced by uid)"));
    }
    let mut ids = HashSet::new();
    let all = panels(j);
    if all.iter().all(|p| p["type"] == "row") {
        errs.push(format!("{f}: no panels"));
    }
    for p in all {
        let title = p["title"].as_str().unwrap_or("?");
        match p["id"].as_u64() {
            Some(id) if !ids.insert(id) => errs.push(format!("{f}: panel id {id} used twice ({title})")),
            None => errs.push(format!("{f}: panel {title:?} has no numeric id")),
            _ => {}
        }
        if p["gridPos"]["w"].as_u64().is_none() || p["gridPos"]["h"].as_u64().is_none() {
            errs.push(format!("{f}: panel {title:?} has no gridPos"));
        }
        if p["type"] == "row" {
            continue;
        }
        if p["description"].as_str().is_none_or(|s| s.trim().is_empty()) {
            errs.push(format!("{f}: panel {title:?} has no description"));
        }
        if ds_uid(p) != Some(DATASOURCE_UID) {
            errs.push(format!("{f}: panel {title:?} datasource uid is not {DATASOURCE_UID:?}"));
        }
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if targets.is_empty() {
            errs.push(format!("{f}: panel {title:?} has no targets"));
        }
        let mut refs = HashSet::new();
        for t in targets {
            let r = t["refId"].as_str().unwrap_or("");
            if r.is_empty() || !refs.insert(r) {
                errs.push(format!("{f}: panel {title:?} has a missing or repeated refId {r:?}"));
            }
            if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                errs.push(format!("{f}: panel {title:?} target {r} has no expr"));
            }
            if ds_uid(t) != Some(DATASOURCE_UID) {
                errs.push(format!("{f}: panel {title:?} target {r} datasource uid is not {DATASOURCE_UID:?}"));
            }
        }
    }
    let mut names = HashSet::new();
    for v in variables(j) {
        let name = v["name"].as_str().unwrap_or("");
        if name.is_empty() || !names.insert(name) {
            errs.push(format!("{f}: variable name {name:?} missing or repeated"));
        }
        if v["type"] == "query" {
            if ds_uid(v) != Some(DATASOURCE_UID) {
                errs.push(format!("{f}: variable {name} datasource uid is not {DATASOURCE_UID:?}"));
            }
            if variable_query(v).is_none() {
                errs.push(format!("{f}: variable {name} has no query"));
            }
            if v["includeAll"] == true && v["allValue"].as_str().is_none() {
                errs.push(format!(
                    "{f}: variable {name} includes All but sets no allValue (Grafana would send a huge alternation)"
                ));
            }
        }
    }
    errs
}

/// Splits `label_values(<selector>, <label>)` (or `label_values(<label>)`) into its parts.
pub fn parse_label_values(q: &str) -> Option<(Option<String>, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    // The last comma outside quotes and braces separates selector and label.
    let (mut depth, mut quoted, mut split) = (0i32, false, None);
    let mut prev = ' ';
    for (i, c) in inner.char_indices() {
        match c {
            '"' if prev != '\\' => quoted = !quoted,
            '{' | '(' if !quoted => depth += 1,
            '}' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => split = Some(i),
            _ => {}
        }
        prev = c;
    }
    Some(match split {
        Some(i) => (Some(inner[..i].trim().to_string()), inner[i + 1..].trim().to_string()),
        None => (None, inner.trim().to_string()),
    })
}

/// Every expression of a dashboard: panel targets (range or instant as the target says),
/// annotations (range, as Grafana runs them), and query-variable selectors.
pub fn expressions(d: &Dashboard) -> Vec<Expression> {
    let mut out = Vec::new();
    let j = &d.json;
    for p in panels(j) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let Some(expr) = t["expr"].as_str() else { continue };
            let kind = if t["instant"] == true && t["range"] != true { Kind::Instant } else { Kind::Range };
            let place =
                format!("panel {:?} {}", p["title"].as_str().unwrap_or("?"), t["refId"].as_str().unwrap_or("?"));
            out.push(Expression { dashboard: d.file.clone(), place, raw: expr.to_string(), kind });
        }
    }
    for a in j["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = a["expr"].as_str() {
            let place = format!("annotation {:?}", a["name"].as_str().unwrap_or("?"));
            out.push(Expression { dashboard: d.file.clone(), place, raw: expr.to_string(), kind: Kind::Range });
        }
    }
    for v in variables(j) {
        let Some(q) = variable_query(v) else { continue };
        let place = format!("variable ${}", v["name"].as_str().unwrap_or("?"));
        if let Some((Some(sel), label)) = parse_label_values(q) {
            out.push(Expression { dashboard: d.file.clone(), place, raw: sel, kind: Kind::LabelValues { label } });
        } else if let Some(e) = q.trim().strip_prefix("query_result(").and_then(|r| r.strip_suffix(')')) {
            out.push(Expression { dashboard: d.file.clone(), place, raw: e.to_string(), kind: Kind::Instant });
        }
    }
    out
}

/// Names of the dashboard's own variables.
pub fn variable_names(d: &Dashboard) -> BTreeSet<String> {
    variables(&d.json).iter().filter_map(|v| v["name"].as_str().map(str::to_string)).collect()
}

/// Fills variables as Grafana would with every multi-value variable set to "All" (`.*`).
/// Returns the expression or the names of variables that are not defined.
pub fn fill(raw: &str, vars: &BTreeSet<String>) -> Result<String, Vec<String>> {
    let re = Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::[^\]]*)?\]\]|\$([A-Za-z_][A-Za-z0-9_]*)")
        .expect("valid regex");
    let mut unknown = Vec::new();
    let out = re.replace_all(raw, |c: &regex::Captures<'_>| {
        let name = c.get(1).or(c.get(2)).or(c.get(3)).map(|m| m.as_str()).unwrap_or_default();
        if let Some((_, v)) = BUILTINS.iter().find(|(n, _)| *n == name) {
            v.to_string()
        } else if vars.contains(name) {
            ".*".to_string()
        } else {
            unknown.push(name.to_string());
            c[0].to_string()
        }
    });
    if unknown.is_empty() { Ok(out.into_owned()) } else { Err(unknown) }
}

/// Label matchers whose value holds a template variable but whose operator is not `=~`: with a
/// multi-value or "All" selection Grafana substitutes a regex, so anything else breaks.
pub fn non_regex_variable_matchers(raw: &str) -> Vec<String> {
    let re = Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)""#).expect("valid regex");
    re.captures_iter(raw)
        .filter(|c| (c[3].contains('$') || c[3].contains("[[")) && &c[2] != "=~")
        .map(|c| c[0].to_string())
        .collect()
}

/// Metric names an expression selects (by name or by an `__name__="..."` matcher).
pub fn metric_names(e: &Expr) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            let vs = match e {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(m) => &m.vs,
                _ => return Ok(true),
            };
            if let Some(n) = &vs.name {
                self.0.insert(n.clone());
            }
            for m in &vs.matchers.matchers {
                if m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal) {
                    self.0.insert(m.value.clone());
                }
            }
            Ok(true)
        }
    }
    let mut v = Names(BTreeSet::new());
    let _ = walk_expr(&mut v, e);
    v.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_variable_form() {
        let vars: BTreeSet<String> = ["host".to_string(), "job".to_string()].into();
        let got = fill(
            r#"rate(x{instance=~"$host",job=~"${job}",a=~"[[host]]",b=~"${host:regex}"}[$__rate_interval])"#,
            &vars,
        )
        .unwrap();
        assert_eq!(got, r#"rate(x{instance=~".*",job=~".*",a=~".*",b=~".*"}[1m])"#);
        assert_eq!(fill("x[$nope]", &vars).unwrap_err(), vec!["nope".to_string()]);
    }

    #[test]
    fn label_values_split() {
        assert_eq!(parse_label_values("label_values(job)"), Some((None, "job".into())));
        assert_eq!(
            parse_label_values(r#"label_values(up{a=~"x,y"}, instance)"#),
            Some((Some(r#"up{a=~"x,y"}"#.into()), "instance".into()))
        );
        assert_eq!(parse_label_values("query_result(up)"), None);
    }

    #[test]
    fn finds_non_regex_variable_use() {
        assert_eq!(non_regex_variable_matchers(r#"x{a="$a",b=~"$b",c!="z"}"#), vec![r#"a="$a""#.to_string()]);
    }
}
