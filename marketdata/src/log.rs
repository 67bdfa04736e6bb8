//! The logs of market data: one journal (the journal crate, memory-mapped segments) for ticks
//! and one per candle interval, each knowing the newest exchange time in each of its segments
//! so that retention (rolling up, as RRD does) can drop whole old segments.
//!
//! Every log's I/O goes through the journal crate's [`Storage`] seam: a [`StorageFactory`]
//! makes the storage of a log from the log's directory, for its writer, its syncs and each of
//! its readers ([`FsStorage`] unless the market was opened with
//! [`crate::Market::open_with_storage`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bourse_journal::{
    Durability, FsStorage, Journal, JournalConfig, Position, PositionReader, PrepareNext,
    RecordRef, RecoveryMode, SegmentMap, Storage,
};

use crate::MarketError;

/// The closure behind a [`StorageFactory`].
type MakeStorage<S> = dyn Fn(&Path) -> io::Result<S> + Send + Sync;

/// Makes the storage of a log from the log's directory; shared by the writer and the readers
/// of every log of a market, so it is called once per log and once more per reader.
pub(crate) struct StorageFactory<S> {
    make: Arc<MakeStorage<S>>,
}

impl<S> StorageFactory<S> {
    pub(crate) fn new(make: impl Fn(&Path) -> io::Result<S> + Send + Sync + 'static) -> Self {
        Self {
            make: Arc::new(make),
        }
    }

    /// The storage of the log in `dir`.
    pub(crate) fn make(&self, dir: &Path) -> Result<S, MarketError> {
        (self.make)(dir).map_err(|e| MarketError::io("open log", dir, e))
    }
}

impl<S> Clone for StorageFactory<S> {
    fn clone(&self) -> Self {
        Self {
            make: Arc::clone(&self.make),
        }
    }
}

impl<S> std::fmt::Debug for StorageFactory<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageFactory")
    }
}

/// One log: a journal plus the newest time of each segment.
pub(crate) struct Log<S: Storage = FsStorage> {
    pub(crate) journal: Journal<S>,
    /// The same directory as the journal's, for syncs (the journal keeps its own private).
    storage: S,
    make_storage: StorageFactory<S>,
    dir: PathBuf,
    /// `(first sequence number, newest time)` of every segment, ascending.
    pub(crate) newest: Vec<(u64, i64)>,
    retention_ms: i64,
    /// Retention never removes a segment holding this sequence number or a later one: where
    /// the replay of the newest checkpoint starts (the tick log; `None` for candle logs).
    pub(crate) retain_from: Option<u64>,
    /// The oldest retained segment, shared with readers so that chain walks stop there.
    first: Arc<AtomicU64>,
    /// The oldest segment written to since the last successful [`Log::sync`].
    dirty_from: Option<u64>,
    /// Set when a sync failed: the log takes and syncs nothing more (after a failed
    /// `fdatasync` the kernel may have dropped the dirty pages, so a later sync that succeeds
    /// would report durable what is gone). Reopen to recover.
    stopped: bool,
}

