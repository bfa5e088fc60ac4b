//! The scale-out path (issue 6, "End-to-end tests"): Crowsnest's collector and alerter on an
//! existing distributed engine instead of our store. VictoriaMetrics single-node (Debian package
//! `victoria-metrics`; its `/api/v1/write` and `/api/v1/query` are the ones its cluster's
//! vminsert/vmselect serve) receives the collector's remote_write; `crowsnest alerter` evaluates
//! the shipped rule pack plus a user rule against it (`alerter.query_url`) and writes `ALERTS`
//! back into it (`alerter.remote_write_url`). Checked: the container series of an unhealthy test
//! container arrive in VictoriaMetrics, every shipped rule evaluates there without error, the user
//! rule fires (`/api/v1/alerts`) and reaches a Slack-shaped receiver (which first answers 500, so
//! the retry path is exercised too), and `ALERTS` is queryable in VictoriaMetrics.
//!
//! The user rule is a copy of the shipped `ContainerUnhealthy` (same expression) renamed
//! `ContainerUnhealthyE2E` with `for: 3s`, since the shipped one waits a minute.
//! Skips loudly without victoria-metrics or a Docker Engine; fails under `CI=true`.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::slack::{Reply, SlackReceiver};
use support::*;

const TEST: &str = "e2e_victoriametrics";
const IMAGE: &str = "crowsnest-e2e-busybox:latest";
const ALERT: &str = "ContainerUnhealthyE2E";

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        docker_rm(&[&self.0]);
    }
}

fn get_json(url: &str) -> Option<Value> {
    let (_, body) = http_get(url).ok()?;
    serde_json::from_str(&body).ok()
}

