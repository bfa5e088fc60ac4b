//! The borrowing decoder against the prost-derived one: hand-picked encodings for each rule, and
//! property tests on random field soups (every wire type, known tags with wrong wire types,
//! nested groups, invalid UTF-8) and on mutated encodings of real requests.

use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::remote::{MetricType, TimeSeries, WriteRequest};

/// Both decoders agree: both refuse, or both accept with the same content (compared through
/// prost's canonical re-encoding, which also compares f64 bits, NaN payloads included).
fn verdicts_agree(raw: &[u8]) -> Result<bool, String> {
    let theirs = WriteRequest::decode(raw);
    let ours = WriteRequestRef::decode(raw);
    match (&theirs, &ours) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (a.encode_to_vec(), b.to_owned_request().encode_to_vec());
            if a == b { Ok(true) } else { Err(format!("different content for {raw:02x?}")) }
        }
        (Err(_), Err(_)) => Ok(false),
        _ => Err(format!("prost {theirs:?}, borrowed {ours:?} for {raw:02x?}")),
    }
}

fn assert_agree(raw: &[u8]) -> bool {
    verdicts_agree(raw).unwrap_or_else(|e| panic!("{e}"))
}

fn key(out: &mut Vec<u8>, tag: u32, wire: u8) {
    prost::encoding::encode_varint((u64::from(tag) << 3) | u64::from(wire), out);
}

fn len_field(out: &mut Vec<u8>, tag: u32, body: &[u8]) {
    key(out, tag, LENGTH_DELIMITED);
    prost::encoding::encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A raw WriteRequest of one series holding one encoded `Label` message and no samples.
fn one_label_request(label: &[u8]) -> Vec<u8> {
    let mut series = Vec::new();
    len_field(&mut series, 1, label);
    let mut raw = Vec::new();
    len_field(&mut raw, 1, &series);
    raw
}

fn request() -> WriteRequest {
    WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![Label::new("__name__", "up"), Label::new("job", "node")],
                samples: vec![Sample::new(1000, 1.0), Sample::new(2000, crate::stale_nan())],
            },
            TimeSeries { labels: vec![], samples: vec![] },
            TimeSeries { labels: vec![Label::new("a", "é")], samples: vec![Sample::new(-5, f64::NAN)] },
        ],
        metadata: vec![MetricMetadata {
            r#type: MetricType::Counter as i32,
            metric_family_name: "up".into(),
            help: "help".into(),
            unit: "seconds".into(),
        }],
    }
}

#[test]
fn decodes_what_prost_encodes() {
    let req = request();
    let raw = req.encode_to_vec();
    let got = WriteRequestRef::decode(&raw).expect("decode");
    assert_eq!(got.len(), 3);
    assert_eq!(got.sample_count(), 3);
    let s0 = got.series(0);
    assert_eq!(s0.labels, &[LabelRef { name: "__name__", value: "up" }, LabelRef { name: "job", value: "node" }]);
    assert!(crate::is_stale_nan(s0.samples[1].value));
    assert!(got.series(1).labels.is_empty() && got.series(1).samples.is_empty());
    assert_eq!(got.series(2).samples[0].timestamp, -5);
    assert_eq!(got.metadata, req.metadata);
    assert!(assert_agree(&raw));
    assert!(assert_agree(&[]), "empty body is an empty request");
}

#[test]
fn snappy_into_reused_buffer() {
    let body = request().encode_snappy();
    let mut scratch = vec![7u8; 1 << 16];
    let got = WriteRequestRef::decode_snappy(&body, 1 << 20, &mut scratch).expect("decode");
    assert_eq!(got.len(), 3);
    let mut small = Vec::new();
    assert!(matches!(WriteRequestRef::decode_snappy(&body, 10, &mut small), Err(DecodeError::TooLarge { .. })));
    assert!(small.is_empty(), "nothing allocated for a refused body");
}

#[test]
fn skips_unknown_fields_of_every_wire_type() {
    let mut label = Vec::new();
    len_field(&mut label, 1, b"job");
    key(&mut label, 9, VARINT);
    label.push(0x96);
    label.push(0x01);
    key(&mut label, 10, FIXED32);
    label.extend_from_slice(&[1, 2, 3, 4]);
    key(&mut label, 11, FIXED64);
    label.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    key(&mut label, 12, START_GROUP);
    key(&mut label, 1, VARINT);
    label.push(5);
    key(&mut label, 13, START_GROUP);
    key(&mut label, 13, END_GROUP);
    key(&mut label, 12, END_GROUP);
    len_field(&mut label, 2, b"x");
    let mut series = Vec::new();
    len_field(&mut series, 1, &label);
    // Exemplars and native histograms: unknown here, skipped.
    len_field(&mut series, 3, b"\x0a\x00");
    len_field(&mut series, 4, b"\x08\x01");
    let mut raw = Vec::new();
    len_field(&mut raw, 1, &series);
    key(&mut raw, 2, VARINT);
    raw.push(1);
    assert!(assert_agree(&raw));
    let got = WriteRequestRef::decode(&raw).expect("decode");
    assert_eq!(got.series(0).labels, &[LabelRef { name: "job", value: "x" }]);
}

