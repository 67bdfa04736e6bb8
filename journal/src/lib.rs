//! The journal: an append-only log of memory-mapped segment files.
//!
//! It knows bytes, not commands: each record is a sequence number and a payload. The main
//! types:
//!
//! - [`Journal`]: the single writer. [`Journal::append`] writes a record into the mapped
//!   segment, [`Journal::commit`] makes the batch durable with one sync (group commit) and
//!   returns the highest sequence number it covers, [`Journal::read_from`] gives a [`Reader`]
//!   for replay (an iterator of owned [`Record`]s, or [`Reader::next_ref`] for a [`RecordRef`]
//!   borrowing the payload from the mapped segment, with no copy),
//!   [`Journal::remove_segments_before`] is retention. The next segment file is prepared ahead
//!   of the roll that needs it ([`PrepareNext`], [`Journal::prepare_next_segment`]), so a roll
//!   inside `append` writes a header and renames a file instead of preallocating.
//! - [`JournalConfig`]: segment size, [`Durability`], [`RecoveryMode`] and [`PrepareNext`].
//! - [`Storage`] / [`SegmentMap`]: the I/O behind a trait. [`FsStorage`] is the real file
//!   system (`posix_fallocate`, `memmap2`); [`FaultyStorage`] injects ENOSPC and failed syncs.
//! - [`Error`]: typed errors; [`Error::Corruption`] names the segment file and byte offset.
//! - [`format`](mod@format): the on-disk layout, described in `journal/FORMAT.md`.
//!
//! `Durability::Durable` syncs with `msync(MS_SYNC)` of the dirty range
//! (`MmapMut::flush_range`); `journal/FORMAT.md` says why, and what a crash leaves behind.
//!
//! **Boundary:** one process writes a journal directory; nothing else may write or truncate its
//! files while it is open (the maps rely on it).
//!
//! ```
//! use bourse_journal::{FsStorage, Journal, JournalConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let config = JournalConfig { segment_size_bytes: 4096, ..JournalConfig::default() };
//! let mut journal = Journal::open(FsStorage::new(dir.path())?, config)?;
//! journal.append(1, b"hello")?;
//! journal.append(2, b"world")?;
//! assert_eq!(journal.commit()?, Some(2));
//! drop(journal);
//!
//! let journal = Journal::open(FsStorage::new(dir.path())?, config)?;
//! let payloads: Vec<Vec<u8>> =
//!     journal.read_from(1)?.map(|record| record.map(|r| r.payload)).collect::<Result<_, _>>()?;
//! assert_eq!(payloads, [b"hello".to_vec(), b"world".to_vec()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod format;
mod journal;
mod recovery;
mod storage;

pub use error::{CorruptionKind, Error, Result};
pub use format::{FORMAT_VERSION, RecordRef};
pub use journal::{
    Durability, Journal, JournalConfig, PendingCommit, Position, PositionReader, PrepareNext,
    Reader, Record, RecoveryMode, RecoveryReport, Repair, SEQ_MAX, SyncedCommit, TailCut,
};
pub use storage::{
    Faults, FaultySegment, FaultyStorage, FsSegment, FsStorage, SPARE_FILE_NAME, SegmentFill,
    SegmentMap, Storage, SyncHandle, SyncWait, segment_file_name,
};
