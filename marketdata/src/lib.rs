//! Market data of Bourse: what the central exchange's feed says, kept and summarised. No
//! threads and no sockets: the server's ingest thread (`bourse-market-service`) drives it.
//!
//! - [`Market`] ([`market`]): the state (catalogue, open candles, duplicate windows, chain
//!   heads, consumed offsets) over its logs. [`Market::open`] recovers it (checkpoint, then
//!   the tick log after it); [`Market::ingest`] applies one feed message ([`Batch`]) and says
//!   what changed ([`Applied`]); [`Market::checkpoint`] writes the state; a [`MarketReader`]
//!   answers queries by product and time. Every feed message is one tick-log record holding
//!   its partition's next offset, so a crash neither loses nor double-counts a tick (the
//!   module docs say how). Generic over the journal's `Storage`, so tests inject faults.
//! - [`tick`]: ticks, symbols and the feed's message format (`docs/market-data.md`).
//! - [`fixed`]: prices and sizes as `i64` counts of 10^-8.
//! - [`candle`]: intervals, candles and the rules that build them (alignment, empty
//!   intervals, late and out-of-order ticks, duplicates).
//! - [`catalogue`]: products and the word-prefix search index; [`record`]: the records of
//!   the tick and candle logs, chained per product; [`checkpoint`]: the state written
//!   atomically with the tick log's position ([`ProductState`]); [`sim`]: the embedded
//!   exchange simulator's random walks.

pub mod candle;
pub mod catalogue;
pub mod checkpoint;
pub mod fixed;
mod log;
pub mod market;
pub mod placement;
pub mod reader;
pub mod record;
pub mod sim;
pub mod tick;

pub use checkpoint::ProductState;
pub use log::LogReader;
pub use market::{Applied, Batch, Counters, Market, MarketConfig};
pub use reader::{MarketReader, WALK_MAX};

use std::path::{Path, PathBuf};

/// Why market data could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MarketError {
    /// A log failed.
    #[error("market-data log: {0}")]
    Journal(#[from] bourse_journal::Error),
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The checkpoint is damaged or does not fit the logs.
    #[error("market-data checkpoint: {0}")]
    Checkpoint(String),
    /// A stored record is malformed.
    #[error(transparent)]
    Record(#[from] record::RecordError),
    /// The catalogue is full.
    #[error(transparent)]
    Catalogue(#[from] catalogue::CatalogueError),
    /// An earlier error (of an ingest, a log sync or a checkpoint) stopped the market; reopen
    /// it to recover from the logs.
    #[error("market data stopped after an earlier error")]
    Failed,
}

impl MarketError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
