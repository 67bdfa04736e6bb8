//! The consumer: one OS thread running an rdkafka `BaseConsumer` on one topic, starting each
//! partition at the caller's offset and handing every message to the caller's handler.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::FeedError;
use crate::context::{AssignmentChange, FeedContext};
use crate::slots::{Admission, Probe, Slot, admit, apply_change};
use crate::stats::FeedStats;

/// The largest `partitions_max` a consumer accepts.
pub const PARTITIONS_MAX: usize = 4096;
/// The largest `batch_messages_max` a consumer accepts.
pub const BATCH_MESSAGES_MAX: usize = 65_536;
/// The longest `poll_timeout` a consumer accepts: it bounds how long [`Consumer::stop`] waits
/// for the loop to notice.
pub const POLL_TIMEOUT_MAX: Duration = Duration::from_secs(5);
/// The longest `close_timeout` a consumer accepts.
pub const CLOSE_TIMEOUT_MAX: Duration = Duration::from_secs(60);

/// librdkafka properties that this crate sets itself, because the offset contract depends on
/// them or because a [`ConsumerConfig`] field holds them.
const RESERVED_PROPERTIES: [&str; 6] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "statistics.interval.ms",
    "enable.partition.eof",
];

/// The longest `fetch_wait_max` a consumer accepts (librdkafka's own limit is 300 s; a longer
/// wait than this only delays a fetch that has nothing to return).
pub const FETCH_WAIT_MAX_MAX: Duration = Duration::from_secs(1);

/// How the consumer gets its partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignmentMode {
    /// Subscribe with the consumer group `group_id`; the group coordinator assigns partitions
    /// and each assignment (rebalance) starts at the caller's offsets.
    Group,
    /// Assign every partition the topic has when the consumer starts, without group membership
    /// (no rebalances; partitions added later are not read). `group_id` is still used for the
    /// monitoring commits.
    AllPartitions,
    /// Assign the partitions the caller names, without group membership: none at start, then
    /// whatever [`Consumer::set_partitions`] says, changed while running (a node of the market
    /// data tier reads the partitions it holds). Each partition added starts at the caller's
    /// offset; one removed is no longer handed over. `group_id` is still used for the
    /// monitoring commits.
    Given,
}

/// Configuration of a [`Consumer`]. Build it with [`ConsumerConfig::new`] and change fields.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The one topic to read.
    pub topic: String,
    /// The consumer group (`group.id`).
    pub group_id: String,
    /// Group membership or a static assignment of every partition.
    pub assignment: AssignmentMode,
    /// Partition numbers must be below this (the size of the statistics table).
    pub partitions_max: usize,
    /// Messages handed over in one batch before the loop checks for stop and commits.
    pub batch_messages_max: usize,
    /// How long one poll waits when no message is queued; bounds the latency of `stop`.
    pub poll_timeout: Duration,
    /// Interval of the asynchronous offset commits made for monitoring only; `None`: never.
    pub commit_interval: Option<Duration>,
    /// Interval of librdkafka's statistics reports, the source of lag and reachability;
    /// `Duration::ZERO` disables them.
    pub statistics_interval: Duration,
    /// How long the broker may hold a fetch request that has too little data to return
    /// (librdkafka's `fetch.wait.max.ms`). With Apache Kafka it only matters on an idle topic
    /// (one fetch per interval per broker then). tansu 0.6.0, though, holds *every* fetch for
    /// this long (half of it above 250 ms) even when data is ready, and returns at most 5 MiB
    /// per fetch: the wait bounds both its latency and its throughput. Hence 10 ms by default
    /// rather than librdkafka's 500 ms (measured on tansu: about 0.15 against 1 to 1.5 million
    /// 100-byte messages/s). A `fetch.wait.max.ms` in `properties` overrides it.
    pub fetch_wait_max: Duration,
    /// How many messages before the caller's offset each assignment starts to fetch, dropping
    /// them: a broker may answer a fetch at an offset inside a record batch with the next
    /// batch, skipping the rest of that one (tansu 0.6.0 does; Apache Kafka does not). Make it
    /// at least the largest record batch the producers write (librdkafka's producer writes up
    /// to `batch.num.messages`, 10000 by default). Should the first message still come after
    /// the caller's offset, the consumer fetches again from 8 times further back, until it gets
    /// an earlier one or offset 0 (then the gap is real and counted in `FeedStats::gaps`); that
    /// needs a later message to exist, hence the rewind ahead of time. 0: start exactly there.
    pub start_rewind_messages: i64,
    /// The topic's offsets are dense (no compaction, no transactions), so a message after a
    /// gap means the broker skipped records (tansu 0.6.0 can, mid-stream too): the consumer
    /// then fetches again from before the gap, as at an assignment, instead of handing the
    /// later message over. Off by default (a compacted topic has real gaps).
    pub dense_offsets: bool,
    /// How long stopping waits for the client to close (leave the group, finish the last
    /// monitoring commit). A client that cannot close in time (its broker is unreachable:
    /// librdkafka then waits for the broker's return) is released on a background thread.
    pub close_timeout: Duration,
    /// Further librdkafka properties (`fetch.min.bytes`, `queued.min.messages`,
    /// `socket.timeout.ms`, ...). Those this crate owns are refused (see `validate`).
    pub properties: Vec<(String, String)>,
}

