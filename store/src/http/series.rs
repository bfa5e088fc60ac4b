//! Series metadata endpoints: `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`
//! and `/api/v1/metadata`, with `match[]`, `start`/`end` (default all time), `limit` (cut with
//! the warning `results truncated due to limit`), as in prometheus/prometheus `web/api/v1/api.go`
//! (`series`, `labelNames`, `labelValues`, `metricMetadata`). Empty results are `[]`/`{}`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use crowsnest_wire::api::Metric;

use super::error::ApiError;
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params};
use super::{ApiState, success};

/// The warning Prometheus adds when `limit` cut a result.
pub const TRUNCATED_WARNING: &str = "results truncated due to limit";

/// Asks the store for one more than `limit` so truncation can be detected; cuts and warns.
fn apply_limit<T>(mut items: Vec<T>, limit: Option<usize>, warnings: &mut Vec<String>) -> Vec<T> {
    if let Some(l) = limit
        && items.len() > l
    {
        items.truncate(l);
        warnings.push(TRUNCATED_WARNING.to_string());
    }
    items
}

fn probe_limit(limit: Option<usize>) -> Option<usize> {
    limit.map(|l| l.saturating_add(1))
}

/// `GET|POST /api/v1/series`.
pub async fn series(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    if p.all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let sets = p.match_sets()?;
    let db = s.db.clone();
    let mut found = tokio::task::spawn_blocking(move || db.series(&sets, start, end, probe_limit(limit))).await??;
    found.sort();
    found.dedup();
    let mut warnings = Vec::new();
    let found = apply_limit(found, limit, &mut warnings);
    let data: Vec<Metric> =
        found.iter().map(|l| l.iter().map(|x| (x.name.clone(), x.value.clone())).collect()).collect();
    Ok(success(data, warnings, vec![]))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let sets = p.match_sets()?;
    let db = s.db.clone();
    let names = tokio::task::spawn_blocking(move || db.label_names(&sets, start, end, probe_limit(limit))).await??;
    let mut warnings = Vec::new();
    let names = apply_limit(names, limit, &mut warnings);
    Ok(success(names, warnings, vec![]))
}

/// `GET /api/v1/label/<name>/values` (`U__`-escaped UTF-8 names are unescaped).
pub async fn label_values(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let name = unescape_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let sets = p.match_sets()?;
    let db = s.db.clone();
    let values =
        tokio::task::spawn_blocking(move || db.label_values(&name, &sets, start, end, probe_limit(limit))).await??;
    let mut warnings = Vec::new();
    let values = apply_limit(values, limit, &mut warnings);
    Ok(success(values, warnings, vec![]))
}

/// `GET /api/v1/metadata` with `metric`, `limit`, `limit_per_metric`.
pub async fn metadata(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    let number = |name: &str| -> Result<i64, ApiError> {
        match p.non_empty(name) {
            None => Ok(-1),
            Some(v) => v.parse::<i64>().map_err(|_| ApiError::bad_data(format!("{name} must be a number"))),
        }
    };
    let limit = number("limit")?;
    let per_metric = number("limit_per_metric")?;
    let metric = p.non_empty("metric").map(str::to_string);
    let db = s.db.clone();
    let limit = (limit > 0).then_some(limit as usize);
    let mut md = tokio::task::spawn_blocking(move || db.metadata(metric.as_deref(), limit)).await?;
    if per_metric > 0 {
        for entries in md.values_mut() {
            entries.truncate(per_metric as usize);
        }
    }
    let md: BTreeMap<_, _> = md.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    Ok(success(md, vec![], vec![]))
}

/// Undoes Prometheus' underscore escaping of UTF-8 label names (`U__` prefix, `__` for `_`,
/// `_<hex>_` for other code points); an invalid escape leaves the name as it was
/// (`model.UnescapeName` with `UnderscoreEscaping`).
pub fn unescape_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else { return name.to_string() };
    let b = rest.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'_' {
            let ch = rest[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        i += 1;
        if i >= b.len() {
            return name.to_string();
        }
        if b[i] == b'_' {
            out.push('_');
            i += 1;
            continue;
        }
        let mut val: u32 = 0;
        let mut digits = 0;
        loop {
            let Some(&c) = b.get(i) else { return name.to_string() };
            if c == b'_' {
                match char::from_u32(val) {
                    Some(ch) if digits > 0 => out.push(ch),
                    _ => return name.to_string(),
                }
                i += 1;
                break;
            }
            if digits >= 6 {
                return name.to_string();
            }
            let Some(d) = (c as char).to_digit(16) else { return name.to_string() };
            val = val * 16 + d;
            digits += 1;
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_utf8_names() {
        assert_eq!(unescape_name("job"), "job");
        assert_eq!(unescape_name("U__my_2e_label"), "my.label");
        assert_eq!(unescape_name("U__a__b"), "a_b");
        assert_eq!(unescape_name("U__caf_e9_"), "café");
        assert_eq!(unescape_name("U__bad_zz_"), "U__bad_zz_");
        assert_eq!(unescape_name("U__open_2e"), "U__open_2e");
    }

    #[test]
    fn limit_cuts_and_warns() {
        let mut w = Vec::new();
        assert_eq!(apply_limit(vec![1, 2, 3], Some(2), &mut w), vec![1, 2]);
        assert_eq!(w, vec![TRUNCATED_WARNING]);
        let mut w = Vec::new();
        assert_eq!(apply_limit(vec![1, 2], Some(2), &mut w), vec![1, 2]);
        assert!(w.is_empty());
    }
}
