//! The rule evaluator against a real Prometheus (Debian package `prometheus`): our HTTP query
//! client reads its `/api/v1/query`, our remote_write client writes into its receiver, and our
//! `/api/v1/rules` and `/api/v1/alerts` answers have the same keys and JSON types as Prometheus'
//! own for the same rule file (what Grafana decodes strictly). SKIPs loudly without
//! `prometheus`; FAILs under `CI=true`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use crowsnest_alerter::eval::sink::CollectingSink;
use crowsnest_alerter::eval::{
    EvalContext, GroupRuntime, HttpQueryClient, QueryClient, RemoteWriteClient, SeriesWriter, eval_group,
};
use crowsnest_alerter::rules;
use crowsnest_wire::{Label, Sample, TimeSeries};
use serde_json::Value;
use tower::ServiceExt;

const RULES: &str = r#"groups:
  - name: shape
    interval: 1s
    rules:
      - record: shape:one
        expr: vector(1)
        labels: {source: test}
      - alert: AlwaysFiring
        expr: vector(42)
        labels: {severity: info}
        annotations: {summary: "value {{ $value }}"}
      - alert: Pending
        expr: vector(1)
        for: 1h
      - alert: Broken
        expr: 'label_replace(vector(1), "foo", "a", "", "") or label_replace(vector(2), "foo", "b", "", "")'
        labels: {foo: same}
"#;

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn missing(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return false;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{program} is required in CI (Debian package prometheus)");
    }
    eprintln!("SKIP: {program} not found; install the Debian package prometheus");
    true
}

async fn start_prometheus(dir: &Path) -> Prometheus {
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    std::fs::write(dir.join("prometheus.yml"), "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n")
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Prometheus { child, url: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http.get(format!("{}/-/ready", p.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("prometheus did not become ready");
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Asserts every key Prometheus sends is in ours with the same JSON type, recursively through
/// the first element of arrays and through objects with fixed keys (not label maps).
fn same_shape(path: &str, theirs: &Value, ours: &Value) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert_eq!(kind(theirs), kind(ours), "{path}: Prometheus has {theirs}, we have {ours}");
    match (theirs, ours) {
        (Value::Object(t), Value::Object(o)) if !path.ends_with("labels") && !path.ends_with("annotations") => {
            for (k, tv) in t {
                let ov = o.get(k).unwrap_or_else(|| panic!("{path}.{k} missing in ours: {ours}"));
                same_shape(&format!("{path}.{k}"), tv, ov);
            }
        }
        (Value::Array(t), Value::Array(o)) if !t.is_empty() && !o.is_empty() => {
            same_shape(&format!("{path}[0]"), &t[0], &o[0])
        }
        _ => {}
    }
}

#[tokio::test]
async fn query_write_and_api_shape_match_prometheus() {
    if missing("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prom = start_prometheus(dir.path()).await;

    // Query client against the real API.
    let q = HttpQueryClient::new(&prom.url, Duration::from_secs(10)).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let r = q.query("vector(3)", now).await.unwrap();
    assert_eq!(r, vec![(BTreeMap::new(), 3.0)]);
    assert!(q.query("sum(", now).await.is_err());

    // remote_write into the real receiver, read back.
    let w = RemoteWriteClient::new(&format!("{}/api/v1/write", prom.url), Duration::from_secs(10)).unwrap();
    let series = TimeSeries {
        labels: vec![Label::new("__name__", "crowsnest_written"), Label::new("job", "t")],
        samples: vec![Sample::new(now, 7.0)],
    };
    w.write(vec![series]).await.unwrap();
    let r = q.query("crowsnest_written", now).await.unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].1, 7.0);

    // Let Prometheus evaluate its copy of the rules; evaluate ours against it.
    let groups = rules::load_files(&[dir.path().join("rules.yml")], Duration::from_secs(1)).unwrap();
    let rt = Arc::new(GroupRuntime::new(groups[0].clone()));
    let ctx = EvalContext {
        query: Arc::new(q),
        writer: Some(Arc::new(w)),
        sink: Arc::new(CollectingSink::default()),
        external_labels: BTreeMap::new(),
        external_url: prom.url.clone(),
        resend_delay: Duration::from_secs(60),
        persist: None,
        metrics: None,
    };
    eval_group(&rt, &ctx, chrono::Utc::now().timestamp_millis()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let theirs = loop {
        let v = get_json(&format!("{}/api/v1/rules", prom.url)).await;
        let evaluated = v["data"]["groups"][0]["rules"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["lastEvaluation"] != "0001-01-01T00:00:00Z"))
            && v["data"]["groups"][0]["rules"][1]["alerts"].as_array().is_some_and(|a| !a.is_empty());
        if evaluated || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let app = crowsnest_alerter::api::router(Arc::new(vec![rt.clone()]));
    let resp = app.clone().oneshot(Request::get("/api/v1/rules").body(Body::empty()).unwrap()).await.unwrap();
    let ours: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    same_shape("rules", &theirs, &ours);
    // Each rule kind and state, one by one (array shape only checks element 0).
    let (t, o) = (&theirs["data"]["groups"][0]["rules"], &ours["data"]["groups"][0]["rules"]);
    for i in 0..4 {
        same_shape(&format!("rules[{i}]"), &t[i], &o[i]);
        assert_eq!(t[i]["health"], o[i]["health"], "health of rule {i}: {} vs {}", t[i], o[i]);
        assert_eq!(t[i].get("state"), o[i].get("state"), "state of rule {i}");
    }
    assert_eq!(t[1]["alerts"][0]["value"], o[1]["alerts"][0]["value"]);
    assert_eq!(t[1]["alerts"][0]["annotations"], o[1]["alerts"][0]["annotations"]);
    assert_eq!(t[1]["alerts"][0]["labels"], o[1]["alerts"][0]["labels"]);

    let theirs = get_json(&format!("{}/api/v1/alerts", prom.url)).await;
    let resp = app.oneshot(Request::get("/api/v1/alerts").body(Body::empty()).unwrap()).await.unwrap();
    let ours: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    same_shape("alerts", &theirs, &ours);
}
