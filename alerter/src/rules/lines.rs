//! Finds the source line of each group and rule in a rule file, so that problems can be reported
//! as `file:line` like promtool does (Prometheus keeps yaml.Node positions; serde does not).
//! Works on block-style YAML, which is what rule files use: list items (`- `) under the top-level
//! `groups:` key are groups, list items under a group's `rules:` key are rules, in document
//! order. Flow-style documents fall back to the group's line or 0.

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

/// A non-blank, non-comment line: indent of its content, whether it opens a list item (`- `),
/// the indent of that dash, and its first key.
struct LineInfo<'a> {
    dash: Option<usize>,
    key_indent: usize,
    key: &'a str,
}

fn info(line: &str) -> Option<LineInfo<'_>> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let indent = line.len() - trimmed.len();
    let (dash, rest, key_indent) = match trimmed.strip_prefix('-') {
        Some(r) if r.is_empty() || r.starts_with(' ') => {
            let t = r.trim_start();
            (Some(indent), t, line.len() - t.len())
        }
        _ => (None, trimmed, indent),
    };
    let key = rest.split_once(':').map_or("", |(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\''));
    Some(LineInfo { dash, key_indent, key })
}

/// Scans `text` for group and rule lines (the line of each list item's first key).
pub fn locate(text: &str) -> Lines {
    let mut out = Lines::default();
    let mut in_groups = false;
    let mut group_dash: Option<usize> = None;
    let mut rules_key_indent: Option<usize> = None;
    let mut rule_dash: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let Some(li) = info(line) else { continue };
        if li.dash.is_none() && li.key_indent == 0 {
            in_groups = li.key == "groups";
            continue;
        }
        if !in_groups {
            continue;
        }
        if let Some(d) = li.dash
            && group_dash.is_none_or(|g| d <= g)
        {
            group_dash = Some(d);
            rules_key_indent = None;
            rule_dash = None;
            out.groups.push(i + 1);
            out.rules.push(Vec::new());
            if li.key == "rules" {
                rules_key_indent = Some(li.key_indent);
            }
            continue;
        }
        if li.key == "rules" && li.dash.is_none() && rules_key_indent.is_none() {
            rules_key_indent = Some(li.key_indent);
            continue;
        }
        let (Some(rk), Some(d)) = (rules_key_indent, li.dash) else { continue };
        if d < rk {
            continue;
        }
        if rule_dash.is_none() {
            rule_dash = Some(d);
        }
        if rule_dash == Some(d)
            && let Some(v) = out.rules.last_mut()
        {
            v.push(i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_groups_and_rules() {
        let text = "# c\ngroups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        labels:\n          name: foo\n\n      - expr: up\n        record: r\n  - interval: 1m\n    name: b\n    rules:\n    - alert: Y\n      record: y\n      expr: up\n    - alert: Z\n";
        let l = locate(text);
        assert_eq!(l.groups, vec![3, 12]);
        assert_eq!(l.rules, vec![vec![5, 10], vec![15, 18]]);
        assert_eq!(l.rule(1, 0), 15);
        assert_eq!(l.rule(1, 5), 12);
    }
}
