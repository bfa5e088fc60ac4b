//! The shipped deployment files load: deploy/crowsnest.yml section by section into the
//! components' own config types (strict serde + `validate()`), deploy/collector.yml as the lean
//! collector's config, deploy/alertmanager.yml with the alerter's Alertmanager-format loader,
//! deploy/rules/*.yml with the alerter's rule checker (and `promtool check rules`), and
//! docker-compose.yml / deploy/swarm-stack.yml with `docker-compose config`. External programs
//! are skipped loudly when missing, and required when CI=true.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn yaml(p: &str) -> serde_norway::Value {
    let text = std::fs::read_to_string(repo(p)).unwrap_or_else(|e| panic!("reading {p}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{p} is not YAML: {e}"))
}

/// Whether `prog` can be run; panics in CI when it cannot.
fn have(prog: &str) -> bool {
    let ok = Command::new(prog).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{prog} is required in CI");
        eprintln!("SKIP: {prog} not installed");
    }
    ok
}

#[test]
fn crowsnest_yml_sections_are_valid_component_configs() {
    let v = yaml("deploy/crowsnest.yml");
    let map = v.as_mapping().expect("a mapping at top level");
    for k in map.keys() {
        let k = k.as_str().unwrap_or_default();
        assert!(["listen", "data_dir", "store", "collector", "alerter"].contains(&k), "unexpected top-level key {k}");
    }
    assert!(v["listen"].as_str().is_some_and(|l| l.parse::<std::net::SocketAddr>().is_ok_and(|a| a.port() == 9300)));
    let store: crowsnest_store::StoreConfig = serde_norway::from_value(v["store"].clone()).expect("store section");
    store.validate().expect("store section validates");
    let collector: crowsnest_collector::CollectorConfig =
        serde_norway::from_value(v["collector"].clone()).expect("collector section");
    collector.validate().expect("collector section validates");
    assert!(!collector.docker.enabled, "the crowsnest service has no Docker socket");
    let alerter: crowsnest_alerter::config::AlerterConfig =
        serde_norway::from_value(v["alerter"].clone()).expect("alerter section");
    alerter.validate().expect("alerter section validates");
    assert_eq!(alerter.alertmanager_config.as_deref(), Some(Path::new("/etc/crowsnest/alertmanager.yml")));
}

#[test]
fn collector_yml_is_valid() {
    let c: crowsnest_collector::CollectorConfig =
        serde_norway::from_value(yaml("deploy/collector.yml")).expect("collector.yml");
    c.validate().expect("collector.yml validates");
    assert_eq!(c.remote_write.url, "http://crowsnest:9300/api/v1/write");
    assert_eq!(c.docker.host.as_deref(), Some("unix:///var/run/docker.sock"));
}

#[test]
fn alertmanager_yml_has_slack_and_smtp_receivers() {
    let cfg =
        crowsnest_alerter::notify::amconfig::load(&repo("deploy/alertmanager.yml")).expect("alertmanager.yml loads");
    assert!(cfg.receivers.iter().any(|r| !r.slack_configs.is_empty()), "a Slack receiver");
    assert!(cfg.receivers.iter().any(|r| !r.email_configs.is_empty()), "an e-mail receiver");
    assert!(!cfg.global.smtp_smarthost.is_empty());
    if have("amtool") {
        let out = Command::new("amtool")
            .arg("check-config")
            .arg(repo("deploy/alertmanager.yml"))
            .output()
            .expect("run amtool");
        assert!(out.status.success(), "amtool check-config: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn shipped_rules_check() {
    let files = vec![repo("deploy/rules/site.rules.yml")];
    let problems = crowsnest_alerter::rules::check_files(&files);
    assert!(problems.is_empty(), "{problems:?}");
    if have("promtool") {
        let out = Command::new("promtool").args(["check", "rules"]).args(&files).output().expect("run promtool");
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn compose_files_validate() {
    if !have("docker-compose") {
        return;
    }
    for f in ["docker-compose.yml", "deploy/swarm-stack.yml"] {
        let out = Command::new("docker-compose")
            .arg("-f")
            .arg(repo(f))
            .arg("config")
            .arg("--quiet")
            .output()
            .expect("run docker-compose");
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stack = std::fs::read_to_string(repo("deploy/swarm-stack.yml")).expect("stack file");
    let v: serde_norway::Value = serde_norway::from_str(&stack).expect("stack YAML");
    assert_eq!(v["services"]["collector"]["deploy"]["mode"].as_str(), Some("global"));
    assert_eq!(v["services"]["collector"]["environment"]["HOSTNAME"].as_str(), Some("{{.Node.Hostname}}"));
    assert_eq!(v["services"]["crowsnest"]["deploy"]["replicas"].as_u64(), Some(1));
    // Swarm has no bind mount of the dashboards folder: each dashboard is a config of its own.
    for e in std::fs::read_dir(repo("dashboards")).expect("dashboards/").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            assert!(
                stack.contains(&format!("../dashboards/{name}")),
                "deploy/swarm-stack.yml does not ship dashboards/{name}"
            );
        }
    }
}

#[test]
fn offline_image_builds_and_turns_healthy() {
    let docker = Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success());
    if !docker {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "a Docker Engine is required in CI");
        eprintln!("SKIP: no Docker Engine");
        return;
    }
    let tag = format!("crowsnest:offline-test-{}", std::process::id());
    let out = Command::new("bash")
        .arg(repo("deploy/build-offline-image.sh"))
        .args(["--bin", env!("CARGO_BIN_EXE_crowsnest"), "--tag", &tag, "--test"])
        .output()
        .expect("run build-offline-image.sh");
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "build-offline-image.sh failed:\n{text}");
    assert!(text.contains("reports healthy"), "{text}");
}

#[test]
fn check_config_accepts_the_deploy_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .arg("check-config")
        .arg(repo("deploy/crowsnest.yml"))
        .output()
        .expect("run crowsnest");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
