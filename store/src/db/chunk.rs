//! Closed chunks: the on-disk form of a finished run of one series' samples, with a CRC32 over
//! everything after the checksum, verified on every read.
//!
//! Going beyond Gorilla where it pays, after VictoriaMetrics' `lib/encoding` (see
//! `reference/tsdb-performance.md` §2.4 and §4.4): each chunk is encoded both as Prometheus-style
//! XOR and, when every value is a decimal with at most [`MAX_DECIMALS`] digits after the point, as
//! columns — timestamps as "regular" (one delta) or zigzag delta-of-delta varints; values as a
//! constant, or scaled integers coded as delta (gauges) or delta-of-delta (counters) varints — and
//! the columnar payload is zstd-compressed when that saves at least 10%. The smaller encoding is
//! kept. Values are always restored bit-exactly (the encoder verifies the decimal round trip), so
//! NaN, ±Inf, -0.0 and the staleness marker fall back to XOR unchanged.
//!
//! Layout: `kind u8 | crc32 u32 LE | varint min_t | uvarint (max_t-min_t) | uvarint count | payload`.

use crowsnest_wire::Sample;

use super::bits::{BitReader, ByteReader, put_uvarint, put_varint, uvarint_len, zigzag};
use super::xor::{XorChunk, XorIter};

/// Most decimal digits after the point the columnar value coding tries.
pub const MAX_DECIMALS: u8 = 12;

const KIND_XOR: u8 = 1;
const KIND_COLUMNS: u8 = 2;
const FLAG_ZSTD: u8 = 0x80;
const TS_REGULAR: u8 = 0;
const TS_DOD: u8 = 1;
const V_CONST: u8 = 0;
const V_DELTA: u8 = 1;
const V_DELTA2: u8 = 2;
/// Deltas (order 1 or 2) in split coding (`split.rs`): for compacted blocks.
const V_SPLIT: u8 = 3;
/// Fewest samples for which the split value coding is tried: it pays on compacted blocks, and
/// head chunks (120 samples, closed on the ingest path) skip its search.
const SPLIT_MIN_SAMPLES: usize = 256;
const HEADER_FIXED: usize = 5;
/// Most samples a stored chunk may claim. Real chunks hold at most a compacted block
/// (`compact::BLOCK_MAX_SAMPLES`, 8,192); a corrupt header claiming billions used to make the
/// decoder allocate for all of them and abort (found by the `chunk_decode` fuzz target).
pub const MAX_CHUNK_SAMPLES: u32 = 1 << 20;

const POW10: [f64; 13] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12];

/// Why a stored chunk could not be read.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("chunk checksum mismatch")]
    Checksum,
    #[error("malformed chunk: {0}")]
    Malformed(&'static str),
}

/// Time range and size of a chunk, readable without decoding the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_t: i64,
    pub max_t: i64,
    pub count: u32,
}

/// Encodes sorted, timestamp-unique samples into the smallest closed-chunk form.
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut xor = XorChunk::new();
    for s in samples {
        xor.append(s.timestamp, s.value);
    }
    encode_with_xor(samples, &xor)
}

