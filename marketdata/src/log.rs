//! The logs of market data: one journal (the journal crate, memory-mapped segments) for ticks
//! and one per candle interval, each knowing the newest exchange time in each of its segments
//! so that retention (rolling up, as RRD does) can drop whole old segments.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bourse_journal::{
    Durability, FsStorage, Journal, JournalConfig, Position, PositionReader, PrepareNext,
    RecordRef, RecoveryMode,
};

use crate::MarketError;

/// One log: a journal plus the newest time of each segment.
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) journal: Journal<FsStorage>,
    dir: PathBuf,
    /// `(first sequence number, newest time)` of every segment, ascending.
    pub(crate) newest: Vec<(u64, i64)>,
    retention_ms: i64,
    /// The oldest retained segment, shared with readers so that chain walks stop there.
    first: Arc<AtomicU64>,
    /// The oldest segment written to since the last [`Log::sync`].
    dirty_from: Option<u64>,
}

impl Log {
    pub(crate) fn open(
        dir: &Path,
        segment_size_bytes: u64,
        retention_ms: i64,
    ) -> Result<Self, MarketError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| MarketError::io("create log directory", dir, e))?;
        let storage = FsStorage::new(dir).map_err(|e| MarketError::io("open log", dir, e))?;
        let config = JournalConfig {
            segment_size_bytes,
            // Synced at checkpoints only, by `Log::sync` (fdatasync of the segment files
            // written since the last one), so that a roll never waits for the disk.
            durability: Durability::None,
            first_seq: 1,
            recovery: RecoveryMode::Repair,
            prepare_next: PrepareNext::Background,
        };
        let journal = Journal::open(storage, config)?;
        let first = Arc::new(AtomicU64::new(journal.first_seq()));
        Ok(Self {
            journal,
            dir: dir.to_path_buf(),
            newest: Vec::new(),
            retention_ms,
            first,
            dirty_from: None,
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

    /// Makes everything appended so far durable: `fdatasync` of every segment file written
    /// since the last sync (the maps are shared, so that writes their dirty pages), then of
    /// the directory.
    pub(crate) fn sync(&mut self) -> Result<(), MarketError> {
        self.journal.commit()?;
        let Some(from) = self.dirty_from.take() else {
            return Ok(());
        };
        for &segment in self
            .journal
            .segment_first_seqs()
            .iter()
            .filter(|s| **s >= from)
        {
            let path = self.dir.join(bourse_journal::segment_file_name(segment));
            std::fs::File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(|e| MarketError::io("sync log segment", &path, e))?;
        }
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| MarketError::io("sync log directory", &self.dir, e))
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
        let n_old = self
            .newest
            .iter()
            .take(self.newest.len().saturating_sub(1))
            .take_while(|(_, newest)| *newest < cutoff)
            .count();
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

    /// A reader for chain walks from any thread.
    pub(crate) fn reader(&self) -> Result<LogReader, MarketError> {
        Ok(LogReader {
            reader: PositionReader::new(
                FsStorage::new(&self.dir).map_err(|e| MarketError::io("open log", &self.dir, e))?,
            ),
            first: Arc::clone(&self.first),
        })
    }
}

/// Reads records of one log at positions, stopping at retired segments.
#[derive(Debug)]
pub struct LogReader {
    reader: PositionReader<FsStorage>,
    first: Arc<AtomicU64>,
}

impl LogReader {
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
