//! Benchmark harness: exchange-core's order mix ([`mix`]) and adapters that replay it into
//! Bourse's engine and two crates.io order books ([`venues`]).
//!
//! - Throughput on the mix: `cargo run --release -p bourse-benches --bin throughput`
//!   (`-- --help` for flags; `--out PATH` also writes the markdown table to a file).
//! - Micro-benchmarks: `cargo bench -p bourse-benches --bench engine_ops`.

pub mod mix;
pub mod venues;
