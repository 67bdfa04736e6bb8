//! The engine's integration tests: one binary, a module per topic.

mod determinism;
mod differential;
mod properties;
mod spec;
mod support;
