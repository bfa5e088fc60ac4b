//! Differential: the store's borrowing remote_write decoder (`WriteRequestRef`) against the
//! prost-derived `WriteRequest` decoder on the same protobuf bytes. Both must refuse, or both must
//! accept with the same content (compared through prost's canonical re-encoding, which compares
//! f64 bits too). The input is the decompressed protobuf body; the snappy path is shared with
//! `remote_write_decode`, and its decompress-into-scratch variant is checked here as well.
#![no_main]

use crowsnest_wire::WriteRequest;
use crowsnest_wire::remote::borrowed::WriteRequestRef;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let theirs = WriteRequest::decode(data);
    let ours = WriteRequestRef::decode(data);
    match (&theirs, &ours) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.encode_to_vec(), b.to_owned_request().encode_to_vec(), "decoders disagree on content");
            let stored: usize = b.iter().map(|s| s.samples.len()).sum();
            assert_eq!(stored, b.sample_count());
            assert_eq!(a.sample_count(), b.sample_count());
        }
        (Err(_), Err(_)) => {}
        _ => panic!("prost {theirs:?}, borrowed {ours:?}"),
    }
    // The snappy variant decodes the same bytes the same way, into a reused (dirty) buffer.
    if let Ok(body) = snap::raw::Encoder::new().compress_vec(data) {
        let mut scratch = vec![0xa5u8; data.len() / 2];
        // The exact decompressed size is within the limit.
        let again = WriteRequestRef::decode_snappy(&body, data.len(), &mut scratch);
        assert_eq!(again.is_ok(), ours.is_ok());
        if let (Ok(x), Ok(y)) = (again, &ours) {
            assert_eq!(x.to_owned_request().encode_to_vec(), y.to_owned_request().encode_to_vec());
        }
    }
});