#[test]
fn refuses_what_prost_refuses() {
    let mut bad_utf8 = Vec::new();
    len_field(&mut bad_utf8, 1, b"\xff");
    let raw = one_label_request(&bad_utf8);
    assert!(matches!(WriteRequestRef::decode(&raw), Err(ProtoError::InvalidString("Label.name"))));
    assert!(!assert_agree(&raw));

    let cases: &[&[u8]] = &[
        b"\x0a",                                         // length missing
        b"\x0a\x05\x0a\x00",                             // length past the end
        b"\x0a\x80",                                     // truncated varint length
        b"\x08\x01",                                     // timeseries as a varint
        b"\x1a\x02\x08",                                 // metadata with a truncated type
        b"\x0a\x02\x12\x00\x0a\x01",                     // trailing garbage after a series
        b"\x0a\x04\x12\x02\x09\x00",                     // truncated double
        b"\x0a\x03\x12\x01\x08",                         // timestamp with no value
        b"\x0a\x02\x12\x01",                             // sample length past the series' end
        b"\x0a\x03\x12\x01\x0a",                         // sample field missing
        b"\x0a\x02\x0a\x00\x00",                         // tag 0 after a message
        b"\x00",                                         // tag 0
        b"\x0e",                                         // wire type 6
        b"\x0f",                                         // wire type 7
        b"\x1c",                                         // end group without a start
        b"\x1b\x24",                                     // end group with another tag
        b"\x1b",                                         // unterminated group
        b"\x19\x00",                                     // fixed64 cut short
        b"\x1d\x00\x00\x00",                             // fixed32 cut short
        b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", // 11-byte varint key
        b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02",     // 10th byte overflows u64
        b"\x80\x80\x80\x80\x80\x01",                     // key above u32::MAX
        b"\x0a\x02\x0a\x02\x08\x01",                     // label name as a varint (inner message past its end)
    ];
    for raw in cases {
        assert!(!assert_agree(raw), "{raw:02x?} must be refused");
    }
    // A maximal valid varint and a 10-byte varint ending in 1 are accepted by both.
    assert!(assert_agree(b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"));
}

#[test]
fn utf8_is_checked_per_string() {
    // The name is the first byte of "é" (0xc3) and the next key, 0xa9 0x01 (tag 21, fixed64,
    // skipped), completes it: the label message as a whole is valid UTF-8, the name is not.
    let mut label = Vec::new();
    len_field(&mut label, 1, b"\xc3");
    label.extend_from_slice(b"\xa9\x01");
    label.extend_from_slice(&[b'x'; 8]);
    len_field(&mut label, 2, b"v");
    assert!(std::str::from_utf8(&label).is_ok());
    let raw = one_label_request(&label);
    assert!(matches!(WriteRequestRef::decode(&raw), Err(ProtoError::InvalidString("Label.name"))));
    assert!(!assert_agree(&raw));
    // Multi-byte text in short and long labels (one- and two-byte lengths) decodes either way.
    for value in ["é", "ünïcödé-välüé", &"ß".repeat(100)] {
        let req = WriteRequest {
            timeseries: vec![TimeSeries { labels: vec![Label::new("ä", value)], samples: vec![] }],
            metadata: vec![],
        };
        let raw = req.encode_to_vec();
        assert!(assert_agree(&raw));
        assert_eq!(WriteRequestRef::decode(&raw).expect("decode").series(0).labels[0].value, value);
    }
}

#[test]
fn last_scalar_wins_and_fields_interleave() {
    let mut sample = Vec::new();
    key(&mut sample, 2, VARINT);
    sample.push(1);
    key(&mut sample, 1, FIXED64);
    sample.extend_from_slice(&1.5f64.to_le_bytes());
    key(&mut sample, 2, VARINT);
    sample.push(7);
    let mut label = Vec::new();
    len_field(&mut label, 2, b"v1");
    len_field(&mut label, 1, b"n");
    len_field(&mut label, 2, b"v2");
    let mut series = Vec::new();
    len_field(&mut series, 2, &sample);
    len_field(&mut series, 1, &label);
    len_field(&mut series, 2, &sample);
    let mut raw = Vec::new();
    len_field(&mut raw, 1, &series);
    len_field(&mut raw, 1, &series);
    assert!(assert_agree(&raw));
    let got = WriteRequestRef::decode(&raw).expect("decode");
    assert_eq!(got.len(), 2);
    assert_eq!(got.series(1).labels, &[LabelRef { name: "n", value: "v2" }]);
    assert_eq!(got.series(1).samples, &[Sample::new(7, 1.5), Sample::new(7, 1.5)]);
}

/// Groups nested `depth` deep as an unknown field at the top, inside a series and inside a label.
fn nested_groups(depth: usize) -> [Vec<u8>; 3] {
    let mut g = Vec::new();
    for _ in 0..depth {
        key(&mut g, 5, START_GROUP);
    }
    for _ in 0..depth {
        key(&mut g, 5, END_GROUP);
    }
    let wrap = |series_extra: &[u8], label_extra: &[u8]| {
        let mut label = Vec::new();
        len_field(&mut label, 1, b"a");
        label.extend_from_slice(label_extra);
        let mut series = series_extra.to_vec();
        len_field(&mut series, 1, &label);
        let mut raw = Vec::new();
        len_field(&mut raw, 1, &series);
        raw
    };
    [g.clone(), wrap(&g, &[]), wrap(&[], &g)]
}

#[test]
fn recursion_limit_matches_prost() {
    let mut accepted = [0usize; 3];
    for depth in 90..=102 {
        for (i, raw) in nested_groups(depth).iter().enumerate() {
            if assert_agree(raw) {
                accepted[i] = accepted[i].max(depth);
            }
        }
    }
    // prost's budget of 100 levels counts the messages a group sits in.
    assert_eq!(accepted, [100, 99, 98]);
}

/// A protobuf field of any wire type, for random field soups.
#[derive(Debug, Clone)]
enum Field {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
    Message(u32, Vec<Field>),
    Group(u32, Vec<Field>),
}

fn encode_fields(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Varint(t, v) => {
                key(out, *t, VARINT);
                prost::encoding::encode_varint(*v, out);
            }
            Field::Fixed64(t, v) => {
                key(out, *t, FIXED64);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Fixed32(t, v) => {
                key(out, *t, FIXED32);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Bytes(t, b) => len_field(out, *t, b),
            Field::Message(t, inner) => {
                let mut body = Vec::new();
                encode_fields(inner, &mut body);
                len_field(out, *t, &body);
            }
            Field::Group(t, inner) => {
                key(out, *t, START_GROUP);
                encode_fields(inner, out);
                key(out, *t, END_GROUP);
            }
        }
    }
}

/// Mostly the tags our messages know (1–5), so known fields meet every wire type.
fn tag() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 1u32..=5, 1 => 6u32..=20, 1 => Just(536_870_911u32)]
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[a-z_]{0,6}".prop_map(String::into_bytes),
        1 => "\\PC{0,3}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..6),
    ]
}

