//! The snapshot crate's integration tests, one binary with a module per topic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod fallback;
#[cfg(unix)]
mod fork;
mod fuzz;
mod large;
mod round_trip;
mod stream;
mod v1;
