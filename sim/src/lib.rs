//! Deterministic simulation of the engine's durable path: the engine, the journal on a
//! simulated disk (`disk.rs`), snapshots and recovery, driven in one thread by a seeded
//! workload, with seeded crashes and disk faults, and every invariant checked as it goes. One
//! seed is one run, the same every time: a failure prints the command that replays it.
//!
//! **A run.** Batches of 1 to 32 commands of the seeded workload (`bourse_tests::workload`:
//! 300 accounts, two books, every order type and time in force, cancels, amendments, deposits
//! and withdrawals, halts, profile changes, commands the engine refuses) are appended to the
//! journal and committed with one sync, as the pipeline's group commit does; then the engine
//! applies them and they are acknowledged. In about half the runs (by the seed) the commit is
//! the pipeline's deferred one instead: the engine applies each batch at once, the batch's
//! answers are held, `Journal::start_commit` hands a sync to the "sync thread", which the
//! simulator runs at a seeded later step while more batches are appended, and
//! `finish_commit` releases the held batches it covers. A snapshot first waits for the sync
//! out and commits the rest, as the pipeline does. Between steps, by the seed: a snapshot
//! (`Store::write_snapshot`: the newest three kept, then the retention, which half the runs
//! have on; one sometimes damaged afterwards), or a crash: after the append and before the
//! commit, after the commit and before the apply, between batches, or while a snapshot is
//! written. A failed sync or a full disk stops the writer, and the run crashes there, as the
//! server fails stop.
//!
//! **Recovery** is the server's own (`bourse_store::Store::open_with_storage` over the
//! simulated disk, the snapshots as files): open the journal (torn tails cut, damage anywhere
//! else refused), load the newest snapshot that passes its checks, replay the journal after
//! it. It may crash again while it replays, and start over.
//!
//! **The history read model** (`history.rs`) runs beside it as the server's history thread
//! does: it takes each acknowledged batch's events some batches later (by the seed), appends
//! them to its own log on a second simulated disk, syncs it now and then (raising the store's
//! retention floor) and folds them; at start-up it reads its log back and
//! `bourse_history::catch_up` replays the journal for what it lost. A failed append or sync
//! stops the server.
//!
//! **The market data** (`market.rs`) takes a seeded feed beside it, on simulated disks of its
//! own, checkpoints by the seed, crashes with the process and resumes the feed from the offset
//! it stored.
//!
//! **Checked:** after every batch, the engine's image passes the checks a snapshot load makes
//! (conservation of every asset, holds equal to what open orders can spend, books uncrossed,
//! ids and counters); after every recovery, every acknowledged command is in the journal,
//! byte for byte and in order, and the recovered engine's state hash equals a replay of the
//! whole journal from nothing, and the history read model holds exactly the records of a
//! fold of every event of that replay; a corruption is refused naming the damaged segment,
//! never passed over; every product's candles are the aggregate of its stored ticks. At the
//! end, the history again, the market data against one that never crashed, and the state
//! hash, for the report.

mod cluster;
mod common;
pub mod disk;
mod history;
mod market;

use bourse_engine::{Command, CommandKind, Engine, Event, Limits, StateHash, codec};
use bourse_history::History;
use bourse_journal::{
    Durability, Journal, JournalConfig, PendingCommit, PrepareNext, RecoveryMode,
};
use bourse_store::{Retention, Silent, Store, StoreConfig, StoreError};
use bourse_tests::workload::{Generator, SplitMix64};

pub use crate::cluster::{ClusterConfig, ClusterReport, run_cluster};
use crate::common::{
    SnapshotFate, check_quote, damaged_snapshot_in, read_all, replay, write_snapshot,
};
use crate::disk::{DiskCounts, Faults, SimDisk};
use crate::history::SimHistory;
pub use crate::market::MarketReport;
use crate::market::SimMarket;

