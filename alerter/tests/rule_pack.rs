//! The shipped rule pack (`alerter/rules/`): it passes our `check-rules`, its promtool-format unit
//! tests pass our `test-rules` runner, and real `promtool` (Debian package `prometheus`) accepts
//! the rules and passes the same tests. promtool tests SKIP loudly when it is missing, and FAIL
//! when `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crowsnest_alerter::{rules, unittest};

fn pack(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules").join(name)
}

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("promtool is required in CI (Debian package prometheus)");
    }
    eprintln!("SKIP: promtool not found (install the Debian package prometheus)");
    None
}

#[test]
fn pack_passes_our_check() {
    let problems = rules::check_files(&[pack("crowsnest.rules.yml")]);
    assert!(problems.is_empty(), "{problems:?}");
    let files = rules::expand_globs(&[pack("*.rules.yml").display().to_string()]).unwrap();
    let groups = rules::load_files(&files, std::time::Duration::from_secs(60)).unwrap();
    assert_eq!(groups.iter().map(|g| g.rules.len()).sum::<usize>(), 15);
}

#[test]
fn pack_tests_pass_our_runner() {
    let report = unittest::run_files(&[pack("crowsnest.rules.test.yml")]);
    assert!(report.passed(), "{report}");
}

#[test]
fn pack_passes_promtool() {
    let Some(tool) = promtool() else { return };
    let out = Command::new(tool).args(["check", "rules"]).arg(pack("crowsnest.rules.yml")).output().unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(tool).args(["test", "rules"]).arg(pack("crowsnest.rules.test.yml")).output().unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Both checkers reject the same broken file, and ours names the line.
#[test]
fn broken_file_is_rejected_by_both() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yml");
    std::fs::write(&f, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n      - record: 'not a metric'\n        expr: up\n").unwrap();
    let problems = rules::check_files(std::slice::from_ref(&f));
    assert!(problems.iter().any(|p| p.line == 4 && p.message.contains("could not parse expression")), "{problems:?}");
    assert!(problems.iter().any(|p| p.line == 6 && p.message.contains("invalid recording rule name")), "{problems:?}");
    let Some(tool) = promtool() else { return };
    let out = Command::new(tool).args(["check", "rules"]).arg(&f).output().unwrap();
    assert!(!out.status.success());
}

/// A test file that must fail (wrong expectation) fails in both runners.
#[test]
fn failing_expectation_fails_in_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(pack("crowsnest.rules.yml"), dir.path().join("crowsnest.rules.yml")).unwrap();
    let t = dir.path().join("t.yml");
    std::fs::write(
        &t,
        "rule_files: [crowsnest.rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{job=\"a\", instance=\"b\"}'\n        values: '0 0 0 0'\n    alert_rule_test:\n      - eval_time: 3m\n        alertname: ScrapeTargetDown\n",
    )
    .unwrap();
    let report = unittest::run_files(std::slice::from_ref(&t));
    assert!(!report.passed(), "{report}");
    assert!(report.to_string().contains("ScrapeTargetDown"));
    let Some(tool) = promtool() else { return };
    let out = Command::new(tool).args(["test", "rules"]).arg(&t).output().unwrap();
    assert!(!out.status.success());
}
