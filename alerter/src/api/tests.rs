//! `/api/v1/rules` and `/api/v1/alerts` shapes, checked field by field against what Grafana decodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::rules::{AlertingRule, Group, RecordingRule};
use crate::state::{Element, Timing, step};

fn groups() -> Arc<Vec<Arc<GroupRuntime>>> {
    let g = Group {
        name: "g".into(),
        file: "f.yml".into(),
        interval: Duration::from_secs(30),
        limit: 0,
        query_offset: Duration::ZERO,
        rules: vec![
            Rule::Alerting(AlertingRule {
                name: "A".into(),
                expr: "up == 0".into(),
                for_: Duration::from_secs(60),
                keep_firing_for: Duration::ZERO,
                labels: BTreeMap::from([("severity".into(), "page".into())]),
                annotations: BTreeMap::from([("summary".into(), "x".into())]),
            }),
            Rule::Recording(RecordingRule { name: "r:x".into(), expr: "up".into(), labels: BTreeMap::new() }),
        ],
    };
    let rt = GroupRuntime::new(g);
    {
        let mut st = rt.status.lock();
        let el = Element {
            labels: BTreeMap::from([("alertname".into(), "A".into())]),
            annotations: BTreeMap::new(),
            value: 1234.0,
        };
        st.rules[0].alerts =
            step(&Default::default(), vec![el], 1_700_000_000_000, Timing { for_ms: 60_000, ..Default::default() }).0;
        st.rules[0].health = crate::eval::Health::Ok;
        st.rules[0].last_evaluation = DateTime::from_timestamp_millis(1_700_000_000_000);
        st.rules[1].health = crate::eval::Health::Err;
        st.rules[1].last_error = "boom".into();
    }
    let g2 = GroupRuntime::new(Group { name: "h".into(), rules: vec![], ..rt.group.clone() });
    Arc::new(vec![Arc::new(rt), Arc::new(g2)])
}

async fn get(uri: &str) -> (u16, Value) {
    let resp = router(groups()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn rules_have_prometheus_shape() {
    let (s, v) = get("/api/v1/rules").await;
    assert_eq!(s, 200);
    assert_eq!(v["status"], "success");
    let g = &v["data"]["groups"][0];
    assert_eq!(g["name"], "g");
    assert_eq!(g["file"], "f.yml");
    assert_eq!(g["interval"], 30.0);
    assert!(g["evaluationTime"].is_number());
    assert_eq!(g["lastEvaluation"], "0001-01-01T00:00:00Z");
    let a = &g["rules"][0];
    assert_eq!(a["type"], "alerting");
    assert_eq!(a["state"], "pending");
    assert_eq!(a["duration"], 60.0);
    assert_eq!(a["health"], "ok");
    assert!(a.get("lastError").is_none());
    assert_eq!(a["lastEvaluation"], "2023-11-14T22:13:20Z");
    assert_eq!(a["alerts"][0]["value"], "1.234e+03");
    assert_eq!(a["alerts"][0]["activeAt"], "2023-11-14T22:13:20Z");
    assert_eq!(a["alerts"][0]["state"], "pending");
    let r = &g["rules"][1];
    assert_eq!(r["type"], "recording");
    assert_eq!(r["health"], "err");
    assert_eq!(r["lastError"], "boom");
    assert!(r.get("state").is_none());
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 2, "empty groups are listed without filters");
}

#[tokio::test]
async fn rules_filters_and_pagination() {
    let (_, v) = get("/api/v1/rules?type=record").await;
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["groups"][0]["rules"].as_array().unwrap().len(), 1);
    let (_, v) = get("/api/v1/rules?rule_name[]=A&exclude_alerts=true").await;
    assert_eq!(v["data"]["groups"][0]["rules"][0]["alerts"].as_array().unwrap().len(), 0);
    let (_, v) = get("/api/v1/rules?rule_group=h").await;
    assert_eq!(v["data"]["groups"][0]["name"], "h");
    let (_, v) = get("/api/v1/rules?group_limit=1").await;
    let token = v["data"]["groupNextToken"].as_str().unwrap().to_string();
    let (_, v) = get(&format!("/api/v1/rules?group_limit=1&group_next_token={token}")).await;
    assert_eq!(v["data"]["groups"][0]["name"], "h");
    assert!(v["data"].get("groupNextToken").is_none());
    let (s, v) = get("/api/v1/rules?type=bogus").await;
    assert_eq!(s, 400);
    assert_eq!(v["errorType"], "bad_data");
}

#[tokio::test]
async fn alerts_endpoint_lists_active_alerts() {
    let (s, v) = get("/api/v1/alerts").await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["alerts"][0]["labels"]["alertname"], "A");
}

#[test]
fn go_float_e_format() {
    assert_eq!(format_e(1.0), "1e+00");
    assert_eq!(format_e(0.5), "5e-01");
    assert_eq!(format_e(-1234.5), "-1.2345e+03");
    assert_eq!(format_e(f64::INFINITY), "+Inf");
}