impl ConsumerConfig {
    /// A configuration with the defaults: group assignment, 256 partitions at most, batches of
    /// 1024 messages, 100 ms polls, commits every 5 s, statistics every second, fetches held
    /// 10 ms at most, 5 s to close.
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        group_id: impl Into<String>,
    ) -> ConsumerConfig {
        ConsumerConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            group_id: group_id.into(),
            assignment: AssignmentMode::Group,
            partitions_max: 256,
            batch_messages_max: 1024,
            poll_timeout: Duration::from_millis(100),
            commit_interval: Some(Duration::from_secs(5)),
            statistics_interval: Duration::from_secs(1),
            fetch_wait_max: Duration::from_millis(10),
            close_timeout: Duration::from_secs(5),
            start_rewind_messages: 10_000,
            dense_offsets: false,
            properties: Vec::new(),
        }
    }

    /// Adds a librdkafka property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), FeedError> {
        let fail = |message: String| Err(FeedError::Config(message));
        if self.brokers.is_empty() || self.topic.is_empty() || self.group_id.is_empty() {
            return fail("brokers, topic and group_id must not be empty".into());
        }
        if !(1..=PARTITIONS_MAX).contains(&self.partitions_max) {
            return fail(format!("partitions_max must be in 1..={PARTITIONS_MAX}"));
        }
        if !(1..=BATCH_MESSAGES_MAX).contains(&self.batch_messages_max) {
            return fail(format!(
                "batch_messages_max must be in 1..={BATCH_MESSAGES_MAX}"
            ));
        }
        if self.poll_timeout.is_zero() || self.poll_timeout > POLL_TIMEOUT_MAX {
            return fail(format!("poll_timeout must be in (0, {POLL_TIMEOUT_MAX:?}]"));
        }
        if self.fetch_wait_max > FETCH_WAIT_MAX_MAX {
            return fail(format!(
                "fetch_wait_max must be at most {FETCH_WAIT_MAX_MAX:?}"
            ));
        }
        if self.start_rewind_messages < 0 {
            return fail("start_rewind_messages must not be negative".into());
        }
        if self.close_timeout > CLOSE_TIMEOUT_MAX {
            return fail(format!(
                "close_timeout must be at most {CLOSE_TIMEOUT_MAX:?}"
            ));
        }
        if self
            .commit_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return fail("commit_interval must not be zero (use None)".into());
        }
        if let Some((key, _)) = self
            .properties
            .iter()
            .find(|(key, _)| RESERVED_PROPERTIES.contains(&key.as_str()))
        {
            return fail(format!("the property {key} is set by the feed itself"));
        }
        Ok(())
    }

    fn client_config(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("client.id", "bourse-feed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "statistics.interval.ms",
                self.statistics_interval.as_millis().to_string(),
            )
            .set(
                "fetch.wait.max.ms",
                self.fetch_wait_max.as_millis().to_string(),
            );
        for (key, value) in &self.properties {
            client.set(key, value);
        }
        client
    }
}

/// One message as handed to the handler. Borrowed from the consumer: copy what you keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedMessage<'a> {
    /// The partition the message came from.
    pub partition: i32,
    /// Its offset; strictly increasing per partition across the handler calls.
    pub offset: i64,
    /// The key, if the producer set one.
    pub key: Option<&'a [u8]>,
    /// The payload; empty for a message without one.
    pub payload: &'a [u8],
    /// The message's timestamp in milliseconds since the epoch, if the broker gave one.
    pub timestamp_ms: Option<i64>,
}

