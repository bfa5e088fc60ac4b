//! Container identity, lifecycle and health series from `GET /containers/{id}/json` (inspect):
//! the label set every container series carries, `container_state{state}`,
//! `container_health_status{status}` (one 1/0 series per status: healthy, unhealthy, starting,
//! none), `container_health_failing_streak`, `container_restart_count`, `container_oom_killed`,
//! `container_last_exit_code`, `container_start_time_seconds`, and cAdvisor's
//! `container_spec_*` limits. Field meanings: moby `api/swagger.yaml` `ContainerState`, `Health`.

use std::collections::HashMap;

use bollard::models::{ContainerInspectResponse, HealthStatusEnum};
use crowsnest_wire::Label;

use crate::series::{Batch, sanitize_label_name};

/// All container states of the Engine API; each gets a 1/0 series.
pub const STATES: [&str; 7] = ["created", "running", "paused", "restarting", "removing", "exited", "dead"];
/// All health statuses; each gets a 1/0 series.
pub const HEALTH: [&str; 4] = ["healthy", "unhealthy", "starting", "none"];
/// The OCI image annotation holding the source revision.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// Identity labels of a container.
pub struct Identity<'a> {
    pub instance: &'a str,
    pub job: &'a str,
    pub allowlist: &'a [String],
}

/// The labels every series of `c` carries: `instance`, `job`, `name`, `id` (`/docker/<id>`, the
/// cgroupfs path cAdvisor uses), `image` (as given at run time, with its tag), `image_id` (the
/// digest), `image_revision` (from `org.opencontainers.image.revision`), and allow-listed labels
/// as `container_label_<sanitized key>`.
pub fn base_labels(c: &ContainerInspectResponse, who: &Identity<'_>) -> Vec<Label> {
    let id = c.id.as_deref().unwrap_or_default();
    let name = c.name.as_deref().unwrap_or_default().trim_start_matches('/');
    let cfg = c.config.as_ref();
    let empty = HashMap::new();
    let labels = cfg.and_then(|c| c.labels.as_ref()).unwrap_or(&empty);
    let mut v = vec![
        Label::new("instance", who.instance),
        Label::new("job", who.job),
        Label::new("name", name),
        Label::new("id", format!("/docker/{id}")),
        Label::new("image", cfg.and_then(|c| c.image.as_deref()).unwrap_or_default()),
        Label::new("image_id", c.image.as_deref().unwrap_or_default()),
    ];
    if let Some(rev) = labels.get(REVISION_LABEL) {
        v.push(Label::new("image_revision", rev.as_str()));
    }
    for key in who.allowlist {
        if let Some(val) = labels.get(key) {
            v.push(Label::new(format!("container_label_{}", sanitize_label_name(key)), val.as_str()));
        }
    }
    v.retain(|l| !l.value.is_empty());
    v
}

/// Parses a Docker RFC 3339 time into Unix seconds; Docker's zero time (`0001-01-01...`) is None.
pub fn unix_seconds(s: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let secs = t.timestamp_millis() as f64 / 1000.0;
    (secs > 0.0).then_some(secs)
}

/// Health status string of a container (`none` without a HEALTHCHECK).
pub fn health_status(c: &ContainerInspectResponse) -> &'static str {
    match c.state.as_ref().and_then(|s| s.health.as_ref()).and_then(|h| h.status) {
        Some(HealthStatusEnum::HEALTHY) => "healthy",
        Some(HealthStatusEnum::UNHEALTHY) => "unhealthy",
        Some(HealthStatusEnum::STARTING) => "starting",
        _ => "none",
    }
}

/// State string of a container.
pub fn state(c: &ContainerInspectResponse) -> String {
    c.state.as_ref().and_then(|s| s.status).map(|s| s.to_string()).unwrap_or_default()
}