/// Like [`encode`] when the caller already holds the XOR form (a head chunk being closed).
pub fn encode_with_xor(samples: &[Sample], xor: &XorChunk) -> Vec<u8> {
    let (min_t, max_t) = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => (a.timestamp, b.timestamp),
        _ => (0, 0),
    };
    let mut xor_payload = Vec::with_capacity(xor.byte_len() + 4);
    put_uvarint(&mut xor_payload, xor.bit_len() as u64);
    xor_payload.extend_from_slice(xor.bytes());
    let (mut kind, mut payload) = (KIND_XOR, xor_payload);
    // The timestamp column and the decimal form of the values are computed once for every
    // columnar candidate.
    let values = Values::of(samples);
    let ts = timestamp_column(samples);
    if let Some(cols) = columns(&ts, &values) {
        let (k, cols) = maybe_zstd(cols);
        if cols.len() < payload.len() {
            (kind, payload) = (k, cols);
        }
    }
    if samples.len() >= SPLIT_MIN_SAMPLES
        && let Values::Decimal(e, mantissas) = &values
        && let Some(cols) = split_columns(&ts, *e, mantissas)
        && cols.len() < payload.len()
    {
        (kind, payload) = (KIND_COLUMNS, cols);
    }
    let mut out = Vec::with_capacity(payload.len() + 24);
    out.push(kind);
    out.extend_from_slice(&[0; 4]);
    put_varint(&mut out, min_t);
    put_uvarint(&mut out, max_t.wrapping_sub(min_t) as u64);
    put_uvarint(&mut out, samples.len() as u64);
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out[HEADER_FIXED..]);
    out[1..HEADER_FIXED].copy_from_slice(&crc.to_le_bytes());
    out
}

thread_local! {
    /// One zstd compression context per thread (closing head chunks, compaction): creating one
    /// per chunk showed up at ~3% of ingest CPU.
    static ZSTD_COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) fn zstd_compress(src: &[u8]) -> Option<Vec<u8>> {
    ZSTD_COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(1).ok();
        }
        slot.as_mut()?.compress(src).ok()
    })
}

fn maybe_zstd(cols: Vec<u8>) -> (u8, Vec<u8>) {
    if cols.len() >= 64
        && let Some(z) = zstd_compress(&cols)
        && z.len() * 10 < cols.len() * 9
    {
        let mut out = Vec::with_capacity(z.len() + 4);
        put_uvarint(&mut out, cols.len() as u64);
        out.extend_from_slice(&z);
        return (KIND_COLUMNS | FLAG_ZSTD, out);
    }
    (KIND_COLUMNS, cols)
}

/// The values' columnar forms: every value with the same bits, or all short decimals
/// (`m / 10^e`), or neither (XOR only).
enum Values {
    Const(u64),
    Decimal(u8, Vec<i64>),
    Other,
}

impl Values {
    fn of(samples: &[Sample]) -> Values {
        let first = samples.first().map(|s| s.value.to_bits()).unwrap_or(0);
        if samples.iter().all(|s| s.value.to_bits() == first) {
            return Values::Const(first);
        }
        match decimals(samples) {
            Some((e, m)) => Values::Decimal(e, m),
            None => Values::Other,
        }
    }
}

/// The columnar payload (values as varint deltas), or `None` when some value is not a short
/// decimal.
fn columns(ts: &[u8], values: &Values) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(ts.len() * 2 + 16);
    out.extend_from_slice(ts);
    let (e, mantissas) = match values {
        Values::Const(bits) => {
            out.push(V_CONST);
            out.extend_from_slice(&bits.to_le_bytes());
            return Some(out);
        }
        Values::Decimal(e, m) => (*e, m),
        Values::Other => return None,
    };
    let d1: Vec<i64> = mantissas.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    let d2_len: usize = d1.windows(2).map(|w| uvarint_len(zigzag(w[1].wrapping_sub(w[0])))).sum::<usize>()
        + d1.first().map_or(0, |d| uvarint_len(zigzag(*d)));
    let d1_len: usize = d1.iter().map(|d| uvarint_len(zigzag(*d))).sum();
    let use_d2 = d2_len < d1_len;
    out.push(if use_d2 { V_DELTA2 } else { V_DELTA });
    out.push(e);
    put_varint(&mut out, *mantissas.first()?);
    let mut prev = 0i64;
    for d in &d1 {
        if use_d2 {
            put_varint(&mut out, d.wrapping_sub(prev));
            prev = *d;
        } else {
            put_varint(&mut out, *d);
        }
    }
    Some(out)
}

