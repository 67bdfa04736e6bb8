//! Benchmark harness: exchange-core's order mix ([`mix`]) and adapters that replay it into
//! Bourse's engine and two crates.io order books ([`venues`]).
//!
//! - Throughput on the mix: `cargo run --release -p bourse-benches --bin throughput`
//!   (`-- --help` for flags; `--out PATH` also writes the markdown table to a file).
//! - Micro-benchmarks: `cargo bench -p bourse-benches --bench engine_ops`.
//!
//! Shared by the binaries: [`commands`] (the mix as the Bourse commands `BourseVenue` applies,
//! for `replay_bench` and `latency`), [`disk`] (the disk's sync cost, for `journal_bench`
//! and `latency`), [`args`] (the command-line flags of the binaries) and [`report`] (the
//! formatting of their reports). The other binaries (`ws`, `cluster_ws`, `market`, `kafka`)
//! and `rest/run.sh` measure the server; `ws` and `cluster_ws` share [`serve`] (a `bourse
//! serve` process, its CPU time, set-up requests) and [`ws_orders`] (the open-loop order run
//! over WebSocket). BENCHMARKS.md has every command and figure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

pub mod args;
pub mod commands;
pub mod disk;
pub mod mix;
pub mod report;
pub mod serve;
pub mod venues;
pub mod ws_orders;
