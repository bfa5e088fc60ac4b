//! Alertmanager configuration: YAML decoding and validation (routes, receivers, matchers,
//! inhibit rules, templates paths), plus the redacted rendering `check-config` prints.
#![no_main]

use crowsnest_alerter::notify::amconfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = amconfig::parse(text) {
        let _ = cfg.redacted_yaml();
    }
});
