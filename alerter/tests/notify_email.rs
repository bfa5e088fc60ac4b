//! End-to-end e-mail tests against a real SMTP server (Python aiosmtpd, started per test on a
//! free loopback port): plain SMTP, STARTTLS with AUTH (self-signed certificate from the openssl
//! CLI), implicit TLS, wrong password reported as permanent, server down then up, resolved mail.

mod support;

use std::time::Duration;

use crowsnest_alerter::alert::AlertSink;
use support::*;

fn config(port: u16, email_extra: &str) -> String {
    format!(
        "global:\n  smtp_from: crowsnest@example.org\n  smtp_smarthost: 127.0.0.1:{port}\n  smtp_hello: crowsnest.test\nroute:\n  receiver: mail\n  group_by: [alertname]\n  group_wait: 300ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: mail\n    email_configs:\n      - to: 'ops@example.org, dev@example.org'\n{email_extra}"
    )
}

fn skip() -> bool {
    missing_aiosmtpd()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_smtp_grouped_mail_with_text_and_html() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(free_port(), dir.path(), &SmtpOpts::default());
    let extra = "        require_tls: false\n        headers: {X-Team: '{{ .Receiver }}'}\n";
    let n = Running::start(&config(smtp.port, extra), temp_tree()).await;
    let a = alert(&[("alertname", "DiskFull"), ("instance", "h1"), ("severity", "critical")]);
    n.notifier
        .send(vec![a.clone(), alert(&[("alertname", "DiskFull"), ("instance", "h2"), ("severity", "critical")])])
        .await;
    assert!(wait_for(Duration::from_secs(10), || smtp.mails().len() == 1).await, "no mail");
    let (raw, env) = smtp.mails().remove(0);
    assert_eq!(env["from"], "crowsnest@example.org");
    assert_eq!(env["to"], serde_json::json!(["ops@example.org", "dev@example.org"]));
    for want in [
        "Subject: [FIRING:2] DiskFull (critical)",
        "X-Team: mail",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "instance = h1",
        "Query: http://prometheus:9090/graph?g0.expr=up",
    ] {
        assert!(raw.contains(want), "{want:?} missing:\n{raw}");
    }
    n.notifier.send(vec![resolved(a)]).await;
    assert!(wait_for(Duration::from_secs(10), || smtp.mails().len() == 2).await, "no mail about the resolved alert");
    let (raw, _) = smtp.mails().remove(1);
    // h2 still fires, so the group is still FIRING:1, and the mail reports h1 as resolved.
    assert!(raw.contains("Subject: [FIRING:1] DiskFull (critical)"), "{raw}");
    assert!(raw.contains("[RESOLVED] DiskFull") && raw.contains("Resolved:"), "{raw}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_and_password_file() {
    if skip() || missing("openssl", "STARTTLS test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = self_signed(dir.path());
    let opts = SmtpOpts { cert: Some((cert, key)), auth: Some(("bot".into(), "s3cret".into())), implicit_tls: false };
    let smtp = Smtp::start(free_port(), dir.path(), &opts);
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let extra = format!(
        "        auth_username: bot\n        auth_password_file: {}\n        tls_config: {{ca_file: {}, server_name: localhost}}\n",
        dir.path().join("pw").display(),
        ca.display()
    );
    let n = Running::start(&config(smtp.port, &extra), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "Secure")])]).await;
    assert!(
        wait_for(Duration::from_secs(10), || smtp.mails().len() == 1).await,
        "no mail over STARTTLS: {}",
        n.metrics()
    );
    let (_, env) = smtp.mails().remove(0);
    assert_eq!(env["tls"], true, "STARTTLS was used");
    assert_eq!(env["auth"], true, "AUTH was used");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_delivers() {
    if skip() || missing("openssl", "implicit TLS test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = self_signed(dir.path());
    let smtp =
        Smtp::start(free_port(), dir.path(), &SmtpOpts { cert: Some((cert, key)), auth: None, implicit_tls: true });
    let extra = format!(
        "        force_implicit_tls: true\n        tls_config: {{ca_file: {}, server_name: localhost}}\n",
        ca.display()
    );
    let n = Running::start(&config(smtp.port, &extra), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "Wrapped")])]).await;
    assert!(
        wait_for(Duration::from_secs(10), || smtp.mails().len() == 1).await,
        "no mail over implicit TLS: {}",
        n.metrics()
    );
    assert_eq!(smtp.mails()[0].1["tls"], true);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_permanent_failure() {
    if skip() || missing("openssl", "AUTH failure test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = self_signed(dir.path());
    let opts = SmtpOpts { cert: Some((cert, key)), auth: Some(("bot".into(), "right".into())), implicit_tls: false };
    let smtp = Smtp::start(free_port(), dir.path(), &opts);
    let extra = format!(
        "        auth_username: bot\n        auth_password: wrong\n        tls_config: {{ca_file: {}, server_name: localhost}}\n",
        ca.display()
    );
    let n = Running::start(&config(smtp.port, &extra), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "Denied")])]).await;
    let failed =
        r#"crowsnest_alerter_notifications_failed_total{receiver="mail",integration="email",reason="smtp_permanent"}"#;
    assert!(wait_for(Duration::from_secs(10), || n.metrics().contains(failed)).await, "{}", n.metrics());
    assert!(smtp.mails().is_empty());
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_up_still_delivers() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let n = Running::start(&config(port, "        require_tls: false\n"), temp_tree()).await;
    n.notifier.send(vec![alert(&[("alertname", "Patience")])]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let smtp = Smtp::start(port, dir.path(), &SmtpOpts::default());
    assert!(wait_for(Duration::from_secs(20), || smtp.mails().len() == 1).await, "mail lost while the server was down");
    let m = n.metrics();
    let requests: u64 = m
        .lines()
        .find(|l| l.starts_with(r#"crowsnest_alerter_notification_requests_total{receiver="mail""#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(requests >= 2, "expected retries: {m}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.mails().len(), 1, "delivered once");
    n.stop().await;
}
