//! Crowsnest's alerter: Prometheus rule files evaluated over the Prometheus HTTP API, and an
//! Alertmanager-compatible notification pipeline (routing, grouping, inhibition, silences,
//! Slack and e-mail delivery).
//!
//! The two halves meet at [`alert::AlertSink`]: the rule evaluator hands firing and resolved
//! alerts to a sink exactly as Prometheus posts them to Alertmanager, so either half can be
//! replaced by the real thing.

pub mod alert;
pub mod api;
pub mod config;
pub mod eval;
pub mod notify;
pub mod persist;
pub mod rules;
pub mod service;
pub mod state;
pub mod template;
pub mod unittest;
