//! The process's log: `tracing` events (every library crate logs through `tracing`) written
//! by `tracing-subscriber`'s `fmt` layer to standard error, so standard output stays the
//! program's own (`--ack-log -`, `bourse recover`'s report, `bourse demo`). The level comes
//! from `RUST_LOG` (`EnvFilter` syntax, e.g. `RUST_LOG=debug` or `bourse_feed=debug`),
//! `info` when it is unset or does not parse; colours only when standard error is a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; called once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Fails only if a subscriber is installed already, and then that one logs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
