//! The Prometheus HTTP API's JSON: the `{status, data, errorType, error, warnings, infos}` envelope,
//! error types with their HTTP statuses, query results (`vector`, `matrix`, `scalar`, `string`) and
//! the number encodings clients parse strictly (values as strings: `"NaN"`, `"+Inf"`; timestamps as
//! float seconds). Mirrors `web/api/v1/api.go` and `json_codec.go` in prometheus/prometheus.
//! Both serialize (store, alerter) and deserialize (alerter's query client, tests).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// `status` of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
}

/// Prometheus' `errorType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    BadData,
    Execution,
    Canceled,
    Timeout,
    Internal,
    Unavailable,
    NotFound,
    NotAcceptable,
}

impl ErrorType {
    /// The HTTP status Prometheus answers with for this error type.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorType::BadData => 400,
            ErrorType::Execution => 422,
            ErrorType::Canceled => 499,
            ErrorType::Timeout => 503,
            ErrorType::Internal => 500,
            ErrorType::Unavailable => 503,
            ErrorType::NotFound => 404,
            ErrorType::NotAcceptable => 406,
        }
    }
}

/// The response envelope of every `/api/v1` endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub status: Status,
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(rename = "errorType", default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub infos: Vec<String>,
}

impl<T> Envelope<T> {
    pub fn success(data: T) -> Self {
        Envelope {
            status: Status::Success,
            data: Some(data),
            error_type: None,
            error: None,
            warnings: vec![],
            infos: vec![],
        }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>, infos: Vec<String>) -> Self {
        self.warnings = warnings;
        self.infos = infos;
        self
    }

    pub fn error(kind: ErrorType, message: impl Into<String>) -> Self {
        Envelope {
            status: Status::Error,
            data: None,
            error_type: Some(kind),
            error: Some(message.into()),
            warnings: vec![],
            infos: vec![],
        }
    }
}

/// A millisecond timestamp that serializes as Prometheus' float seconds (`1435781451.781`, or an
/// integer when whole) and deserializes from a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 { s.serialize_i64(self.0 / 1000) } else { s.serialize_f64(self.0 as f64 / 1000.0) }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = f64::deserialize(d)?;
        Ok(Timestamp((f * 1000.0).round() as i64))
    }
}

/// Formats a float the way Prometheus does in API answers (`util/jsonutil.MarshalFloat`): Go's
/// shortest round-trip digits, in `'f'` form, switching to `'e'` form (`1e+21`, `1e-07`) when
/// `|v| < 1e-6` or `|v| >= 1e21`; and `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_value(&mut out, v);
    out
}

/// [`format_value`] into any writer (the answer serialiser formats into a stack buffer).
pub fn write_value(w: &mut impl fmt::Write, v: f64) -> fmt::Result {
    if v.is_nan() {
        return w.write_str("NaN");
    }
    if v == f64::INFINITY {
        return w.write_str("+Inf");
    }
    if v == f64::NEG_INFINITY {
        return w.write_str("-Inf");
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` gives the same shortest digits as Go's -1 precision, but writes the
        // exponent bare (`1e21`, `1e-7`); Go writes a sign and at least two digits.
        let s = format!("{v:e}");
        if let Some((mantissa, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return write!(w, "{mantissa}e{sign}{digits:0>2}");
        }
        return w.write_str(&s);
    }
    write!(w, "{v}")
}

/// Parses a Prometheus value string (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`, `"1e3"`).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// One `[timestamp, "value"]` pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Timestamp(self.t))?;
        seq.serialize_element(&ValueStr(self.v))?;
        seq.end()
    }
}

/// A sample value serialised as [`format_value`]'s string, formatted on the stack: a range query
/// answer holds thousands of them, and one `String` each showed up in profiles.
struct ValueStr(f64);

impl Serialize for ValueStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = StackText::default();
        if write_value(&mut buf, self.0).is_ok() {
            return s.serialize_str(buf.as_str());
        }
        // Longer than the buffer (`f64::MAX` in plain notation cannot occur, but stay safe).
        s.serialize_str(&format_value(self.0))
    }
}

