//! End-to-end tests of the admin route group of `crowsnest store` as a real process: the TSDB
//! admin API (delete_series, snapshot served by a second store started on the snapshot
//! directory, 503 while disabled) and configuration reload over `POST /-/reload` and SIGHUP
//! (a broken file answers 500 and keeps the old settings; the reload gauges follow).

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crowsnest_wire::{Label, Sample, TimeSeries, WriteRequest};
use serde_json::Value;
use support::*;

fn start(name: &str, args: &[&str], logs: &Path) -> (Proc, String) {
    let addr = free_addr().to_string();
    let mut all = vec!["store", "--listen", addr.as_str()];
    all.extend_from_slice(args);
    let proc = Proc::crowsnest(name, &all, logs);
    let base = format!("http://{addr}");
    assert!(wait_http_ok(&format!("{base}/ready"), Duration::from_secs(60)), "not ready:\n{}", proc.output());
    (proc, base)
}

fn write(base: &str, name: &str, t0: i64) {
    let series = |i: &str, sign: f64| TimeSeries {
        labels: vec![Label::new("__name__", name), Label::new("i", i)],
        samples: (0..20).map(|k| Sample::new(t0 + k * 15_000, sign * k as f64)).collect(),
    };
    let body = WriteRequest { timeseries: vec![series("a", 1.0), series("b", -1.0)], metadata: vec![] }.encode_snappy();
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let (status, body) = http_request("POST", &format!("{base}/api/v1/write"), Some(&body), &headers).expect("write");
    assert_eq!(status, 204, "{body}");
}

/// Raw samples of `selector` in the 10 minutes before `at_ms`, as JSON.
fn raw(base: &str, selector: &str, at_ms: i64) -> Value {
    let (status, body) = http_post_form(
        &format!("{base}/api/v1/query"),
        &[("query", &format!("{selector}[10m]")), ("time", &format!("{}", at_ms as f64 / 1000.0))],
    )
    .expect("query");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["data"]["result"].clone()
}

fn metric(base: &str, name: &str) -> Option<f64> {
    let (_, text) = http_get(&format!("{base}/metrics")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok())
}

fn retention_flag(base: &str) -> String {
    let (_, body) = http_get(&format!("{base}/api/v1/status/flags")).expect("flags");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["data"]["storage.tsdb.retention.time"].as_str().unwrap_or_default().to_string()
}

#[test]
fn delete_series_and_a_snapshot_served_by_a_second_store() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("crowsnest.yml");
    std::fs::write(&cfg, "store:\n  admin_api_enabled: true\n").expect("config");
    let data = tmp.path().join("data");
    let (_store, base) = start(
        "store",
        &["--config", cfg.to_str().expect("utf-8"), "--data-dir", data.to_str().expect("utf-8")],
        tmp.path(),
    );
    let t0 = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64 - 600_000;
    write(&base, "adm", t0);
    let end = t0 + 400_000;
    assert_eq!(raw(&base, "adm", end).as_array().map(Vec::len), Some(2));

    let (status, body) =
        http_post_form(&format!("{base}/api/v1/admin/tsdb/delete_series"), &[("match[]", "adm{i=\"b\"}")])
            .expect("delete");
    assert_eq!((status, body.as_str()), (204, ""));
    let after_delete = raw(&base, "adm", end);
    assert_eq!(after_delete.as_array().map(Vec::len), Some(1), "{after_delete}");

    let (status, body) = http_request("PUT", &format!("{base}/api/v1/admin/tsdb/snapshot"), None, &[]).expect("snap");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "success");
    let name = v["data"]["name"].as_str().expect("name");
    let snap = data.join("snapshots").join(name);

    // Started on the snapshot, without the admin API: same answers; admin routes are 503.
    let (_copy, copy_base) = start("copy", &["--data-dir", snap.to_str().expect("utf-8")], tmp.path());
    assert_eq!(raw(&copy_base, "adm", end), after_delete);
    let (status, body) = http_post_form(&format!("{copy_base}/api/v1/admin/tsdb/clean_tombstones"), &[]).expect("x");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"errorType\":\"unavailable\"") && body.contains("admin APIs disabled"), "{body}");
}

