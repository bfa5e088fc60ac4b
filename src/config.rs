//! The one configuration file (`crowsnest.yml`): a section per component plus the few settings the
//! process as a whole owns. Every key has a default, so no file at all starts a working stack.
//! Flags and env vars override the usual keys (listen address, data directory). YAML is parsed with
//! `serde_norway`, a maintained fork of the archived `serde_yaml` with the same API and error
//! locations (line/column), which `check-config` prints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API (query, write, rules, Alertmanager API, /metrics) listens on.
    pub listen: SocketAddr,
    /// Root folder for everything `up` writes: `store/` (sled + WAL), `collector-queue/`, `alerter/`.
    pub data_dir: PathBuf,
    /// Load the built-in rule pack (containers, probes and the stack itself; see
    /// `alerter/rules/README.md`) in `up` and `alerter`, besides `alerter.rule_files`.
    pub shipped_rules: bool,
    /// The time-series store (`crowsnest store`, and inside `up`).
    pub store: crowsnest_store::StoreConfig,
    /// The per-host collector (`crowsnest collector`, `crowsnest-collector`, and inside `up`).
    pub collector: crowsnest_collector::config::CollectorConfig,
    /// Rule evaluation and notifications (`crowsnest alerter`, and inside `up`).
    pub alerter: crowsnest_alerter::config::AlerterConfig,
    /// Listener security for every command that serves HTTP: TLS and per-route-group
    /// authentication (README "Security"). Off by default, which the 127.0.0.1 default makes safe.
    pub web: crowsnest_web::WebConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9300".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            shipped_rules: true,
            store: crowsnest_store::StoreConfig::default(),
            collector: crowsnest_collector::config::CollectorConfig::default(),
            alerter: crowsnest_alerter::config::AlerterConfig::default(),
            web: crowsnest_web::WebConfig::default(),
        }
    }
}

impl Config {
    /// Reads and validates a config file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                Self::parse(&text).with_context(|| format!("in {}", p.display()))?
            }
        };
        Ok(cfg)
    }

    /// Parses YAML text (an empty document means all defaults) and validates it.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = if text.trim().is_empty() { Config::default() } else { serde_norway::from_str(text)? };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.store.validate()?;
        self.collector.validate()?;
        self.alerter.validate()?;
        self.web.validate()?;
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        Ok(())
    }

    /// Where the store keeps its files inside `up`.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The URL of this process' own listener (`https` when `web.tls` is on).
    fn own_base_url(&self) -> String {
        let scheme = if self.web.tls.enabled() { "https" } else { "http" };
        format!("{scheme}://{}", self.listen)
    }

    /// Inside `up` the pieces talk to each other over the one listener and keep their files under
    /// `data_dir`: every URL or folder still at its default is pointed there. Values the user set
    /// explicitly (another store, another folder) are kept.
    ///
    /// The clients pointed at the own listener need no security config of their own: each gets
    /// `internal_token` (a random per-process token the listener accepts on every route group)
    /// unless the user gave it credentials, and, with `web.tls`, trusts exactly the listener's
    /// certificate (pinned, so a certificate issued for a public name works on 127.0.0.1 too).
    pub fn wire_up_defaults(&mut self, internal_token: &crowsnest_web::Secret) {
        let base = self.own_base_url();
        let c_def = crowsnest_collector::config::CollectorConfig::default();
        let a_def = crowsnest_alerter::config::AlerterConfig::default();
        self.store.data_dir = self.store_dir();
        let pin = self.web.tls.cert_file.clone();
        if self.collector.remote_write.url == c_def.remote_write.url {
            self.collector.remote_write.url = format!("{base}/api/v1/write");
            let rw = &mut self.collector.remote_write;
            if rw.http_client().has_no_credentials() {
                rw.bearer_token = Some(internal_token.clone());
            }
            if rw.tls.pinned_cert_file.is_none() {
                rw.tls.pinned_cert_file = pin.clone();
            }
        }
        if self.collector.queue.dir == c_def.queue.dir {
            self.collector.queue.dir = self.data_dir.join("collector-queue");
        }
        if self.alerter.query_url == a_def.query_url {
            self.alerter.query_url = base.clone();
            internal_client(&mut self.alerter.query_http, internal_token, &pin);
        }
        if self.alerter.remote_write_url == a_def.remote_write_url {
            self.alerter.remote_write_url = format!("{base}/api/v1/write");
            internal_client(&mut self.alerter.remote_write_http, internal_token, &pin);
        }
        if self.alerter.data_dir == a_def.data_dir {
            self.alerter.data_dir = self.data_dir.join("alerter");
        }
    }

    /// For `crowsnest alerter`: folders under `data_dir` (URLs stay as configured).
    pub fn wire_alerter_defaults(&mut self) {
        let a_def = crowsnest_alerter::config::AlerterConfig::default();
        if self.alerter.data_dir == a_def.data_dir {
            self.alerter.data_dir = self.data_dir.join("alerter");
        }
    }
}

/// Gives a client of `up`'s own listener the internal token (unless it has credentials) and the
/// listener's certificate as its only trust.
fn internal_client(c: &mut crowsnest_web::HttpClientConfig, token: &crowsnest_web::Secret, pin: &Option<PathBuf>) {
    if c.has_no_credentials() {
        c.bearer_token = Some(token.clone());
    }
    if c.tls.pinned_cert_file.is_none() {
        c.tls.pinned_cert_file = pin.clone();
    }
}

