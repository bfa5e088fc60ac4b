//! PromQL: parse with promql-parser, then evaluate as an instant and as a range query against a
//! small fixed in-memory data set (`MemStorage`). `max_samples` and the timeout are small so a
//! pathological query ends in a limit error rather than a fuzzer timeout or OOM.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use crowsnest_promql::{Engine, EngineOptions, MemStorage};
use crowsnest_wire::{Labels, Sample};
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

/// Three metrics, a few label combinations, 10 minutes at a 15 s interval (with a reset, a NaN
/// and a staleness marker so the edge cases of rate() & co are reachable).
fn storage() -> &'static MemStorage {
    static S: OnceLock<MemStorage> = OnceLock::new();
    S.get_or_init(|| {
        let s = MemStorage::new();
        for (job, inst, scale) in [("api", "a:1", 1.0), ("api", "b:1", 2.5), ("db", "c:1", -1.0)] {
            let counter = (0..40).map(|i| Sample::new(i * 15_000, if i == 20 { 3.0 } else { i as f64 * scale }));
            s.add(Labels::from_pairs([("__name__", "http_requests_total"), ("job", job), ("instance", inst)]), counter);
            let gauge =
                (0..40).map(|i| Sample::new(i * 15_000, if i == 7 { f64::NAN } else { (i as f64).sin() * scale }));
            s.add(Labels::from_pairs([("__name__", "temperature"), ("job", job), ("instance", inst)]), gauge);
            for le in ["0.1", "1", "+Inf"] {
                let b = (0..40).map(|i| {
                    let v = if i == 39 { crowsnest_wire::stale_nan() } else { i as f64 * scale.abs() };
                    Sample::new(i * 15_000, v)
                });
                s.add(
                    Labels::from_pairs([("__name__", "latency_bucket"), ("job", job), ("instance", inst), ("le", le)]),
                    b,
                );
            }
        }
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    if query.len() > 4096 {
        return;
    }
    let engine = Engine::new(EngineOptions {
        max_samples: 20_000,
        timeout: Duration::from_millis(500),
        ..EngineOptions::default()
    });
    let cancel = CancellationToken::new();
    let s = storage();
    let _ = engine.instant(s, query, 300_000, &cancel);
    let _ = engine.range(s, query, 0, 600_000, 30_000, &cancel);
});
