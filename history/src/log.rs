//! The history's own log: one JSON record per event batch in a journal synced now and then
//! ([`HistoryLog::sync`]), so that the command journal's retention knows what it may retire.

use std::borrow::Cow;
use std::path::Path;

use bourse_journal::{
    Durability, FsStorage, Journal, JournalConfig, PrepareNext, RecoveryMode, Storage,
};
use serde::{Deserialize, Serialize};

use crate::{Entry, History};

/// One log record: the entries of a run of commands up to `through`, whose newest event
/// (kept or not) is `event_seq`, written when the log went up to event `after`. Written with
/// the entries borrowed, read owned.
#[derive(Debug, Serialize, Deserialize)]
struct LogRecord<'a> {
    through: u64,
    event_seq: u64,
    /// The log's newest event before this record (absent in logs written before it was
    /// added): a record that does not follow the one before it was left by another life of
    /// the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    entries: Cow<'a, [Entry]>,
}

/// The history's own log, on the journal's [`Storage`] seam (the file system by default;
/// tests inject faults with `FaultyStorage`). Appends are not synced; [`HistoryLog::sync`]
/// makes everything appended durable (the history thread calls it about once a second) and
/// says through which command. A failed append or sync (a full disk, EIO) stops the
/// history, and the server with it.
pub struct HistoryLog<S: Storage = FsStorage> {
    journal: Journal<S>,
    buf: Vec<u8>,
    /// The `through` of the newest record.
    through: u64,
    /// The newest event of the log.
    event_seq: u64,
    /// The largest record a segment holds.
    payload_len_max: usize,
    /// Opening found records that are not one history (a power loss kept the names or pages
    /// of two lives of the log) and started it over.
    pub started_over: bool,
}

impl HistoryLog {
    /// Opens (or creates) the log in `dir` and folds it into a new [`History`].
    pub fn open(dir: &Path) -> Result<(HistoryLog, History), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let storage = FsStorage::new(dir)
            .map_err(|e| format!("cannot open the history log {}: {e}", dir.display()))?;
        HistoryLog::open_with_storage(dir, storage, SEGMENT_BYTES, PrepareNext::Background)
    }
}

/// The size of the log's segment files.
pub const SEGMENT_BYTES: u64 = 16 << 20;

impl<S: Storage> HistoryLog<S> {
    /// Opens (or creates) the log on `storage` (whose files are `dir`'s, named in errors) and
    /// folds it into a new [`History`].
    ///
    /// The server prepares each next segment on a background thread
    /// ([`PrepareNext::Background`]); the simulator, which runs in one thread, asks for
    /// [`PrepareNext::Manual`].
    pub fn open_with_storage(
        dir: &Path,
        storage: S,
        segment_size_bytes: u64,
        prepare_next: PrepareNext,
    ) -> Result<(HistoryLog<S>, History), String>
    where
        S: Clone,
    {
        let config = JournalConfig {
            segment_size_bytes,
            // Durable, for `sync`; `append` itself commits nothing.
            durability: Durability::Durable,
            first_seq: 1,
            recovery: RecoveryMode::Repair,
            prepare_next,
        };
        // Between syncs a power loss may leave a mix of the log's lives (before and after a
        // repair or a start-over): a later segment's name without an earlier one's, or
        // records of one life after those of another. The log never removes a segment, so
        // the first must be numbered 1; and each record must follow the one before it.
        // Otherwise it goes, and `catch_up` rebuilds the history.
        let listed = storage
            .list()
            .map_err(|e| format!("cannot list the history log {}: {e}", dir.display()))?;
        let mut started_over = false;
        if listed
            .first()
            .is_some_and(|&first| first != config.first_seq)
        {
            started_over = true;
            remove_all(dir, &storage)?;
        }
        let (journal, history) = match fold(dir, storage.clone(), config)? {
            Some(folded) => folded,
            None => {
                started_over = true;
                remove_all(dir, &storage)?;
                fold(dir, storage, config)?.ok_or_else(|| {
                    format!("the history log {} did not start over", dir.display())
                })?
            }
        };
        Ok((
            HistoryLog {
                journal,
                buf: Vec::with_capacity(4096),
                through: history.through_seq(),
                event_seq: history.event_seq(),
                payload_len_max: bourse_journal::format::payload_len_max(segment_size_bytes),
                started_over,
            },
            history,
        ))
    }

