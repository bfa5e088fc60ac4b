//! The routing tree: compiled from `route:` in `alertmanager.yml`, it maps an alert's labels to
//! the routes (receiver + grouping/timing options) that handle it. Semantics of Alertmanager's
//! `dispatch/route.go`: depth-first, first matching child wins unless it has `continue`, an alert
//! that matches no child stays with the parent, children inherit unset options.

use std::sync::Arc;
use std::time::Duration;

use crowsnest_wire::{MatchOp, Matcher};

use super::amconfig::{ConfigError, RouteConfig};
use super::matchers::{format_matcher, parse_matcher};
use super::types::LabelSet;

/// How alerts are grouped: by the listed labels, or by all labels (`...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Labels(Vec<String>),
    All,
}

/// Options in effect at one route node after inheritance.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOpts {
    /// Stable identity used in group keys and the notification log.
    pub id: String,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

impl RouteOpts {
    /// The labels of `alert` that name its group under this route.
    pub fn group_labels(&self, labels: &LabelSet) -> LabelSet {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => {
                names.iter().filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone()))).collect()
            }
        }
    }
}

/// One compiled node of the tree.
#[derive(Debug, Clone)]
pub struct Route {
    pub opts: Arc<RouteOpts>,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    routes: Vec<Route>,
}

impl Route {
    /// Compiles the root route with Alertmanager's defaults (30s / 5m / 4h, no grouping).
    pub fn compile(cfg: &RouteConfig) -> Result<Route, ConfigError> {
        let defaults = RouteOpts {
            id: "{}".to_string(),
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        };
        Self::compile_node(cfg, &defaults, "{}".to_string())
    }

    fn compile_node(cfg: &RouteConfig, parent: &RouteOpts, id: String) -> Result<Route, ConfigError> {
        let mut matchers = Vec::new();
        for m in &cfg.matchers {
            matchers.push(parse_matcher(m)?);
        }
        for (k, v) in &cfg.match_eq {
            matchers.push(Matcher::equal(k.clone(), v.clone()));
        }
        for (k, v) in &cfg.match_re {
            matchers.push(
                Matcher::new(MatchOp::Regex, k.clone(), v.clone())
                    .map_err(|e| ConfigError::Invalid(format!("match_re {k}: {e}")))?,
            );
        }
        let group_by = match &cfg.group_by {
            None => parent.group_by.clone(),
            Some(g) if g.iter().any(|l| l == "...") => GroupBy::All,
            Some(g) => GroupBy::Labels(g.clone()),
        };
        let group_interval = cfg.group_interval.unwrap_or(parent.group_interval);
        let mut repeat_interval = cfg.repeat_interval.unwrap_or(parent.repeat_interval);
        // Alertmanager only re-sends on group_interval ticks: round repeat up to a multiple.
        if !group_interval.is_zero() {
            let gi = group_interval.as_millis();
            let n = repeat_interval.as_millis().div_ceil(gi).max(1);
            repeat_interval = Duration::from_millis(u64::try_from(n * gi).unwrap_or(u64::MAX));
        }
        let opts = RouteOpts {
            id: id.clone(),
            receiver: cfg.receiver.clone().unwrap_or_else(|| parent.receiver.clone()),
            group_by,
            group_wait: cfg.group_wait.unwrap_or(parent.group_wait),
            group_interval,
            repeat_interval,
        };
        let mut routes = Vec::new();
        for (i, child) in cfg.routes.iter().enumerate() {
            let ms: Vec<String> = child_matchers(child);
            let child_id = format!("{id}/{{{}}}/{i}", ms.join(","));
            routes.push(Self::compile_node(child, &opts, child_id)?);
        }
        Ok(Route { opts: Arc::new(opts), matchers, continue_matching: cfg.continue_matching, routes })
    }

    /// The routes that take an alert with these labels (at least one for the root).
    pub fn matching(&self, labels: &LabelSet) -> Vec<Arc<RouteOpts>> {
        let wire = super::types::to_labels(labels);
        let mut out = Vec::new();
        self.collect(&wire, &mut out);
        out
    }

    fn collect(&self, labels: &crowsnest_wire::Labels, out: &mut Vec<Arc<RouteOpts>>) -> bool {
        if !crowsnest_wire::labels::matches_all(&self.matchers, labels) {
            return false;
        }
        let mut any_child = false;
        for child in &self.routes {
            if child.collect(labels, out) {
                any_child = true;
                if !child.continue_matching {
                    break;
                }
            }
        }
        if !any_child {
            out.push(self.opts.clone());
        }
        true
    }

    /// Every route's options, depth first (for listing receivers and intervals).
    pub fn all(&self) -> Vec<Arc<RouteOpts>> {
        let mut v = vec![self.opts.clone()];
        for c in &self.routes {
            v.extend(c.all());
        }
        v
    }
}

fn child_matchers(cfg: &RouteConfig) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .matchers
        .iter()
        .map(|m| parse_matcher(m).map(|m| format_matcher(&m)).unwrap_or_else(|_| m.clone()))
        .collect();
    v.extend(cfg.match_eq.iter().map(|(k, val)| format!("{k}={val:?}")));
    v.extend(cfg.match_re.iter().map(|(k, val)| format!("{k}=~{val:?}")));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::amconfig::parse;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const CFG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_interval: 2m
  repeat_interval: 5m
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
      routes:
        - matchers: ['team="db"']
          receiver: dba
    - match_re: {service: "web|api"}
      receiver: web
      group_by: ['...']
      group_wait: 1s
    - matchers: ['severity="critical"']
      receiver: never
receivers: [{name: default}, {name: pager}, {name: dba}, {name: web}, {name: never}]
"#;

    fn receivers(r: &Route, l: &LabelSet) -> Vec<String> {
        r.matching(l).iter().map(|o| o.receiver.clone()).collect()
    }

    #[test]
    fn first_match_continue_and_fallback() {
        let r = Route::compile(&parse(CFG).unwrap().route).unwrap();
        assert_eq!(receivers(&r, &labels(&[("alertname", "X")])), vec!["default"]);
        assert_eq!(receivers(&r, &labels(&[("severity", "critical")])), vec!["pager", "never"]);
        assert_eq!(
            receivers(&r, &labels(&[("severity", "critical"), ("team", "db"), ("service", "web")])),
            vec!["dba", "web"]
        );
        assert_eq!(receivers(&r, &labels(&[("service", "api")])), vec!["web"]);
    }

    #[test]
    fn inheritance_grouping_and_repeat_rounding() {
        let r = Route::compile(&parse(CFG).unwrap().route).unwrap();
        let web = &r.matching(&labels(&[("service", "web"), ("a", "1")]))[0];
        assert_eq!(web.group_by, GroupBy::All);
        assert_eq!(web.group_wait, Duration::from_secs(1));
        assert_eq!(web.group_interval, Duration::from_secs(120), "inherited");
        assert_eq!(web.repeat_interval, Duration::from_secs(360), "5m rounded up to a multiple of 2m");
        assert_eq!(web.group_labels(&labels(&[("service", "web"), ("a", "1")])).len(), 2);
        let root = &r.matching(&labels(&[("alertname", "X"), ("b", "2")]))[0];
        assert_eq!(root.group_labels(&labels(&[("alertname", "X"), ("b", "2")])), labels(&[("alertname", "X")]));
        assert_eq!(root.group_wait, Duration::from_secs(30), "Alertmanager default");
        let ids: std::collections::HashSet<String> = r.all().iter().map(|o| o.id.clone()).collect();
        assert_eq!(ids.len(), 5, "route ids are unique");
    }
}