/// What one run does.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub seed: u64,
    /// Batches of commands.
    pub batches: u64,
    /// Disk faults on (the chances in [`FAULTS`]) or off.
    pub faults: bool,
    /// Torn writes keep the unsynced sectors in any order ([`Faults::torn_any_order`]).
    pub torn_any_order: bool,
}

/// The disk faults of a run with faults on.
pub const FAULTS: Faults = Faults {
    sync_fails: 4,
    no_space: 2,
    bit_flip: 10,
    torn_any_order: false,
    read_fails: 0,
};

/// A journal segment's open fails (EIO) this often (per 1,000) while recovery runs, in a run
/// with faults on: recovery fails and is started again, as a supervisor restarts the server.
pub const RECOVERY_READ_FAILS: u64 = 20;

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub batches: u64,
    pub commands: u64,
    pub acknowledged: u64,
    pub crashes: u64,
    pub crashes_in_recovery: u64,
    /// Crashes while a snapshot was being written (a prefix of it left behind).
    pub crashes_in_snapshot: u64,
    pub snapshots: u64,
    pub snapshots_damaged: u64,
    pub snapshots_refused: u64,
    /// Valid records recovery found after a torn one and cut with it (pages of an interrupted
    /// commit that reached the disk before earlier ones: `torn_any_order`).
    pub records_cut_after_tears: u64,
    /// Commands the history's catch-up replayed at start-ups, for what its log had lost.
    pub history_caught_up: u64,
    /// Deferred commits started (the pipeline's `start_commit`, in the runs that use it).
    pub deferred_commits: u64,
    /// Recoveries that failed on a read error and were started again.
    pub recoveries_failed_on_reads: u64,
    /// Recoveries whose journal no longer started at 1 (retention had retired segments).
    pub recoveries_after_retention: u64,
    /// Start-ups at which the history started over at the engine's event, a bit flipped in
    /// its log having cut what the retired journal could no longer replay.
    pub history_started_over: u64,
    /// Fee quotes asked before limit orders (each checked against the fee charged when the
    /// order filled whole at the quoted price).
    pub fee_quotes: u64,
    /// Of those, the ones whose order filled whole in one fill at the quoted price.
    pub fee_quotes_checked: u64,
    pub disk: DiskCounts,
    /// The history log's disk (synced now and then: what a crash keeps of the rest is torn).
    pub history_disk: DiskCounts,
    /// The market data.
    pub market: MarketReport,
    /// Set when the run ended on a corruption that recovery refused (with the message).
    pub refused: Option<String>,
    pub state_hash: Option<StateHash>,
}

impl Report {
    /// Adds `other`'s counts to these: a total over seeds.
    pub fn add(&mut self, other: &Report) {
        self.batches += other.batches;
        self.commands += other.commands;
        self.acknowledged += other.acknowledged;
        self.crashes += other.crashes;
        self.crashes_in_recovery += other.crashes_in_recovery;
        self.crashes_in_snapshot += other.crashes_in_snapshot;
        self.snapshots += other.snapshots;
        self.snapshots_damaged += other.snapshots_damaged;
        self.snapshots_refused += other.snapshots_refused;
        self.records_cut_after_tears += other.records_cut_after_tears;
        self.history_caught_up += other.history_caught_up;
        self.deferred_commits += other.deferred_commits;
        self.recoveries_failed_on_reads += other.recoveries_failed_on_reads;
        self.fee_quotes += other.fee_quotes;
        self.recoveries_after_retention += other.recoveries_after_retention;
        self.history_started_over += other.history_started_over;
        self.fee_quotes_checked += other.fee_quotes_checked;
        self.history_disk.add(&other.history_disk);
        self.market.add(&other.market);
        self.disk.add(&other.disk);
    }
}

/// A broken invariant: the seed and what broke.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub message: String,
    /// A run of the replicated cluster ([`run_cluster`]).
    pub cluster: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} (replay: cargo run --release -p bourse-sim -- --seed {}{})",
            self.seed,
            self.message,
            self.seed,
            if self.cluster { " --cluster" } else { "" }
        )
    }
}

