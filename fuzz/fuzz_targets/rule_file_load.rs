//! Alerting/recording rule files: YAML decoding, validation (names, PromQL, templates, durations)
//! and conversion into rule groups with the group-size limit, as `rule_files:` loads them.
#![no_main]

use std::path::Path;
use std::time::Duration;

use crowsnest_alerter::rules::load_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = load_text(Path::new("fuzz.rules.yml"), text, Duration::from_secs(60), 100);
});
