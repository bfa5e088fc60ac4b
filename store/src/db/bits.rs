//! Bit-level writer and reader for the Gorilla/XOR head chunk, plus the LEB128 varint and zigzag
//! helpers the closed-chunk and WAL codecs use. Bits are written most-significant first, like
//! Prometheus' `tsdb/chunkenc/bstream.go`.

/// Appends bits to a byte vector, MSB first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Free bits in the last byte (0 when the last byte is full or there is none).
    free: u8,
}

impl BitWriter {
    /// Rebuilds a writer from bytes produced earlier and the number of valid bits.
    pub fn from_parts(bytes: Vec<u8>, bit_len: usize) -> Option<BitWriter> {
        if bit_len > bytes.len() * 8 || bit_len + 8 <= bytes.len() * 8 {
            return None;
        }
        let free = (bytes.len() * 8 - bit_len) as u8;
        Some(BitWriter { bytes, free })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of valid bits.
    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8 - self.free as usize
    }

    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `v` (n <= 64), most significant first.
    pub fn write_bits(&mut self, v: u64, mut n: u8) {
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let chunk = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            self.free -= take;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << self.free;
            }
            n -= take;
        }
    }

    /// Releases unused capacity (head chunks are many; slack adds up).
    pub fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }
}

/// Reads bits written by [`BitWriter`].
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8], bit_len: usize) -> Self {
        BitReader { bytes, pos: 0, end: bit_len.min(bytes.len() * 8) }
    }

    pub fn read_bit(&mut self) -> Option<bool> {
        if self.pos >= self.end {
            return None;
        }
        let b = self.bytes[self.pos >> 3] >> (7 - (self.pos & 7)) & 1;
        self.pos += 1;
        Some(b == 1)
    }

    /// Reads `n` bits (n <= 64) as the low bits of a u64: one unaligned 16-byte big-endian load
    /// and two shifts instead of a loop over bytes.
    pub fn read_bits(&mut self, n: u8) -> Option<u64> {
        let n = n as usize;
        if n == 0 {
            return Some(0);
        }
        if n > 64 || self.pos + n > self.end {
            return None;
        }
        let byte = self.pos >> 3;
        let mut buf = [0u8; 16];
        let avail = (self.bytes.len() - byte).min(16);
        buf[..avail].copy_from_slice(&self.bytes[byte..byte + avail]);
        let w = u128::from_be_bytes(buf);
        let v = (w << (self.pos & 7)) >> (128 - n);
        self.pos += n;
        Some(v as u64)
    }
}

/// Zigzag-encodes a signed integer so small magnitudes become small unsigned numbers.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// Size in bytes of `v` as a varint.
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A cursor over a byte slice for the varint-based formats.
pub struct ByteReader<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes, pos: 0 }
    }

    /// Reads an unsigned varint. Most values in chunk columns fit one byte, so that case is
    /// inlined and the loop is not.
    #[inline]
    pub fn uvarint(&mut self) -> Option<u64> {
        let b = *self.bytes.get(self.pos)?;
        if b < 0x80 {
            self.pos += 1;
            return Some(u64::from(b));
        }
        self.uvarint_multi()
    }

    #[inline(never)]
    fn uvarint_multi(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            if shift >= 64 {
                return None;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
    }

    #[inline]
    pub fn varint(&mut self) -> Option<i64> {
        self.uvarint().map(unzigzag)
    }

    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub fn u64_le(&mut self) -> Option<u64> {
        let s = self.bytes.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_le_bytes(s.try_into().ok()?))
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u8..=64), 0..200)) {
            let mut w = BitWriter::default();
            for (v, n) in &items {
                w.write_bits(*v, *n);
            }
            let mut r = BitReader::new(w.bytes(), w.bit_len());
            for (v, n) in &items {
                let mask = if *n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(*n), Some(v & mask));
            }
            prop_assert_eq!(r.read_bit(), None);
        }

        #[test]
        fn varint_round_trip(v in any::<i64>(), u in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            put_uvarint(&mut out, u);
            prop_assert_eq!(uvarint_len(u), out.len() - uvarint_len(zigzag(v)));
            let mut r = ByteReader::new(&out);
            prop_assert_eq!(r.varint(), Some(v));
            prop_assert_eq!(r.uvarint(), Some(u));
            prop_assert!(r.is_empty());
        }
    }

    #[test]
    fn from_parts_checks_length() {
        let mut w = BitWriter::default();
        w.write_bits(0b101, 3);
        let again = BitWriter::from_parts(w.bytes().to_vec(), 3).expect("valid");
        assert_eq!(again, w);
        assert!(BitWriter::from_parts(vec![0, 0], 3).is_none());
        assert!(BitWriter::from_parts(vec![0], 9).is_none());
    }
}
