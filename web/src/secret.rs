//! [`Secret`]: a string that never shows itself. Passwords, tokens, bcrypt hashes and secret URLs
//! are held in it from the moment the config is parsed, so `{:?}`, `{}`, `tracing` fields, error
//! messages, panics and the YAML that `check-config` and `/api/v1/status/config` print all read
//! `<secret>` — no key-name heuristics needed. Only [`Secret::expose`] gives the text back, at the
//! one place that must send it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every view of a non-empty secret prints.
pub const REDACTED: &str = "<secret>";

/// A secret string; see the module docs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret text, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads a secret from a file, dropping one trailing newline (what `echo tok > file` adds).
    /// The error names the file, never its content.
    pub fn from_file(path: &std::path::Path) -> Result<Secret, std::io::Error> {
        let text = std::fs::read_to_string(path)?;
        Ok(Secret(text.trim_end_matches(['\n', '\r']).to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { REDACTED })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<secret>\"");
        assert_eq!(serde_norway::to_string(&Some(s.clone())).unwrap().trim(), "<secret>");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
        let back: Secret = serde_norway::from_str("tok").unwrap();
        assert_eq!(back.expose(), "tok");
    }

    #[test]
    fn file_secret_drops_trailing_newline_and_errors_name_no_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap().expose(), "abc");
        assert!(Secret::from_file(&dir.path().join("missing")).is_err());
    }
}
