//! Every produced message is consumed exactly once, in offset order per partition.

use std::sync::Arc;

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{AssignmentMode, Consumer, ConsumerConfig};

use crate::support::{
    SharedStore, callbacks, check_exactly_once_in_order, create, lock, produce, wait_until,
};

const PARTITIONS: i32 = 3;
const MESSAGES: u64 = 10_000;

fn consume_all(mode: AssignmentMode) -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create(&brokers, "ticks", PARTITIONS)?;
    produce(&brokers, "ticks", 0..MESSAGES)?;

    let store = SharedStore::default();
    let (offsets, handler) = callbacks(&store);
    let mut config = ConsumerConfig::new(&brokers, "ticks", "consume-all");
    config.assignment = mode;
    let consumer = Consumer::start(config, offsets, handler)?;
    let stats = Arc::clone(consumer.stats());
    wait_until("all messages", || stats.messages() >= MESSAGES)?;
    // Lag comes from statistics reports: every partition caught up.
    wait_until("zero lag on every partition", || {
        let lags = stats.lags();
        lags.len() == PARTITIONS as usize && lags.iter().all(|lag| lag.lag == Some(0))
    })?;
    assert!(stats.broker_reachable());
    assert_eq!(stats.discarded(), 0);
    let _handler = consumer.stop()?;

    let store = lock(&store);
    check_exactly_once_in_order(&store, MESSAGES)?;
    assert_eq!(stats.messages(), MESSAGES, "no message after the last");
    assert_eq!(
        stats.bytes(),
        MESSAGES * crate::support::PAYLOAD_BYTES as u64
    );
    let partitions_used = store.next.len();
    assert_eq!(
        partitions_used, PARTITIONS as usize,
        "keys spread over all partitions"
    );
    Ok(())
}

#[test]
fn group_consumer_sees_every_offset_once_in_order() -> anyhow::Result<()> {
    consume_all(AssignmentMode::Group)
}

#[test]
fn static_assignment_sees_every_offset_once_in_order() -> anyhow::Result<()> {
    consume_all(AssignmentMode::AllPartitions)
}
