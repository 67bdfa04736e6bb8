//! A symbol's partition, recomputed (`bourse_marketdata::placement::Partitioner`), is the one
//! librdkafka's producer put it in, for both key partitioners, so a node can route a request
//! for a product to the nodes that hold its partition.

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{Producer, ProducerConfig, Record};
use bourse_marketdata::placement::Partitioner;

use crate::support::{SharedStore, WAIT_MAX, callbacks, create, lock, partition_sizes, wait_until};

const PARTITIONS: i32 = 12;
const SYMBOLS: u64 = 600;

#[test]
fn a_symbols_partition_is_the_one_the_producer_picked() -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    for (name, partitioner) in [
        ("consistent_random", Partitioner::Crc32),
        ("murmur2_random", Partitioner::Murmur2),
    ] {
        let topic = format!("ticks-{name}");
        create(&brokers, &topic, PARTITIONS)?;
        let producer = Producer::new(&ProducerConfig::new(&brokers).property("partitioner", name))?;
        let symbols: Vec<String> = (0..SYMBOLS).map(|i| format!("S{i:05}.X")).collect();
        for (index, symbol) in symbols.iter().enumerate() {
            let payload = crate::support::payload_of(index as u64);
            producer.send_blocking(
                &Record::keyed(&topic, symbol.as_bytes(), &payload),
                WAIT_MAX,
            )?;
        }
        producer.flush(WAIT_MAX)?;
        let sizes = partition_sizes(&brokers, &topic, PARTITIONS)?;
        // Every partition got some: the check below is not trivially true.
        anyhow::ensure!(sizes.len() == PARTITIONS as usize, "{name}: {sizes:?}");
        let store = SharedStore::default();
        let (offsets, handler) = callbacks(&store);
        let mut config = bourse_feed::ConsumerConfig::new(&brokers, &topic, "partitioner");
        config.assignment = bourse_feed::AssignmentMode::AllPartitions;
        let consumer = bourse_feed::Consumer::start(config, offsets, handler)?;
        wait_until("every message", || {
            lock(&store).seen.len() as u64 == SYMBOLS
        })?;
        drop(consumer.stop()?);
        for seen in &lock(&store).seen {
            let want = partitioner.partition(&seen.key, PARTITIONS as u32);
            anyhow::ensure!(
                seen.partition as u32 == want,
                "{name}: {} is in partition {}, recomputed {want}",
                String::from_utf8_lossy(&seen.key),
                seen.partition
            );
        }
    }
    Ok(())
}