#[test]
fn reload_over_http_and_sighup_keeps_the_old_config_on_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("crowsnest.yml");
    std::fs::write(&cfg, "store:\n  retention: 7d\n").expect("config");
    let data = tmp.path().join("data");
    let (store, base) = start(
        "store",
        &["--config", cfg.to_str().expect("utf-8"), "--data-dir", data.to_str().expect("utf-8")],
        tmp.path(),
    );
    assert_eq!(retention_flag(&base), "1w");
    assert_eq!(metric(&base, "crowsnest_config_last_reload_successful"), Some(1.0));
    let t0 = metric(&base, "crowsnest_config_last_reload_success_timestamp_seconds").expect("timestamp");

    std::fs::write(&cfg, "store:\n  retention: 1m\n").expect("config");
    let (status, body) = http_request("POST", &format!("{base}/-/reload"), None, &[]).expect("reload");
    assert_eq!(status, 500);
    assert!(body.starts_with("failed to reload config") && body.contains("retention"), "{body}");
    assert_eq!(metric(&base, "crowsnest_config_last_reload_successful"), Some(0.0));
    assert_eq!(retention_flag(&base), "1w", "the old config stays active");
    let (ok, loaded_at) = runtime_reload(&base);
    assert!(!ok, "runtimeinfo reports the failed reload");

    std::fs::write(&cfg, "store:\n  retention: 14d\n").expect("config");
    std::thread::sleep(Duration::from_millis(20));
    let (status, body) = http_request("PUT", &format!("{base}/-/reload"), None, &[]).expect("reload");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(retention_flag(&base), "2w");
    assert_eq!(metric(&base, "crowsnest_config_last_reload_successful"), Some(1.0));
    assert!(metric(&base, "crowsnest_config_last_reload_success_timestamp_seconds").expect("ts") > t0);
    let (ok, reloaded_at) = runtime_reload(&base);
    assert!(ok, "runtimeinfo reports the successful reload");
    assert!(reloaded_at > loaded_at, "lastConfigTime moves on success: {loaded_at} -> {reloaded_at}");

    std::fs::write(&cfg, "store:\n  retention: 21d\n").expect("config");
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(store.pid() as i32, libc::SIGHUP);
    }
    let got = eventually(Duration::from_secs(10), || (retention_flag(&base) == "3w").then_some(()));
    assert!(got.is_some(), "SIGHUP reloads:\n{}", store.output());
}

/// `reloadConfigSuccess` and `lastConfigTime` from `/api/v1/status/runtimeinfo`.
fn runtime_reload(base: &str) -> (bool, String) {
    let (_, body) = http_get(&format!("{base}/api/v1/status/runtimeinfo")).expect("runtimeinfo");
    let v: Value = serde_json::from_str(&body).expect("json");
    let ok = v["data"]["reloadConfigSuccess"].as_bool().expect("reloadConfigSuccess");
    (ok, v["data"]["lastConfigTime"].as_str().expect("lastConfigTime").to_string())
}

fn rule_names(base: &str) -> Vec<String> {
    let (_, body) = http_get(&format!("{base}/api/v1/rules")).expect("rules");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn up_reloads_rule_files_and_refuses_broken_ones() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("crowsnest.yml");
    let rules = tmp.path().join("rules.yml");
    let addr = free_addr().to_string();
    std::fs::write(&cfg, "shipped_rules: false\ncollector:\n  docker:\n    enabled: false\n").expect("config");
    let one = "groups:\n- name: g\n  rules:\n  - alert: First\n    expr: vector(1) == 2\n";
    std::fs::write(&rules, one).expect("rules");
    let data = tmp.path().join("data");
    let args = [
        "up",
        "--listen",
        addr.as_str(),
        "--config",
        cfg.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--rules",
        rules.to_str().expect("utf-8"),
    ];
    let up = Proc::crowsnest("up", &args, tmp.path());
    let base = format!("http://{addr}");
    assert!(wait_http_ok(&format!("{base}/ready"), Duration::from_secs(60)), "not ready:\n{}", up.output());
    assert_eq!(rule_names(&base), vec!["First"]);

    std::fs::write(&rules, format!("{one}  - alert: Second\n    expr: vector(1) == 3\n")).expect("rules");
    let (status, body) = http_request("POST", &format!("{base}/-/reload"), None, &[]).expect("reload");
    assert_eq!(status, 200, "{body}\n{}", up.output());
    assert_eq!(rule_names(&base), vec!["First", "Second"]);

    std::fs::write(&rules, "groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: 'up =='\n").expect("rules");
    let (status, body) = http_request("POST", &format!("{base}/-/reload"), None, &[]).expect("reload");
    assert_eq!(status, 500);
    assert!(body.contains("rules.yml"), "{body}");
    assert_eq!(rule_names(&base), vec!["First", "Second"], "the old rules stay");
    assert_eq!(metric(&base, "crowsnest_config_last_reload_successful"), Some(0.0));
}
