//! Split coding of an integer stream (the value deltas of a compacted block): each number is
//! mapped to an unsigned `u` (zigzag, or offset from the block's minimum), divided by the
//! stream's common factor, and cut at bit `k` into a low part, stored bit-packed, and a high part,
//! stored as bytes (or varints) and zstd-compressed.
//!
//! Why: counter increments and gauge steps are close to uniform over a range (a byte counter
//! grows by 15,000–45,000 per scrape, with bursts). Varints spend whole bytes and a continuation
//! bit per 7 (3 bytes for those increments), and zstd cannot squeeze the near-random low bytes.
//! The low `k` bits of such numbers carry ~`k` bits of entropy, so packing them raw costs nothing
//! extra, while the few high bits are skewed (mostly 0 or 1, the bursts larger) and entropy-code
//! well. On the benchmark workload this stores value columns ~14% smaller than varints + zstd
//! (BENCHMARKS.md). Page-multiple memory gauges have every step divisible by 4096: the common
//! factor takes those 12 bits off.
//!
//! Layout: `map u8 (0 zigzag | 1 offset) | [varint base] | uvarint factor | k u8 |
//! low bits (ceil(n*k/8) bytes, LSB first) | high kind u8 | uvarint raw_len | [uvarint zlen] | high`.

use super::bits::{ByteReader, put_uvarint, put_varint, unzigzag, zigzag};
use super::chunk::{zstd_compress, zstd_decompress};

const MAP_ZIGZAG: u8 = 0;
const MAP_OFFSET: u8 = 1;
const HIGH_BYTES: u8 = 0;
const HIGH_BYTES_ZSTD: u8 = 1;
const HIGH_VARINTS: u8 = 2;
const HIGH_VARINTS_ZSTD: u8 = 3;
/// Guess of what a zstd frame and its Huffman table add, for choosing `k`.
const HIGH_OVERHEAD: f64 = 24.0;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Encodes `xs` (wrapping arithmetic; any i64 values) and appends it to `out`.
pub fn encode(xs: &[i64], out: &mut Vec<u8>) {
    // Common factor of the numbers (0 when all are 0).
    let g = xs.iter().fold(0u64, |g, x| gcd(g, x.unsigned_abs()));
    let factor = if g > 1 && g <= i64::MAX as u64 { g as i64 } else { 1 };
    let scaled: Vec<i64> = xs.iter().map(|x| x / factor).collect();
    // Offset from the minimum suits all-positive increments (no sign bit); zigzag suits steps
    // around zero. Pick by the bit width each needs.
    let min = scaled.iter().copied().min().unwrap_or(0);
    let max = scaled.iter().copied().max().unwrap_or(0);
    let zz_bits = scaled.iter().map(|x| zigzag(*x)).max().map_or(0, |u| 64 - u.leading_zeros());
    let off_bits = 64 - (max.wrapping_sub(min) as u64).leading_zeros();
    let offset = off_bits < zz_bits;
    let us: Vec<u64> = if offset {
        scaled.iter().map(|x| x.wrapping_sub(min) as u64).collect()
    } else {
        scaled.iter().map(|x| zigzag(*x)).collect()
    };
    let width = if offset { off_bits } else { zz_bits };
    let k = best_cut(&us, width);

    if offset {
        out.push(MAP_OFFSET);
        put_varint(out, min);
    } else {
        out.push(MAP_ZIGZAG);
    }
    put_uvarint(out, factor as u64);
    out.push(k);
    pack_low(&us, k, out);
    let high: Vec<u64> = us.iter().map(|u| if k >= 64 { 0 } else { u >> k }).collect();
    let (kind, raw) = if high.iter().all(|h| *h < 256) {
        (HIGH_BYTES, high.iter().map(|h| *h as u8).collect::<Vec<u8>>())
    } else {
        let mut v = Vec::with_capacity(high.len() * 2);
        for h in &high {
            put_uvarint(&mut v, *h);
        }
        (HIGH_VARINTS, v)
    };
    put_uvarint(out, raw.len() as u64);
    match zstd_compress(&raw).filter(|z| z.len() + 2 < raw.len()) {
        Some(z) => {
            out.push(kind + 1);
            put_uvarint(out, z.len() as u64);
            out.extend_from_slice(&z);
        }
        None => {
            out.push(kind);
            out.extend_from_slice(&raw);
        }
    }
}

/// The cut `k` that minimises packed low bits plus the estimated entropy-coded high part.
/// Only cuts leaving high parts under 2^9 are tried: wider high parts code no better than varints.
fn best_cut(us: &[u64], width: u32) -> u8 {
    let n = us.len() as f64;
    let mut best = (f64::INFINITY, width as u8);
    let mut counts = vec![0u32; 512];
    for k in width.saturating_sub(9)..=width {
        counts.iter_mut().for_each(|c| *c = 0);
        for u in us {
            let h = if k >= 64 { 0 } else { u >> k };
            counts[(h as usize).min(511)] += 1;
        }
        let bits: f64 = counts.iter().filter(|c| **c > 0).map(|c| -(*c as f64) * (*c as f64 / n).log2()).sum();
        let distinct = counts.iter().filter(|c| **c > 0).count();
        let high = if distinct <= 1 { 2.0 } else { bits / 8.0 + HIGH_OVERHEAD + distinct as f64 / 2.0 };
        let cost = n * k as f64 / 8.0 + high;
        if cost < best.0 {
            best = (cost, k as u8);
        }
    }
    best.1
}

fn pack_low(us: &[u64], k: u8, out: &mut Vec<u8>) {
    if k == 0 {
        return;
    }
    let mask = if k >= 64 { u64::MAX } else { (1u64 << k) - 1 };
    let mut acc: u128 = 0;
    let mut nbits = 0u32;
    for u in us {
        acc |= ((u & mask) as u128) << nbits;
        nbits += k as u32;
        while nbits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            nbits -= 8;
        }
    }
    if nbits > 0 {
        out.push(acc as u8);
    }
}