/// The columnar payload with the value deltas in split coding (`split.rs`), trying first and
/// second differences of the decimal mantissas; `None` for fewer than two samples.
fn split_columns(ts: &[u8], e: u8, mantissas: &[i64]) -> Option<Vec<u8>> {
    let d1: Vec<i64> = mantissas.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    let d2: Vec<i64> = std::iter::once(*d1.first()?).chain(d1.windows(2).map(|w| w[1].wrapping_sub(w[0]))).collect();
    let mut best: Option<Vec<u8>> = None;
    for (order, deltas) in [(1u8, &d1), (2u8, &d2)] {
        let mut out = Vec::with_capacity(ts.len() + mantissas.len() * 2 + 32);
        out.extend_from_slice(ts);
        out.push(V_SPLIT);
        out.push(e);
        put_varint(&mut out, mantissas[0]);
        out.push(order);
        super::split::encode(deltas, &mut out);
        if best.as_ref().is_none_or(|b| out.len() < b.len()) {
            best = Some(out);
        }
    }
    best
}

/// The timestamp column: one regular delta, or zigzag delta-of-delta varints.
fn timestamp_column(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() + 8);
    let deltas: Vec<i64> = samples.windows(2).map(|w| w[1].timestamp.wrapping_sub(w[0].timestamp)).collect();
    if deltas.windows(2).all(|w| w[0] == w[1]) {
        out.push(TS_REGULAR);
        put_varint(&mut out, deltas.first().copied().unwrap_or(0));
    } else {
        out.push(TS_DOD);
        let mut prev = 0i64;
        for d in &deltas {
            put_varint(&mut out, d.wrapping_sub(prev));
            prev = *d;
        }
    }
    out
}

/// Finds one exponent `e` so that every value is exactly `m / 10^e` with integer `m`.
fn decimals(samples: &[Sample]) -> Option<(u8, Vec<i64>)> {
    let mut e: u8 = 0;
    for s in samples {
        let v = s.value;
        if !v.is_finite() {
            return None;
        }
        while e <= MAX_DECIMALS && !decimal_ok(v, e) {
            e += 1;
        }
        if e > MAX_DECIMALS {
            return None;
        }
    }
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let m = (s.value * POW10[e as usize]).round();
        if !decimal_ok(s.value, e) {
            return None;
        }
        out.push(m as i64);
    }
    Some((e, out))
}

fn decimal_ok(v: f64, e: u8) -> bool {
    let m = (v * POW10[e as usize]).round();
    m.abs() < (1u64 << 53) as f64 && from_decimal(m as i64, e).to_bits() == v.to_bits()
}

fn from_decimal(m: i64, e: u8) -> f64 {
    if e == 0 { m as f64 } else { m as f64 / POW10[e as usize] }
}

/// The start time from the header without verifying the checksum (for skipping chunks during
/// range scans; the chunk is verified when decoded).
pub fn min_t_unchecked(bytes: &[u8]) -> Option<i64> {
    ByteReader::new(bytes.get(HEADER_FIXED..)?).varint()
}

/// Reads the header (time range, count) after verifying the checksum.
pub fn meta(bytes: &[u8]) -> Result<ChunkMeta, ChunkError> {
    let (m, _, _) = header(bytes)?;
    Ok(m)
}

fn header(bytes: &[u8]) -> Result<(ChunkMeta, u8, usize), ChunkError> {
    if bytes.len() < HEADER_FIXED {
        return Err(ChunkError::Malformed("short"));
    }
    let crc = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if crc32fast::hash(&bytes[HEADER_FIXED..]) != crc {
        return Err(ChunkError::Checksum);
    }
    let mut r = ByteReader::new(&bytes[HEADER_FIXED..]);
    let bad = ChunkError::Malformed("header");
    let min_t = r.varint().ok_or(bad)?;
    let span = r.uvarint().ok_or(bad)?;
    let count = u32::try_from(r.uvarint().ok_or(bad)?).map_err(|_| bad)?;
    if count > MAX_CHUNK_SAMPLES {
        return Err(ChunkError::Malformed("sample count"));
    }
    let meta = ChunkMeta { min_t, max_t: min_t.wrapping_add(span as i64), count };
    Ok((meta, bytes[0], HEADER_FIXED + r.pos))
}