fn field_soup() -> impl Strategy<Value = Vec<Field>> {
    let leaf = prop_oneof![
        (tag(), prop_oneof![any::<u64>(), 0u64..300]).prop_map(|(t, v)| Field::Varint(t, v)),
        (tag(), any::<u64>()).prop_map(|(t, v)| Field::Fixed64(t, v)),
        (tag(), any::<u32>()).prop_map(|(t, v)| Field::Fixed32(t, v)),
        (tag(), text()).prop_map(|(t, b)| Field::Bytes(t, b)),
    ];
    let field = leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            3 => (tag(), proptest::collection::vec(inner.clone(), 0..6)).prop_map(|(t, f)| Field::Message(t, f)),
            1 => (tag(), proptest::collection::vec(inner, 0..4)).prop_map(|(t, f)| Field::Group(t, f)),
        ]
    });
    proptest::collection::vec(field, 0..8)
}

fn label() -> impl Strategy<Value = Label> {
    ("[a-z_]{1,8}", "\\PC{0,8}").prop_map(|(n, v)| Label::new(n, v))
}

fn sample() -> impl Strategy<Value = Sample> {
    (any::<i64>(), any::<f64>()).prop_map(|(t, v)| Sample::new(t, v))
}

fn write_request() -> impl Strategy<Value = WriteRequest> {
    let series = (proptest::collection::vec(label(), 0..5), proptest::collection::vec(sample(), 0..4))
        .prop_map(|(labels, samples)| TimeSeries { labels, samples });
    let md = (0i32..9, "[a-z]{0,5}", "\\PC{0,5}", "[a-z]{0,3}").prop_map(|(t, n, h, u)| MetricMetadata {
        r#type: t,
        metric_family_name: n,
        help: h,
        unit: u,
    });
    (proptest::collection::vec(series, 0..5), proptest::collection::vec(md, 0..2))
        .prop_map(|(timeseries, metadata)| WriteRequest { timeseries, metadata })
}

