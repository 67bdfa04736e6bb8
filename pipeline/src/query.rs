//! Reads of the engine's state, answered by the thread that owns the engine.
//!
//! The engine is owned by one thread and never locked, so a read travels to it: a
//! [`Handle::try_query`](crate::Handle::try_query) puts a closure on a bounded channel
//! (full: [`SubmitError::Busy`](crate::SubmitError::Busy) at once), the engine thread runs
//! it between batches, on the state after every command applied so far, and the answer is
//! released only once that state is durable, like a command's answer: a read never shows
//! what a crash could still take back. Queries take no sequence number and are not journaled.
//!
//! A query runs on the engine thread, so it must be short (look up an account, copy a few
//! balances); anything that scans much belongs to a read model fed by the event bus.

use std::sync::Arc;

use bourse_engine::Engine;
use tokio::sync::oneshot;

use crate::answer::SubmitError;
use crate::shared::{Deliver, QueryJob, Shared};

/// How many queries may wait for the engine thread at once.
pub const QUERY_CAPACITY_DEFAULT: usize = 4096;

/// The answer to one query, to await or wait for.
#[derive(Debug)]
pub struct QueryTicket<T> {
    pub(crate) rx: oneshot::Receiver<T>,
    pub(crate) shared: Arc<Shared>,
}

impl<T> QueryTicket<T> {
    /// Blocks the calling thread until the answer arrives (not inside an async task).
    pub fn wait(self) -> Result<T, SubmitError> {
        self.rx
            .blocking_recv()
            .map_err(|_| self.shared.stopped_error())
    }
}

impl<T: Send + 'static> std::future::IntoFuture for QueryTicket<T> {
    type Output = Result<T, SubmitError>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.rx.await.map_err(|_| self.shared.stopped_error()) })
    }
}

/// Wraps `read` into a job whose delivery sends its result on `tx`.
pub(crate) fn job<T, F>(read: F, tx: oneshot::Sender<T>) -> QueryJob
where
    T: Send + 'static,
    F: FnOnce(&Engine) -> T + Send + 'static,
{
    Box::new(move |engine: &Engine| {
        let answer = read(engine);
        Box::new(move || {
            // The asker may have stopped waiting; that is its business.
            let _ = tx.send(answer);
        }) as Deliver
    })
}
