//! The collector against the real Docker Engine. The test image is built offline (no registry):
//! `docker import` of a tarball holding Debian's static busybox, with a health page and a
//! metrics file for busybox `httpd`. Containers (all named `crowsnest-test-*`, removed at the
//! end): one whose HEALTHCHECK turns unhealthy, a label-discovered app with /metrics and
//! /health, one with memory and CPU limits that gets killed and then removed, one in a crash
//! loop under a restart policy, and one that is OOM-killed. Samples are checked as they arrive
//! at an in-test remote_write receiver. Skips loudly without an engine; fails under `CI=true`.

mod collector_common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector_common::{Received, Receiver, ends_stale, latest, samples, wait_until};
use crowsnest_collector::CollectorConfig;
use crowsnest_wire::ops;
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "crowsnest-test-busybox:latest";
const PREFIX: &str = "crowsnest-test-";

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker").args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn engine_available() -> bool {
    let ok = docker(&["info", "--format", "{{.ServerVersion}}"]).is_ok();
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no Docker Engine is reachable");
        }
        eprintln!("SKIP: no Docker Engine reachable; collector Docker tests not run");
    }
    ok
}

fn busybox_path() -> Option<&'static str> {
    ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists())
}

/// Builds the test image from the local static busybox.
fn build_image() -> Result<(), String> {
    let bb = busybox_path().ok_or("no busybox binary (apt install busybox-static)")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = dir.path();
    for d in ["bin", "www", "tmp"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::copy(bb, root.join("bin/busybox")).map_err(|e| e.to_string())?;
    for applet in ["sh", "sleep", "test", "touch", "rm", "httpd", "tail", "cat", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).map_err(|e| e.to_string())?;
    }
    std::fs::write(root.join("www/health"), "{\"status\":\"UP\"}\n").map_err(|e| e.to_string())?;
    std::fs::write(root.join("www/metrics"), "# TYPE app_requests_total counter\napp_requests_total{path=\"/\"} 42\n")
        .map_err(|e| e.to_string())?;
    let script = format!("tar -C {} -c . | docker import -c 'CMD [\"/bin/sh\"]' - {IMAGE}", root.display());
    let out = Command::new("sh").args(["-c", &script]).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("docker import failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// Removes every `crowsnest-test-*` container and the image, also on panic.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(names) = docker(&["ps", "-aq", "--filter", &format!("name={PREFIX}")]) {
            for id in names.lines().filter(|l| !l.is_empty()) {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        let _ = docker(&["rmi", "-f", IMAGE]);
    }
}

fn run(name: &str, args: &[&str], cmd: &[&str]) -> String {
    let mut a = vec!["run", "-d", "--name", name];
    a.extend_from_slice(args);
    a.push(IMAGE);
    a.extend_from_slice(cmd);
    docker(&a).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_health_events_probes_and_staleness() {
    if !engine_available() {
        return;
    }
    let _cleanup = Cleanup;
    drop(Cleanup); // start from a clean slate (leftovers of an aborted run)
    build_image().unwrap_or_else(|e| panic!("{e}"));

    let data = Arc::new(Mutex::new(Received::default()));
    let rx = Receiver::start("127.0.0.1:0", data.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CollectorConfig {
        instance: "docker-test-host".into(),
        location: "lab".into(),
        interval: Duration::from_secs(2),
        ..Default::default()
    };
    cfg.remote_write.url = rx.url.clone();
    cfg.queue.dir = dir.path().join("queue");
    cfg.docker.extra_labels = vec!["crowsnest.test.team".into()];
    cfg.discovery.timeout = Duration::from_secs(2);
    let registry = ops::new_registry();
    let stop = CancellationToken::new();
    let collector =
        tokio::spawn(crowsnest_collector::run(cfg, registry.clone(), ops::Readiness::new(false), stop.clone()));

    let health = format!("{PREFIX}health");
    let app = format!("{PREFIX}app");
    let victim = format!("{PREFIX}victim");
    let crash = format!("{PREFIX}crash");
    let oom = format!("{PREFIX}oom");
    run(
        &health,
        &[
            "--health-cmd",
            "test -f /tmp/ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-timeout",
            "1s",
            "--label",
            "crowsnest.test.team=blue",
            "--label",
            "noise.label=x",
        ],
        &["sh", "-c", "touch /tmp/ok; sleep 5; rm /tmp/ok; sleep 600"],
    );
    run(
        &app,
        &[
            "--label",
            "crowsnest.scrape=true",
            "--label",
            "crowsnest.port=8080",
            "--label",
            "crowsnest.health=/health",
            "--label",
            "crowsnest.interval=1s",
            "--label",
            "org.opencontainers.image.revision=abc123",
        ],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    run(
        &victim,
        &["--memory", "64m", "--cpus", "0.5"],
        &["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 600"],
    );
    run(&crash, &["--restart", "on-failure:3"], &["sh", "-c", "sleep 1; exit 3"]);
    run(&oom, &["--memory", "16m", "--memory-swap", "16m"], &["sh", "-c", "tail /dev/zero"]);

    let d = &data;
    let n = |name: &str| vec![("name", name.to_string())];
    let sel = |name: &str, extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
        let mut v = n(name);
        v.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        v
    };
    let q = |name: &str, labels: &[(&'static str, String)]| -> Option<f64> {
        let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        latest(d, name, &l)
    };
    let limit = Duration::from_secs(60);

    // CPU, memory, limits, labels.
    wait_until("victim cpu and memory", limit, || {
        q("container_cpu_usage_seconds_total", &sel(&victim, &[("cpu", "total")])).is_some_and(|v| v > 0.0)
            && q("container_memory_usage_bytes", &sel(&victim, &[])).is_some_and(|v| v > 0.0)
            && q("container_memory_working_set_bytes", &sel(&victim, &[])).is_some()
    })
    .await;
    assert_eq!(q("container_spec_memory_limit_bytes", &sel(&victim, &[])), Some(64.0 * 1024.0 * 1024.0));
    assert_eq!(q("container_spec_cpu_quota", &sel(&victim, &[])), Some(50_000.0));
    assert_eq!(q("container_spec_cpu_period", &sel(&victim, &[])), Some(100_000.0));
    assert_eq!(q("container_state", &sel(&victim, &[("state", "running")])), Some(1.0));
    assert!(q("container_start_time_seconds", &sel(&victim, &[])).is_some_and(|t| t > 1.7e9));
    assert!(q("container_last_seen", &sel(&victim, &[("instance", "docker-test-host"), ("image", IMAGE)])).is_some());

    // Rates the collector computes itself from successive samples, and the Docker connection.
    wait_until("victim cpu rate", limit, || q("crowsnest_container_cpu_usage_cores", &sel(&victim, &[])).is_some())
        .await;
    assert!(q("crowsnest_container_cpu_usage_cores", &sel(&victim, &[])).is_some_and(|v| (0.0..=1.0).contains(&v)));
    assert_eq!(latest(d, "crowsnest_collector_docker_up", &[("instance", "docker-test-host")]), Some(1.0));

    // Health turns unhealthy; allow-listed labels only.
    wait_until("health container unhealthy", limit, || {
        q("container_health_status", &sel(&health, &[("status", "unhealthy")])) == Some(1.0)
    })
    .await;
    assert_eq!(q("container_health_status", &sel(&health, &[("status", "healthy")])), Some(0.0));
    assert!(q("container_health_failing_streak", &sel(&health, &[])).is_some_and(|v| v >= 1.0));
    assert!(
        q("container_state", &sel(&health, &[("state", "running"), ("container_label_crowsnest_test_team", "blue")]))
            .is_some()
    );
    assert!(
        !d.lock().unwrap().series.iter().any(|t| t.labels.iter().any(|l| l.name.contains("noise"))),
        "labels outside the allow-list leak"
    );
    wait_until("health_status event counted", limit, || {
        q("container_events_total", &sel(&health, &[("action", "health_status")])).is_some_and(|v| v >= 1.0)
    })
    .await;

    // Discovered app: probe, scrape, network traffic, image revision.
    let app_l = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![("name", app.clone()), ("instance", format!("{app}:8080"))];
        v.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        v
    };
    wait_until("app probed and scraped", limit, || {
        q("probe_success", &app_l(&[("location", "lab")])) == Some(1.0)
            && q("app_requests_total", &app_l(&[("path", "/")])) == Some(42.0)
            && q("up", &app_l(&[])) == Some(1.0)
    })
    .await;
    assert_eq!(q("probe_http_status_code", &app_l(&[])), Some(200.0));
    assert!(q("probe_http_duration_seconds", &app_l(&[("phase", "connect")])).is_some());
    assert_eq!(q("probe_failed", &app_l(&[("reason", "connect")])), Some(0.0));
    wait_until("app network counters", limit, || {
        q("container_network_receive_bytes_total", &sel(&app, &[("interface", "eth0")])).is_some_and(|v| v > 0.0)
            && q("container_network_transmit_bytes_total", &sel(&app, &[("interface", "eth0")]))
                .is_some_and(|v| v > 0.0)
    })
    .await;
    assert!(q("container_state", &sel(&app, &[("image_revision", "abc123")])).is_some());

    // Crash loop: restarts and die events.
    wait_until("crash loop counted", limit, || {
        q("container_restart_count", &sel(&crash, &[])).is_some_and(|v| v >= 2.0)
            && q("container_events_total", &sel(&crash, &[("action", "die")])).is_some_and(|v| v >= 2.0)
    })
    .await;
    assert_eq!(q("container_last_exit_code", &sel(&crash, &[])), Some(3.0));

    // OOM kill, compared with what Docker itself says.
    let oom_killed = || docker(&["inspect", "-f", "{{.State.OOMKilled}}", &oom]).unwrap_or_default() == "true";
    wait_until("oom container exited", limit, || {
        docker(&["inspect", "-f", "{{.State.Running}}", &oom]).unwrap_or_default() == "false"
    })
    .await;
    if oom_killed() {
        wait_until("oom_killed reported", limit, || q("container_oom_killed", &sel(&oom, &[])) == Some(1.0)).await;
        wait_until("oom event counted", limit, || {
            q("container_events_total", &sel(&oom, &[("action", "oom")])).is_some_and(|v| v >= 1.0)
        })
        .await;
    } else {
        eprintln!("NOTE: the kernel did not OOM-kill the test container; oom assertions skipped");
    }

    // Kill: events, state, exit code; stats series end with staleness markers.
    docker(&["kill", &victim]).unwrap();
    wait_until("victim exited", limit, || {
        q("container_state", &sel(&victim, &[("state", "exited")])) == Some(1.0)
            && q("container_events_total", &sel(&victim, &[("action", "die")])).is_some_and(|v| v >= 1.0)
    })
    .await;
    assert!(q("container_events_total", &sel(&victim, &[("action", "kill")])).is_some_and(|v| v >= 1.0));
    assert_eq!(q("container_last_exit_code", &sel(&victim, &[])), Some(137.0));
    let vs: Vec<(&str, String)> = sel(&victim, &[("cpu", "total")]);
    let vsl: Vec<(&str, &str)> = vs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wait_until("victim cpu series stale", limit, || ends_stale(d, "container_cpu_usage_seconds_total", &vsl)).await;

    // Removal: every series of the container ends with a staleness marker.
    docker(&["rm", "-f", &victim]).unwrap();
    let vn = [("name", victim.as_str())];
    wait_until("removed container's series stale", limit, || {
        ends_stale(d, "container_state", &[("name", victim.as_str()), ("state", "exited")])
            && ends_stale(d, "container_last_seen", &vn)
    })
    .await;
    let all_victim_series: std::collections::HashSet<Vec<crowsnest_wire::Label>> = d
        .lock()
        .unwrap()
        .series
        .iter()
        .filter(|t| t.labels.iter().any(|l| l.name == "name" && l.value == victim))
        .map(|t| t.labels.clone())
        .collect();
    for labels in all_victim_series {
        let name = labels.iter().find(|l| l.name == "__name__").unwrap().value.clone();
        let l: Vec<(&str, &str)> =
            labels.iter().filter(|l| l.name != "__name__").map(|l| (l.name.as_str(), l.value.as_str())).collect();
        let s = samples(d, &name, &l);
        assert!(crowsnest_wire::is_stale_nan(s.last().unwrap().1), "{name} {l:?} did not go stale");
    }

    // Removing the discovered app ends its target: probe and scrape series go stale too.
    docker(&["rm", "-f", &app]).unwrap();
    let an = [("name", app.as_str())];
    wait_until("removed app target's series stale", limit, || {
        ends_stale(d, "probe_success", &an) && ends_stale(d, "up", &an) && ends_stale(d, "app_requests_total", &an)
    })
    .await;

    stop.cancel();
    collector.await.unwrap().unwrap();
    rx.stop().await;
}
