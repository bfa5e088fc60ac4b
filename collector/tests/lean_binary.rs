//! The lean `crowsnest-collector` binary: it validates the shipped example config, and when run
//! it serves `/healthz`, `/ready` and its own `/metrics` on `--listen`, then stops cleanly on
//! SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child if the test panics before it stopped.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_crowsnest-collector");

#[test]
fn checks_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/collector.example.yml");
    let out = Command::new(BIN).args(["--config", example, "--check-config"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "intervall: 5s\n").unwrap();
    let out = Command::new(BIN).args(["--config", bad.to_str().unwrap(), "--check-config"]).output().unwrap();
    assert!(!out.status.success());
}

fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

#[test]
fn serves_ops_endpoints_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        format!(
            "docker: {{enabled: false}}\nremote_write: {{url: \"http://127.0.0.1:1/api/v1/write\"}}\nqueue: {{dir: \"{}\"}}\n",
            dir.path().join("q").display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Guard(
        Command::new(BIN)
            .args(["--config", cfg.to_str().unwrap(), "--listen", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let mut ready = None;
    while start.elapsed() < Duration::from_secs(15) {
        ready = get(&addr, "/ready");
        if ready.as_ref().is_some_and(|r| r.0 == 200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ready.map(|r| r.0), Some(200));
    assert_eq!(get(&addr, "/healthz").map(|r| r.0), Some(200));
    let (code, body) = get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("crowsnest_collector_queue_samples"), "{body}");
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.is_some_and(|s| s.success()), "exit after SIGTERM: {status:?}");
}
