//! A hand-written remote_write `WriteRequest` decoder that borrows label names and values from the
//! decompressed buffer and keeps every series' labels and samples in two flat vectors, so a
//! request costs a handful of allocations instead of two `String`s per label and two `Vec`s per
//! series (prost's owned decoding was ~30% of the store's ingest CPU in malloc/free).
//!
//! It accepts and rejects exactly what the prost-derived [`WriteRequest`](super::WriteRequest)
//! decoder does (the differential tests below and the `remote_write_borrowed` fuzz target hold it
//! to that): unknown fields of every wire type are skipped, groups included, under prost's
//! recursion limit of 100; a known field with the wrong wire type is an error; strings must be
//! UTF-8; truncated varints, keys and lengths are errors; for a repeated scalar field the last
//! occurrence wins. Exemplars (`TimeSeries` tag 3) and native histograms (tag 4) are skipped as
//! unknown fields, as the prost types do. Metadata (rare) is decoded into owned
//! [`MetricMetadata`].
//!
//! Each length-delimited message is decoded within its own sub-slice. prost instead reads nested
//! fields from the whole buffer and fails afterwards with "delimited length exceeded" when one
//! ran past its message's end; reading past a sub-slice's end fails too, so both reject the same
//! inputs.

use std::ops::Range;

use thiserror::Error;

use super::{DecodeError, MetricMetadata, Sample};
use crate::labels::{Label, LabelRef};

/// prost's `RECURSION_LIMIT`: nesting depth of messages and skipped groups.
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Why a protobuf body is not a valid `WriteRequest` (the sender's fault).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    #[error("invalid varint")]
    InvalidVarint,
    #[error("invalid key value: {0}")]
    InvalidKey(u64),
    #[error("invalid wire type value: {0}")]
    InvalidWireType(u8),
    #[error("invalid tag value: 0")]
    InvalidTag,
    #[error("{0}: invalid wire type: {1} (expected {2})")]
    WrongWireType(&'static str, u8, u8),
    #[error("buffer underflow")]
    BufferUnderflow,
    #[error("{0}: invalid string value: data is not UTF-8 encoded")]
    InvalidString(&'static str),
    #[error("unexpected end group tag")]
    UnexpectedEndGroup,
    #[error("recursion limit reached")]
    RecursionLimit,
}

/// One series of a [`WriteRequestRef`]: views into its flat label and sample storage.
#[derive(Debug, Clone, Copy)]
pub struct TimeSeriesRef<'r, 'a> {
    pub labels: &'r [LabelRef<'a>],
    pub samples: &'r [Sample],
}

/// A decoded `WriteRequest` whose label strings borrow the protobuf buffer.
#[derive(Debug, Default)]
pub struct WriteRequestRef<'a> {
    labels: Vec<LabelRef<'a>>,
    samples: Vec<Sample>,
    /// Per series, the end of its labels and of its samples in the flat vectors.
    series_ends: Vec<(usize, usize)>,
    pub metadata: Vec<MetricMetadata>,
}

