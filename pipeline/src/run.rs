//! The pipeline threads' loops.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use bourse_engine::{Command, CommandKind, Engine, Event};
use bourse_journal::Durability;
use bourse_snapshots::SnapshotChild;
use bourse_store::{Recovered, Storage, Store};
use disruptor::{EventPoller, MultiConsumerBarrier, MultiProducerBarrier, Polling};

use crate::answer::Outcome;
use crate::answer::SubmitError;

use crate::shared::{Deliver, QueryJob, Shared};
use crate::slot::{Applied, ReplyTx, Request, Slot};
use crate::syncer::{SyncDriver, Syncer};
use crate::wake::{Sleeper, Waker};
use crate::{EventBatch, Finished, PipelineConfig, SnapshotMode, SyncMode, Topology};

/// Longest park: an idle engine thread looks around this often (to reap a finished snapshot
/// child); nothing waits on it.
pub(crate) const PARK_MAX: Duration = Duration::from_millis(20);

/// How long the engine thread spins for new commands while it waits for a sync.
const SYNC_WAIT_SPIN: Duration = Duration::from_micros(5);

/// How long shutdown waits for a snapshot child before killing it.
const SNAPSHOT_WAIT_MAX: Duration = Duration::from_secs(15 * 60);

/// The two kinds of ring readers, behind one interface (the crate's `Barrier` trait that
/// would make this generic is private).
pub(crate) trait Poller {
    /// Calls `f` with each available slot, at most `limit`, in order, then with `None`, and
    /// then releases the slots to the next stage.
    fn visit(&mut self, limit: u64, f: &mut dyn FnMut(Option<&Slot>)) -> Result<usize, Polling>;

    fn has_available(&self) -> bool;

    /// As `visit`, without the final call.
    fn drain(&mut self, limit: u64, f: &mut dyn FnMut(&Slot)) -> Result<usize, Polling> {
        self.visit(limit, &mut |slot| {
            if let Some(slot) = slot {
                f(slot);
            }
        })
    }
}

macro_rules! impl_poller {
    ($barrier:ty) => {
        impl Poller for EventPoller<Slot, $barrier> {
            fn visit(
                &mut self,
                limit: u64,
                f: &mut dyn FnMut(Option<&Slot>),
            ) -> Result<usize, Polling> {
                let mut guard = self.take(limit)?;
                let mut n = 0;
                for slot in &mut guard {
                    f(Some(slot));
                    n += 1;
                }
                f(None);
                // Dropping the guard releases the slots.
                drop(guard);
                Ok(n)
            }

            fn has_available(&self) -> bool {
                EventPoller::has_available(self)
            }
        }
    };
}

impl_poller!(MultiProducerBarrier);
impl_poller!(MultiConsumerBarrier);

/// The message of a caught panic (its `&str` or `String` payload).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Producers wake the threads that read the ring first; in the parallel topology the
/// journaler and the engine wake the publisher.
pub(crate) fn register_wakers(shared: &Shared, topology: Topology, wakers: Vec<Waker>) {
    // Wakers arrive in thread start order, which is not spawn order: sort by thread name.
    let mut named: Vec<(String, Waker)> =
        wakers.into_iter().map(|w| (w.thread_name(), w)).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let (first, publisher): (Vec<_>, Vec<_>) = named
        .into_iter()
        .partition(|(name, _)| topology == Topology::Single || name != PUBLISHER_NAME);
    let _ = shared
        .consumers
        .set(first.into_iter().map(|(_, w)| w).collect());
    let _ = shared
        .publisher
        .set(publisher.into_iter().map(|(_, w)| w).next());
}

pub(crate) const PUBLISHER_NAME: &str = "bourse-publish";

/// Turns slots into commands: the sequence number is the ring position, the timestamp the
/// entry time made non-decreasing. Every reader of the ring runs one, so all agree.
pub(crate) struct Sequencer {
    pub(crate) next_seq: u64,
    last_ts: i64,
}

impl Sequencer {
    fn new(first_seq: u64) -> Self {
        Sequencer {
            next_seq: first_seq,
            last_ts: i64::MIN,
        }
    }

    fn command(&mut self, slot: &Slot) -> Command {
        let kind = match &slot.request {
            Some(Request::Command(kind)) => kind.clone(),
            Some(Request::Snapshot) => CommandKind::Snapshot,
            #[cfg(test)]
            Some(Request::Panic) => panic!("a poisoned command (test)"),
            // `Handle::try_request` fills every slot it publishes. An empty one is a bug: the
            // panic stops the pipeline with this message instead of inventing a command.
            None => unreachable!("a published ring slot without a request"),
        };
        self.stamp(kind, slot.timestamp_ms)
    }