/// Appends lifecycle, health and spec series of `c`.
/// `last_exit` is the exit code of the last `die` event, which survives a restart-policy restart
/// (the inspect body's `ExitCode` is reset to 0 then).
pub fn push_lifecycle(
    c: &ContainerInspectResponse,
    base: &[Label],
    ts: i64,
    now_s: f64,
    last_exit: Option<i64>,
    batch: &mut Batch,
) {
    let with = |k: &str, v: &str| -> Vec<Label> {
        let mut l = base.to_vec();
        l.push(Label::new(k, v));
        l
    };
    let st = state(c);
    for s in STATES {
        batch.push("container_state", &with("state", s), ts, if st == s { 1.0 } else { 0.0 });
    }
    let h = health_status(c);
    for s in HEALTH {
        batch.push("container_health_status", &with("status", s), ts, if h == s { 1.0 } else { 0.0 });
    }
    let state = c.state.as_ref();
    if let Some(streak) = state.and_then(|s| s.health.as_ref()).and_then(|h| h.failing_streak) {
        batch.push("container_health_failing_streak", base, ts, streak as f64);
    }
    batch.push("container_restart_count", base, ts, c.restart_count.unwrap_or(0) as f64);
    batch.push(
        "container_oom_killed",
        base,
        ts,
        if state.and_then(|s| s.oom_killed).unwrap_or(false) { 1.0 } else { 0.0 },
    );
    let running = state.and_then(|s| s.running).unwrap_or(false);
    let inspected = state.and_then(|s| s.exit_code).filter(|_| !running);
    batch.push("container_last_exit_code", base, ts, inspected.or(last_exit).unwrap_or(0) as f64);
    let started = state.and_then(|s| s.started_at.as_deref()).and_then(unix_seconds);
    let created = c.created.as_deref().and_then(unix_seconds);
    if let Some(t) = started.or(created) {
        batch.push("container_start_time_seconds", base, ts, t);
    }
    if let Some(t) = created {
        batch.push("container_creation_time_seconds", base, ts, t);
    }
    if running {
        // Like cAdvisor, only running containers are "seen"; a stopped one's series ends with a
        // staleness marker and `container_state{state="exited"}` says why.
        batch.push("container_last_seen", base, ts, now_s);
    }
    if let Some(hc) = c.host_config.as_ref() {
        batch.push("container_spec_memory_limit_bytes", base, ts, hc.memory.unwrap_or(0).max(0) as f64);
        let nano = hc.nano_cpus.unwrap_or(0);
        let (quota, period) = if nano > 0 {
            (nano * 100_000 / 1_000_000_000, 100_000)
        } else {
            (hc.cpu_quota.unwrap_or(0), hc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000))
        };
        if quota > 0 {
            batch.push("container_spec_cpu_quota", base, ts, quota as f64);
            batch.push("container_spec_cpu_period", base, ts, period as f64);
        }
        if let Some(shares) = hc.cpu_shares.filter(|s| *s > 0) {
            batch.push("container_spec_cpu_shares", base, ts, shares as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(b: &Batch, name: &str, extra: Option<(&str, &str)>) -> Option<f64> {
        b.series
            .iter()
            .find(|t| {
                t.labels.iter().any(|l| l.name == "__name__" && l.value == name)
                    && extra.is_none_or(|(k, v)| t.labels.contains(&Label::new(k, v)))
            })
            .map(|t| t.samples[0].value)
    }

    #[test]
    fn inspect_to_series() {
        let c: ContainerInspectResponse = serde_json::from_str(r#"{
            "Id":"abc123","Name":"/web","Image":"sha256:feed","RestartCount":3,"Created":"2026-01-01T00:00:00Z",
            "State":{"Status":"running","Running":true,"OOMKilled":true,"ExitCode":137,"StartedAt":"2026-01-01T00:00:10.5Z",
                "Health":{"Status":"unhealthy","FailingStreak":4,"Log":[]}},
            "Config":{"Image":"busybox:1.36","Labels":{"com.docker.compose.service":"api","org.opencontainers.image.revision":"deadbeef","secret.thing":"x"}},
            "HostConfig":{"Memory":67108864,"NanoCpus":500000000}}"#).unwrap();
        let allow = vec!["com.docker.compose.service".to_string()];
        let base = base_labels(&c, &Identity { instance: "h1", job: "docker", allowlist: &allow });
        assert!(base.contains(&Label::new("name", "web")));
        assert!(base.contains(&Label::new("id", "/docker/abc123")));
        assert!(base.contains(&Label::new("image", "busybox:1.36")));
        assert!(base.contains(&Label::new("image_revision", "deadbeef")));
        assert!(base.contains(&Label::new("container_label_com_docker_compose_service", "api")));
        assert!(!base.iter().any(|l| l.name.contains("secret")), "labels outside the allow-list are never copied");
        let mut b = Batch::new();
        push_lifecycle(&c, &base, 1000, 1234.0, Some(3), &mut b);
        assert_eq!(value(&b, "container_state", Some(("state", "running"))), Some(1.0));
        assert_eq!(value(&b, "container_state", Some(("state", "exited"))), Some(0.0));
        assert_eq!(value(&b, "container_health_status", Some(("status", "unhealthy"))), Some(1.0));
        assert_eq!(value(&b, "container_health_status", Some(("status", "healthy"))), Some(0.0));
        assert_eq!(value(&b, "container_health_failing_streak", None), Some(4.0));
        assert_eq!(value(&b, "container_restart_count", None), Some(3.0));
        assert_eq!(value(&b, "container_oom_killed", None), Some(1.0));
        assert_eq!(value(&b, "container_last_exit_code", None), Some(3.0), "running: the last die event's code");
        assert_eq!(value(&b, "container_start_time_seconds", None), Some(1_767_225_610.5));
        assert_eq!(value(&b, "container_spec_memory_limit_bytes", None), Some(67_108_864.0));
        assert_eq!(value(&b, "container_spec_cpu_quota", None), Some(50_000.0));
        assert_eq!(value(&b, "container_spec_cpu_period", None), Some(100_000.0));
        assert_eq!(value(&b, "container_last_seen", None), Some(1234.0));
    }

    #[test]
    fn no_healthcheck_is_none_and_zero_time_ignored() {
        let c: ContainerInspectResponse = serde_json::from_str(
            r#"{"Id":"x","Name":"/x","State":{"Status":"exited","ExitCode":0,"StartedAt":"0001-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(health_status(&c), "none");
        let mut b = Batch::new();
        push_lifecycle(&c, &[], 0, 0.0, Some(1), &mut b);
        assert_eq!(value(&b, "container_health_status", Some(("status", "none"))), Some(1.0));
        assert_eq!(value(&b, "container_start_time_seconds", None), None);
        assert_eq!(value(&b, "container_last_seen", None), None, "only running containers are seen");
        assert_eq!(value(&b, "container_last_exit_code", None), Some(0.0), "stopped: the inspected code wins");
    }
}
