//! Real Prometheus peers against `crowsnest store`: Debian's `prometheus` scrapes a local
//! exposition endpoint (the store's own `/metrics`) and remote_writes to the store (we are the
//! receiver; samples and metadata must arrive), then `promtool query instant|range|series|labels`
//! reads them back as a real API client. Skips loudly without the programs, fails under CI=true.

mod support;

use std::time::Duration;

use support::*;

fn promtool(args: &[&str]) -> String {
    let out = std::process::Command::new("promtool").args(args).output().expect("running promtool");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "promtool {args:?} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn prometheus_remote_writes_into_the_store_and_promtool_reads_back() {
    let test = "prometheus_remote_writes_into_the_store_and_promtool_reads_back";
    if !require_program("prometheus", test) || !require_program("promtool", test) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let base = format!("http://{addr}");
    let data = dir.path().join("store");
    let _store = Proc::crowsnest(
        "store",
        &["store", "--listen", &addr.to_string(), "--data-dir", data.to_str().expect("utf-8")],
        dir.path(),
    );
    assert!(wait_http_ok(&format!("{base}/ready"), Duration::from_secs(60)), "store not ready");

    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: crowsnest\n    static_configs:\n      - targets: ['{addr}']\nremote_write:\n  - url: {base}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n    metadata_config:\n      send_interval: 1s\n"
    );
    let cfg_path = dir.path().join("prometheus.yml");
    std::fs::write(&cfg_path, config).expect("write config");
    let prom_addr = free_addr();
    let prom_args = [
        format!("--config.file={}", cfg_path.display()),
        format!("--storage.tsdb.path={}", dir.path().join("prom").display()),
        format!("--web.listen-address={prom_addr}"),
        "--log.level=warn".to_string(),
    ];
    let prom_args: Vec<&str> = prom_args.iter().map(String::as_str).collect();
    let prom = Proc::spawn("prometheus", "prometheus", &prom_args, dir.path(), &[]);

    let up = eventually(Duration::from_secs(90), || {
        let v = query_vector(&base, "up{job=\"crowsnest\"}");
        (v.len() == 1).then(|| v[0].clone())
    })
    .unwrap_or_else(|| panic!("no `up` sample arrived via remote_write:\n{}", prom.output()));
    assert_eq!(up["value"][1], "1", "{up}");
    assert_eq!(up["metric"]["instance"], addr.to_string());
    // The store's own metrics, scraped by Prometheus and written back: the write handler shows up.
    let writes = eventually(Duration::from_secs(60), || {
        let v = query_vector(&base, "crowsnest_store_http_request_duration_seconds_count{handler=\"write\"}");
        (!v.is_empty()).then_some(v)
    });
    assert!(writes.is_some(), "scraped store metrics did not arrive");
    // Metadata sent alongside the samples.
    let md = eventually(Duration::from_secs(60), || {
        let (_, body) =
            http_get(&format!("{base}/api/v1/metadata?metric=crowsnest_store_http_request_duration_seconds")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["crowsnest_store_http_request_duration_seconds"][0]["type"].as_str().map(str::to_string)
    });
    assert_eq!(md.as_deref(), Some("histogram"), "metadata did not arrive");

    // promtool as a real client of our API.
    let out = promtool(&["query", "instant", &base, "up{job=\"crowsnest\"}"]);
    assert!(out.contains(&format!("up{{instance=\"{addr}\", job=\"crowsnest\"}} => 1 @[")), "{out}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let (start, end) = ((now - 30).to_string(), now.to_string());
    let out = promtool(&["query", "range", "--start", &start, "--end", &end, "--step", "5s", &base, "up"]);
    assert!(out.contains("up{instance=") && out.contains("1 @["), "{out}");
    let out = promtool(&["query", "series", "--match", "up", &base]);
    assert!(out.contains(&format!("{{__name__=\"up\", instance=\"{addr}\", job=\"crowsnest\"}}")), "{out}");
    let out = promtool(&["query", "labels", &base, "job"]);
    assert!(out.lines().any(|l| l.trim() == "crowsnest"), "{out}");
}
