//! Deterministic simulation of the server's durable path: the pipeline's own engine thread,
//! the engine, the journal on a simulated disk (`disk.rs`), snapshots and recovery, driven in
//! one thread by a seeded workload on a simulated clock, with seeded crashes and disk faults,
//! and every invariant checked as it goes. One seed is one run, the same every time: a
//! failure prints the command that replays it.
//!
//! **A run.** Batches of 1 to 32 commands of the seeded workload (`bourse_tests::workload`:
//! 300 accounts, two books, every order type and time in force, cancels, amendments, deposits
//! and withdrawals, halts, profile changes, commands the engine refuses) arrive on the
//! simulated clock (`clock.rs`) and are handed to the pipeline's engine thread
//! (`bourse_pipeline::Stepped`, `server.rs`), which journals each batch, commits it and
//! applies it, and answers and publishes it once it is durable. In about half the runs (by
//! the seed) the commit runs on the sync thread, whose turn comes when its sync ends on the
//! clock (some syncs are slow); in the others the engine thread syncs inline. Every command
//! also goes through a mirror engine, and every answer must be the mirror's outcome, in
//! order. A snapshot is a marker in a batch, written by the engine thread, which then applies
//! the retention (half the runs have it on); one is sometimes damaged afterwards. Crashes
//! fall between steps, before a commit's sync (the sync fails), after a commit before anyone
//! heard, after the sync thread's sync before the engine thread took it, and while a snapshot
//! is written. A failed sync or a full disk stops the pipeline, and the run crashes there, as
//! the server fails stop.
//!
//! **Recovery** is the server's own (`bourse_store::Store::open_with_storage` over the
//! simulated disk, the snapshots as files): open the journal (torn tails cut, damage anywhere
//! else refused), load the newest snapshot that passes its checks, replay the journal after
//! it. It may crash again while it replays, and start over.
//!
//! **The history read model** (`history.rs`) runs beside it as the server's history thread
//! does: it takes the batches the pipeline publishes some batches later (by the seed), appends
//! them to its own log on a second simulated disk, syncs it now and then (raising the store's
//! retention floor) and folds them; at start-up it reads its log back and
//! `bourse_history::catch_up` replays the journal for what it lost. A failed append or sync
//! stops the server.
//!
//! **The market data** (`market.rs`) takes a seeded feed beside it, on simulated disks of its
//! own, checkpoints by the seed, crashes with the process and resumes the feed from the offset
//! it stored.
//!
//! **Checked:** every answer (`server.rs`); after every batch, the engine's image passes the checks a snapshot load makes
//! (conservation of every asset, holds equal to what open orders can spend, books uncrossed,
//! ids and counters); after every recovery, every acknowledged command is in the journal,
//! byte for byte and in order, and the recovered engine's state hash equals a replay of the
//! whole journal from nothing, and the history read model holds exactly the records of a
//! fold of every event of that replay; a corruption is refused naming the damaged segment,
//! never passed over; every product's candles are the aggregate of its stored ticks. At the
//! end, the pipeline's shutdown (everything answered, its state hash the mirror's), the
//! history again, and the market data against one that never crashed.

mod clock;
mod cluster;
mod common;
pub mod disk;
mod history;
mod market;
mod server;

use bourse_engine::{Engine, Limits, StateHash};
use bourse_history::History;
use bourse_journal::{Durability, Journal, JournalConfig, PrepareNext, RecoveryMode};
use bourse_store::{Retention, Silent, Store, StoreConfig, StoreError};
use bourse_tests::workload::{Generator, SplitMix64};

