//! A replica: the shard's log applied, in order, through the local pipeline.
//!
//! The log's records are the engine's command codec. A replica's pipeline receives nothing
//! but the log, one ring entry per record, so the command at offset `o` gets sequence number
//! `o + 1`: the local journal (and the snapshots, which record a sequence number) hold the
//! log's position with no field of their own, and a restarted replica resumes the log at its
//! recovered `last_seq`. A record that does not decode, or a pipeline that stops, stops the
//! replica: every replica reads the same bytes, so skipping one would be a silent fork only
//! if the others did not skip it too, and applying nothing is never wrong.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bourse_engine::codec::{decode, encode};
use bourse_engine::{Command, CommandKind};
use bourse_pipeline::{Handle, SubmitError, Ticket};
use tokio::sync::oneshot;

use crate::{LogReader, LogRecord, ReaderConfig};

/// A command's bytes for the log: the codec's record with sequence number 0 (the offset the
/// broker gives it is its place) and the time its gateway gave it.
pub fn log_record(kind: CommandKind, timestamp_ms: i64) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(
        &Command {
            seq: 0,
            timestamp_ms,
            kind,
        },
        &mut bytes,
    );
    bytes
}

/// The requests of this node waiting for their command to come back from the log: the
/// replica hands each the [`Ticket`] of its command's outcome when it applies the record
/// whose key names this node and the request.
#[derive(Debug)]
pub struct Answers {
    node: u16,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Ticket>>>,
}

impl Answers {
    /// The waiting requests of node `node`.
    pub fn new(node: u16) -> Answers {
        Answers {
            node,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// This node's id.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// Registers request `request` (before its record is appended, so that the replica
    /// cannot read it first); the receiver gets its ticket.
    pub(crate) fn wait_for(&self, request: u64) -> oneshot::Receiver<Ticket> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(request, tx);
        rx
    }

    /// Forgets request `request` (its append failed).
    pub(crate) fn forget(&self, request: u64) {
        self.lock().remove(&request);
    }

    /// Requests still waiting.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Ticket>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `ticket` to the request the record `key` names, if it is one of this node's.
    fn deliver(&self, key: Option<&[u8]>, ticket: Ticket) {
        let Some((node, request)) = key.and_then(parse_key) else {
            return;
        };
        if node != self.node {
            return;
        }
        if let Some(waiting) = self.lock().remove(&request) {
            // The request may have given up waiting; then nobody needs the ticket.
            let _ = waiting.send(ticket);
        }
    }
}

/// A record's key: the node (`u16`) and its request number (`u64`), little-endian.
pub(crate) fn record_key(node: u16, request: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(&node.to_le_bytes());
    key[2..].copy_from_slice(&request.to_le_bytes());
    key
}

fn parse_key(key: &[u8]) -> Option<(u16, u64)> {
    let key: &[u8; 10] = key.try_into().ok()?;
    let node = u16::from_le_bytes([key[0], key[1]]);
    let mut request = [0u8; 8];
    request.copy_from_slice(&key[2..]);
    Some((node, u64::from_le_bytes(request)))
}

/// Why a replica stopped applying the log.
#[derive(Debug, Default)]
struct Failure {
    stopped: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Failure {
    fn set(&self, why: String) {
        tracing::error!("replica stopped: {why}");
        self.why
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// Applies a shard's log through a pipeline, from the offset the pipeline's state is at.
pub struct Replica {
    reader: LogReader,
    failure: Arc<Failure>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("next_offset", &self.next_offset())
            .field("failure", &self.failure())
            .finish()
    }
}

impl Replica {
    /// Starts reading the log at `from` (the recovered state's `last_seq`: every command
    /// before that offset is in the pipeline's state) and hands each record to `handle`'s
    /// pipeline, which must take commands from nowhere else.
    pub fn start(
        config: &ReaderConfig,
        from: u64,
        mut handle: Handle,
        answers: Arc<Answers>,
    ) -> Result<Replica, crate::LogError> {
        let from = i64::try_from(from)
            .map_err(|_| crate::LogError::Config(format!("offset {from} out of range")))?;
        let failure = Arc::new(Failure::default());
        let reader = {
            let failure = Arc::clone(&failure);
            LogReader::start(config, from, move |record: LogRecord<'_>| {
                if failure.stopped.load(Ordering::SeqCst) {
                    return;
                }
                match apply(&mut handle, record) {
                    Ok(ticket) => answers.deliver(record.key, ticket),
                    Err(why) => failure.set(why),
                }
            })?
        };
        Ok(Replica { reader, failure })
    }

    /// The next offset to hand to the pipeline (one past the last handed over; the pipeline
    /// may still be applying it).
    pub fn next_offset(&self) -> i64 {
        self.reader.next_offset()
    }

    /// Why the replica stopped applying the log, if it did.
    pub fn failure(&self) -> Option<String> {
        if self.failure.stopped.load(Ordering::SeqCst) {
            return self
                .failure
                .why
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
        }
        self.reader.failure()
    }

    /// Stops reading. The pipeline keeps what it was handed; shut it down after this.
    pub fn stop(self) -> Result<i64, crate::LogError> {
        self.reader.stop()
    }
}

/// Hands one record to the pipeline, waiting while its ring is full; the ticket of its outcome.
fn apply(handle: &mut Handle, record: LogRecord<'_>) -> Result<Ticket, String> {
    let command = decode(record.bytes).map_err(|error| {
        format!(
            "the record at offset {} does not decode: {error}",
            record.offset
        )
    })?;
    loop {
        match handle.try_submit_at(command.kind.clone(), command.timestamp_ms) {
            Ok(ticket) => return Ok(ticket),
            // The engine is behind: the ring drains without this thread's help.
            Err(SubmitError::Busy) => std::thread::yield_now(),
            Err(other) => {
                return Err(format!(
                    "the pipeline refused the record at offset {}: {other}",
                    record.offset
                ));
            }
        }
    }
}
