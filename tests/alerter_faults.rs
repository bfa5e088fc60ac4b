//! Fault tests of `crowsnest alerter` as a real process, fed through its Alertmanager API
//! (`POST /api/v2/alerts`) and notifying the Slack-shaped receiver of `tests/support/slack.rs`:
//!
//! - `kill -9` while the receiver hangs on the notification request, and while it keeps failing
//!   with 5xx: after the restart (no alert re-sent by anyone) the notification is delivered, and
//!   exactly once;
//! - a 429 storm with `Retry-After`: every group's notification arrives exactly once.
//!
//! Delivery is at-least-once, like Alertmanager's: the notification log entry is flushed right
//! after the receiver's 2xx, so a kill landing in the microseconds between that 2xx and the flush
//! re-sends the notification after the restart. That window cannot be hit reliably from outside
//! and is not tested; every other kill point (before or during the request, during retries, after
//! the flush) must give exactly one message, which is what these tests check.
//! The SMTP-down-then-up case lives in `alerter/tests/notify_email.rs`
//! (`smtp_down_then_up_still_delivers`: one mail after the server comes up).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::slack::{Reply, SlackReceiver};
use support::*;

/// Writes the config and Alertmanager config for an alerter notifying `slack_url`.
fn write_configs(dir: &Path, listen: &str, slack_url: &str) -> std::path::PathBuf {
    let am = dir.join("alertmanager.yml");
    std::fs::write(
        &am,
        format!(
            "route:\n  receiver: slack\n  group_by: [alertname]\n  group_wait: 300ms\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: slack\n    slack_configs:\n      - api_url: {slack_url}\n        channel: '#alerts'\n"
        ),
    )
    .expect("write am config");
    let cfg = dir.join("crowsnest.yml");
    // No rules: the query URL is never called.
    std::fs::write(
        &cfg,
        format!(
            "listen: '{listen}'\ndata_dir: '{}'\nshipped_rules: false\nalerter:\n  query_url: http://127.0.0.1:{}\n  remote_write_url: ''\n  data_dir: '{}'\n  alertmanager_config: '{}'\n",
            dir.join("data").display(),
            free_port(),
            dir.join("alerter").display(),
            am.display()
        ),
    )
    .expect("write config");
    cfg
}

fn start_alerter(name: &str, cfg: &Path, dir: &Path, base: &str) -> Proc {
    let proc = Proc::crowsnest(name, &["alerter", "--config", cfg.to_str().expect("utf-8")], dir);
    assert!(wait_http_ok(&format!("{base}/ready"), Duration::from_secs(30)), "alerter not ready:\n{}", proc.output());
    proc
}

fn post_alerts(base: &str, names: &[&str]) {
    let alerts: Vec<_> = names
        .iter()
        .map(|n| {
            json!({
                "labels": {"alertname": n, "severity": "critical", "instance": "faults"},
                "annotations": {"summary": format!("{n} is broken")},
                "startsAt": chrono::Utc::now().to_rfc3339(),
            })
        })
        .collect();
    let body = serde_json::to_vec(&alerts).expect("json");
    let (status, text) =
        http_request("POST", &format!("{base}/api/v2/alerts"), Some(&body), &[("Content-Type", "application/json")])
            .expect("post alerts");
    assert_eq!(status, 200, "{text}");
}

/// Messages received per alertname (from the `[FIRING:n] <name>` title).
fn count_for(slack: &SlackReceiver, name: &str) -> usize {
    slack.messages().iter().filter(|m| m.text().contains(&format!("] {name}"))).count()
}

fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    eventually(limit, || cond().then_some(())).is_some()
}

/// One kill-mid-notification run: `arm` makes the receiver misbehave, `mid_request` tells when
/// the alerter is in the middle of notifying, `heal` makes the receiver answer normally again.
fn kill_mid_notification(
    label: &str,
    arm: impl FnOnce(&SlackReceiver),
    mid_request: impl Fn(&SlackReceiver) -> bool,
    heal: impl FnOnce(&SlackReceiver),
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = SlackReceiver::start();
    arm(&slack);
    let addr = free_addr();
    let base = format!("http://{addr}");
    let cfg = write_configs(dir.path(), &addr.to_string(), &slack.url);
    let mut alerter = start_alerter(&format!("{label}-1"), &cfg, dir.path(), &base);
    let name = format!("Kill{label}");
    post_alerts(&base, &[&name]);
    assert!(
        wait(Duration::from_secs(15), || mid_request(&slack)),
        "the alerter never started notifying:\n{}",
        alerter.output()
    );
    // Past the alert store's periodic flush (sled: 500 ms).
    std::thread::sleep(Duration::from_millis(1200));
    alerter.kill9();
    assert_eq!(count_for(&slack, &name), 0, "nothing could be delivered before the kill");
    heal(&slack);

    let alerter = start_alerter(&format!("{label}-2"), &cfg, dir.path(), &base);
    assert!(
        wait(Duration::from_secs(20), || count_for(&slack, &name) >= 1),
        "notification lost over kill -9:\n{}",
        alerter.output()
    );
    // Several group_intervals later: still exactly one.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(count_for(&slack, &name), 1, "duplicate notification after kill -9: {:?}", slack.messages());
    assert!(slack.invalid_payloads().is_empty(), "{:?}", slack.invalid_payloads());
}

#[test]
fn kill9_while_receiver_hangs_delivers_exactly_once() {
    kill_mid_notification("Hang", |s| s.hang_next(1, Duration::from_secs(120)), |s| s.hung_requests() >= 1, |_| {});
}

#[test]
fn kill9_while_receiver_fails_delivers_exactly_once() {
    let failures = vec![Reply::rollup_error(); 200];
    kill_mid_notification(
        "Fail",
        move |s| s.script(&failures),
        |s| s.attempts().iter().filter(|a| a.1 == 500).count() >= 2,
        // The receiver recovers while the alerter is down.
        |s| s.clear_script(),
    );
}

#[test]
fn slack_429_storm_delivers_every_notification_exactly_once() {
    const GROUPS: usize = 8;
    const STORM: usize = 24;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack = SlackReceiver::start();
    slack.script(&vec![Reply::rate_limited(1); STORM]);
    let addr = free_addr();
    let base = format!("http://{addr}");
    let cfg = write_configs(dir.path(), &addr.to_string(), &slack.url);
    let alerter = start_alerter("storm", &cfg, dir.path(), &base);
    let names: Vec<String> = (0..GROUPS).map(|i| format!("Storm{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    post_alerts(&base, &refs);
    assert!(
        wait(Duration::from_secs(75), || names.iter().all(|n| count_for(&slack, n) >= 1)),
        "not every group got through the 429 storm: {:?}\n{}",
        names.iter().map(|n| (n, count_for(&slack, n))).collect::<Vec<_>>(),
        alerter.output()
    );
    eprintln!("all {GROUPS} notifications through {STORM} 429s in {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_secs(5));
    for n in &names {
        assert_eq!(count_for(&slack, n), 1, "{n}: {:?}", slack.messages().iter().map(|m| m.text()).collect::<Vec<_>>());
    }
    let limited = slack.attempts().iter().filter(|a| a.1 == 429).count();
    assert_eq!(limited, STORM, "every scripted 429 was answered");
    assert!(slack.invalid_payloads().is_empty(), "{:?}", slack.invalid_payloads());
}
