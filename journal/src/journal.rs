//! The writer: append, group commit, roll, open with recovery, read, retention.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{CorruptionKind, Error, Result};
use crate::format::{
    HEADER_LEN, RECORD_HEADER_LEN, RecordRef, SEGMENT_SIZE_MAX, SEGMENT_SIZE_MIN, SegmentHeader,
    clear_commit_mark, decode_commit_mark, decode_record, encode_commit_mark, encode_header,
    encode_record, payload_len_max, record_len,
};
use crate::recovery::{check_header, is_zero, nonzero_end, scan_segment, valid_records_after};
use crate::storage::{SegmentMap, Storage, SyncHandle, SyncWait};

/// Sequence numbers stay below this (so "the next one" always exists).
pub const SEQ_MAX: u64 = u64::MAX;

/// What `commit` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `commit` returns once the appended bytes are on stable storage: `msync(MS_SYNC)` of the
    /// dirty range of the mapped segment (see FORMAT.md, "Durability").
    Durable,
    /// `commit` starts writeback (`msync(MS_ASYNC)`) and returns; survives a process crash,
    /// not a power loss.
    Async,
    /// `commit` syncs nothing; the page cache writes back when it likes.
    None,
}

/// What `open` does with damage that is not a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Refuse with [`Error::Corruption`], cutting nothing.
    Refuse,
    /// Cut at the damage, delete what follows, and say so in [`RecoveryReport::repair`].
    Repair,
}

/// How the next segment file is prepared (created, preallocated, mapped) before a roll needs
/// it, so that the roll inside `append` only writes a header and renames a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepareNext {
    /// A background thread prepares the spare after `open` and after every roll.
    Background,
    /// Only [`Journal::prepare_next_segment`] prepares it; a roll without a spare creates the
    /// segment itself, on the append path.
    Manual,
}

/// How a journal is laid out and synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalConfig {
    /// Size of each segment file; a multiple of 8 in
    /// `SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX`. Only used for new segments.
    pub segment_size_bytes: u64,
    /// What `commit` waits for.
    pub durability: Durability,
    /// The first sequence number of a journal created empty (at least 1).
    pub first_seq: u64,
    /// What `open` does with damage in the middle.
    pub recovery: RecoveryMode,
    /// How the next segment is prepared.
    pub prepare_next: PrepareNext,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            segment_size_bytes: 64 << 20,
            durability: Durability::Durable,
            first_seq: 1,
            recovery: RecoveryMode::Refuse,
            prepare_next: PrepareNext::Background,
        }
    }
}

impl JournalConfig {
    fn validate(&self) -> Result<()> {
        let size = self.segment_size_bytes;
        if !(SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX).contains(&size) || !size.is_multiple_of(8) {
            return Err(Error::InvalidConfig(
                "segment_size_bytes must be a multiple of 8 within SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX",
            ));
        }
        if self.first_seq == 0 || self.first_seq == SEQ_MAX {
            return Err(Error::InvalidConfig("first_seq must be in 1..SEQ_MAX"));
        }
        Ok(())
    }
}

/// What `open` found and cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A torn tail cut off the last segment.
    pub torn_tail: Option<TailCut>,
    /// Damage cut in [`RecoveryMode::Repair`].
    pub repair: Option<Repair>,
    /// A last segment with no valid header and no valid record (a roll the crash interrupted),
    /// deleted: its first sequence number.
    pub blank_segment_removed: Option<u64>,
    /// A spare segment file (prepared ahead of a roll, never live) was found and deleted.
    pub spare_removed: bool,
}

/// A torn tail cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCut {
    /// The segment file.
    pub path: PathBuf,
    /// Where the valid records end (the writer goes on from here).
    pub offset: u64,
    /// How many bytes after `offset` were not zero (and are now).
    pub bytes_cut: u64,
    /// Valid records found after `offset` and cut with the rest: a crash during a commit can
    /// leave later pages on disk and not earlier ones. Each was numbered at or above the
    /// segment's commit mark, so none had been acknowledged (FORMAT.md, "Recovery rules").
    pub records_cut: u64,
}

/// Damage cut by [`RecoveryMode::Repair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The segment file with the damage.
    pub path: PathBuf,
    /// Byte offset of the damage in that file.
    pub offset: u64,
    /// What was wrong there.
    pub kind: CorruptionKind,
    /// The last sequence number kept, if any.
    pub last_kept_seq: Option<u64>,
    /// Sequence numbers lost: from the one after `last_kept_seq` to the highest valid record
    /// seen after the damage.
    pub records_dropped: u64,
    /// Whole segment files deleted.
    pub segments_removed: usize,
}

/// Where a record lies: the segment (named by its first sequence number) and the byte offset
/// of the record in it. [`Journal::append`] returns it; [`PositionReader::read_at`] reads the
/// record back without scanning, which lets a caller chain records (each holding the position
/// of an earlier one) into per-key lists inside one journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The first sequence number of the segment.
    pub segment: u64,
    /// The byte offset of the record's header in the segment file.
    pub offset: u64,
}

