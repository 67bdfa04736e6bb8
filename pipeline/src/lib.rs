//! The LMAX-style pipeline: producers publish commands into a `disruptor` ring; an engine
//! thread journals each batch, commits it once (group commit), applies each command in
//! sequence order and publishes the results. Nothing is answered before it is durable under
//! the journal's durability mode. With a durable journal the single topology syncs on a sync
//! thread by default ([`SyncMode::Thread`]): the engine applies a batch while the disk syncs
//! it and holds the answers until the sync is done.
//!
//! ```text
//! Handle::try_submit --try_publish--> [ring: disruptor, multi-producer]
//!                                          |
//!   Topology::Single (default)             |   Topology::Parallel (LMAX, for more cores)
//!   one thread, per batch:                 |   journaler: append, commit    } in parallel
//!     append each -> commit once           |   engine:    apply             }
//!     -> apply each -> answer, publish     |   publisher (after both): answer, publish
//!                                          v
//!             replies (one per command)  +  event bus (bounded broadcast, lag detected)
//! ```
//!
//! - **Sequence numbers and time** are assigned at entry: a command's sequence number is the
//!   ring sequence it claimed (plus the first sequence number of this run), its timestamp the
//!   wall clock when it was published. The consumer makes timestamps non-decreasing along the
//!   sequence (`max` with the previous one) before journaling, so the journal holds exactly
//!   what the engine used.
//! - **Waiting**: every consumer spins briefly, then parks ([`wake`]); producers unpark it
//!   after publishing. An idle pipeline uses no CPU; a busy one never parks.
//! - **Backpressure**: a full ring answers [`SubmitError::Busy`] at once. Nothing blocks a
//!   submitter, and every queue is bounded (the ring, one reply per command, the bus).
//! - **Snapshots** are requested through the ring ([`Handle::try_request_snapshot`]), so they
//!   cut at an exact sequence number; the request is journaled as a
//!   [`bourse_engine::CommandKind::Snapshot`] marker (a no-op for the engine).
//! - **Failure**: a journal error (ENOSPC, failed sync) stops the pipeline: the batch being
//!   written and everything after it is answered [`SubmitError::Stopped`] and never applied.
//!   A panic in a pipeline thread does the same, with the panic message as the cause.
//! - **Shutdown** ([`Pipeline::shutdown`]): new submissions are refused, the ring is drained
//!   (every accepted command is answered), the last batch is committed, and optionally a final
//!   snapshot is written.

mod answer;
mod handle;
pub mod query;
mod run;
mod shared;
mod slot;
mod stepped;
mod syncer;
pub mod wake;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use bourse_engine::{Engine, Event, StateHash};
use bourse_store::{Recovered, Store};
use disruptor::{BusySpin, build_multi_producer};

pub use answer::{Outcome, SubmitError};
pub use handle::{Handle, Ticket};
pub use query::{QUERY_CAPACITY_DEFAULT, QueryTicket};
pub use run::panic_message;
pub use stepped::Stepped;

use crate::shared::Shared;
use crate::slot::Slot;
use crate::wake::Sleeper;

/// The smallest ring the multi-producer disruptor supports.
pub const RING_SIZE_MIN: usize = 64;

/// How the pipeline's work is spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// One engine thread journals, commits, applies and publishes each batch (the default:
    /// on two cores, parallel spinning stages fight over the CPU).
    #[default]
    Single,
    /// LMAX: a journaler thread (append + commit) and an engine thread (apply) read the ring
    /// in parallel; a publisher thread answers a command only after both are past it.
    Parallel,
}

impl std::str::FromStr for Topology {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "single" => Ok(Topology::Single),
            "parallel" | "lmax" => Ok(Topology::Parallel),
            other => Err(format!("unknown topology {other:?} (single, parallel)")),
        }
    }
}

