//! A real SMTP server for the end-to-end tests: Python's `aiosmtpd` (PyPI) started by the test on
//! a free loopback port, plain SMTP (RFC 5321) without TLS or AUTH. Each accepted mail is written
//! atomically to `<dir>/<n>.eml` with a `<n>.json` envelope (from, to, arrival time as Unix
//! seconds from the server's clock), so a test can measure delivery latency. Skips loudly when
//! python3 or aiosmtpd is missing, fails under `CI=true` (like `require_program`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const SERVER: &str = r#"
import json, os, sys, time
from aiosmtpd.controller import Controller

port, outdir = int(sys.argv[1]), sys.argv[2]

class Handler:
    def __init__(self):
        self.n = 0
    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        self.n += 1
        base = os.path.join(outdir, "%06d" % self.n)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos, "time": now}, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 OK"

c = Controller(Handler(), hostname="127.0.0.1", port=port)
c.start()
print("READY", flush=True)
sys.stdin.read()
c.stop()
"#;

/// True when python3 can import aiosmtpd. If not: panics under CI, else prints a loud SKIP.
pub fn require_aiosmtpd(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if super::in_ci() {
            panic!("{test}: python3 with aiosmtpd is required in CI (pip install aiosmtpd)");
        }
        eprintln!("\n*** SKIP {test}: python3 -c 'import aiosmtpd' failed (pip install aiosmtpd) ***\n");
    }
    ok
}

/// One received mail.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The raw message (headers and body) as sent.
    pub raw: String,
    pub from: String,
    pub to: Vec<String>,
    /// When the server accepted it.
    pub received: SystemTime,
}

impl Mail {
    /// The `Subject:` header (first line only).
    pub fn subject(&self) -> String {
        self.raw.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or("").to_string()
    }
}

/// The running server; stopped when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl SmtpServer {
    /// Starts aiosmtpd on a free loopback port, writing mails under `<work>/mails`.
    pub fn start(work: &Path) -> SmtpServer {
        let script = work.join("smtpd.py");
        std::fs::write(&script, SERVER).expect("write smtpd.py");
        let dir = work.join("mails");
        std::fs::create_dir_all(&dir).expect("mail dir");
        // A port can be taken between probing and binding; retry a few times.
        for _ in 0..5 {
            let port = super::free_port();
            let mut child = Command::new("python3")
                .arg(&script)
                .arg(port.to_string())
                .arg(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("python3 runs");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("piped stdout");
            // READY, or EOF when the server could not start.
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "READY" {
                return SmtpServer { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("aiosmtpd did not start");
    }

    /// `host:port` for `smarthost`.
    pub fn smarthost(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Mails received so far, in arrival order.
    pub fn mails(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "eml")).collect())
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .filter_map(|p| {
                let raw = std::fs::read_to_string(&p).ok()?;
                let env: Value = serde_json::from_str(&std::fs::read_to_string(p.with_extension("json")).ok()?).ok()?;
                let secs = env["time"].as_f64().unwrap_or(0.0);
                Some(Mail {
                    raw,
                    from: env["from"].as_str().unwrap_or("").to_string(),
                    to: env["to"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect(),
                    received: UNIX_EPOCH + Duration::from_secs_f64(secs),
                })
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
