//! The history's own log: one JSON record per event batch in a journal that is never synced.

use std::borrow::Cow;
use std::path::Path;

use bourse_journal::{
    Durability, FsStorage, Journal, JournalConfig, PrepareNext, RecoveryMode, Storage,
};
use serde::{Deserialize, Serialize};

use crate::{Entry, History};

/// One log record: the entries of a run of commands up to `through`, whose newest event
/// (kept or not) is `event_seq`. Written with the entries borrowed, read owned.
#[derive(Debug, Serialize, Deserialize)]
struct LogRecord<'a> {
    through: u64,
    event_seq: u64,
    entries: Cow<'a, [Entry]>,
}

/// The history's own log, on the journal's [`Storage`] seam (the file system by default;
/// tests inject faults with `FaultyStorage`). It is never synced, so a failed sync cannot
/// reach it; a failed append (a full disk) stops the history, and the server with it.
pub struct HistoryLog<S: Storage = FsStorage> {
    journal: Journal<S>,
    buf: Vec<u8>,
    /// The `through` of the newest record.
    through: u64,
    /// The largest record a segment holds.
    payload_len_max: usize,
    /// Opening found the log's first segments gone and started it over.
    pub start_lost: bool,
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
    ) -> Result<(HistoryLog<S>, History), String> {
        let config = JournalConfig {
            segment_size_bytes,
            durability: Durability::None,
            first_seq: 1,
            recovery: RecoveryMode::Repair,
            prepare_next,
        };
        // The log never removes a segment, so one whose first segment is not numbered 1 lost
        // the names of its first segments (it never syncs its directory, and a power loss
        // may keep a later file's name and not an earlier one's). What is left cannot be
        // folded in order: it goes, and `catch_up` rebuilds the whole history.
        let listed = storage
            .list()
            .map_err(|e| format!("cannot list the history log {}: {e}", dir.display()))?;
        let start_lost = listed
            .first()
            .is_some_and(|&first| first != config.first_seq);
        if start_lost {
            for first_seq in listed {
                storage.remove(first_seq).map_err(|e| {
                    format!(
                        "cannot remove a segment of the history log {}: {e}",
                        dir.display()
                    )
                })?;
            }
        }
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
            history.fold(decoded.through, decoded.event_seq, &decoded.entries);
        }
        drop(reader);
        Ok((
            HistoryLog {
                journal,
                buf: Vec::with_capacity(4096),
                through: history.through_seq(),
                payload_len_max: bourse_journal::format::payload_len_max(segment_size_bytes),
                start_lost,
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
            .and_then(|_| self.journal.commit().map(|_| ()))
            .map_err(|e| format!("cannot append to the history log: {e}"))?;
        self.through = self.through.max(through);
        Ok(())
    }

    fn encode(&mut self, through: u64, event_seq: u64, entries: &[Entry]) -> Result<(), String> {
        self.buf.clear();
        serde_json::to_writer(
            &mut self.buf,
            &LogRecord {
                through,
                event_seq,
                entries: Cow::Borrowed(entries),
            },
        )
        .map_err(|e| format!("cannot encode a history record: {e}"))
    }
}