/// Reads records at [`Position`]s, from any thread, independently of the writer: it maps the
/// segment files itself (keeping the last few mapped). A record is read only after the
/// writer's `append` returned its position (the caller publishes positions with the usual
/// happens-before, e.g. a lock), so the bytes read are never being written.
pub struct PositionReader<S: Storage> {
    storage: S,
    maps: Vec<(u64, S::Segment)>,
}

/// Segments a [`PositionReader`] keeps mapped.
const POSITION_READER_MAPS: usize = 8;

impl<S: Storage> std::fmt::Debug for PositionReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PositionReader")
            .field(
                "mapped",
                &self.maps.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S: Storage> PositionReader<S> {
    /// A reader over the segments of `storage` (the writer's directory).
    pub fn new(storage: S) -> Self {
        Self {
            storage,
            maps: Vec::new(),
        }
    }

    /// The record at `position`, checked (checksum, bounds) like any read. A position that was
    /// never returned by `append`, or whose segment was removed, gives an error, never a panic.
    pub fn read_at(&mut self, position: Position) -> Result<RecordRef<'_>> {
        let index = match self.maps.iter().position(|(s, _)| *s == position.segment) {
            Some(index) => index,
            None => {
                let segment = self.storage.open(position.segment).map_err(|source| {
                    io_error(
                        "open segment",
                        self.storage.segment_path(position.segment),
                        source,
                    )
                })?;
                if self.maps.len() == POSITION_READER_MAPS {
                    self.maps.remove(0);
                }
                self.maps.push((position.segment, segment));
                self.maps.len() - 1
            }
        };
        let bytes = self.maps[index].1.bytes();
        let offset = usize::try_from(position.offset).unwrap_or(usize::MAX);
        let corruption = |kind| Error::Corruption {
            path: self.storage.segment_path(position.segment),
            offset: position.offset,
            kind,
        };
        if offset < HEADER_LEN {
            return Err(corruption(CorruptionKind::Record(
                crate::format::RecordError::HeaderTruncated,
            )));
        }
        decode_record(bytes.get(offset..).unwrap_or(&[]))
            .map_err(|error| corruption(CorruptionKind::Record(error)))
    }

    /// Unmaps the segments that come before `segment` (retired by retention).
    pub fn forget_before(&mut self, segment: u64) {
        self.maps.retain(|(s, _)| *s >= segment);
    }
}

/// A record read back, owning its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The sequence number.
    pub seq: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The append-only journal: one writer over a directory of segments.
#[derive(Debug)]
pub struct Journal<S: Storage> {
    storage: Arc<S>,
    /// The next segment, prepared ahead of the roll that needs it.
    spare: Option<Spare<S::Segment>>,
    config: JournalConfig,
    /// First sequence numbers of the retained segments; the last is `current`.
    segment_first_seqs: Vec<u64>,
    current: S::Segment,
    write_offset: usize,
    /// Bytes of `current` from here to `write_offset` are not synced yet.
    dirty_start: usize,
    dir_dirty: bool,
    next_seq: u64,
    committed_seq: Option<u64>,
    /// Where the bytes of a deferred commit begin in `current`, while one is out (see
    /// [`Journal::start_commit`]); a roll makes them durable with the rest of the segment.
    in_flight: Option<usize>,
    /// The commit mark in `current`'s header (FORMAT.md): written in `Durable` mode only.
    mark: Option<u64>,
    stopped: Option<String>,
    recovery: RecoveryReport,
}

/// A commit whose sync runs away from the journal: [`Journal::start_commit`] hands it out,
/// any thread calls [`PendingCommit::sync`], and [`Journal::finish_commit`] takes the result.
///
/// This is group commit split in two, so that the writer keeps appending (and the caller
/// keeps working) while the disk syncs; what was appended meanwhile goes into the next one.
#[must_use = "a pending commit makes nothing durable until it is synced and finished"]
pub struct PendingCommit {
    through: Option<u64>,
    segment: Option<(SyncHandle, PathBuf)>,
    dir: Option<(DirSync, PathBuf)>,
}

/// Syncs the journal directory (after a segment was created).
type DirSync = Box<dyn Fn() -> io::Result<()> + Send>;

impl std::fmt::Debug for PendingCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCommit")
            .field("through", &self.through)
            .field("segment", &self.segment.as_ref().map(|(_, path)| path))
            .field("dir", &self.dir.as_ref().map(|(_, path)| path))
            .finish()
    }
}

impl PendingCommit {
    /// The highest sequence number it covers (`None` if the journal holds no record).
    pub fn through(&self) -> Option<u64> {
        self.through
    }

    /// Whether [`PendingCommit::sync`] has any I/O to do.
    pub fn needs_sync(&self) -> bool {
        self.segment.is_some() || self.dir.is_some()
    }

    /// Makes the covered records durable (the segment's data, then the directory if a
    /// segment was created); blocks for the disk. Callable from any thread.
    pub fn sync(self) -> SyncedCommit {
        let result = (|| {
            if let Some((sync, path)) = &self.segment {
                sync().map_err(|source| io_error("sync segment", path.clone(), source))?;
            }
            if let Some((sync, path)) = &self.dir {
                sync().map_err(|source| io_error("sync directory", path.clone(), source))?;
            }
            Ok(())
        })();
        SyncedCommit {
            through: self.through,
            result,
        }
    }
}

