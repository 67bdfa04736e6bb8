//! A thin producer: send `(topic, key, payload)`, optionally to a given partition, and flush.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};

use crate::FeedError;
use crate::context::OnceLog;

/// How long [`Producer::send_blocking`] waits for delivery reports between two attempts.
const BACKPRESSURE_WAIT: Duration = Duration::from_millis(5);

/// Configuration of a [`Producer`].
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Further librdkafka properties (`linger.ms`, `batch.num.messages`, `compression.type`,
    /// `queue.buffering.max.messages`, ...).
    pub properties: Vec<(String, String)>,
}

impl ProducerConfig {
    /// librdkafka's defaults (`linger.ms = 5`, `acks = all`, no compression).
    pub fn new(brokers: impl Into<String>) -> ProducerConfig {
        ProducerConfig {
            brokers: brokers.into(),
            properties: Vec::new(),
        }
    }

    /// Adds a librdkafka property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }
}

/// One message to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The key; messages with the same key go to the same partition when `partition` is `None`.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub payload: &'a [u8],
    /// A fixed partition, or `None` to let the partitioner pick by key.
    pub partition: Option<i32>,
}

impl<'a> Record<'a> {
    /// A keyed record for the partitioner to place.
    pub fn keyed(topic: &'a str, key: &'a [u8], payload: &'a [u8]) -> Record<'a> {
        Record {
            topic,
            key: Some(key),
            payload,
            partition: None,
        }
    }
}

/// Counts delivery reports; keeps the first failure for the next flush.
#[derive(Default)]
struct DeliveryContext {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    log: OnceLog,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let kind = match error.rdkafka_error_code() {
            Some(code) => format!("producer/{code:?}"),
            None => format!("producer/{error}"),
        };
        self.log
            .once(&kind, format_args!("producer: {error}: {reason}"));
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// A Kafka producer. Delivery reports are served by [`Producer::send`] (without waiting),
/// [`Producer::poll`] and [`Producer::flush`].
pub struct Producer {
    inner: BaseProducer<DeliveryContext>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("delivered", &self.delivered())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Producer {
    /// Creates the producer (no connection is made until the first send).
    pub fn new(config: &ProducerConfig) -> Result<Producer, FeedError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", "bourse-feed-producer");
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        let inner = BaseProducer::from_config_and_context(&client, DeliveryContext::default())
            .map_err(FeedError::kafka("producer creation"))?;
        Ok(Producer { inner })
    }

    /// Queues a message. A full local queue is [`FeedError::QueueFull`]: backpressure.
    pub fn send(&self, record: &Record<'_>) -> Result<(), FeedError> {
        let mut base = BaseRecord::<[u8], [u8]>::to(record.topic).payload(record.payload);
        if let Some(key) = record.key {
            base = base.key(key);
        }
        if let Some(partition) = record.partition {
            base = base.partition(partition);
        }
        let sent = self.inner.send(base);
        self.inner.poll(Duration::ZERO);
        match sent {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(FeedError::QueueFull)
            }
            Err((source, _)) => Err(FeedError::Kafka {
                what: "produce",
                source,
            }),
        }
    }

    /// Queues a message, waiting for delivery reports to free room while the queue is full, for
    /// at most `timeout`.
    pub fn send_blocking(&self, record: &Record<'_>, timeout: Duration) -> Result<(), FeedError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.send(record) {
                Err(FeedError::QueueFull) if Instant::now() < deadline => {
                    self.inner.poll(BACKPRESSURE_WAIT);
                }
                Err(FeedError::QueueFull) => return Err(FeedError::Timeout("producer queue full")),
                other => return other,
            }
        }
    }

    /// Serves delivery reports for `timeout`.
    pub fn poll(&self, timeout: Duration) {
        self.inner.poll(timeout);
    }

    /// Waits until every queued message is acknowledged, for at most `timeout`. Fails if the
    /// deadline passes or if any message since the last flush could not be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), FeedError> {
        self.inner.flush(timeout).map_err(|error| match error {
            KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => {
                FeedError::Timeout("producer flush")
            }
            source => FeedError::Kafka {
                what: "flush",
                source,
            },
        })?;
        let context = self.inner.context();
        let failed = context.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let first_error = context
                .first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            return Err(FeedError::DeliveryFailed {
                failed,
                first_error,
            });
        }
        Ok(())
    }

    /// Messages acknowledged by the broker so far.
    pub fn delivered(&self) -> u64 {
        self.inner.context().delivered.load(Ordering::Relaxed)
    }

    /// Messages queued or in flight, not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.inner.in_flight_count()).unwrap_or(0)
    }
}