impl<'a> WriteRequestRef<'a> {
    /// Decodes a protobuf `prometheus.WriteRequest` (already decompressed).
    pub fn decode(buf: &'a [u8]) -> Result<Self, ProtoError> {
        let mut req = WriteRequestRef {
            // Rough sizes for typical bodies (about 30 bytes per label, one sample per 250 bytes),
            // so the vectors rarely grow more than once or twice.
            labels: Vec::with_capacity(buf.len() / 32),
            samples: Vec::with_capacity(buf.len() / 256),
            series_ends: Vec::with_capacity(buf.len() / 256),
            metadata: Vec::new(),
        };
        let mut r = Reader { buf, pos: 0 };
        while !r.is_empty() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => {
                    let body = r.message("WriteRequest.timeseries", wire, RECURSION_LIMIT)?;
                    req.decode_series(body, RECURSION_LIMIT - 1)?;
                }
                3 => {
                    let body = r.message("WriteRequest.metadata", wire, RECURSION_LIMIT)?;
                    req.metadata.push(decode_metadata(body, RECURSION_LIMIT - 1)?);
                }
                _ => r.skip(wire, tag, RECURSION_LIMIT)?,
            }
        }
        Ok(req)
    }

    /// `depth` is the recursion budget of the series' fields (prost's `DecodeContext`).
    fn decode_series(&mut self, buf: &'a [u8], depth: u32) -> Result<(), ProtoError> {
        let mut r = Reader { buf, pos: 0 };
        while !r.is_empty() {
            let (tag, wire) = r.key()?;
            match tag {
                1 => {
                    let body = r.message("TimeSeries.labels", wire, depth)?;
                    self.labels.push(decode_label(body, depth - 1)?);
                }
                2 => {
                    let body = r.message("TimeSeries.samples", wire, depth)?;
                    self.samples.push(decode_sample(body, depth - 1)?);
                }
                _ => r.skip(wire, tag, depth)?,
            }
        }
        self.series_ends.push((self.labels.len(), self.samples.len()));
        Ok(())
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series_ends.is_empty()
    }

    /// Number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    fn ranges(&self, i: usize) -> (Range<usize>, Range<usize>) {
        let (l0, s0) = if i == 0 { (0, 0) } else { self.series_ends[i - 1] };
        let (l1, s1) = self.series_ends[i];
        (l0..l1, s0..s1)
    }

    /// The `i`-th series. Panics when `i >= len()`.
    pub fn series(&self, i: usize) -> TimeSeriesRef<'_, 'a> {
        let (l, s) = self.ranges(i);
        TimeSeriesRef { labels: &self.labels[l], samples: &self.samples[s] }
    }

    /// The series in request order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = TimeSeriesRef<'_, 'a>> + '_ {
        (0..self.len()).map(|i| self.series(i))
    }

    /// Decompresses a remote_write body (snappy block format, size checked before anything is
    /// written) into `scratch`, which callers keep across requests so the decompressed buffer
    /// is not allocated per request, and decodes it.
    pub fn decode_snappy(body: &[u8], max_decompressed: usize, scratch: &'a mut Vec<u8>) -> Result<Self, DecodeError> {
        let raw = super::decompress_snappy(body, max_decompressed, scratch)?;
        Ok(WriteRequestRef::decode(raw)?)
    }

    /// Copies into the owned prost types (tests, and callers that need to keep the request).
    pub fn to_owned_request(&self) -> super::WriteRequest {
        super::WriteRequest {
            timeseries: self
                .iter()
                .map(|s| super::TimeSeries {
                    labels: s.labels.iter().map(LabelRef::to_label).collect::<Vec<Label>>(),
                    samples: s.samples.to_vec(),
                })
                .collect(),
            metadata: self.metadata.clone(),
        }
    }
}

/// A label message in the form every common encoder writes (name field, then value field, one-byte
/// lengths, ASCII text, nothing else), read without the general field loop. Anything else, or
/// `None`, goes to that loop; prost reads this form to the same label.
#[inline]
fn canonical_label(buf: &[u8]) -> Option<LabelRef<'_>> {
    let (&[name_key, name_len], rest) = buf.split_first_chunk::<2>()?;
    let name_len = name_len as usize;
    if name_key != 0x0a || name_len >= 0x80 || rest.len() < name_len + 2 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let (&[value_key, value_len], value) = rest.split_first_chunk::<2>()?;
    // A length byte of 0x80 or more starts a longer varint: not this form, even when the rest of
    // the message happens to be that many bytes long.
    if value_key != 0x12
        || value_len >= 0x80
        || value.len() != value_len as usize
        || !name.is_ascii()
        || !value.is_ascii()
    {
        return None;
    }
    // SAFETY: both were just checked to be ASCII, which is valid UTF-8.
    #[allow(unsafe_code)]
    let label =
        unsafe { LabelRef { name: std::str::from_utf8_unchecked(name), value: std::str::from_utf8_unchecked(value) } };
    Some(label)
}

fn decode_label(buf: &[u8], depth: u32) -> Result<LabelRef<'_>, ProtoError> {
    if let Some(label) = canonical_label(buf) {
        return Ok(label);
    }
    let mut r = Reader { buf, pos: 0 };
    let mut label = LabelRef { name: "", value: "" };
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => label.name = r.string("Label.name", wire)?,
            2 => label.value = r.string("Label.value", wire)?,
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(label)
}

fn decode_sample(buf: &[u8], depth: u32) -> Result<Sample, ProtoError> {
    // The usual form: the value field, then the timestamp field running to the end.
    if let Some((&[0x09], rest)) = buf.split_first_chunk::<1>()
        && let Some((value, [0x10, ts @ ..])) = rest.split_first_chunk::<8>()
    {
        let mut r = Reader { buf: ts, pos: 0 };
        if let Ok(t) = r.varint()
            && r.is_empty()
        {
            return Ok(Sample { value: f64::from_bits(u64::from_le_bytes(*value)), timestamp: t as i64 });
        }
    }
    let mut r = Reader { buf, pos: 0 };
    let mut sample = Sample::default();
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => {
                expect_wire("Sample.value", wire, FIXED64)?;
                sample.value = f64::from_bits(u64::from_le_bytes(r.fixed::<8>()?));
            }
            2 => {
                expect_wire("Sample.timestamp", wire, VARINT)?;
                sample.timestamp = r.varint()? as i64;
            }
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(sample)
}

