//! Two consumers of one group share the partitions; partitions that move start at the offsets
//! stored with the shared state, so nothing is lost or repeated across the rebalance.

use std::sync::Arc;

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{AssignmentMode, Consumer, ConsumerConfig};

use crate::support::{
    SharedStore, callbacks, check_exactly_once_in_order, create, lock, produce, wait_until,
};

const PARTITIONS: i32 = 3;
const BEFORE: u64 = 3_000;
const AFTER: u64 = 3_000;

/// `strategy`: librdkafka's `partition.assignment.strategy`: `range` revokes everything at each
/// rebalance (eager), `cooperative-sticky` moves only the partitions that change owner.
fn second_member_joins(strategy: &str) -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create(&brokers, "ticks", PARTITIONS)?;
    produce(&brokers, "ticks", 0..BEFORE)?;
    // One store for both members, as a shared state database would be.
    let store = SharedStore::default();
    let mut config = ConsumerConfig::new(&brokers, "ticks", "rebalance")
        .property("partition.assignment.strategy", strategy);
    config.assignment = AssignmentMode::Group;

    let (offsets, handler) = callbacks(&store);
    let first = Consumer::start(config.clone(), offsets, handler)?;
    let first_stats = Arc::clone(first.stats());
    wait_until("the first member's messages", || {
        first_stats.messages() == BEFORE
    })?;
    assert_eq!(first_stats.lags().len(), PARTITIONS as usize);

    let (offsets, handler) = callbacks(&store);
    let second = Consumer::start(config, offsets, handler)?;
    let second_stats = Arc::clone(second.stats());
    wait_until("the partitions to be shared", || {
        let (mine, theirs) = (first_stats.lags().len(), second_stats.lags().len());
        mine > 0 && theirs > 0 && mine + theirs == PARTITIONS as usize
    })?;

    produce(&brokers, "ticks", BEFORE..BEFORE + AFTER)?;
    wait_until("every message", || {
        lock(&store).seen.len() as u64 >= BEFORE + AFTER
    })?;
    assert!(
        second_stats.messages() > 0,
        "the second member read its share"
    );
    drop(first.stop()?);
    drop(second.stop()?);
    check_exactly_once_in_order(&lock(&store), BEFORE + AFTER)
}

#[test]
fn a_second_member_takes_partitions_at_the_stored_offsets_eager() -> anyhow::Result<()> {
    second_member_joins("range")
}

#[test]
fn a_second_member_takes_partitions_at_the_stored_offsets_cooperative() -> anyhow::Result<()> {
    second_member_joins("cooperative-sticky")
}
