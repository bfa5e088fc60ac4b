//! The built-in rule pack, compiled into the binary so `crowsnest up` alerts out of the box from
//! any working directory. At start it is written to `<data_dir>/rules/crowsnest.rules.yml`
//! (visible, and loaded like any user rule file).

use std::path::{Path, PathBuf};

/// `alerter/rules/crowsnest.rules.yml`.
pub const RULE_PACK: &str = include_str!("../alerter/rules/crowsnest.rules.yml");

/// Writes the pack under `data_dir` and returns its path.
pub fn write_rule_pack(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("rules");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("crowsnest.rules.yml");
    std::fs::write(&path, RULE_PACK)?;
    Ok(path)
}