/// Rewrites the checksum of `bytes` to match its contents. For fuzzing: corrupted inputs then
/// get past the CRC and reach the decoders, which must still refuse them without panicking.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_FIXED {
        let crc = crc32fast::hash(&bytes[HEADER_FIXED..]);
        bytes[1..HEADER_FIXED].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Decodes a stored chunk (checksum verified) into its metadata and samples.
pub fn decode(bytes: &[u8]) -> Result<(ChunkMeta, Vec<Sample>), ChunkError> {
    let mut out = Vec::new();
    let meta = decode_into(bytes, i64::MIN, i64::MAX, &mut out)?;
    Ok((meta, out))
}

thread_local! {
    /// One zstd decompression context per thread: creating one per chunk cost as much as the
    /// decompression itself on small chunks.
    static ZSTD_DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) fn zstd_decompress(src: &[u8], raw_len: usize) -> Result<Vec<u8>, ChunkError> {
    ZSTD_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|_| ChunkError::Malformed("zstd context"))?);
        }
        let d = slot.as_mut().ok_or(ChunkError::Malformed("zstd context"))?;
        d.decompress(src, raw_len).map_err(|_| ChunkError::Malformed("zstd"))
    })
}

/// Decodes a stored chunk (checksum verified), appending its samples with timestamps in
/// `[start, end]` to `out`: the read path fills one buffer per series instead of one per chunk.
/// On error `out` is left as it was.
pub fn decode_into(bytes: &[u8], start: i64, end: i64, out: &mut Vec<Sample>) -> Result<ChunkMeta, ChunkError> {
    let (meta, kind, off) = header(bytes)?;
    let before = out.len();
    let r = decode_payload(kind, &bytes[off..], meta, start, end, out);
    if r.is_err() {
        // Nothing of a chunk that fails half-way is served.
        out.truncate(before);
    }
    r.map(|()| meta)
}

fn decode_payload(
    kind: u8,
    payload: &[u8],
    meta: ChunkMeta,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    let n = meta.count as usize;
    match kind {
        KIND_XOR => {
            let mut r = ByteReader::new(payload);
            let bit_len = r.uvarint().ok_or(ChunkError::Malformed("xor length"))? as usize;
            let mut seen = 0usize;
            for smp in XorIter::over(BitReader::new(r.rest(), bit_len), meta.count) {
                seen += 1;
                if smp.timestamp >= start && smp.timestamp <= end {
                    out.push(smp);
                }
            }
            if seen != n {
                return Err(ChunkError::Malformed("xor count"));
            }
            Ok(())
        }
        KIND_COLUMNS => decode_columns(payload, meta, start, end, out),
        k if k == KIND_COLUMNS | FLAG_ZSTD => {
            let mut r = ByteReader::new(payload);
            let raw_len = r.uvarint().ok_or(ChunkError::Malformed("zstd length"))? as usize;
            if raw_len > n * 40 + 64 {
                return Err(ChunkError::Malformed("zstd length"));
            }
            let raw = zstd_decompress(r.rest(), raw_len)?;
            decode_columns(&raw, meta, start, end, out)
        }
        _ => Err(ChunkError::Malformed("unknown kind")),
    }
}

