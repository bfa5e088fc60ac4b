//! `crowsnest healthcheck URL`: exit 0 when URL answers 2xx within the timeout, else exit 1 with a
//! one-line reason. Lets a container image without curl use `/healthz` or `/ready` as its Docker
//! HEALTHCHECK.

use std::time::Duration;

use crowsnest_web::{ClientTlsConfig, HttpClientConfig};

/// Probes `url` once; `Ok(())` on a 2xx answer, otherwise the reason. `tls` applies to https URLs
/// (`--ca-file`, `--insecure`).
pub async fn probe(url: &str, timeout: Duration, tls: &ClientTlsConfig) -> Result<(), String> {
    let cfg = HttpClientConfig { tls: tls.clone(), ..Default::default() };
    let client = cfg
        .client_builder()
        .map_err(|e| format!("client: {e}"))?
        .timeout(timeout)
        .build()
        .map_err(|e| format!("client: {e}"))?;
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url} answered {}", r.status())),
        Err(e) if e.is_timeout() => Err(format!("{url} did not answer within {timeout:?}")),
        Err(e) if e.is_connect() => Err(format!("cannot connect to {url}: {}", describe(&e))),
        Err(e) => Err(format!("{url}: {}", describe(&e))),
    }
}

/// The innermost cause (e.g. the certificate problem), which reqwest's own message hides.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_refused_and_ok() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let err = probe(&format!("http://{addr}/healthz"), Duration::from_secs(2), &ClientTlsConfig::default())
            .await
            .unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");

        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route("/bad", axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        assert!(probe(&format!("http://{addr}/ok"), Duration::from_secs(2), &ClientTlsConfig::default()).await.is_ok());
        let err = probe(&format!("http://{addr}/bad"), Duration::from_secs(2), &ClientTlsConfig::default())
            .await
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
    }
}