impl<S: Storage> std::fmt::Debug for Log<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("segments", &self.newest.len())
            .field("next_seq", &self.journal.next_seq())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Log<S> {
    /// Opens the log in `dir` (created on the real file system; `make_storage` says where its
    /// segments live).
    pub(crate) fn open(
        dir: &Path,
        segment_size_bytes: u64,
        retention_ms: i64,
        prepare_next: PrepareNext,
        make_storage: &StorageFactory<S>,
    ) -> Result<Self, MarketError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| MarketError::io("create log directory", dir, e))?;
        let storage = make_storage.make(dir)?;
        let config = JournalConfig {
            segment_size_bytes,
            // Synced at checkpoints only, by `Log::sync` (fdatasync of the segment files
            // written since the last one), so that a roll never waits for the disk.
            durability: Durability::None,
            first_seq: 1,
            recovery: RecoveryMode::Repair,
            prepare_next,
        };
        let journal = Journal::open(storage, config)?;
        let first = Arc::new(AtomicU64::new(journal.first_seq()));
        Ok(Self {
            journal,
            storage: make_storage.make(dir)?,
            make_storage: make_storage.clone(),
            dir: dir.to_path_buf(),
            newest: Vec::new(),
            retention_ms,
            retain_from: None,
            first,
            dirty_from: None,
            stopped: false,
        })
    }

    /// Appends a record whose newest time is `ts`; when that starts a new segment, applies
    /// the retention as of `now_ts` (the market's newest exchange time).
    pub(crate) fn append(
        &mut self,
        payload: &[u8],
        ts: i64,
        now_ts: i64,
    ) -> Result<Position, MarketError> {
        if self.stopped {
            return Err(MarketError::Failed);
        }
        let seq = self.journal.next_seq();
        let position = self.journal.append(seq, payload)?;
        let n_segments = self.newest.len();
        self.note(position.segment, ts);
        self.dirty_from.get_or_insert(position.segment);
        if self.newest.len() > n_segments {
            self.retire(now_ts)?;
        }
        Ok(position)
    }

    /// Makes everything appended so far durable through the storage: `fdatasync` of every
    /// segment file written since the last sync (the maps are shared, so that writes their
    /// dirty pages), then of the directory. After a failure the log is stopped: this and
    /// [`Log::append`] answer [`MarketError::Failed`].
    pub(crate) fn sync(&mut self) -> Result<(), MarketError> {
        if self.stopped {
            return Err(MarketError::Failed);
        }
        let result = self.sync_dirty();
        if result.is_err() {
            self.stopped = true;
        }
        result
    }

    fn sync_dirty(&mut self) -> Result<(), MarketError> {
        self.journal.commit()?;
        let Some(from) = self.dirty_from else {
            return Ok(());
        };
        for &segment in self
            .journal
            .segment_first_seqs()
            .iter()
            .filter(|s| **s >= from)
        {
            self.storage
                .open(segment)
                .and_then(|mapped| (mapped.sync_handle())())
                .map_err(|e| {
                    MarketError::io("sync log segment", &self.storage.segment_path(segment), e)
                })?;
        }
        self.storage
            .sync_dir()
            .map_err(|e| MarketError::io("sync log directory", &self.dir, e))?;
        self.dirty_from = None;
        Ok(())
    }

    /// Records that segment `segment` holds a record of time `ts`.
    pub(crate) fn note(&mut self, segment: u64, ts: i64) {
        match self.newest.last_mut() {
            Some((s, newest)) if *s == segment => *newest = (*newest).max(ts),
            _ => self.newest.push((segment, ts)),
        }
    }

    /// Forgets the times of segments the journal no longer has, and gives those it has but
    /// this list lacks (written after the last checkpoint) the time `ts`.
    pub(crate) fn reconcile(&mut self, ts: i64) {
        let segments = self.journal.segment_first_seqs().to_vec();
        let known: std::collections::BTreeMap<u64, i64> = self.newest.iter().copied().collect();
        self.newest = segments
            .iter()
            .map(|s| (*s, known.get(s).copied().unwrap_or(ts)))
            .collect();
    }

    /// Drops the segments (never the current one) whose newest time is older than `now_ts`
    /// minus the retention. Returns how many.
    pub(crate) fn retire(&mut self, now_ts: i64) -> Result<usize, MarketError> {
        if self.retention_ms == i64::MAX {
            return Ok(0);
        }
        let cutoff = now_ts.saturating_sub(self.retention_ms);
        let mut n_old = self
            .newest
            .iter()
            .take(self.newest.len().saturating_sub(1))
            .take_while(|(_, newest)| *newest < cutoff)
            .count();
        if let Some(floor) = self.retain_from {
            // Segment i holds the sequence numbers up to the next one's first: removable only
            // when all of them come before the floor.
            let below_floor = self
                .newest
                .windows(2)
                .take_while(|pair| pair[1].0 <= floor)
                .count();
            n_old = n_old.min(below_floor);
        }
        if n_old == 0 {
            return Ok(0);
        }
        let keep_from = self.newest[n_old].0;
        let removed = self.journal.remove_segments_before(keep_from)?;
        self.newest.drain(..n_old);
        self.first
            .store(self.journal.first_seq(), Ordering::Release);
        Ok(removed)
    }

    /// A reader for chain walks from any thread, over a storage of its own.
    pub(crate) fn reader(&self) -> Result<LogReader<S>, MarketError> {
        Ok(LogReader {
            reader: PositionReader::new(self.make_storage.make(&self.dir)?),
            first: Arc::clone(&self.first),
        })
    }
}

/// Reads records of one log at positions, stopping at retired segments.
#[derive(Debug)]
pub struct LogReader<S: Storage = FsStorage> {
    reader: PositionReader<S>,
    first: Arc<AtomicU64>,
}

impl<S: Storage> LogReader<S> {
    /// The record at `position`, or `None` if its segment was retired (or is being).
    pub(crate) fn read(
        &mut self,
        position: Position,
    ) -> Result<Option<RecordRef<'_>>, MarketError> {
        let first = self.first.load(Ordering::Acquire);
        if position.segment < first {
            self.reader.forget_before(first);
            return Ok(None);
        }
        match self.reader.read_at(position) {
            Ok(record) => Ok(Some(record)),
            // Retired between the check and the open.
            Err(_) if position.segment < self.first.load(Ordering::Acquire) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
