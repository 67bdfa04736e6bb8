//! The `bourse` binary's process tests: what needs a process boundary. The binary is the one
//! cargo built for these tests (`CARGO_BIN_EXE_bourse`); everything else runs in-process in
//! `tests/tests/it/`.
//!
//! - [`lifecycle`]: SIGKILL under load loses nothing acknowledged; SIGTERM drains, commits
//!   and snapshots; a taken port and a bad setting fail the start with their exit codes.
//! - [`failstop`]: a panic in a server thread stops `bourse serve` with exit code 70.
//! - [`cluster`]: three `bourse serve --cluster kafka` nodes on a tansu broker: requests
//!   round-robin, SIGKILL rounds, a broker restart, a diverging replica.
//! - [`kafka`]: a real tansu broker feeding the server, across a SIGKILL and a broker outage;
//!   `bourse feed-sim` publishing what a server consumes.
//! - [`fx`]: exchange rates on the same feed; candles converted at the rate of their time,
//!   against a reference from the raw ticks, across a restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod cluster;
mod failstop;
mod fx;
mod fx_records;
mod kafka;
mod lifecycle;

use std::path::Path;

use bourse_tests::process::Server;

/// The binary under test.
pub const BOURSE: &str = env!("CARGO_BIN_EXE_bourse");

/// `bourse serve` ([`BOURSE`]) on `dir` without feed and liquidity provider.
pub fn start(dir: &Path, args: &[&str]) -> Server {
    Server::start(Path::new(BOURSE), dir, args)
}

/// `bourse serve` ([`BOURSE`]) on `dir` with its market data.
pub fn start_with_market(dir: &Path, args: &[&str]) -> Server {
    Server::start_with_market(Path::new(BOURSE), dir, args)
}
