//! The head chunk: Gorilla compression (Pelkonen et al., VLDB 2015) with Prometheus' millisecond
//! delta-of-delta buckets (`tsdb/chunkenc/xor.go`: `0`, `10`+14, `110`+17, `1110`+20, `1111`+64
//! bits) and XOR-coded values. Appending one sample is O(1); values are stored bit-exactly, so the
//! staleness marker NaN stays distinct from other NaNs.

use crowsnest_wire::Sample;

use super::bits::{BitReader, BitWriter};

/// An appendable XOR chunk. Samples must be appended in strictly increasing timestamp order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XorChunk {
    buf: BitWriter,
    count: u32,
    min_t: i64,
    t: i64,
    delta: i64,
    v: u64,
    /// Leading/trailing zeros of the last XOR window; `leading == 0xff` means no window yet.
    leading: u8,
    trailing: u8,
}

fn dod_bucket(dod: i64) -> (u64, u8, u8) {
    // (prefix bits, prefix length, payload bits)
    if (-(1 << 13)..(1 << 13)).contains(&dod) {
        (0b10, 2, 14)
    } else if (-(1 << 16)..(1 << 16)).contains(&dod) {
        (0b110, 3, 17)
    } else if (-(1 << 19)..(1 << 19)).contains(&dod) {
        (0b1110, 4, 20)
    } else {
        (0b1111, 4, 64)
    }
}

impl XorChunk {
    pub fn new() -> Self {
        XorChunk { leading: 0xff, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    /// Timestamp of the newest sample (meaningless when empty).
    pub fn max_t(&self) -> i64 {
        self.t
    }

    /// The newest sample's value bits.
    pub fn last_value_bits(&self) -> u64 {
        self.v
    }

    /// Bytes of the bit stream (for sizes and snapshots).
    pub fn bytes(&self) -> &[u8] {
        self.buf.bytes()
    }

    /// Where the next append writes (for prefetching; not to be read through).
    pub fn tail_ptr(&self) -> *const u8 {
        let b = self.buf.bytes();
        b.as_ptr().wrapping_add(b.len().saturating_sub(1))
    }

    /// Valid bits in [`XorChunk::bytes`].
    pub fn bit_len(&self) -> usize {
        self.buf.bit_len()
    }

    pub fn byte_len(&self) -> usize {
        self.buf.bytes().len()
    }

    /// Appends one sample; the caller guarantees `t` is greater than [`XorChunk::max_t`].
    pub fn append(&mut self, t: i64, v: f64) {
        let bits = v.to_bits();
        match self.count {
            0 => {
                self.buf.write_bits(t as u64, 64);
                self.buf.write_bits(bits, 64);
                self.min_t = t;
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.delta);
                if dod == 0 {
                    self.buf.write_bit(false);
                } else {
                    let (prefix, plen, n) = dod_bucket(dod);
                    self.buf.write_bits(prefix, plen);
                    self.buf.write_bits(dod as u64, n);
                }
                self.delta = delta;
                self.write_value(bits);
            }
        }
        self.t = t;
        self.v = bits;
        self.count += 1;
    }

    fn write_value(&mut self, bits: u64) {
        let x = bits ^ self.v;
        if x == 0 {
            self.buf.write_bit(false);
            return;
        }
        self.buf.write_bit(true);
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            self.buf.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.buf.write_bits(x >> self.trailing, sig);
        } else {
            self.buf.write_bit(true);
            let sig = 64 - leading - trailing;
            self.buf.write_bits(leading as u64, 5);
            // 64 significant bits are written as 0 (6 bits cannot hold 64).
            self.buf.write_bits((sig & 63) as u64, 6);
            self.buf.write_bits(x >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    /// Iterates the samples in order.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::over(BitReader::new(self.buf.bytes(), self.buf.bit_len()), self.count)
    }

    /// All samples as a vector.
    pub fn samples(&self) -> Vec<Sample> {
        self.iter().collect()
    }

    /// Serialises the whole appender state (head snapshots at checkpoints).
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len() + 48);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&(self.buf.bit_len() as u64).to_le_bytes());
        for x in [self.min_t, self.t, self.delta] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&self.v.to_le_bytes());
        out.push(self.leading);
        out.push(self.trailing);
        out.extend_from_slice(self.buf.bytes());
        out
    }

    /// Inverse of [`XorChunk::to_snapshot`]; `None` when the bytes are malformed.
    pub fn from_snapshot(b: &[u8]) -> Option<XorChunk> {
        let u64_at = |i: usize| b.get(i..i + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        let count = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?);
        let bit_len = usize::try_from(u64_at(4)?).ok()?;
        let (min_t, t, delta, v) = (u64_at(12)? as i64, u64_at(20)? as i64, u64_at(28)? as i64, u64_at(36)?);
        let leading = *b.get(44)?;
        let trailing = *b.get(45)?;
        let buf = BitWriter::from_parts(b.get(46..)?.to_vec(), bit_len)?;
        let c = XorChunk { buf, count, min_t, t, delta, v, leading, trailing };
        // Verify that the stream decodes to exactly `count` samples ending at `t`.
        let mut n = 0u32;
        let mut last = None;
        for s in c.iter() {
            n += 1;
            last = Some(s.timestamp);
        }
        (n == count && (count == 0 || last == Some(t))).then_some(c)
    }

    pub fn shrink(&mut self) {
        self.buf.shrink();
    }
}

