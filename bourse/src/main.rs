//! `bourse`: the Bourse binary. It only dispatches its subcommands to the server library
//! (`bourse-server`):
//!
//! - `bourse serve`: the server process (`bourse_server::run`; settings in `docs/serve.md`).
//! - `bourse demo` (the default): a user's first session on the engine alone.
//! - `bourse recover --data-dir DIR [--repair]`: start-up recovery of a data directory, and
//!   what it found.
//! - `bourse feed-sim --brokers HOST:PORT ...`: the exchange simulator's ticks to Kafka.

use anyhow::{Result, bail};

mod logging;

fn main() -> Result<()> {
    logging::init();
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo".to_string());
    let rest: Vec<String> = std::env::args().skip(2).collect();
    match command.as_str() {
        "demo" => bourse_server::demo::main(),
        "recover" => bourse_server::recover::main(rest.into_iter()),
        "serve" => std::process::exit(bourse_server::run(&rest)),
        "feed-sim" => bourse_server::feed_sim::main(&rest),
        "--help" | "-h" | "help" => {
            println!(
                "usage: bourse [demo | serve [--config FILE] [--KEY VALUE ...] | recover --data-dir DIR [--repair] | feed-sim --brokers HOST:PORT ...]\n\n  \
                 demo      walk through a trading session on the engine (default)\n  \
                 serve     run the server: recover, run the pipeline until SIGINT/SIGTERM, shut down\n            \
                 cleanly (`bourse serve --help` lists the settings)\n  \
                 recover   recover a data directory (snapshot + journal replay) and report\n  \
                 feed-sim  publish the exchange simulator's ticks to a Kafka topic (docs/market-data.md)"
            );
            Ok(())
        }
        other => bail!("unknown command {other:?}; try `bourse help`"),
    }
}
