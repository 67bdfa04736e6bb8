//! The engine's persistence: a journal of commands, snapshots of the state, recovery from the
//! two, and retention of the journal segments no snapshot needs any more.
//!
//! A data directory holds `journal/` (segments, see `journal/FORMAT.md`) and `snapshots/`
//! (see `snapshots/FORMAT.md`). [`Store::open`] is start-up: it loads the newest snapshot that
//! passes every check (falling back to older ones), opens the journal (cutting a torn tail,
//! refusing damage in the middle), and replays the journal from the record after the snapshot,
//! reporting progress. The engine it returns is in exactly the state it had after the last
//! record in the journal.
//!
//! The state after command `s` is the snapshot *at* `s`; replay starts at `s + 1`.
//!
//! The journal's I/O goes through the journal crate's [`Storage`] seam: [`Store::open`] uses
//! [`FsStorage`], and [`Store::open_with_storage`] takes a storage the caller built (tests
//! wrap the real one in a [`bourse_journal::FaultyStorage`] to inject ENOSPC and failed
//! syncs). Snapshots always live on the real file system.
//!
//! Retention ([`Retention`]) acts after each snapshot: segments whose records all come at or
//! before the *oldest* snapshot kept are deleted or archived. The oldest, not the newest: if
//! the newest snapshot is later found damaged, recovery falls back to an older one and still
//! needs the journal from there.
//!
//! ```
//! use bourse_engine::{Command, CommandKind, AssetCode};
//! use bourse_store::{Silent, Store, StoreConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let config = StoreConfig::new(dir.path());
//! let mut recovered = Store::open(&config, &mut Silent)?;
//! let command = Command {
//!     seq: recovered.next_seq(),
//!     timestamp_ms: 1_700_000_000_000,
//!     kind: CommandKind::AddAsset { code: AssetCode::new("USD").unwrap(), scale: 2 },
//! };
//! recovered.store.append(&command)?;
//! recovered.store.commit()?;
//! recovered.engine.apply(&command, &mut bourse_store::DiscardEvents).unwrap();
//! let hash = recovered.engine.state_hash();
//! drop(recovered);
//!
//! let again = Store::open(&config, &mut Silent)?;
//! assert_eq!(again.engine.state_hash(), hash);
//! assert_eq!(again.report.replayed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod progress;
pub mod replay;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bourse_engine::codec::encode;
use bourse_engine::{Command, Engine, Limits};
pub use bourse_journal::SegmentFill;
pub use bourse_journal::{FsStorage, Storage};
use bourse_journal::{Journal, JournalConfig};

pub use error::StoreError;
pub use progress::{ConsoleProgress, Progress, Silent};
pub use replay::{DiscardEvents, PROGRESS_EVERY, replay};

/// Subdirectory of the data directory that holds the journal.
pub const JOURNAL_DIR: &str = "journal";
/// Subdirectory of the data directory that holds the snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// What happens to journal segments that no kept snapshot needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Retention {
    /// Keep every segment (the default: the journal is the full history of commands).
    #[default]
    Keep,
    /// Delete them.
    Delete,
    /// Move them into this directory (created if missing), e.g. for an audit trail or a
    /// replica that starts from an old snapshot.
    Archive(PathBuf),
}

/// How a store is laid out and behaves.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// The journal's configuration (durability, segment size, recovery mode).
    pub journal: JournalConfig,
    /// How new journal segments reserve their blocks: `Zeroes` makes every later durable
    /// sync cheaper at the price of writing each segment once when it is created.
    pub segment_fill: SegmentFill,
    /// How many snapshots are kept (at least 1).
    pub snapshots_kept: usize,
    /// What happens to journal segments older than every kept snapshot.
    pub retention: Retention,
    /// Limits of an engine started without a snapshot (a snapshot carries its own).
    pub limits: Limits,
}

impl StoreConfig {
    /// Defaults in `dir`: a durable journal of 64 MiB segments, 3 snapshots, every segment kept.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            journal: JournalConfig::default(),
            segment_fill: SegmentFill::Allocate,
            snapshots_kept: 3,
            retention: Retention::Keep,
            limits: Limits::default(),
        }
    }

    /// Where the journal lives.
    pub fn journal_dir(&self) -> PathBuf {
        self.dir.join(JOURNAL_DIR)
    }

    /// Where the snapshots live.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join(SNAPSHOTS_DIR)
    }
}

