//! Whether this node has seen the whole log, within a bound: what lets it answer reads
//! rather than show old balances, and take writes rather than wait on a replica that is cut
//! off.
//!
//! A probe thread asks the broker for the log's end (the partition's high watermark) every
//! `max_staleness / 5` (at least 10 ms, at most 200 ms). Each answer `(t, end)` is kept until
//! the local replica has applied every offset before `end`; then the node is known to have
//! had the whole log as of time `t` (`t` is taken before the request is sent). The node is
//! **fresh** while the newest such `t` is at most `max_staleness` ago: anything appended to
//! the log more than `max_staleness` ago is in its state. A node that cannot reach the broker
//! gets no answers, and one whose replica falls behind does not apply up to them: either
//! way it turns stale within `max_staleness` (plus one probe interval).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer as _;

use crate::{LOG_PARTITION, LogError};

/// How many unanswered log ends are kept (the newest; an older one adds nothing a newer one
/// does not).
const PENDING_MAX: usize = 1_024;

/// This node is behind the log, or has not heard from the broker, for longer than allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this node has not seen the whole command log for {behind}: {why}; retry, or use another \
     node"
)]
pub struct Stale {
    /// Since when, in words ("1.2 s", "ever since it started").
    pub behind: String,
    /// Why: the broker is not answering, or the replica is still applying.
    pub why: String,
}

/// What [`Freshness`] knows, for status pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreshnessStatus {
    /// The next offset this node's replica will apply (everything before it is applied).
    pub next_offset: u64,
    /// The log's end at the newest answer from the broker.
    pub log_end: Option<u64>,
    /// How long ago the broker last answered a probe.
    pub heard_ago: Option<Duration>,
    /// How long ago this node last had the whole log.
    pub behind: Option<Duration>,
    /// Whether `behind` is within the bound.
    pub fresh: bool,
}

/// The applied position of the local replica: everything before the returned offset applied.
pub type Applied = Box<dyn Fn() -> u64 + Send + Sync>;

struct Shared {
    applied: Applied,
    tracker: Mutex<FreshnessTracker<Instant>>,
    stop: AtomicBool,
    started: Instant,
}

/// A point in time a [`FreshnessTracker`] measures from: `Instant` in a server, a simulated
/// clock's reading (a `Duration` since its start) in the simulator.
pub trait Moment: Copy + Ord {
    /// How long after `earlier` this is (zero if it is not after it).
    fn since(self, earlier: Self) -> Duration;
}

impl Moment for Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl Moment for Duration {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_sub(earlier)
    }
}

/// How often a node asks the broker for the log's end, for a bound of `max_staleness`:
/// a fifth of it, at least 10 ms and at most 200 ms.
pub fn probe_interval(max_staleness: Duration) -> Duration {
    (max_staleness / 5).clamp(Duration::from_millis(10), Duration::from_millis(200))
}

/// The rule of the module docs, with no thread and no clock of its own: the broker's answers
/// go in through [`FreshnessTracker::heard`], stamped when each probe was asked, and
/// [`FreshnessTracker::status`] judges at the time it is given. [`Freshness`] runs one on
/// the real clock; the simulator runs one per node on its simulated clock.
#[derive(Debug)]
pub struct FreshnessTracker<M> {
    max_staleness: Duration,
    /// Answers `(asked at, log end)` the replica has not caught up with, oldest first.
    pending: VecDeque<(M, u64)>,
    /// When the probe that the replica last caught up with was sent.
    caught_up_at: Option<M>,
    heard_at: Option<M>,
    log_end: Option<u64>,
}

impl<M: Moment> FreshnessTracker<M> {
    /// A node that has heard nothing yet (stale).
    pub fn new(max_staleness: Duration) -> FreshnessTracker<M> {
        FreshnessTracker {
            max_staleness,
            pending: VecDeque::new(),
            caught_up_at: None,
            heard_at: None,
            log_end: None,
        }
    }

    /// The broker answered the probe sent at `asked`: the log ended at `end` (or later).
    pub fn heard(&mut self, asked: M, end: u64) {
        self.heard_at = Some(self.heard_at.map_or(asked, |at| at.max(asked)));
        self.log_end = Some(self.log_end.map_or(end, |e| e.max(end)));
        // The same end asked later says more (the replica had it at a later time).
        if let Some(last) = self.pending.back_mut()
            && last.1 == end
        {
            last.0 = last.0.max(asked);
            return;
        }
        if self.pending.len() == PENDING_MAX {
            self.pending.pop_front();
        }
        self.pending.push_back((asked, end));
    }

    /// What is known at `now`, the local replica having applied everything before `applied`.
    pub fn status(&mut self, now: M, applied: u64) -> FreshnessStatus {
        while let Some(&(asked, end)) = self.pending.front() {
            if end > applied {
                break;
            }
            self.caught_up_at = Some(self.caught_up_at.map_or(asked, |at| at.max(asked)));
            self.pending.pop_front();
        }
        let behind = self.caught_up_at.map(|at| now.since(at));
        FreshnessStatus {
            next_offset: applied,
            log_end: self.log_end,
            heard_ago: self.heard_at.map(|at| now.since(at)),
            behind,
            fresh: behind.is_some_and(|behind| behind <= self.max_staleness),
        }
    }