/// A running consumer. Its thread owns the rdkafka client and the handler; dropping the
/// `Consumer` stops the thread too, but only [`Consumer::stop`] gives the handler back.
pub struct Consumer<H> {
    stop_requested: Arc<AtomicBool>,
    /// [`AssignmentMode::Given`]: the partitions asked for and not yet taken by the thread.
    wanted: Arc<Mutex<Option<BTreeSet<i32>>>>,
    stats: Arc<FeedStats>,
    thread: Option<JoinHandle<Result<H, FeedError>>>,
}

impl<H> std::fmt::Debug for Consumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<H> Consumer<H>
where
    H: FnMut(FeedMessage<'_>) + Send + 'static,
{
    /// Creates the client and starts the consumer thread.
    ///
    /// `offsets(partition)` gives the next offset to read for a partition (`None`: from the
    /// earliest). It is called on the consumer thread whenever partitions are assigned (at
    /// start, and at every rebalance in [`AssignmentMode::Group`]), between two handler calls,
    /// so it must answer from the state the handler has built so far. `handler` receives every
    /// message on the consumer thread, in offset order per partition, each offset at most once
    /// per assignment.
    pub fn start<O>(
        config: ConsumerConfig,
        offsets: O,
        handler: H,
    ) -> Result<Consumer<H>, FeedError>
    where
        O: Fn(i32) -> Option<i64> + Send + Sync + 'static,
    {
        config.validate()?;
        let stats = Arc::new(FeedStats::new(config.partitions_max));
        let context = FeedContext::new(
            config.topic.clone(),
            config.partitions_max,
            config.start_rewind_messages,
            Box::new(offsets),
            Arc::clone(&stats),
        );
        let consumer = BaseConsumer::from_config_and_context(&config.client_config(), context)
            .map_err(FeedError::kafka("consumer creation"))?;
        let stop_requested = Arc::new(AtomicBool::new(false));
        let wanted = Arc::new(Mutex::new(None));
        let thread = {
            let stop_requested = Arc::clone(&stop_requested);
            let wanted = Arc::clone(&wanted);
            let stats = Arc::clone(&stats);
            std::thread::Builder::new()
                .name("bourse-feed".into())
                .spawn(move || {
                    let close_timeout = config.close_timeout;
                    let mut run = Run::new(consumer, config, stop_requested, wanted);
                    let result = run.run(handler);
                    close_within(run.consumer, close_timeout);
                    stats.set_stopped();
                    result
                })
                .map_err(FeedError::Spawn)?
        };
        Ok(Consumer {
            stop_requested,
            wanted,
            stats,
            thread: Some(thread),
        })
    }

    /// Stops the thread, waits for it, and gives the handler back (with the state it holds).
    /// An error says why the thread had stopped by itself (a refused assignment or a fatal
    /// client error) or that the handler panicked.
    pub fn stop(mut self) -> Result<H, FeedError> {
        self.request_stop();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| FeedError::ThreadPanicked)?,
            None => Err(FeedError::ThreadPanicked),
        }
    }
}

impl<H> Consumer<H> {
    /// Asks the thread to stop after the batch in hand, without waiting (see
    /// [`Consumer::stop`]).
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Relaxed);
    }

    /// [`AssignmentMode::Given`]: read exactly `partitions` from now on. The thread takes the
    /// change between two batches: partitions added start at the caller's offset (the
    /// `offsets` callback), and no message of a partition removed is handed over after that.
    /// The newest call wins over one not yet taken. Ignored in the other modes.
    pub fn set_partitions(&self, partitions: impl IntoIterator<Item = i32>) {
        let set = partitions.into_iter().collect();
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = Some(set);
    }

    /// The live counters of this consumer.
    pub fn stats(&self) -> &Arc<FeedStats> {
        &self.stats
    }

    /// Whether the thread has ended by itself (see [`Consumer::stop`] for why).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl<H> Drop for Consumer<H> {
    fn drop(&mut self) {
        self.stop_requested.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The result is dropped with the consumer: whoever wanted it called `stop`.
            let _ = thread.join();
        }
    }
}

