//! The collector's JSON metrics flattening (`crowsnest_collector::apps::json`). The input is a
//! dot path, a newline, then the JSON document; the path is applied with and without an explicit
//! metric name, and every produced name must be a valid metric name.
#![no_main]

use crowsnest_collector::apps::json::extract;
use crowsnest_collector::config::JsonMetric;
use crowsnest_wire::labels::is_valid_metric_name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, doc) = text.split_once('\n').unwrap_or(("", &text));
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(doc) else { return };
    for name in [None, Some("app".to_string())] {
        let m = JsonMetric { path: path.to_string(), name, ..Default::default() };
        for (metric, _) in extract(&doc, &m) {
            assert!(is_valid_metric_name(&metric), "invalid metric name {metric:?}");
        }
    }
});