/// Decodes `n` numbers written by [`encode`], appending them to `out`. Refuses (never panics on)
/// malformed input.
pub fn decode(r: &mut ByteReader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), &'static str> {
    let map = r.u8().ok_or("split map")?;
    let base = match map {
        MAP_ZIGZAG => 0,
        MAP_OFFSET => r.varint().ok_or("split base")?,
        _ => return Err("split map"),
    };
    let factor = r.uvarint().ok_or("split factor")?;
    let factor = i64::try_from(factor).map_err(|_| "split factor")?;
    let k = r.u8().ok_or("split cut")?;
    if k > 64 {
        return Err("split cut");
    }
    let low_len = (n * k as usize).div_ceil(8);
    let low = r.take(low_len).ok_or("split low bits")?;
    let raw_len = usize::try_from(r.uvarint().ok_or("split high length")?).map_err(|_| "split high length")?;
    if raw_len > n * 10 + 16 {
        return Err("split high length");
    }
    let kind = r.u8().ok_or("split high kind")?;
    let decompressed;
    let raw: &[u8] = match kind {
        HIGH_BYTES | HIGH_VARINTS => r.take(raw_len).ok_or("split high")?,
        HIGH_BYTES_ZSTD | HIGH_VARINTS_ZSTD => {
            let zlen = usize::try_from(r.uvarint().ok_or("split high length")?).map_err(|_| "split high length")?;
            let z = r.take(zlen).ok_or("split high")?;
            decompressed = zstd_decompress(z, raw_len).map_err(|_| "split high zstd")?;
            if decompressed.len() != raw_len {
                return Err("split high length");
            }
            &decompressed
        }
        _ => return Err("split high kind"),
    };
    let varints = kind == HIGH_VARINTS || kind == HIGH_VARINTS_ZSTD;
    if !varints && raw.len() != n {
        return Err("split high count");
    }
    let mut hr = ByteReader::new(raw);
    let mask = if k >= 64 { u64::MAX } else { (1u64 << k) - 1 };
    let mut acc: u128 = 0;
    let mut nbits = 0u32;
    let mut pos = 0usize;
    out.reserve(n);
    let mut high_bytes = raw.iter();
    for _ in 0..n {
        while nbits < k as u32 {
            acc |= (low[pos] as u128) << nbits;
            pos += 1;
            nbits += 8;
        }
        let lo = acc as u64 & mask;
        if k > 0 {
            acc >>= k;
            nbits -= k as u32;
        }
        let hi =
            if varints { hr.uvarint().ok_or("split high")? } else { *high_bytes.next().ok_or("split high")? as u64 };
        let u = if k >= 64 { lo } else { lo | hi.wrapping_shl(k as u32) };
        let x = if map == MAP_OFFSET { base.wrapping_add(u as i64) } else { unzigzag(u) };
        out.push(x.wrapping_mul(factor));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(xs: &[i64]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(xs, &mut buf);
        let mut got = Vec::new();
        decode(&mut ByteReader::new(&buf), xs.len(), &mut got).expect("decodes");
        assert_eq!(got, xs);
        buf
    }

    #[test]
    fn extremes_round_trip() {
        round_trip(&[]);
        round_trip(&[0]);
        round_trip(&[i64::MIN, i64::MAX, 0, -1, 1]);
        round_trip(&[i64::MIN; 5]);
        round_trip(&[i64::MAX, i64::MAX - 4096]);
        round_trip(&[-4096, 8192, 0, 4096 * 1000]);
    }

    #[test]
    fn counter_increments_pack_below_varints() {
        // Increments uniform over 15,000–45,000 with 10% bursts x8: varints need 3 bytes each.
        let mut s = 42u64;
        let xs: Vec<i64> = (0..1440)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let base = 15_000 + (s >> 33) as i64 % 30_000;
                if (s >> 20).is_multiple_of(10) { base * 8 } else { base }
            })
            .collect();
        let n = round_trip(&xs).len();
        assert!(n < 1440 * 9 / 4, "{n} bytes for 1440 increments (varints: 4320)");
    }

    #[test]
    fn common_factor_is_taken_out() {
        let xs: Vec<i64> = (0..1000).map(|i| ((i * 7919) % 2001 - 1000) * 4096).collect();
        let n = round_trip(&xs).len();
        // 11 bits each plus the tiny high part, not the 23 bits the raw steps need.
        assert!(n < 1000 * 12 / 8 + 64, "{n} bytes");
    }

    #[test]
    fn malformed_input_is_refused() {
        let mut buf = Vec::new();
        encode(&[1, 2, 3, 400, 5000], &mut buf);
        for cut in 0..buf.len() {
            let mut got = Vec::new();
            assert!(decode(&mut ByteReader::new(&buf[..cut]), 5, &mut got).is_err(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[0] = 9;
        assert_eq!(decode(&mut ByteReader::new(&bad), 5, &mut Vec::new()), Err("split map"));
    }

    proptest! {
        #[test]
        fn any_stream_round_trips(xs in proptest::collection::vec(any::<i64>(), 0..300)) {
            round_trip(&xs);
        }

        #[test]
        fn small_steps_round_trip(xs in proptest::collection::vec(-3000i64..3000, 0..2000), f in 1i64..5000) {
            let xs: Vec<i64> = xs.iter().map(|x| x * f).collect();
            round_trip(&xs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), n in 0usize..300) {
            let _ = decode(&mut ByteReader::new(&bytes), n, &mut Vec::new());
        }
    }
}
