//! Security end to end (issue "Hardening"): `crowsnest up` with HTTPS and credentials on every
//! route group, and a config carrying each kind of secret (bearer tokens, a token file, a bcrypt
//! basic-auth user, an SMTP password, a Slack webhook URL with a token path, the TLS key).
//!
//! Checked: the collector's writes and the alerter's queries and writes reach the store through
//! the secured listener with no extra config (the internal token and the pinned certificate);
//! external clients get 401 without credentials and 200 with them, per group; `/healthz` stays
//! open; `crowsnest healthcheck https://…` works with `--ca-file`/`--insecure` and fails on an
//! untrusted certificate; and after writes, queries and failing notifications, no secret appears
//! in the process output, in `/api/v1/status/config` or in `check-config`.
//!
//! The certificates come from `rcgen` in the test; the certificate names only `localhost`, so the
//! stack's own clients on 127.0.0.1 pass only thanks to pinning.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

const BEARER_READ: &str = "read-token-5b1e9c0d";
const TOKEN_FILE_ALERTING: &str = "alerting-token-77f0aa21";
const WRITER_PASSWORD: &str = "writer-pass-0c4f1e";
const SMTP_PASSWORD: &str = "smtp-pass-a9d3b7";
const SLACK_TOKEN: &str = "XoXbSlackPathToken1234";
/// Given to `up` as `CROWSNEST_WRITE_TOKEN` and to `crowsnest import` as a token file.
const ENV_WRITE_TOKEN: &str = "env-write-token-3e8d";

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// A line from the middle of the key PEM: if the key leaks, this does.
    key_line: String,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert =
        CertificateParams::new(vec!["localhost".to_string()]).expect("params").signed_by(&key, &issuer).expect("cert");
    let key_pem = key.serialize_pem();
    let key_line = key_pem.lines().nth(1).expect("key body").to_string();
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write pem");
        p
    };
    Pki { ca: w("ca.pem", &ca.pem()), cert: w("cert.pem", &cert.pem()), key: w("key.pem", &key_pem), key_line }
}

/// A blocking HTTPS client trusting the test CA (the support helpers speak plain HTTP only).
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new(ca: &Path) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let tls = crowsnest_web::ClientTlsConfig { ca_file: Some(ca.to_path_buf()), ..Default::default() };
        let http = crowsnest_web::HttpClientConfig { tls, ..Default::default() }
            .client_builder()
            .expect("client")
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Client { rt, http }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        self.rt.block_on(async {
            match req.send().await {
                Ok(r) => {
                    let s = r.status().as_u16();
                    (s, r.text().await.unwrap_or_default())
                }
                Err(e) => (0, format!("{e:?}")),
            }
        })
    }

    fn get(&self, url: &str, auth: Auth) -> (u16, String) {
        self.send(auth.apply(self.http.get(url)))
    }

    fn post(&self, url: &str, body: &str, auth: Auth) -> (u16, String) {
        self.send(auth.apply(self.http.post(url).body(body.to_string())))
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

impl Auth<'_> {
    fn apply(self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => r,
            Auth::Bearer(t) => r.bearer_auth(t),
            Auth::Basic(u, p) => r.basic_auth(u, Some(p)),
        }
    }
}

fn config_yml(listen: &str, dir: &Path, p: &Pki, hash: &str, dead: u16) -> String {
    let d = dir.display();
    format!(
        r#"listen: '{listen}'
data_dir: '{d}/data'
shipped_rules: false
collector:
  instance: sec-host
  interval: 1s
  docker: {{enabled: false}}
  targets:
    - job: self
      health_url: 'https://127.0.0.1:{port}/healthz'
      probe: {{insecure_skip_verify: true}}
alerter:
  evaluation_interval: 1s
  rule_files: ['{d}/always.rules.yml']
  alertmanager_config: '{d}/alertmanager.yml'
web:
  tls:
    cert_file: '{cert}'
    key_file: '{key}'
  auth:
    write:
      basic_auth_users: {{writer: '{hash}'}}
    read:
      bearer_tokens: ['{BEARER_READ}']
    alerting:
      bearer_token_files: ['{d}/alerting.token']
    admin:
      bearer_tokens: ['admin-token-unused']
"#,
        port = listen.rsplit(':').next().expect("port"),
        cert = p.cert.display(),
        key = p.key.display(),
    )
    .replace("{dead}", &dead.to_string())
}

