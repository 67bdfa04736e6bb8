//! Cross-crate integration tests (servers, brokers, browsers) live in `tests/it/` (one test
//! binary, a module per topic); this library holds what they, and the `bourse` binary's
//! process tests (`bourse/tests/process/`), share:
//!
//! - [`acks`]: what a server acknowledged, checked against its journal.
//! - [`workload`]: a seeded command stream that reacts to the engine's events.
//! - [`server`]: a server started in the test's process through the server library.
//! - [`process`]: a `bourse serve` process, for what needs a process boundary.
//! - [`client`]: a minimal HTTP/1.1 client, the API [`client::Client`], and comparisons.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a broken setup should fail the test at once, with its message"
)]

pub mod acks;
pub mod client;
pub mod process;
pub mod server;
pub mod workload;
