//! Prometheus remote_write 1.0: the protobuf messages (hand-written `prost` derives, no `protoc`),
//! snappy *block* framing (never the framed format, see prometheus/prometheus#2692), and the HTTP
//! header names and values. Spec: <https://prometheus.io/docs/specs/remote_write_spec/>.

use thiserror::Error;

use crate::labels::Label;

pub mod borrowed;

/// HTTP header names and values remote_write senders and receivers use.
pub mod headers {
    pub const CONTENT_ENCODING: &str = "Content-Encoding";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const VERSION: &str = "X-Prometheus-Remote-Write-Version";
    pub const SNAPPY: &str = "snappy";
    pub const PROTOBUF: &str = "application/x-protobuf";
    pub const VERSION_1: &str = "0.1.0";
}

/// One sample: a millisecond timestamp and a float value. Also the protobuf `prometheus.Sample`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl Sample {
    pub fn new(timestamp: i64, value: f64) -> Self {
        Sample { value, timestamp }
    }
}

/// `prometheus.TimeSeries`: one label set and its samples in timestamp order.
/// Exemplars (tag 3) and native histograms (tag 4) are not decoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    Unknown = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
    Gaugehistogram = 4,
    Summary = 5,
    Info = 6,
    Stateset = 7,
}

impl MetricType {
    /// The lower-case name the Prometheus metadata API uses.
    pub fn as_api_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Gaugehistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
        }
    }

    /// Parses the exposition format's `# TYPE` word.
    pub fn from_exposition(s: &str) -> MetricType {
        match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "gaugehistogram" => MetricType::Gaugehistogram,
            "summary" => MetricType::Summary,
            "info" => MetricType::Info,
            "stateset" => MetricType::Stateset,
            _ => MetricType::Unknown,
        }
    }
}

/// `prometheus.MetricMetadata`, sent by Prometheus alongside samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// Why a remote_write body could not be decoded. Each is the sender's fault (HTTP 400).
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("snappy decompression failed: {0}")]
    Snappy(#[from] snap::Error),
    #[error("decompressed body would be {size} bytes, above the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("protobuf decoding failed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// From the borrowing decoder ([`borrowed::WriteRequestRef`]), worded like prost's errors.
    #[error("protobuf decoding failed: failed to decode Protobuf message: {0}")]
    Proto(#[from] borrowed::ProtoError),
}

/// Decompresses a snappy block into `scratch` (grown as needed, never shrunk, so a caller that
/// keeps it pays for the allocation once) and returns the decompressed bytes. The size the header
/// announces is checked against `max_decompressed` before anything is written.
pub fn decompress_snappy<'b>(
    body: &[u8],
    max_decompressed: usize,
    scratch: &'b mut Vec<u8>,
) -> Result<&'b [u8], DecodeError> {
    let size = snap::raw::decompress_len(body)?;
    if size > max_decompressed {
        return Err(DecodeError::TooLarge { size, limit: max_decompressed });
    }
    if scratch.len() < size {
        scratch.resize(size, 0);
    }
    let n = snap::raw::Decoder::new().decompress(body, &mut scratch[..size])?;
    Ok(&scratch[..n])
}

impl WriteRequest {
    /// Encodes as a remote_write body: protobuf, then snappy block format.
    pub fn encode_snappy(&self) -> Vec<u8> {
        use prost::Message;
        let raw = self.encode_to_vec();
        // Compressing a Vec we just built cannot fail except for > 4 GiB inputs.
        snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
    }

    /// Decodes a remote_write body, refusing to decompress beyond `max_decompressed` bytes
    /// (the snappy header announces the size, so a decompression bomb is rejected up front).
    pub fn decode_snappy(body: &[u8], max_decompressed: usize) -> Result<WriteRequest, DecodeError> {
        use prost::Message;
        let size = snap::raw::decompress_len(body)?;
        if size > max_decompressed {
            return Err(DecodeError::TooLarge { size, limit: max_decompressed });
        }
        let raw = snap::raw::Decoder::new().decompress_vec(body)?;
        Ok(WriteRequest::decode(raw.as_slice())?)
    }

    /// Number of samples in the request.
    pub fn sample_count(&self) -> usize {
        self.timeseries.iter().map(|t| t.samples.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_stale_nan() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("__name__", "up"), Label::new("job", "x")],
                samples: vec![Sample::new(1000, 1.0), Sample::new(2000, crate::stale_nan())],
            }],
            metadata: vec![MetricMetadata {
                r#type: MetricType::Gauge as i32,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let body = req.encode_snappy();
        let back = WriteRequest::decode_snappy(&body, 1 << 20).unwrap();
        assert_eq!(back.timeseries[0].labels, req.timeseries[0].labels);
        assert!(crate::is_stale_nan(back.timeseries[0].samples[1].value));
        assert_eq!(back.metadata[0].metric_family_name, "up");
    }

    #[test]
    fn rejects_garbage_and_bombs() {
        assert!(WriteRequest::decode_snappy(b"\xff\xff\xff\xff\xff", 1 << 20).is_err());
        let big = WriteRequest {
            timeseries: vec![TimeSeries { labels: vec![Label::new("a", "x".repeat(10_000))], samples: vec![] }],
            metadata: vec![],
        };
        let body = big.encode_snappy();
        assert!(matches!(WriteRequest::decode_snappy(&body, 100), Err(DecodeError::TooLarge { .. })));
    }
}