/// Snapshots kept (the newest).
const SNAPSHOTS_KEPT: usize = 3;

fn journal_config() -> JournalConfig {
    JournalConfig {
        // Small segments, so that runs roll often and have older segments to damage.
        segment_size_bytes: 16 * 1024,
        durability: Durability::Durable,
        recovery: RecoveryMode::Refuse,
        prepare_next: PrepareNext::Manual,
        ..JournalConfig::default()
    }
}

/// The store of a run: the journal on the simulated disk, the snapshots in `dir` on the real
/// file system, and the retention the seed picked.
fn store_config(dir: &std::path::Path, retention: Retention) -> StoreConfig {
    StoreConfig {
        journal: journal_config(),
        snapshots_kept: SNAPSHOTS_KEPT,
        retention,
        ..StoreConfig::new(dir)
    }
}

struct Run {
    config: Config,
    rng: SplitMix64,
    disk: SimDisk,
    generator: Generator,
    engine: Engine,
    /// The server's store (`bourse_store::Store`): `None` while the process is down.
    store: Option<Store<SimDisk>>,
    store_config: StoreConfig,
    /// Holds the snapshots' directory.
    _dir: tempfile::TempDir,
    /// Every acknowledged command: (seq, its encoding).
    acked: Vec<(u64, Vec<u8>)>,
    history: SimHistory,
    market: SimMarket,
    /// The pipeline's deferred commit (the seed picks it for about half the runs) instead
    /// of one `commit` a batch.
    deferred: bool,
    /// Deferred mode: batches applied and not yet answered, oldest first.
    held: std::collections::VecDeque<Held>,
    /// Deferred mode: the commit whose sync is out.
    pending: Option<PendingCommit>,
    report: Report,
}

/// A batch the engine applied.
struct Held {
    last_seq: u64,
    /// The engine's newest event after it.
    event_seq: u64,
    commands: Vec<(u64, Vec<u8>)>,
    events: Vec<Event>,
}

