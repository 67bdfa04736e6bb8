//! A consumer of given partitions (`AssignmentMode::Given`), changed while it runs: a node of
//! the market-data tier reads the partitions it holds, and takes partitions on and off as
//! nodes come and go. Each partition added starts at the caller's offset; none is read twice
//! or skipped, and a partition removed hands nothing over.

use std::collections::BTreeMap;

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{AssignmentMode, Consumer, ConsumerConfig};

use crate::support::{
    SharedStore, Store, callbacks, create, lock, partition_sizes, produce, wait_until,
};

const PARTITIONS: i32 = 4;

/// How many messages of each partition `store` has seen.
fn seen_by_partition(store: &Store) -> BTreeMap<i32, i64> {
    let mut seen = BTreeMap::new();
    for message in &store.seen {
        *seen.entry(message.partition).or_insert(0) += 1;
    }
    seen
}

/// Every partition's offsets were seen 0, 1, 2, ... once each.
fn check_each_once(store: &Store) -> anyhow::Result<()> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for message in &store.seen {
        let due = next.entry(message.partition).or_insert(0);
        anyhow::ensure!(
            message.offset == *due,
            "partition {} offset {} where {due} was due",
            message.partition,
            message.offset
        );
        *due += 1;
    }
    Ok(())
}

#[test]
fn partitions_given_and_changed_while_running_are_read_once_each() -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create(&brokers, "given", PARTITIONS)?;
    produce(&brokers, "given", 0..400)?;
    let sizes = partition_sizes(&brokers, "given", PARTITIONS)?;
    anyhow::ensure!(sizes.len() == PARTITIONS as usize, "{sizes:?}");

    let store = SharedStore::default();
    let (offsets, handler) = callbacks(&store);
    let mut config = ConsumerConfig::new(&brokers, "given", "given");
    config.assignment = AssignmentMode::Given;
    let consumer = Consumer::start(config, offsets, handler)?;
    let seen = |p: i32| {
        seen_by_partition(&lock(&store))
            .get(&p)
            .copied()
            .unwrap_or(0)
    };

    consumer.set_partitions([0, 1]);
    wait_until("partitions 0 and 1", || {
        seen(0) == sizes[&0] && seen(1) == sizes[&1]
    })?;
    // Then 0 is dropped and 2 taken on.
    consumer.set_partitions([1, 2]);
    wait_until("partition 2", || seen(2) == sizes[&2])?;
    produce(&brokers, "given", 400..800)?;
    let grown = partition_sizes(&brokers, "given", PARTITIONS)?;
    wait_until("the new messages of 1 and 2", || {
        seen(1) == grown[&1] && seen(2) == grown[&2]
    })?;
    // Partition 0's new messages, produced with those, were not handed over; 3 never was.
    assert_eq!(seen(0), sizes[&0]);
    assert_eq!(seen(3), 0);
    // 0 again: it resumes where the caller's offsets say, reading only what is new.
    consumer.set_partitions([0, 1, 2]);
    wait_until("partition 0's new messages", || seen(0) == grown[&0])?;
    drop(consumer.stop()?);
    let store = lock(&store);
    check_each_once(&store)?;
    assert_eq!(store.bad_payloads, 0);
    Ok(())
}
