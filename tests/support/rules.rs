//! Rule files for the end-to-end tests, derived from the shipped rule pack
//! (`alerter/rules/crowsnest.rules.yml`, Prometheus' rule-file format). The shipped rules wait
//! minutes (`for: 1m` and more) before firing; an end-to-end test cannot wait that long, so it
//! loads a copy of one shipped rule — same `expr`, labels and annotations — with a short `for`.

use serde_norway::{Mapping, Value};

/// Path of the shipped rule pack in the source tree.
pub const SHIPPED_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/alerter/rules/crowsnest.rules.yml");

/// The shipped alerting rule named `alert`, as a YAML mapping.
pub fn shipped_rule(alert: &str) -> Value {
    let text = std::fs::read_to_string(SHIPPED_RULES).expect("read the shipped rule pack");
    let pack: Value = serde_norway::from_str(&text).expect("shipped rule pack is YAML");
    pack["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .find(|r| r["alert"].as_str() == Some(alert))
        .unwrap_or_else(|| panic!("no alert {alert} in {SHIPPED_RULES}"))
}

/// A rule file (one group, evaluated at the alerter's default interval) holding a copy of the
/// shipped rule `alert` with `for` set to `for_` and, when given, the alert renamed to `rename`.
pub fn shipped_rule_with_for(alert: &str, for_: &str, rename: Option<&str>) -> String {
    let mut rule = shipped_rule(alert);
    let map = rule.as_mapping_mut().expect("a rule is a mapping");
    map.insert(Value::from("for"), Value::from(for_));
    if let Some(name) = rename {
        map.insert(Value::from("alert"), Value::from(name));
    }
    let mut group = Mapping::new();
    group.insert(Value::from("name"), Value::from("e2e-short-for"));
    group.insert(Value::from("rules"), Value::Sequence(vec![rule]));
    let mut file = Mapping::new();
    file.insert(Value::from("groups"), Value::Sequence(vec![Value::Mapping(group)]));
    serde_norway::to_string(&Value::Mapping(file)).expect("serialize rule file")
}
