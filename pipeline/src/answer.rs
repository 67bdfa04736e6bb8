//! What a submission gets back: its [`Outcome`], or why it has none ([`SubmitError`]).

use bourse_engine::{Event, Reject};

/// What the pipeline answers a submitted command: its place in the sequence, the engine's
/// verdict, and the events it caused. Sent only once the command is durable (under the
/// configured durability) and applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The command's sequence number (dense, assigned at entry to the ring).
    pub seq: u64,
    /// The command's timestamp (unix ms, assigned at entry; never decreasing along seq).
    pub timestamp_ms: i64,
    /// The engine's answer; a rejection changed nothing.
    pub result: Result<(), Reject>,
    /// The events the command caused, in order.
    pub events: Vec<Event>,
}

/// Why a submission has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The ring is full: nothing was submitted; retry later.
    #[error("busy: the command ring is full, retry later")]
    Busy,
    /// The pipeline is shutting down and takes no new commands.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A snapshot request could not be carried out (one is already being written, or the
    /// fork failed); nothing else happened.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The pipeline stopped (journal failure or engine panic) before answering this command.
    /// It was not acknowledged and this run will not apply it; whether it is in the state
    /// after a restart is unknown (it may have reached the journal before the failure), so
    /// a client checks after the restart (by client order id or funds request id).
    #[error("the engine stopped: {0}")]
    Stopped(String),
}
