//! End-to-end checks of the `crowsnest` command itself: `up` starts with no config and serves,
//! `healthcheck` exit codes, `check-config` on the shipped example and on a broken file.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn up_starts_without_config_and_answers_buildinfo() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let data = dir.path().join("data");
    let _up =
        Proc::crowsnest("up", &["up", "--listen", &addr.to_string(), "--data-dir", data.to_str().unwrap()], dir.path());
    let base = format!("http://{addr}");
    assert!(wait_http_ok(&format!("{base}/ready"), Duration::from_secs(30)), "up did not become ready");
    let (status, body) = http_get(&format!("{base}/api/v1/status/buildinfo")).unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    assert!(v["data"]["version"].as_str().unwrap().starts_with("2."), "{body}");
    assert!(v["data"].get("features").is_none());
    let (status, _) = http_get(&format!("{base}/healthz")).unwrap();
    assert_eq!(status, 200);
    assert!(data.join("store").exists(), "store data not under <data-dir>/store");

    let ok = Command::new(crowsnest_bin()).args(["healthcheck", &format!("{base}/ready")]).output().unwrap();
    assert!(ok.status.success());
    let bad = Command::new(crowsnest_bin())
        .args(["healthcheck", "--timeout", "1", &format!("http://{}/ready", free_addr())])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let line = String::from_utf8_lossy(&bad.stdout);
    assert!(line.starts_with("unhealthy: ") && line.trim().lines().count() == 1, "{line}");
}

#[test]
fn check_config_accepts_example_and_rejects_typos() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crowsnest.example.yml");
    let out = Command::new(crowsnest_bin()).arg("check-config").arg(&example).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "store:\n  retension: 1d\n").unwrap();
    let out = Command::new(crowsnest_bin()).arg("check-config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retension") && err.contains("line 2"), "{err}");
}