    /// The next command: `kind` with the next sequence number, at `timestamp_ms` or the
    /// previous command's time if that is later.
    pub(crate) fn stamp(&mut self, kind: CommandKind, timestamp_ms: i64) -> Command {
        let timestamp_ms = timestamp_ms.max(self.last_ts);
        self.last_ts = timestamp_ms;
        let seq = self.next_seq;
        self.next_seq += 1;
        Command {
            seq,
            timestamp_ms,
            kind,
        }
    }
}

fn answer(reply: Option<ReplyTx>, answer: Result<Outcome, SubmitError>) {
    if let Some(tx) = reply {
        // The submitter may have stopped waiting; that is its business.
        let _ = tx.send(answer);
    }
}

/// Snapshots taken by the engine thread: at most one being written at a time.
struct Snapshots {
    dir: PathBuf,
    keep: usize,
    mode: SnapshotMode,
    child: Option<SnapshotChild>,
    /// The sequence number of the newest snapshot written by this run.
    last_written: Option<u64>,
}

impl Snapshots {
    fn new<S: Storage>(store: &Store<S>, mode: SnapshotMode) -> Self {
        Snapshots {
            dir: store.config().snapshots_dir(),
            keep: store.snapshots_kept_when_writing(),
            mode,
            child: None,
            last_written: None,
        }
    }

    /// Starts a snapshot of `engine` at `seq` (committed already).
    fn start(&mut self, engine: &Engine, seq: u64) -> Result<(), String> {
        if self.child.is_some() {
            return Err("a snapshot is already being written".into());
        }
        match self.mode {
            SnapshotMode::Fork => {
                let child = bourse_snapshots::fork_snapshot(engine, seq, &self.dir, self.keep)
                    .map_err(|e| e.to_string())?;
                self.child = Some(child);
            }
            SnapshotMode::InThread => {
                bourse_snapshots::write_snapshot(&self.dir, seq, &engine.to_image(), self.keep)
                    .map_err(|e| e.to_string())?;
                self.last_written = Some(seq);
            }
        }
        Ok(())
    }

    /// Reaps a finished child; returns whether a snapshot was completed since the last call
    /// (so retention may run).
    fn poll(&mut self, block: bool) -> bool {
        let Some(child) = &mut self.child else {
            return self.last_written.take().is_some();
        };
        let result = if block {
            // At shutdown: wait for the child, but not for ever. A child cannot normally
            // hang (it runs only fork-safe code), but if it did, the server must still stop;
            // dropping the handle kills and reaps it, and the journal has everything anyway.
            let deadline = std::time::Instant::now() + SNAPSHOT_WAIT_MAX;
            loop {
                match child.try_wait() {
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::park_timeout(Duration::from_millis(10));
                    }
                    Ok(None) => {
                        self.child = None;
                        tracing::error!(
                            "the snapshot child did not finish in {} s; killed it",
                            SNAPSHOT_WAIT_MAX.as_secs()
                        );
                        return false;
                    }
                    other => break Some(other),
                }
            }
        } else {
            Some(child.try_wait())
        };
        match result {
            Some(Ok(Some(outcome))) => {
                self.child = None;
                self.last_written = None;
                let _ = outcome;
                true
            }
            Some(Ok(None)) | None => false,
            Some(Err(error)) => {
                self.child = None;
                // A failed snapshot costs only recovery time; the journal still has
                // everything. Say so once, where an operator looks.
                tracing::error!("snapshot failed: {error}");
                false
            }
        }
    }
}

/// What the single engine thread owns (`stepped.rs` steps it without its threads).
pub(crate) struct Single<S: Storage = bourse_store::FsStorage> {
    pub(crate) engine: Engine,
    pub(crate) store: Store<S>,
    shared: Arc<Shared>,
    config: PipelineConfig,
    pub(crate) sequencer: Sequencer,
    snapshots: Snapshots,
    /// Commands of the current batch with their reply senders.
    pub(crate) batch: Vec<(Command, Option<ReplyTx>)>,
    events: Vec<Event>,
    /// Durable mode: the thread that syncs while this one applies (see `syncer.rs`).
    pub(crate) syncer: Option<SyncDriver>,
    /// Durable mode: applied batches whose answers and events wait for their commit, oldest
    /// first.
    held: VecDeque<Held>,
    /// Emptied `Held`s, for reuse.
    spare: Vec<Held>,
    queries: Option<Receiver<QueryJob>>,
}