/// Decoding iterator over an [`XorChunk`].
pub struct XorIter<'a> {
    r: BitReader<'a>,
    left: u32,
    first: bool,
    t: i64,
    delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl<'a> XorIter<'a> {
    /// Iterates `count` samples of a bare XOR stream (closed chunks store it without the state).
    pub fn over(r: BitReader<'a>, count: u32) -> Self {
        XorIter { r, left: count, first: true, t: 0, delta: 0, v: 0, leading: 0, trailing: 0 }
    }

    fn next_inner(&mut self) -> Option<Sample> {
        if self.first {
            self.first = false;
            self.t = self.r.read_bits(64)? as i64;
            self.v = self.r.read_bits(64)?;
            return Some(Sample::new(self.t, f64::from_bits(self.v)));
        }
        let mut prefix = 0u8;
        while prefix < 4 && self.r.read_bit()? {
            prefix += 1;
        }
        let dod = match prefix {
            0 => 0,
            p => {
                let n = [0u8, 14, 17, 20, 64][p as usize];
                let raw = self.r.read_bits(n)?;
                if n == 64 { raw as i64 } else { ((raw << (64 - n)) as i64) >> (64 - n) }
            }
        };
        self.delta = self.delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.delta);
        if self.r.read_bit()? {
            if self.r.read_bit()? {
                let leading = self.r.read_bits(5)? as u8;
                let mut sig = self.r.read_bits(6)? as u8;
                if sig == 0 {
                    sig = 64;
                }
                // A corrupt stream can announce a window wider than 64 bits: end the stream
                // rather than overflow (found by the `chunk_decode` fuzz target).
                self.trailing = 64u8.checked_sub(leading)?.checked_sub(sig)?;
                self.leading = leading;
            }
            let sig = 64 - self.leading - self.trailing;
            let x = self.r.read_bits(sig)?;
            self.v ^= x.checked_shl(u32::from(self.trailing))?;
        }
        Some(Sample::new(self.t, f64::from_bits(self.v)))
    }
}

