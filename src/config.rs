//! The one configuration file (`crowsnest.yml`): a section per component plus the few settings the
//! process as a whole owns. Every key has a default, so no file at all starts a working stack.
//! Flags and env vars override the usual keys (listen address, data directory). YAML is parsed with
//! `serde_norway`, a maintained fork of the archived `serde_yaml` with the same API and error
//! locations (line/column), which `check-config` prints.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API (query, write, rules, Alertmanager API, /metrics) listens on.
    pub listen: SocketAddr,
    /// Root folder for everything `up` writes: `store/` (sled + WAL), `collector-queue/`, `alerter/`.
    pub data_dir: PathBuf,
    /// The time-series store (`crowsnest store`, and inside `up`).
    pub store: crowsnest_store::StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9300".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            store: crowsnest_store::StoreConfig::default(),
        }
    }
}

impl Config {
    /// Reads and validates a config file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let cfg = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                Self::parse(&text).with_context(|| format!("in {}", p.display()))?
            }
        };
        Ok(cfg)
    }

    /// Parses YAML text (an empty document means all defaults) and validates it.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = if text.trim().is_empty() { Config::default() } else { serde_norway::from_str(text)? };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.store.validate()?;
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        Ok(())
    }

    /// Where the store keeps its files inside `up`.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen.port(), 9300);
        assert_eq!(c.store.retention.as_secs(), 15 * 24 * 3600);
    }

    #[test]
    fn unknown_keys_are_errors_with_location() {
        let err = Config::parse("listen: 127.0.0.1:1\nstore:\n  retentoin: 1d\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("retentoin"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn durations_parse_and_validate() {
        let c = Config::parse("store:\n  retention: 30d\n").unwrap();
        assert_eq!(c.store.retention.as_secs(), 30 * 24 * 3600);
        assert!(Config::parse("store:\n  retention: 1m\n").is_err());
        assert!(Config::parse("store:\n  retention: soon\n").is_err());
    }

    #[test]
    fn shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crowsnest.example.yml");
        Config::load(Some(&path)).unwrap();
    }
}