/// How snapshots are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// A `fork()`ed child writes it from a copy-on-write image of the process: the engine
    /// pauses only for the fork (see `bourse_snapshots::fork_snapshot`).
    #[default]
    Fork,
    /// The engine thread images, encodes and writes it itself (simple; pauses for all of it).
    InThread,
}

/// The pipeline's settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Entries in the ring; a power of two, at least [`RING_SIZE_MIN`].
    pub ring_size: usize,
    pub topology: Topology,
    /// The most commands one batch (one commit) takes.
    pub batch_max: usize,
    /// How long a consumer spins before it parks.
    pub spin: Duration,
    /// Event batches the bus holds for a slow subscriber before it lags.
    pub bus_capacity: usize,
    pub snapshot_mode: SnapshotMode,
    /// Write a snapshot at shutdown (after the ring is drained).
    pub snapshot_on_shutdown: bool,
    /// Single topology, durable journal: where the sync runs. `Thread` (a sync thread while
    /// the engine applies, answers held until durable) or `Inline` (the engine thread
    /// appends, syncs, then applies each batch).
    pub sync: SyncMode,
}

/// Where the single topology's durable sync runs; see [`PipelineConfig::sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// On the engine thread, between appending a batch and applying it.
    Inline,
    /// On a sync thread, overlapping the engine's work.
    Thread,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            ring_size: 1 << 16,
            topology: Topology::Single,
            batch_max: 4096,
            spin: Duration::from_micros(50),
            bus_capacity: 4096,
            snapshot_mode: SnapshotMode::Fork,
            snapshot_on_shutdown: false,
            sync: SyncMode::Thread,
        }
    }
}

/// The events of one batch, in sequence order, as the bus carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch {
    /// The sequence numbers of the batch's first and last commands.
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: Vec<Event>,
}

/// Counters of a running pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The highest sequence number made durable.
    pub committed_seq: u64,
    /// The highest sequence number applied.
    pub applied_seq: u64,
    /// Ring entries taken so far by the first consumer.
    pub consumed: u64,
    /// Ring entries published so far; `published - consumed` are waiting in the ring.
    pub published: u64,
    /// Batches (commits) so far.
    pub batches: u64,
    /// Submissions refused as busy.
    pub busy: u64,
    pub ring_size: usize,
    /// How often the consumers parked.
    pub consumer_parks: u64,
    pub bus_subscribers: usize,
}

/// Why the pipeline could not start or did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid pipeline configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("could not start a pipeline thread: {0}")]
    Spawn(std::io::Error),
    #[error("the pipeline stopped: {0}")]
    Stopped(String),
    #[error("final snapshot: {0}")]
    Snapshot(#[from] bourse_store::StoreError),
}

/// What a pipeline leaves when it ends.
#[derive(Debug)]
pub struct Finished<S: bourse_store::Storage = bourse_store::FsStorage> {
    pub engine: Engine,
    pub store: Store<S>,
    /// The sequence number of the last command applied (0: none ever).
    pub last_seq: u64,
    pub state_hash: StateHash,
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    shared: Arc<Shared>,
    handle: Option<Handle>,
    threads: Vec<JoinHandle<Option<Finished>>>,
    config: PipelineConfig,
}

