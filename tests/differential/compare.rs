//! Result comparison for the PromQL differential test: parses Prometheus HTTP API query answers
//! (<https://prometheus.io/docs/prometheus/latest/querying/api/#expression-query-result-formats>)
//! into a canonical form and compares two of them: series matched by label set, values within a
//! relative tolerance (NaN equals NaN), sample order checked only where the query sorts.

use std::collections::BTreeMap;

/// Relative tolerance of value comparisons.
pub const REL_TOL: f64 = 1e-6;
/// Absolute floor for values that should be 0 but carry float noise (e.g. a variance computed
/// with and without Kahan summation).
pub const ABS_TOL: f64 = 1e-9;

type LabelSet = BTreeMap<String, String>;

/// A parsed query answer.
#[derive(Debug)]
pub enum Answer {
    /// `status: error` with its `errorType`.
    Error {
        kind: String,
        message: String,
    },
    Scalar(i64, f64),
    Str(String),
    Vector(Vec<(LabelSet, i64, f64)>),
    Matrix(Vec<(LabelSet, Vec<(i64, f64)>)>),
}

impl Answer {
    /// Short description for the summary.
    pub fn describe(&self) -> String {
        match self {
            Answer::Error { kind, message } => format!("error {kind}: {message}"),
            Answer::Scalar(t, v) => format!("scalar {v} @{t}"),
            Answer::Str(s) => format!("string {s:?}"),
            Answer::Vector(v) => format!("vector of {}", v.len()),
            Answer::Matrix(m) => {
                format!("matrix of {} series, {} points", m.len(), m.iter().map(|s| s.1.len()).sum::<usize>())
            }
        }
    }

    /// An empty vector or matrix.
    pub fn is_empty(&self) -> bool {
        matches!(self, Answer::Vector(v) if v.is_empty()) || matches!(self, Answer::Matrix(m) if m.is_empty())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Answer::Error { .. })
    }
}

fn parse_value(v: &serde_json::Value) -> Result<f64, String> {
    let s = v.as_str().ok_or_else(|| format!("value is not a string: {v}"))?;
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

fn parse_point(p: &serde_json::Value) -> Result<(i64, f64), String> {
    let t = p[0].as_f64().ok_or_else(|| format!("bad timestamp in {p}"))?;
    Ok(((t * 1000.0).round() as i64, parse_value(&p[1])?))
}

fn parse_labels(m: &serde_json::Value) -> Result<LabelSet, String> {
    let obj = m.as_object().ok_or_else(|| format!("metric is not an object: {m}"))?;
    obj.iter()
        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())).ok_or_else(|| format!("bad label {k}")))
        .collect()
}

/// Parses an API response body.
pub fn parse(body: &str) -> Result<Answer, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("bad JSON ({e}): {body}"))?;
    if v["status"] == "error" {
        let kind = v["errorType"].as_str().unwrap_or("").to_string();
        return Ok(Answer::Error { kind, message: v["error"].as_str().unwrap_or("").to_string() });
    }
    if v["status"] != "success" {
        return Err(format!("unexpected response: {body}"));
    }
    let data = &v["data"];
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => parse_point(result).map(|(t, v)| Answer::Scalar(t, v)),
        Some("string") => Ok(Answer::Str(result[1].as_str().unwrap_or_default().to_string())),
        Some("vector") => {
            let items = result.as_array().ok_or("vector result is not an array")?;
            let parsed: Result<Vec<_>, String> = items
                .iter()
                .map(|s| {
                    let (t, v) = parse_point(&s["value"])?;
                    Ok((parse_labels(&s["metric"])?, t, v))
                })
                .collect();
            parsed.map(Answer::Vector)
        }
        Some("matrix") => {
            let items = result.as_array().ok_or("matrix result is not an array")?;
            let parsed: Result<Vec<_>, String> = items
                .iter()
                .map(|s| {
                    let pts = s["values"]
                        .as_array()
                        .map(|a| a.iter().map(parse_point).collect::<Result<Vec<_>, _>>())
                        .unwrap_or(Ok(Vec::new()))?;
                    Ok((parse_labels(&s["metric"])?, pts))
                })
                .collect();
            parsed.map(Answer::Matrix)
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

/// True if two values agree within the tolerances; NaN equals NaN, infinities must be equal.
pub fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let diff = (a - b).abs();
    diff <= ABS_TOL || diff <= REL_TOL * a.abs().max(b.abs())
}

