//! The submitting side: [`Handle`] publishes commands into the ring, [`Ticket`] waits for the
//! answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{SystemTime, UNIX_EPOCH};

use bourse_engine::{CommandKind, Engine};
use disruptor::{MultiProducer, Producer, SingleConsumerBarrier};
use tokio::sync::oneshot;

use crate::answer::{Outcome, SubmitError};
use crate::query::QueryTicket;
use crate::shared::{QueryJob, Shared};
use crate::slot::{Request, Slot};

/// A clonable handle for submitting commands from any thread or tokio task. Submitting never
/// blocks and never spins: a full ring answers [`SubmitError::Busy`] at once.
pub struct Handle {
    producer: MultiProducer<Slot, SingleConsumerBarrier>,
    shared: Arc<Shared>,
    queries: SyncSender<QueryJob>,
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Handle {
            producer: self.producer.clone(),
            shared: Arc::clone(&self.shared),
            queries: self.queries.clone(),
        }
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The answer to one submission, to await (`ticket.await`) or wait for (`ticket.wait()`).
#[derive(Debug)]
pub struct Ticket {
    rx: oneshot::Receiver<Result<Outcome, SubmitError>>,
    shared: Arc<Shared>,
}

impl Ticket {
    pub(crate) fn new(
        rx: oneshot::Receiver<Result<Outcome, SubmitError>>,
        shared: Arc<Shared>,
    ) -> Self {
        Ticket { rx, shared }
    }

    /// Blocks the calling thread until the outcome arrives. Not for use inside an async task
    /// (await the ticket there).
    pub fn wait(self) -> Result<Outcome, SubmitError> {
        match self.rx.blocking_recv() {
            Ok(answer) => answer,
            Err(_) => Err(self.shared.stopped_error()),
        }
    }

    /// The outcome if it has arrived, without waiting.
    pub fn try_take(&mut self) -> Option<Result<Outcome, SubmitError>> {
        match self.rx.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(self.shared.stopped_error())),
        }
    }
}

impl std::future::IntoFuture for Ticket {
    type Output = Result<Outcome, SubmitError>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.rx.await {
                Ok(answer) => answer,
                Err(_) => Err(self.shared.stopped_error()),
            }
        })
    }
}

/// Unix time in milliseconds from the system clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Handle {
    pub(crate) fn new(
        producer: MultiProducer<Slot, SingleConsumerBarrier>,
        shared: Arc<Shared>,
        queries: SyncSender<QueryJob>,
    ) -> Self {
        Handle {
            producer,
            shared,
            queries,
        }
    }

    /// Submits `kind`; its sequence number and timestamp are assigned here, at entry to the
    /// ring. Returns at once: [`SubmitError::Busy`] if the ring is full.
    pub fn try_submit(&mut self, kind: CommandKind) -> Result<Ticket, SubmitError> {
        self.try_request(Request::Command(kind), None)
    }

    /// Submits `kind` stamped `timestamp_ms` where it entered the platform (a command read
    /// from a replicated log carries the time its gateway gave it). The sequence number is
    /// still the ring's; the timestamp is made non-decreasing as any other.
    pub fn try_submit_at(
        &mut self,
        kind: CommandKind,
        timestamp_ms: i64,
    ) -> Result<Ticket, SubmitError> {
        self.try_request(Request::Command(kind), Some(timestamp_ms))
    }

    /// Submits `kind` and waits for its outcome on this thread.
    pub fn submit_blocking(&mut self, kind: CommandKind) -> Result<Outcome, SubmitError> {
        self.try_submit(kind)?.wait()
    }

    /// Submits `kind` and awaits its outcome (a full ring answers `Busy` at once).
    pub async fn submit(&mut self, kind: CommandKind) -> Result<Outcome, SubmitError> {
        self.try_submit(kind)?.await
    }

    /// Asks for a snapshot cut exactly here in the sequence: the snapshot holds the state after
    /// every command submitted before this request. The outcome comes once the snapshot is
    /// started (it is written in the background); its `seq` is the snapshot's.
    pub fn try_request_snapshot(&mut self) -> Result<Ticket, SubmitError> {
        self.try_request(Request::Snapshot, None)
    }

    #[cfg(test)]
    pub(crate) fn try_poison(&mut self) -> Result<Ticket, SubmitError> {
        self.try_request(Request::Panic, None)
    }

    fn try_request(
        &mut self,
        request: Request,
        timestamp_ms: Option<i64>,
    ) -> Result<Ticket, SubmitError> {
        let shared = &*self.shared;
        // Registered as active before checking for shutdown: the engine thread only leaves
        // once no submitter is active and the ring is empty (see `Shared::may_exit`).
        shared.active_submitters.fetch_add(1, Ordering::SeqCst);
        let result = if let Some(error) = shared.refusal() {
            Err(error)
        } else {
            let (tx, rx) = oneshot::channel();
            let timestamp_ms = timestamp_ms.unwrap_or_else(now_ms);
            let mut request = Some(request);
            let mut tx = Some(tx);
            match self.producer.try_publish(|slot| {
                slot.fill(request.take(), timestamp_ms, tx.take());
            }) {
                Ok(sequence) => {
                    // Ring positions count from 0: this one makes `sequence + 1` published.
                    shared
                        .published
                        .fetch_max(sequence as u64 + 1, Ordering::Relaxed);
                    Ok(Ticket {
                        rx,
                        shared: Arc::clone(&self.shared),
                    })
                }
                Err(_) => {
                    shared.busy.fetch_add(1, Ordering::Relaxed);
                    Err(SubmitError::Busy)
                }
            }
        };
        shared.active_submitters.fetch_sub(1, Ordering::SeqCst);
        if result.is_ok() {
            shared.wake_consumers();
        }
        result
    }

    /// Subscribes to the event stream (see [`crate::EventBatch`]); a receiver that falls more
    /// than the bus capacity behind gets `Lagged` and must resynchronise.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::EventBatch>> {
        self.shared.subscribe()
    }

    /// Why the pipeline stopped, if it did (journal failure, engine panic).
    pub fn stopped(&self) -> Option<String> {
        self.shared.stopped()
    }

    /// Reads the engine's state on the engine thread (see [`crate::query`]): `read` runs
    /// between batches on the state after every command applied so far, and its answer comes
    /// once that state is durable. A full query channel answers [`SubmitError::Busy`] at once.
    pub fn try_query<T, F>(&self, read: F) -> Result<QueryTicket<T>, SubmitError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> T + Send + 'static,
    {
        let shared = &*self.shared;
        shared.active_submitters.fetch_add(1, Ordering::SeqCst);
        let result = if let Some(error) = shared.refusal() {
            Err(error)
        } else {
            let (tx, rx) = oneshot::channel();
            shared.pending_queries.fetch_add(1, Ordering::SeqCst);
            match self.queries.try_send(crate::query::job(read, tx)) {
                Ok(()) => Ok(QueryTicket {
                    rx,
                    shared: Arc::clone(&self.shared),
                }),
                Err(error) => {
                    shared.pending_queries.fetch_sub(1, Ordering::SeqCst);
                    match error {
                        TrySendError::Full(_) => {
                            shared.busy.fetch_add(1, Ordering::Relaxed);
                            Err(SubmitError::Busy)
                        }
                        TrySendError::Disconnected(_) => Err(shared.stopped_error()),
                    }
                }
            }
        };
        shared.active_submitters.fetch_sub(1, Ordering::SeqCst);
        if result.is_ok() {
            shared.wake_consumers();
        }
        result
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> crate::Stats {
        self.shared.stats()
    }
}
