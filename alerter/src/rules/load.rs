//! Turns rule-file paths and globs (`--rules PATH`, `rule_files:`) into validated [`Group`]s.
//! Globs follow Prometheus' `rule_files` (`filepath.Glob`): a pattern matching nothing is not an
//! error, but a plain path that does not exist is, so a typo on the command line is noticed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::check_text;
use super::{AlertingRule, Group, Problem, RecordingRule, Rule};

/// Expands patterns into a sorted, de-duplicated file list.
pub fn expand_globs(patterns: &[String]) -> Result<Vec<PathBuf>, Vec<Problem>> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in patterns {
        let is_glob = p.contains(['*', '?', '[']);
        if !is_glob {
            let path = PathBuf::from(p);
            if path.is_file() {
                files.push(path);
            } else {
                problems.push(Problem { file: path, line: 0, message: "rule file does not exist".into() });
            }
            continue;
        }
        match glob::glob(p) {
            Ok(paths) => {
                for entry in paths {
                    match entry {
                        Ok(path) if path.is_file() => files.push(path),
                        Ok(_) => {}
                        Err(e) => {
                            problems.push(Problem { file: e.path().to_path_buf(), line: 0, message: e.to_string() })
                        }
                    }
                }
            }
            Err(e) => {
                problems.push(Problem { file: PathBuf::from(p), line: 0, message: format!("bad glob pattern: {e}") })
            }
        }
    }
    files.sort();
    files.dedup();
    if problems.is_empty() { Ok(files) } else { Err(problems) }
}

/// Most rules one group may hold unless configured otherwise (`alerter.max_rules_per_group`).
/// A group is evaluated sequentially within one interval, so a huge group misses its deadline
/// long before it exhausts memory; Mimir's `ruler_max_rules_per_rule_group` plays the same role.
pub const DEFAULT_MAX_RULES_PER_GROUP: usize = 1000;

/// Loads and validates files with the default group-size limit (see [`load_files_limited`]).
pub fn load_files(files: &[PathBuf], default_interval: Duration) -> Result<Vec<Group>, Vec<Problem>> {
    load_files_limited(files, default_interval, DEFAULT_MAX_RULES_PER_GROUP)
}

/// Loads and validates files; any problem in any file rejects the whole set (like Prometheus'
/// reload, which keeps the old rules when the new ones do not load). A group with more than
/// `max_rules_per_group` rules is a problem naming the group.
pub fn load_files_limited(
    files: &[PathBuf],
    default_interval: Duration,
    max_rules_per_group: usize,
) -> Result<Vec<Group>, Vec<Problem>> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem { file: path.clone(), line: 0, message: format!("cannot read file: {e}") });
                continue;
            }
        };
        match load_text(path, &text, default_interval, max_rules_per_group) {
            Ok(g) => groups.extend(g),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() { Ok(groups) } else { Err(problems) }
}

/// Parses, validates and converts one rule file's text (`path` only names it in problems). Also
/// the entry point of the `rule_file_load` fuzz target.
pub fn load_text(
    path: &Path,
    text: &str,
    default_interval: Duration,
    max_rules_per_group: usize,
) -> Result<Vec<Group>, Vec<Problem>> {
    let (parsed, problems) = check_text(path, text);
    if !problems.is_empty() {
        return Err(problems);
    }
    let Some(parsed) = parsed else { return Ok(Vec::new()) };
    let oversized: Vec<Problem> = parsed
        .groups
        .iter()
        .filter(|g| g.rules.len() > max_rules_per_group)
        .map(|g| Problem {
            file: path.to_path_buf(),
            line: 0,
            message: format!(
                "group {:?} has {} rules, more than the limit of {max_rules_per_group} (alerter.max_rules_per_group)",
                g.name,
                g.rules.len()
            ),
        })
        .collect();
    if !oversized.is_empty() {
        return Err(oversized);
    }
    let file = path.display().to_string();
    let mut groups = Vec::new();
    for g in parsed.groups {
        let rules = g
            .rules
            .into_iter()
            .map(|r| {
                let mut labels: BTreeMap<String, String> = g.labels.clone();
                labels.extend(r.labels);
                let expr = r.expr.unwrap_or_default();
                match (r.alert, r.record) {
                    (Some(name), _) => Rule::Alerting(AlertingRule {
                        name,
                        expr,
                        for_: r.for_.unwrap_or_default(),
                        keep_firing_for: r.keep_firing_for.unwrap_or_default(),
                        labels,
                        annotations: r.annotations,
                    }),
                    (None, name) => Rule::Recording(RecordingRule { name: name.unwrap_or_default(), expr, labels }),
                }
            })
            .collect();
        groups.push(Group {
            name: g.name,
            file: file.clone(),
            interval: g.interval.unwrap_or(default_interval),
            limit: g.limit,
            query_offset: g.query_offset.unwrap_or_default(),
            rules,
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_groups_from_globs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.rules.yml"),
            "groups:\n- name: a\n  labels: {team: ops}\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 2m\n    labels: {team: dev, severity: page}\n  - record: r:up\n    expr: up\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.rules.yml"), "groups:\n- name: b\n  interval: 10s\n  rules: []\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), "not yaml: [").unwrap();
        let pattern = format!("{}/*.rules.yml", dir.path().display());
        let files = expand_globs(&[pattern]).unwrap();
        assert_eq!(files.len(), 2);
        let groups = load_files(&files, Duration::from_secs(60)).unwrap();
        assert_eq!(groups[0].interval, Duration::from_secs(60));
        assert_eq!(groups[1].interval, Duration::from_secs(10));
        let Rule::Alerting(a) = &groups[0].rules[0] else { panic!("not alerting") };
        assert_eq!(a.for_, Duration::from_secs(120));
        assert_eq!(a.labels["team"], "dev");
        assert_eq!(a.labels["severity"], "page");
        assert_eq!(groups[0].rules[1].labels()["team"], "ops");
    }

    #[test]
    fn oversized_groups_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yml");
        let rules: String = (0..4).map(|i| format!("  - record: r{i}\n    expr: up\n")).collect();
        std::fs::write(
            &path,
            format!("groups:\n- name: small\n  rules:\n  - record: s\n    expr: up\n- name: huge\n  rules:\n{rules}"),
        )
        .unwrap();
        let e = load_files_limited(std::slice::from_ref(&path), Duration::from_secs(60), 3).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].file, path);
        assert!(e[0].message.contains("\"huge\" has 4 rules") && e[0].message.contains("max_rules_per_group"), "{e:?}");
        // At the limit the file loads.
        assert_eq!(load_files_limited(&[path], Duration::from_secs(60), 4).unwrap().len(), 2);
    }

    #[test]
    fn missing_plain_path_and_bad_file_are_problems() {
        assert!(expand_globs(&["/nonexistent/x.yml".into()]).is_err());
        assert_eq!(expand_globs(&["/nonexistent/*.yml".into()]).unwrap(), Vec::<PathBuf>::new());
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yml");
        std::fs::write(&bad, "groups:\n- name: a\n  rules:\n  - alert: A\n").unwrap();
        let e = load_files(&[bad], Duration::from_secs(60)).unwrap_err();
        assert!(e[0].message.contains("'expr' must be set"), "{:?}", e);
    }
}
