//! E-mail delivery over SMTP with lettre (tokio + rustls): multipart/alternative text + HTML
//! bodies from templates, `Subject`/`To`/`From` headers with defaults and user headers, STARTTLS
//! when `require_tls` (lettre `Tls::Required`), implicit TLS on port 465 or `force_implicit_tls`
//! (`Tls::Wrapper`), AUTH PLAIN/LOGIN. Follows Alertmanager's `notify/email`; SMTP 4xx answers and
//! connection/TLS failures are retried, 5xx answers and bad addresses are not.

use std::collections::BTreeMap;
use std::time::Duration;

use gtmpl::Value;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Identity, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::amconfig::split_host_port;
use super::amconfig::{EmailConfig, GlobalConfig, Secret, read_secret_file};
use super::metrics::FailReason;
use super::retry::Attempt;
use super::template::{Templates, with_subject};

/// Per-command SMTP timeout.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// One configured e-mail destination, with `global` defaults applied.
pub struct Email {
    cfg: EmailConfig,
    from: String,
    host: String,
    port: u16,
    hello: String,
    username: String,
    password: Secret,
    password_file: Option<std::path::PathBuf>,
    require_tls: bool,
    implicit_tls: bool,
    ca_file: Option<std::path::PathBuf>,
    /// Client certificate and key files (both set or neither).
    identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A rendered message, ready to send.
#[derive(Debug)]
pub struct Rendered {
    pub message: Message,
    pub recipients: usize,
}

impl Email {
    pub fn new(cfg: EmailConfig, global: &GlobalConfig, resolve: impl Fn(&str) -> std::path::PathBuf) -> Email {
        let pick = |own: &str, global: &str| if own.is_empty() { global.to_string() } else { own.to_string() };
        let smarthost = pick(&cfg.smarthost, &global.smtp_smarthost);
        let (host, port) = split_host_port(&smarthost).unwrap_or_else(|| (smarthost.clone(), 25));
        let username = pick(&cfg.auth_username, &global.smtp_auth_username);
        let (password, password_file) = if !cfg.auth_password.is_empty() {
            (cfg.auth_password.clone(), None)
        } else if !cfg.auth_password_file.is_empty() {
            (Secret::default(), Some(resolve(&cfg.auth_password_file)))
        } else if !global.smtp_auth_password.is_empty() {
            (global.smtp_auth_password.clone(), None)
        } else if !global.smtp_auth_password_file.is_empty() {
            (Secret::default(), Some(resolve(&global.smtp_auth_password_file)))
        } else {
            (Secret::default(), None)
        };
        Email {
            from: pick(&cfg.from, &global.smtp_from),
            hello: pick(&cfg.hello, &global.smtp_hello),
            require_tls: cfg.require_tls.unwrap_or(global.smtp_require_tls),
            implicit_tls: cfg.force_implicit_tls.unwrap_or(port == 465),
            ca_file: (!cfg.tls_config.ca_file.is_empty()).then(|| resolve(&cfg.tls_config.ca_file)),
            identity: (!cfg.tls_config.cert_file.is_empty() && !cfg.tls_config.key_file.is_empty())
                .then(|| (resolve(&cfg.tls_config.cert_file), resolve(&cfg.tls_config.key_file))),
            host,
            port,
            username,
            password,
            password_file,
            cfg,
        }
    }

