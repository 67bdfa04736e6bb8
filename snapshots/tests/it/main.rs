//! The snapshot crate's integration tests, one binary with a module per topic.

mod fallback;
mod fuzz;
mod round_trip;
mod stream;