/// One edit of an encoding: overwrite, insert or delete a byte, or truncate.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutate(raw: &mut Vec<u8>, m: &Mutation) {
    if raw.is_empty() {
        return;
    }
    match *m {
        Mutation::Set(i, b) => {
            let i = i % raw.len();
            raw[i] = b;
        }
        Mutation::Insert(i, b) => raw.insert(i % (raw.len() + 1), b),
        Mutation::Delete(i) => {
            raw.remove(i % raw.len());
        }
        Mutation::Truncate(i) => raw.truncate(i % raw.len()),
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_prost_on_field_soup(fields in field_soup()) {
        let mut raw = Vec::new();
        encode_fields(&fields, &mut raw);
        verdicts_agree(&raw).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn agrees_with_prost_on_mutated_requests(
        req in write_request(),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let mut raw = req.encode_to_vec();
        if mutations.is_empty() {
            prop_assert!(verdicts_agree(&raw).map_err(TestCaseError::fail)?, "valid encodings decode");
        }
        for m in &mutations {
            mutate(&mut raw, m);
        }
        verdicts_agree(&raw).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn agrees_with_prost_on_random_bytes(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        verdicts_agree(&raw).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn usual_label_and_sample_forms_and_their_near_misses_decode_like_prost() {
    // The forms read without the field loop, and each one-byte step away from them (a lengths
    // mismatch, a trailing field, fields swapped, a non-ASCII name, the value field omitted).
    let canonical = b"\x0a\x03job\x12\x03api".to_vec();
    let mut labels = vec![canonical.clone()];
    labels.push(b"\x0a\x03job\x12\x04api".to_vec());
    labels.push(b"\x0a\x03job\x12\x02api".to_vec());
    labels.push([canonical.as_slice(), b"\x18\x01"].concat());
    labels.push(b"\x12\x03api\x0a\x03job".to_vec());
    labels.push(b"\x0a\x02\xc3\xa9\x12\x01v".to_vec());
    labels.push(b"\x0a\x02\xc3\x28\x12\x01v".to_vec());
    labels.push(b"\x0a\x03job".to_vec());
    labels.push(b"\x0a\x03jo".to_vec());
    // A two-byte value length (0x85 0x01 = 133) over 133 bytes that start with its second byte:
    // read as a one-byte length 0x85 the rest would fit; prost reads 133 and runs out.
    labels.push([b"\x0a\x01a\x12\x85\x01".as_slice(), &[b'x'; 132]].concat());
    labels.push([b"\x0a\x01a\x12\x85\x01".as_slice(), &[b'x'; 133]].concat());
    for label in &labels {
        let raw = one_label_request(label);
        assert_agree(&raw);
    }
    let raw = one_label_request(&canonical);
    let got = WriteRequestRef::decode(&raw).expect("decode");
    assert_eq!((got.series(0).labels[0].name, got.series(0).labels[0].value), ("job", "api"));

    let mut sample = vec![0x09];
    sample.extend_from_slice(&2.5f64.to_le_bytes());
    sample.push(0x10);
    prost::encoding::encode_varint(1_700_000_000_000, &mut sample);
    let negative = {
        let mut s = sample[..10].to_vec();
        prost::encoding::encode_varint(-5i64 as u64, &mut s);
        s
    };
    for body in [
        sample.clone(),
        negative,
        [sample.as_slice(), b"\x10\x07"].concat(),
        [sample.as_slice(), b"\x18"].concat(),
        sample[..sample.len() - 1].to_vec(),
        sample[..9].to_vec(),
    ] {
        let mut series = Vec::new();
        len_field(&mut series, 2, &body);
        let mut raw = Vec::new();
        len_field(&mut raw, 1, &series);
        assert_agree(&raw);
    }
    let mut series = Vec::new();
    len_field(&mut series, 2, &sample);
    let mut raw = Vec::new();
    len_field(&mut raw, 1, &series);
    let got = WriteRequestRef::decode(&raw).expect("decode");
    assert_eq!(got.series(0).samples, &[Sample { value: 2.5, timestamp: 1_700_000_000_000 }]);
}