/// The outcome of [`PendingCommit::sync`], for [`Journal::finish_commit`].
#[derive(Debug)]
#[must_use = "the journal learns of the sync only through finish_commit"]
pub struct SyncedCommit {
    through: Option<u64>,
    result: Result<()>,
}

/// A spare segment being prepared or ready (or what went wrong preparing it).
#[derive(Debug)]
enum Spare<G> {
    Pending(JoinHandle<io::Result<G>>),
    Done(io::Result<G>),
}

/// Name of the thread that prepares spares.
const SPARE_THREAD_NAME: &str = "bourse-journal-spare";

/// What the first pass of `open` learnt.
struct Survey {
    /// Segments that stay, with where their valid records end.
    kept: Vec<Kept>,
    problem: Option<Problem>,
    blank_last: Option<u64>,
    /// Valid records after a torn tail (written out of order, never acknowledged).
    records_after_tear: u64,
}

#[derive(Clone, Copy)]
struct Kept {
    first_seq: u64,
    end_offset: usize,
    next_seq: u64,
}

struct Problem {
    index: usize,
    offset: usize,
    kind: CorruptionKind,
}

impl<S: Storage> Journal<S> {
    /// Opens the journal in `storage`, creating its first segment if there is none.
    ///
    /// A torn tail of the last segment is cut (see [`RecoveryReport::torn_tail`]); any other
    /// damage is refused with [`Error::Corruption`], or cut in [`RecoveryMode::Repair`].
    pub fn open(storage: S, config: JournalConfig) -> Result<Self> {
        config.validate()?;
        // A spare is never live: whatever a crash left of one goes.
        let spare_removed = storage
            .remove_spare()
            .map_err(|source| io_error("remove spare segment", storage.spare_path(), source))?;
        let listed = storage
            .list()
            .map_err(|source| io_error("list segments in", dir_of(&storage), source))?;
        let mut survey = survey(&storage, &listed)?;
        let mut recovery = RecoveryReport {
            blank_segment_removed: survey.blank_last,
            spare_removed,
            ..RecoveryReport::default()
        };
        if let Some(first_seq) = survey.blank_last {
            remove_segment(&storage, first_seq)?;
        }
        if let Some(problem) = survey.problem.take() {
            let path = storage.segment_path(listed[problem.index]);
            if config.recovery == RecoveryMode::Refuse {
                return Err(Error::Corruption {
                    path,
                    offset: problem.offset as u64,
                    kind: problem.kind,
                });
            }
            recovery.repair = Some(repair(&storage, &listed, &survey.kept, problem)?);
        }
        let first_seq_if_empty = listed.first().copied().unwrap_or(config.first_seq);
        let mut journal = match survey.kept.last().copied() {
            Some(last) => Self::resume(
                storage,
                config,
                &survey.kept,
                (last, survey.records_after_tear),
                &mut recovery,
            )?,
            None => Self::create_empty(storage, config, first_seq_if_empty)?,
        };
        journal.recovery = recovery;
        journal.start_preparing();
        Ok(journal)
    }

    fn resume(
        storage: S,
        config: JournalConfig,
        kept: &[Kept],
        (last, records_cut): (Kept, u64),
        recovery: &mut RecoveryReport,
    ) -> Result<Self> {
        let path = storage.segment_path(last.first_seq);
        let mut current = storage
            .open(last.first_seq)
            .map_err(|source| io_error("open segment", path.clone(), source))?;
        let cut_end = nonzero_end(current.bytes(), last.end_offset);
        if cut_end > last.end_offset && recovery.repair.is_none() {
            recovery.torn_tail = Some(TailCut {
                path: path.clone(),
                offset: last.end_offset as u64,
                bytes_cut: (cut_end - last.end_offset) as u64,
                records_cut,
            });
        }
        let mut mark = decode_commit_mark(current.bytes());
        if mark.is_some_and(|below| below > last.next_seq) {
            // A repair cut records below the mark: the numbers it named will be reused. The
            // segments before this one are durable in `Durable` mode (each roll synced them).
            mark = (config.durability == Durability::Durable).then_some(last.first_seq);
            match mark {
                Some(below) => encode_commit_mark(below, current.bytes_mut()),
                None => clear_commit_mark(current.bytes_mut()),
            }
        }
        // Stale bytes after the cut must go: a later record shorter than them would leave
        // what looks like damage (or, after a repair, old valid records) behind it.
        current.bytes_mut()[last.end_offset..cut_end].fill(0);
        let mut journal = Self {
            storage: Arc::new(storage),
            spare: None,
            config,
            segment_first_seqs: kept.iter().map(|segment| segment.first_seq).collect(),
            current,
            write_offset: last.end_offset,
            dirty_start: 0,
            dir_dirty: true,
            next_seq: last.next_seq,
            committed_seq: None,
            in_flight: None,
            mark,
            stopped: None,
            recovery: RecoveryReport::default(),
        };
        // What survived a process crash may still be only in the page cache: make it durable
        // before anyone is told it is.
        let sync_end = cut_end.max(last.end_offset);
        journal.sync_pending(0..sync_end)?;
        // What open cut is made durable in every mode: undone by a later crash, it would bring
        // the records it cut back behind the ones written after it, two lives of the log in
        // one (found by the simulator in the never-synced history and market-data logs).
        let cut = cut_end > last.end_offset
            || recovery.repair.is_some()
            || recovery.blank_segment_removed.is_some();
        if cut && journal.config.durability != Durability::Durable {
            journal
                .current
                .sync(0..sync_end, SyncWait::Durable)
                .map_err(|source| io_error("sync segment", path.clone(), source))?;
            let dir = dir_of(&*journal.storage);
            journal
                .storage
                .sync_dir()
                .map_err(|source| io_error("sync directory", dir, source))?;
        }
        journal.committed_seq = journal.last_seq();
        Ok(journal)
    }