/// What start-up found and did.
#[derive(Debug)]
pub struct RecoveryReport {
    /// The snapshot recovery started from: its sequence number and file.
    pub snapshot: Option<(u64, PathBuf)>,
    /// Newer snapshots that failed a check and were passed over, with why.
    pub skipped_snapshots: Vec<bourse_snapshots::Skipped>,
    /// Time to find, check and load the snapshot.
    pub snapshot_load: Duration,
    /// What opening the journal found and cut (a torn tail, a repair).
    pub journal: bourse_journal::RecoveryReport,
    /// Time to open (scan) the journal.
    pub journal_open: Duration,
    /// Journal records replayed on top of the snapshot.
    pub replayed: u64,
    /// Time of the replay.
    pub replay: Duration,
    /// Time of the whole start-up.
    pub total: Duration,
    /// The sequence number of the last command in the recovered state (0: none).
    pub last_seq: u64,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        match &self.snapshot {
            Some((seq, _)) => write!(
                f,
                "recovered to seq {} in {:.1} ms: snapshot at seq {seq} loaded in {:.1} ms, ",
                self.last_seq,
                ms(self.total),
                ms(self.snapshot_load)
            )?,
            None => write!(
                f,
                "recovered to seq {} in {:.1} ms: no snapshot, ",
                self.last_seq,
                ms(self.total)
            )?,
        }
        write!(
            f,
            "journal opened in {:.1} ms, {} records replayed in {:.1} ms",
            ms(self.journal_open),
            self.replayed,
            ms(self.replay)
        )?;
        if !self.skipped_snapshots.is_empty() {
            write!(
                f,
                "; {} damaged snapshot(s) skipped",
                self.skipped_snapshots.len()
            )?;
        }
        if let Some(cut) = &self.journal.torn_tail {
            write!(f, "; torn journal tail cut ({cut:?})")?;
        }
        if let Some(repair) = &self.journal.repair {
            write!(f, "; journal REPAIRED ({repair:?})")?;
        }
        Ok(())
    }
}

/// A store opened by [`Store::open`] (or [`Store::open_with_storage`]), with the engine it
/// recovered.
pub struct Recovered<S: Storage = FsStorage> {
    pub store: Store<S>,
    pub engine: Engine,
    pub report: RecoveryReport,
}

impl<S: Storage> std::fmt::Debug for Recovered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovered")
            .field("store", &self.store)
            .field("engine", &self.engine)
            .field("report", &self.report)
            .finish()
    }
}

impl<S: Storage> Recovered<S> {
    /// The sequence number the next command must carry.
    pub fn next_seq(&self) -> u64 {
        self.store.journal.next_seq()
    }
}

/// The journal and snapshots of one data directory, opened for writing. `S` is the storage
/// of the journal's segments ([`FsStorage`] unless opened with [`Store::open_with_storage`]).
pub struct Store<S: Storage = FsStorage> {
    config: StoreConfig,
    journal: Journal<S>,
    encode_buf: Vec<u8>,
    /// What a reader of the journal holds durably elsewhere (the history read model's log):
    /// retention keeps what its catch-up after a crash would replay ([`Store::apply_retention`]).
    retention_floor: Option<Arc<AtomicU64>>,
}

impl<S: Storage> std::fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("next_seq", &self.journal.next_seq())
            .field("committed_seq", &self.journal.committed_seq())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Start-up: the newest usable snapshot plus a replay of the journal after it, with the
    /// journal's segments in [`StoreConfig::journal_dir`] on the real file system (new ones
    /// filled as [`StoreConfig::segment_fill`] says).
    pub fn open(
        config: &StoreConfig,
        progress: &mut dyn Progress,
    ) -> Result<Recovered, StoreError> {
        let journal_dir = config.journal_dir();
        let storage = FsStorage::with_fill(&journal_dir, config.segment_fill)
            .map_err(|e| StoreError::io("open journal directory", journal_dir.as_path(), e))?;
        Self::open_with_storage(config, storage, progress)
    }
}