fn decode_metadata(buf: &[u8], depth: u32) -> Result<MetricMetadata, ProtoError> {
    let mut r = Reader { buf, pos: 0 };
    let mut md = MetricMetadata::default();
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match tag {
            1 => {
                expect_wire("MetricMetadata.type", wire, VARINT)?;
                md.r#type = r.varint()? as i32;
            }
            2 => md.metric_family_name = r.string("MetricMetadata.metric_family_name", wire)?.to_string(),
            4 => md.help = r.string("MetricMetadata.help", wire)?.to_string(),
            5 => md.unit = r.string("MetricMetadata.unit", wire)?.to_string(),
            _ => r.skip(wire, tag, depth)?,
        }
    }
    Ok(md)
}

fn expect_wire(field: &'static str, wire: u8, want: u8) -> Result<(), ProtoError> {
    if wire == want { Ok(()) } else { Err(ProtoError::WrongWireType(field, wire, want)) }
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// LEB128, at most 10 bytes, the 10th at most 1 (no u64 overflow), like prost.
    #[inline]
    fn varint(&mut self) -> Result<u64, ProtoError> {
        // Keys, label lengths and most lengths are one byte.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else { return Err(ProtoError::InvalidVarint) };
            self.pos += 1;
            if i == 9 && b >= 0x02 {
                return Err(ProtoError::InvalidVarint);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(ProtoError::InvalidVarint)
    }

    /// A field key: `(tag, wire type)`.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), ProtoError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(ProtoError::InvalidKey(key));
        }
        let wire = (key & 7) as u8;
        if wire > FIXED32 {
            return Err(ProtoError::InvalidWireType(wire));
        }
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return Err(ProtoError::InvalidTag);
        }
        Ok((tag, wire))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let b = self.buf.get(self.pos..self.pos + N).ok_or(ProtoError::BufferUnderflow)?;
        self.pos += N;
        // `get` returned exactly N bytes.
        b.try_into().map_err(|_| ProtoError::BufferUnderflow)
    }

    /// A length prefix and the bytes it covers.
    #[inline]
    fn length_delimited(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.varint()?;
        if len > self.remaining() as u64 {
            return Err(ProtoError::BufferUnderflow);
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// A nested message's bytes. `depth` is the budget of the field holding it; like prost, a
    /// message is refused when that budget is spent.
    #[inline]
    fn message(&mut self, field: &'static str, wire: u8, depth: u32) -> Result<&'a [u8], ProtoError> {
        expect_wire(field, wire, LENGTH_DELIMITED)?;
        if depth == 0 {
            return Err(ProtoError::RecursionLimit);
        }
        self.length_delimited()
    }

    #[inline]
    fn string(&mut self, field: &'static str, wire: u8) -> Result<&'a str, ProtoError> {
        expect_wire(field, wire, LENGTH_DELIMITED)?;
        std::str::from_utf8(self.length_delimited()?).map_err(|_| ProtoError::InvalidString(field))
    }

    /// Skips an unknown field (prost's `skip_field`, recursion budget included).
    fn skip(&mut self, wire: u8, tag: u32, depth: u32) -> Result<(), ProtoError> {
        if depth == 0 {
            return Err(ProtoError::RecursionLimit);
        }
        let len = match wire {
            VARINT => self.varint().map(|_| 0)?,
            FIXED64 => 8,
            FIXED32 => 4,
            LENGTH_DELIMITED => self.varint()?,
            START_GROUP => loop {
                let (inner_tag, inner_wire) = self.key()?;
                if inner_wire == END_GROUP {
                    if inner_tag != tag {
                        return Err(ProtoError::UnexpectedEndGroup);
                    }
                    break 0;
                }
                self.skip(inner_wire, inner_tag, depth - 1)?;
            },
            _ => return Err(ProtoError::UnexpectedEndGroup),
        };
        if len > self.remaining() as u64 {
            return Err(ProtoError::BufferUnderflow);
        }
        self.pos += len as usize;
        Ok(())
    }
}

#[cfg(test)]
#[path = "borrowed_tests.rs"]
mod tests;
