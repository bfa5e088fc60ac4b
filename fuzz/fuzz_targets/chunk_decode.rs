//! The store's closed-chunk decoder and the head snapshot reader on corrupted bytes. Inputs are
//! decoded as they are (mostly stopped by the CRC) and again with a valid checksum written over
//! them, so the decoders themselves see arbitrary payloads. A chunk that decodes must re-encode
//! to the same samples.
#![no_main]

use crowsnest_store::db::chunk;
use crowsnest_store::db::xor::XorChunk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chunk::decode(data);
    let mut sealed = data.to_vec();
    chunk::reseal(&mut sealed);
    if let Ok((meta, samples)) = chunk::decode(&sealed) {
        assert_eq!(samples.len(), meta.count as usize);
        if !samples.is_empty() && samples.windows(2).all(|w| w[0].timestamp < w[1].timestamp) {
            let again = chunk::decode(&chunk::encode(&samples)).expect("re-encoded chunk decodes");
            let bits =
                |v: &[crowsnest_wire::Sample]| v.iter().map(|s| (s.timestamp, s.value.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&again.1), bits(&samples));
        }
    }
    if let Some(c) = XorChunk::from_snapshot(data) {
        assert_eq!(c.samples().len(), c.len());
    }
});