impl<S: Storage> Store<S> {
    /// Start-up as [`Store::open`] does it, with the journal's segments in `storage`, which the
    /// caller built: a [`bourse_journal::FaultyStorage`] around an [`FsStorage`] of
    /// [`StoreConfig::journal_dir`] lets a test fail preallocations (ENOSPC) and syncs.
    /// `storage` should hold the segments of [`StoreConfig::journal_dir`] (errors name that
    /// directory, and [`Store::open`] reopens it), and it decides how new segments are
    /// filled ([`StoreConfig::segment_fill`] is not used). Snapshots are read and written in
    /// [`StoreConfig::snapshots_dir`] on the real file system, not through `storage`; so is
    /// [`Retention::Archive`].
    pub fn open_with_storage(
        config: &StoreConfig,
        storage: S,
        progress: &mut dyn Progress,
    ) -> Result<Recovered<S>, StoreError> {
        if config.snapshots_kept == 0 {
            return Err(StoreError::InvalidConfig(
                "snapshots_kept must be at least 1",
            ));
        }
        let started = Instant::now();
        let journal_dir = config.journal_dir();
        let snapshots_dir = config.snapshots_dir();
        std::fs::create_dir_all(&snapshots_dir)
            .map_err(|e| StoreError::io("create directory", snapshots_dir.as_path(), e))?;

        let loaded = bourse_snapshots::load_newest(&snapshots_dir)?;
        let snapshot_load = started.elapsed();
        let skipped_snapshots = loaded.skipped;
        let (snapshot, mut engine) = match loaded.newest {
            Some((seq, engine)) => {
                let path = snapshots_dir.join(bourse_snapshots::snapshot_file_name(seq));
                (Some((seq, path)), engine)
            }
            None => (None, Engine::new(config.limits)),
        };
        let snapshot_seq = snapshot.as_ref().map_or(0, |(seq, _)| *seq);

        let opened = Instant::now();
        let mut journal_config = config.journal;
        let is_empty = storage
            .list()
            .map_err(|e| StoreError::io("list journal directory", journal_dir.as_path(), e))?
            .is_empty();
        if is_empty {
            // A new journal continues where the snapshot ends.
            journal_config.first_seq = snapshot_seq + 1;
        }
        let journal = Journal::open(storage, journal_config)?;
        let journal_open = opened.elapsed();
        if journal.first_seq() > snapshot_seq + 1 {
            return Err(StoreError::JournalStartsAfterSnapshot {
                snapshot_seq,
                journal_first: journal.first_seq(),
            });
        }
        if journal.next_seq() <= snapshot_seq {
            return Err(StoreError::JournalEndsBeforeSnapshot {
                snapshot_seq,
                journal_next: journal.next_seq(),
                journal_dir,
            });
        }

        let replaying = Instant::now();
        let total = journal.next_seq() - (snapshot_seq + 1);
        progress.start(total);
        let replayed = replay(&journal, snapshot_seq + 1, &mut engine, &mut |done| {
            progress.advance(done)
        })?;
        progress.finish(replayed);
        let replay = replaying.elapsed();

        let report = RecoveryReport {
            snapshot,
            skipped_snapshots,
            snapshot_load,
            journal: journal.recovery_report().clone(),
            journal_open,
            replayed,
            replay,
            total: started.elapsed(),
            last_seq: journal.next_seq() - 1,
        };
        Ok(Recovered {
            store: Store {
                config: config.clone(),
                journal,
                encode_buf: Vec::with_capacity(256),
                retention_floor: None,
            },
            engine,
            report,
        })
    }

