//! Reading the command log in order, from an offset, refusing gaps.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bourse_feed::{AssignmentMode, Consumer, ConsumerConfig, FeedMessage};

use crate::{LOG_PARTITION, LogError};

/// Configuration of a [`LogReader`].
#[derive(Clone, Debug)]
pub struct ReaderConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The shard's command topic ([`crate::command_topic`]).
    pub topic: String,
    /// The name this replica commits its position under, for monitoring only (the replica
    /// keeps its own position with its state; reading uses no consumer group).
    pub group_id: String,
    /// How long the broker may hold a fetch that has too little data (`fetch.wait.max.ms`):
    /// with tansu 0.6.0 every fetch waits this long, so it bounds the replication delay.
    pub fetch_wait_max: Duration,
}

impl ReaderConfig {
    /// A configuration with 1 ms fetch waits.
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        group_id: impl Into<String>,
    ) -> ReaderConfig {
        ReaderConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            group_id: group_id.into(),
            fetch_wait_max: Duration::from_millis(1),
        }
    }
}

/// One record of the log as handed to the reader's handler. Borrowed: copy what you keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// The record's offset: its place in the shard's total order.
    pub offset: i64,
    /// The record's key, if its writer gave one.
    pub key: Option<&'a [u8]>,
    /// The bytes appended.
    pub bytes: &'a [u8],
}

/// The handler the transport's thread runs: the caller's, behind the offset check.
type Checked = Box<dyn FnMut(FeedMessage<'_>) + Send>;

/// What the reader's thread shares with its owner.
#[derive(Debug, Default)]
struct Shared {
    next: AtomicI64,
    failed: AtomicBool,
    failure: Mutex<Option<LogError>>,
}

/// Reads a shard's log from an offset on its own thread, handing every record to the
/// handler in offset order, each once. A record that is not the next offset stops the
/// handing (see [`LogReader::failure`]).
pub struct LogReader {
    consumer: Consumer<Checked>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("next", &self.next_offset())
            .field("failed", &self.shared.failed.load(Ordering::Relaxed))
            .finish()
    }
}

impl LogReader {
    /// Starts reading `config.topic` at offset `from` (the first offset this replica has not
    /// applied). The topic must exist.
    pub fn start<H>(config: &ReaderConfig, from: i64, mut handler: H) -> Result<LogReader, LogError>
    where
        H: FnMut(LogRecord<'_>) + Send + 'static,
    {
        if from < 0 {
            return Err(LogError::Config(format!("no offset {from}")));
        }
        let mut consumer_config =
            ConsumerConfig::new(&config.brokers, &config.topic, &config.group_id);
        consumer_config.assignment = AssignmentMode::AllPartitions;
        consumer_config.fetch_wait_max = config.fetch_wait_max;
        // A command log has dense offsets: a record after a gap means the broker skipped some
        // (tansu can), so they are fetched again; a gap that remains stops the reader.
        consumer_config.dense_offsets = true;
        let shared = Arc::new(Shared::default());
        shared.next.store(from, Ordering::Relaxed);
        let offsets = {
            let shared = Arc::clone(&shared);
            move |_partition: i32| Some(shared.next.load(Ordering::Relaxed))
        };
        let checked: Checked = {
            let shared = Arc::clone(&shared);
            Box::new(move |message: FeedMessage<'_>| {
                if shared.failed.load(Ordering::Relaxed) {
                    return;
                }
                let expected = shared.next.load(Ordering::Relaxed);
                if message.partition != LOG_PARTITION || message.offset != expected {
                    fail(
                        &shared,
                        LogError::Gap {
                            expected,
                            found: message.offset,
                        },
                    );
                    return;
                }
                handler(LogRecord {
                    offset: message.offset,
                    key: message.key,
                    bytes: message.payload,
                });
                shared.next.store(expected + 1, Ordering::Relaxed);
            })
        };
        let consumer = Consumer::start(consumer_config, offsets, checked)?;
        Ok(LogReader { consumer, shared })
    }

    /// The next offset the handler will get: one past the last it got.
    pub fn next_offset(&self) -> i64 {
        self.shared.next.load(Ordering::Relaxed)
    }

    /// Why the reader stopped handing records, if it did: a gap, or its thread ended.
    pub fn failure(&self) -> Option<String> {
        if self.shared.failed.load(Ordering::Relaxed) {
            let failure = self
                .shared
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return Some(
                failure
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string),
            );
        }
        self.consumer
            .is_finished()
            .then(|| "the reader's thread ended".to_owned())
    }

    /// Whether the broker answered the reader recently (from the transport's statistics).
    pub fn broker_reachable(&self) -> bool {
        self.consumer.stats().broker_reachable()
    }

    /// Stops the thread and waits for it; an error says why it had failed.
    pub fn stop(self) -> Result<i64, LogError> {
        let next = self.next_offset();
        let failure = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let _handler = self.consumer.stop()?;
        match failure {
            Some(error) => Err(error),
            None => Ok(next),
        }
    }
}

fn fail(shared: &Shared, error: LogError) {
    tracing::error!("{error}");
    *shared
        .failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(error);
    shared.failed.store(true, Ordering::Relaxed);
}
