//! JSON metrics endpoints flattened into gauges by configured paths — the kind of REST data a
//! Pharo or Node app exposes (GC stats, request counts). A path walks objects by key and arrays
//! by index (`pools.0.used`); a path naming an object or array yields every numeric or boolean
//! leaf below it, named `<name>_<rest_of_path>`. Strings, nulls and missing paths yield nothing.

use serde_json::Value;

use crate::config::JsonMetric;

/// Turns `s` into a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn metric_name(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn leaves(v: &Value, name: String, out: &mut Vec<(String, f64)>) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((name, f));
            }
        }
        Value::Bool(b) => out.push((name, if *b { 1.0 } else { 0.0 })),
        Value::Object(m) => {
            for (k, v) in m {
                leaves(v, format!("{name}_{}", metric_name(k)), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{name}_{i}"), out);
            }
        }
        _ => {}
    }
}

/// The gauges (name, value) one configured metric yields from `doc`.
pub fn extract(doc: &Value, m: &JsonMetric) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(v) = lookup(doc, &m.path) {
        let name = m.name.clone().unwrap_or_else(|| metric_name(&m.path));
        leaves(v, name, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_paths_and_subtrees() {
        let doc: Value = serde_json::from_str(
            r#"{"gc":{"count":12,"pause_ms":3.5,"full":{"count":1}},"requests":{"total":1000,"ok":true},
            "pools":[{"used":10},{"used":20}],"version":"1.2"}"#,
        )
        .unwrap();
        let m = |path: &str, name: Option<&str>| JsonMetric {
            path: path.into(),
            name: name.map(Into::into),
            ..Default::default()
        };
        assert_eq!(extract(&doc, &m("gc.count", Some("app_gc_count"))), vec![("app_gc_count".to_string(), 12.0)]);
        let mut sub = extract(&doc, &m("gc", Some("app_gc")));
        sub.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            sub,
            vec![
                ("app_gc_count".to_string(), 12.0),
                ("app_gc_full_count".to_string(), 1.0),
                ("app_gc_pause_ms".to_string(), 3.5)
            ]
        );
        assert_eq!(extract(&doc, &m("pools.1.used", None)), vec![("pools_1_used".to_string(), 20.0)]);
        assert_eq!(extract(&doc, &m("requests.ok", None)), vec![("requests_ok".to_string(), 1.0)]);
        assert!(extract(&doc, &m("version", None)).is_empty());
        assert!(extract(&doc, &m("nope.x", None)).is_empty());
    }
}