/// How long a seek for a rewind may take (it waits for librdkafka's fetcher, not the broker).
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);
/// A probe that no message has settled for this long (checked at this period) is rewound
/// anyway: tansu 0.6.0 may also answer a fetch inside a record batch with nothing at all, and
/// then no later message comes to show the skip. A rewind of a partition that merely had
/// nothing new re-reads a few messages and drops them.
const PROBE_STALL: Duration = Duration::from_secs(1);

/// The consumer thread's state.
struct Run {
    consumer: BaseConsumer<FeedContext>,
    config: ConsumerConfig,
    stop_requested: Arc<AtomicBool>,
    wanted: Arc<Mutex<Option<BTreeSet<i32>>>>,
    slots: Vec<Slot>,
}

impl Run {
    fn new(
        consumer: BaseConsumer<FeedContext>,
        config: ConsumerConfig,
        stop_requested: Arc<AtomicBool>,
        wanted: Arc<Mutex<Option<BTreeSet<i32>>>>,
    ) -> Run {
        let slots = vec![Slot::Unassigned; config.partitions_max];
        Run {
            consumer,
            config,
            stop_requested,
            wanted,
            slots,
        }
    }

    fn stopping(&self) -> bool {
        self.stop_requested.load(Ordering::Relaxed)
    }

    fn run<H: FnMut(FeedMessage<'_>)>(&mut self, mut handler: H) -> Result<H, FeedError> {
        match self.config.assignment {
            AssignmentMode::Group => self
                .consumer
                .subscribe(&[&self.config.topic])
                .map_err(FeedError::kafka("subscribe"))?,
            AssignmentMode::AllPartitions => self.assign_all()?,
            AssignmentMode::Given => {}
        }
        let mut last_commit = Instant::now();
        let mut probes_seen: Vec<Option<Probe>> = vec![None; self.slots.len()];
        let mut last_probe_check = Instant::now();
        while !self.stopping() {
            if self.config.assignment == AssignmentMode::Given {
                self.take_wanted()?;
            }
            self.poll_batch(&mut handler)?;
            if last_probe_check.elapsed() >= PROBE_STALL {
                self.rewind_stalled_probes(&mut probes_seen);
                last_probe_check = Instant::now();
            }
            if let Some(interval) = self.config.commit_interval
                && last_commit.elapsed() >= interval
            {
                self.commit_positions();
                last_commit = Instant::now();
            }
        }
        if self.config.commit_interval.is_some() {
            self.commit_positions();
        }
        Ok(handler)
    }

