//! The whole path on the real Docker Engine (issue 6, "End-to-end tests"): `crowsnest up` (store +
//! collector + alerter in one process) with short intervals, a test container whose HEALTHCHECK
//! is turned unhealthy and healthy again with `docker exec`, and both notification channels: a
//! Slack-shaped webhook receiver (validating Slack's payload rules, `support::slack`) and a real
//! SMTP server (aiosmtpd, `support::smtp`). Checked at every hop: the collector's
//! `container_health_status{status="unhealthy"}` through the store's query API, the alert on
//! `/api/v1/alerts` and as `ALERTS` in the store, the Slack message and the mail, then the resolved notice on both. The time
//! from each change to each notification is measured and printed.
//!
//! The shipped `ContainerUnhealthy` rule waits `for: 1m`; to keep the test near a minute the
//! shipped pack is switched off (`shipped_rules: false`) and a copy of that very rule (same
//! expression, labels and annotations) with `for: 3s` is loaded with `--rules`
//! (`support::rules::shipped_rule_with_for`). The route sends only this test's container to the
//! receivers, so other containers on the engine cannot disturb it.
//!
//! Skips loudly without a Docker Engine or aiosmtpd; fails under `CI=true`.

mod support;

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::slack::SlackReceiver;
use support::smtp::{SmtpServer, require_aiosmtpd};
use support::*;

const TEST: &str = "e2e_stack";
const IMAGE: &str = "crowsnest-e2e-busybox:latest";

/// Removes the test container, also when the test panics.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        docker_rm(&[&self.0]);
    }
}

fn alertmanager_yml(slack_url: &str, smarthost: &str, container: &str) -> String {
    format!(
        r#"global:
  smtp_from: crowsnest@e2e.test
  smtp_smarthost: '{smarthost}'
  smtp_require_tls: false
route:
  receiver: nobody
  group_by: [alertname, instance, name]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['name="{container}"']
      receiver: e2e
receivers:
  - name: nobody
  - name: e2e
    slack_configs:
      - api_url: '{slack_url}'
        channel: '#e2e'
    email_configs:
      - to: ops@e2e.test
"#
    )
}

fn config_yml(listen: &str, data: &str) -> String {
    format!(
        r#"listen: '{listen}'
data_dir: '{data}'
shipped_rules: false
collector:
  instance: e2e-stack-host
  interval: 2s
  docker:
    timeout: 5s
    extra_labels: [crowsnest.e2e]
alerter:
  evaluation_interval: 2s
"#
    )
}

/// The alert for `container` on `/api/v1/alerts` in `state`, if any.
fn alert_in_state(base: &str, container: &str, state: &str) -> Option<Value> {
    let (_, body) = http_get(&format!("{base}/api/v1/alerts")).ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == "ContainerUnhealthy" && a["labels"]["name"] == container && a["state"] == state
        })
        .cloned()
}