    /// Appends the entries of the commands up to `through` (see [`History::fold`]).
    ///
    /// Entries too many for one record (a segment) go in several: all but the last say they
    /// cover only what the log covered before (`through` is a lower bound), and end at their
    /// own newest entry. Only a single entry larger than a segment is refused.
    pub fn append(
        &mut self,
        through: u64,
        event_seq: u64,
        entries: &[Entry],
    ) -> Result<(), String> {
        self.encode(through, event_seq, entries)?;
        if self.buf.len() > self.payload_len_max && entries.len() > 1 {
            let (first, rest) = entries.split_at(entries.len() / 2);
            let first_event_seq = first.last().map_or(0, Entry::seq);
            self.append(self.through, first_event_seq, first)?;
            return self.append(through, event_seq, rest);
        }
        let seq = self.journal.next_seq();
        self.journal
            .append(seq, &self.buf)
            .map_err(|e| format!("cannot append to the history log: {e}"))?;
        self.through = self.through.max(through);
        self.event_seq = self.event_seq.max(event_seq);
        Ok(())
    }

    /// Makes everything appended durable (one sync) and returns the command it covers
    /// through: after a crash the log holds at least the history up to there. A failed sync
    /// stops the log.
    pub fn sync(&mut self) -> Result<u64, String> {
        self.journal
            .commit()
            .map_err(|e| format!("cannot sync the history log: {e}"))?;
        Ok(self.through)
    }

    /// Starts a sync of everything appended whose wait another thread takes
    /// ([`bourse_journal::PendingCommit::sync`]), so that the history thread does not stall
    /// on the disk; hand the result to [`HistoryLog::finish_sync`]. Also returns the command
    /// the sync covers through. Appends go on meanwhile; one sync at a time.
    pub fn start_sync(&mut self) -> Result<(bourse_journal::PendingCommit, u64), String> {
        let pending = self
            .journal
            .start_commit()
            .map_err(|e| format!("cannot sync the history log: {e}"))?;
        Ok((pending, self.through))
    }

    /// Ends a sync [`HistoryLog::start_sync`] started; a failed one stops the log.
    pub fn finish_sync(&mut self, synced: bourse_journal::SyncedCommit) -> Result<(), String> {
        self.journal
            .finish_commit(synced)
            .map(drop)
            .map_err(|e| format!("cannot sync the history log: {e}"))
    }

    /// The command the appended records cover through.
    pub fn through(&self) -> u64 {
        self.through
    }

    fn encode(&mut self, through: u64, event_seq: u64, entries: &[Entry]) -> Result<(), String> {
        self.buf.clear();
        serde_json::to_writer(
            &mut self.buf,
            &LogRecord {
                through,
                event_seq,
                after: Some(self.event_seq),
                entries: Cow::Borrowed(entries),
            },
        )
        .map_err(|e| format!("cannot encode a history record: {e}"))
    }
}

/// Opens the log and folds it; `None` if a record does not follow the one before it.
fn fold<S: Storage>(
    dir: &Path,
    storage: S,
    config: JournalConfig,
) -> Result<Option<(Journal<S>, History)>, String> {
    let journal = Journal::open(storage, config)
        .map_err(|e| format!("cannot open the history log {}: {e}", dir.display()))?;
    let mut history = History::default();
    let mut reader = journal
        .read_from(journal.first_seq())
        .map_err(|e| format!("cannot read the history log: {e}"))?;
    while let Some(record) = reader.next_ref() {
        let record = record.map_err(|e| format!("cannot read the history log: {e}"))?;
        let decoded: LogRecord = serde_json::from_slice(record.payload)
            .map_err(|e| format!("history log record {} does not decode: {e}", record.seq))?;
        if decoded
            .after
            .is_some_and(|after| after != history.event_seq())
        {
            return Ok(None);
        }
        history.fold(decoded.through, decoded.event_seq, &decoded.entries);
    }
    drop(reader);
    Ok(Some((journal, history)))
}

/// Deletes every segment of the log.
fn remove_all<S: Storage>(dir: &Path, storage: &S) -> Result<(), String> {
    let listed = storage
        .list()
        .map_err(|e| format!("cannot list the history log {}: {e}", dir.display()))?;
    for first_seq in listed {
        storage.remove(first_seq).map_err(|e| {
            format!(
                "cannot remove a segment of the history log {}: {e}",
                dir.display()
            )
        })?;
    }
    Ok(())
}