/// The effective configuration as YAML for `check-config`, with secrets (passwords, tokens, keys)
/// replaced by `<secret>` so the output can be pasted into a ticket.
pub fn redacted_yaml(cfg: &Config) -> anyhow::Result<String> {
    let mut v = serde_norway::to_value(cfg)?;
    redact(&mut v);
    Ok(serde_norway::to_string(&v)?)
}

fn redact(v: &mut serde_norway::Value) {
    match v {
        serde_norway::Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let secret = k.as_str().is_some_and(|k| {
                    let k = k.to_ascii_lowercase();
                    (k.contains("password") || k.contains("token") || k.contains("secret") || k.ends_with("_key"))
                        && !k.ends_with("_file")
                        && !k.ends_with("_files")
                });
                if secret && !val.is_null() {
                    *val = serde_norway::Value::String("<secret>".into());
                } else {
                    redact(val);
                }
            }
        }
        serde_norway::Value::Sequence(s) => s.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen.port(), 9300);
        assert_eq!(c.store.retention.as_secs(), 15 * 24 * 3600);
    }

    #[test]
    fn unknown_keys_are_errors_with_location() {
        let err = Config::parse("listen: 127.0.0.1:1\nstore:\n  retentoin: 1d\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("retentoin"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn durations_parse_and_validate() {
        let c = Config::parse("store:\n  retention: 30d\n").unwrap();
        assert_eq!(c.store.retention.as_secs(), 30 * 24 * 3600);
        assert!(Config::parse("store:\n  retention: 1m\n").is_err());
        assert!(Config::parse("store:\n  retention: soon\n").is_err());
    }

    #[test]
    fn up_points_defaults_at_its_own_listener_but_keeps_explicit_values() {
        let mut c =
            Config::parse("listen: 127.0.0.1:9555\ndata_dir: /tmp/x\nalerter:\n  query_url: http://127.0.0.1:8428\n")
                .unwrap();
        let token = crowsnest_web::Secret::new("internal");
        c.wire_up_defaults(&token);
        assert_eq!(c.collector.remote_write.url, "http://127.0.0.1:9555/api/v1/write");
        assert_eq!(c.collector.remote_write.bearer_token.as_ref(), Some(&token));
        // The user's own query_url is not given the internal token.
        assert_eq!(c.alerter.query_http.bearer_token, None);
        assert_eq!(c.alerter.remote_write_http.bearer_token.as_ref(), Some(&token));
        assert_eq!(c.alerter.query_url, "http://127.0.0.1:8428");
        assert_eq!(c.alerter.remote_write_url, "http://127.0.0.1:9555/api/v1/write");
        assert_eq!(c.store.data_dir, PathBuf::from("/tmp/x/store"));
        assert_eq!(c.collector.queue.dir, PathBuf::from("/tmp/x/collector-queue"));
        assert_eq!(c.alerter.data_dir, PathBuf::from("/tmp/x/alerter"));
    }

    #[test]
    fn check_config_output_hides_secrets() {
        // Basic auth and a bearer token together are refused (like Prometheus' http_config).
        assert!(
            Config::parse("collector:\n  remote_write:\n    basic_auth_username: u\n    bearer_token: tok\n").is_err()
        );
        let c = Config::parse("collector:\n  remote_write:\n    basic_auth_username: u\n    basic_auth_password: hunter2\nalerter:\n  query_http:\n    bearer_token: tok\n").unwrap();
        let y = redacted_yaml(&c).unwrap();
        assert!(!y.contains("hunter2") && !y.contains("tok\n"), "{y}");
        assert!(y.contains("basic_auth_username: u"), "{y}");
        assert!(y.contains("<secret>"), "{y}");
    }

    #[test]
    fn check_config_output_hides_web_and_client_secrets() {
        let hash = "$2y$04$abcdefghijklmnopqrstuuFpBGaWeZ3GCbAvhmBRqSWtBa9mBu1Y6";
        let yaml = format!(
            "web:\n  auth:\n    read:\n      bearer_tokens: [tok-1]\n      bearer_token_files: [/run/tok]\n    write:\n      basic_auth_users: {{alice: '{hash}'}}\nalerter:\n  query_http:\n    basic_auth_username: q\n    basic_auth_password: qpass\n"
        );
        let c = Config::parse(&yaml).unwrap();
        let y = redacted_yaml(&c).unwrap();
        for secret in ["tok-1", hash, "qpass"] {
            assert!(!y.contains(secret), "{y}");
        }
        assert!(y.contains("/run/tok") && y.contains("alice") && y.contains("basic_auth_username: q"), "{y}");
    }

    #[test]
    fn up_gives_its_own_clients_the_internal_token_and_the_pin() {
        let mut c = Config::parse("web:\n  tls: {cert_file: /c.pem, key_file: /k.pem}\n").unwrap();
        let token = crowsnest_web::Secret::new("internal");
        c.wire_up_defaults(&token);
        assert_eq!(c.collector.remote_write.url, "https://127.0.0.1:9300/api/v1/write");
        assert_eq!(c.alerter.query_url, "https://127.0.0.1:9300");
        assert_eq!(c.collector.remote_write.tls.pinned_cert_file, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.alerter.query_http.tls.pinned_cert_file, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.alerter.query_http.bearer_token.as_ref(), Some(&token));
        // Credentials the user set for the own listener are kept.
        let mut c = Config::parse("collector:\n  remote_write:\n    bearer_token: mine\n").unwrap();
        c.wire_up_defaults(&token);
        assert_eq!(c.collector.remote_write.bearer_token.as_ref().map(|s| s.expose()), Some("mine"));
    }

    #[test]
    fn shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crowsnest.example.yml");
        Config::load(Some(&path)).unwrap();
    }
}