    /// The journal (for appends and commits in bulk, and for reading).
    pub fn journal(&mut self) -> &mut Journal<S> {
        &mut self.journal
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Encodes `command` and appends it to the journal (not yet durable: see [`Store::commit`]).
    pub fn append(&mut self, command: &Command) -> Result<(), StoreError> {
        self.encode_buf.clear();
        encode(command, &mut self.encode_buf);
        self.journal.append(command.seq, &self.encode_buf)?;
        Ok(())
    }

    /// Makes the appended commands durable (per the journal's durability mode) and returns the
    /// highest sequence number covered.
    pub fn commit(&mut self) -> Result<Option<u64>, StoreError> {
        Ok(self.journal.commit()?)
    }

    /// Makes retention keep what a reader of the journal needs after a crash: `floor` is the
    /// sequence number through which that reader's own state is durable (the history log's,
    /// synced by the history thread). Its catch-up replays the journal from the newest
    /// snapshot at or before the floor, so that snapshot is kept beside the newest
    /// [`StoreConfig::snapshots_kept`], and the journal from it.
    pub fn set_retention_floor(&mut self, floor: Arc<AtomicU64>) {
        self.retention_floor = Some(floor);
    }

    /// How many snapshots a snapshot writer keeps (`keep_newest` of
    /// [`bourse_snapshots::write_snapshot`]): every one when a retention floor is set, since
    /// [`Store::apply_retention`] then removes the old ones itself, sparing the one the floor
    /// needs; otherwise [`StoreConfig::snapshots_kept`].
    pub fn snapshots_kept_when_writing(&self) -> usize {
        if self.retention_floor.is_some() {
            usize::MAX
        } else {
            self.config.snapshots_kept
        }
    }

    /// Writes a snapshot of `engine`, whose state is that after command `seq`, on this thread
    /// (encoding included), keeps the newest [`StoreConfig::snapshots_kept`], then applies the
    /// retention setting. `seq` must be committed already: a snapshot never runs ahead of the
    /// durable journal.
    pub fn write_snapshot(&mut self, engine: &Engine, seq: u64) -> Result<PathBuf, StoreError> {
        let committed = self.journal.committed_seq();
        if committed.is_none_or(|committed| committed < seq) {
            return Err(StoreError::SnapshotAheadOfJournal { seq, committed });
        }
        let path = bourse_snapshots::write_snapshot(
            &self.config.snapshots_dir(),
            seq,
            &engine.to_image(),
            self.snapshots_kept_when_writing(),
        )?;
        self.apply_retention()?;
        Ok(path)
    }

    /// Retires (per [`StoreConfig::retention`]) the journal segments whose records all come
    /// at or before the oldest snapshot kept; returns how many. Call it after a snapshot is
    /// written (or at any time: it is idempotent).
    ///
    /// With a retention floor ([`Store::set_retention_floor`]) it first removes the snapshots
    /// beyond the newest [`StoreConfig::snapshots_kept`], except the newest at or before the
    /// floor; and while no snapshot is at or before the floor, it retires no segment (the
    /// reader's catch-up would replay the journal from its start).
    pub fn apply_retention(&mut self) -> Result<usize, StoreError> {
        let dir = self.config.snapshots_dir();
        let mut listed = bourse_snapshots::list_snapshots(&dir)?;
        if let Some(floor) = &self.retention_floor {
            let floor = floor.load(Ordering::Acquire);
            let pinned = listed
                .iter()
                .rev()
                .find(|(seq, _)| *seq <= floor)
                .map(|s| s.0);
            let newest_from = listed.len().saturating_sub(self.config.snapshots_kept);
            let (mut kept, mut removed) = (Vec::with_capacity(listed.len()), false);
            for (i, (seq, path)) in listed.into_iter().enumerate() {
                if i >= newest_from || Some(seq) == pinned {
                    kept.push((seq, path));
                } else {
                    std::fs::remove_file(&path)
                        .map_err(|e| StoreError::io("remove snapshot", path.as_path(), e))?;
                    removed = true;
                }
            }
            if removed {
                sync_dir(&dir).map_err(|e| StoreError::io("sync directory", dir.as_path(), e))?;
            }
            listed = kept;
            if pinned.is_none() {
                return Ok(0);
            }
        }
        let Some(&(oldest, _)) = listed.first() else {
            return Ok(0);
        };
        let n = match &self.config.retention {
            Retention::Keep => 0,
            Retention::Delete => self.journal.remove_segments_before(oldest + 1)?,
            Retention::Archive(archive) => {
                std::fs::create_dir_all(archive).map_err(|e| {
                    StoreError::io("create archive directory", archive.as_path(), e)
                })?;
                let n = self
                    .journal
                    .retire_segments_before(oldest + 1, &mut |_, path| {
                        archive_file(path, archive).map_err(|source| bourse_journal::Error::Io {
                            action: "archive segment",
                            path: path.to_path_buf(),
                            source,
                        })
                    })?;
                if n > 0 {
                    sync_dir(archive).map_err(|e| {
                        StoreError::io("sync archive directory", archive.as_path(), e)
                    })?;
                }
                n
            }
        };
        Ok(n)
    }
}

/// Moves `path` into `archive`: a rename on the same file system, else copy, fsync, delete.
fn archive_file(path: &Path, archive: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("segment path without a file name"))?;
    let target = archive.join(name);
    if std::fs::rename(path, &target).is_ok() {
        return Ok(());
    }
    std::fs::copy(path, &target)?;
    std::fs::File::open(&target)?.sync_all()?;
    std::fs::remove_file(path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod fault_tests;
