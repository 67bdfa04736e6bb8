//! A replica: the shard's log applied, in order, through the local pipeline.
//!
//! The log's records are the engine's command codec. A replica's pipeline receives nothing
//! but the log, one ring entry per record, so the command at offset `o` gets sequence number
//! `o + 1`: the local journal (and the snapshots, which record a sequence number) hold the
//! log's position with no field of their own, and a restarted replica resumes the log at its
//! recovered `last_seq`. A record that does not decode, or a pipeline that stops, stops the
//! replica: every replica reads the same bytes, so skipping one would be a silent fork only
//! if the others did not skip it too, and applying nothing is never wrong.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bourse_engine::codec::{decode, encode};
use bourse_engine::{Command, CommandKind};
use bourse_pipeline::{Handle, SubmitError};

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
                if let Err(why) = apply(&mut handle, record) {
                    failure.set(why);
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

/// Hands one record to the pipeline, waiting while its ring is full.
fn apply(handle: &mut Handle, record: LogRecord<'_>) -> Result<(), String> {
    let command = decode(record.bytes).map_err(|error| {
        format!(
            "the record at offset {} does not decode: {error}",
            record.offset
        )
    })?;
    loop {
        match handle.try_submit_at(command.kind.clone(), command.timestamp_ms) {
            // The outcome goes to whoever waits for it (nobody, yet): the replica only orders.
            Ok(_ticket) => return Ok(()),
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
