//! remote_write body → snappy block decode (size-checked) → protobuf `WriteRequest` → the store's
//! per-series label validation, exactly the path `POST /api/v1/write` takes before appending.
//! The first byte picks the framing: even = the bytes are the body as sent (snappy), odd = the
//! rest is snappy-compressed first, so the protobuf decoder sees arbitrary bytes too.
#![no_main]

use crowsnest_store::config::Limits;
use crowsnest_store::db::check_labels;
use crowsnest_wire::{Labels, WriteRequest};
use libfuzzer_sys::fuzz_target;

/// Small enough that a declared-size bomb is refused, big enough for real bodies.
const MAX_DECOMPRESSED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let body = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        match snap::raw::Encoder::new().compress_vec(rest) {
            Ok(b) => b,
            Err(_) => return,
        }
    };
    let Ok(req) = WriteRequest::decode_snappy(&body, MAX_DECOMPRESSED) else { return };
    let limits = Limits::default();
    for ts in req.timeseries {
        if check_labels(&ts.labels, &limits).is_ok() {
            // Accepted label sets are rendered in error messages and the API.
            let _ = Labels::from_sorted_unchecked(ts.labels).to_string();
        }
    }
});