fn alertmanager_yml(dead: u16) -> String {
    format!(
        r#"global:
  smtp_from: crowsnest@sec.test
  smtp_smarthost: '127.0.0.1:{dead}'
  smtp_auth_username: alerts
  smtp_auth_password: '{SMTP_PASSWORD}'
  smtp_require_tls: false
route:
  receiver: team
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: team
    slack_configs:
      - api_url: 'http://127.0.0.1:{dead}/services/T000/B000/{SLACK_TOKEN}'
        channel: '#sec'
    email_configs:
      - to: ops@sec.test
"#
    )
}

const RULES: &str = r#"groups:
  - name: sec
    interval: 1s
    rules:
      - alert: SecAlwaysFiring
        expr: vector(1)
        labels: {severity: page}
"#;

/// A port nothing listens on (notifications to it fail fast).
fn dead_port() -> u16 {
    free_port()
}

fn first_value(body: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["data"]["result"].as_array()?.first()?["value"][1].as_str()?.parse().ok()
}

#[test]
fn up_with_auth_and_tls_works_inside_refuses_outside_and_leaks_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pki(dir.path());
    let hash = bcrypt::hash(WRITER_PASSWORD, 4).expect("bcrypt");
    let dead = dead_port();
    std::fs::write(dir.path().join("alerting.token"), format!("{TOKEN_FILE_ALERTING}\n")).expect("token file");
    std::fs::write(dir.path().join("always.rules.yml"), RULES).expect("rules");
    std::fs::write(dir.path().join("alertmanager.yml"), alertmanager_yml(dead)).expect("am");
    let addr = free_addr();
    let cfg = dir.path().join("crowsnest.yml");
    std::fs::write(&cfg, config_yml(&addr.to_string(), dir.path(), &p, &hash, dead)).expect("config");
    let secrets = [
        BEARER_READ,
        TOKEN_FILE_ALERTING,
        WRITER_PASSWORD,
        hash.as_str(),
        SMTP_PASSWORD,
        SLACK_TOKEN,
        "admin-token-unused",
        ENV_WRITE_TOKEN,
        p.key_line.as_str(),
    ];

    // check-config prints the effective config without any secret.
    let out = Command::new(crowsnest_bin()).args(["check-config", cfg.to_str().expect("utf-8")]).output().expect("run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for s in secrets {
        assert!(!text.contains(s), "check-config shows a secret:\n{text}");
    }

    let mut up = Proc::spawn(
        "up",
        crowsnest_bin().to_str().expect("utf-8"),
        &["--log-level", "debug", "up", "--config", cfg.to_str().expect("utf-8")],
        dir.path(),
        &[("CROWSNEST_WRITE_TOKEN", ENV_WRITE_TOKEN)],
    );
    let base = format!("https://localhost:{}", addr.port());
    let c = Client::new(&p.ca);
    let ready =
        eventually(Duration::from_secs(30), || (c.get(&format!("{base}/ready"), Auth::None).0 == 200).then_some(()));
    assert!(ready.is_some(), "stack not ready:\n{}", up.output());

    // Open without credentials: health. Refused without: every protected group.
    assert_eq!(c.get(&format!("{base}/healthz"), Auth::None).0, 200);
    for (path, auth) in [
        ("/api/v1/query?query=up", Auth::None),
        ("/api/v1/query?query=up", Auth::Bearer("wrong")),
        ("/api/v1/query?query=up", Auth::Bearer(TOKEN_FILE_ALERTING)),
        ("/metrics", Auth::None),
        ("/api/v1/rules", Auth::None),
        ("/api/v2/alerts", Auth::None),
        ("/api/v2/alerts", Auth::Bearer(BEARER_READ)),
        ("/api/v1/status/config", Auth::None),
    ] {
        let (status, body) = c.get(&format!("{base}{path}"), auth);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("\"errorType\":\"unauthorized\""), "{body}");
    }
    let (status, _) = c.post(&format!("{base}/api/v1/import/prometheus"), "sec_probe 1\n", Auth::None);
    assert_eq!(status, 401);
    let (status, _) =
        c.post(&format!("{base}/api/v1/import/prometheus"), "sec_probe 1\n", Auth::Basic("writer", "nope"));
    assert_eq!(status, 401);

    // Allowed with the right credentials.
    let (status, body) =
        c.post(&format!("{base}/api/v1/import/prometheus"), "sec_probe 42\n", Auth::Basic("writer", WRITER_PASSWORD));
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(c.get(&format!("{base}/metrics"), Auth::Bearer(BEARER_READ)).0, 200);
    assert_eq!(c.get(&format!("{base}/api/v2/status"), Auth::Bearer(TOKEN_FILE_ALERTING)).0, 200);
    let q = |expr: &str| c.get(&format!("{base}/api/v1/query?query={}", urlencode(expr)), Auth::Bearer(BEARER_READ));
    let imported = eventually(Duration::from_secs(10), || first_value(&q("sec_probe").1));
    assert_eq!(imported, Some(42.0));

    // `crowsnest import` over HTTPS with the write token from the env var, read from a file.
    let token_file = dir.path().join("write.token");
    std::fs::write(&token_file, ENV_WRITE_TOKEN).expect("token file");
    let input = dir.path().join("input.prom");
    std::fs::write(&input, "sec_imported 7\n").expect("input");
    let import = |extra: &[&str]| {
        Command::new(crowsnest_bin())
            .args(["import", input.to_str().expect("utf-8"), "--quiet", "--url", &base, "--ca-file"])
            .arg(&p.ca)
            .args(extra)
            .output()
            .expect("import")
    };
    assert!(!import(&[]).status.success(), "import without a token must fail");
    let out = import(&["--bearer-token-file", token_file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(eventually(Duration::from_secs(10), || first_value(&q("sec_imported").1)), Some(7.0));

    // The collector wrote through the secured listener (its probe series arrived) ...
    let probed = eventually(Duration::from_secs(30), || first_value(&q(r#"probe_success{job="self"}"#).1));
    assert_eq!(probed, Some(1.0), "collector series missing:\n{}", up.output());
    // ... and the alerter queried it and wrote ALERTS back.
    let alerts = eventually(Duration::from_secs(30), || first_value(&q(r#"ALERTS{alertname="SecAlwaysFiring"}"#).1));
    assert_eq!(alerts, Some(1.0), "alerter could not query/write:\n{}", up.output());

    // Notifications to the dead port fail (and are retried) without naming secrets.
    let failed = eventually(Duration::from_secs(30), || {
        let (_, m) = c.get(&format!("{base}/metrics"), Auth::Bearer(BEARER_READ));
        let attempted = |integration: &str| {
            m.lines().any(|l| {
                l.starts_with("crowsnest_alerter_notification_requests_total{")
                    && l.contains(&format!("integration=\"{integration}\""))
                    && !l.trim_end().ends_with(" 0")
            })
        };
        // Nothing listens on the dead port, so every attempt is a failure.
        (attempted("slack") && attempted("email")).then_some(())
    });
    assert!(failed.is_some(), "no failed notification seen:\n{}", up.output());

    let (status, status_config) = c.get(&format!("{base}/api/v1/status/config"), Auth::Bearer(BEARER_READ));
    assert_eq!(status, 200);

    // healthcheck against https: trusted CA, --insecure, and refused without trust.
    let hc = |args: &[&str]| Command::new(crowsnest_bin()).arg("healthcheck").args(args).output().expect("healthcheck");
    let url = format!("{base}/healthz");
    assert!(hc(&[&url, "--ca-file", p.ca.to_str().expect("utf-8")]).status.success());
    let ip_url = format!("https://127.0.0.1:{}/ready", addr.port());
    assert!(hc(&[&ip_url, "--insecure"]).status.success());
    let untrusted = hc(&[&url]);
    assert!(!untrusted.status.success());
    assert!(String::from_utf8_lossy(&untrusted.stdout).contains("unhealthy"));

    up.terminate();
    let output = up.output();
    if std::env::var_os("SEC_DEBUG").is_some() {
        eprintln!("{output}\n{status_config}");
    }
    assert!(output.contains("Listener security"), "{output}");
    for s in secrets {
        assert!(!output.contains(s), "process output contains a secret ({} chars)", s.len());
        assert!(!status_config.contains(s), "status/config contains a secret");
    }
}