impl Iterator for XorIter<'_> {
    type Item = Sample;
    fn next(&mut self) -> Option<Sample> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let s = self.next_inner();
        if s.is_none() {
            self.left = 0;
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Regression (fuzz/corpus/chunk_decode/xor_wide_window.bin): a value window with 31 leading
    /// zeros and 63 significant bits overflowed `64 - leading - sig`.
    #[test]
    fn corrupt_value_window_ends_the_stream() {
        let mut w = BitWriter::default();
        w.write_bits(1000, 64);
        w.write_bits(1.5f64.to_bits(), 64);
        w.write_bit(false); // delta-of-delta 0
        w.write_bits(0b11, 2); // new window
        w.write_bits(31, 5);
        w.write_bits(63, 6);
        w.write_bits(u64::MAX, 63);
        let got: Vec<Sample> = XorIter::over(BitReader::new(w.bytes(), w.bit_len()), 2).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].timestamp, 1000);
        let crash = include_bytes!("../../../fuzz/corpus/chunk_decode/xor_wide_window.bin");
        let _ = XorChunk::from_snapshot(crash);
    }

    /// Realistic-but-wide sample streams: jittered scrape intervals, counters with resets, and
    /// special values (NaN, ±Inf, staleness markers, -0.0).
    pub fn samples_strategy() -> impl Strategy<Value = Vec<(i64, u64)>> {
        let special = prop_oneof![
            Just(f64::NAN.to_bits()),
            Just(crowsnest_wire::STALE_NAN_BITS),
            Just(f64::INFINITY.to_bits()),
            Just(f64::NEG_INFINITY.to_bits()),
            Just((-0.0f64).to_bits()),
        ];
        let step = prop_oneof![Just(15_000i64), 14_990i64..15_010, 1i64..100_000_000, Just(1i64)];
        let value = prop_oneof![
            4 => (0u32..3).prop_map(|k| k as f64),
            4 => (0i64..1_000_000).prop_map(|m| m as f64 / 100.0),
            2 => any::<f64>(),
            1 => special.prop_map(f64::from_bits),
        ];
        (any::<i32>(), proptest::collection::vec((step, value), 0..300)).prop_map(|(start, steps)| {
            let mut t = start as i64 * 1000;
            let mut counter = 0.0f64;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (step, v))| {
                    t += step;
                    // Every third series position behaves like a counter with resets.
                    let bits = if i % 3 == 0 {
                        counter = if v.to_bits() == 0 { 0.0 } else { counter + v.abs().min(1e6) };
                        if counter.is_nan() { v.to_bits() } else { counter.to_bits() }
                    } else {
                        v.to_bits()
                    };
                    (t, bits)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn xor_round_trip(samples in samples_strategy()) {
            let mut c = XorChunk::new();
            for (t, v) in &samples {
                c.append(*t, f64::from_bits(*v));
            }
            let got: Vec<(i64, u64)> = c.iter().map(|s| (s.timestamp, s.value.to_bits())).collect();
            prop_assert_eq!(&got, &samples);
            let again = XorChunk::from_snapshot(&c.to_snapshot()).expect("snapshot decodes");
            prop_assert_eq!(again, c);
        }
    }

    #[test]
    fn stale_marker_stays_distinct_from_nan() {
        let mut c = XorChunk::new();
        c.append(1, f64::NAN);
        c.append(2, crowsnest_wire::stale_nan());
        c.append(3, f64::NAN);
        let v: Vec<u64> = c.iter().map(|s| s.value.to_bits()).collect();
        assert_eq!(v, vec![f64::NAN.to_bits(), crowsnest_wire::STALE_NAN_BITS, f64::NAN.to_bits()]);
    }

    #[test]
    fn regular_constant_series_is_about_two_bits_per_sample() {
        let mut c = XorChunk::new();
        for i in 0..120 {
            c.append(i * 15_000, 1.0);
        }
        assert!(c.byte_len() < 16 + 2 + 120 * 2 / 8 + 4, "{} bytes", c.byte_len());
    }

    #[test]
    fn corrupt_snapshot_is_refused() {
        let mut c = XorChunk::new();
        c.append(1, 1.0);
        c.append(2, 2.0);
        let mut s = c.to_snapshot();
        s.truncate(s.len() - 1);
        assert!(XorChunk::from_snapshot(&s).is_none());
        assert!(XorChunk::from_snapshot(&[1, 2, 3]).is_none());
    }
}
