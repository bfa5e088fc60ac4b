//! Group evaluation against a scripted query client, a recording writer and a collecting sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crowsnest_wire::{TimeSeries, is_stale_nan};
use parking_lot::Mutex;

use super::client::Sample;
use super::sink::CollectingSink;
use super::*;
use crate::rules::{AlertingRule, RecordingRule};

#[derive(Default)]
struct Scripted(Mutex<BTreeMap<String, Result<Vec<Sample>, EvalError>>>);

#[async_trait]
impl QueryClient for Scripted {
    async fn query(&self, expr: &str, _at: i64) -> Result<Vec<Sample>, EvalError> {
        self.0.lock().get(expr).cloned().unwrap_or(Ok(vec![]))
    }
}

#[derive(Default)]
struct Written(Mutex<Vec<TimeSeries>>);

#[async_trait]
impl SeriesWriter for Written {
    async fn write(&self, series: Vec<TimeSeries>) -> Result<(), EvalError> {
        self.0.lock().extend(series);
        Ok(())
    }
}

fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn group() -> Group {
    Group {
        name: "g".into(),
        file: "f.yml".into(),
        interval: Duration::from_secs(15),
        limit: 0,
        query_offset: Duration::ZERO,
        rules: vec![
            Rule::Recording(RecordingRule {
                name: "job:up:sum".into(),
                expr: "sum by (job) (up)".into(),
                labels: BTreeMap::new(),
            }),
            Rule::Alerting(AlertingRule {
                name: "Down".into(),
                expr: "up == 0".into(),
                for_: Duration::from_secs(30),
                keep_firing_for: Duration::ZERO,
                labels: m(&[("severity", "critical")]),
                annotations: m(&[("summary", "{{ $labels.instance }} down")]),
            }),
        ],
    }
}

fn name_of(ts: &TimeSeries) -> String {
    ts.labels.iter().find(|l| l.name == "__name__").map(|l| l.value.clone()).unwrap_or_default()
}

#[tokio::test]
async fn evaluates_writes_and_sends() {
    let q = Arc::new(Scripted::default());
    let w = Arc::new(Written::default());
    let sink = Arc::new(CollectingSink::default());
    let ctx = EvalContext {
        query: q.clone(),
        writer: Some(w.clone()),
        sink: sink.clone(),
        external_labels: m(&[("cluster", "c1"), ("severity", "ignored")]),
        external_url: "http://x".into(),
        resend_delay: Duration::from_secs(60),
        persist: None,
        metrics: None,
    };
    q.0.lock().insert("sum by (job) (up)".into(), Ok(vec![(m(&[("job", "a")]), 2.0)]));
    q.0.lock().insert("up == 0".into(), Ok(vec![(m(&[("__name__", "up"), ("instance", "h1")]), 0.0)]));
    let g = GroupRuntime::new(group());
    eval_group(&g, &ctx, 0).await;
    {
        let st = g.status.lock();
        assert_eq!(st.rules[0].health, Health::Ok);
        assert_eq!(st.rules[1].alerts.alerts.values().next().unwrap().state, crate::state::AlertState::Pending);
    }
    let names: Vec<String> = w.0.lock().iter().map(name_of).collect();
    assert_eq!(names, vec!["job:up:sum", "ALERTS", "ALERTS_FOR_STATE"]);
    assert!(sink.0.lock().is_empty(), "pending alerts are not sent");

    eval_group(&g, &ctx, 30_000).await;
    let sent = sink.0.lock().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].labels,
        m(&[("alertname", "Down"), ("cluster", "c1"), ("instance", "h1"), ("severity", "critical")])
    );
    assert_eq!(sent[0].annotations["summary"], "h1 down");
    assert!(sent[0].generator_url.starts_with("http://x/graph?g0.expr=up"));

    // Condition clears, recording output vanishes: resolved alert sent, stale markers written.
    w.0.lock().clear();
    q.0.lock().clear();
    eval_group(&g, &ctx, 45_000).await;
    let sent = sink.0.lock().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].ends_at.unwrap().timestamp_millis(), 45_000);
    let written = w.0.lock().clone();
    assert_eq!(written.len(), 3);
    assert!(written.iter().all(|s| is_stale_nan(s.samples[0].value)), "{written:?}");
}

#[tokio::test]
async fn query_errors_mark_rule_unhealthy() {
    let q = Arc::new(Scripted::default());
    q.0.lock().insert("up == 0".into(), Err(EvalError::Query("boom".into())));
    let ctx = EvalContext {
        query: q,
        writer: None,
        sink: Arc::new(CollectingSink::default()),
        external_labels: BTreeMap::new(),
        external_url: String::new(),
        resend_delay: Duration::from_secs(60),
        persist: None,
        metrics: None,
    };
    let g = GroupRuntime::new(group());
    eval_group(&g, &ctx, 1_000).await;
    let st = g.status.lock();
    assert_eq!(st.rules[0].health, Health::Ok);
    assert_eq!(st.rules[1].health, Health::Err);
    assert_eq!(st.rules[1].last_error, "boom");
    assert_eq!(st.last_eval_ms, Some(1_000));
}

#[tokio::test]
async fn http_query_client_parses_envelopes() {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/api/v1/query",
        post(|body: String| async move {
            if body.contains("bad") {
                (axum::http::StatusCode::BAD_REQUEST, r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            } else {
                (axum::http::StatusCode::OK, r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1,"2.5"]}]}}"#)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let c = HttpQueryClient::new(&format!("http://{addr}"), Duration::from_secs(5)).unwrap();
    let r = c.query("up", 1_000).await.unwrap();
    assert_eq!(r, vec![(m(&[("job", "a")]), 2.5)]);
    assert_eq!(c.query("bad(", 1_000).await.unwrap_err(), EvalError::Query("parse error".into()));
    server.abort();
}