/// An applied batch waiting for its commit.
#[derive(Default)]
struct Held {
    first_seq: u64,
    last_seq: u64,
    answers: Vec<(Option<ReplyTx>, Result<Outcome, SubmitError>)>,
    events: Vec<Event>,
    /// Answers to queries that read the state after this batch.
    deliveries: Vec<Deliver>,
}

impl<S: Storage> Single<S> {
    /// The engine thread's state before its first batch.
    pub(crate) fn new(
        recovered: Recovered<S>,
        shared: Arc<Shared>,
        config: PipelineConfig,
        syncer: Option<SyncDriver>,
    ) -> Self {
        let Recovered { engine, store, .. } = recovered;
        Single {
            sequencer: Sequencer::new(shared.first_seq),
            snapshots: Snapshots::new(&store, config.snapshot_mode),
            batch: Vec::with_capacity(config.batch_max),
            events: Vec::new(),
            engine,
            store,
            queries: shared.take_query_rx(),
            shared,
            config,
            syncer,
            held: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// One batch: journal, then (durable mode) hand the commit to the sync thread, apply and
    /// hold the answers until it is durable; (other modes) commit, apply, answer, publish.
    pub(crate) fn process(&mut self) {
        if self.shared.is_stopped() {
            self.fail_batch();
            return;
        }
        let (first_seq, last_seq) = match (self.batch.first(), self.batch.last()) {
            (Some(first), Some(last)) => (first.0.seq, last.0.seq),
            _ => return,
        };
        let appended = self
            .batch
            .iter()
            .try_for_each(|(command, _)| self.store.append(command));
        let written = match (&self.syncer, appended) {
            (_, Err(error)) => Err(error),
            (Some(_), Ok(())) => Ok(()),
            (None, Ok(())) => self.store.commit().map(|_| ()),
        };
        if let Err(error) = written {
            self.stop(format!(
                "journal failure at seq {first_seq}..={last_seq}: {error}"
            ));
            self.fail_batch();
            return;
        }
        if self.syncer.is_none() {
            self.shared.committed_seq.store(last_seq, Ordering::Release);
        } else {
            // Start the sync of this batch now if the disk is free, so it runs while the
            // batch is applied.
            self.pump_sync();
        }

        let mut held = self.spare.pop().unwrap_or_default();
        held.first_seq = first_seq;
        held.last_seq = last_seq;
        std::mem::swap(&mut held.events, &mut self.events);
        held.events.clear();
        let mut batch = std::mem::take(&mut self.batch);
        for (command, reply) in batch.drain(..) {
            let start = held.events.len();
            let result = if matches!(command.kind, CommandKind::Snapshot) {
                // The engine changes nothing for the marker but its clock, as a replay does.
                let _ = self.engine.apply(&command, &mut held.events);
                match self.start_snapshot(command.seq) {
                    Ok(()) => Ok(()),
                    Err(why) => {
                        held.answers.push((reply, Err(SubmitError::Snapshot(why))));
                        continue;
                    }
                }
            } else {
                self.engine.apply(&command, &mut held.events)
            };
            let outcome = Outcome {
                seq: command.seq,
                timestamp_ms: command.timestamp_ms,
                result,
                events: held.events[start..].to_vec(),
            };
            held.answers.push((reply, Ok(outcome)));
        }
        self.batch = batch;
        self.shared.applied_seq.store(last_seq, Ordering::Release);
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        self.held.push_back(held);
        if self.syncer.is_some() {
            // A snapshot in this batch may have committed it already (`sync_all`).
            if let Some(committed) = self.store.journal().committed_seq() {
                self.release(committed);
            }
            self.pump_sync();
        } else {
            self.release(last_seq);
        }
        self.run_queries();
        self.housekeeping(false);
    }

    /// Answers the current batch and everything held with the stop cause.
    fn fail_batch(&mut self) {
        self.fail_held();
        let cause = self.shared.stopped().unwrap_or_default();
        for (_, reply) in self.batch.drain(..) {
            answer(reply, Err(SubmitError::Stopped(cause.clone())));
        }
    }

    /// Answers everything held with the stop cause: held answers were applied but are not
    /// known to be durable.
    fn fail_held(&mut self) {
        let cause = self.shared.stopped().unwrap_or_default();
        for mut held in self.held.drain(..) {
            for (reply, _) in held.answers.drain(..) {
                answer(reply, Err(SubmitError::Stopped(cause.clone())));
            }
            // Dropping a delivery closes its ticket, which then reports the stop.
            held.deliveries.clear();
        }
    }

    /// Records the stop and answers everything held with it.
    fn stop(&mut self, cause: String) {
        self.shared.stop(cause);
        self.fail_held();
    }

    /// Durable mode: takes a finished sync (releasing what it covers) and starts the next one
    /// if anything is waiting for it.
    pub(crate) fn pump_sync(&mut self) {
        let Some(syncer) = &mut self.syncer else {
            return;
        };
        if let Some(synced) = syncer.try_take() {
            self.finish_sync(synced);
        }
        self.start_sync();
    }

    fn start_sync(&mut self) {
        let Some(syncer) = &mut self.syncer else {
            return;
        };
        if syncer.is_busy() || self.shared.is_stopped() {
            return;
        }
        let journal = self.store.journal();
        if journal.last_seq() <= journal.committed_seq() {
            return;
        }
        match journal.start_commit() {
            Ok(job) => syncer.submit(job),
            Err(error) => self.stop(format!("journal failure: {error}")),
        }
    }

    fn finish_sync(&mut self, synced: bourse_journal::SyncedCommit) {
        match self.store.journal().finish_commit(synced) {
            Ok(Some(committed)) => self.release(committed),
            Ok(None) => {}
            Err(error) => self.stop(format!("journal failure: {error}")),
        }
    }

    /// Durable mode: waits for the sync out and commits the rest now, so that everything
    /// appended is durable (before a snapshot, at shutdown).
    fn sync_all(&mut self) -> Result<(), String> {
        if let Some(synced) = self.syncer.as_mut().and_then(SyncDriver::wait) {
            self.finish_sync(synced);
        }
        if self.shared.is_stopped() {
            return Err(self.shared.stopped().unwrap_or_default());
        }
        match self.store.commit() {
            Ok(Some(committed)) => {
                self.release(committed);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => {
                let cause = format!("journal failure: {error}");
                self.stop(cause.clone());
                Err(cause)
            }
        }
    }

    /// Answers and publishes every held batch that `committed` covers.
    fn release(&mut self, committed: u64) {
        self.shared
            .committed_seq
            .store(committed, Ordering::Release);
        while let Some(mut held) = self.held.pop_front_if(|held| held.last_seq <= committed) {
            for (reply, outcome) in held.answers.drain(..) {
                answer(reply, outcome);
            }
            publish(
                &self.shared,
                held.first_seq,
                held.last_seq,
                &mut held.events,
            );
            held.events.clear();
            for deliver in held.deliveries.drain(..) {
                deliver();
            }
            self.spare.push(held);
        }
    }

    /// Starts a snapshot at `seq`: the journal must hold it durably first, or a crash could
    /// leave a snapshot ahead of the journal.
    fn start_snapshot(&mut self, seq: u64) -> Result<(), String> {
        if self.syncer.is_some() {
            self.sync_all()?;
        }
        self.snapshots.start(&self.engine, seq)
    }

    /// Runs the queries waiting for the engine: each reads the state after every applied
    /// command and is answered when that state is durable (at once if it is already).
    fn run_queries(&mut self) {
        let Some(queries) = &self.queries else {
            return;
        };
        while let Ok(job) = queries.try_recv() {
            self.shared.pending_queries.fetch_sub(1, Ordering::SeqCst);
            if self.shared.is_stopped() {
                // Dropped: the ticket reports the stop.
                continue;
            }
            let deliver = job(&self.engine);
            match self.held.back_mut() {
                Some(newest) => newest.deliveries.push(deliver),
                None => deliver(),
            }
        }
    }

    /// Whether answers wait for a sync (durable mode).
    fn waiting_for_sync(&self) -> bool {
        self.syncer.as_ref().is_some_and(SyncDriver::is_busy)
    }

    pub(crate) fn housekeeping(&mut self, block: bool) {
        if self.snapshots.poll(block)
            && let Err(error) = self.store.apply_retention()
        {
            tracing::error!("journal retention failed: {error}");
        }
    }

    pub(crate) fn finish(mut self) -> Finished<S> {
        if self.syncer.is_some() && !self.shared.is_stopped() {
            // A failure is recorded as the stop cause and answered; nothing more to do.
            let _ = self.sync_all();
        }
        self.syncer = None;
        // Only after a stop can anything still be held.
        self.fail_held();
        self.housekeeping(true);
        let last_seq = self.sequencer.next_seq - 1;
        if self.config.snapshot_on_shutdown
            && !self.shared.is_stopped()
            && last_seq > 0
            && self.store.journal().committed_seq() == Some(last_seq)
        {
            match self.store.write_snapshot(&self.engine, last_seq) {
                Ok(_) => {}
                Err(error) => tracing::error!("final snapshot failed: {error}"),
            }
        }
        let state_hash = self.engine.state_hash();
        Finished {
            engine: self.engine,
            store: self.store,
            last_seq,
            state_hash,
        }
    }
}

/// Sends a batch's events to the bus if anyone listens.
fn publish(shared: &Shared, first_seq: u64, last_seq: u64, events: &mut Vec<Event>) {
    if !events.is_empty() {
        shared.publish_events(|| EventBatch {
            first_seq,
            last_seq,
            events: std::mem::take(events),
        });
    }
}

/// Answers everything still in the ring with the stop cause, until the ring may close.
fn drain_stopped(poller: &mut dyn Poller, shared: &Shared, sleeper: &Sleeper) {
    let cause = shared.stopped().unwrap_or_default();
    loop {
        match poller.drain(u64::MAX, &mut |slot| {
            answer(slot.take_reply(), Err(SubmitError::Stopped(cause.clone())));
        }) {
            Ok(_) => {}
            Err(Polling::Shutdown) => return,
            Err(Polling::NoEvents) => {
                if shared.may_exit() && !poller.has_available() {
                    return;
                }
                sleeper.wait_until(|| poller.has_available() || shared.may_exit());
            }
        }
    }
}

/// The sync thread, if the journal is durable and [`SyncMode::Thread`] asks for one.
fn start_syncer(
    store: &Store,
    config: &PipelineConfig,
    sleeper: &Sleeper,
    shared: &Arc<Shared>,
) -> std::io::Result<Option<SyncDriver>> {
    if !syncs_apart(store, config) {
        return Ok(None);
    }
    Syncer::start(sleeper.waker(), Arc::clone(shared)).map(|s| Some(SyncDriver::Thread(s)))
}

/// Whether the durable sync runs apart from the engine's work (a durable journal and
/// [`SyncMode::Thread`]).
pub(crate) fn syncs_apart<S: Storage>(store: &Store<S>, config: &PipelineConfig) -> bool {
    store.config().journal.durability == Durability::Durable && config.sync == SyncMode::Thread
}

/// The default topology's one thread.
pub(crate) fn single(
    mut poller: EventPoller<Slot, MultiProducerBarrier>,
    recovered: Recovered,
    shared: Arc<Shared>,
    config: PipelineConfig,
    sleeper: Sleeper,
) -> Option<Finished> {
    let syncer = match start_syncer(&recovered.store, &config, &sleeper, &shared) {
        Ok(syncer) => syncer,
        Err(error) => {
            shared.stop(format!("could not start the sync thread: {error}"));
            drain_stopped(&mut poller, &shared, &sleeper);
            return None;
        }
    };
    let mut state = Single::new(recovered, Arc::clone(&shared), config, syncer);
    let batch_max = state.config.batch_max as u64;
    // Replies taken from slots that the ring released during a panic: answered once the stop
    // cause is recorded.
    let mut orphans: Vec<ReplyTx> = Vec::new();
    let run = catch_unwind(AssertUnwindSafe(|| {
        loop {
            let Single {
                sequencer, batch, ..
            } = &mut state;
            let mut panicked = None;
            let drained = poller.drain(batch_max, &mut |slot| {
                // Every reply is taken before the slot is released, even after a panic: a
                // sender left in a released slot would keep its submitter waiting for ever.
                let reply = slot.take_reply();
                if panicked.is_some() {
                    orphans.extend(reply);
                    return;
                }
                match catch_unwind(AssertUnwindSafe(|| sequencer.command(slot))) {
                    Ok(command) => batch.push((command, reply)),
                    Err(panic) => {
                        orphans.extend(reply);
                        panicked = Some(panic);
                    }
                }
            });
            if let Some(panic) = panicked {
                std::panic::resume_unwind(panic);
            }
            match drained {
                Ok(n) => {
                    shared.consumed.fetch_add(n as u64, Ordering::Relaxed);
                    state.process();
                }
                Err(Polling::Shutdown) => break,
                Err(Polling::NoEvents) => {
                    state.run_queries();
                    if shared.may_exit() && !poller.has_available() && !shared.has_queries() {
                        break;
                    }
                    state.pump_sync();
                    state.housekeeping(false);
                    let syncing = state.waiting_for_sync();
                    let syncer = state.syncer.as_ref();
                    // While a sync is out, the sync thread wakes this one when it is done:
                    // spinning for it would only take the CPU from the producers.
                    let spin = if syncing {
                        SYNC_WAIT_SPIN
                    } else {
                        state.config.spin
                    };
                    sleeper.wait_until_spinning(spin, || {
                        poller.has_available()
                            || shared.has_queries()
                            || shared.may_exit()
                            || (syncing && syncer.is_some_and(SyncDriver::is_done))
                    });
                }
            }
        }
    }));
    match run {
        Ok(()) => Some(state.finish()),
        Err(panic) => {
            state.stop(format!(
                "the engine thread panicked: {}",
                panic_message(&*panic)
            ));
            // The sync thread stops after the sync out; nothing it covers is answered.
            state.syncer = None;
            let cause = shared.stopped().unwrap_or_default();
            let unanswered = state.batch.drain(..).map(|(_, reply)| reply);
            for reply in orphans.into_iter().map(Some).chain(unanswered) {
                answer(reply, Err(SubmitError::Stopped(cause.clone())));
            }
            drain_stopped(&mut poller, &shared, &sleeper);
            None
        }
    }
}

// ----- the parallel (LMAX) topology ---------------------------------------------------------

/// The three parts of the parallel topology before they start.
pub(crate) struct Parallel {
    recovered: Recovered,
    shared: Arc<Shared>,
    config: PipelineConfig,
}

impl Parallel {
    pub(crate) fn new(recovered: Recovered, shared: Arc<Shared>, config: PipelineConfig) -> Self {
        Parallel {
            recovered,
            shared,
            config,
        }
    }

    pub(crate) fn split(self) -> (Journaler, Applier, Publisher) {
        let Recovered { engine, store, .. } = self.recovered;
        let snapshots = Snapshots::new(&store, self.config.snapshot_mode);
        let first_seq = self.shared.first_seq;
        (
            Journaler {
                store,
                sequencer: Sequencer::new(first_seq),
                commands: Vec::with_capacity(self.config.batch_max),
                shared: Arc::clone(&self.shared),
                batch_max: self.config.batch_max,
            },
            Applier {
                engine,
                snapshots,
                sequencer: Sequencer::new(first_seq),
                shared: Arc::clone(&self.shared),
                config: self.config.clone(),
                queries: self.shared.take_query_rx(),
            },
            Publisher {
                events: Vec::new(),
                shared: self.shared,
                batch_max: self.config.batch_max,
            },
        )
    }
}

/// One stage of the parallel topology.
trait Stage {
    /// Takes and handles one batch.
    fn batch(&mut self, poller: &mut dyn Poller, limit: u64) -> Result<usize, Polling>;
    /// Housekeeping while the ring is empty.
    fn idle(&mut self) {}
    /// Work that arrives outside the ring (queries) is waiting.
    fn pending(&self) -> bool {
        false
    }
}

/// Runs `stage` over batches from `poller` until the ring closes. On a panic, records it as
/// the stop cause and keeps consuming (the publisher answers `Stopped` from then on); returns
/// whether the stage ended normally.
fn stage_loop(
    poller: &mut dyn Poller,
    shared: &Shared,
    sleeper: &Sleeper,
    limit: u64,
    stage: &mut dyn Stage,
    is_publisher: bool,
) -> bool {
    // The publisher reads behind the other two: it may only leave once they have left (so
    // nothing more can become available to it) and it has taken everything.
    let may_exit = || {
        shared.may_exit() && (!is_publisher || shared.upstream_running.load(Ordering::SeqCst) == 0)
    };
    let run = catch_unwind(AssertUnwindSafe(|| {
        loop {
            match stage.batch(&mut *poller, limit) {
                Ok(_) => {}
                Err(Polling::Shutdown) => break,
                Err(Polling::NoEvents) => {
                    stage.idle();
                    if may_exit() && !poller.has_available() && !stage.pending() {
                        break;
                    }
                    sleeper.wait_until(|| poller.has_available() || stage.pending() || may_exit());
                }
            }
        }
    }));
    let ok = match run {
        Ok(()) => true,
        Err(panic) => {
            shared.stop(format!(
                "a pipeline thread ({}) panicked: {}",
                std::thread::current().name().unwrap_or("?"),
                panic_message(&*panic)
            ));
            shared.wake_publisher();
            drain_silently(poller, shared, sleeper, &may_exit);
            false
        }
    };
    if !is_publisher {
        shared.upstream_running.fetch_sub(1, Ordering::SeqCst);
        shared.wake_publisher();
    }
    ok
}

fn drain_silently(
    poller: &mut dyn Poller,
    shared: &Shared,
    sleeper: &Sleeper,
    may_exit: &dyn Fn() -> bool,
) {
    loop {
        match poller.drain(u64::MAX, &mut |slot| {
            // Only the publisher answers; for the others this just moves the ring along.
            let _ = slot;
        }) {
            Ok(_) => shared.wake_publisher(),
            Err(Polling::Shutdown) => return,
            Err(Polling::NoEvents) => {
                if may_exit() && !poller.has_available() {
                    return;
                }
                sleeper.wait_until(|| poller.has_available() || may_exit());
            }
        }
    }
}

/// Appends and commits; owns the journal.
pub(crate) struct Journaler {
    store: Store,
    sequencer: Sequencer,
    commands: Vec<Command>,
    shared: Arc<Shared>,
    batch_max: usize,
}

impl Stage for Journaler {
    fn batch(&mut self, poller: &mut dyn Poller, limit: u64) -> Result<usize, Polling> {
        let Journaler {
            store,
            sequencer,
            commands,
            shared,
            ..
        } = self;
        commands.clear();
        // The slots are released to the publisher only after the commit (the `None` step):
        // the publisher never sees a command that is not durable.
        let n = poller.visit(limit, &mut |slot| match slot {
            Some(slot) => commands.push(sequencer.command(slot)),
            None => {
                if shared.is_stopped() {
                    return;
                }
                let written = commands
                    .iter()
                    .try_for_each(|command| store.append(command))
                    .and_then(|()| store.commit());
                match written {
                    Ok(_) => {
                        if let Some(last) = commands.last() {
                            shared.committed_seq.store(last.seq, Ordering::Release);
                        }
                    }
                    Err(error) => shared.stop(format!("journal failure: {error}")),
                }
            }
        })?;
        shared.consumed.fetch_add(n as u64, Ordering::Relaxed);
        shared.batches.fetch_add(1, Ordering::Relaxed);
        shared.wake_publisher();
        Ok(n)
    }

    fn idle(&mut self) {
        if self.shared.retention_due.swap(false, Ordering::AcqRel)
            && let Err(error) = self.store.apply_retention()
        {
            tracing::error!("journal retention failed: {error}");
        }
    }
}

impl Journaler {
    pub(crate) fn run(
        mut self,
        mut poller: EventPoller<Slot, MultiProducerBarrier>,
        sleeper: Sleeper,
    ) -> Option<Finished> {
        let shared = Arc::clone(&self.shared);
        let limit = self.batch_max as u64;
        if stage_loop(&mut poller, &shared, &sleeper, limit, &mut self, false) {
            // Retention for a snapshot that completes at the very end is left to `shutdown`,
            // which has both parts back.
            *shared.store_out.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.store);
        }
        None
    }
}

/// Applies; owns the engine and takes snapshots.
pub(crate) struct Applier {
    engine: Engine,
    snapshots: Snapshots,
    sequencer: Sequencer,
    shared: Arc<Shared>,
    config: PipelineConfig,
    queries: Option<Receiver<QueryJob>>,
}

impl Stage for Applier {
    fn batch(&mut self, poller: &mut dyn Poller, limit: u64) -> Result<usize, Polling> {
        let Applier {
            engine,
            snapshots,
            sequencer,
            shared,
            ..
        } = self;
        let mut last = None;
        let n = poller.drain(limit, &mut |slot| {
            let command = sequencer.command(slot);
            let mut events = Vec::new();
            let result = if matches!(command.kind, CommandKind::Snapshot) {
                // A snapshot never runs ahead of the journal: the journaler is at most a batch
                // behind, so wait for it to commit this far.
                while shared.committed_seq.load(Ordering::Acquire) < command.seq
                    && !shared.is_stopped()
                {
                    std::thread::yield_now();
                }
                // The engine changes nothing for the marker but its clock, as a replay does.
                let _ = engine.apply(&command, &mut events);
                snapshots
                    .start(engine, command.seq)
                    .map(|()| Ok(()))
                    .map_err(SubmitError::Snapshot)
            } else {
                Ok(engine.apply(&command, &mut events))
            };
            last = Some(command.seq);
            *slot.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(Applied {
                seq: command.seq,
                timestamp_ms: command.timestamp_ms,
                result,
                events,
            });
        })?;
        if let Some(last) = last {
            shared.applied_seq.store(last, Ordering::Release);
        }
        shared.wake_publisher();
        self.idle();
        Ok(n)
    }

    fn idle(&mut self) {
        self.run_queries();
        if self.snapshots.poll(false) {
            self.shared.retention_due.store(true, Ordering::Release);
        }
    }

    fn pending(&self) -> bool {
        self.shared.has_queries()
    }
}

impl Applier {
    /// Runs the waiting queries on the state after every applied command, and answers them
    /// once the journaler has committed that far (it is at most a batch behind).
    fn run_queries(&mut self) {
        let Some(queries) = &self.queries else {
            return;
        };
        let applied = self.sequencer.next_seq - 1;
        while let Ok(job) = queries.try_recv() {
            self.shared.pending_queries.fetch_sub(1, Ordering::SeqCst);
            let deliver = job(&self.engine);
            while self.shared.committed_seq.load(Ordering::Acquire) < applied
                && !self.shared.is_stopped()
            {
                std::thread::yield_now();
            }
            if !self.shared.is_stopped() {
                deliver();
            }
        }
    }
}

impl Applier {
    pub(crate) fn run(
        mut self,
        mut poller: EventPoller<Slot, MultiProducerBarrier>,
        sleeper: Sleeper,
    ) -> Option<Finished> {
        let shared = Arc::clone(&self.shared);
        let limit = self.config.batch_max as u64;
        let ok = stage_loop(&mut poller, &shared, &sleeper, limit, &mut self, false);
        if ok {
            if self.snapshots.poll(true) {
                shared.retention_due.store(true, Ordering::Release);
            }
            let last_seq = self.sequencer.next_seq - 1;
            // The journaler may still be finishing its last commit.
            while shared.committed_seq.load(Ordering::Acquire) < last_seq && !shared.is_stopped() {
                std::thread::yield_now();
            }
            if self.config.snapshot_on_shutdown && !shared.is_stopped() && last_seq > 0 {
                match bourse_snapshots::write_snapshot(
                    &self.snapshots.dir,
                    last_seq,
                    &self.engine.to_image(),
                    self.snapshots.keep,
                ) {
                    Ok(_) => shared.retention_due.store(true, Ordering::Release),
                    Err(error) => tracing::error!("final snapshot failed: {error}"),
                }
            }
            let state_hash = self.engine.state_hash();
            *shared.engine_out.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((self.engine, last_seq, state_hash));
        }
        None
    }
}

/// Answers and publishes, after both the journaler and the engine are past a command.
pub(crate) struct Publisher {
    events: Vec<Event>,
    shared: Arc<Shared>,
    batch_max: usize,
}

impl Stage for Publisher {
    fn batch(&mut self, poller: &mut dyn Poller, limit: u64) -> Result<usize, Polling> {
        let Publisher { events, shared, .. } = self;
        let (mut first, mut last) = (None, 0);
        let n = poller.drain(limit, &mut |slot| {
            let reply = slot.take_reply();
            let applied = slot.result.lock().unwrap_or_else(|e| e.into_inner()).take();
            // Only what the journaler committed is answered as done. Normally it releases a
            // slot only after committing it; a slot it let go of in a panic is not durable.
            let committed = shared.committed_seq.load(Ordering::Acquire);
            let stopped = if applied
                .as_ref()
                .is_none_or(|applied| applied.seq > committed)
            {
                Some(
                    shared
                        .stopped()
                        .unwrap_or_else(|| "the journal did not commit this command".into()),
                )
            } else {
                None
            };
            match (stopped, applied) {
                (Some(cause), _) => answer(reply, Err(SubmitError::Stopped(cause))),
                (None, Some(applied)) => {
                    first.get_or_insert(applied.seq);
                    last = applied.seq;
                    events.extend_from_slice(&applied.events);
                    answer(
                        reply,
                        applied.result.map(|result| Outcome {
                            seq: applied.seq,
                            timestamp_ms: applied.timestamp_ms,
                            result,
                            events: applied.events,
                        }),
                    );
                }
                (None, None) => answer(
                    reply,
                    Err(SubmitError::Stopped("the engine produced no result".into())),
                ),
            }
        })?;
        if let Some(first) = first {
            publish(shared, first, last, events);
            events.clear();
        }
        Ok(n)
    }
}

impl Publisher {
    pub(crate) fn run(
        mut self,
        mut poller: EventPoller<Slot, MultiConsumerBarrier>,
        sleeper: Sleeper,
    ) -> Option<Finished> {
        let shared = Arc::clone(&self.shared);
        let limit = self.batch_max as u64;
        stage_loop(&mut poller, &shared, &sleeper, limit, &mut self, true);
        None
    }
}

impl Waker {
    fn thread_name(&self) -> String {
        self.thread().name().unwrap_or("").to_string()
    }
}
