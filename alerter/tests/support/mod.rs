//! Shared helpers for the notifier's end-to-end tests: a Slack-shaped webhook receiver that
//! validates payloads like Slack and can be scripted to answer 429/500, an aiosmtpd SMTP server
//! run as a child process, and a notifier served on a loopback port.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use crowsnest_alerter::alert::PostableAlert;
use crowsnest_alerter::notify::{Notifier, amconfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Skips (returns true) when `program` is missing, unless CI=true, where it panics.
pub fn missing(program: &str, what: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        return false;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{program} is required under CI ({what})");
    }
    eprintln!("SKIP: {program} not found; skipping {what}");
    true
}

/// Is the aiosmtpd Python module importable?
pub fn missing_aiosmtpd() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return false;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("python3 with aiosmtpd is required under CI (pip install aiosmtpd)");
    }
    eprintln!("SKIP: python3 -c 'import aiosmtpd' failed; skipping SMTP test");
    true
}

/// Polls `cond` every 25 ms until it holds or `timeout` passes.
pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    cond()
}

/// One scripted answer of the Slack mock.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: &'static str,
    pub retry_after: Option<u64>,
}

/// Everything the Slack mock saw.
#[derive(Default)]
pub struct SlackLog {
    /// Accepted messages with their arrival time.
    pub messages: Vec<(Instant, Value)>,
    /// Every request: arrival time and the status answered.
    pub attempts: Vec<(Instant, u16)>,
    pub script: VecDeque<Reply>,
}

#[derive(Clone)]
pub struct SlackMock {
    pub url: String,
    pub log: Arc<Mutex<SlackLog>>,
}

impl SlackMock {
    pub async fn start() -> SlackMock {
        let log = Arc::new(Mutex::new(SlackLog::default()));
        let app = Router::new().route("/services/T000/B000/XXX", post(slack_hook)).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        SlackMock { url: format!("http://{addr}/services/T000/B000/XXX"), log }
    }

    /// Queues answers for the next requests (after that: 200 ok).
    pub fn script(&self, replies: &[Reply]) {
        self.log.lock().unwrap().script.extend(replies.iter().cloned());
    }

    pub fn messages(&self) -> Vec<(Instant, Value)> {
        self.log.lock().unwrap().messages.clone()
    }

    pub fn attempts(&self) -> Vec<(Instant, u16)> {
        self.log.lock().unwrap().attempts.clone()
    }

    /// All text of a message (title, text, fallback) for content checks.
    pub fn text_of(msg: &Value) -> String {
        let a = &msg["attachments"][0];
        format!(
            "{} | {} | {} | {}",
            msg["text"].as_str().unwrap_or(""),
            a["title"].as_str().unwrap_or(""),
            a["text"].as_str().unwrap_or(""),
            a["color"].as_str().unwrap_or("")
        )
    }
}

/// Validates like Slack's incoming webhooks: JSON object, `text` or `blocks` or `attachments`
/// required, attachments need `text` or `fallback`.
async fn slack_hook(State(log): State<Arc<Mutex<SlackLog>>>, headers: HeaderMap, body: String) -> Response {
    let now = Instant::now();
    let mut log = log.lock().unwrap();
    let answer = |log: &mut SlackLog, status: u16, body: &'static str, retry_after: Option<u64>| -> Response {
        log.attempts.push((now, status));
        let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
        if let Some(s) = retry_after {
            resp.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
        }
        resp
    };
    if !headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json")) {
        return answer(&mut log, 400, "invalid_payload", None);
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return answer(&mut log, 400, "invalid_payload", None);
    };
    let nonempty = |v: &Value| v.as_str().is_some_and(|s| !s.trim().is_empty());
    let has_blocks = v["blocks"].as_array().is_some_and(|b| !b.is_empty());
    let attachments = v["attachments"].as_array().cloned().unwrap_or_default();
    if !v.is_object() || (!nonempty(&v["text"]) && !has_blocks && attachments.is_empty()) {
        return answer(&mut log, 400, "no_text", None);
    }
    if attachments.iter().any(|a| !nonempty(&a["text"]) && !nonempty(&a["fallback"])) {
        return answer(&mut log, 400, "invalid_attachments", None);
    }
    if let Some(r) = log.script.pop_front()
        && r.status != 200
    {
        return answer(&mut log, r.status, r.body, r.retry_after);
    }
    log.messages.push((now, v));
    answer(&mut log, 200, "ok", None)
}

/// A notifier on a loopback port with its sled database.
pub struct Running {
    pub notifier: Notifier,
    pub url: String,
    pub shutdown: CancellationToken,
    pub registry: crowsnest_wire::ops::SharedRegistry,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(yaml: &str, tree: sled::Tree) -> Running {
        let cfg = amconfig::parse(yaml).unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
        let registry = crowsnest_wire::ops::new_registry();
        let shutdown = CancellationToken::new();
        let notifier = Notifier::start(cfg, tree, &registry, shutdown.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = notifier.router();
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { token.cancelled().await }).await.ok();
        });
        Running { notifier, url: format!("http://{addr}"), shutdown, registry, server }
    }

    /// Stops every task and drops the notifier (releasing its sled handles).
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.notifier.stopped()).await.expect("notifier stops");
        self.server.await.ok();
    }

    pub fn metrics(&self) -> String {
        crowsnest_wire::ops::encode_metrics(&self.registry)
    }
}

