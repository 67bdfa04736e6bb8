//! The Bourse server put together.
//!
//! [`Server::start`] takes [`Settings`] and brings the whole server up: start-up recovery of
//! the data directory (`bourse-store`), the history read model (`bourse-history`) caught up
//! with the recovered engine, the market data (`bourse-market-service`) with its feed, the
//! pipeline (`bourse-pipeline`), the default catalogue ([`catalogue`]), the liquidity provider
//! ([`liquidity`]), the HTTP and WebSocket API (`bourse-gateway`) and, when asked, the
//! embedded load generator ([`load`]); [`Server::report`] says what start-up did
//! ([`StartReport`]). [`Server::poll`] does the periodic work (snapshots through the ring)
//! and returns [`Stopped`] with the cause once the server cannot go on; [`Server::shutdown`]
//! stops it cleanly: the API first, then the ring drained, the last batch committed and a
//! final snapshot written.
//!
//! **Fail-stop.** [`Server::failure`] is the first of: the engine stopped (a journal failure
//! or a panic in the pipeline), a read model failed (its log failed, it fell behind the event
//! bus, or it panicked while holding its lock, which is then never read again), or an HTTP
//! handler, a WebSocket connection or the liquidity provider panicked. Nothing after the
//! cause is acknowledged, and a restart recovers from the journal.
//!
//! [`run`] is `bourse serve`: settings from flags > environment > TOML file > defaults
//! ([`settings`], [`Settings`] declared once with clap, `docs/serve.md`), signals, and the
//! exit codes ([`EXIT_OK`], [`EXIT_START_FAILED`], [`EXIT_CONFIG`], and
//! [`EXIT_ENGINE_STOPPED`] for any fail-stop cause). The other subcommands of the `bourse`
//! binary live here too: [`demo`], [`recover`], [`feed_sim`] and [`openapi_json`].

pub mod access;
pub mod catalogue;
mod cluster_node;
pub mod demo;
mod feed;
pub mod feed_sim;
mod join;
pub mod liquidity;
pub mod load;
mod market_tier;
pub mod recover;
mod server;
pub mod settings;

pub use server::{
    EXIT_CONFIG, EXIT_ENGINE_STOPPED, EXIT_OK, EXIT_START_FAILED, HistoryStart, Server,
    ShutdownError, StartReport, Stopped, run,
};
pub use settings::ServeConfig as Settings;

/// `bourse openapi`: the OpenAPI document exactly as `/api/v1/openapi.json` serves it (pretty
/// JSON), without starting a server; the web terminal's types are generated from it.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    bourse_gateway::router::openapi_document().to_pretty_json()
}
