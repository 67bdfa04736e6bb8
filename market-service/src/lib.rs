//! Market data in the server: [`MarketService::start`] runs one ingest thread that owns the
//! [`Market`] (behind a lock that readers share, [`MarketService::read`]) and takes
//! [`Input`]s from the sources over one bounded channel: the embedded simulator
//! ([`MarketService::start_simulator`]) or the Kafka consumer
//! ([`MarketService::start_kafka`], `bourse-feed`, parsing on its own thread), and Bourse's
//! own trades from the history thread ([`Input::Bourse`]). It applies each message, then
//! tells a [`Publisher`] (the API's fan-out) while still holding the write lock, so that a
//! subscription (a snapshot taken under the read lock) is followed by exactly the updates
//! after it. [`MarketStats`] are its counters for `/metrics`.
//!
//! A malformed feed message is counted by kind, logged once per kind, and skipped (its offset
//! is still taken, so it is not read again). A failure of the market (its logs failing, a
//! panic while applying) is fail-stop: the thread records why
//! ([`MarketService::failure`]), the market is never read again (reads answer an error, the
//! API's 503), and the server stops with that cause.
//!
//! [`units`] turns the engine's integers into decimals per product ([`ProductUnits`]) and
//! Bourse's fills into ticks ([`bourse_ticks`]); [`catch_up_bourse`] hands the market data the
//! fills it missed at start-up.
//!
//! **Boundary:** the crate knows nothing of HTTP, WebSockets or JSON; the sources are threads
//! of their own, and the only way in for Bourse's own trades is [`Input::Bourse`].

mod bourse;
mod service;
pub mod units;

pub use bourse::{catch_up_bourse, engine_products};
pub use bourse_marketdata::{Applied, Market};
pub use service::{Input, MarketService, MarketStats, Publisher};
pub use units::{ProductUnits, UnitsCache, amount, bourse_ticks, units_of};

/// Unix time in ms.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Unix time in µs.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