pub fn alert(pairs: &[(&str, &str)]) -> PostableAlert {
    PostableAlert {
        labels: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        annotations: [(
            "summary".to_string(),
            format!("summary of {}", pairs.iter().map(|p| p.1).collect::<Vec<_>>().join("/")),
        )]
        .into(),
        starts_at: Some(chrono::Utc::now()),
        ends_at: None,
        generator_url: "http://prometheus:9090/graph?g0.expr=up".into(),
    }
}

pub fn resolved(mut a: PostableAlert) -> PostableAlert {
    a.ends_at = Some(chrono::Utc::now());
    a
}

pub fn temp_tree() -> sled::Tree {
    let db = sled::Config::new().temporary(true).open().unwrap();
    db.open_tree("notify").unwrap()
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const SMTP_SERVER: &str = r#"
import asyncio, json, os, sys, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, outdir, cert, key, user, password, implicit = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7] == "1"

class Handler:
    def __init__(self):
        self.n = 0
    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(outdir, "%d-%f" % (self.n, time.time()))
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos, "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None, "auth": session.authenticated}, f)
        os.rename(base + ".tmp", base + ".eml")
        return "250 OK"

def auth(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok, handled=False)

kwargs = {}
ctx = None
if cert != "-":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
if user != "-":
    kwargs.update(authenticator=auth, auth_required=True, auth_require_tls=cert != "-")
if ctx is not None and implicit:
    c = Controller(Handler(), hostname="127.0.0.1", port=int(port), ssl_context=ctx, server_hostname="localhost", **kwargs)
elif ctx is not None:
    c = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx, require_starttls=True, **kwargs)
else:
    c = Controller(Handler(), hostname="127.0.0.1", port=int(port), **kwargs)
c.start()
print("READY", flush=True)
sys.stdin.read()
c.stop()
"#;

/// An aiosmtpd server writing each mail as `<n>-<time>.eml` (+ `.json` envelope) into `dir`.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

/// TLS and AUTH options of the test SMTP server.
#[derive(Default, Clone)]
pub struct SmtpOpts {
    pub cert: Option<(PathBuf, PathBuf)>,
    pub auth: Option<(String, String)>,
    pub implicit_tls: bool,
}

impl Smtp {
    pub fn start(port: u16, dir: &Path, opts: &SmtpOpts) -> Smtp {
        use std::io::BufRead;
        let script = dir.join("smtpd.py");
        std::fs::write(&script, SMTP_SERVER).unwrap();
        let mails = dir.join("mails");
        std::fs::create_dir_all(&mails).unwrap();
        let (cert, key) = opts
            .cert
            .clone()
            .map(|(c, k)| (c.display().to_string(), k.display().to_string()))
            .unwrap_or(("-".into(), "-".into()));
        let (user, pass) = opts.auth.clone().unwrap_or(("-".into(), "-".into()));
        let mut child = Command::new("python3")
            .arg(&script)
            .args([
                port.to_string(),
                mails.display().to_string(),
                cert,
                key,
                user,
                pass,
                if opts.implicit_tls { "1".into() } else { "0".into() },
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "aiosmtpd did not start");
        Smtp { child, port, dir: mails }
    }

    /// Received mails (raw text) with their envelopes, in arrival order.
    pub fn mails(&self) -> Vec<(String, Value)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort_by_key(|p| {
            p.file_name().unwrap().to_string_lossy().split('-').next().unwrap().parse::<u32>().unwrap_or(0)
        });
        names
            .into_iter()
            .map(|p| {
                let raw = std::fs::read_to_string(&p).unwrap();
                let env = std::fs::read_to_string(p.with_extension("json"))
                    .ok()
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(Value::Null);
                (raw, env)
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a `localhost`/127.0.0.1 server certificate it signed, made with the openssl
/// CLI (rustls refuses a self-signed CA certificate used directly as the server certificate).
/// Returns (ca.pem, cert.pem, key.pem).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key, cert, key, csr, ext) = (
        dir.join("ca.pem"),
        dir.join("ca.key"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("leaf.csr"),
        dir.join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let run = |args: Vec<std::ffi::OsString>| {
        let out = Command::new("openssl").args(&args).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let os = |v: &[&dyn AsRef<std::ffi::OsStr>]| v.iter().map(|s| s.as_ref().to_os_string()).collect::<Vec<_>>();
    run(os(&[
        &"req",
        &"-x509",
        &"-newkey",
        &"rsa:2048",
        &"-nodes",
        &"-days",
        &"1",
        &"-subj",
        &"/CN=Crowsnest Test CA",
        &"-keyout",
        &ca_key,
        &"-out",
        &ca,
    ]));
    run(os(&[&"req", &"-newkey", &"rsa:2048", &"-nodes", &"-subj", &"/CN=localhost", &"-keyout", &key, &"-out", &csr]));
    run(os(&[
        &"x509",
        &"-req",
        &"-in",
        &csr,
        &"-CA",
        &ca,
        &"-CAkey",
        &ca_key,
        &"-CAcreateserial",
        &"-days",
        &"1",
        &"-extfile",
        &ext,
        &"-out",
        &cert,
    ]));
    (ca, cert, key)
}
