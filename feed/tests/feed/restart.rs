//! A consumer stopped midway and restarted from the offsets stored with the caller's state
//! neither loses nor repeats a message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{AssignmentMode, Consumer, ConsumerConfig, FeedMessage};

use crate::support::{
    SharedStore, callbacks, check_exactly_once_in_order, create, lock, partition_sizes, produce,
    produce_with, wait_until,
};

const PARTITIONS: i32 = 3;
const MESSAGES: u64 = 10_000;
/// The first consumer holds its thread after this many messages, so it stops midway (and, most
/// likely, inside a record batch).
const HOLD_AFTER: usize = 3_333;
/// Small batches: after the hold, the first consumer takes at most this many more.
const BATCH: usize = 50;

fn restart_midway(mode: AssignmentMode) -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create(&brokers, "ticks", PARTITIONS)?;
    produce(&brokers, "ticks", 0..MESSAGES)?;
    let store = SharedStore::default();

    // First run: the handler holds the thread once HOLD_AFTER messages are stored, until the
    // test has asked the consumer to stop; it then finishes its batch and stops.
    let (offsets, mut record) = callbacks(&store);
    let held = Arc::new(AtomicBool::new(false));
    let released = Arc::new(AtomicBool::new(false));
    let handler = {
        let (store, held, released) = (store.clone(), held.clone(), released.clone());
        move |message: FeedMessage<'_>| {
            record(message);
            if lock(&store).seen.len() == HOLD_AFTER {
                held.store(true, Ordering::SeqCst);
                // Bounded: the test releases it right after request_stop.
                let _ = wait_until("release", || released.load(Ordering::SeqCst));
            }
        }
    };
    let mut config = ConsumerConfig::new(&brokers, "ticks", "restart");
    config.assignment = mode;
    config.batch_messages_max = BATCH;
    // No rewind ahead of time: a restart inside a record batch is caught by the first message
    // after it (see `start_inside_a_batch` for the rewind ahead of time).
    config.start_rewind_messages = 0;
    let first = Consumer::start(config.clone(), offsets, handler)?;
    wait_until("the first consumer to hold", || held.load(Ordering::SeqCst))?;
    first.request_stop();
    released.store(true, Ordering::SeqCst);
    let first_stats = Arc::clone(first.stats());
    drop(first.stop()?);
    let seen_first = lock(&store).seen.len();
    assert!(
        (HOLD_AFTER..HOLD_AFTER + BATCH).contains(&seen_first),
        "stopped midway: {seen_first}"
    );
    assert_eq!(first_stats.messages(), seen_first as u64);
    assert!(!first_stats.running());

    // Second run, same group: starts at the stored offsets.
    let (offsets, handler) = callbacks(&store);
    let second = Consumer::start(config, offsets, handler)?;
    let stats = Arc::clone(second.stats());
    wait_until("the rest", || lock(&store).seen.len() as u64 >= MESSAGES)?;
    wait_until("zero lag", || {
        stats.total_lag() == 0 && stats.lags().len() == 3
    })?;
    drop(second.stop()?);
    assert_eq!(
        stats.messages(),
        MESSAGES - seen_first as u64,
        "nothing repeated"
    );
    check_exactly_once_in_order(&lock(&store), MESSAGES)
}

#[test]
fn group_consumer_restarts_from_stored_offsets() -> anyhow::Result<()> {
    restart_midway(AssignmentMode::Group)
}

#[test]
fn static_consumer_restarts_from_stored_offsets() -> anyhow::Result<()> {
    restart_midway(AssignmentMode::AllPartitions)
}

/// Starting at an offset inside a record batch: every message from that offset on arrives,
/// none before. (tansu 0.6.0 answers such a fetch with the next batch; the consumer rewinds.)
fn start_inside_a_batch(mode: AssignmentMode) -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create(&brokers, "ticks", PARTITIONS)?;
    // One record batch per partition: everything is sent within the linger time.
    let one_batch = [("linger.ms", "2000"), ("batch.num.messages", "100000")];
    produce_with(&brokers, "ticks", 0..MESSAGES, &one_batch)?;
    let sizes = partition_sizes(&brokers, "ticks", PARTITIONS)?;

    let store = SharedStore::default();
    let starts: BTreeMap<i32, i64> = sizes.iter().map(|(p, size)| (*p, size / 2)).collect();
    lock(&store).next = starts.clone();
    let (offsets, handler) = callbacks(&store);
    let mut config = ConsumerConfig::new(&brokers, "ticks", "inside-a-batch");
    config.assignment = mode;
    let consumer = Consumer::start(config, offsets, handler)?;
    let stats = Arc::clone(consumer.stats());
    let expected: i64 = sizes.iter().map(|(p, size)| size - starts[p]).sum();
    wait_until("the second half of each partition", || {
        lock(&store).seen.len() as i64 >= expected
    })?;
    wait_until("zero lag", || {
        stats.total_lag() == 0 && stats.lags().len() == 3
    })?;
    drop(consumer.stop()?);
    let store = lock(&store);
    assert_eq!(store.seen.len() as i64, expected);
    for (partition, size) in &sizes {
        let offsets: Vec<i64> = store
            .seen
            .iter()
            .filter(|seen| seen.partition == *partition)
            .map(|seen| seen.offset)
            .collect();
        let wanted: Vec<i64> = (starts[partition]..*size).collect();
        assert_eq!(offsets, wanted, "partition {partition}");
    }
    assert_eq!(stats.gaps(), 0);
    Ok(())
}

#[test]
fn group_consumer_starts_inside_a_record_batch() -> anyhow::Result<()> {
    start_inside_a_batch(AssignmentMode::Group)
}

#[test]
fn static_consumer_starts_inside_a_record_batch() -> anyhow::Result<()> {
    start_inside_a_batch(AssignmentMode::AllPartitions)
}
