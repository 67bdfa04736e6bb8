//! The single topology's engine thread without its threads, for a deterministic simulation
//! (`bourse-sim`): the caller hands it commands, then steps the engine thread's batch, the
//! sync thread's sync and the engine thread's idle turn in the order it chooses. The batch
//! is the pipeline's own code (`run.rs`'s `Single::process`): the same journaling, group
//! commit, held answers, snapshot markers, retention and bus. Only the ring, the parking
//! and the threads are left out.

use std::sync::Arc;

use bourse_engine::{Command, CommandKind, Engine};
use bourse_store::{FsStorage, Recovered, Storage};
use tokio::sync::{broadcast, oneshot};

use crate::handle::Ticket;
use crate::run::{Single, syncs_apart};
use crate::shared::Shared;
use crate::syncer::{SteppedSync, SyncDriver};
use crate::{EventBatch, Finished, PipelineConfig, PipelineError, SnapshotMode, Stats, Topology};

/// The engine thread of [`Topology::Single`], stepped by its caller.
///
/// With a durable journal and [`crate::SyncMode::Thread`], a batch's commit waits for
/// [`Stepped::run_sync`] (the sync thread's turn) and its answers for the engine thread to
/// take the finished sync ([`Stepped::idle`], or the next [`Stepped::process`]). Dropping it
/// without [`Stepped::finish`] is a crash: nothing held is answered (every ticket reports a
/// stop) and the journal keeps what its storage kept.
pub struct Stepped<S: Storage = FsStorage> {
    single: Single<S>,
    shared: Arc<Shared>,
}

impl<S: Storage> Stepped<S> {
    /// The engine thread on a recovered store and engine. Only the single topology, and
    /// snapshots written on the engine thread ([`SnapshotMode::InThread`]: a forked child
    /// would finish when the operating system says).
    pub fn new(recovered: Recovered<S>, config: PipelineConfig) -> Result<Self, PipelineError> {
        if config.topology != Topology::Single {
            return Err(PipelineError::InvalidConfig(
                "a stepped pipeline is the single topology",
            ));
        }
        if config.snapshot_mode != SnapshotMode::InThread {
            return Err(PipelineError::InvalidConfig(
                "a stepped pipeline writes its snapshots on the engine thread",
            ));
        }
        if config.batch_max == 0 || config.bus_capacity == 0 {
            return Err(PipelineError::InvalidConfig(
                "batch_max and bus_capacity must be positive",
            ));
        }
        let shared = Arc::new(Shared::new(
            recovered.next_seq(),
            config.ring_size,
            config.bus_capacity,
        ));
        let syncer = syncs_apart(&recovered.store, &config)
            .then(|| SyncDriver::Stepped(SteppedSync::default()));
        Ok(Stepped {
            single: Single::new(recovered, Arc::clone(&shared), config, syncer),
            shared,
        })
    }

    /// A subscriber of the event bus (subscribe before the first batch to see every one).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventBatch>> {
        self.shared.subscribe()
    }

    /// Hands `kind` to the engine thread, stamped `timestamp_ms` (made non-decreasing, as
    /// the ring's commands are); it is taken by the next [`Stepped::process`].
    pub fn submit_at(&mut self, kind: CommandKind, timestamp_ms: i64) -> Ticket {
        let command = self.single.sequencer.stamp(kind, timestamp_ms);
        let (tx, rx) = oneshot::channel();
        self.single.batch.push((command, Some(tx)));
        Ticket::new(rx, Arc::clone(&self.shared))
    }

    /// Asks for a snapshot cut after everything handed over before it (a journaled
    /// [`CommandKind::Snapshot`] marker, as [`crate::Handle::try_request_snapshot`] sends).
    pub fn request_snapshot_at(&mut self, timestamp_ms: i64) -> Ticket {
        self.submit_at(CommandKind::Snapshot, timestamp_ms)
    }

    /// The commands handed over and not yet processed, as the engine thread stamped them.
    pub fn batch(&self) -> impl Iterator<Item = &Command> {
        self.single.batch.iter().map(|(command, _)| command)
    }

    /// The sequence number the next command handed over gets.
    pub fn next_seq(&self) -> u64 {
        self.single.sequencer.next_seq
    }

    /// The engine thread's turn with a batch: everything handed over since the last one.
    pub fn process(&mut self) {
        self.single.process();
    }

    /// A commit waits for the sync thread.
    pub fn sync_waiting(&self) -> bool {
        matches!(&self.single.syncer, Some(SyncDriver::Stepped(s)) if s.waiting())
    }

    /// The sync thread's turn: syncs the commit handed to it, if one waits; `true` if one
    /// did. Its answers wait for the engine thread to take it.
    pub fn run_sync(&mut self) -> bool {
        match &mut self.single.syncer {
            Some(SyncDriver::Stepped(stepped)) => stepped.run(),
            _ => false,
        }
    }

    /// The engine thread's turn with nothing in the ring: it takes a finished sync
    /// (answering and publishing what it covers), hands over the next commit, and reaps a
    /// written snapshot (then applies the retention).
    pub fn idle(&mut self) {
        self.single.pump_sync();
        self.single.housekeeping(false);
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.single.engine
    }

    /// Why the pipeline stopped, if it did (a journal failure).
    pub fn stopped(&self) -> Option<String> {
        self.shared.stopped()
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// A clean shutdown, as [`crate::Pipeline::shutdown`]: everything handed over is
    /// processed, committed and answered, and the bus closed. An error if the pipeline
    /// stopped (then nothing held was acknowledged).
    pub fn finish(mut self) -> Result<Finished<S>, PipelineError> {
        if !self.single.batch.is_empty() {
            self.single.process();
        }
        let finished = self.single.finish();
        self.shared.close_bus();
        match self.shared.stopped() {
            Some(cause) => Err(PipelineError::Stopped(cause)),
            None => Ok(finished),
        }
    }
}
