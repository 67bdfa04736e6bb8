//! The rdkafka client context of the consumer: rebalances at the caller's offsets, statistics,
//! errors and commit reports. Every callback here runs on the consumer thread, inside `poll`.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::FeedError;
use crate::stats::FeedStats;

/// The caller's offsets: the next offset to read for a partition, `None` for the earliest.
pub(crate) type OffsetsFn = dyn Fn(i32) -> Option<i64> + Send + Sync;

/// A change of assignment, recorded by a rebalance and applied by the consumer loop.
#[derive(Debug)]
pub(crate) enum AssignmentChange {
    /// These partitions now start at these offsets (`None`: the earliest).
    Assigned(Vec<(i32, Option<i64>)>),
    /// These partitions were taken away.
    Revoked(Vec<i32>),
    /// Everything was taken away.
    RevokedAll,
    /// The assignment cannot be honoured; the consumer thread stops with this error.
    Rejected(FeedError),
}

/// Prints each kind of error once (until the broker is reachable again), in the style of the
/// `bourse` binary: one line on standard error.
#[derive(Debug, Default)]
pub(crate) struct OnceLog {
    kinds_seen: Mutex<BTreeSet<String>>,
}

/// A limit on the error kinds remembered, so that an unusual storm cannot grow the set.
const LOGGED_KINDS_MAX: usize = 64;

impl OnceLog {
    pub(crate) fn once(&self, kind: &str, message: impl Display) {
        let mut seen = lock(&self.kinds_seen);
        if seen.len() < LOGGED_KINDS_MAX && seen.insert(kind.to_owned()) {
            tracing::warn!("{message}");
        }
    }

    fn reset(&self) {
        lock(&self.kinds_seen).clear();
    }
}

/// A poisoned lock only means another callback panicked; the data (a set of strings or a list of
/// changes) is still consistent, so keep using it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The consumer's context. Shared by librdkafka (it must be `Sync`) but only called from the
/// consumer thread's `poll`.
pub(crate) struct FeedContext {
    topic: String,
    partitions_max: usize,
    start_rewind_messages: i64,
    offsets: Box<OffsetsFn>,
    stats: Arc<FeedStats>,
    pending: Mutex<Vec<AssignmentChange>>,
    has_pending: AtomicBool,
    outage_logged: AtomicBool,
    log: OnceLog,
}

impl FeedContext {
    pub(crate) fn new(
        topic: String,
        partitions_max: usize,
        start_rewind_messages: i64,
        offsets: Box<OffsetsFn>,
        stats: Arc<FeedStats>,
    ) -> FeedContext {
        FeedContext {
            topic,
            partitions_max,
            start_rewind_messages,
            offsets,
            stats,
            pending: Mutex::new(Vec::new()),
            has_pending: AtomicBool::new(false),
            outage_logged: AtomicBool::new(false),
            log: OnceLog::default(),
        }
    }

    pub(crate) fn stats(&self) -> &FeedStats {
        &self.stats
    }

    pub(crate) fn log(&self) -> &OnceLog {
        &self.log
    }

    /// Counts and logs (once per kind) an error that the thread survives.
    pub(crate) fn note_error(&self, what: &str, error: &KafkaError) {
        self.stats.add_error();
        let kind = match error.rdkafka_error_code() {
            Some(code) => format!("{what}/{code:?}"),
            None => format!("{what}/{error}"),
        };
        self.log.once(&kind, format_args!("{what}: {error}"));
    }

