//! The admin API through the router: Prometheus' statuses and envelopes, deletes honoured by
//! every read endpoint, clean_tombstones keeping answers, snapshots usable as a data directory.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use super::admin_router;
use crate::config::StoreConfig;
use crate::db::Db;
use crate::http::tests::{TestApp, app_with, enc};
use crate::http::{ApiState, router};

fn admin_app(enabled: bool) -> TestApp {
    let mut t = app_with(|c| c.admin_api_enabled = enabled);
    t.router = t.router.clone().merge(admin_router(t.state.clone()));
    t
}

/// Raw samples of `selector` over the last 1000 s before t=100 s, as (labels, [(t, v)]).
async fn raw(t: &TestApp, selector: &str) -> Vec<(Value, Vec<(f64, String)>)> {
    let q = enc(&format!("{selector}[1000s]"));
    let d = t.get(&format!("/api/v1/query?query={q}&time=100")).await.data();
    d["result"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|s| {
            let pts = s["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|p| (p[0].as_f64().expect("t"), p[1].as_str().expect("v").to_string()))
                .collect();
            (s["metric"].clone(), pts)
        })
        .collect()
}

async fn seed(t: &TestApp) {
    let a: Vec<(i64, f64)> = (1..=10).map(|i| (i * 1000, i as f64)).collect();
    let b: Vec<(i64, f64)> = (1..=10).map(|i| (i * 1000, -(i as f64))).collect();
    t.write_ok(&[(&[("__name__", "m"), ("i", "a")], &a), (&[("__name__", "m"), ("i", "b")], &b)]).await;
}

#[tokio::test]
async fn disabled_admin_api_answers_like_prometheus() {
    let t = admin_app(false);
    for path in ["delete_series?match[]=up", "clean_tombstones", "snapshot"] {
        let r = t.post_form(&format!("/api/v1/admin/tsdb/{path}"), "").await;
        assert_eq!(r.error(503, "unavailable"), "admin APIs disabled");
    }
}

#[tokio::test]
async fn delete_series_validates_like_prometheus() {
    let t = admin_app(true);
    let r = t.post_form("/api/v1/admin/tsdb/delete_series", "").await;
    assert_eq!(r.error(400, "bad_data"), "no match[] parameter provided");
    let r = t.post_form("/api/v1/admin/tsdb/delete_series", "match[]=up&start=soon").await;
    assert!(r.error(400, "bad_data").contains("start"));
    let r = t.post_form("/api/v1/admin/tsdb/delete_series", "match[]=%7B").await;
    r.error(400, "bad_data");
    let r = t.get("/api/v1/admin/tsdb/delete_series?match[]=up").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = t.post_form("/api/v1/admin/tsdb/snapshot", "skip_head=maybe").await;
    assert!(r.error(400, "bad_data").contains("skip_head"));
}

#[tokio::test]
async fn deletes_are_honoured_by_every_read_and_survive_clean_tombstones() {
    let t = admin_app(true);
    seed(&t).await;
    // PUT works too (Prometheus registers both).
    let r = t
        .send(
            Request::put("/api/v1/admin/tsdb/delete_series?match[]=m%7Bi%3D%22a%22%7D&start=3&end=5")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.body.is_empty());
    let r = t.post_form("/api/v1/admin/tsdb/delete_series", "match[]=m{i=\"b\"}").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let check = |got: Vec<(Value, Vec<(f64, String)>)>| {
        assert_eq!(got.len(), 1, "b is fully deleted: {got:?}");
        assert_eq!(got[0].0, json!({"__name__": "m", "i": "a"}));
        let ts: Vec<f64> = got[0].1.iter().map(|p| p.0).collect();
        assert_eq!(ts, vec![1.0, 2.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
    };
    check(raw(&t, "m").await);
    let series = t.get("/api/v1/series?match[]=m").await.data();
    assert_eq!(series, json!([{"__name__": "m", "i": "a"}]));
    let values = t.get("/api/v1/label/i/values").await.data();
    assert_eq!(values, json!(["a"]));
    // In a range where `a` has only deleted samples, it is gone as well.
    let series = t.get("/api/v1/series?match[]=m&start=3&end=5").await.data();
    assert_eq!(series, json!([]));
    let labels = t.get("/api/v1/labels?start=3&end=5").await.data();
    assert_eq!(labels, json!([]));

    // New samples outside the deleted interval are visible.
    t.write_ok(&[(&[("__name__", "m"), ("i", "a")], &[(11_000, 11.0)])]).await;
    let got = raw(&t, "m{i=\"a\"}").await;
    assert_eq!(got[0].1.last(), Some(&(11.0, "11".to_string())));

    let r = t.post_form("/api/v1/admin/tsdb/clean_tombstones", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&r.body));
    let got = raw(&t, "m").await;
    let ts: Vec<f64> = got[0].1.iter().map(|p| p.0).collect();
    assert_eq!(ts, vec![1.0, 2.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    assert_eq!(t.get("/api/v1/label/i/values").await.data(), json!(["a"]));
    assert_eq!(t.state.db.stats().series, 1, "the fully deleted series left the index");
}

#[tokio::test]
async fn snapshot_is_a_usable_data_directory() {
    let t = admin_app(true);
    seed(&t).await;
    let r = t.post_form("/api/v1/admin/tsdb/delete_series", "match[]=m{i=\"b\"}&end=4").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let before = raw(&t, "m").await;
    let d = t.post_form("/api/v1/admin/tsdb/snapshot", "").await.data();
    let name = d["name"].as_str().expect("name").to_string();
    let re = regex::Regex::new(r"^\d{8}T\d{6}Z-[0-9a-f]{16}$").expect("regex");
    assert!(re.is_match(&name), "{name}");
    let dir = t.state.db.config().data_dir.join("snapshots").join(&name);
    assert!(dir.join("index").is_dir() && dir.join("chunks").is_dir(), "{}", dir.display());

    // Writes after the snapshot are not in it.
    t.write_ok(&[(&[("__name__", "m"), ("i", "a")], &[(11_000, 11.0)])]).await;

    let reg = crowsnest_wire::ops::new_registry();
    let copy =
        Arc::new(Db::open(StoreConfig { data_dir: dir.clone(), ..Default::default() }, &reg).expect("open copy"));
    let state = ApiState::new(copy, &reg);
    let other =
        TestApp { router: router(state.clone()), state, registry: reg, _dir: tempfile::tempdir().expect("tmp") };
    assert_eq!(raw(&other, "m").await, before);
    assert_eq!(
        other.get("/api/v1/series?match[]=m").await.data(),
        t.get("/api/v1/series?match[]=m&end=10").await.data()
    );

    let d = t.post_form("/api/v1/admin/tsdb/snapshot", "skip_head=true").await.data();
    assert_ne!(d["name"].as_str(), Some(name.as_str()));
}

#[tokio::test]
async fn reload_applies_runtime_settings_and_keeps_fixed_ones() {
    let t = admin_app(true);
    let mut c = (*t.state.db.config()).clone();
    assert_eq!(t.state.query_slots.available_permits(), c.query.max_concurrent);
    c.retention = std::time::Duration::from_secs(30 * 24 * 3600);
    c.query.max_concurrent = 3;
    c.limits.max_label_names_per_series = 3;
    c.data_dir = "/elsewhere".into();
    let fixed = t.state.reload(c.clone()).expect("reload");
    assert_eq!(fixed, vec!["store.data_dir"]);
    let now = t.state.db.config();
    assert_eq!((now.retention, now.limits.max_label_names_per_series), (c.retention, 3));
    assert_ne!(now.data_dir, c.data_dir);
    assert_eq!(t.state.query_slots.available_permits(), 3);
    let flags = t.get("/api/v1/status/flags").await.data();
    assert_eq!(flags["storage.tsdb.retention.time"], "4w2d");
    // The new label limit applies to the next write.
    let r = t
        .post_write(crate::http::tests::write_body(
            &[(&[("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "3")], &[(1, 1.0)])],
            vec![],
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&r.body));
    // Invalid settings are refused; the current ones stay.
    let mut bad = c.clone();
    bad.retention = std::time::Duration::from_secs(60);
    assert!(t.state.reload(bad).is_err());
    assert_eq!(t.state.db.config().retention, c.retention);
}

#[tokio::test]
async fn a_query_over_a_corrupt_chunk_warns_and_serves_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() };
    {
        let reg = crowsnest_wire::ops::new_registry();
        let db = Db::open(cfg.clone(), &reg).expect("open");
        let a: Vec<(i64, f64)> = (0..2000).map(|i| (i * 15_000, i as f64)).collect();
        let series = crowsnest_wire::TimeSeries {
            labels: crowsnest_wire::Labels::from_pairs([("__name__", "w"), ("i", "a")]).into_vec(),
            samples: a.iter().map(|(t, v)| crowsnest_wire::Sample::new(*t, *v)).collect(),
        };
        db.append(vec![series]).expect("append");
        db.close().expect("close");
    }
    let path = std::fs::read_dir(dir.path().join("chunks"))
        .expect("chunks")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "dat"))
        .expect("a chunk file");
    let recs = crate::db::chunkfile::parse_records(std::fs::File::open(&path).expect("open"), 0, 0).found;
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[(recs[0].offset + u64::from(recs[0].len) / 2) as usize] ^= 0x20;
    std::fs::write(&path, bytes).expect("write");

    let reg = crowsnest_wire::ops::new_registry();
    let state = ApiState::new(Arc::new(Db::open(cfg, &reg).expect("reopen")), &reg);
    let t = TestApp { router: router(state.clone()), state, registry: reg, _dir: tempfile::tempdir().expect("tmp") };
    let r = t.get(&format!("/api/v1/query?query={}&time=30000", enc("count_over_time(w[100000s])"))).await;
    let v = r.json();
    assert_eq!(v["status"], "success", "{v}");
    let n: f64 = v["data"]["result"][0]["value"][1].as_str().expect("value").parse().expect("number");
    assert!(n > 0.0 && n < 2000.0, "the other chunks are served: {n}");
    let w = v["warnings"][0].as_str().expect("a warning");
    assert!(w.starts_with("1 stored chunk(s) failed their checksum"), "{w}");
    // A query that does not touch the damaged chunk has no warning.
    let r = t.get(&format!("/api/v1/query?query={}&time=29000", enc("w[1s]"))).await;
    assert!(r.json().get("warnings").is_none(), "{}", r.json());
}
