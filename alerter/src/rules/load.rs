//! Turns rule-file paths and globs (`--rules PATH`, `rule_files:`) into validated [`Group`]s.
//! Globs follow Prometheus' `rule_files` (`filepath.Glob`): a pattern matching nothing is not an
//! error, but a plain path that does not exist is, so a typo on the command line is noticed.

use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// Loads and validates files; any problem in any file rejects the whole set (like Prometheus'
/// reload, which keeps the old rules when the new ones do not load).
pub fn load_files(files: &[PathBuf], default_interval: Duration) -> Result<Vec<Group>, Vec<Problem>> {
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
        let (parsed, p) = check_text(path, &text);
        if !p.is_empty() {
            problems.extend(p);
            continue;
        }
        let Some(parsed) = parsed else { continue };
        let file = path.display().to_string();
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
    }
    if problems.is_empty() { Ok(groups) } else { Err(problems) }
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