#[test]
fn collector_and_alerter_on_victoriametrics() {
    if !require_program("victoria-metrics", TEST) || !require_docker(TEST) {
        return;
    }
    let started = Instant::now();
    let image = busybox_image_as(IMAGE);
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path();
    let name = format!("crowsnest-e2e-vm-{}", std::process::id());
    docker_rm(&[&name]);
    let _container = Container(name.clone());

    let vm_addr = free_addr().to_string();
    let vm = format!("http://{vm_addr}");
    let storage = dir.path().join("vm-data");
    let _vm = Proc::spawn(
        "victoria-metrics",
        "victoria-metrics",
        &[
            "-storageDataPath",
            storage.to_str().expect("utf-8"),
            "-httpListenAddr",
            &vm_addr,
            "-search.latencyOffset=0s",
            "-search.disableCache",
        ],
        logs,
        &[],
    );
    assert!(wait_http_ok(&format!("{vm}/health"), Duration::from_secs(60)), "VictoriaMetrics did not start");

    // The container is unhealthy from the start: its health file never exists.
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "crowsnest.e2e=vm",
        "--health-cmd",
        "test -f /tmp/healthy",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "1",
        &image,
        "sleep",
        "600",
    ]);

    let collector_cfg = dir.path().join("collector.yml");
    std::fs::write(
        &collector_cfg,
        format!(
            "collector:\n  instance: e2e-vm-host\n  interval: 2s\n  remote_write:\n    url: '{vm}/api/v1/write'\n    min_backoff: 100ms\n    max_backoff: 1s\n  queue:\n    dir: '{}'\n  docker:\n    timeout: 5s\n    extra_labels: [crowsnest.e2e]\n  discovery:\n    enabled: false\n",
            dir.path().join("queue").display()
        ),
    )
    .expect("collector config");
    let collector_listen = free_addr().to_string();
    let collector = Proc::crowsnest(
        "collector",
        &["collector", "--config", collector_cfg.to_str().expect("utf-8"), "--listen", &collector_listen],
        logs,
    );

    let slack = SlackReceiver::start();
    slack.script(&[Reply::rollup_error()]);
    let am = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            "route:\n  receiver: nobody\n  group_by: [alertname, name]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n    - matchers: ['name=\"{name}\"']\n      receiver: e2e\nreceivers:\n  - name: nobody\n  - name: e2e\n    slack_configs:\n      - api_url: '{}'\n",
            slack.url
        ),
    )
    .expect("am config");
    let rules = dir.path().join("user.rules.yml");
    std::fs::write(&rules, rules::shipped_rule_with_for("ContainerUnhealthy", "3s", Some(ALERT))).expect("rules");
    let alerter_cfg = dir.path().join("alerter.yml");
    std::fs::write(
        &alerter_cfg,
        format!(
            "data_dir: '{}'\nshipped_rules: true\nalerter:\n  query_url: '{vm}'\n  remote_write_url: '{vm}/api/v1/write'\n  evaluation_interval: 2s\n",
            dir.path().join("alerter-data").display()
        ),
    )
    .expect("alerter config");
    let alerter_addr = free_addr().to_string();
    let alerter_base = format!("http://{alerter_addr}");
    let alerter = Proc::crowsnest(
        "alerter",
        &[
            "alerter",
            "--config",
            alerter_cfg.to_str().expect("utf-8"),
            "--listen",
            &alerter_addr,
            "--rules",
            rules.to_str().expect("utf-8"),
            "--alertmanager-config",
            am.to_str().expect("utf-8"),
        ],
        logs,
    );
    assert!(
        wait_http_ok(&format!("{alerter_base}/ready"), Duration::from_secs(60)),
        "alerter not ready:\n{}",
        alerter.output()
    );

    // Container series arrive in VictoriaMetrics.
    let unhealthy =
        format!("container_health_status{{name=\"{name}\",status=\"unhealthy\",instance=\"e2e-vm-host\"}} == 1");
    let t_unhealthy =
        eventually(Duration::from_secs(45), || (!query_vector(&vm, &unhealthy).is_empty()).then(Instant::now))
            .unwrap_or_else(|| panic!("unhealthy status never reached VictoriaMetrics:\n{}", collector.output()));
    for metric in
        ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_start_time_seconds"]
    {
        let v = query_vector(&vm, &format!("{metric}{{name=\"{name}\",container_label_crowsnest_e2e=\"vm\"}}"));
        assert_eq!(v.len(), 1, "{metric} of the test container in VictoriaMetrics: {v:?}");
    }

    // The user rule fires and reaches Slack (after one 500).
    let firing = eventually(Duration::from_secs(30), || {
        let v = get_json(&format!("{alerter_base}/api/v1/alerts"))?;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == ALERT && a["labels"]["name"] == name.as_str() && a["state"] == "firing"
            })
            .cloned()
    })
    .unwrap_or_else(|| panic!("{ALERT} never fired:\n{}", alerter.output()));
    let t_firing = t_unhealthy.elapsed();
    assert_eq!(firing["labels"]["instance"], "e2e-vm-host", "{firing}");
    let msg = eventually(Duration::from_secs(30), || {
        slack.messages().into_iter().find(|m| m.text().contains(&name) && m.text().contains("FIRING"))
    })
    .unwrap_or_else(|| panic!("no Slack message; attempts {:?}:\n{}", slack.attempts(), alerter.output()));
    let t_slack = msg.at.duration_since(t_unhealthy);
    let statuses: Vec<u16> = slack.attempts().iter().map(|a| a.1).collect();
    assert_eq!(&statuses[..2], &[500, 200], "a 500 from Slack is retried: {statuses:?}");
    assert!(slack.invalid_payloads().is_empty(), "{:?}", slack.invalid_payloads());

    // ALERTS written back to VictoriaMetrics.
    let alerts_q = format!("ALERTS{{alertname=\"{ALERT}\",alertstate=\"firing\",name=\"{name}\"}}");
    let series = eventually(Duration::from_secs(30), || {
        let v = query_vector(&vm, &alerts_q);
        (!v.is_empty()).then_some(v)
    })
    .unwrap_or_else(|| panic!("ALERTS not in VictoriaMetrics:\n{}", alerter.output()));
    assert_eq!(series[0]["value"][1], "1", "{series:?}");
    assert_eq!(series[0]["metric"]["severity"], "warning", "{series:?}");

    // Every rule of the shipped pack (and ours) evaluates against VictoriaMetrics without error.
    let rules = eventually(Duration::from_secs(30), || {
        let v = get_json(&format!("{alerter_base}/api/v1/rules"))?;
        let all: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = all.iter().all(|r| r["health"] != "unknown");
        (evaluated && all.len() > 10).then_some(all)
    })
    .unwrap_or_else(|| panic!("rules never all evaluated:\n{}", alerter.output()));
    let broken: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    assert!(broken.is_empty(), "rules failing against VictoriaMetrics: {broken:#?}");

    eprintln!("e2e_victoriametrics ({} rules evaluated against VictoriaMetrics):", rules.len());
    eprintln!("  unhealthy in VM -> alert firing: {:.1}s", t_firing.as_secs_f64());
    eprintln!("  unhealthy in VM -> slack firing: {:.1}s (incl. one 500 retry)", t_slack.as_secs_f64());
    eprintln!("  whole test: {:.1}s", started.elapsed().as_secs_f64());
}
