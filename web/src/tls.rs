//! rustls configurations (ring provider) for listeners and outgoing clients, built from the config
//! types in [`crate::config`]. PEM parsing uses rustls' own `pki-types`; errors name the file,
//! never its content (a key file's bytes are a secret).
//!
//! Server side: an optional client-certificate verifier that *allows* anonymous clients at the TLS
//! layer, so the HTTP layer can keep `/healthz` open and answer 401 with a reason instead of a
//! bare handshake failure (see [`crate::auth`]). Client side: system roots or a CA file, an
//! optional name override (Prometheus' `tls_config.server_name`), `insecure_skip_verify`, and
//! certificate pinning for `up`'s own clients.

use std::path::Path;
use std::sync::Arc;

pub use rustls::ServerConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::WebError;
use crate::config::{ClientTlsConfig, ServerTlsConfig};

/// The one crypto provider of the workspace.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, WebError> {
    std::fs::read(path).map_err(|source| WebError::Io { path: path.to_path_buf(), source })
}

/// All certificates in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, WebError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| WebError::Pem { path: path.to_path_buf(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(WebError::Pem { path: path.to_path_buf(), reason: "no CERTIFICATE block".into() });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, WebError> {
    let pem = read(path)?;
    // The parser's error text never includes key bytes, but keep only its kind to be sure.
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| WebError::Pem { path: path.to_path_buf(), reason: "no readable PRIVATE KEY block".into() })
}

fn roots_from(path: &Path) -> Result<RootCertStore, WebError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| WebError::Pem { path: path.to_path_buf(), reason: e.to_string() })?;
    }
    Ok(roots)
}

/// The listener's TLS config, or `None` for plain HTTP.
pub fn server_config(cfg: &ServerTlsConfig) -> Result<Option<Arc<ServerConfig>>, WebError> {
    let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) else {
        return Ok(None);
    };
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &cfg.client_ca_file {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots_from(ca)?), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| WebError::Config(format!("web.tls.client_ca_file: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// An outgoing client's TLS config.
pub fn client_config(cfg: &ClientTlsConfig) -> Result<ClientConfig, WebError> {
    let provider = provider();
    let algs = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = if let Some(pin) = &cfg.pinned_cert_file {
        let cert = load_certs(pin)?.swap_remove(0);
        Arc::new(Pinned { cert, algs })
    } else if cfg.insecure_skip_verify {
        Arc::new(AcceptAny { algs })
    } else {
        let roots = match &cfg.ca_file {
            Some(ca) => roots_from(ca)?,
            None => {
                let mut roots = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                roots
            }
        };
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| WebError::Config(format!("TLS trust roots: {e}")))?;
        match &cfg.server_name {
            Some(n) => {
                let name = ServerName::try_from(n.clone())
                    .map_err(|_| WebError::Config(format!("tls.server_name {n:?} is not a valid name")))?;
                Arc::new(NameOverride { inner, name })
            }
            None => inner,
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(load_certs(c)?, load_key(k)?)?,
        _ => builder.with_no_client_auth(),
    })
}

/// Verifies the chain as usual but against a configured name instead of the URL's host.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts exactly one certificate, byte for byte (names and issuers are not consulted: the
/// pin is stronger than both). Handshake signatures are still checked, so only the key holder passes.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algs: WebPkiSupportedAlgorithms,
}

/// Accepts any certificate (`insecure_skip_verify`); handshake signatures are still checked.
#[derive(Debug)]
struct AcceptAny {
    algs: WebPkiSupportedAlgorithms,
}

macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }
    signature_checks!();
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    signature_checks!();
}
