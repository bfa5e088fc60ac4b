//! Real Prometheus uses the notifier as its Alertmanager (`alerting.alertmanagers`, API v2):
//! its firing alert arrives through `POST /api/v2/alerts` and is delivered to Slack.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_posts_alerts_to_us() {
    if missing("prometheus", "Prometheus-as-client test") {
        return;
    }
    let slack = SlackMock::start().await;
    let cfg = format!(
        "route:\n  receiver: slack\n  group_by: [alertname]\n  group_wait: 300ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: slack\n    slack_configs:\n      - api_url: {}\n",
        slack.url
    );
    let n = Running::start(&cfg, temp_tree()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: t\n    interval: 1s\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels: {severity: warning}\n        annotations: {summary: 'Always firing'}\n",
    )
    .unwrap();
    let am = n.url.trim_start_matches("http://");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global: {{evaluation_interval: 1s}}\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs: [{{targets: ['{am}']}}]\n"),
    )
    .unwrap();
    let port = free_port();
    let _prom = Child(
        Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Alertmanager discovery syncs ~5s after start; without a short resend delay the
            // first firing evaluation finds no Alertmanager and the next send is a minute away.
            .arg("--rules.alert.resend-delay=1s")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts"),
    );
    let delivered = wait_for(Duration::from_secs(30), || {
        slack.messages().iter().any(|(_, m)| SlackMock::text_of(m).contains("AlwaysFiring"))
    })
    .await;
    if !delivered {
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!("Prometheus' alert did not reach Slack through us; prometheus log (newest first):\n{}", tail.join("\n"));
    }
    let text = SlackMock::text_of(&slack.messages()[0].1);
    assert!(text.contains("Always firing") && text.contains("severity=warning"), "{text}");
    assert!(text.contains("/graph?g0.expr=vector%281%29"), "generator URL links back to the query: {text}");
    n.stop().await;
}
