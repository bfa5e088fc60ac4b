//! A runner for Prometheus' promqltest scripts (`load`, `clear`, `eval …`), as described in
//! `shared/conformance/promql-testdata/FORMAT.md` (Prometheus' `promql/promqltest/test.go`).
//! `parse` reads a script into commands, `run` executes them against our [`crate::Engine`]
//! over a [`crate::MemStorage`] and reports every eval as passed, failed or skipped.

pub mod parse;
pub mod run;

pub use parse::{Command, EvalCmd, parse_script};
pub use run::{EvalOutcome, FileReport, run_script};
