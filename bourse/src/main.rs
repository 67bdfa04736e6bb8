//! `bourse`: the Bourse binary. It only dispatches its subcommands to the server library
//! (`bourse-server`):
//!
//! - `bourse serve`: the server process (`bourse_server::run`; settings in `docs/serve.md`).
//! - `bourse demo` (the default): a user's first session on the engine alone.
//! - `bourse recover --data-dir DIR [--repair]`: start-up recovery of a data directory, and
//!   what it found.
//! - `bourse feed-sim --brokers HOST:PORT ...`: the exchange simulator's ticks to Kafka.
//! - `bourse openapi`: the API's OpenAPI document on stdout (`bourse_server::openapi_json`).

use anyhow::Result;
use clap::{Parser, Subcommand};

mod logging;

/// Bourse, a trading platform core.
#[derive(Parser)]
#[command(name = "bourse")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Walk through a trading session on the engine (the default)
    Demo,
    /// Run the server: recover, run the pipeline until SIGINT/SIGTERM, shut down cleanly
    /// (`bourse serve --help` lists the settings)
    #[command(disable_help_flag = true)]
    Serve {
        /// The settings, read by the server with the environment and the configuration file
        /// (its --help lists them)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        settings: Vec<String>,
    },
    /// Recover a data directory (snapshot + journal replay) and report
    Recover(bourse_server::recover::RecoverArgs),
    /// Publish the exchange simulator's ticks to a Kafka topic (docs/market-data.md)
    FeedSim(bourse_server::feed_sim::FeedSimArgs),
    /// Print the API's OpenAPI document (as served at /api/v1/openapi.json) to stdout
    Openapi,
}

fn main() -> Result<()> {
    logging::init();
    match Cli::parse().command.unwrap_or(Command::Demo) {
        Command::Demo => bourse_server::demo::main(),
        Command::Serve { settings } => std::process::exit(bourse_server::run(&settings)),
        Command::Recover(args) => bourse_server::recover::main(args),
        Command::FeedSim(args) => bourse_server::feed_sim::main(args),
        Command::Openapi => {
            println!("{}", bourse_server::openapi_json()?);
            Ok(())
        }
    }
}
