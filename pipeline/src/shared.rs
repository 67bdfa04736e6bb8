//! State shared by the handles and the pipeline threads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::broadcast;

use bourse_engine::Engine;

use crate::answer::SubmitError;
use crate::wake::Waker;
use crate::{EventBatch, Stats};

/// Sends a query's answer to its ticket (the queries are `crate::query`'s).
pub(crate) type Deliver = Box<dyn FnOnce() + Send>;
/// A query as the engine thread runs it: read, then give the delivery back.
pub(crate) type QueryJob = Box<dyn FnOnce(&Engine) -> Deliver + Send>;

#[derive(Debug)]
pub(crate) struct Shared {
    /// Submitters between "am I allowed" and "published" (see `may_exit`).
    pub(crate) active_submitters: AtomicUsize,
    pub(crate) closing: AtomicBool,
    stopped_flag: AtomicBool,
    stopped: Mutex<Option<String>>,
    /// The threads that read the ring straight from the producers.
    pub(crate) consumers: OnceLock<Vec<Waker>>,
    /// The parallel topology's publisher, woken by the journaler and the engine.
    pub(crate) publisher: OnceLock<Option<Waker>>,
    /// Set by the engine when a snapshot completed; the journaler then applies retention.
    pub(crate) retention_due: AtomicBool,
    /// Parallel topology: the journaler and engine threads still running.
    pub(crate) upstream_running: AtomicUsize,
    /// What the parallel topology's threads leave behind.
    pub(crate) store_out: Mutex<Option<bourse_store::Store>>,
    pub(crate) engine_out: Mutex<Option<(bourse_engine::Engine, u64, bourse_engine::StateHash)>>,
    /// The event bus; taken (closed) once the threads that publish have ended, so every
    /// subscriber sees the end of the stream after the last batch.
    bus: RwLock<Option<broadcast::Sender<Arc<EventBatch>>>>,
    pub(crate) busy: AtomicU64,
    /// The first sequence number of this run (the one after the recovered state).
    pub(crate) first_seq: u64,
    pub(crate) committed_seq: AtomicU64,
    pub(crate) applied_seq: AtomicU64,
    pub(crate) consumed: AtomicU64,
    /// Ring entries published so far (the highest published position + 1).
    pub(crate) published: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) ring_size: usize,
    /// Queries sent and not yet taken by the engine thread.
    pub(crate) pending_queries: AtomicUsize,
    /// The engine thread's end of the query channel, until it takes it.
    pub(crate) query_rx: Mutex<Option<std::sync::mpsc::Receiver<QueryJob>>>,
    /// Durations of the sync thread's syncs, ns.
    pub(crate) sync_times: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Shared {
    fn bus_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, Option<broadcast::Sender<Arc<EventBatch>>>> {
        self.bus.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a batch to the bus if anyone listens (and the bus is still open).
    pub(crate) fn publish_events(&self, batch: impl FnOnce() -> EventBatch) {
        if let Some(bus) = self.bus_read().as_ref()
            && bus.receiver_count() > 0
        {
            // No receiver is not an error; a lagging one finds out on its side.
            let _ = bus.send(Arc::new(batch()));
        }
    }

    /// A new subscriber of the bus; after [`Shared::close_bus`] one that sees the end at once.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<EventBatch>> {
        match self.bus_read().as_ref() {
            Some(bus) => bus.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Closes the bus: subscribers get the batches sent so far, then the end of the stream.
    pub(crate) fn close_bus(&self) {
        self.bus.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub(crate) fn new(first_seq: u64, ring_size: usize, bus_capacity: usize) -> Self {
        let (bus, _) = broadcast::channel(bus_capacity);
        Shared {
            active_submitters: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            stopped_flag: AtomicBool::new(false),
            stopped: Mutex::new(None),
            consumers: OnceLock::new(),
            publisher: OnceLock::new(),
            retention_due: AtomicBool::new(false),
            upstream_running: AtomicUsize::new(2),
            store_out: Mutex::new(None),
            engine_out: Mutex::new(None),
            bus: RwLock::new(Some(bus)),
            busy: AtomicU64::new(0),
            first_seq,
            committed_seq: AtomicU64::new(first_seq - 1),
            applied_seq: AtomicU64::new(first_seq - 1),
            consumed: AtomicU64::new(0),
            published: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            ring_size,
            pending_queries: AtomicUsize::new(0),
            query_rx: Mutex::new(None),
            sync_times: Mutex::new(sync_times_histogram()),
        }
    }

    /// Why a new submission is refused, if it is.
    pub(crate) fn refusal(&self) -> Option<SubmitError> {
        if self.stopped_flag.load(Ordering::SeqCst) {
            return Some(self.stopped_error());
        }
        if self.closing.load(Ordering::SeqCst) {
            return Some(SubmitError::ShuttingDown);
        }
        None
    }

    pub(crate) fn stopped_error(&self) -> SubmitError {
        let cause = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        SubmitError::Stopped(cause.unwrap_or_else(|| "the pipeline is gone".to_string()))
    }

    /// Whether the pipeline stopped: one atomic load, for the per-batch checks.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped_flag.load(Ordering::SeqCst)
    }

    pub(crate) fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the first cause of a stop.
    pub(crate) fn stop(&self, cause: String) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if stopped.is_none() {
            *stopped = Some(cause);
        }
        self.stopped_flag.store(true, Ordering::SeqCst);
    }

    /// Whether queries wait for the engine thread.
    pub(crate) fn has_queries(&self) -> bool {
        self.pending_queries.load(Ordering::SeqCst) > 0
    }

    /// Takes the engine thread's end of the query channel (once).
    pub(crate) fn take_query_rx(&self) -> Option<std::sync::mpsc::Receiver<QueryJob>> {
        self.query_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub(crate) fn wake_consumers(&self) {
        if let Some(wakers) = self.consumers.get() {
            for waker in wakers {
                waker.wake();
            }
        }
    }

    pub(crate) fn wake_publisher(&self) {
        if let Some(Some(waker)) = self.publisher.get() {
            waker.wake();
        }
    }

    /// Whether a consumer that sees an empty ring may leave: only when closing and no submitter
    /// is between its check of `closing` and its publication. A submitter registers before it
    /// reads `closing` and the closer sets `closing` before this reads the count (both SeqCst),
    /// so either the submitter is counted here or it sees `closing` and publishes nothing.
    pub(crate) fn may_exit(&self) -> bool {
        self.closing.load(Ordering::SeqCst) && self.active_submitters.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn stats(&self) -> Stats {
        let consumed = self.consumed.load(Ordering::Relaxed);
        Stats {
            committed_seq: self.committed_seq.load(Ordering::Relaxed),
            applied_seq: self.applied_seq.load(Ordering::Relaxed),
            consumed,
            published: self.published.load(Ordering::Relaxed).max(consumed),
            batches: self.batches.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            ring_size: self.ring_size,
            consumer_parks: self
                .consumers
                .get()
                .map_or(0, |wakers| wakers.iter().map(Waker::parks).sum()),
            bus_subscribers: self
                .bus_read()
                .as_ref()
                .map_or(0, |bus| bus.receiver_count()),
        }
    }
}

/// The histogram of sync times: 1 ns to 1 h, three significant digits; longer syncs are
/// recorded as 1 h.
#[allow(
    clippy::expect_used,
    reason = "constant bounds that new_with_bounds accepts: low 1 >= 1, high >= 2 * low, \
              3 significant digits <= 5"
)]
fn sync_times_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds")
}
