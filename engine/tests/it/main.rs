//! The engine's integration tests: one binary, a module per topic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod determinism;
mod differential;
mod properties;
mod spec;
mod support;
