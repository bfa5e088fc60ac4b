//! HTTPS serving with a certificate generated in the test: CA trust, pinning, name override,
//! client certificates, and plain-HTTP clients being turned away.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use crowsnest_web::auth::VerifiedClientCert;
use crowsnest_web::{Authenticator, ClientTlsConfig, HttpClientConfig, RouteGroups, ServerTlsConfig};
use tokio_util::sync::CancellationToken;

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a server certificate for `localhost` signed by it, and a client certificate.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server =
        CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&server_key, &issuer).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client".to_string()]).unwrap().signed_by(&client_key, &issuer).unwrap();
    let w = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: w("ca.pem", ca.pem()),
        cert: w("server.pem", server.pem()),
        key: w("server-key.pem", server_key.serialize_pem()),
        client_cert: w("client.pem", client.pem()),
        client_key: w("client-key.pem", client_key.serialize_pem()),
        _dir: dir,
    }
}

async fn start(tls: &ServerTlsConfig, auth: Authenticator) -> (u16, CancellationToken) {
    let app = RouteGroups {
        open: Router::new().route("/healthz", get(|| async { "OK" })),
        read: Router::new().route(
            "/whoami",
            get(|req: Request| async move {
                if req.extensions().get::<VerifiedClientCert>().is_some() { "cert" } else { "anonymous" }
            }),
        ),
        ..Default::default()
    }
    .into_router(Arc::new(auth.require_client_cert(tls.client_ca_file.is_some())));
    let config = crowsnest_web::tls::server_config(tls).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn(crowsnest_web::serve(listener, app, config, stop.clone()));
    (port, stop)
}

async fn get_text(tls: ClientTlsConfig, url: &str) -> Result<(u16, String), String> {
    let c = HttpClientConfig { tls, ..Default::default() }
        .client_builder()
        .unwrap()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = c.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    Ok((r.status().as_u16(), r.text().await.unwrap()))
}

fn server_tls(p: &Pki, client_ca: Option<&Path>) -> ServerTlsConfig {
    ServerTlsConfig {
        cert_file: Some(p.cert.clone()),
        key_file: Some(p.key.clone()),
        client_ca_file: client_ca.map(Path::to_path_buf),
    }
}

#[tokio::test]
async fn https_with_ca_pin_and_name_override() {
    let p = pki();
    let (port, stop) = start(&server_tls(&p, None), Authenticator::open()).await;
    let trust_ca = ClientTlsConfig { ca_file: Some(p.ca.clone()), ..Default::default() };
    let ok = get_text(trust_ca.clone(), &format!("https://localhost:{port}/whoami")).await.unwrap();
    assert_eq!(ok, (200, "anonymous".to_string()));
    // 127.0.0.1 is not in the certificate: refused, unless the name is overridden.
    assert!(get_text(trust_ca.clone(), &format!("https://127.0.0.1:{port}/whoami")).await.is_err());
    let renamed = ClientTlsConfig { server_name: Some("localhost".into()), ..trust_ca };
    assert_eq!(get_text(renamed, &format!("https://127.0.0.1:{port}/healthz")).await.unwrap().0, 200);
    // Pinning the exact certificate works whatever the name; pinning another one fails.
    let pinned = ClientTlsConfig { pinned_cert_file: Some(p.cert.clone()), ..Default::default() };
    assert_eq!(get_text(pinned, &format!("https://127.0.0.1:{port}/healthz")).await.unwrap().0, 200);
    let wrong_pin = ClientTlsConfig { pinned_cert_file: Some(p.client_cert.clone()), ..Default::default() };
    assert!(get_text(wrong_pin, &format!("https://127.0.0.1:{port}/healthz")).await.is_err());
    // Untrusted without configuration; accepted with insecure_skip_verify.
    let system = ClientTlsConfig { server_name: Some("localhost".into()), ..Default::default() };
    assert!(get_text(system, &format!("https://127.0.0.1:{port}/healthz")).await.is_err());
    let insecure = ClientTlsConfig { insecure_skip_verify: true, ..Default::default() };
    assert_eq!(get_text(insecure, &format!("https://127.0.0.1:{port}/healthz")).await.unwrap().0, 200);
    // A plain-HTTP client gets no answer from the HTTPS port.
    assert!(get_text(ClientTlsConfig::default(), &format!("http://127.0.0.1:{port}/healthz")).await.is_err());
    stop.cancel();
}

#[tokio::test]
async fn client_certificates_are_verified_and_health_stays_open() {
    let p = pki();
    let (port, stop) = start(&server_tls(&p, Some(&p.ca)), Authenticator::open()).await;
    let base = ClientTlsConfig { ca_file: Some(p.ca.clone()), ..Default::default() };
    let url = |path: &str| format!("https://localhost:{port}{path}");
    assert_eq!(get_text(base.clone(), &url("/healthz")).await.unwrap().0, 200);
    assert_eq!(get_text(base.clone(), &url("/whoami")).await.unwrap().0, 401);
    let with_cert =
        ClientTlsConfig { cert_file: Some(p.client_cert.clone()), key_file: Some(p.client_key.clone()), ..base };
    assert_eq!(get_text(with_cert, &url("/whoami")).await.unwrap(), (200, "cert".to_string()));
    stop.cancel();
}

#[test]
fn bad_files_name_the_file_not_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n").unwrap();
    let cfg = ServerTlsConfig { cert_file: Some(key.clone()), key_file: Some(key.clone()), client_ca_file: None };
    let e = crowsnest_web::tls::server_config(&cfg).unwrap_err().to_string();
    assert!(e.contains("key.pem"), "{e}");
    assert!(!e.contains("c2VjcmV0"), "{e}");
}
