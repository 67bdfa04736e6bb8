//! Topic administration and the producer's edges: explicit partitions, failed deliveries.

use std::sync::Arc;
use std::time::Duration;

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{
    AssignmentMode, Consumer, ConsumerConfig, FeedError, Producer, ProducerConfig, Record,
    TopicCreation, create_topic, partition_count,
};

use crate::support::{SharedStore, callbacks, lock, payload_of, wait_until};

#[test]
fn topics_are_created_once_and_counted() -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    assert_eq!(create_topic(&brokers, "ticks", 3)?, TopicCreation::Created);
    assert_eq!(
        create_topic(&brokers, "ticks", 3)?,
        TopicCreation::AlreadyExists
    );
    let timeout = Duration::from_secs(10);
    assert_eq!(partition_count(&brokers, "ticks", timeout)?, Some(3));
    assert_eq!(partition_count(&brokers, "absent", timeout)?, None);
    assert!(matches!(
        create_topic(&brokers, "empty", 0),
        Err(FeedError::Config(_))
    ));
    Ok(())
}

#[test]
fn a_record_for_a_given_partition_lands_there() -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create_topic(&brokers, "ticks", 3)?;
    let producer = Producer::new(&ProducerConfig::new(&brokers))?;
    // One key for all, yet each record goes to the partition it names.
    for index in 0..30u64 {
        let payload = payload_of(index);
        let record = Record {
            topic: "ticks",
            key: Some(b"SYM00"),
            payload: &payload,
            partition: Some(i32::try_from(index % 3)?),
        };
        producer.send(&record)?;
    }
    producer.flush(Duration::from_secs(30))?;
    assert_eq!(producer.delivered(), 30);
    assert_eq!(producer.in_flight(), 0);

    let store = SharedStore::default();
    let (offsets, handler) = callbacks(&store);
    let mut config = ConsumerConfig::new(&brokers, "ticks", "partitions");
    config.assignment = AssignmentMode::AllPartitions;
    let consumer = Consumer::start(config, offsets, handler)?;
    let stats = Arc::clone(consumer.stats());
    wait_until("30 messages", || stats.messages() == 30)?;
    drop(consumer.stop()?);
    let store = lock(&store);
    for seen in &store.seen {
        assert_eq!(i64::from(seen.partition), seen.index as i64 % 3, "{seen:?}");
    }
    assert_eq!(store.next.values().sum::<i64>(), 30);
    Ok(())
}

#[test]
fn an_undeliverable_message_fails_the_flush() -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let producer = Producer::new(
        &ProducerConfig::new(broker.brokers()).property("message.timeout.ms", "1000"),
    )?;
    let record = Record::keyed("no-such-topic", b"k", b"payload");
    producer.send(&record)?;
    let flushed = producer.flush(Duration::from_secs(30));
    assert!(
        matches!(flushed, Err(FeedError::DeliveryFailed { failed: 1, .. })),
        "{flushed:?}"
    );
    assert_eq!(producer.delivered(), 0);
    // The failure is reported once.
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}