pub use crate::clock::Latencies;
pub use crate::cluster::{ClusterConfig, ClusterReport, run_cluster};
use crate::common::{SnapshotFate, damaged_snapshot_in, flip_bit, read_all, replay, snapshot_fate};
use crate::disk::{DiskCounts, Faults, SimDisk};
use crate::history::SimHistory;
pub use crate::market::MarketReport;
use crate::market::SimMarket;
use crate::server::Server;

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
    /// Syncs of the history log started on its sync thread and landed (each raising the
    /// retention floor).
    pub history_syncs: u64,
    /// Fee quotes asked before limit orders (each checked against the fee charged when the
    /// order filled whole at the quoted price).
    pub fee_quotes: u64,
    /// Of those, the ones whose order filled whole in one fill at the quoted price.
    pub fee_quotes_checked: u64,
    /// How long each acknowledged command waited for its answer, on the simulated clock.
    pub ack_latency: Latencies,
    /// The simulated time the run covered, ns.
    pub simulated_ns: u64,
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
        self.history_syncs += other.history_syncs;
        self.fee_quotes_checked += other.fee_quotes_checked;
        self.ack_latency.add(&other.ack_latency);
        self.simulated_ns += other.simulated_ns;
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
    /// An engine fed every command as it is handed to the pipeline: the fee quotes, and the
    /// outcome each answer must carry.
    mirror: Engine,
    /// The server: `None` while the process is down.
    server: Option<Server>,
    store_config: StoreConfig,
    /// Holds the snapshots' directory.
    _dir: tempfile::TempDir,
    /// Every acknowledged command: (seq, its encoding).
    acked: Vec<(u64, Vec<u8>)>,
    history: SimHistory,
    market: SimMarket,
    /// The pipeline syncs on its sync thread (the seed picks it for about half the runs)
    /// instead of inline.
    deferred: bool,
    /// The newest command's time.
    last_ms: i64,
    /// The simulated clock, ns (`clock.rs`).
    clock_ns: u64,
    /// When the sync handed to the sync thread finishes on the clock.
    sync_end: Option<u64>,
    report: Report,
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
    let recovered = Store::open_with_storage(&store_config, disk.clone(), &mut Silent)
        .map_err(|e| fail(config.seed, format!("a new store: {e}")))?;
    let history = SimHistory::new(config.seed, Faults::default())
        .map_err(|e| fail(config.seed, format!("a new history log: {e}")))?;
    let market = SimMarket::new(config.seed).map_err(|e| fail(config.seed, e))?;
    let mut run = Run {
        config,
        rng,
        deferred,
        disk,
        generator: Generator::new(config.seed),
        mirror: Engine::new(Limits::default()),
        server: None,
        store_config,
        _dir: dir,
        acked: Vec::new(),
        history,
        market,
        last_ms: 0,
        clock_ns: 0,
        sync_end: None,
        report: Report {
            seed: config.seed,
            ..Report::default()
        },
    };
    run.start(recovered)?;
    run.set_faults(run.running_faults());
    for _ in 0..config.batches {
        run.report.batches += 1;
        if run.step()? {
            break;
        }
    }
    // The end checks run on disks without faults: a full disk now would stop the server
    // with nothing left to run after it.
    run.set_faults(run.no_faults());
    if run.report.refused.is_none() && !run.shut_down()? {
        run.history.drain().map_err(|e| run.fail(e))?;
        let reference = run.reference_history()?;
        run.history.check(&reference).map_err(|e| run.fail(e))?;
        run.market.finish().map_err(|e| run.fail(e))?;
        run.report.state_hash = Some(run.mirror.state_hash());
    }
    run.report.simulated_ns = run.clock_ns;
    run.report.disk = run.disk.counts();
    run.report.history_disk = run.history.disk.counts();
    run.report.history_started_over = run.history.started_over;
    run.report.history_syncs = run.history.syncs_landed;
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
        if self.rng.chance(3) {
            return self.crash_and_recover();
        }
        // The sync thread and the engine thread do what falls before the batch arrives.
        let arrives = self.clock_ns + clock::arrival_gap(&mut self.rng);
        if !self.run_until(arrives)? {
            return self.crash_and_recover();
        }
        self.clock_ns = arrives;
        let n = 1 + self.rng.below(32);
        // A snapshot request somewhere in the batch (it travels the ring as a marker).
        let snapshot = if self.rng.chance(4) {
            match snapshot_fate(&mut self.rng, self.config.faults) {
                SnapshotFate::Torn => return self.crash_in_snapshot(),
                fate => Some((self.rng.below(n + 1), fate)),
            }
        } else {
            None
        };
        let mut marker = None;
        for i in 0..=n {
            if snapshot.is_some_and(|(at, _)| at == i) {
                let at = self.last_ms;
                let ticket = self.server()?.pipeline.request_snapshot_at(at);
                self.report.snapshots += 1;
                marker = Some(self.hand_over(ticket)?);
            }
            if i < n {
                let command = self.generator.next_command();
                self.last_ms = self.last_ms.max(command.timestamp_ms);
                let ticket = self
                    .server()?
                    .pipeline
                    .submit_at(command.kind, command.timestamp_ms);
                self.hand_over(ticket)?;
            }
        }
        self.report.commands += n;
        if self.rng.chance(2) {
            // The process dies before the batch's commit is on the disk (its sync fails and
            // stops the pipeline, which the server fails stop on).
            self.disk.fail_next_sync();
        }
        self.server()?.pipeline.process();
        if !self.deferred {
            // The engine thread waited for the batch's sync.
            self.clock_ns += clock::sync_duration(&mut self.rng);
        }
        self.schedule_sync()?;
        if let (Some(seq), Some((_, SnapshotFate::Damaged))) = (marker, snapshot) {
            let path = self
                .store_config
                .snapshots_dir()
                .join(bourse_snapshots::snapshot_file_name(seq));
            if flip_bit(&mut self.rng, &path) {
                self.report.snapshots_damaged += 1;
            }
        }
        if self.rng.chance(2) {
            // After the commit and the apply, before anyone heard.
            return self.crash_and_recover();
        }
        if !self.collect()? {
            return self.crash_and_recover();
        }
        self.check_invariants()?;
        if !self.publish()? || self.history.run(&mut self.rng).is_err() {
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

    /// The pipeline's engine (the mirror's while the server is down) through the checks a
    /// snapshot load makes.
    fn check_invariants(&self) -> Result<(), Failure> {
        let engine = self
            .server
            .as_ref()
            .map_or(&self.mirror, |s| s.pipeline.engine());
        Engine::from_image(engine.to_image())
            .map(drop)
            .map_err(|e| self.fail(format!("the engine broke an invariant: {e}")))
    }

    /// The process crashes while the engine thread writes a snapshot: the store's temporary
    /// file is left with a prefix of it, which recovery must pass over.
    fn crash_in_snapshot(&mut self) -> Result<bool, Failure> {
        let seq = self.server()?.pipeline.next_seq();
        if let Ok(bytes) = bourse_snapshots::encode(seq, &self.mirror.to_image()) {
            let mut bytes = bytes.to_bytes();
            bytes.truncate(self.rng.below(bytes.len() as u64 + 1) as usize);
            let tmp = self.store_config.snapshots_dir().join(format!(
                ".{}.tmp",
                bourse_snapshots::snapshot_file_name(seq)
            ));
            self.report.snapshots += 1;
            self.report.crashes_in_snapshot += 1;
            let _ = std::fs::write(tmp, bytes);
        }
        self.crash_and_recover()
    }

    /// A crash, then recovery (which may crash too, and start over); `true` when recovery
    /// refused a corruption, which ends the run.
    fn crash_and_recover(&mut self) -> Result<bool, Failure> {
        self.report.crashes += 1;
        self.server = None;
        self.sync_end = None;
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
                Ok(mut recovered) => {
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
                    self.recover(recovered.store.journal(), &recovered.engine)?;
                    self.start(recovered)?;
                    break Ok(false);
                }
            }
        };
        self.set_faults(self.running_faults());
        outcome
    }

    /// No faults, torn writes as configured.
    fn no_faults(&self) -> Faults {
        Faults {
            torn_any_order: self.config.torn_any_order,
            ..Faults::default()
        }
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
    fn recover(&mut self, journal: &Journal<SimDisk>, engine: &Engine) -> Result<(), Failure> {
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
        // The mirror goes on from the replay.
        self.mirror = scratch;
        self.check_invariants()?;
        // Then the history, as the server starts it: its log, caught up from the journal.
        self.report.history_caught_up += self
            .history
            .recover(
                journal,
                &self.store_config.snapshots_dir(),
                engine.event_seq(),
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