fn has_alert(base: &str, container: &str) -> bool {
    ["pending", "firing"].iter().any(|s| alert_in_state(base, container, s).is_some())
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn since(t: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(t).unwrap_or_default()
}

#[test]
fn unhealthy_container_reaches_slack_and_mail_then_resolves() {
    if !require_docker(TEST) || !require_aiosmtpd(TEST) {
        return;
    }
    let started = Instant::now();
    let image = busybox_image_as(IMAGE);
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("crowsnest-e2e-stack-{}", std::process::id());
    docker_rm(&[&name]);
    let _container = Container(name.clone());

    let slack = SlackReceiver::start();
    let smtp = SmtpServer::start(dir.path());
    let rules = dir.path().join("unhealthy.rules.yml");
    std::fs::write(&rules, rules::shipped_rule_with_for("ContainerUnhealthy", "3s", None)).expect("write rules");
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(&am, alertmanager_yml(&slack.url, &smtp.smarthost(), &name)).expect("write am config");
    let addr = free_addr();
    let base = format!("http://{addr}");
    let cfg = dir.path().join("crowsnest.yml");
    let data = dir.path().join("data");
    std::fs::write(&cfg, config_yml(&addr.to_string(), data.to_str().expect("utf-8"))).expect("write config");

    let up = Proc::crowsnest(
        "crowsnest-up",
        &[
            "up",
            "--config",
            cfg.to_str().expect("utf-8"),
            "--rules",
            rules.to_str().expect("utf-8"),
            "--alertmanager-config",
            am.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(
        wait_http_ok(&format!("{base}/ready"), Duration::from_secs(60)),
        "crowsnest up not ready:\n{}",
        up.output()
    );

    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "crowsnest.e2e=stack",
        "--health-cmd",
        "test -f /tmp/healthy",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "1",
        &image,
        "sh",
        "-c",
        "touch /tmp/healthy && exec sleep 600",
    ]);
    let sel = format!("container_health_status{{name=\"{name}\",container_label_crowsnest_e2e=\"stack\"");
    let healthy = format!("{sel},status=\"healthy\"}} == 1");
    let unhealthy = format!("{sel},status=\"unhealthy\"}} == 1");
    assert!(
        eventually(Duration::from_secs(45), || (!query_vector(&base, &healthy).is_empty()).then_some(())).is_some(),
        "the healthy container never showed up in the store:\n{}",
        up.output()
    );
    assert!(!has_alert(&base, &name), "no alert while healthy");

    // Healthy -> unhealthy.
    let t0 = Instant::now();
    let t0_wall = SystemTime::now();
    docker(&["exec", &name, "rm", "-f", "/tmp/healthy"]);
    // The collector's Docker cycle can take several seconds on a busy engine (each one-shot stats
    // call of Docker 20.10 waits ~1 s), hence the generous bound on this hop.
    let series = eventually(Duration::from_secs(45), || {
        let v = query_vector(&base, &unhealthy);
        (!v.is_empty()).then_some(v)
    })
    .unwrap_or_else(|| panic!("unhealthy status never reached the store:\n{}", up.output()));
    let t_store = t0.elapsed();
    assert_eq!(series[0]["metric"]["instance"], "e2e-stack-host", "{series:?}");
    let firing = eventually(Duration::from_secs(30), || alert_in_state(&base, &name, "firing"))
        .unwrap_or_else(|| panic!("ContainerUnhealthy never fired:\n{}", up.output()));
    let t_firing = t0.elapsed();
    assert_eq!(firing["labels"]["severity"], "warning", "{firing}");
    assert_eq!(firing["labels"]["instance"], "e2e-stack-host", "{firing}");
    let alerts_q = format!("ALERTS{{alertname=\"ContainerUnhealthy\",alertstate=\"firing\",name=\"{name}\"}} == 1");
    assert!(
        eventually(Duration::from_secs(20), || (!query_vector(&base, &alerts_q).is_empty()).then_some(())).is_some(),
        "ALERTS not written back to the store"
    );
    let slack_firing = eventually(Duration::from_secs(30), || {
        slack.messages().into_iter().find(|m| m.text().contains(&name) && m.text().contains("FIRING"))
    })
    .unwrap_or_else(|| panic!("no Slack message; attempts {:?}:\n{}", slack.attempts(), up.output()));
    let t_slack = slack_firing.at.duration_since(t0);
    let mail_firing = eventually(Duration::from_secs(30), || {
        smtp.mails().into_iter().find(|m| m.raw.contains(&name) && m.subject().contains("FIRING"))
    })
    .unwrap_or_else(|| panic!("no mail:\n{}", up.output()));
    let t_mail = since(t0_wall, mail_firing.received);

    let text = slack_firing.text();
    for want in ["ContainerUnhealthy", "is unhealthy", "e2e-stack-host"] {
        assert!(text.contains(want), "{want:?} missing from the Slack message: {text}");
    }
    assert_eq!(slack_firing.body["channel"], "#e2e");
    assert!(mail_firing.subject().contains("ContainerUnhealthy"), "{}", mail_firing.raw);
    assert_eq!(mail_firing.to, vec!["ops@e2e.test".to_string()]);
    assert_eq!(mail_firing.from, "crowsnest@e2e.test");

    // Unhealthy -> healthy.
    let t1 = Instant::now();
    let t1_wall = SystemTime::now();
    docker(&["exec", &name, "touch", "/tmp/healthy"]);
    assert!(
        eventually(Duration::from_secs(45), || (!query_vector(&base, &healthy).is_empty()).then_some(())).is_some(),
        "healthy status never returned to the store"
    );
    let t_store2 = t1.elapsed();
    let slack_resolved = eventually(Duration::from_secs(30), || {
        slack.messages().into_iter().find(|m| m.at >= t1 && m.text().contains(&name) && m.text().contains("RESOLVED"))
    })
    .unwrap_or_else(|| panic!("no resolved Slack message; got {:?}:\n{}", slack.messages(), up.output()));
    let t_slack2 = slack_resolved.at.duration_since(t1);
    let mail_resolved = eventually(Duration::from_secs(30), || {
        smtp.mails().into_iter().find(|m| m.received >= t1_wall && m.raw.contains(&name) && m.raw.contains("RESOLVED"))
    })
    .unwrap_or_else(|| panic!("no resolved mail; got {:?}:\n{}", smtp.mails(), up.output()));
    let t_mail2 = since(t1_wall, mail_resolved.received);
    assert!(!has_alert(&base, &name), "alert still active after resolution");

    eprintln!("e2e_stack latencies (collector 2s, eval 2s, for 3s, group_wait 1s, group_interval 1s):");
    eprintln!("  unhealthy -> store query:   {}", secs(t_store));
    eprintln!("  unhealthy -> alert firing:  {}", secs(t_firing));
    eprintln!("  unhealthy -> slack firing:  {}", secs(t_slack));
    eprintln!("  unhealthy -> mail firing:   {}", secs(t_mail));
    eprintln!("  healthy   -> store query:   {}", secs(t_store2));
    eprintln!("  healthy   -> slack resolved: {}", secs(t_slack2));
    eprintln!("  healthy   -> mail resolved:  {}", secs(t_mail2));
    eprintln!("  whole test: {}", secs(started.elapsed()));

    // Exactly one firing and one resolved notice each, all payloads valid for Slack.
    std::thread::sleep(Duration::from_secs(2));
    let ours: Vec<_> = slack.messages().into_iter().filter(|m| m.text().contains(&name)).collect();
    assert_eq!(ours.len(), 2, "one firing and one resolved Slack message: {ours:?}");
    assert!(slack.invalid_payloads().is_empty(), "Slack refused payloads: {:?}", slack.invalid_payloads());
    let mails: Vec<_> = smtp.mails().into_iter().filter(|m| m.raw.contains(&name)).collect();
    assert_eq!(
        mails.len(),
        2,
        "one firing and one resolved mail: {:?}",
        mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
}
