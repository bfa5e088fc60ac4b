//! Serving an axum app over plain HTTP or HTTPS until a shutdown token fires. Plain HTTP is
//! `axum::serve`; HTTPS accepts TCP, runs the rustls handshake per connection (bounded by
//! [`HANDSHAKE_TIMEOUT`] so a silent client cannot hold a task), marks requests of connections
//! whose client certificate was verified ([`VerifiedClientCert`]) and serves HTTP/1.1 with hyper,
//! draining open connections on shutdown like `axum::serve`'s graceful mode.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::VerifiedClientCert;

/// Longest time a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for open connections to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` (HTTPS when `tls` is set) until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    };
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out.");
                    return;
                }
            };
            // With `allow_unauthenticated`, a presented certificate is one the verifier accepted.
            let verified = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
            let svc = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                if verified {
                    req.extensions_mut().insert(VerifiedClientCert);
                }
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error.");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("Open HTTPS connections did not finish in time; closing them.");
    }
    Ok(())
}
