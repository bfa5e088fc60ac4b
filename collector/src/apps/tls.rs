//! TLS for health probes: the rustls client configs (verifying against the system roots, or
//! `insecure_skip_verify`) and the certificate expiry blackbox_exporter reports as
//! `probe_ssl_earliest_cert_expiry` (earliest `notAfter` of every certificate the server sent).
//! `notAfter` is read with a minimal DER walk of RFC 5280's `TBSCertificate`
//! (`version [0]`, `serialNumber`, `signature`, `issuer`, `validity`).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The verifying client config (system roots), built once.
pub fn verifying_config() -> Arc<ClientConfig> {
    static CFG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for c in native.certs {
            let _ = roots.add(c);
        }
        let cfg = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        Arc::new(cfg.unwrap_or_else(|_| insecure_inner()))
    })
    .clone()
}

/// The config that accepts any certificate.
pub fn insecure_config() -> Arc<ClientConfig> {
    static CFG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CFG.get_or_init(|| Arc::new(insecure_inner())).clone()
}

fn insecure_inner() -> ClientConfig {
    let p = provider();
    let verifier = Arc::new(AcceptAny(p.clone()));
    let builder = ClientConfig::builder_with_provider(p).with_safe_default_protocol_versions();
    match builder {
        Ok(b) => b.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth(),
        // The ring provider supports the default versions; this arm only satisfies the types.
        Err(_) => ClientConfig::builder().dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth(),
    }
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Reads one DER TLV at `pos`: returns (tag, content range end, content start).
fn tlv(d: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    let tag = *d.get(pos)?;
    let first = *d.get(pos + 1)? as usize;
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(pos + 2 + i)? as usize;
        }
        (len, pos + 2 + n)
    };
    let end = start.checked_add(len)?;
    (end <= d.len()).then_some((tag, end, start))
}

/// `notAfter` of a DER certificate, in Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (t, _, cert) = tlv(der, 0)?;
    if t != 0x30 {
        return None;
    }
    let (t, _, mut p) = tlv(der, cert)?; // TBSCertificate
    if t != 0x30 {
        return None;
    }
    if der.get(p) == Some(&0xa0) {
        p = tlv(der, p)?.1; // explicit version
    }
    for _ in 0..3 {
        p = tlv(der, p)?.1; // serial, signature, issuer
    }
    let (t, _, v) = tlv(der, p)?; // validity
    if t != 0x30 {
        return None;
    }
    let nb_end = tlv(der, v)?.1;
    let (tag, end, start) = tlv(der, nb_end)?;
    let s = std::str::from_utf8(&der[start..end]).ok()?;
    let s = s.strip_suffix('Z')?;
    let full = match tag {
        0x17 => {
            // UTCTime: YY >= 50 is 19YY (RFC 5280 4.1.2.5.1).
            let yy: i32 = s.get(0..2)?.parse().ok()?;
            format!("{}{}", if yy >= 50 { 19 } else { 20 }, s)
        }
        0x18 => s.to_string(),
        _ => return None,
    };
    let t = chrono::NaiveDateTime::parse_from_str(full.get(0..14)?, "%Y%m%d%H%M%S").ok()?;
    Some(t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn reads_not_after_of_a_real_certificate() {
        let pem = include_bytes!("../../testdata/probe-cert.pem");
        let der = CertificateDer::from_pem_slice(pem).unwrap();
        // `openssl x509 -enddate`: Nov 19 03:09:08 2036 GMT.
        assert_eq!(not_after(&der), Some(2_110_676_948));
        assert_eq!(not_after(&der[..40]), None);
        assert_eq!(not_after(b"\x30\x84\xff\xff\xff\xff"), None);
    }
}
