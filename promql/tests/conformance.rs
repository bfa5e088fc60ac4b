//! Runs Prometheus' promqltest scripts from `shared/conformance/promql-testdata/` against our
//! engine (FORMAT.md there) and fails if fewer evals pass than the committed baseline in
//! `conformance-baseline.txt` (a ratchet: raise it as failures get fixed). Native-histogram evals
//! (per `EVAL_INDEX.tsv`) and expressions promql-parser cannot parse are skipped with a reason.
//! `CONFORMANCE_SHOW=<n>` prints the first n failure details (default 60); `CONFORMANCE_FILE`
//! restricts the run to files whose name contains it; `CONFORMANCE_SHOW_NATIVE=1` lists why each
//! skipped native-histogram eval failed.

use std::collections::HashMap;
use std::path::PathBuf;

use crowsnest_promql::promqltest::{EvalOutcome, run_script};
use crowsnest_promql::{Engine, EngineOptions};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promql-testdata")
}

#[test]
fn promql_conformance() {
    let dir = data_dir();
    if !dir.is_dir() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("conformance data missing at {}", dir.display());
        }
        eprintln!("SKIP: conformance data missing at {}", dir.display());
        return;
    }
    let index = std::fs::read_to_string(dir.join("EVAL_INDEX.tsv")).expect("EVAL_INDEX.tsv");
    let mut native: HashMap<(String, usize), String> = HashMap::new();
    for row in index.lines().skip(1) {
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() >= 6
            && f[4] == "yes"
            && let Ok(line) = f[1].parse()
        {
            native.insert((f[0].to_string(), line), f[5].to_string());
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let only = std::env::var("CONFORMANCE_FILE").ok();
    let show: usize = std::env::var("CONFORMANCE_SHOW").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    // The upstream runner's engine: 5m lookback, 10 000 max samples is not relied on; 1m subquery step.
    let engine = Engine::new(EngineOptions { max_samples: 50_000_000, ..EngineOptions::default() });
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut details = Vec::new();
    let show_native = std::env::var("CONFORMANCE_SHOW_NATIVE").is_ok();
    let mut native_details = Vec::new();
    let mut skip_reasons: HashMap<String, usize> = HashMap::new();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read test file");
        let skip =
            |line: usize, _expr: &str| native.get(&(name.clone(), line)).map(|r| format!("native histograms ({r})"));
        let report = run_script(&text, &engine, &skip);
        if let Some(e) = &report.error {
            println!("{name}: SCRIPT ERROR {e}");
            failed += 1;
            continue;
        }
        let p = report.count(|o| *o == EvalOutcome::Passed);
        let f = report.count(|o| matches!(o, EvalOutcome::Failed(_)));
        let s = report.count(|o| matches!(o, EvalOutcome::Skipped(_)));
        println!("{name:<28} passed {p:>4}  failed {f:>4}  skipped {s:>4}");
        passed += p;
        failed += f;
        skipped += s;
        for (line, o) in &report.results {
            match o {
                EvalOutcome::Failed(m) => details.push(format!("{name}:{line}: {m}")),
                EvalOutcome::Skipped(r) => {
                    let key = if r.starts_with("native") { "native histograms".to_string() } else { r.clone() };
                    if show_native && r.starts_with("native") {
                        native_details.push(format!("{name}:{line}: {r}"));
                    }
                    *skip_reasons.entry(key).or_default() += 1;
                }
                EvalOutcome::Passed => {}
            }
        }
    }
    println!("TOTAL passed {passed}  failed {failed}  skipped {skipped}");
    let mut reasons: Vec<_> = skip_reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    for (r, n) in reasons.iter().take(20) {
        println!("  skipped {n:>4} × {r}");
    }
    for d in &native_details {
        println!("NATIVE {d}");
    }
    for d in details.iter().take(show) {
        println!("FAIL {d}");
    }
    if only.is_none() {
        let baseline: usize =
            std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance-baseline.txt"))
                .ok()
                .and_then(|s| s.lines().find(|l| !l.starts_with('#')).and_then(|l| l.trim().parse().ok()))
                .unwrap_or(0);
        assert!(passed >= baseline, "conformance regressed: {passed} evals passed, baseline is {baseline}");
    }
}
