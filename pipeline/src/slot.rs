//! The ring's entries.

use std::sync::Mutex;

use bourse_engine::{CommandKind, Event, Reject};
use tokio::sync::oneshot;

use crate::answer::Outcome;
use crate::answer::SubmitError;

/// Where a command's answer goes.
pub(crate) type ReplyTx = oneshot::Sender<Result<Outcome, SubmitError>>;

/// What a producer asks for.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// A command for the engine.
    Command(CommandKind),
    /// A snapshot cut at this point of the sequence.
    Snapshot,
    /// Makes the thread that reads it panic (tests of the failure path only).
    #[cfg(test)]
    Panic,
}

/// One entry of the ring. Producers fill it through `&mut` (no locking); consumers read it
/// through `&` and take the reply sender (and, in the parallel topology, pass the engine's
/// result to the publisher) through uncontended mutexes.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) request: Option<Request>,
    /// Unix ms, read from the clock at entry.
    pub(crate) timestamp_ms: i64,
    pub(crate) reply: Mutex<Option<ReplyTx>>,
    /// The engine's result for the publisher (parallel topology only).
    pub(crate) result: Mutex<Option<Applied>>,
}

/// What the engine made of a slot's command.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) seq: u64,
    pub(crate) timestamp_ms: i64,
    pub(crate) result: Result<Result<(), Reject>, SubmitError>,
    pub(crate) events: Vec<Event>,
}

impl Slot {
    pub(crate) fn fill(
        &mut self,
        request: Option<Request>,
        timestamp_ms: i64,
        reply: Option<ReplyTx>,
    ) {
        self.request = request;
        self.timestamp_ms = timestamp_ms;
        *self.reply.get_mut().unwrap_or_else(|e| e.into_inner()) = reply;
        *self.result.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Takes the reply sender (once).
    pub(crate) fn take_reply(&self) -> Option<ReplyTx> {
        self.reply.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
