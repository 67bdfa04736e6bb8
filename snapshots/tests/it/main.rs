//! The snapshot crate's integration tests, one binary with a module per topic.

mod fallback;
#[cfg(unix)]
mod fork;
mod fuzz;
mod large;
mod round_trip;
mod stream;
