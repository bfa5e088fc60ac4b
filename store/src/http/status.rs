//! Status endpoints: `/api/v1/status/buildinfo` (a Prometheus 2.x version so clients that gate
//! features on it, like old Grafana config pages and promtool, treat us as Prometheus; no
//! `features` object, which would make Grafana assume Mimir), `/status/tsdb` (Prometheus'
//! `TSDBStatus` JSON), `/status/config`, `/status/flags`, `/status/runtimeinfo`. Shapes from
//! prometheus/prometheus `web/api/v1/api.go`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use crowsnest_wire::api::BuildInfo;
use crowsnest_wire::duration::format_duration;
use serde::Serialize;

use super::error::ApiError;
use super::params::Params;
use super::{ApiState, success};

/// The Prometheus version we answer with: the API level we implement.
pub const PROMETHEUS_COMPAT_VERSION: &str = "2.53.0";

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Response {
    success(
        BuildInfo {
            version: PROMETHEUS_COMPAT_VERSION.to_string(),
            revision: format!("crowsnest-{}", env!("CARGO_PKG_VERSION")),
            branch: "crowsnest".to_string(),
            build_user: "crowsnest".to_string(),
            build_date: String::new(),
            go_version: "none (crowsnest is written in Rust)".to_string(),
        },
        vec![],
        vec![],
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
    chunk_count: u64,
    min_time: i64,
    max_time: i64,
}

#[derive(Serialize)]
struct Stat {
    name: String,
    value: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Stat>,
    label_value_count_by_label_name: Vec<Stat>,
    memory_in_bytes_by_label_name: Vec<Stat>,
    series_count_by_label_value_pair: Vec<Stat>,
}

fn stats(v: Vec<(String, u64)>) -> Vec<Stat> {
    v.into_iter().map(|(name, value)| Stat { name, value }).collect()
}

/// `GET /api/v1/status/tsdb` with `limit` (1..=10000, default 10). An empty head reports
/// Prometheus' sentinels (minTime = MaxInt64, maxTime = MinInt64).
pub async fn tsdb(State(s): State<ApiState>, p: Params) -> Result<Response, ApiError> {
    let limit = match p.non_empty("limit") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => return Err(ApiError::bad_data("limit must be a positive number between 1 and 10000")),
        },
    };
    let db = s.db.clone();
    let st = tokio::task::spawn_blocking(move || db.tsdb_status(limit)).await?;
    Ok(success(
        TsdbStatus {
            head_stats: HeadStats {
                num_series: st.num_series,
                num_label_pairs: st.num_label_pairs,
                chunk_count: st.chunk_count,
                min_time: st.min_time.unwrap_or(i64::MAX),
                max_time: st.max_time.unwrap_or(i64::MIN),
            },
            series_count_by_metric_name: stats(st.series_count_by_metric_name),
            label_value_count_by_label_name: stats(st.label_value_count_by_label_name),
            memory_in_bytes_by_label_name: stats(st.memory_in_bytes_by_label_name),
            series_count_by_label_value_pair: stats(st.series_count_by_label_value_pair),
        },
        vec![],
        vec![],
    ))
}

#[derive(Serialize)]
struct ConfigYaml {
    yaml: String,
}

/// `GET /api/v1/status/config`: the store's effective configuration as YAML.
pub async fn config(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let yaml = config_yaml(&s.db.config())?;
    Ok(success(ConfigYaml { yaml }, vec![], vec![]))
}

fn config_yaml(cfg: &crate::config::StoreConfig) -> Result<String, ApiError> {
    #[derive(Serialize)]
    struct Wrapped<'a> {
        store: &'a crate::config::StoreConfig,
    }
    serde_json::to_value(Wrapped { store: cfg })
        .map_err(|e| ApiError::internal("encoding the configuration", e))
        .map(|v| to_yaml(&v, 0))
}

/// A small YAML emitter for the config tree (maps, scalars); avoids a YAML dependency here.
fn to_yaml(v: &serde_json::Value, indent: usize) -> String {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    let mut out = String::new();
    if let Value::Object(m) = v {
        for (k, val) in m {
            match val {
                Value::Object(inner) if !inner.is_empty() => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    out.push_str(&to_yaml(val, indent + 2));
                }
                Value::String(s) => {
                    out.push_str(&format!("{pad}{k}: {}\n", serde_json::to_string(s).unwrap_or_default()))
                }
                other => out.push_str(&format!("{pad}{k}: {other}\n")),
            }
        }
    }
    out
}

/// `GET /api/v1/status/flags`: our settings under the names of Prometheus' equivalent flags.
pub async fn flags(State(s): State<ApiState>) -> Response {
    let c = s.db.config();
    let flags: BTreeMap<&str, String> = BTreeMap::from([
        ("storage.tsdb.path", c.data_dir.display().to_string()),
        ("storage.tsdb.retention.time", format_duration(c.retention)),
        ("storage.tsdb.out-of-order-time-window", format_duration(c.out_of_order_window)),
        ("query.lookback-delta", format_duration(c.query.lookback_delta)),
        ("query.max-concurrency", c.query.max_concurrent.to_string()),
        ("query.max-samples", c.query.max_samples.to_string()),
        ("query.timeout", format_duration(c.query.timeout)),
        ("web.enable-remote-write-receiver", "true".to_string()),
    ]);
    success(flags, vec![], vec![])
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeInfo {
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    hostname: String,
    server_time: String,
    reload_config_success: bool,
    last_config_time: String,
    corruption_count: i64,
    goroutine_count: i64,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: i64,
    #[serde(rename = "GOMEMLIMIT")]
    gomemlimit: i64,
    #[serde(rename = "GOGC")]
    gogc: String,
    #[serde(rename = "GODEBUG")]
    godebug: String,
    storage_retention: String,
}

/// `GET /api/v1/status/runtimeinfo`.
pub async fn runtimeinfo(State(s): State<ApiState>) -> Response {
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (reload_ok, config_time) = *s.last_reload.lock();
    let info = RuntimeInfo {
        start_time: rfc(s.started),
        cwd: std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        server_time: rfc(chrono::Utc::now()),
        reload_config_success: reload_ok,
        last_config_time: rfc(config_time),
        corruption_count: 0,
        goroutine_count: 0,
        gomaxprocs: std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1),
        gomemlimit: i64::MAX,
        gogc: String::new(),
        godebug: String::new(),
        storage_retention: format_duration(s.db.config().retention),
    };
    success(info, vec![], vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_yaml_has_sections() {
        let y = config_yaml(&crate::config::StoreConfig::default()).unwrap();
        assert!(y.starts_with("store:\n"), "{y}");
        assert!(y.contains("  retention: \"2w1d\"\n"), "{y}");
        assert!(y.contains("  limits:\n    max_active_series: 2000000\n"), "{y}");
    }
}
