//! `crowsnest import FILE` end to end: offline backfill into a data directory (then a store
//! started on it serves the data) and import into a running store over remote_write; bad lines
//! are reported with line numbers, good ones imported, a summary line printed, exit status 1.

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

fn exposition(t0_ms: i64) -> String {
    let mut s = String::from("# HELP imp_jobs_total Jobs done.\n# TYPE imp_jobs_total counter\n");
    for i in 0..50 {
        s.push_str(&format!("imp_jobs_total{{queue=\"a\"}} {} {}\n", i * 3, t0_ms + i * 15_000));
        s.push_str(&format!("imp_jobs_total{{queue=\"b\"}} {} {}\n", i, t0_ms + i * 15_000));
        if i == 10 {
            s.push_str("imp_jobs_total{queue=\"c\" 1 2\n");
        }
    }
    s
}

/// `with_metadata`: the store kept `# TYPE` metadata (it is held in memory, so not after a reopen).
fn check_served(base: &str, t0_ms: i64, with_metadata: bool) {
    let url = format!(
        "{base}/api/v1/query_range?query={}&start={}&end={}&step=15",
        urlencode("imp_jobs_total{queue=\"a\"}"),
        t0_ms / 1000,
        t0_ms / 1000 + 49 * 15
    );
    let (_, body) = http_get(&url).expect("query");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let values = v["data"]["result"][0]["values"].as_array().unwrap_or_else(|| panic!("{body}")).clone();
    assert_eq!(values.len(), 50, "{body}");
    assert_eq!(values[49][1], "147");
    if with_metadata {
        let (_, md) = http_get(&format!("{base}/api/v1/metadata?metric=imp_jobs_total")).expect("metadata");
        assert!(md.contains("\"counter\""), "{md}");
    }
}

#[test]
fn import_backfills_a_data_dir_and_feeds_a_running_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 =
        (SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64 - 3_600_000) / 1000 * 1000;
    let file = dir.path().join("in.prom");
    std::fs::write(&file, exposition(t0)).expect("write input");
    let data = dir.path().join("store");

    let out = Command::new(crowsnest_bin())
        .args(["import", "--quiet", "--data-dir", data.to_str().expect("utf-8"), file.to_str().expect("utf-8")])
        .output()
        .expect("import");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "bad lines give exit 1: {stdout}{stderr}");
    assert!(stderr.contains("bad line 25:"), "{stderr}");
    assert!(stdout.contains("imported 100 samples of 2 series"), "{stdout}");

    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut store = Proc::crowsnest(
        "store",
        &["store", "--listen", &addr.to_string(), "--data-dir", data.to_str().expect("utf-8")],
        dir.path(),
    );
    assert!(wait_http_ok(&format!("{base}/ready"), Duration::from_secs(60)), "store not ready");
    check_served(&base, t0, false);
    store.terminate();

    // Into a running store over remote_write (fresh store, a clean file this time: exit 0).
    let data2 = dir.path().join("store2");
    let addr2 = free_addr();
    let base2 = format!("http://{addr2}");
    let _store2 = Proc::crowsnest(
        "store2",
        &["store", "--listen", &addr2.to_string(), "--data-dir", data2.to_str().expect("utf-8")],
        dir.path(),
    );
    assert!(wait_http_ok(&format!("{base2}/ready"), Duration::from_secs(60)), "store2 not ready");
    let clean = dir.path().join("clean.prom");
    std::fs::write(
        &clean,
        exposition(t0).lines().filter(|l| !l.contains("\"c\"")).collect::<Vec<_>>().join("\n") + "\n",
    )
    .expect("write clean");
    let out = Command::new(crowsnest_bin())
        .args(["import", "--quiet", "--url", &base2, "--batch-samples", "30", clean.to_str().expect("utf-8")])
        .output()
        .expect("import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("imported 100 samples of 2 series"), "{stdout}");
    check_served(&base2, t0, true);
}