    /// Cheap check, once per poll, for changes recorded by a rebalance.
    pub(crate) fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Acquire)
    }

    pub(crate) fn take_pending(&self) -> Vec<AssignmentChange> {
        let mut pending = lock(&self.pending);
        self.has_pending.store(false, Ordering::Release);
        std::mem::take(&mut *pending)
    }

    pub(crate) fn push(&self, change: AssignmentChange) {
        lock(&self.pending).push(change);
        self.has_pending.store(true, Ordering::Release);
    }

    /// Sets each partition of our topic in `tpl` to start at the caller's offset (less the
    /// rewind, see [`fetch_start`]) and returns the caller's offsets, or refuses a partition
    /// number beyond `partitions_max`.
    pub(crate) fn start_offsets(
        &self,
        tpl: &mut TopicPartitionList,
    ) -> Result<Vec<(i32, Option<i64>)>, FeedError> {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|element| element.partition())
            .collect();
        let mut starts = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let in_range = usize::try_from(partition).is_ok_and(|p| p < self.partitions_max);
            if !in_range {
                return Err(FeedError::TooManyPartitions {
                    topic: self.topic.clone(),
                    partition,
                    partitions_max: self.partitions_max,
                });
            }
            let next = (self.offsets)(partition);
            let offset = match next {
                Some(offset) if offset >= 0 => {
                    Offset::Offset(fetch_start(offset, self.start_rewind_messages))
                }
                Some(offset) => {
                    return Err(FeedError::Config(format!(
                        "the offsets callback gave {offset} for partition {partition}"
                    )));
                }
                None => Offset::Beginning,
            };
            tpl.set_partition_offset(&self.topic, partition, offset)
                .map_err(FeedError::kafka("set start offset"))?;
            starts.push((partition, next));
        }
        Ok(starts)
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match self.start_offsets(tpl) {
            Ok(starts) => {
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                match assigned {
                    Ok(()) => self.push(AssignmentChange::Assigned(starts)),
                    Err(error) => self.note_error("assign", &error),
                }
            }
            Err(error) => self.push(AssignmentChange::Rejected(error)),
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        if cooperative {
            let partitions = tpl
                .elements_for_topic(&self.topic)
                .iter()
                .map(|element| element.partition())
                .collect();
            if let Err(error) = consumer.incremental_unassign(tpl) {
                self.note_error("unassign", &error);
            }
            self.push(AssignmentChange::Revoked(partitions));
        } else {
            if let Err(error) = consumer.unassign() {
                self.note_error("unassign", &error);
            }
            self.push(AssignmentChange::RevokedAll);
        }
    }

    /// Updates watermarks and reachability from a statistics report.
    fn absorb_statistics(&self, statistics: &Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            for partition in topic.partitions.values() {
                if partition.partition >= 0 {
                    self.stats.set_watermarks(
                        partition.partition,
                        partition.lo_offset,
                        partition.hi_offset,
                    );
                }
            }
        }
        self.set_reachable(brokers_reachable(statistics, &self.topic, &self.stats));
    }

    /// Records whether the brokers answer, logging the transitions of an outage.
    pub(crate) fn set_reachable(&self, reachable: bool) {
        let was = self.stats.set_broker_reachable(reachable);
        if !reachable && was {
            self.outage_logged.store(true, Ordering::Relaxed);
            self.log.once(
                "unreachable",
                "the broker does not answer; the consumer keeps trying",
            );
        }
        if reachable && !was && self.outage_logged.swap(false, Ordering::Relaxed) {
            tracing::info!("the broker is reachable again");
            self.log.reset();
        }
    }
}

/// Where to fetch from to hand over messages from `target` on: `rewind` messages earlier, as a
/// broker may answer a fetch at an offset inside a record batch with the next batch (tansu
/// 0.6.0 does); the consumer drops what comes before `target`.
pub(crate) fn fetch_start(target: i64, rewind: i64) -> i64 {
    target.saturating_sub(rewind.max(0)).max(0)
}

/// Whether every broker leading an assigned partition of `topic` is `UP`; without known leaders,
/// whether any real (non-internal) broker is `UP`.
fn brokers_reachable(statistics: &Statistics, topic: &str, stats: &FeedStats) -> bool {
    let up: BTreeSet<i32> = statistics
        .brokers
        .values()
        .filter(|broker| broker.source != "internal" && broker.state == "UP")
        .map(|broker| broker.nodeid)
        .collect();
    let leaders: BTreeSet<i32> = statistics
        .topics
        .get(topic)
        .map(|topic| {
            topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && stats.is_assigned(p.partition))
                .map(|p| p.leader)
                .collect()
        })
        .unwrap_or_default();
    if leaders.is_empty() {
        !up.is_empty()
    } else {
        leaders.iter().all(|leader| up.contains(leader))
    }
}

/// Errors that mean the brokers cannot be reached at the moment.
fn is_transport_error(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::Resolve
    )
}

impl ClientContext for FeedContext {
    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<Statistics>(statistics) {
            Ok(statistics) => self.absorb_statistics(&statistics),
            Err(error) => self
                .log
                .once("statistics", format_args!("unreadable statistics: {error}")),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.stats.add_error();
        let code = error.rdkafka_error_code();
        if code.is_some_and(is_transport_error) {
            self.set_reachable(false);
        }
        let kind = match code {
            Some(code) => format!("{code:?}"),
            None => error.to_string(),
        };
        self.log.once(&kind, format_args!("{error}: {reason}"));
    }
}

