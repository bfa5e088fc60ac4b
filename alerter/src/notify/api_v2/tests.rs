//! In-process tests of the API v2 shapes (the amtool end-to-end test lives in `tests/`).

use super::*;
use axum::body::Body;
use axum::http::Request;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn notifier() -> Notifier {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let cfg =
        crate::notify::amconfig::parse("route: {receiver: team, group_wait: 1h}\nreceivers: [{name: team}]\n").unwrap();
    Notifier::start(
        cfg,
        db.open_tree("notify").unwrap(),
        &crowsnest_wire::ops::new_registry(),
        CancellationToken::new(),
    )
    .unwrap()
}

async fn call(n: &Notifier, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_default()).unwrap();
    let resp = n.router().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn alerts_and_silences_round_trip() {
    let n = notifier();
    let alerts = json!([
        {"labels": {"alertname": "DiskFull", "instance": "h1"}, "annotations": {"summary": "s"}, "generatorURL": "http://prom/graph"},
        {"labels": {"alertname": "CpuHigh", "instance": "h1"}},
    ]);
    assert_eq!(call(&n, "POST", "/api/v2/alerts", Some(alerts)).await.0, StatusCode::OK);
    let (st, list) = call(&n, "GET", "/api/v2/alerts", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let disk = list.as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == "DiskFull").unwrap();
    assert_eq!(disk["status"]["state"], "active");
    assert_eq!(disk["receivers"][0]["name"], "team");
    assert_eq!(disk["fingerprint"].as_str().unwrap().len(), 16);

    let now = Utc::now();
    let silence = json!({"matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true}],
        "startsAt": ts(now), "endsAt": ts(now + chrono::Duration::hours(1)), "createdBy": "me", "comment": "maintenance"});
    let (st, created) = call(&n, "POST", "/api/v2/silences", Some(silence)).await;
    assert_eq!(st, StatusCode::OK, "{created}");
    let id = created["silenceID"].as_str().unwrap().to_string();
    let (_, got) = call(&n, "GET", &format!("/api/v2/silence/{id}"), None).await;
    assert_eq!(got["status"]["state"], "active");
    assert_eq!(got["matchers"][0]["isEqual"], true);

    let (_, active) = call(&n, "GET", "/api/v2/alerts?silenced=false&filter=instance%3D%22h1%22", None).await;
    assert_eq!(active.as_array().unwrap().len(), 1, "the silenced alert is hidden: {active}");
    let (_, suppressed) = call(&n, "GET", "/api/v2/alerts?filter=alertname%3DDiskFull", None).await;
    assert_eq!(suppressed[0]["status"]["state"], "suppressed");
    assert_eq!(suppressed[0]["status"]["silencedBy"][0], id.as_str());

    let (_, filtered) = call(&n, "GET", "/api/v2/silences?filter=alertname%3D%22DiskFull%22", None).await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let (_, none) = call(&n, "GET", "/api/v2/silences?filter=alertname%3D%22Other%22", None).await;
    assert!(none.as_array().unwrap().is_empty());

    assert_eq!(call(&n, "DELETE", &format!("/api/v2/silence/{id}"), None).await.0, StatusCode::OK);
    let (_, got) = call(&n, "GET", &format!("/api/v2/silence/{id}"), None).await;
    assert_eq!(got["status"]["state"], "expired");
    assert_eq!(call(&n, "GET", "/api/v2/silence/nope", None).await.0, StatusCode::NOT_FOUND);

    let (_, groups) = call(&n, "GET", "/api/v2/alerts/groups", None).await;
    assert_eq!(groups[0]["receiver"]["name"], "team");
    assert_eq!(groups[0]["alerts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn status_receivers_and_bad_requests() {
    let n = notifier();
    let (st, status) = call(&n, "GET", "/api/v2/status", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(status["cluster"]["status"], "disabled");
    assert!(status["config"]["original"].as_str().unwrap().contains("team"));
    assert!(status["versionInfo"]["version"].as_str().unwrap().starts_with("crowsnest-"));
    let (_, recv) = call(&n, "GET", "/api/v2/receivers", None).await;
    assert_eq!(recv, json!([{"name": "team"}]));

    let (st, err) = call(&n, "POST", "/api/v2/alerts", Some(json!([{"labels": {}}]))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(err.as_str().unwrap().contains("at least one label"), "{err}");
    assert_eq!(call(&n, "POST", "/api/v2/alerts", Some(json!({"not": "a list"}))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&n, "GET", "/api/v2/alerts?filter=nooperator", None).await.0, StatusCode::BAD_REQUEST);
    let now = Utc::now();
    let bad = json!({"matchers": [{"name": "a", "value": ".*", "isRegex": true}], "startsAt": ts(now), "endsAt": ts(now + chrono::Duration::hours(1))});
    assert_eq!(call(&n, "POST", "/api/v2/silences", Some(bad)).await.0, StatusCode::BAD_REQUEST);
}
