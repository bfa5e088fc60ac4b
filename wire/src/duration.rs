//! Prometheus duration strings (`1h30m`, `15s`, `500ms`, `2d`, `1y`), as used in config files,
//! rule files and API parameters. Grammar from Prometheus' `model.ParseDuration`: one or more
//! `<integer><unit>` terms with units in decreasing order, units `y w d h m s ms`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a valid duration string: {0:?}")]
pub struct DurationError(pub String);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, DurationError> {
    let err = || DurationError(s.to_string());
    if s.is_empty() {
        return Err(err());
    }
    if s == "0" {
        return Ok(0);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit = usize::MAX; // index into UNITS of the previous term; must strictly increase
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err());
        }
        let n: u64 = s[start..i].parse().map_err(|_| err())?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(err)?;
        if last_unit != usize::MAX && idx <= last_unit {
            return Err(err());
        }
        last_unit = idx;
        total = n.checked_mul(UNITS[idx].1).and_then(|v| total.checked_add(v)).ok_or_else(err)?;
    }
    Ok(total)
}

/// Parses a Prometheus duration into a [`Duration`].
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    parse_duration_ms(s).map(Duration::from_millis)
}

/// Formats milliseconds the way Prometheus prints durations (`1h30m`, `15s`, `0s`).
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in UNITS {
        if rest >= size {
            let n = rest / size;
            rest %= size;
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
    }
    out
}

/// Formats a [`Duration`] Prometheus-style.
pub fn format_duration(d: Duration) -> String {
    format_duration_ms(d.as_millis() as u64)
}

/// `#[serde(with = "crowsnest_wire::duration::serde_duration")]` for config fields.
pub mod serde_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Like [`serde_duration`] for `Option<Duration>`.
pub mod serde_opt_duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse_duration_ms("15s").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("1d2h").unwrap(), 93_600_000);
        assert_eq!(parse_duration_ms("0").unwrap(), 0);
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("1m1h").is_err());
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("1.5h").is_err());
        assert!(parse_duration_ms("-1s").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(0), "0s");
        assert_eq!(format_duration_ms(1500), "1s500ms");
        for ms in [1, 999, 60_000, 86_400_000 * 8 + 1] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)).unwrap(), ms);
        }
    }
}