    fn create_empty(storage: S, config: JournalConfig, first_seq: u64) -> Result<Self> {
        let current = create_segment(&storage, &config, first_seq)?;
        let mark = decode_commit_mark(current.bytes());
        let mut journal = Self {
            storage: Arc::new(storage),
            spare: None,
            config,
            segment_first_seqs: vec![first_seq],
            current,
            write_offset: HEADER_LEN,
            dirty_start: 0,
            dir_dirty: true,
            next_seq: first_seq,
            committed_seq: None,
            in_flight: None,
            mark,
            stopped: None,
            recovery: RecoveryReport::default(),
        };
        journal.sync_pending(0..HEADER_LEN)?;
        Ok(journal)
    }

    /// Appends a record and returns where it lies (for [`PositionReader`]). `seq` must be
    /// [`Journal::next_seq`]. Not durable until [`Journal::commit`].
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> Result<Position> {
        self.check_running()?;
        if seq != self.next_seq {
            return Err(Error::SequenceOutOfOrder {
                expected: self.next_seq,
                found: seq,
            });
        }
        if seq == SEQ_MAX {
            return Err(Error::SequenceExhausted);
        }
        let payload_len_max = payload_len_max(self.config.segment_size_bytes);
        if payload.len() > payload_len_max {
            return Err(Error::RecordTooLarge {
                payload_len: payload.len(),
                payload_len_max,
            });
        }
        let len = record_len(payload.len());
        if self.write_offset + len > self.current.bytes().len() {
            self.roll()?;
        }
        let range = self.write_offset..self.write_offset + len;
        encode_record(seq, payload, &mut self.current.bytes_mut()[range.clone()]);
        debug_assert!(decode_record(&self.current.bytes()[range.start..]).is_ok());
        self.write_offset = range.end;
        self.next_seq += 1;
        Ok(Position {
            segment: self.current_first_seq(),
            offset: range.start as u64,
        })
    }

    /// Makes everything appended so far durable under the configured [`Durability`] (one
    /// sync for the whole batch) and returns the highest sequence number it covers, `None` if
    /// the journal holds no record. After a failed sync the journal is stopped.
    ///
    /// Refused with [`Error::CommitInFlight`] while a deferred commit is out.
    pub fn commit(&mut self) -> Result<Option<u64>> {
        self.check_running()?;
        if self.in_flight.is_some() {
            return Err(Error::CommitInFlight);
        }
        self.sync_pending(self.dirty_start..self.write_offset)?;
        self.committed_seq = self.last_seq();
        Ok(self.committed_seq)
    }

    /// Starts a commit of everything appended so far whose sync the caller runs elsewhere
    /// ([`PendingCommit::sync`], on any thread), then hands back with
    /// [`Journal::finish_commit`]. Meanwhile appends go on; they belong to the next commit.
    /// One deferred commit at a time ([`Error::CommitInFlight`] otherwise).
    ///
    /// Only [`Durability::Durable`] defers anything: in the other modes this does what
    /// `commit` does now and the pending commit has nothing to sync.
    pub fn start_commit(&mut self) -> Result<PendingCommit> {
        self.check_running()?;
        if self.in_flight.is_some() {
            return Err(Error::CommitInFlight);
        }
        let through = self.last_seq();
        if self.config.durability != Durability::Durable {
            self.sync_pending(self.dirty_start..self.write_offset)?;
            self.in_flight = Some(self.write_offset);
            return Ok(PendingCommit {
                through,
                segment: None,
                dir: None,
            });
        }
        if self.dirty_start < self.write_offset {
            // The file's sync below covers the header too.
            self.advance_mark();
        }
        let segment = (self.dirty_start < self.write_offset).then(|| {
            let first_seq = self.current_first_seq();
            (
                self.current.sync_handle(),
                self.storage.segment_path(first_seq),
            )
        });
        let dir = self.dir_dirty.then(|| {
            let storage = Arc::clone(&self.storage);
            let sync: DirSync = Box::new(move || storage.sync_dir());
            (sync, dir_of(&*self.storage))
        });
        self.in_flight = Some(self.dirty_start);
        self.dirty_start = self.write_offset;
        self.dir_dirty = false;
        Ok(PendingCommit {
            through,
            segment,
            dir,
        })
    }

