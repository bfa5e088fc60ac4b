//! Shared plumbing for the end-to-end tests in `tests/`: free ports, starting the real `crowsnest`
//! binary and waiting for it, querying the Prometheus API, the "skip loudly, but fail in CI" rule for
//! external programs, and offline Docker test images (no registry: `docker import` of a tarball
//! holding Debian's static busybox).
//!
//! Each test binary includes this with `mod support;`; not every binary uses every helper.
#![allow(dead_code)]

pub mod rules;
pub mod slack;
pub mod smtp;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when running under CI (`CI=true`): missing programs are failures there, not skips.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Returns true if `program` is on PATH. If not: panics under CI, else prints a loud SKIP and
/// returns false so the caller can `return`.
pub fn require_program(program: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if in_ci() {
            panic!("{test}: required program `{program}` is missing in CI");
        }
        eprintln!("\n*** SKIP {test}: `{program}` is not installed (CI installs it via .ci/run) ***\n");
    }
    found
}

/// Returns true if a Docker Engine answers. Same skip/fail rule as [`require_program`].
pub fn require_docker(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if in_ci() {
            panic!("{test}: no Docker Engine reachable in CI");
        }
        eprintln!("\n*** SKIP {test}: no Docker Engine reachable ***\n");
    }
    ok
}

/// A free loopback port. The OS may hand the same just-released port to two callers in a row, so
/// ports already given out by this test process are never returned again.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no fresh loopback port after 1000 tries");
}

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Path of the `crowsnest` binary under test.
pub fn crowsnest_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_crowsnest"))
}

/// A child process killed when dropped, with its stderr captured to a file for failure messages.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    /// Starts `crowsnest <args>`, logging to `<log_dir>/<name>.log`.
    pub fn crowsnest(name: &str, args: &[&str], log_dir: &Path) -> Proc {
        Self::spawn(name, crowsnest_bin().to_str().expect("utf-8 path"), args, log_dir, &[])
    }

    /// Starts any program.
    pub fn spawn(name: &str, program: &str, args: &[&str], log_dir: &Path, env: &[(&str, &str)]) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(file.try_clone().expect("dup")).stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {program}: {e}"));
        Proc { child, log, name: name.to_string() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The captured output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (up to 30 s) for a graceful exit.
    pub fn terminate(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) with a pid we own; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- output of {} ----\n{}\n---- end ----", self.name, self.output());
        }
    }
}

/// Polls `url` until it answers 2xx or `timeout` passes.
pub fn wait_http_ok(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_get(url).map(|(s, _)| (200..300).contains(&s)).unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Polls `check` every 200 ms until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Minimal blocking HTTP/1.1 GET over loopback (no extra client crate in tests): (status, body).
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    http_request("GET", url, None, &[])
}

/// POST a form body (`application/x-www-form-urlencoded`).
pub fn http_post_form(url: &str, form: &[(&str, &str)]) -> std::io::Result<(u16, String)> {
    let body = form.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&");
    http_request("POST", url, Some(body.as_bytes()), &[("Content-Type", "application/x-www-form-urlencoded")])
}

/// Percent-encodes a query component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A raw HTTP/1.1 request with `Connection: close`; handles chunked and content-length bodies.
pub fn http_request(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    if let Some(b) = body {
        s.write_all(b)?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Runs an instant query against a Prometheus-compatible base URL; returns the parsed JSON.
pub fn query(base: &str, promql: &str) -> serde_json::Value {
    let (status, body) = http_post_form(&format!("{base}/api/v1/query"), &[("query", promql)]).expect("query request");
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("bad JSON ({status}) {e}: {body}"));
    v
}

/// The `data.result` array of an instant-vector query (empty on error).
pub fn query_vector(base: &str, promql: &str) -> Vec<serde_json::Value> {
    let v = query(base, promql);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Builds (once per machine) the offline busybox test image `crowsnest-test-busybox:latest` by
/// `docker import` of a tarball holding Debian's static busybox and its applet links.
/// Returns the image name.
pub fn busybox_image() -> String {
    const IMAGE: &str = "crowsnest-test-busybox:latest";
    let exists = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists {
        return IMAGE.to_string();
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    let script = format!(
        "cd {} && for a in $(./bin/busybox --list); do [ \"$a\" = busybox ] || ln -sf busybox bin/$a; done && echo 'root:x:0:0:root:/:/bin/sh' > etc/passwd && tar -C {} -cf {}/rootfs.tar .",
        root.display(),
        root.display(),
        dir.path().display()
    );
    let ok = Command::new("sh").arg("-c").arg(&script).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "building busybox rootfs failed");
    let ok = Command::new("docker")
        .args(["import", "--change", "CMD [\"/bin/sh\"]"])
        .arg(dir.path().join("rootfs.tar"))
        .arg(IMAGE)
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "docker import failed");
    IMAGE.to_string()
}

/// The busybox test image under a tag of the caller's own (`docker tag` of [`busybox_image`]), so
/// another test binary removing `crowsnest-test-busybox:latest` at its end cannot pull the image
/// away from under a running test. Returns `tag`.
pub fn busybox_image_as(tag: &str) -> String {
    for _ in 0..3 {
        let base = busybox_image();
        let ok = Command::new("docker")
            .args(["tag", &base, tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return tag.to_string();
        }
    }
    panic!("could not tag the busybox test image as {tag}");
}

/// Runs `docker <args>`, returning trimmed stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker runs");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes containers by name, ignoring errors (cleanup).
pub fn docker_rm(names: &[&str]) {
    for n in names {
        let _ = Command::new("docker").args(["rm", "-f", n]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}