    /// `Ok` while fresh at `now`; otherwise why not, in words (`running` is how long the node
    /// has run, for a node that never was fresh).
    pub fn check(&mut self, now: M, applied: u64, running: Duration) -> Result<(), Stale> {
        let status = self.status(now, applied);
        if status.fresh {
            return Ok(());
        }
        let behind = match status.behind {
            Some(behind) => format!("{:.1} s", behind.as_secs_f64()),
            None => format!("{:.1} s (ever since it started)", running.as_secs_f64()),
        };
        let why = match (status.heard_ago, status.log_end) {
            (Some(heard), Some(end)) if heard <= self.max_staleness => {
                format!("its replica is at offset {} of {end}", status.next_offset)
            }
            (Some(heard), _) => {
                format!("the broker last answered {:.1} s ago", heard.as_secs_f64())
            }
            (None, _) => "the broker has not answered yet".to_owned(),
        };
        Err(Stale { behind, why })
    }
}

/// The probe thread and what it learnt (see the module docs).
pub struct Freshness {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Freshness")
            .field("status", &self.status())
            .finish()
    }
}

impl Freshness {
    /// Starts probing `topic`'s log end on `brokers`; `applied` says how far the local replica
    /// has applied.
    pub fn start(
        brokers: &str,
        topic: &str,
        max_staleness: Duration,
        applied: Applied,
    ) -> Result<Freshness, LogError> {
        let client = bourse_feed::metadata_client(brokers)?;
        let shared = Arc::new(Shared {
            applied,
            tracker: Mutex::new(FreshnessTracker::new(max_staleness)),
            stop: AtomicBool::new(false),
            started: Instant::now(),
        });
        let interval = probe_interval(max_staleness);
        // A probe may wait this long for the broker; a slower answer is no use anyway.
        let timeout = max_staleness.max(Duration::from_millis(100));
        let thread = {
            let shared = Arc::clone(&shared);
            let topic = topic.to_owned();
            std::thread::Builder::new()
                .name("bourse-freshness".into())
                .spawn(move || {
                    while !shared.stop.load(Ordering::Relaxed) {
                        let asked = Instant::now();
                        if let Ok((_, end)) =
                            client.fetch_watermarks(&topic, LOG_PARTITION, timeout)
                        {
                            shared.lock().heard(asked, end.unsigned_abs());
                        }
                        if let Some(rest) = interval.checked_sub(asked.elapsed()) {
                            std::thread::park_timeout(rest);
                        }
                    }
                })
                .map_err(|e| LogError::Config(format!("cannot start the probe thread: {e}")))?
        };
        Ok(Freshness {
            shared,
            thread: Some(thread),
        })
    }

    /// `Ok` while this node has had the whole log within the bound.
    pub fn check(&self) -> Result<(), Stale> {
        let applied = (self.shared.applied)();
        let running = self.shared.started.elapsed();
        self.shared.lock().check(Instant::now(), applied, running)
    }

    /// What it knows now.
    pub fn status(&self) -> FreshnessStatus {
        let applied = (self.shared.applied)();
        self.shared.lock().status(Instant::now(), applied)
    }

    /// Stops the probe thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Freshness {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, FreshnessTracker<Instant>> {
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// A probe with no thread: the tests feed it answers, stamped when they say.
    fn probe(applied: &Arc<AtomicU64>) -> Freshness {
        let applied = Arc::clone(applied);
        Freshness {
            shared: Arc::new(Shared {
                applied: Box::new(move || applied.load(Ordering::Relaxed)),
                tracker: Mutex::new(FreshnessTracker::new(Duration::from_secs(1))),
                stop: AtomicBool::new(false),
                started: Instant::now(),
            }),
            thread: None,
        }
    }

    fn ago(seconds: u64) -> Instant {
        Instant::now()
            .checked_sub(Duration::from_secs(seconds))
            .unwrap()
    }

    #[test]
    fn a_node_is_fresh_only_once_its_replica_has_reached_a_recent_answer() {
        let applied = Arc::new(AtomicU64::new(3));
        let probe = probe(&applied);
        let stale = probe.check().unwrap_err();
        assert!(stale.why.contains("has not answered yet"), "{stale}");
        // The broker says the log ends at 5; the replica is at 3.
        probe.shared.lock().heard(Instant::now(), 5);
        let stale = probe.check().unwrap_err();
        assert!(stale.why.contains("at offset 3 of 5"), "{stale}");
        applied.store(5, Ordering::Relaxed);
        assert_eq!(probe.check(), Ok(()));
        let status = probe.status();
        assert_eq!((status.next_offset, status.log_end), (5, Some(5)));
        // A newer end it has not reached does not make it stale while the last one it reached
        // is recent.
        probe.shared.lock().heard(Instant::now(), 9);
        assert_eq!(probe.check(), Ok(()));
    }

    #[test]
    fn an_answer_counts_from_when_it_was_asked_not_when_it_arrived() {
        let applied = Arc::new(AtomicU64::new(5));
        let probe = probe(&applied);
        // Asked 10 s ago (the node was paused, say): caught up with, but too old.
        probe.shared.lock().heard(ago(10), 5);
        let stale = probe.check().unwrap_err();
        assert!(stale.behind.starts_with("10."), "{stale}");
        assert!(stale.why.contains("last answered 10."), "{stale}");
        // The same end asked again now: fresh.
        probe.shared.lock().heard(Instant::now(), 5);
        assert_eq!(probe.check(), Ok(()));
    }

    #[test]
    fn a_node_the_broker_stopped_answering_turns_stale() {
        let applied = Arc::new(AtomicU64::new(7));
        let probe = probe(&applied);
        probe.shared.lock().heard(ago(3), 7);
        let status = probe.status();
        assert!(!status.fresh);
        assert!(status.heard_ago.unwrap() >= Duration::from_secs(3));
        // Answers are kept in order, and only up to a bound.
        for end in 0..2 * PENDING_MAX as u64 {
            probe.shared.lock().heard(ago(2), 100 + end);
        }
        assert_eq!(probe.shared.lock().pending.len(), PENDING_MAX);
    }
}
