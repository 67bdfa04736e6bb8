//! A node's way in: a command appended to the shard's log and answered with the outcome the
//! node's own replica gives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bourse_engine::CommandKind;
use bourse_pipeline::Outcome;

use crate::replica::{Answer, Answers, record_key};
use crate::{LogError, LogWriter, log_record};

/// Why a proposed command has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The log did not take the command: nothing of it is applied by this node's doing
    /// (it may still appear in the log if the broker took it before failing to answer; a
    /// retry with the command's idempotency key is applied once). Answer 503.
    #[error("the command log is unavailable: {0}")]
    Unavailable(LogError),
    /// The replica stopped before it applied the command.
    #[error("this node's replica stopped before applying the command")]
    ReplicaStopped,
    /// The pipeline refused or lost the command (after the log took it, in a cluster).
    #[error("{0}")]
    Pipeline(bourse_pipeline::SubmitError),
    /// This node is not sure it has seen the whole log (see [`crate::Freshness`]), so it
    /// takes no command: nothing was appended. Answer 503.
    #[error("{0}")]
    Stale(crate::Stale),
}

/// Where a proposed command's time went, summed over every command answered (microseconds
/// from its send): what `/metrics` shows of a node's way through the log.
#[derive(Debug, Default)]
pub struct ProposeTimes {
    /// Commands answered with an outcome.
    pub answered: AtomicU64,
    /// Until the broker acknowledged the append (linger, produce, the broker's write).
    pub appended_us: AtomicU64,
    /// Until this node's replica had read the record back and handed it to the pipeline
    /// (at least the append's time: the two are awaited in that order).
    pub read_us: AtomicU64,
    /// Until the pipeline's outcome: applied and durable in the node's journal.
    pub done_us: AtomicU64,
}

impl ProposeTimes {
    fn add(&self, appended: Duration, read: Duration, done: Duration) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.appended_us
            .fetch_add(micros(appended), Ordering::Relaxed);
        self.read_us.fetch_add(micros(read), Ordering::Relaxed);
        self.done_us.fetch_add(micros(done), Ordering::Relaxed);
        self.answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// Appends commands for node `answers.node()` and waits for their outcomes from its replica.
#[derive(Debug)]
pub struct Proposer {
    writer: LogWriter,
    answers: Arc<Answers>,
    next_request: AtomicU64,
    times: Arc<ProposeTimes>,
}

impl Proposer {
    /// A proposer writing with `writer`, answered through `answers` (the same the node's
    /// [`crate::Replica`] delivers to).
    ///
    /// Requests are numbered from the process's start time in nanoseconds, not from 0: a
    /// record a former life of this node appended (sent just before a crash, and taken by
    /// a stalled broker after the restart) names a request number this life never uses, so
    /// its outcome is never handed to a request of this life. The simulator found this
    /// (docs/testing.md); requests from 0 answered a client with another command's outcome.
    pub fn new(writer: LogWriter, answers: Arc<Answers>) -> Proposer {
        Proposer {
            writer,
            answers,
            next_request: AtomicU64::new(first_request(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            )),
            times: Arc::new(ProposeTimes::default()),
        }
    }

    /// Where the answered commands' time went, so far.
    pub fn times(&self) -> &ProposeTimes {
        &self.times
    }

    /// Appends `kind`, stamped now, and waits until this node's replica has applied it: its
    /// outcome, whose `seq` is the record's offset plus one.
    pub async fn propose(&self, kind: CommandKind) -> Result<Outcome, ProposeError> {
        self.propose_at(kind, now_ms()).await
    }

    /// [`Proposer::propose`] with the timestamp given.
    pub async fn propose_at(
        &self,
        kind: CommandKind,
        timestamp_ms: i64,
    ) -> Result<Outcome, ProposeError> {
        self.propose_timed(kind, timestamp_ms)
            .await
            .map(|(outcome, _)| outcome)
    }

    /// [`Proposer::propose_at`], also saying how long the log took to acknowledge the append
    /// (the rest of the wait is the replica's: fetching the record back and applying it).
    pub async fn propose_timed(
        &self,
        kind: CommandKind,
        timestamp_ms: i64,
    ) -> Result<(Outcome, Duration), ProposeError> {
        self.send_at(kind, timestamp_ms)?.outcome_timed().await
    }

    /// Hands `kind`, stamped `timestamp_ms`, to the log now (appends from one caller reach the
    /// log in the order they were sent); the returned [`Proposed`] is its outcome to await.
    pub fn send_at(&self, kind: CommandKind, timestamp_ms: i64) -> Result<Proposed, ProposeError> {
        let started = Instant::now();
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let ticket = self.answers.wait_for(request);
        let key = record_key(self.answers.node(), request);
        match self
            .writer
            .append_keyed(Some(&key), &log_record(kind, timestamp_ms))
        {
            Ok(appended) => Ok(Proposed {
                request,
                answers: Arc::clone(&self.answers),
                appended,
                ticket,
                started,
                times: Arc::clone(&self.times),
            }),
            Err(error) => {
                self.answers.forget(request);
                Err(ProposeError::Unavailable(error))
            }
        }
    }

    /// [`Proposer::send_at`] stamped now.
    pub fn send(&self, kind: CommandKind) -> Result<Proposed, ProposeError> {
        self.send_at(kind, now_ms())
    }
}

/// A command handed to the log, waiting for the broker's acknowledgement and then for this
/// node's replica to apply it.
#[derive(Debug)]
pub struct Proposed {
    request: u64,
    answers: Arc<Answers>,
    appended: crate::Appended,
    ticket: tokio::sync::oneshot::Receiver<Answer>,
    started: Instant,
    times: Arc<ProposeTimes>,
}

impl Proposed {
    /// The command's outcome from this node's replica; its `seq` is the record's offset
    /// plus one.
    pub async fn outcome(self) -> Result<Outcome, ProposeError> {
        self.outcome_timed().await.map(|(outcome, _)| outcome)
    }

    /// [`Proposed::outcome`], with how long the log took to acknowledge the append.
    pub async fn outcome_timed(self) -> Result<(Outcome, Duration), ProposeError> {
        let Proposed {
            request,
            answers,
            appended,
            ticket,
            started,
            times,
        } = self;
        let offset = appended.await;
        let appended_after = started.elapsed();
        let offset = match offset {
            Ok(offset) => offset,
            Err(error) => {
                answers.forget(request);
                return Err(ProposeError::Unavailable(error));
            }
        };
        let answer = ticket.await.map_err(|_| ProposeError::ReplicaStopped)?;
        let read_after = started.elapsed();
        let outcome = match answer {
            Answer::Ticket(ticket) => ticket.await,
            Answer::Ready(outcome) => outcome,
        }
        .map_err(ProposeError::Pipeline)?;
        times.add(appended_after, read_after, started.elapsed());
        debug_assert_eq!(i64::try_from(outcome.seq).ok(), offset.checked_add(1));
        Ok((outcome, appended_after))
    }
}

/// The first request number of a process started at `started` (since the Unix epoch): the
/// time in nanoseconds. A restart comes later than every request of the life before, which
/// numbered at most one request a nanosecond. The simulator numbers its nodes' requests by
/// this too, on its clock.
pub fn first_request(started: Duration) -> u64 {
    u64::try_from(started.as_nanos()).unwrap_or(u64::MAX / 2)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