/// Runs one seed.
pub fn run(config: Config) -> Result<Report, Failure> {
    // The journal is created on a sound disk; the faults start with the first batch.
    let disk = SimDisk::new(
        config.seed,
        Faults {
            torn_any_order: config.torn_any_order,
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().map_err(|e| fail(config.seed, format!("a directory: {e}")))?;
    let mut rng = SplitMix64(config.seed);
    let deferred = rng.chance(50);
    // Half the runs delete the journal segments older than every snapshot kept, as
    // `retention = delete` does.
    let retention = if rng.chance(50) {
        Retention::Delete
    } else {
        Retention::Keep
    };
    let store_config = store_config(dir.path(), retention);
    let mut store = Store::open_with_storage(&store_config, disk.clone(), &mut Silent)
        .map_err(|e| fail(config.seed, format!("a new store: {e}")))?
        .store;
    let history = SimHistory::new(config.seed, Faults::default())
        .map_err(|e| fail(config.seed, format!("a new history log: {e}")))?;
    let market = SimMarket::new(config.seed).map_err(|e| fail(config.seed, e))?;
    store.set_retention_floor(std::sync::Arc::clone(&history.durable));
    let mut run = Run {
        config,
        rng,
        deferred,
        held: std::collections::VecDeque::new(),
        pending: None,
        disk,
        generator: Generator::new(config.seed),
        engine: Engine::new(Limits::default()),
        store: Some(store),
        store_config,
        _dir: dir,
        acked: Vec::new(),
        history,
        market,
        report: Report {
            seed: config.seed,
            ..Report::default()
        },
    };
    run.set_faults(run.running_faults());
    for _ in 0..config.batches {
        run.report.batches += 1;
        if run.step()? {
            break;
        }
    }
    if run.report.refused.is_none() {
        // The end checks run on disks without faults: a full disk now would stop the server
        // with nothing left to run after it.
        run.set_faults(Faults {
            torn_any_order: config.torn_any_order,
            ..Faults::default()
        });
        run.history.drain().map_err(|e| run.fail(e))?;
        let reference = run.reference_history()?;
        run.history.check(&reference).map_err(|e| run.fail(e))?;
        run.market.finish().map_err(|e| run.fail(e))?;
        run.report.state_hash = Some(run.engine.state_hash());
    }
    run.report.disk = run.disk.counts();
    run.report.history_disk = run.history.disk.counts();
    run.report.history_started_over = run.history.started_over;
    run.report.market.disk = run.market.disk_counts();
    Ok(run.report)
}

fn fail(seed: u64, message: String) -> Failure {
    Failure {
        seed,
        message,
        cluster: false,
    }
}

impl Run {
    fn fail(&self, message: String) -> Failure {
        fail(self.config.seed, message)
    }

    /// One batch and what the seed does around it; `true` when the run ends (a refused
    /// corruption).
    fn step(&mut self) -> Result<bool, Failure> {
        if self.rng.chance(4) {
            // The server makes everything appended durable before it snapshots.
            if self.deferred && !self.sync_all() {
                return self.crash_and_recover();
            }
            if self.snapshot() {
                return self.crash_and_recover();
            }
        }
        if self.rng.chance(3) {
            return self.crash_and_recover();
        }
        let n = 1 + self.rng.below(32);
        let Some(journal) = self.store.as_mut().map(Store::journal) else {
            return Err(self.fail("no journal open".into()));
        };
        let mut batch = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut command: Command = self.generator.next_command();
            command.seq = journal.next_seq();
            let mut bytes = Vec::new();
            codec::encode(&command, &mut bytes);
            if journal.append(command.seq, &bytes).is_err() {
                // A full disk: the writer stops, the server fails stop.
                return self.crash_and_recover();
            }
            batch.push((command, bytes));
        }
        self.report.commands += n;
        if self.rng.chance(2) {
            return self.crash_and_recover();
        }
        if self.deferred {
            // The pipeline: the engine applies the batch now, and its answers wait for the
            // sync that covers it.
            let held = self.apply(batch)?;
            self.held.push_back(held);
            self.check_invariants()?;
            if !self.pump_sync() {
                return self.crash_and_recover();
            }
        } else {
            if journal.commit().is_err() || self.rng.chance(2) {
                return self.crash_and_recover();
            }
            let held = self.apply(batch)?;
            self.check_invariants()?;
            self.acknowledge(held);
        }
        if self.history.run(&mut self.rng).is_err() {
            // The history's log failed (a full disk): the server stops.
            return self.crash_and_recover();
        }
        if self
            .market
            .step(&mut self.rng, &mut self.report.market)
            .is_err()
        {
            // The market data failed (a full disk, a failed sync): the server stops.
            return self.crash_and_recover();
        }
        Ok(false)
    }

    /// The engine applies a batch.
    ///
    /// Before each limit order, a client asks for a fee quote, as the terminal does; if the
    /// order then fills whole in one fill at the quoted price, the fee it is charged must be
    /// the quote's (`Engine::quote_fee`'s promise).
    fn apply(&mut self, batch: Vec<(Command, Vec<u8>)>) -> Result<Held, Failure> {
        let mut held = Held {
            last_seq: 0,
            event_seq: 0,
            commands: Vec::with_capacity(batch.len()),
            events: Vec::new(),
        };
        for (command, bytes) in batch {
            let quote = match &command.kind {
                CommandKind::PlaceOrder(order) if order.price.is_some() => self
                    .engine
                    .quote_fee(
                        order.account,
                        order.product,
                        order.side,
                        order.qty,
                        order.price,
                    )
                    .ok()
                    .map(|quote| (order.qty, quote)),
                _ => None,
            };
            let start = held.events.len();
            let _ = self.engine.apply(&command, &mut held.events);
            let events = &held.events[start..];
            self.generator.observe(events);
            if let Some((qty, quote)) = quote {
                self.report.fee_quotes += 1;
                if check_quote(events, qty, &quote).map_err(|e| self.fail(e))? {
                    self.report.fee_quotes_checked += 1;
                }
            }
            held.last_seq = command.seq;
            held.commands.push((command.seq, bytes));
        }
        held.event_seq = self.engine.event_seq();
        Ok(held)
    }

    /// A batch is durable: it is answered, and its events go on the bus.
    fn acknowledge(&mut self, held: Held) {
        self.report.acknowledged += held.commands.len() as u64;
        self.acked.extend(held.commands);
        self.history
            .published(held.last_seq, held.event_seq, &held.events);
    }

    /// Answers the held batches that `committed` covers.
    fn release(&mut self, committed: u64) {
        while let Some(held) = self.held.pop_front_if(|h| h.last_seq <= committed) {
            self.acknowledge(held);
        }
    }

    /// The pipeline's sync thread, stepped by the seed: the deferred commit out finishes (or
    /// not yet), and a new one starts if anything waits for one. `false`: the server stops
    /// (a failed sync) or crashes between the sync and its finish.
    fn pump_sync(&mut self) -> bool {
        if let Some(pending) = self.pending.take() {
            if !self.rng.chance(60) {
                self.pending = Some(pending);
                return true;
            }
            let synced = pending.sync();
            if self.rng.chance(2) {
                return false;
            }
            let Some(journal) = self.store.as_mut().map(Store::journal) else {
                return false;
            };
            match journal.finish_commit(synced) {
                Ok(Some(committed)) => self.release(committed),
                Ok(None) => {}
                Err(_) => return false,
            }
        }
        let Some(journal) = self.store.as_mut().map(Store::journal) else {
            return false;
        };
        if journal.last_seq() > journal.committed_seq() {
            match journal.start_commit() {
                Ok(pending) => {
                    self.pending = Some(pending);
                    self.report.deferred_commits += 1;
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Waits for the deferred commit out, then commits the rest (as the pipeline does before
    /// a snapshot). `false`: the server stops.
    fn sync_all(&mut self) -> bool {
        let Some(journal) = self.store.as_mut().map(Store::journal) else {
            return false;
        };
        let mut committed = None;
        if let Some(pending) = self.pending.take() {
            match journal.finish_commit(pending.sync()) {
                Ok(c) => committed = c,
                Err(_) => return false,
            }
        }
        match journal.commit() {
            Ok(c) => committed = committed.max(c),
            Err(_) => return false,
        }
        if let Some(committed) = committed {
            self.release(committed);
        }
        true
    }

    /// What the history must hold: a fold of every event of the acknowledged commands,
    /// replayed from nothing, but for the events the history lost with a damaged log
    /// (`SimHistory::gaps`).
    fn reference_history(&self) -> Result<History, Failure> {
        let mut reference = History::default();
        replay(
            &mut Engine::new(Limits::default()),
            &self.acked,
            Some((&mut reference, &self.history.gaps)),
        )
        .map_err(|e| self.fail(e))?;
        Ok(reference)
    }

    /// The engine's image through the checks a snapshot load makes.
    fn check_invariants(&self) -> Result<(), Failure> {
        Engine::from_image(self.engine.to_image())
            .map(drop)
            .map_err(|e| self.fail(format!("the engine broke an invariant: {e}")))
    }

    /// A snapshot through the server's store, which then applies the retention; `true` when
    /// the process crashes while writing it (by the seed, in a run with faults on). The store
    /// writes a temporary file, syncs it and renames it: a crash leaves a prefix under the
    /// temporary name, which recovery must pass over. One in ten written (with faults on) has
    /// a bit flipped afterwards, which the load must refuse.
    fn snapshot(&mut self) -> bool {
        let seq = self.acked.last().map_or(0, |(seq, _)| *seq);
        if seq == 0 {
            return false;
        }
        let Some((bytes, fate)) =
            write_snapshot(&mut self.rng, self.config.faults, seq, &self.engine)
        else {
            return false;
        };
        self.report.snapshots += 1;
        let dir = self.store_config.snapshots_dir();
        if fate == SnapshotFate::Torn {
            self.report.crashes_in_snapshot += 1;
            let tmp = dir.join(format!(
                ".{}.tmp",
                bourse_snapshots::snapshot_file_name(seq)
            ));
            let _ = std::fs::write(tmp, bytes);
            return true;
        }
        let Some(store) = self.store.as_mut() else {
            return false;
        };
        let Ok(path) = store.write_snapshot(&self.engine, seq) else {
            // The journal stopped (retention could not remove a segment): the server stops.
            return true;
        };
        if fate == SnapshotFate::Damaged && std::fs::write(&path, bytes).is_ok() {
            self.report.snapshots_damaged += 1;
        }
        false
    }

    /// A crash, then recovery (which may crash too, and start over); `true` when recovery
    /// refused a corruption, which ends the run.
    fn crash_and_recover(&mut self) -> Result<bool, Failure> {
        self.report.crashes += 1;
        self.pending = None;
        self.held.clear();
        self.store = None;
        self.disk.crash();
        self.history.crash();
        self.market.crash();
        // Recovery runs on disks without faults (see `SimDisk::set_faults`), then they come
        // back.
        let torn_any_order = self.config.torn_any_order;
        self.set_faults(Faults {
            torn_any_order,
            ..Faults::default()
        });
        // Opening the journal may meet read errors (in a run with faults on); what follows
        // it reads a disk that answers.
        let reads_failing = |disk: &SimDisk, on: bool| {
            disk.set_faults(Faults {
                torn_any_order,
                read_fails: if on { RECOVERY_READ_FAILS } else { 0 },
                ..Faults::default()
            });
        };
        let outcome = loop {
            reads_failing(&self.disk, self.config.faults);
            let opened =
                Store::open_with_storage(&self.store_config, self.disk.clone(), &mut Silent);
            reads_failing(&self.disk, false);
            match opened {
                Err(StoreError::Journal(bourse_journal::Error::Corruption {
                    path,
                    offset,
                    kind,
                })) => {
                    let message = format!("{}: {kind} at {offset}", path.display());
                    let flipped = self.disk.flipped().map(bourse_journal::segment_file_name);
                    if flipped.is_none_or(|name| !path.ends_with(&name)) {
                        return Err(self.fail(format!(
                            "recovery refused a journal whose damage the disk did not make: {message}"
                        )));
                    }
                    self.report.refused = Some(message);
                    break Ok(true);
                }
                Err(StoreError::Journal(bourse_journal::Error::Io { source, .. }))
                    if source.raw_os_error() == Some(5) =>
                {
                    // A read error: the server does not start; it is started again.
                    self.report.recoveries_failed_on_reads += 1;
                    continue;
                }
                Err(StoreError::JournalStartsAfterSnapshot {
                    snapshot_seq,
                    journal_first,
                }) if damaged_snapshot_in(
                    &self.store_config.snapshots_dir(),
                    journal_first - 1..=u64::MAX,
                ) =>
                {
                    // Retention retired the journal before the oldest snapshot kept, and every
                    // snapshot from there on has a flipped bit: refused, and said so.
                    self.report.refused = Some(format!(
                        "every snapshot the journal (from {journal_first}) needs is damaged; \
                         the newest good one is at {snapshot_seq}"
                    ));
                    break Ok(true);
                }
                Err(e) => return Err(self.fail(format!("recovery failed: {e}"))),
                Ok(recovered) => {
                    if let Some(cut) = &recovered.report.journal.torn_tail {
                        self.report.records_cut_after_tears += cut.records_cut;
                    }
                    if self.rng.chance(10) {
                        // A crash while recovering: what open cut is on the disk or not.
                        self.report.crashes_in_recovery += 1;
                        drop(recovered);
                        self.disk.crash();
                        continue;
                    }
                    self.report.snapshots_refused +=
                        recovered.report.skipped_snapshots.len() as u64;
                    let bourse_store::Recovered {
                        mut store, engine, ..
                    } = recovered;
                    store.set_retention_floor(std::sync::Arc::clone(&self.history.durable));
                    self.recover(store.journal(), engine)?;
                    self.store = Some(store);
                    break Ok(false);
                }
            }
        };
        self.set_faults(self.running_faults());
        outcome
    }

    /// The faults of the run while it runs: [`FAULTS`] or none, torn writes as configured.
    fn running_faults(&self) -> Faults {
        Faults {
            torn_any_order: self.config.torn_any_order,
            ..if self.config.faults {
                FAULTS
            } else {
                Faults::default()
            }
        }
    }

    /// Sets the faults of every disk: the journal's, the history log's and the market data's.
    fn set_faults(&self, faults: Faults) {
        self.disk.set_faults(faults);
        self.history.disk.set_faults(faults);
        self.market.set_faults(faults);
    }

    /// The engine the server's store recovered (the newest good snapshot and the journal
    /// after it), checked against the acknowledged commands and a replay from nothing.
    fn recover(&mut self, journal: &Journal<SimDisk>, engine: Engine) -> Result<(), Failure> {
        let records = read_all(journal).map_err(|e| self.fail(e))?;
        let first = journal.first_seq();
        self.report.recoveries_after_retention += u64::from(first > 1);
        if first > 1 && self.store_config.retention == Retention::Keep {
            return Err(self.fail(format!(
                "the journal starts at {first}, and retention keeps every segment"
            )));
        }
        // Every acknowledged command from the journal's first on (retention retired those
        // before), byte for byte, in order.
        for (i, (seq, payload)) in records.iter().enumerate() {
            let want = first + i as u64;
            if *seq != want {
                return Err(self.fail(format!("the journal skips to {seq} at {want}")));
            }
            if let Some((_, acked)) = self.acked.get(want as usize - 1)
                && acked != payload
            {
                return Err(self.fail(format!("acknowledged command {seq} changed")));
            }
        }
        let last = first - 1 + records.len() as u64;
        if last < self.acked.len() as u64 {
            return Err(self.fail(format!(
                "acknowledged command {} lost: the journal ends at {last}",
                last + 1
            )));
        }
        // The journal is the truth from here: what it kept beyond the acknowledged was
        // appended and may survive.
        self.acked.truncate(first as usize - 1);
        self.acked.extend(records);
        let mut scratch = Engine::new(Limits::default());
        replay(&mut scratch, &self.acked, None).map_err(|e| self.fail(e))?;
        if engine.state_hash() != scratch.state_hash() {
            return Err(self.fail(format!(
                "the store's recovery (to {last}) and a replay from nothing disagree"
            )));
        }
        self.engine = engine;
        self.check_invariants()?;
        // Then the history, as the server starts it: its log, caught up from the journal.
        self.report.history_caught_up += self
            .history
            .recover(
                journal,
                &self.store_config.snapshots_dir(),
                self.engine.event_seq(),
            )
            .map_err(|e| self.fail(format!("the history's start-up: {e}")))?;
        let reference = self.reference_history()?;
        self.history
            .check(&reference)
            .map_err(|e| self.fail(format!("after recovery: {e}")))?;
        // And the market data, from its checkpoint and logs.
        self.market
            .recover(&mut self.report.market)
            .map_err(|e| self.fail(format!("the market data's start-up: {e}")))
    }
}