    /// Polls up to `batch_messages_max` messages: waits `poll_timeout` for the first, then takes
    /// what is already queued.
    fn poll_batch<H: FnMut(FeedMessage<'_>)>(&mut self, handler: &mut H) -> Result<(), FeedError> {
        let mut timeout = self.config.poll_timeout;
        let (mut messages, mut bytes) = (0u64, 0u64);
        for _ in 0..self.config.batch_messages_max {
            let polled = self.consumer.poll(timeout);
            let context = self.consumer.context();
            if context.has_pending() {
                let rewind = self.config.start_rewind_messages;
                for change in context.take_pending() {
                    apply_change(&mut self.slots, context.stats(), rewind, change)?;
                }
            }
            match polled {
                None => break,
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    return Err(FeedError::Kafka {
                        what: "consume (fatal)",
                        source: KafkaError::MessageConsumptionFatal(code),
                    });
                }
                // Counted and logged by the context's error callback, which saw it first.
                Some(Err(_)) => break,
                Some(Ok(message)) => {
                    timeout = Duration::ZERO;
                    let slots = &mut self.slots;
                    let dense = self
                        .config
                        .dense_offsets
                        .then_some(self.config.start_rewind_messages);
                    if let Some(payload_len) =
                        deliver(&self.consumer, slots, dense, &message, handler)
                    {
                        messages += 1;
                        bytes += payload_len as u64;
                    }
                }
            }
        }
        if messages > 0 {
            let stats = self.consumer.context().stats();
            stats.add_delivered(messages, bytes);
            if !stats.broker_reachable() {
                self.consumer.context().set_reachable(true);
            }
        }
        Ok(())
    }

    /// Rewinds each probe that is the same as at the previous check (no message has come for
    /// its partition since), as a message after the caller's offset would have.
    fn rewind_stalled_probes(&mut self, probes_seen: &mut [Option<Probe>]) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Slot::Assigned { probe, .. } = slot else {
                probes_seen[index] = None;
                continue;
            };
            let previous = std::mem::replace(&mut probes_seen[index], *probe);
            let Some(check) = *probe else { continue };
            if previous != Some(check) || check.start == 0 {
                continue;
            }
            let Ok(partition) = i32::try_from(index) else {
                continue;
            };
            let rewound = check.rewound();
            *probe = Some(rewound);
            probes_seen[index] = Some(rewound);
            let context = self.consumer.context();
            let why = format_args!(
                "partition {partition}: no message for a fetch at {}; fetching again from {} \
                 (the broker may have skipped a record batch)",
                check.start, rewound.start
            );
            context.log().once(&format!("stall/{partition}"), why);
            let topic = self.config.topic.as_str();
            let seek = self.consumer.seek(
                topic,
                partition,
                Offset::Offset(rewound.start),
                SEEK_TIMEOUT,
            );
            if let Err(error) = seek {
                context.note_error("seek", &error);
            }
        }
    }

    /// [`AssignmentMode::Given`]: applies the newest [`Consumer::set_partitions`] not yet
    /// taken: unassigns what is no longer wanted, then assigns what is new at the caller's
    /// offsets.
    fn take_wanted(&mut self) -> Result<(), FeedError> {
        let Some(wanted) = self.wanted.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        let assigned: BTreeSet<i32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| **slot != Slot::Unassigned)
            .filter_map(|(index, _)| i32::try_from(index).ok())
            .collect();
        let topic = self.config.topic.clone();
        let rewind = self.config.start_rewind_messages;
        let removed: Vec<i32> = assigned.difference(&wanted).copied().collect();
        if !removed.is_empty() {
            let mut tpl = TopicPartitionList::with_capacity(removed.len());
            for &partition in &removed {
                tpl.add_partition(&topic, partition);
            }
            self.consumer
                .incremental_unassign(&tpl)
                .map_err(FeedError::kafka("unassign"))?;
            let stats = self.consumer.context().stats();
            apply_change(
                &mut self.slots,
                stats,
                rewind,
                AssignmentChange::Revoked(removed),
            )?;
        }
        let added: Vec<i32> = wanted.difference(&assigned).copied().collect();
        if !added.is_empty() {
            let mut tpl = TopicPartitionList::with_capacity(added.len());
            for &partition in &added {
                tpl.add_partition(&topic, partition);
            }
            let context = self.consumer.context();
            let starts = context.start_offsets(&mut tpl)?;
            self.consumer
                .incremental_assign(&tpl)
                .map_err(FeedError::kafka("assign"))?;
            let stats = self.consumer.context().stats();
            apply_change(
                &mut self.slots,
                stats,
                rewind,
                AssignmentChange::Assigned(starts),
            )?;
        }
        Ok(())
    }

    /// Assigns every partition of the topic at the caller's offsets, retrying the metadata
    /// request until the topic is known or a stop is requested.
    fn assign_all(&mut self) -> Result<(), FeedError> {
        let topic = self.config.topic.clone();
        let metadata_timeout = self.config.poll_timeout.max(Duration::from_secs(1));
        while !self.stopping() {
            let partitions = match self.consumer.fetch_metadata(Some(&topic), metadata_timeout) {
                Ok(metadata) => metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
                    .unwrap_or_default(),
                Err(error) => {
                    self.consumer.context().note_error("metadata", &error);
                    Vec::new()
                }
            };
            if partitions.is_empty() {
                let message = format_args!("topic {topic} has no partitions yet; waiting");
                self.consumer.context().log().once("no-partitions", message);
                // Serves the client's events (errors, statistics) while waiting, for at most
                // poll_timeout; nothing is assigned yet, so no message can come.
                let _ = self.consumer.poll(self.config.poll_timeout);
                continue;
            }
            let mut tpl = TopicPartitionList::with_capacity(partitions.len());
            for partition in partitions {
                tpl.add_partition(&topic, partition);
            }
            let context = self.consumer.context();
            let starts = context.start_offsets(&mut tpl)?;
            self.consumer
                .assign(&tpl)
                .map_err(FeedError::kafka("assign"))?;
            let change = AssignmentChange::Assigned(starts);
            let rewind = self.config.start_rewind_messages;
            apply_change(&mut self.slots, context.stats(), rewind, change)?;
            return Ok(());
        }
        Ok(())
    }

    /// Commits, asynchronously and for monitoring only, the positions that moved. Skipped
    /// while the broker is unreachable: a commit waiting for the coordinator would hold the
    /// client's close until the broker returns.
    fn commit_positions(&mut self) {
        if !self.consumer.context().stats().broker_reachable() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Assigned {
                next: Some(next),
                committed,
                ..
            } = slot
                && *committed != Some(*next)
                && let Ok(partition) = i32::try_from(index)
            {
                tpl.add_partition_offset(&self.config.topic, partition, Offset::Offset(*next))
                    .ok();
                *committed = Some(*next);
            }
        }
        if tpl.count() > 0
            && let Err(error) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            self.consumer.context().note_error("commit", &error);
        }
    }
}