    /// Ends a deferred commit: on success the records it covers are committed and the highest
    /// committed sequence number is returned; a failed sync stops the journal (as in
    /// [`Journal::commit`]) and is returned.
    pub fn finish_commit(&mut self, synced: SyncedCommit) -> Result<Option<u64>> {
        self.in_flight = None;
        if let Err(error) = synced.result {
            if self.stopped.is_none() {
                self.stopped = Some(error.to_string());
            }
            return Err(error);
        }
        self.check_running()?;
        if synced.through > self.committed_seq {
            self.committed_seq = synced.through;
        }
        Ok(self.committed_seq)
    }

    /// Whether a deferred commit is out.
    pub fn commit_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts a new segment; in `Durable` mode the old one is synced first, so a segment file
    /// exists only once every segment before it is complete on disk.
    ///
    /// With a spare ready this writes its header and renames it; otherwise (none prepared, or
    /// preparing it failed) it creates the segment here, so a full disk is reported now, as
    /// the error of this `append`.
    fn roll(&mut self) -> Result<()> {
        // A deferred commit's bytes count as not yet durable: they are synced here too.
        let start = self
            .in_flight
            .map_or(self.dirty_start, |start| start.min(self.dirty_start));
        self.sync_pending(start..self.write_offset)?;
        if self.in_flight.is_some() {
            self.in_flight = Some(HEADER_LEN);
        }
        let first_seq = self.next_seq;
        let current = match self.take_spare() {
            Some(Ok(spare)) => self.activate_spare(spare, first_seq)?,
            Some(Err(_)) | None => create_segment(&*self.storage, &self.config, first_seq)?,
        };
        self.current = current;
        self.mark = decode_commit_mark(self.current.bytes());
        self.segment_first_seqs.push(first_seq);
        self.write_offset = HEADER_LEN;
        self.dirty_start = 0;
        self.dir_dirty = true;
        // The header (and the directory entry) reach the disk before any record of this
        // segment: a last segment whose header does not read then holds nothing written
        // (a crash in this roll) or was damaged, never a torn write of acknowledged records.
        self.sync_pending(0..HEADER_LEN)?;
        self.start_preparing();
        Ok(())
    }

    /// Makes the spare the segment `first_seq`: header, then rename. On failure the spare is
    /// deleted.
    fn activate_spare(&self, mut spare: S::Segment, first_seq: u64) -> Result<S::Segment> {
        debug_assert!(
            is_zero(&spare.bytes()[..HEADER_LEN]),
            "a spare is zero-filled"
        );
        let header = SegmentHeader {
            first_seq,
            segment_size: self.config.segment_size_bytes,
        };
        encode_header(header, spare.bytes_mut());
        if self.config.durability == Durability::Durable {
            // The roll synced every segment before this one.
            encode_commit_mark(first_seq, spare.bytes_mut());
        }
        match self.storage.activate_spare(first_seq) {
            Ok(()) => Ok(spare),
            Err(source) => {
                drop(spare);
                // Best effort: the error that matters is the one returned.
                let _ = self.storage.remove_spare();
                Err(io_error(
                    "activate segment",
                    self.storage.segment_path(first_seq),
                    source,
                ))
            }
        }
    }

    /// Prepares the next segment now (creates, preallocates and maps the spare) unless one is
    /// ready, waiting for a background preparation in progress. Call it off the hot path, e.g.
    /// when idle; with [`PrepareNext::Background`] it is not needed.
    ///
    /// A failure (e.g. ENOSPC) is returned and loses nothing: the next roll tries again to
    /// create the segment and reports the error then, if the disk is still full.
    pub fn prepare_next_segment(&mut self) -> Result<()> {
        self.check_running()?;
        if let Some(Ok(spare)) = self.take_spare() {
            self.spare = Some(Spare::Done(Ok(spare)));
            return Ok(());
        }
        let spare = self
            .storage
            .create_spare(self.config.segment_size_bytes)
            .map_err(|source| {
                io_error("prepare next segment", self.storage.spare_path(), source)
            })?;
        self.spare = Some(Spare::Done(Ok(spare)));
        Ok(())
    }

    /// In [`PrepareNext::Background`] mode, starts preparing a spare if there is none.
    fn start_preparing(&mut self) {
        if self.config.prepare_next != PrepareNext::Background
            || self.spare.is_some()
            || self.stopped.is_some()
        {
            return;
        }
        let storage = Arc::clone(&self.storage);
        let len = self.config.segment_size_bytes;
        let spawned = std::thread::Builder::new()
            .name(SPARE_THREAD_NAME.to_owned())
            .spawn(move || storage.create_spare(len));
        // No thread (out of resources): the roll creates the segment itself.
        if let Ok(handle) = spawned {
            self.spare = Some(Spare::Pending(handle));
        }
    }