fn decode_columns(
    payload: &[u8],
    meta: ChunkMeta,
    start: i64,
    end: i64,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    let n = meta.count as usize;
    let bad = |m| ChunkError::Malformed(m);
    let mut r = ByteReader::new(payload);
    let mut ts = Vec::with_capacity(n);
    if n > 0 {
        ts.push(meta.min_t);
    }
    match r.u8().ok_or(bad("ts mode"))? {
        TS_REGULAR => {
            let d = r.varint().ok_or(bad("ts delta"))?;
            for i in 1..n {
                ts.push(ts[i - 1].wrapping_add(d));
            }
        }
        TS_DOD => {
            let mut d = 0i64;
            for i in 1..n {
                d = d.wrapping_add(r.varint().ok_or(bad("ts dod"))?);
                ts.push(ts[i - 1].wrapping_add(d));
            }
        }
        _ => return Err(bad("ts mode")),
    }
    if ts.last().copied().unwrap_or(meta.max_t) != meta.max_t {
        return Err(bad("max time"));
    }
    // Timestamps ascend, so the wanted ones are one contiguous run; values before it still have
    // to be decoded (deltas), values after it do not.
    let lo = ts.partition_point(|t| *t < start);
    let hi = ts.partition_point(|t| *t <= end);
    out.reserve(hi.saturating_sub(lo));
    match r.u8().ok_or(bad("value mode"))? {
        V_CONST => {
            let v = f64::from_bits(r.u64_le().ok_or(bad("const"))?);
            out.extend(ts[lo..hi.max(lo)].iter().map(|t| Sample::new(*t, v)));
        }
        mode @ (V_DELTA | V_DELTA2 | V_SPLIT) => {
            let e = r.u8().ok_or(bad("exponent"))?;
            if e > MAX_DECIMALS {
                return Err(bad("exponent"));
            }
            let m = r.varint().ok_or(bad("mantissa"))?;
            if mode == V_SPLIT {
                let order = r.u8().ok_or(bad("delta order"))?;
                if order != 1 && order != 2 {
                    return Err(bad("delta order"));
                }
                // Split coding is not byte-aligned per number: decode every delta at once.
                let mut deltas = Vec::with_capacity(n.saturating_sub(1));
                super::split::decode(&mut r, n.saturating_sub(1), &mut deltas).map_err(bad)?;
                let mut it = deltas.into_iter();
                push_decimals(&ts[..hi], lo, e, m, order == 2, || it.next().ok_or(bad("value delta")), out)?;
            } else {
                let next = || r.varint().ok_or(bad("value delta"));
                push_decimals(&ts[..hi], lo, e, m, mode == V_DELTA2, next, out)?;
            }
        }
        _ => return Err(bad("value mode")),
    }
    Ok(())
}

