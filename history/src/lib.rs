//! The history read model: every account's orders (open and closed), trades and funds
//! movements (deposits, withdrawals, fees), derived from the engine's events. (Prices,
//! ticks and candles are the market data's: `bourse-market-service`.)
//!
//! - **Derived.** A history thread ([`HistoryHandle::spawn`]) takes every event batch from
//!   the pipeline's bus, turns the events it needs into [`Entry`]s, appends them to its own
//!   log and folds them into the in-memory [`History`]. The same fold runs when the log is
//!   read at start-up, so what a restart shows is what was shown before it.
//! - **Its own log.** `<data-dir>/history/` is a journal (the journal crate: checksummed
//!   records in memory-mapped segments) of one JSON record per event batch,
//!   `{"through": <last command seq>, "entries": [...]}` ([`HistoryLog`]). It is never
//!   synced: it is derived data, and whatever a crash or power loss takes from its tail is
//!   rebuilt.
//! - **Rebuildable from the command journal.** At start-up, after recovery, [`catch_up`]
//!   replays the command journal from the newest snapshot at or before the log's `through`
//!   (or from the journal's start) into a scratch engine and folds the events that the log
//!   lacks (by event sequence number, so nothing is folded twice). Deleting the directory
//!   rebuilds the whole history, as long as the journal reaches back to the first command or
//!   to a kept snapshot (`retention = keep`, the default, keeps every segment).
//! - **Read-your-writes.** [`HistoryHandle::read`] waits until the model has folded every
//!   event up to a given event sequence number; the endpoints ask the engine for its newest
//!   event first, so a client sees its own order in `/orders` as soon as the order was
//!   answered.
//! - **Publishing.** The crate knows nothing of WebSockets or market data: after each batch
//!   the thread calls an [`Observer`] (the API's fan-out, which also hands Bourse's fills to
//!   the market data), once with the model still write-locked and once after.
//! - **Fail-stop.** If the history thread falls more than the bus's capacity behind, it cannot
//!   know what it missed; if its log fails, or it panics while folding (with the model
//!   write-locked, so the model may be half-folded), it cannot go on either. Either way it
//!   records why ([`HistoryHandle::failure`]), the model is never read again (reads answer an
//!   error, the API's 503 `history_unavailable`), the server stops with that cause, and a
//!   restart rebuilds the history from the journal. The thread does little per event (a JSON
//!   encoding and a fold), so a lag needs a starved machine.
//!
//! Everything is kept in memory (about 200 bytes per order and per trade); paging old history
//! out to the log is left for when accounts trade that much.

mod catch_up;
mod entry;
mod handle;
pub mod log;
mod model;

pub use catch_up::catch_up;
pub use entry::{EndReason, Entry, FillTick, SideName, Tif, fill_sides};
pub use handle::{HistoryHandle, Observer, SYNC_EVERY};
pub use log::HistoryLog;
pub use model::{
    FundsKind, FundsRecord, History, Liquidity, OrderRecord, OrderStatus, Page, TradeRecord,
};

/// Subdirectory of the data directory that holds the history log.
pub const HISTORY_DIR: &str = "history";

#[cfg(test)]
mod tests;