    /// The spare, waiting for its preparation if it is in progress; `None` if there is none.
    fn take_spare(&mut self) -> Option<io::Result<S::Segment>> {
        match self.spare.take()? {
            Spare::Done(result) => Some(result),
            Spare::Pending(handle) => Some(
                handle
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("preparing the spare panicked"))),
            ),
        }
    }

    /// Syncs `range` of the current segment and the directory if it changed; a failure
    /// stops the journal.
    fn sync_pending(&mut self, range: Range<usize>) -> Result<()> {
        let wait = match self.config.durability {
            Durability::Durable => SyncWait::Durable,
            Durability::Async => SyncWait::Async,
            Durability::None => {
                self.dirty_start = self.write_offset;
                return Ok(());
            }
        };
        let first_seq = self.current_first_seq();
        let result = if range.is_empty() {
            Ok(())
        } else {
            // The header's commit mark goes to the disk with this sync.
            let range = if wait == SyncWait::Durable && self.advance_mark() {
                0..range.end
            } else {
                range
            };
            self.current.sync(range, wait).map_err(|source| {
                io_error("sync segment", self.storage.segment_path(first_seq), source)
            })
        };
        let result = result.and_then(|()| {
            if self.dir_dirty && wait == SyncWait::Durable {
                let dir = dir_of(&*self.storage);
                self.storage
                    .sync_dir()
                    .map_err(|source| io_error("sync directory", dir, source))?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.dirty_start = self.write_offset;
                self.dir_dirty = false;
                Ok(())
            }
            Err(error) => {
                // No retry: after a failed fsync the kernel may have dropped the dirty pages,
                // so a later success would acknowledge data that is gone.
                self.stopped = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// In `Durable` mode, raises the current segment's commit mark to just past the highest
    /// committed record, before a sync that covers the header: the mark only ever names records
    /// a commit had already made durable, so whichever version of the header a crash leaves
    /// is true. Returns whether the header changed.
    fn advance_mark(&mut self) -> bool {
        let below = self.committed_seq.map(|seq| seq + 1);
        if self.config.durability != Durability::Durable || below <= self.mark {
            return false;
        }
        if let Some(below) = below {
            encode_commit_mark(below, self.current.bytes_mut());
            self.mark = Some(below);
        }
        true
    }

    fn check_running(&self) -> Result<()> {
        match &self.stopped {
            Some(cause) => Err(Error::Stopped {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Iterates records from `seq` to the last appended one, across segments.
    pub fn read_from(&self, seq: u64) -> Result<Reader<'_, S>> {
        if seq < self.first_seq() || seq > self.next_seq {
            return Err(Error::NotRetained {
                seq,
                first: self.first_seq(),
                next: self.next_seq,
            });
        }
        let segment_index = self
            .segment_first_seqs
            .partition_point(|&first| first <= seq)
            - 1;
        Ok(Reader {
            storage: &*self.storage,
            segment_first_seqs: &self.segment_first_seqs,
            segment_index,
            segment: None,
            offset: HEADER_LEN,
            next_seq: seq,
            end_seq: self.next_seq,
            failed: false,
            last: None,
        })
    }

    /// Deletes the segments whose records all come before `seq` (never the current one) and
    /// returns how many. The deletions are made durable by the next commit.
    pub fn remove_segments_before(&mut self, seq: u64) -> Result<usize> {
        let storage = Arc::clone(&self.storage);
        self.retire_segments_before(seq, &mut |first_seq, path| {
            storage
                .remove(first_seq)
                .map_err(|source| io_error("remove segment", path.to_path_buf(), source))
        })
    }

    /// Hands each segment whose records all come before `seq` (never the current one) to
    /// `retire`, oldest first, and forgets it; returns how many. `retire` gets the segment's
    /// first sequence number and path and must take the file out of the journal's directory
    /// (delete it, or move it to an archive); if it fails, that segment and the newer ones
    /// stay. The journal's directory is made durable by the next commit.
    pub fn retire_segments_before(
        &mut self,
        seq: u64,
        retire: &mut dyn FnMut(u64, &Path) -> Result<()>,
    ) -> Result<usize> {
        self.check_running()?;
        let mut n_retired = 0;
        while self.segment_first_seqs.len() > 1 && self.segment_first_seqs[1] <= seq {
            let first_seq = self.segment_first_seqs[0];
            if n_retired > 0 {
                // Each removal reaches the disk before the next one starts: a file system may
                // persist unlinks in any order, and a crash must leave the journal without a
                // prefix of its old segments, never with a hole (which `open` refuses). The
                // simulator found this (docs/testing.md).
                self.storage.sync_dir().map_err(|source| {
                    io_error("sync journal directory", dir_of(&*self.storage), source)
                })?;
            }
            retire(first_seq, &self.storage.segment_path(first_seq))?;
            self.segment_first_seqs.remove(0);
            self.dir_dirty = true;
            n_retired += 1;
        }
        Ok(n_retired)
    }

    /// The sequence number `append` accepts next.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The first sequence number of `current`, the last retained segment.
    #[allow(
        clippy::expect_used,
        reason = "a journal always has its current segment: open and create start the list \
                  with one, roll pushes, and retention never removes the last"
    )]
    fn current_first_seq(&self) -> u64 {
        *self
            .segment_first_seqs
            .last()
            .expect("a journal always has a segment")
    }

    /// The oldest sequence number retained.
    pub fn first_seq(&self) -> u64 {
        self.segment_first_seqs[0]
    }

    /// The last sequence number appended, `None` if there is none.
    pub fn last_seq(&self) -> Option<u64> {
        (self.next_seq > self.first_seq()).then(|| self.next_seq - 1)
    }

    /// The highest sequence number the last successful commit (or open) covered.
    pub fn committed_seq(&self) -> Option<u64> {
        self.committed_seq
    }

    /// First sequence numbers of the retained segments, ascending.
    pub fn segment_first_seqs(&self) -> &[u64] {
        &self.segment_first_seqs
    }

    /// What `open` found and cut.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.config
    }
}

impl<S: Storage> Drop for Journal<S> {
    /// Waits for a preparation in progress and deletes the spare (`open` would anyway).
    fn drop(&mut self) {
        if let Some(Ok(spare)) = self.take_spare() {
            drop(spare);
            // Best effort: a spare left behind is deleted by the next `open`.
            let _ = self.storage.remove_spare();
        }
    }
}

/// Reads every segment once: headers, records, and where the first damage is.
fn survey<S: Storage>(storage: &S, listed: &[u64]) -> Result<Survey> {
    let mut survey = Survey {
        kept: Vec::new(),
        problem: None,
        blank_last: None,
        records_after_tear: 0,
    };
    for (index, &first_seq) in listed.iter().enumerate() {
        let is_last = index + 1 == listed.len();
        let path = storage.segment_path(first_seq);
        let segment = storage
            .open(first_seq)
            .map_err(|source| io_error("open segment", path, source))?;
        let bytes = segment.bytes();
        if let Err(kind) = check_header(bytes, first_seq) {
            // A roll that crashed before its header reached the disk: nothing in it was ever
            // acknowledged (a commit syncs the header with the first records).
            let blank = valid_records_after(bytes, HEADER_LEN, first_seq)
                .next()
                .is_none();
            if is_last && blank {
                survey.blank_last = Some(first_seq);
            } else {
                survey.problem = Some(Problem {
                    index,
                    offset: 0,
                    kind,
                });
            }
            break;
        }
        if let Some(previous) = survey.kept.last()
            && previous.next_seq != first_seq
        {
            let kind = CorruptionKind::SegmentGap {
                expected: previous.next_seq,
                found: first_seq,
            };
            survey.problem = Some(Problem {
                index,
                offset: 0,
                kind,
            });
            break;
        }
        let scan = scan_segment(bytes, first_seq);
        survey.kept.push(Kept {
            first_seq,
            end_offset: scan.end_offset,
            next_seq: scan.next_seq,
        });
        let Some(kind) = scan.stop else { continue };
        let torn_like = matches!(kind, CorruptionKind::Record(_));
        let valid_after = valid_records_after(bytes, scan.end_offset, scan.next_seq).count();
        // Valid records after the damage are a torn write too when the damaged one was never
        // acknowledged: the pages of one commit reach the disk in any order.
        let unacknowledged = decode_commit_mark(bytes).is_some_and(|below| scan.next_seq >= below);
        if is_last && torn_like && (valid_after == 0 || unacknowledged) {
            survey.records_after_tear = valid_after as u64;
        } else {
            let offset = scan.end_offset;
            survey.problem = Some(Problem {
                index,
                offset,
                kind,
            });
            break;
        }
    }
    Ok(survey)
}

/// Cuts at `problem`: deletes the segments after it (and its own if the damage is in its
/// header), and counts what was lost.
fn repair<S: Storage>(
    storage: &S,
    listed: &[u64],
    kept: &[Kept],
    problem: Problem,
) -> Result<Repair> {
    let resume_seq = match kept.last() {
        Some(last) => last.next_seq,
        None => listed[problem.index],
    };
    let mut seq_seen_max = None;
    for (index, &first_seq) in listed.iter().enumerate().skip(problem.index) {
        let path = storage.segment_path(first_seq);
        let segment = storage
            .open(first_seq)
            .map_err(|source| io_error("open segment", path, source))?;
        let from = if index == problem.index {
            problem.offset.max(HEADER_LEN)
        } else {
            HEADER_LEN
        };
        let seq_max = valid_records_after(segment.bytes(), from, resume_seq)
            .map(|(_, seq)| seq)
            .max();
        seq_seen_max = seq_seen_max.max(seq_max);
    }
    let remove_from = if problem.offset == 0 {
        problem.index
    } else {
        problem.index + 1
    };
    for &first_seq in &listed[remove_from..] {
        remove_segment(storage, first_seq)?;
    }
    Ok(Repair {
        path: storage.segment_path(listed[problem.index]),
        offset: problem.offset as u64,
        kind: problem.kind,
        last_kept_seq: kept.last().and_then(|last| last.next_seq.checked_sub(1)),
        records_dropped: seq_seen_max.map_or(0, |seq| seq + 1 - resume_seq),
        segments_removed: listed.len() - remove_from,
    })
}

fn create_segment<S: Storage>(
    storage: &S,
    config: &JournalConfig,
    first_seq: u64,
) -> Result<S::Segment> {
    let path = storage.segment_path(first_seq);
    let mut segment = storage
        .create(first_seq, config.segment_size_bytes)
        .map_err(|source| io_error("create segment", path, source))?;
    let header = SegmentHeader {
        first_seq,
        segment_size: config.segment_size_bytes,
    };
    debug_assert!(is_zero(segment.bytes()), "a new segment is zero-filled");
    encode_header(header, segment.bytes_mut());
    if config.durability == Durability::Durable {
        // Created first, or by a roll, which synced every segment before this one.
        encode_commit_mark(first_seq, segment.bytes_mut());
    }
    Ok(segment)
}

fn remove_segment<S: Storage>(storage: &S, first_seq: u64) -> Result<()> {
    let path = storage.segment_path(first_seq);
    storage
        .remove(first_seq)
        .map_err(|source| io_error("remove segment", path, source))
}

fn dir_of<S: Storage>(storage: &S) -> PathBuf {
    let path = storage.segment_path(0);
    path.parent().map(PathBuf::from).unwrap_or(path)
}

fn io_error(action: &'static str, path: PathBuf, source: io::Error) -> Error {
    Error::Io {
        action,
        path,
        source,
    }
}

/// Iterator over records from a sequence number on, made by [`Journal::read_from`].
#[derive(Debug)]
pub struct Reader<'j, S: Storage> {
    storage: &'j S,
    segment_first_seqs: &'j [u64],
    segment_index: usize,
    segment: Option<S::Segment>,
    offset: usize,
    next_seq: u64,
    end_seq: u64,
    failed: bool,
    last: Option<Position>,
}

enum Step {
    Skip(usize),
    /// The record at the current offset is the next one: its payload is
    /// `offset + RECORD_HEADER_LEN ..` that plus `payload_len`, and it takes `encoded_len`.
    Yield {
        payload_len: usize,
        encoded_len: usize,
    },
    NextSegment,
}

impl<S: Storage> Reader<'_, S> {
    fn step(&mut self) -> Result<Step> {
        let first_seq = self.segment_first_seqs[self.segment_index];
        let segment = match &mut self.segment {
            Some(segment) => segment,
            None => {
                let path = self.storage.segment_path(first_seq);
                let segment = self
                    .storage
                    .open(first_seq)
                    .map_err(|source| io_error("open segment", path, source))?;
                self.offset = HEADER_LEN;
                self.segment.insert(segment)
            }
        };
        let has_next_segment = self.segment_index + 1 < self.segment_first_seqs.len();
        let corruption = |kind| Error::Corruption {
            path: self.storage.segment_path(first_seq),
            offset: self.offset as u64,
            kind,
        };
        let rest = segment.bytes().get(self.offset..).unwrap_or(&[]);
        match decode_record(rest) {
            Ok(record) if record.seq < self.next_seq => Ok(Step::Skip(record.encoded_len())),
            Ok(record) if record.seq == self.next_seq => Ok(Step::Yield {
                payload_len: record.payload.len(),
                encoded_len: record.encoded_len(),
            }),
            Ok(record) => Err(corruption(CorruptionKind::SequenceMismatch {
                expected: self.next_seq,
                found: record.seq,
            })),
            Err(crate::format::RecordError::Zero | crate::format::RecordError::HeaderTruncated)
                if has_next_segment =>
            {
                Ok(Step::NextSegment)
            }
            Err(error) => Err(corruption(CorruptionKind::Record(error))),
        }
    }

    /// The next record, its payload borrowed from the mapped segment: what the [`Iterator`]
    /// gives without copying the payload into a `Vec`, for replay. The same checks apply
    /// (checksum, sequence numbers, corruption reported with the file and offset), and after
    /// an error it returns `None`.
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>>> {
        // Bounded: each step moves forward in a segment or to the next segment.
        while !self.failed && self.next_seq < self.end_seq {
            match self.step() {
                Ok(Step::Skip(len)) => self.offset += len,
                Ok(Step::Yield {
                    payload_len,
                    encoded_len,
                }) => {
                    let start = self.offset + RECORD_HEADER_LEN;
                    self.last = Some(Position {
                        segment: self.segment_first_seqs[self.segment_index],
                        offset: self.offset as u64,
                    });
                    let seq = self.next_seq;
                    self.offset += encoded_len;
                    self.next_seq += 1;
                    // `step` just decoded this record from the same mapped bytes.
                    let bytes = self.segment.as_ref()?.bytes();
                    let payload = bytes.get(start..start + payload_len)?;
                    return Some(Ok(RecordRef { seq, payload }));
                }
                Ok(Step::NextSegment) => {
                    self.segment_index += 1;
                    self.segment = None;
                }
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }

    /// Where the record the reader returned last lies (`None` before the first).
    pub fn position(&self) -> Option<Position> {
        self.last
    }

    /// The sequence number of the next record this reader returns (if there is one).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The sequence number after the last record this reader returns: it stops there.
    pub fn end_seq(&self) -> u64 {
        self.end_seq
    }
}

impl<S: Storage> Iterator for Reader<'_, S> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_ref().map(|record| {
            record.map(|record| Record {
                seq: record.seq,
                payload: record.payload.to_vec(),
            })
        })
    }
}
