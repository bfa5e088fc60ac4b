//! Probe tests against local servers: healthy, failing statuses, JSON health bodies, a hanging
//! endpoint, a closed port, an unresolvable name, and a TLS server with a self-signed cert.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

async fn serve() -> String {
    let app = axum::Router::new()
        .route("/ok", get(|| async { "all good" }))
        .route("/503", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "no") }))
        .route(
            "/spring-down",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"DOWN","components":{"db":{"status":"DOWN"}}}"#,
                )
            }),
        )
        .route("/spring-up", get(|| async { ([(header::CONTENT_TYPE, "application/json")], r#"{"status":"UP"}"#) }))
        .route(
            "/warn",
            get(|| async { ([(header::CONTENT_TYPE, "application/health+json")], r#"{"status":"warn","checks":{}}"#) }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late".into_response()
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

const T: Duration = Duration::from_secs(3);

#[tokio::test]
async fn healthy_endpoint_reports_all_phases() {
    let base = serve().await;
    let r = probe(&u(&format!("{base}/ok")), &ProbeConfig::default(), T).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.status_code, 200);
    assert_eq!(r.reason, None);
    let phases: Vec<&str> = r.phases.iter().map(|p| p.0).collect();
    assert_eq!(phases, vec!["resolve", "connect", "processing", "transfer"]);
    assert!(r.cert_expiry.is_none());
}

#[tokio::test]
async fn status_and_body_reasons() {
    let base = serve().await;
    let r = probe(&u(&format!("{base}/503")), &ProbeConfig::default(), T).await;
    assert_eq!((r.success, r.status_code, r.reason), (false, 503, Some(Reason::Status)));
    let cfg = ProbeConfig { valid_status_codes: vec![503], ..Default::default() };
    assert!(probe(&u(&format!("{base}/503")), &cfg, T).await.success);
    let cfg = ProbeConfig { fail_if_body_not_matches_regexp: Some("good$".into()), ..Default::default() };
    assert!(probe(&u(&format!("{base}/ok")), &cfg, T).await.success);
    let cfg = ProbeConfig { fail_if_body_matches_regexp: Some("good".into()), ..Default::default() };
    assert_eq!(probe(&u(&format!("{base}/ok")), &cfg, T).await.reason, Some(Reason::Body));
    let r = probe(&u(&format!("{base}/spring-down")), &ProbeConfig::default(), T).await;
    assert_eq!((r.success, r.status_code, r.reason), (false, 200, Some(Reason::Body)));
    let cfg = ProbeConfig { health_semantics: HealthSemantics::None, ..Default::default() };
    assert!(probe(&u(&format!("{base}/spring-down")), &cfg, T).await.success);
    assert!(probe(&u(&format!("{base}/spring-up")), &ProbeConfig::default(), T).await.success);
    let r = probe(&u(&format!("{base}/warn")), &ProbeConfig::default(), T).await;
    assert!(r.success && r.degraded, "{r:?}");
}

#[tokio::test]
async fn hanging_endpoint_times_out_within_deadline() {
    let base = serve().await;
    let started = Instant::now();
    let r = probe(&u(&format!("{base}/hang")), &ProbeConfig::default(), Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!((r.success, r.status_code, r.reason), (false, 0, Some(Reason::Timeout)));
    // Phases reached are reported; the one that hung is not.
    assert!(r.phases.iter().any(|p| p.0 == "connect"));
    assert!(!r.phases.iter().any(|p| p.0 == "processing"));
}

#[tokio::test]
async fn connect_and_dns_failures() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = probe(&u(&format!("http://127.0.0.1:{port}/")), &ProbeConfig::default(), T).await;
    assert_eq!((r.success, r.status_code, r.reason), (false, 0, Some(Reason::Connect)));
    let r = probe(&u("http://nonexistent.invalid/health"), &ProbeConfig::default(), T).await;
    assert_eq!(r.reason, Some(Reason::Dns));
    assert!(r.phases.is_empty());
}

#[tokio::test]
async fn tls_self_signed_fails_verification_but_reports_expiry_when_skipped() {
    let cert = CertificateDer::from_pem_slice(include_bytes!("../../../testdata/probe-cert.pem")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../../../testdata/probe-key.pem")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let acc = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acc.accept(s).await else { return };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        Bytes::from_static(b"{\"status\":\"pass\"}"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    let url = u(&format!("https://localhost:{}/health", addr.port()));
    let r = probe(&url, &ProbeConfig::default(), T).await;
    assert_eq!((r.success, r.status_code, r.reason), (false, 0, Some(Reason::Tls)));
    let cfg = ProbeConfig { insecure_skip_verify: true, ..Default::default() };
    let r = probe(&url, &cfg, T).await;
    assert!(r.success, "{r:?}");
    assert_eq!(r.cert_expiry, Some(2_110_676_948));
    assert!(r.phases.iter().any(|p| p.0 == "tls"));
}
