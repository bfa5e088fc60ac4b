//! Prometheus text format and OpenMetrics parsing (`crowsnest_wire::exposition`), as scrapes and
//! `POST /api/v1/import/prometheus` use it. Both formats plus content-type detection run on every
//! input. Every parsed sample's label names must be sorted and unique, and an unquoted metric name
//! must be legal (quoted names may be any UTF-8, as in Prometheus 3; the store refuses those).
#![no_main]

use crowsnest_wire::exposition::{Format, parse};
use crowsnest_wire::labels::is_valid_metric_name;
use libfuzzer_sys::fuzz_target;

/// True when `name` consists only of characters an unquoted name can have.
fn unquoted_charset(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let detected = Format::detect(Some("application/openmetrics-text; version=1.0.0"), &body);
    for format in [Format::Prometheus, Format::OpenMetrics, detected] {
        let parsed = parse(&body, format);
        for s in &parsed.samples {
            let names: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "unsorted or duplicate label names: {names:?}");
            let name = s.labels.metric_name().unwrap_or("");
            // A name that starts with a digit can only be legal when it was quoted.
            if unquoted_charset(name) && !is_valid_metric_name(name) {
                let quoted = body.contains(&format!("\"{name}\""));
                assert!(quoted, "unquoted illegal metric name {name:?}");
            }
        }
    }
});