fn fmt_labels(l: &LabelSet) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn index<T>(items: &[(LabelSet, T)], what: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut map = BTreeMap::new();
    for (i, (l, _)) in items.iter().enumerate() {
        if map.insert(fmt_labels(l), i).is_some() {
            return Err(format!("{what} answer holds {} twice", fmt_labels(l)));
        }
    }
    Ok(map)
}

fn same_keys(ours: &BTreeMap<String, usize>, theirs: &BTreeMap<String, usize>) -> Result<(), String> {
    let only_ours: Vec<&String> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<&String> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    if only_ours.is_empty() && only_theirs.is_empty() {
        return Ok(());
    }
    Err(format!("series only in ours: {only_ours:?}; only in Prometheus: {only_theirs:?}"))
}

/// Compares our answer with Prometheus'. `ordered`: the order of a vector answer must agree too.
pub fn compare(ours: &Answer, theirs: &Answer, ordered: bool) -> Result<(), String> {
    match (ours, theirs) {
        (Answer::Error { kind: a, .. }, Answer::Error { kind: b, .. }) if a == b => Ok(()),
        (Answer::Scalar(ta, a), Answer::Scalar(tb, b)) if ta == tb && close(*a, *b) => Ok(()),
        (Answer::Str(a), Answer::Str(b)) if a == b => Ok(()),
        (Answer::Vector(a), Answer::Vector(b)) => {
            let to_pairs =
                |v: &[(LabelSet, i64, f64)]| v.iter().map(|(l, t, x)| (l.clone(), (*t, *x))).collect::<Vec<_>>();
            let (a, b) = (to_pairs(a), to_pairs(b));
            let (ia, ib) = (index(&a, "our")?, index(&b, "Prometheus'")?);
            same_keys(&ia, &ib)?;
            for (key, &i) in &ia {
                let ((ta, va), (tb, vb)) = (a[i].1, b[ib[key]].1);
                if ta != tb || !close(va, vb) {
                    return Err(format!("{key}: ours {va} @{ta}, Prometheus {vb} @{tb}"));
                }
            }
            if ordered {
                let order = |v: &[(LabelSet, (i64, f64))]| v.iter().map(|(l, _)| fmt_labels(l)).collect::<Vec<_>>();
                if order(&a) != order(&b) {
                    return Err(format!("order differs: ours {:?}, Prometheus {:?}", order(&a), order(&b)));
                }
            }
            Ok(())
        }
        (Answer::Matrix(a), Answer::Matrix(b)) => {
            let (ia, ib) = (index(a, "our")?, index(b, "Prometheus'")?);
            same_keys(&ia, &ib)?;
            for (key, &i) in &ia {
                let (pa, pb) = (&a[i].1, &b[ib[key]].1);
                let ts_a: Vec<i64> = pa.iter().map(|p| p.0).collect();
                let ts_b: Vec<i64> = pb.iter().map(|p| p.0).collect();
                if ts_a != ts_b {
                    let missing: Vec<_> = ts_b.iter().filter(|t| !ts_a.contains(t)).collect();
                    let extra: Vec<_> = ts_a.iter().filter(|t| !ts_b.contains(t)).collect();
                    return Err(format!(
                        "{key}: timestamps differ ({} vs {} points; missing in ours {missing:?}, extra in ours {extra:?})",
                        ts_a.len(),
                        ts_b.len()
                    ));
                }
                if let Some((x, y)) = pa.iter().zip(pb).find(|(x, y)| !close(x.1, y.1)) {
                    return Err(format!("{key} @{}: ours {}, Prometheus {}", x.0, x.1, y.1));
                }
            }
            Ok(())
        }
        _ => Err(format!("ours: {}; Prometheus: {}", ours.describe(), theirs.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_nan_and_label_matching() {
        assert!(close(f64::NAN, f64::NAN) && !close(f64::NAN, 1.0) && close(1.0, 1.0 + 1e-9) && !close(1.0, 1.001));
        let a = parse(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1.5,"2"]},{"metric":{"a":"2"},"value":[1.5,"NaN"]}]}}"#).expect("parses");
        let b = parse(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"2"},"value":[1.5,"NaN"]},{"metric":{"a":"1"},"value":[1.5,"2.0000000001"]}]}}"#).expect("parses");
        assert!(compare(&a, &b, false).is_ok());
        assert!(compare(&a, &b, true).is_err());
        let c = parse(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1.5,"3"]}]}}"#,
        )
        .expect("parses");
        assert!(compare(&a, &c, false).is_err());
    }
}
