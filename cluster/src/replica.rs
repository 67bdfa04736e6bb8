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
use bourse_pipeline::{Handle, Outcome, SubmitError, Ticket};
use tokio::sync::oneshot;

use crate::{Checkpointer, LogReader, LogRecord, ReaderConfig};

/// What a waiting request gets from the replica: the ticket of its command's outcome, or the
/// outcome itself when the replica had to wait for it (a checkpoint).
#[derive(Debug)]
pub(crate) enum Answer {
    Ticket(Ticket),
    Ready(Result<Outcome, SubmitError>),
}

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

/// The command a replica applies for the record at `offset`: its bytes decoded, as command
/// `offset + 1` (the replica's pipeline numbers the log's records so), with the time its
/// gateway gave it. A record that does not decode stops the replica, with this error.
pub fn log_command(offset: u64, bytes: &[u8]) -> Result<Command, String> {
    let mut command = decode(bytes)
        .map_err(|error| format!("the record at offset {offset} does not decode: {error}"))?;
    command.seq = offset + 1;
    Ok(command)
}

/// The requests of this node waiting for their command to come back from the log: the
/// replica hands each the [`Ticket`] of its command's outcome when it applies the record
/// whose key names this node and the request.
#[derive(Debug)]
pub struct Answers {
    node: u16,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
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
    pub(crate) fn wait_for(&self, request: u64) -> oneshot::Receiver<Answer> {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `ticket` to the request the record `key` names, if it is one of this node's.
    fn deliver(&self, key: Option<&[u8]>, answer: Answer) {
        let Some((node, request)) = key.and_then(parse_key) else {
            return;
        };
        if node != self.node {
            return;
        }
        if let Some(waiting) = self.lock().remove(&request) {
            // The request may have given up waiting; then nobody needs the ticket.
            let _ = waiting.send(answer);
        }
    }
}

/// A record's key: the node (`u16`) and its request number (`u64`), little-endian.
pub fn record_key(node: u16, request: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(&node.to_le_bytes());
    key[2..].copy_from_slice(&request.to_le_bytes());
    key
}

/// The node and request a record's key names ([`record_key`]); `None` for a record no node
/// waits for (keyless, or another shape).
pub fn parse_key(key: &[u8]) -> Option<(u16, u64)> {
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
    checkpoints: Option<Arc<Checkpointer>>,
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
    /// pipeline, which must take commands from nowhere else. Refused when the log no longer
    /// holds `from` or ends before it ([`crate::check_position`]).
    ///
    /// With `checkpoints`, after every command whose sequence number is due the replica waits
    /// until its engine has applied it, publishes the state hash, and goes on; it stops when
    /// the cluster's majority published another hash for that offset.
    pub fn start(
        config: &ReaderConfig,
        from: u64,
        mut handle: Handle,
        answers: Arc<Answers>,
        checkpoints: Option<Arc<Checkpointer>>,
    ) -> Result<Replica, crate::LogError> {
        crate::check_position(&config.brokers, &config.topic, from)?;
        let from = i64::try_from(from)
            .map_err(|_| crate::LogError::Config(format!("offset {from} out of range")))?;
        let failure = Arc::new(Failure::default());
        let reader = {
            let failure = Arc::clone(&failure);
            let checkpoints = checkpoints.clone();
            LogReader::start(config, from, move |record: LogRecord<'_>| {
                if failure.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let ticket = match apply(&mut handle, record, answers.node()) {
                    Ok(ticket) => ticket,
                    Err(why) => return failure.set(why),
                };
                let seq = record.offset.unsigned_abs() + 1;
                match &checkpoints {
                    Some(checkpoints) if checkpoints.due(seq) => {
                        match checkpoint(&handle, checkpoints, record.offset, ticket) {
                            Ok(outcome) => answers.deliver(record.key, Answer::Ready(outcome)),
                            Err(why) => failure.set(why),
                        }
                    }
                    _ => answers.deliver(record.key, Answer::Ticket(ticket)),
                }
            })?
        };
        Ok(Replica {
            reader,
            failure,
            checkpoints,
        })
    }

    /// The next offset to hand to the pipeline (one past the last handed over; the pipeline
    /// may still be applying it).
    pub fn next_offset(&self) -> i64 {
        self.reader.next_offset()
    }

    /// Why the replica stopped applying the log or must stop (its state diverged from the
    /// cluster's), if it did.
    pub fn failure(&self) -> Option<String> {
        if let Some(divergence) = self.checkpoints.as_ref().and_then(|c| c.divergence()) {
            return Some(divergence);
        }
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
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.stop()?;
        }
        self.reader.stop()
    }
}

/// Waits for the outcome of the command at `offset` (nothing after it has been handed to the
/// pipeline, so the engine's state is then exactly the state after it), publishes the hash.
fn checkpoint(
    handle: &Handle,
    checkpoints: &Checkpointer,
    offset: i64,
    ticket: Ticket,
) -> Result<Result<Outcome, SubmitError>, String> {
    let outcome = ticket.wait();
    let hash = handle
        .try_query(|engine| engine.state_hash())
        .and_then(bourse_pipeline::QueryTicket::wait)
        .map_err(|error| format!("the state hash at offset {offset} could not be read: {error}"))?;
    checkpoints
        .publish(offset, hash)
        .map_err(|error| format!("the checkpoint at offset {offset} was not published: {error}"))?;
    Ok(outcome)
}

/// Hands one record to the pipeline, waiting while its ring is full; the ticket of its outcome.
fn apply(handle: &mut Handle, record: LogRecord<'_>, node: u16) -> Result<Ticket, String> {
    #[cfg_attr(not(feature = "failpoints"), allow(unused_mut))]
    let mut command = log_command(record.offset.unsigned_abs(), record.bytes)?;
    // Tests alter one replica's state this way: `cluster::tamper` set to `return(<node>)`
    // doubles that node's deposits, so its state hash departs from the others'.
    #[cfg(feature = "failpoints")]
    if let Some(Some(target)) = fail::eval("cluster::tamper", |target| target)
        && target == node.to_string()
        && let CommandKind::Deposit(request) = &mut command.kind
    {
        request.amount = bourse_engine::Amount::from_minor(request.amount.minor() * 2);
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = node;
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
