//! reqwest clients with the auth and TLS of an [`HttpClientConfig`]. The credential goes into the
//! client's default headers marked *sensitive* (hyper then keeps it out of `Debug` output), so the
//! code sending requests needs no auth logic and cannot forget it. Secret files are read once, at
//! start.

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::WebError;
use crate::config::HttpClientConfig;
use crate::secret::Secret;
use crate::tls;

fn read_secret(path: &std::path::Path) -> Result<Secret, WebError> {
    Secret::from_file(path).map_err(|source| WebError::Io { path: path.to_path_buf(), source })
}

impl HttpClientConfig {
    /// The `Authorization` header value, if credentials are configured.
    pub fn authorization(&self) -> Result<Option<HeaderValue>, WebError> {
        let text = if let Some(user) = &self.basic_auth_username {
            let pass = match (&self.basic_auth_password, &self.basic_auth_password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(f)) => read_secret(f)?,
                (None, None) => Secret::default(),
            };
            let raw = format!("{user}:{}", pass.expose());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
        } else if let Some(t) = &self.bearer_token {
            format!("Bearer {}", t.expose())
        } else if let Some(f) = &self.bearer_token_file {
            format!("Bearer {}", read_secret(f)?.expose())
        } else {
            return Ok(None);
        };
        let mut v = HeaderValue::from_str(&text)
            .map_err(|_| WebError::Config("credential contains characters not allowed in a header".into()))?;
        v.set_sensitive(true);
        Ok(Some(v))
    }

    /// A client builder with this config's credentials and TLS; callers add timeouts etc.
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, WebError> {
        let mut b = reqwest::Client::builder();
        if self.tls.is_customised() {
            b = b.tls_backend_preconfigured(tls::client_config(&self.tls)?);
        }
        if let Some(v) = self.authorization()? {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v);
            b = b.default_headers(h);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_forms() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let c = HttpClientConfig {
            basic_auth_username: Some("u".into()),
            basic_auth_password_file: Some(f.clone()),
            ..Default::default()
        };
        let v = c.authorization().unwrap().unwrap();
        assert!(v.is_sensitive());
        assert_eq!(
            v.to_str().unwrap(),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("u:s3cret"))
        );
        let c = HttpClientConfig { bearer_token_file: Some(f), ..Default::default() };
        assert_eq!(c.authorization().unwrap().unwrap().to_str().unwrap(), "Bearer s3cret");
        assert!(HttpClientConfig::default().authorization().unwrap().is_none());
        let c = HttpClientConfig { bearer_token_file: Some(dir.path().join("missing")), ..Default::default() };
        assert!(c.authorization().is_err());
    }
}
