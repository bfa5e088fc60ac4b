//! Finds the source line of each group and rule in a rule file, so that problems can be reported
//! as `file:line` like promtool does (Prometheus keeps yaml.Node positions; serde does not).
//! Works on block-style YAML, which is what rule files use: the n-th `name:` key directly in a
//! `groups` item and the n-th `alert:`/`record:` key are matched to the n-th group/rule in
//! document order. Flow-style documents fall back to the group's line or 0.

/// Lines (1-based) of groups and of the rules inside each group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    pub groups: Vec<usize>,
    /// `rules[g][r]`, rule lines grouped by the group that precedes them.
    pub rules: Vec<Vec<usize>>,
}

impl Lines {
    pub fn group(&self, g: usize) -> usize {
        self.groups.get(g).copied().unwrap_or(0)
    }

    pub fn rule(&self, g: usize, r: usize) -> usize {
        self.rules.get(g).and_then(|v| v.get(r)).copied().unwrap_or_else(|| self.group(g))
    }
}

/// Strips a leading `- ` (list item marker) and returns the key of a `key:` line, with its indent.
fn key_of(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') {
        return None;
    }
    let mut indent = line.len() - trimmed.len();
    let mut rest = trimmed;
    let mut item = false;
    while let Some(r) = rest.strip_prefix('-') {
        if !(r.starts_with(' ') || r.is_empty()) {
            break;
        }
        let t = r.trim_start();
        indent += rest.len() - t.len();
        rest = t;
        item = true;
    }
    let _ = item;
    let colon = rest.find(':')?;
    let key = rest[..colon].trim().trim_matches(|c| c == '"' || c == '\'');
    let after = &rest[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ') || after.starts_with('\t')) {
        return None;
    }
    Some((indent, key))
}

/// Scans `text` for group and rule lines.
pub fn locate(text: &str) -> Lines {
    let mut out = Lines::default();
    // The indent of keys directly inside a group item (`name`, `rules`, `interval`).
    let mut group_key_indent: Option<usize> = None;
    let mut rules_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let Some((indent, key)) = key_of(line) else { continue };
        if key == "groups" && indent == 0 {
            continue;
        }
        if key == "name" && group_key_indent.is_none_or(|gi| indent == gi) && rules_indent.is_none_or(|ri| indent < ri) {
            group_key_indent = Some(indent);
            rules_indent = None;
            out.groups.push(i + 1);
            out.rules.push(Vec::new());
            continue;
        }
        if key == "rules" && Some(indent) == group_key_indent {
            rules_indent = Some(indent + 1);
            continue;
        }
        if (key == "alert" || key == "record") && rules_indent.is_some_and(|ri| indent >= ri) {
            if let Some(v) = out.rules.last_mut() {
                v.push(i + 1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_groups_and_rules() {
        let text = "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        labels:\n          name: foo\n      - expr: up\n        record: r\n  - interval: 1m\n    name: b\n    rules:\n    - alert: Y\n      expr: up\n";
        let l = locate(text);
        assert_eq!(l.groups, vec![2, 11]);
        assert_eq!(l.rules, vec![vec![4, 9], vec![13]]);
        assert_eq!(l.rule(1, 0), 13);
        assert_eq!(l.rule(1, 5), 11);
    }
}
