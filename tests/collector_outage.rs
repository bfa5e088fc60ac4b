//! Store-outage test of the collector (no Docker needed): the remote_write receiver goes away
//! for a few seconds while the collector keeps probing a local health endpoint every 200ms; when
//! the receiver comes back on the same address, every sample collected meanwhile arrives (no gap
//! in the probe timestamps, nothing counted as dropped) and the disk queue drains to zero.

mod collector_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector_common::{Receiver, samples, wait_until};
use crowsnest_collector::CollectorConfig;
use crowsnest_collector::config::TargetConfig;
use crowsnest_wire::ops;
use tokio_util::sync::CancellationToken;

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.split_whitespace().next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_survive_a_receiver_outage() {
    let health = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health_addr = health.local_addr().unwrap();
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { r#"{"status":"UP"}"# }));
    tokio::spawn(async move { axum::serve(health, app).await.unwrap() });

    let data = Arc::new(Mutex::new(collector_common::Received::default()));
    let rx = Receiver::start("127.0.0.1:0", data.clone()).await;
    let addr = rx.addr;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CollectorConfig { instance: "outage-host".into(), location: "lab".into(), ..Default::default() };
    cfg.docker.enabled = false;
    cfg.discovery.enabled = false;
    cfg.remote_write.url = rx.url.clone();
    cfg.remote_write.min_backoff = Duration::from_millis(50);
    cfg.remote_write.max_backoff = Duration::from_millis(400);
    cfg.queue.dir = dir.path().join("queue");
    cfg.targets = vec![TargetConfig {
        job: "outage".into(),
        health_url: Some(format!("http://{health_addr}/health")),
        interval: Some(Duration::from_millis(200)),
        ..Default::default()
    }];
    let registry = ops::new_registry();
    let ready = ops::Readiness::new(false);
    let stop = CancellationToken::new();
    let task = tokio::spawn(crowsnest_collector::run(cfg, registry.clone(), ready.clone(), stop.clone()));

    let sel = [("job", "outage"), ("location", "lab")];
    wait_until("first probe results", Duration::from_secs(10), || samples(&data, "probe_success", &sel).len() >= 3)
        .await;
    assert!(ready.is_ready());
    rx.stop().await;
    let before = samples(&data, "probe_success", &sel).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = ops::encode_metrics(&registry);
    let queued = metric(&text, "crowsnest_collector_queue_samples").unwrap_or(0.0);
    assert!(queued > 0.0, "samples should wait in the queue during the outage:\n{text}");
    assert_eq!(samples(&data, "probe_success", &sel).len(), before, "nothing can arrive while the receiver is down");

    let rx = Receiver::start(&addr.to_string(), data.clone()).await;
    wait_until("queue drained", Duration::from_secs(20), || {
        metric(&ops::encode_metrics(&registry), "crowsnest_collector_queue_samples") == Some(0.0)
    })
    .await;
    let got = samples(&data, "probe_success", &sel);
    assert!(got.len() >= before + 10, "outage samples arrived: before {before}, now {}", got.len());
    assert!(got.iter().all(|(_, v)| *v == 1.0));
    for w in got.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap < 1500, "gap of {gap} ms in probe samples: something was lost");
    }
    let text = ops::encode_metrics(&registry);
    assert!(!text.contains("crowsnest_collector_samples_dropped_total{"), "nothing dropped:\n{text}");
    stop.cancel();
    task.await.unwrap().unwrap();
    rx.stop().await;
}