impl ConsumerContext for FeedContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        error: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match error {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                self.note_error("rebalance", &KafkaError::Rebalance(other.into()));
                if let Err(error) = consumer.unassign() {
                    self.note_error("unassign", &error);
                }
                self.push(AssignmentChange::RevokedAll);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            self.note_error("commit", &error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statistics report of librdkafka 2.12 read off a consumer of a tansu broker (node
    /// 111) with three partitions assigned, in the middle of the stream.
    const SAMPLE: &str = include_str!("../testdata/statistics.json");

    fn sample_with(change: impl FnOnce(&mut serde_json::Value)) -> Statistics {
        let mut json: serde_json::Value = serde_json::from_str(SAMPLE).expect("fixture");
        change(&mut json);
        serde_json::from_value(json).expect("librdkafka statistics")
    }

    fn set_leader_state(json: &mut serde_json::Value, state: &str) {
        json["brokers"]["127.0.0.1:40953/111"]["state"] = state.into();
    }

    #[test]
    fn reachable_follows_the_leaders_of_assigned_partitions() {
        let stats = FeedStats::new(8);
        for partition in 0..3 {
            stats.set_assigned(partition, true, None);
        }
        let up = sample_with(|_| {});
        assert!(brokers_reachable(&up, "ticks", &stats));
        // The coordinator is still UP, but the leader is not: unreachable.
        let down = sample_with(|json| set_leader_state(json, "DOWN"));
        assert!(!brokers_reachable(&down, "ticks", &stats));
        let connecting = sample_with(|json| set_leader_state(json, "APIVERSION_QUERY"));
        assert!(!brokers_reachable(&connecting, "ticks", &stats));
    }

    #[test]
    fn without_assigned_partitions_any_real_broker_counts() {
        let stats = FeedStats::new(8);
        let down = sample_with(|json| set_leader_state(json, "DOWN"));
        assert!(
            brokers_reachable(&down, "ticks", &stats),
            "the coordinator is UP"
        );
        let all_down = sample_with(|json| {
            set_leader_state(json, "DOWN");
            json["brokers"]["GroupCoordinator"]["state"] = "DOWN".into();
        });
        assert!(!brokers_reachable(&all_down, "ticks", &stats));
    }

    #[test]
    fn statistics_set_the_watermarks() {
        let stats = Arc::new(FeedStats::new(8));
        stats.set_assigned(1, true, Some(4000));
        let context = FeedContext::new("ticks".into(), 8, 0, Box::new(|_| None), stats.clone());
        context.stats_raw(SAMPLE.as_bytes());
        assert_eq!(stats.lag(1), Some(4600 - 4000));
        assert!(stats.broker_reachable());
        assert_eq!(stats.errors(), 0);
    }

    #[test]
    fn start_offsets_come_from_the_caller_and_stay_in_range() {
        let offsets = |partition: i32| match partition {
            0 => Some(42),
            1 => None,
            _ => Some(-5),
        };
        let stats = Arc::new(FeedStats::new(4));
        let context = FeedContext::new("ticks".into(), 4, 10, Box::new(offsets), stats);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("ticks", 0);
        tpl.add_partition("ticks", 1);
        let starts = context.start_offsets(&mut tpl).expect("in range");
        assert_eq!(starts, vec![(0, Some(42)), (1, None)]);
        let offset_of = |partition| tpl.find_partition("ticks", partition).map(|e| e.offset());
        assert_eq!(offset_of(0), Some(Offset::Offset(42 - 10)), "rewound");
        assert_eq!(offset_of(1), Some(Offset::Beginning));

        let mut negative = TopicPartitionList::new();
        negative.add_partition("ticks", 2);
        let refused = context.start_offsets(&mut negative);
        assert!(matches!(refused, Err(FeedError::Config(_))));

        let mut beyond = TopicPartitionList::new();
        beyond.add_partition("ticks", 4);
        let refused = context.start_offsets(&mut beyond);
        assert!(matches!(
            refused,
            Err(FeedError::TooManyPartitions { partition: 4, .. })
        ));
    }
}
