//! PromQL evaluation for Crowsnest. Parsing is done by the `promql-parser` crate; evaluation is
//! ours, series by series, over the [`storage::Storage`] trait, so the same engine runs over the
//! sled store, over an in-memory storage for `crowsnest test-rules` and the conformance runner
//! ([`promqltest`], Prometheus' test-script format).

pub mod storage;

pub use storage::{LazySeries, Loader, MemStorage, Series, SeriesIter, Storage, StorageError};
pub mod engine;
mod eval;
mod functions;
mod par;
pub mod promqltest;
pub mod value;

pub use engine::{Engine, EngineOptions, Evaluated, QueryError, QueryOutput};
/// The `execution` error message of a query over `max_samples` (callers count it as a limit hit).
pub use eval::TOO_MANY_SAMPLES;
/// Threads a query uses for per-series work when not configured: the machine's cores.
pub use par::default_parallelism;
