//! Shared helpers: producing numbered messages, a caller-side store, bounded waits, checks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bourse_feed::{
    AssignmentMode, Consumer, ConsumerConfig, FeedMessage, Producer, ProducerConfig, Record,
    TopicCreation, create_topic,
};

/// Distinct keys (symbols) the messages are spread over.
pub const KEYS: u64 = 50;
/// Size of each payload, like a small batch of ticks.
pub const PAYLOAD_BYTES: usize = 100;
/// How long any wait in these tests may last.
pub const WAIT_MAX: Duration = Duration::from_secs(90);

pub fn key_of(index: u64) -> Vec<u8> {
    format!("SYM{:02}", index % KEYS).into_bytes()
}

/// A payload that starts with its message number, padded to `PAYLOAD_BYTES`.
pub fn payload_of(index: u64) -> Vec<u8> {
    let mut payload = format!("{index:010}:").into_bytes();
    payload.resize(PAYLOAD_BYTES, b'.');
    payload
}

pub fn index_of(payload: &[u8]) -> anyhow::Result<u64> {
    let digits = payload.get(..10).context("short payload")?;
    Ok(std::str::from_utf8(digits)?.parse()?)
}

pub fn create(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let created = create_topic(brokers, topic, partitions)?;
    ensure!(created == TopicCreation::Created, "{topic} existed already");
    Ok(())
}

/// Produces messages `range` keyed by symbol and waits until all are acknowledged.
pub fn produce(brokers: &str, topic: &str, range: std::ops::Range<u64>) -> anyhow::Result<()> {
    produce_with(brokers, topic, range, &[])
}

/// [`produce`] with librdkafka producer properties.
pub fn produce_with(
    brokers: &str,
    topic: &str,
    range: std::ops::Range<u64>,
    properties: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new(brokers);
    for (key, value) in properties {
        config = config.property(*key, *value);
    }
    let producer = Producer::new(&config)?;
    for index in range {
        let (key, payload) = (key_of(index), payload_of(index));
        let record = Record::keyed(topic, &key, &payload);
        producer.send_blocking(&record, WAIT_MAX)?;
    }
    producer.flush(WAIT_MAX)?;
    Ok(())
}

/// The number of messages in each partition, read by a consumer of the whole topic.
pub fn partition_sizes(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let store = SharedStore::default();
    let (offsets, handler) = callbacks(&store);
    let mut config = ConsumerConfig::new(brokers, topic, "sizes");
    config.assignment = AssignmentMode::AllPartitions;
    let consumer = Consumer::start(config, offsets, handler)?;
    let stats = Arc::clone(consumer.stats());
    wait_until("every partition's high watermark", || {
        let lags = stats.lags();
        lags.len() == partitions as usize && lags.iter().all(|lag| lag.lag == Some(0))
    })?;
    drop(consumer.stop()?);
    let store = lock(&store);
    Ok(store.next.clone())
}

/// One message as the caller stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub index: u64,
}

/// The caller's state: what it has seen, and the next offset per partition stored with it.
#[derive(Debug, Default)]
pub struct Store {
    pub seen: Vec<Seen>,
    pub next: BTreeMap<i32, i64>,
    pub bad_payloads: u64,
}

pub type SharedStore = Arc<Mutex<Store>>;

pub fn lock(store: &SharedStore) -> MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The offsets callback and the handler of a consumer that records into `store`.
pub fn callbacks(
    store: &SharedStore,
) -> (
    impl Fn(i32) -> Option<i64> + Send + Sync + 'static,
    impl FnMut(FeedMessage<'_>) + Send + 'static,
) {
    let offsets = {
        let store = Arc::clone(store);
        move |partition: i32| lock(&store).next.get(&partition).copied()
    };
    let handler = {
        let store = Arc::clone(store);
        move |message: FeedMessage<'_>| {
            let mut store = lock(&store);
            match index_of(message.payload) {
                Ok(index) => store.seen.push(Seen {
                    partition: message.partition,
                    offset: message.offset,
                    key: message.key.unwrap_or_default().to_vec(),
                    index,
                }),
                Err(_) => store.bad_payloads += 1,
            }
            store.next.insert(message.partition, message.offset + 1);
        }
    };
    (offsets, handler)
}

/// Polls `condition` every few milliseconds until it holds or `WAIT_MAX` passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT_MAX;
    while !condition() {
        if Instant::now() >= deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Checks that messages `0..total` were each seen exactly once, that every partition's offsets
/// run 0, 1, 2, ... in the order seen, and that a key always maps to the same partition.
pub fn check_exactly_once_in_order(store: &Store, total: u64) -> anyhow::Result<()> {
    ensure!(
        store.bad_payloads == 0,
        "{} bad payloads",
        store.bad_payloads
    );
    let mut next_by_partition: BTreeMap<i32, i64> = BTreeMap::new();
    let mut partition_of_key: BTreeMap<&[u8], i32> = BTreeMap::new();
    let mut times_seen = vec![0u32; usize::try_from(total)?];
    for seen in &store.seen {
        let next = next_by_partition.entry(seen.partition).or_insert(0);
        ensure!(
            seen.offset == *next,
            "partition {} offset {} seen where {} was due",
            seen.partition,
            seen.offset,
            next
        );
        *next += 1;
        let partition = *partition_of_key.entry(&seen.key).or_insert(seen.partition);
        ensure!(partition == seen.partition, "a key spans partitions");
        ensure!(seen.key == key_of(seen.index), "key and payload disagree");
        let slot = times_seen
            .get_mut(usize::try_from(seen.index)?)
            .context("message number out of range")?;
        *slot += 1;
    }
    let missing = times_seen.iter().filter(|n| **n == 0).count();
    let repeated = times_seen.iter().filter(|n| **n > 1).count();
    ensure!(
        missing == 0 && repeated == 0,
        "{missing} missing, {repeated} repeated"
    );
    ensure!(
        store.seen.len() as u64 == total,
        "{} seen",
        store.seen.len()
    );
    Ok(())
}
