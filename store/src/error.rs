//! What can go wrong opening, recovering or maintaining a store.

use std::path::PathBuf;

/// A store error. Every variant says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("journal: {0}")]
    Journal(#[from] bourse_journal::Error),
    #[error("snapshots: {0}")]
    Snapshot(#[from] bourse_snapshots::SnapshotError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal record {seq} is not a valid command: {reason}")]
    BadRecord { seq: u64, reason: String },
    #[error(
        "the newest usable snapshot is at seq {snapshot_seq} but the journal starts at seq \
         {journal_first}: the records in between are gone, so the state cannot be rebuilt"
    )]
    JournalStartsAfterSnapshot {
        snapshot_seq: u64,
        journal_first: u64,
    },
    #[error(
        "the newest usable snapshot is at seq {snapshot_seq} but the journal ends before it \
         (next seq {journal_next}); this happens only when a non-durable journal lost its tail \
         in a power failure; move {journal_dir} aside to start a new journal after the snapshot"
    )]
    JournalEndsBeforeSnapshot {
        snapshot_seq: u64,
        journal_next: u64,
        journal_dir: PathBuf,
    },
    #[error(
        "a snapshot at seq {seq} would cover commands not yet committed (committed: {committed:?})"
    )]
    SnapshotAheadOfJournal { seq: u64, committed: Option<u64> },
    #[error("invalid store configuration: {0}")]
    InvalidConfig(&'static str),
}

impl StoreError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