/// Rebuilds the mantissas from the first one and the deltas `next_delta` yields (first
/// differences, or second differences with `second_order`), pushing the samples at `ts[lo..]`.
/// Deltas before `lo` are still consumed: each mantissa depends on all earlier ones.
fn push_decimals(
    ts: &[i64],
    lo: usize,
    e: u8,
    mut m: i64,
    second_order: bool,
    mut next_delta: impl FnMut() -> Result<i64, ChunkError>,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    let mut d = 0i64;
    for (i, t) in ts.iter().enumerate() {
        if i > 0 {
            let x = next_delta()?;
            d = if second_order { d.wrapping_add(x) } else { x };
            m = m.wrapping_add(d);
        }
        if i >= lo {
            out.push(Sample::new(*t, from_decimal(m, e)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::xor::tests::samples_strategy;
    use proptest::prelude::*;

    fn to_samples(v: &[(i64, u64)]) -> Vec<Sample> {
        v.iter().map(|(t, b)| Sample::new(*t, f64::from_bits(*b))).collect()
    }

    fn bits(v: &[Sample]) -> Vec<(i64, u64)> {
        v.iter().map(|s| (s.timestamp, s.value.to_bits())).collect()
    }

    /// Regression (fuzz/corpus/chunk_decode/huge_count.bin): a header claiming 2^32-1 samples
    /// made the columnar decoder reserve 32 GiB and abort.
    #[test]
    fn absurd_sample_counts_are_malformed() {
        let crash = include_bytes!("../../../fuzz/corpus/chunk_decode/huge_count.bin");
        let mut sealed = crash.to_vec();
        reseal(&mut sealed);
        assert_eq!(decode(&sealed).unwrap_err(), ChunkError::Malformed("sample count"));
        // The limit is far above what the store writes.
        let block: Vec<Sample> = (0..8192).map(|i| Sample::new(i * 1000, 1.0)).collect();
        assert_eq!(decode(&encode(&block)).unwrap().1.len(), 8192);
    }

    proptest! {
        #[test]
        fn chunk_round_trip(raw in samples_strategy()) {
            let samples = to_samples(&raw);
            let enc = encode(&samples);
            let (meta, got) = decode(&enc).expect("decodes");
            prop_assert_eq!(bits(&got), raw.clone());
            prop_assert_eq!(meta.count as usize, raw.len());
            if let (Some(a), Some(b)) = (raw.first(), raw.last()) {
                prop_assert_eq!((meta.min_t, meta.max_t), (a.0, b.0));
            }
        }

        #[test]
        fn decode_into_keeps_exactly_the_range(raw in samples_strategy(), a in any::<i64>(), b in any::<i64>(), pre in 0usize..3) {
            let samples = to_samples(&raw);
            let enc = encode(&samples);
            let (start, end) = match (raw.first(), raw.last()) {
                // Bounds inside (and around) the chunk's span, to hit partial ranges.
                (Some(f), Some(l)) if l.0 > f.0 => {
                    let span = (l.0 - f.0) as i128 + 3;
                    let at = |x: i64| (f.0 as i128 - 1 + (x as i128).rem_euclid(span)) as i64;
                    (at(a).min(at(b)), at(a).max(at(b)))
                }
                _ => (a.min(b), a.max(b)),
            };
            let mut out: Vec<Sample> = (0..pre).map(|i| Sample::new(i as i64, -1.0)).collect();
            decode_into(&enc, start, end, &mut out).expect("decodes");
            let want: Vec<(i64, u64)> = raw.iter().copied().filter(|(t, _)| *t >= start && *t <= end).collect();
            prop_assert_eq!(bits(&out[..pre]), vec![(0, (-1.0f64).to_bits()), (1, (-1.0f64).to_bits())][..pre].to_vec());
            prop_assert_eq!(bits(&out[pre..]), want);
        }

        #[test]
        fn a_chunk_failing_half_way_leaves_the_buffer_alone(raw in samples_strategy(), cut in any::<usize>()) {
            let mut enc = encode(&to_samples(&raw));
            // Truncate the payload and re-seal: the CRC passes, decoding runs out of bytes.
            let keep = HEADER_FIXED + 1 + cut % enc.len().saturating_sub(HEADER_FIXED).max(1);
            enc.truncate(keep.min(enc.len()));
            reseal(&mut enc);
            let mut out = vec![Sample::new(7, 7.0)];
            if decode_into(&enc, i64::MIN, i64::MAX, &mut out).is_err() {
                prop_assert_eq!(bits(&out), vec![(7, 7.0f64.to_bits())]);
            }
        }

        #[test]
        fn any_flipped_bit_is_detected(raw in samples_strategy(), pos in any::<usize>(), bit in 0u8..8) {
            let mut enc = encode(&to_samples(&raw));
            let i = pos % enc.len();
            enc[i] ^= 1 << bit;
            // Either the checksum catches it, or (a flipped kind byte) decoding fails cleanly.
            prop_assert!(decode(&enc).is_err() || i == 0);
        }
    }

    /// A compacted block shaped like a bursty byte counter (the benchmark's dominant series).
    fn byte_counter_block(n: usize, seed: u64) -> Vec<Sample> {
        let mut s = seed;
        let mut v = 1e6;
        (0..n as i64)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let inc = 15_000 + (s >> 33) % 30_000;
                v += if (s >> 20).is_multiple_of(10) { inc * 8 } else { inc } as f64;
                Sample::new(1_700_000_000_000 + i * 15_000, v)
            })
            .collect()
    }

    #[test]
    fn compacted_counter_blocks_use_split_coding() {
        let s = byte_counter_block(1440, 3);
        let enc = encode(&s);
        let (_, kind, off) = header(&enc).expect("header");
        assert_eq!(kind, KIND_COLUMNS);
        // ts mode, regular delta (15000 = 3 varint bytes), then the value mode.
        assert_eq!(enc[off + 4], V_SPLIT);
        let varints = columns(&timestamp_column(&s), &Values::of(&s)).expect("decimal").len();
        assert!(enc.len() * 100 < varints * 85, "split {} vs varints {varints}", enc.len());
        assert_eq!(bits(&decode(&enc).expect("ok").1), bits(&s));
        // Short chunks (head chunks on the ingest path) do not try it.
        let short = encode(&s[..120]);
        assert_ne!(short[header(&short).expect("header").2 + 4], V_SPLIT);
    }

    proptest! {
        #[test]
        fn long_decimal_blocks_round_trip(
            steps in proptest::collection::vec(-5000i64..50_000, 256..1500),
            e in 0u8..4,
            jitter in proptest::collection::vec(0i64..3, 256..1500),
            start in -1_000_000i64..1_000_000,
            lo in any::<u16>(),
            len in any::<u16>(),
        ) {
            let mut m = start;
            let s: Vec<Sample> = steps.iter().enumerate().map(|(i, d)| {
                m += d;
                let t = i as i64 * 15_000 + jitter.get(i).copied().unwrap_or(0);
                Sample::new(t, from_decimal(m, e))
            }).collect();
            let (meta, got) = decode(&encode(&s)).expect("decodes");
            prop_assert_eq!(meta.count as usize, s.len());
            prop_assert_eq!(bits(&got), bits(&s));
            // And a sub-range.
            let a = s[lo as usize % s.len()].timestamp;
            let b = a + len as i64 * 100;
            let mut out = Vec::new();
            decode_into(&encode(&s), a, b, &mut out).expect("decodes");
            let want: Vec<Sample> = s.iter().copied().filter(|x| x.timestamp >= a && x.timestamp <= b).collect();
            prop_assert_eq!(bits(&out), bits(&want));
        }
    }

    #[test]
    fn constant_regular_chunk_is_tiny() {
        let s: Vec<Sample> = (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 15_000, 42.0)).collect();
        let enc = encode(&s);
        assert!(enc.len() < 30, "{} bytes", enc.len());
        assert_eq!(decode(&enc).expect("ok").1, s);
    }

    #[test]
    fn decimal_counter_beats_xor() {
        let mut v = 1000.0f64;
        let s: Vec<Sample> = (0..120)
            .map(|i| {
                v += ((i * 7919) % 13) as f64 / 100.0;
                let v = (v * 100.0).round() / 100.0;
                Sample::new(i * 15_000 + (i * 31 % 5), v)
            })
            .collect();
        let mut xor = XorChunk::new();
        for x in &s {
            xor.append(x.timestamp, x.value);
        }
        let enc = encode(&s);
        assert!(enc.len() * 2 < xor.byte_len(), "columns {} vs xor {}", enc.len(), xor.byte_len());
        assert_eq!(bits(&decode(&enc).expect("ok").1), bits(&s));
    }

    #[test]
    fn stale_marker_survives_closed_chunk() {
        let s = vec![Sample::new(1, 1.0), Sample::new(2, crowsnest_wire::stale_nan()), Sample::new(3, f64::NAN)];
        let got = decode(&encode(&s)).expect("ok").1;
        assert_eq!(got[1].value.to_bits(), crowsnest_wire::STALE_NAN_BITS);
        assert_ne!(got[2].value.to_bits(), crowsnest_wire::STALE_NAN_BITS);
        assert!(got[2].value.is_nan());
    }
}
