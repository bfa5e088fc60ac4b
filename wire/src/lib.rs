//! Wire types shared by every Crowsnest piece.
//!
//! Only standard protocols cross a seam between the collector, the store and the alerter, so the
//! types for those protocols live here and nowhere else: Prometheus remote_write 1.0
//! ([`remote`]), the Prometheus HTTP API JSON ([`api`]), the text exposition format
//! ([`exposition`]), Prometheus durations ([`duration`]), the label/matcher data model
//! ([`labels`]) and the `/metrics`, `/healthz`, `/ready` endpoints every component serves ([`ops`]).
//! The collector and alerter depend on this crate, never on the store.

pub mod api;
pub mod duration;
pub mod exposition;
pub mod labels;
pub mod ops;
pub mod remote;

pub use labels::{Label, Labels, MatchOp, Matcher};
pub use remote::{Sample, TimeSeries, WriteRequest};

/// Prometheus' staleness marker: a NaN with this exact bit pattern means "this series ended here".
/// It must be kept distinct from an ordinary NaN value all the way through storage and queries.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an `f64` (see [`STALE_NAN_BITS`]).
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is Prometheus' staleness marker rather than an ordinary NaN.
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The metric-name label.
pub const METRIC_NAME: &str = "__name__";