    pub fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    /// Renders headers and bodies into a message.
    pub fn render(&self, t: &Templates, data: &Value) -> Result<Rendered, String> {
        let headers: BTreeMap<String, String> =
            self.cfg.headers.iter().map(|(k, v)| (title_case(k), v.clone())).collect();
        let r = |text: &str| t.render(text, data).map_err(|e| e.to_string());
        let subject = match headers.get("Subject") {
            Some(s) => r(s)?,
            None => t.render_named("email.default.subject", data).map_err(|e| e.to_string())?,
        };
        let data = with_subject(data, &subject);
        let r = |text: &str| t.render(text, &data).map_err(|e| e.to_string());
        let from_text = match headers.get("From") {
            Some(f) => r(f)?,
            None => r(&self.from)?,
        };
        let to_text = match headers.get("To") {
            Some(x) => r(x)?,
            None => r(&self.cfg.to)?,
        };
        let from: Mailbox = from_text.trim().parse().map_err(|e| format!("from address {from_text:?}: {e}"))?;
        let mut builder = Message::builder().from(from).subject(subject);
        let mut recipients = 0;
        for addr in to_text.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            builder = builder.to(addr.parse::<Mailbox>().map_err(|e| format!("to address {addr:?}: {e}"))?);
            recipients += 1;
        }
        if recipients == 0 {
            return Err("no recipients".into());
        }
        for (k, v) in &headers {
            if matches!(k.as_str(), "Subject" | "From" | "To") {
                continue;
            }
            let name = HeaderName::new_from_ascii(k.clone()).map_err(|e| format!("header {k:?}: {e}"))?;
            builder = builder.raw_header(HeaderValue::new(name, r(v)?));
        }
        let text = match &self.cfg.text {
            Some(x) => r(x)?,
            None => r(r#"{{ template "email.default.text" . }}"#)?,
        };
        let html = match &self.cfg.html {
            Some(x) => r(x)?,
            None => r(r#"{{ template "email.default.html" . }}"#)?,
        };
        let message = if html.trim().is_empty() {
            builder.singlepart(SinglePart::plain(text))
        } else {
            builder.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                    .singlepart(SinglePart::html(html)),
            )
        }
        .map_err(|e| format!("building message: {e}"))?;
        Ok(Rendered { message, recipients })
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let server_name = if self.cfg.tls_config.server_name.is_empty() {
            self.host.clone()
        } else {
            self.cfg.tls_config.server_name.clone()
        };
        let mut tls = TlsParameters::builder(server_name)
            .dangerous_accept_invalid_certs(self.cfg.tls_config.insecure_skip_verify);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("reading ca_file {}: {e}", ca.display()))?;
            tls = tls.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", ca.display()))?,
            );
        }
        if let Some((cert, key)) = &self.identity {
            let cert_pem = std::fs::read(cert).map_err(|e| format!("reading cert_file {}: {e}", cert.display()))?;
            let key_pem = std::fs::read(key).map_err(|e| format!("reading key_file {}: {e}", key.display()))?;
            // The parser's message could quote key material: report only which files failed.
            let id = Identity::from_pem(&cert_pem, &key_pem)
                .map_err(|_| format!("cert_file {} / key_file {}: unreadable PEM", cert.display(), key.display()))?;
            tls = tls.identify_with(id);
        }
        let tls = tls.build_rustls().map_err(|e| format!("TLS setup: {e}"))?;
        let mode = if self.implicit_tls {
            Tls::Wrapper(tls)
        } else if self.require_tls {
            Tls::Required(tls)
        } else {
            Tls::Opportunistic(tls)
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(mode)
            .hello_name(ClientId::Domain(self.hello.clone()))
            .timeout(Some(SMTP_TIMEOUT));
        if !self.username.is_empty() {
            let password = match &self.password_file {
                Some(p) => read_secret_file(p)?,
                None => self.password.clone(),
            };
            b = b.credentials(Credentials::new(self.username.clone(), password.expose().to_string()));
        }
        Ok(b.build())
    }

    /// One delivery attempt.
    pub async fn attempt(&self, message: &Message) -> Attempt {
        let transport = match self.transport() {
            Ok(t) => t,
            Err(message) => return Attempt::Retry { reason: FailReason::other, after: None, message },
        };
        match transport.send(message.clone()).await {
            Ok(_) => Attempt::Delivered,
            Err(e) => classify(&e),
        }
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> Attempt {
    let message = e.to_string();
    if e.is_permanent() {
        Attempt::Fatal { reason: FailReason::smtp_permanent, message }
    } else if e.is_transient() {
        Attempt::Retry { reason: FailReason::smtp_transient, after: None, message }
    } else if e.is_timeout() {
        Attempt::Retry { reason: FailReason::timeout, after: None, message }
    } else {
        Attempt::Retry { reason: FailReason::connection, after: None, message }
    }
}

/// `subject` → `Subject`, `x-team` → `X-Team` (Alertmanager canonicalises header names).
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c.flat_map(char::to_lowercase)).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::template::{NotificationData, data};
    use crate::notify::types::{Alert, LabelSet};

    fn cfg(yaml: &str) -> EmailConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    fn sample() -> Value {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let a = Alert {
            labels: [("alertname".to_string(), "DiskFull".to_string())].into(),
            annotations: LabelSet::new(),
            starts_at: now,
            ends_at: now + chrono::Duration::hours(1),
            updated_at: now,
            generator_url: String::new(),
            timeout: false,
        };
        let alerts = [a];
        data(&NotificationData {
            receiver: "ops",
            group_key: "k",
            group_labels: &LabelSet::new(),
            alerts: &alerts,
            now,
            external_url: "",
        })
    }

    #[test]
    fn renders_headers_and_multipart_body() {
        let g = GlobalConfig {
            smtp_from: "am@example.org".into(),
            smtp_smarthost: "mail:587".into(),
            ..GlobalConfig::default()
        };
        let e = Email::new(
            cfg("to: 'a@example.org, b@example.org'\nheaders: {x-team: '{{ .Receiver }}'}\n"),
            &g,
            |p: &str| std::path::PathBuf::from(p),
        );
        assert_eq!((e.host.as_str(), e.port, e.require_tls, e.implicit_tls), ("mail", 587, true, false));
        let r = e.render(&Templates::default(), &sample()).unwrap();
        assert_eq!(r.recipients, 2);
        let raw = String::from_utf8(r.message.formatted()).unwrap();
        assert!(raw.contains("Subject: [FIRING:1]"), "{raw}");
        assert!(raw.contains("X-Team: ops"), "{raw}");
        assert!(raw.contains("multipart/alternative") && raw.contains("text/html"), "{raw}");
    }

    #[test]
    fn implicit_tls_on_465_and_bad_addresses() {
        let g = GlobalConfig { smtp_from: "not an address".into(), ..GlobalConfig::default() };
        let e = Email::new(cfg("to: x@example.org\nsmarthost: smtp.example.org:465\n"), &g, |p: &str| {
            std::path::PathBuf::from(p)
        });
        assert!(e.implicit_tls);
        assert!(e.render(&Templates::default(), &sample()).unwrap_err().contains("from address"));
        assert_eq!(title_case("reply-TO"), "Reply-To");
    }
}