impl Pipeline {
    /// Starts the pipeline on a recovered store and engine (see [`Store::open`]).
    pub fn start(recovered: Recovered, config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        if !config.ring_size.is_power_of_two() || config.ring_size < RING_SIZE_MIN {
            return Err(PipelineError::InvalidConfig(
                "ring_size must be a power of two, at least 64",
            ));
        }
        if config.batch_max == 0 || config.bus_capacity == 0 {
            return Err(PipelineError::InvalidConfig(
                "batch_max and bus_capacity must be positive",
            ));
        }
        let first_seq = recovered.next_seq();
        let shared = Arc::new(Shared::new(
            first_seq,
            config.ring_size,
            config.bus_capacity,
        ));
        let (query_tx, query_rx) = std::sync::mpsc::sync_channel(QUERY_CAPACITY_DEFAULT);
        *shared.query_rx.lock().unwrap_or_else(|e| e.into_inner()) = Some(query_rx);
        let builder = build_multi_producer(config.ring_size, Slot::default, BusySpin);
        let (sleepers_tx, sleepers_rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        let spawn = |name: &str, body: Box<dyn FnOnce(Sleeper) -> Option<Finished> + Send>| {
            let tx = sleepers_tx.clone();
            let spin = config.spin;
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    let (sleeper, waker) = Sleeper::for_current_thread(spin, run::PARK_MAX);
                    // The receiver lives until every thread has sent.
                    let _ = tx.send(waker);
                    body(sleeper)
                })
                .map_err(PipelineError::Spawn)
        };
        let producer = match config.topology {
            Topology::Single => {
                let (poller, builder) = builder.new_event_poller();
                let producer = builder.build();
                let shared2 = Arc::clone(&shared);
                let cfg = config.clone();
                threads.push(spawn(
                    "bourse-engine",
                    Box::new(move |sleeper| run::single(poller, recovered, shared2, cfg, sleeper)),
                )?);
                producer
            }
            Topology::Parallel => {
                let (journal_poller, builder) = builder.new_event_poller();
                let (engine_poller, builder) = builder.new_event_poller();
                let (publish_poller, builder) = builder.and_then().new_event_poller();
                let producer = builder.build();
                let parts = run::Parallel::new(recovered, Arc::clone(&shared), config.clone());
                let (journaler, applier, publisher) = parts.split();
                threads.push(spawn(
                    "bourse-journal",
                    Box::new(move |sleeper| journaler.run(journal_poller, sleeper)),
                )?);
                threads.push(spawn(
                    "bourse-engine",
                    Box::new(move |sleeper| applier.run(engine_poller, sleeper)),
                )?);
                threads.push(spawn(
                    "bourse-publish",
                    Box::new(move |sleeper| publisher.run(publish_poller, sleeper)),
                )?);
                producer
            }
        };
        drop(sleepers_tx);
        // Producers wake the threads that read the ring directly; the publisher of the
        // parallel topology is woken by the two stages before it.
        let wakers: Vec<_> = sleepers_rx.iter().take(threads.len()).collect();
        run::register_wakers(&shared, config.topology, wakers);
        Ok(Pipeline {
            handle: Some(Handle::new(producer, Arc::clone(&shared), query_tx)),
            shared,
            threads,
            config,
        })
    }

    /// A handle for submitting commands (clone it per thread or task).
    #[allow(
        clippy::expect_used,
        reason = "the handle is taken only by shutdown, which consumes the pipeline, and by \
                  drop: while a &self exists it is there"
    )]
    pub fn handle(&self) -> Handle {
        self.handle
            .as_ref()
            .expect("the pipeline is running")
            .clone()
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// How long each durable sync of the sync thread took, in ns (empty unless the single
    /// topology runs a durable journal with [`SyncMode::Thread`]): the disk's real sync
    /// latency under this load, against which acknowledgement latency is judged.
    pub fn sync_times(&self) -> hdrhistogram::Histogram<u64> {
        self.shared
            .sync_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the pipeline stopped, if it did (journal failure, panic).
    pub fn stopped(&self) -> Option<String> {
        self.shared.stopped()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Stops taking commands, answers every command already in the ring, commits, writes the
    /// final snapshot if configured, and returns the final state. Handles still held elsewhere
    /// answer [`SubmitError::ShuttingDown`] from now on.
    pub fn shutdown(mut self) -> Result<Finished, PipelineError> {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.handle = None;
        self.shared.wake_consumers();
        let mut finished = None;
        let mut panicked = None;
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Some(f)) => finished = Some(f),
                Ok(None) => {}
                Err(panic) => panicked = Some(run::panic_message(&*panic)),
            }
        }
        // Nothing publishes any more: the bus's subscribers see the end of the stream.
        self.shared.close_bus();
        if let Some(cause) = self.shared.stopped().or(panicked) {
            return Err(PipelineError::Stopped(cause));
        }
        if finished.is_none() {
            // The parallel topology leaves its parts in the shared state.
            let store = self
                .shared
                .store_out
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let engine = self
                .shared
                .engine_out
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let (Some(mut store), Some((engine, last_seq, state_hash))) = (store, engine) {
                if self.shared.retention_due.swap(false, Ordering::AcqRel) {
                    store.apply_retention()?;
                }
                finished = Some(Finished {
                    engine,
                    store,
                    last_seq,
                    state_hash,
                });
            }
        }
        finished.ok_or_else(|| PipelineError::Stopped("no thread returned the engine".into()))
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shared.closing.store(true, Ordering::SeqCst);
            self.handle = None;
            self.shared.wake_consumers();
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::{AssetCode, CommandKind};
    use bourse_store::{Silent, StoreConfig};

    /// A pipeline of `topology` on an empty data directory in `dir`.
    fn start_in(dir: &std::path::Path, topology: Topology) -> Pipeline {
        let recovered = Store::open(&StoreConfig::new(dir), &mut Silent).unwrap();
        Pipeline::start(
            recovered,
            PipelineConfig {
                topology,
                snapshot_mode: SnapshotMode::InThread,
                ..PipelineConfig::default()
            },
        )
        .unwrap()
    }

    fn asset(i: usize) -> CommandKind {
        CommandKind::AddAsset {
            code: AssetCode::new(&format!("A{i}")).unwrap(),
            scale: 2,
        }
    }

    /// A stepped engine thread on a durable journal in `dir`, syncing `sync`.
    fn stepped_in(dir: &std::path::Path, sync: SyncMode) -> Stepped {
        let config = StoreConfig {
            journal: bourse_journal::JournalConfig {
                durability: bourse_journal::Durability::Durable,
                ..bourse_journal::JournalConfig::default()
            },
            ..StoreConfig::new(dir)
        };
        let recovered = Store::open(&config, &mut Silent).unwrap();
        Stepped::new(
            recovered,
            PipelineConfig {
                snapshot_mode: SnapshotMode::InThread,
                sync,
                ..PipelineConfig::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn a_stepped_pipeline_answers_a_batch_only_once_the_engine_thread_takes_its_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut stepped = stepped_in(dir.path(), SyncMode::Thread);
        let mut bus = stepped.subscribe();
        let mut tickets: Vec<_> = (0..3).map(|i| stepped.submit_at(asset(i), 1_000)).collect();
        let seqs: Vec<u64> = stepped.batch().map(|c| c.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        stepped.process();
        // Applied, handed to the sync thread, not answered or published.
        assert_eq!(stepped.engine().n_assets(), 3);
        assert!(stepped.sync_waiting());
        assert!(tickets.iter_mut().all(|t| t.try_take().is_none()));
        assert!(bus.try_recv().is_err());
        // Synced, and still not answered until the engine thread takes the sync.
        assert!(stepped.run_sync());
        assert!(!stepped.sync_waiting());
        assert!(tickets.iter_mut().all(|t| t.try_take().is_none()));
        stepped.idle();
        for (i, ticket) in tickets.iter_mut().enumerate() {
            let outcome = ticket.try_take().unwrap().unwrap();
            assert_eq!((outcome.seq, outcome.result), (i as u64 + 1, Ok(())));
        }
        let published = bus.try_recv().unwrap();
        assert_eq!((published.first_seq, published.last_seq), (1, 3));
        assert_eq!(stepped.stats().committed_seq, 3);
    }

    #[test]
    fn a_stepped_pipeline_dropped_before_its_sync_is_a_crash_that_answers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut stepped = stepped_in(dir.path(), SyncMode::Thread);
        let mut first = stepped.submit_at(asset(0), 1_000);
        stepped.process();
        stepped.run_sync();
        stepped.idle();
        assert_eq!(first.try_take().unwrap().unwrap().seq, 1);
        let mut second = stepped.submit_at(asset(1), 2_000);
        stepped.process();
        drop(stepped);
        assert!(matches!(
            second.try_take(),
            Some(Err(SubmitError::Stopped(_)))
        ));
        // Inline: the engine thread syncs before it applies, and answers at once.
        let dir = tempfile::tempdir().unwrap();
        let mut stepped = stepped_in(dir.path(), SyncMode::Inline);
        let mut ticket = stepped.submit_at(asset(0), 1_000);
        stepped.process();
        assert!(!stepped.sync_waiting());
        assert_eq!(ticket.try_take().unwrap().unwrap().seq, 1);
        let finished = stepped.finish().unwrap();
        assert_eq!(finished.last_seq, 1);
    }

    #[test]
    fn a_stepped_pipeline_refuses_what_only_threads_can_do() {
        let dir = tempfile::tempdir().unwrap();
        let recovered = Store::open(&StoreConfig::new(dir.path()), &mut Silent).unwrap();
        let forked = Stepped::new(recovered, PipelineConfig::default());
        assert!(matches!(forked, Err(PipelineError::InvalidConfig(_))));
    }

    #[test]
    fn a_snapshot_marker_moves_the_engine_clock_as_a_replay_does() {
        for topology in [Topology::Single, Topology::Parallel] {
            let dir = tempfile::tempdir().unwrap();
            let pipeline = start_in(dir.path(), topology);
            let mut handle = pipeline.handle();
            let first = handle.try_submit_at(asset(0), 1_000).unwrap().wait();
            assert_eq!(first.unwrap().result, Ok(()));
            let marker = handle
                .try_submit_at(CommandKind::Snapshot, 5_000)
                .unwrap()
                .wait();
            assert_eq!(marker.unwrap().result, Ok(()));
            let clock = handle
                .try_query(|engine| engine.to_image().clock_ms)
                .unwrap()
                .wait()
                .unwrap();
            pipeline.shutdown().unwrap();
            // A replay of the journal applies the marker, so the live engine must too.
            let replayed = Store::open(&StoreConfig::new(dir.path()), &mut Silent).unwrap();
            assert_eq!(clock, 5_000, "{topology:?}");
            assert_eq!(replayed.engine.to_image().clock_ms, clock, "{topology:?}");
        }
    }

    #[test]
    fn a_panic_in_a_pipeline_thread_stops_everything_with_its_message() {
        for topology in [Topology::Single, Topology::Parallel] {
            let dir = tempfile::tempdir().unwrap();
            let pipeline = start_in(dir.path(), topology);
            let mut handle = pipeline.handle();
            let before = handle.submit_blocking(asset(0)).unwrap();
            assert_eq!(before.result, Ok(()));
            // The poison and what follows it in the ring: none of it is acknowledged.
            let poison = handle.try_poison().unwrap();
            let after: Vec<_> = (1..50)
                .filter_map(|i| handle.try_submit(asset(i)).ok())
                .collect();
            assert!(
                matches!(poison.wait(), Err(SubmitError::Stopped(_))),
                "{topology:?}"
            );
            for ticket in after {
                assert!(matches!(ticket.wait(), Err(SubmitError::Stopped(_))));
            }
            let cause = pipeline.stopped().unwrap();
            assert!(cause.contains("panicked: a poisoned command"), "{cause}");
            // New submissions are refused at once; nothing spins or hangs.
            assert!(matches!(
                handle.try_submit(asset(99)),
                Err(SubmitError::Stopped(_))
            ));
            drop(handle);
            match pipeline.shutdown() {
                Err(PipelineError::Stopped(cause)) => assert!(cause.contains("panicked")),
                other => panic!("{topology:?}: {other:?}"),
            }
            // Only the command before the poison is in the state.
            let recovered = Store::open(&StoreConfig::new(dir.path()), &mut Silent).unwrap();
            assert!(recovered.report.last_seq >= 1);
            assert_eq!(recovered.engine.n_assets(), 1);
        }
    }
}