/// Hands a message to the handler if [`admit`] lets it through, or rewinds its partition.
/// Returns the payload length of a delivered message.
fn deliver<H: FnMut(FeedMessage<'_>)>(
    consumer: &BaseConsumer<FeedContext>,
    slots: &mut [Slot],
    dense: Option<i64>,
    message: &BorrowedMessage<'_>,
    handler: &mut H,
) -> Option<usize> {
    let context = consumer.context();
    let (partition, offset) = (message.partition(), message.offset());
    match admit(slots, context.stats(), dense, partition, offset) {
        Admission::Discard => None,
        Admission::Rewind { from } => {
            let why = format_args!(
                "partition {partition}: a fetch began at {offset}, after the next offset; \
                 fetching again from {from} (the broker skipped the rest of a record batch)"
            );
            context.log().once(&format!("rewind/{partition}"), why);
            let topic = message.topic();
            let seek = consumer.seek(topic, partition, Offset::Offset(from), SEEK_TIMEOUT);
            if let Err(error) = seek {
                context.note_error("seek", &error);
            }
            None
        }
        admission => {
            if let Admission::DeliverAfterGap { expected } = admission {
                let why = format_args!(
                    "partition {partition}: offsets {expected} to {} are not on the broker; \
                     continuing from {offset}",
                    offset - 1
                );
                context.log().once(&format!("gap/{partition}"), why);
            }
            let feed = feed_message(message);
            let payload_len = feed.payload.len();
            handler(feed);
            Some(payload_len)
        }
    }
}

/// Drops (closes) the client, waiting at most `timeout`. Closing leaves the group and waits for
/// outstanding commits, which librdkafka holds until the coordinator answers: with the broker
/// gone that could be forever, so the close goes on in a background thread and the consumer
/// stops anyway. Without group or commits in flight it takes milliseconds.
fn close_within(consumer: BaseConsumer<FeedContext>, timeout: Duration) {
    let (closed, wait_closed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("bourse-feed-close".into())
        .spawn(move || {
            drop(consumer);
            // The receiver may have given up waiting; nothing else to tell.
            let _ = closed.send(());
        });
    // If the thread could not be spawned the closure, and with it the client, was dropped
    // here already, blocking: nothing is left to wait for.
    if spawned.is_ok() && wait_closed.recv_timeout(timeout).is_err() {
        tracing::warn!(
            "the Kafka client did not close within {timeout:?} (broker \
             unreachable?); it is released in the background"
        );
    }
}

fn feed_message<'a>(message: &'a BorrowedMessage<'_>) -> FeedMessage<'a> {
    FeedMessage {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key(),
        payload: message.payload().unwrap_or_default(),
        timestamp_ms: message.timestamp().to_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_refuses_reserved_properties_and_bad_ranges() {
        let config = ConsumerConfig::new("127.0.0.1:9092", "ticks", "bourse");
        assert!(config.validate().is_ok());
        let reserved = config.clone().property("enable.auto.commit", "true");
        assert!(matches!(reserved.validate(), Err(FeedError::Config(_))));
        let mut zero_batch = config.clone();
        zero_batch.batch_messages_max = 0;
        assert!(zero_batch.validate().is_err());
        let mut huge = config.clone();
        huge.partitions_max = PARTITIONS_MAX + 1;
        assert!(huge.validate().is_err());
        let mut slow = config;
        slow.poll_timeout = POLL_TIMEOUT_MAX + Duration::from_millis(1);
        assert!(slow.validate().is_err());
    }
}