/// A small fixed buffer for [`fmt::Write`]; writing past its end fails (callers fall back).
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText { buf: [0; 64], len: 0 }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the prefix is UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Point;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [timestamp, \"value\"] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Point, A::Error> {
                let t: Timestamp = a.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let v: String = a.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let v = parse_value(&v).ok_or_else(|| de::Error::custom(format!("bad sample value {v:?}")))?;
                Ok(Point { t: t.0, v })
            }
        }
        d.deserialize_seq(V)
    }
}

/// A metric's labels as a JSON object.
pub type Metric = BTreeMap<String, String>;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorSample {
    pub metric: Metric,
    pub value: Point,
}

/// One series of a range-query matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSeries {
    pub metric: Metric,
    pub values: Vec<Point>,
}

/// `[timestamp, "string"]` for string results.
#[derive(Debug, Clone, PartialEq)]
pub struct StringPoint {
    pub t: i64,
    pub v: String,
}

impl Serialize for StringPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Timestamp(self.t))?;
        seq.serialize_element(&self.v)?;
        seq.end()
    }
}

impl<'de> Deserialize<'de> for StringPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (t, v): (Timestamp, String) = Deserialize::deserialize(d)?;
        Ok(StringPoint { t: t.0, v })
    }
}

/// `data` of `/api/v1/query` and `/api/v1/query_range`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
    Scalar(Point),
    String(StringPoint),
}

/// `data` of `/api/v1/status/buildinfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack-formatted value equals `format_value` everywhere, including both ends of the
    /// plain range and the values that fall back.
    #[test]
    fn point_values_serialise_like_format_value() {
        let mut vals = vec![
            0.0,
            -0.0,
            1.0,
            -2.5,
            1e-6,
            9.999_999_999_999e-7,
            1e21,
            9.999_999_999_999_999e20,
            -123_456_789_012_345_680_000.0,
            0.1 + 0.2,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            crate::stale_nan(),
        ];
        let mut x = 1.234_567_890_123_456_7e-8;
        for _ in 0..40 {
            vals.push(x);
            vals.push(-x / 3.0);
            x *= 7.3;
        }
        for v in vals {
            let got = serde_json::to_string(&Point { t: 1, v }).unwrap();
            assert_eq!(got, format!("[0.001,\"{}\"]", format_value(v)), "{v:e}");
        }
    }

    #[test]
    fn envelope_shapes() {
        let e: Envelope<()> = Envelope::error(ErrorType::BadData, "invalid parameter \"query\"");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\""}"#
        );
        let ok = Envelope::success(QueryData::Scalar(Point { t: 4000, v: 2.0 }));
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
        );
    }

    #[test]
    fn values_and_timestamps() {
        let p = Point { t: 1_435_781_451_781, v: f64::NAN };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"[1435781451.781,"NaN"]"#);
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1e+21");
        assert_eq!(format_value(-1.5e300), "-1.5e+300");
        assert_eq!(format_value(1e-7), "1e-07");
        assert_eq!(format_value(1.234e-6), "0.000001234");
        assert_eq!(format_value(123456789012345680000.0), "123456789012345680000");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(-0.0), "-0");
        let back: Point = serde_json::from_str(r#"[1435781451.781,"+Inf"]"#).unwrap();
        assert_eq!(back.t, 1_435_781_451_781);
        assert_eq!(back.v, f64::INFINITY);
    }

    #[test]
    fn query_data_round_trip() {
        let d = QueryData::Vector(vec![VectorSample {
            metric: Metric::from([("a".into(), "b".into())]),
            value: Point { t: 1000, v: 1.5 },
        }]);
        let s = serde_json::to_string(&d).unwrap();
        assert_eq!(s, r#"{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"1.5"]}]}"#);
        assert_eq!(serde_json::from_str::<QueryData>(&s).unwrap(), d);
    }
}
