//! A consumer stopped midway and restarted from the offsets stored with the caller's state
//! neither loses nor repeats a message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{AssignmentMode, Consumer, ConsumerConfig, FeedMessage};

use crate::support::{
    SharedStore, callbacks, check_exactly_once_in_order, create, lock, produce, wait_until,
};

const PARTITIONS: i32 = 3;
const MESSAGES: u64 = 10_000;
/// The first consumer holds its thread after this many messages, so it stops midway.
const HOLD_AFTER: usize = 3_000;
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
    assert_eq!(stats.discarded(), 0);
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
