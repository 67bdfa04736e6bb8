//! Appending to the command log: an idempotent producer with `acks=all`, each append
//! acknowledged with its offset.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use tokio::sync::oneshot;

use crate::{LOG_PARTITION, LogError};

/// Configuration of a [`LogWriter`].
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The shard's command topic ([`crate::command_topic`]).
    pub topic: String,
    /// How long the broker may take to take an append (librdkafka's `message.timeout.ms`,
    /// retries included); after it the append fails with [`LogError::NotAppended`].
    pub produce_timeout: Duration,
    /// How long the producer waits to batch appends together (`linger.ms`): the log's group
    /// commit. Longer batches more under load and adds this much latency when idle.
    pub linger: Duration,
    /// Further librdkafka properties, applied last (except the guarantees, which are fixed).
    pub properties: Vec<(String, String)>,
}

impl WriterConfig {
    /// A configuration with a 5 s produce timeout and an 8 ms linger. The linger was chosen by
    /// measurement on tansu, three nodes and the load on two cores (BENCHMARKS.md, "Three
    /// nodes over WebSocket"): fewer and larger produce requests leave the broker more of
    /// the CPU, so 8 ms had a lower p99 at 10,000 orders/s than 5 ms, and 1 to 3 ms far higher.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> WriterConfig {
        WriterConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            produce_timeout: Duration::from_secs(5),
            linger: Duration::from_millis(8),
            properties: Vec::new(),
        }
    }

    fn client_config(&self) -> Result<ClientConfig, LogError> {
        let timeout_ms = self.produce_timeout.as_millis();
        if timeout_ms == 0 {
            return Err(LogError::Config(
                "the produce timeout must be at least 1 ms".into(),
            ));
        }
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "bourse-command-log")
            // librdkafka takes a fraction of a millisecond here.
            .set(
                "linger.ms",
                (self.linger.as_secs_f64() * 1000.0).to_string(),
            )
            .set("message.timeout.ms", timeout_ms.to_string());
        for (key, value) in &self.properties {
            client.set(key, value);
        }
        // The guarantees the log's consistency rests on, whatever `properties` says: every
        // in-sync replica has an append before it is acknowledged, and a send the client
        // retries is written once and in order.
        client
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("max.in.flight.requests.per.connection", "5");
        Ok(client)
    }
}

/// The broker's answer to one append, on its way.
type Answer = Result<i64, LogError>;

/// Hands each delivery report to the append that waits for it, and notes when the broker
/// refused the producer itself.
#[derive(Default)]
struct AppendContext {
    fenced: AtomicBool,
}

/// Refusals of the producer rather than of one record: no later record of it can succeed.
fn refuses_the_producer(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
        )
    )
}

impl ClientContext for AppendContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!("command log producer: {error}: {reason}");
    }
}

impl ProducerContext for AppendContext {
    type DeliveryOpaque = Box<oneshot::Sender<Answer>>;

    fn delivery(&self, result: &DeliveryResult<'_>, answer: Self::DeliveryOpaque) {
        let answer_now = match result {
            Ok(message) if message.partition() == LOG_PARTITION => Ok(message.offset()),
            Ok(message) => Err(LogError::NotAppended(format!(
                "the broker wrote the record to partition {}, not {LOG_PARTITION}",
                message.partition()
            ))),
            Err((error, _)) => {
                if refuses_the_producer(error) {
                    self.fenced.store(true, Ordering::Relaxed);
                }
                Err(LogError::NotAppended(error.to_string()))
            }
        };
        // The appender may have stopped waiting; then nobody needs the answer.
        let _ = answer.send(answer_now);
    }
}

type Inner = ThreadedProducer<AppendContext>;

/// Appends commands to a shard's log. Cheap to share: appends from many threads go out in
/// the order librdkafka takes them, batched.
///
/// An idempotent producer can fail for good (librdkafka's fatal errors: the broker fenced
/// it, say after appends timed out; tansu 0.6.0 answers the epoch bump that follows a
/// timeout with `ProducerFenced`). The appends it had in flight are answered with the error;
/// the next append builds a new producer, with a new producer id.
pub struct LogWriter {
    producer: RwLock<Arc<Inner>>,
    client: ClientConfig,
    topic: String,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("topic", &self.topic)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

fn producer(client: &ClientConfig) -> Result<Inner, LogError> {
    ThreadedProducer::from_config_and_context(client, AppendContext::default()).map_err(|source| {
        LogError::Kafka {
            what: "producer creation",
            source,
        }
    })
}

impl LogWriter {
    /// Creates the producer (connecting happens in the background).
    pub fn new(config: &WriterConfig) -> Result<LogWriter, LogError> {
        let client = config.client_config()?;
        Ok(LogWriter {
            producer: RwLock::new(Arc::new(producer(&client)?)),
            client,
            topic: config.topic.clone(),
        })
    }

    /// The producer to send with: the current one, or a new one if it failed for good.
    fn live_producer(&self) -> Result<Arc<Inner>, LogError> {
        let current = Arc::clone(&self.producer.read().unwrap_or_else(PoisonError::into_inner));
        let failure = match current.client().fatal_error() {
            Some((code, reason)) => format!("{code:?}: {reason}"),
            None if current.context().fenced.load(Ordering::Relaxed) => {
                "the broker refused the producer".to_owned()
            }
            None => return Ok(current),
        };
        let mut slot = self
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another append may have replaced it meanwhile.
        if Arc::ptr_eq(&slot, &current) {
            tracing::warn!("command log producer failed ({failure}); starting a new one");
            *slot = Arc::new(producer(&self.client)?);
        }
        Ok(Arc::clone(&slot))
    }

    /// Sends `bytes` to the log. The answer comes through the returned [`Appended`]: the
    /// record's offset once the broker has it on every in-sync replica, or why not.
    pub fn append(&self, bytes: &[u8]) -> Result<Appended, LogError> {
        self.append_keyed(None, bytes)
    }

    /// [`LogWriter::append`] with a record key (readers get it with the record; a node puts
    /// its id and request number there to find the request again).
    pub fn append_keyed(&self, key: Option<&[u8]>, bytes: &[u8]) -> Result<Appended, LogError> {
        let producer = self.live_producer()?;
        let (tx, rx) = oneshot::channel();
        let mut record = BaseRecord::<[u8], [u8], _>::with_opaque_to(&self.topic, Box::new(tx))
            .payload(bytes)
            .partition(LOG_PARTITION);
        if let Some(key) = key {
            record = record.key(key);
        }
        match producer.send(record) {
            Ok(()) => Ok(Appended(rx)),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(LogError::Busy)
            }
            Err((source, _)) => Err(LogError::Kafka {
                what: "append",
                source,
            }),
        }
    }

    /// Appends and waits for the broker's answer. Not for async code (use [`Appended`] as a
    /// future there).
    pub fn append_wait(&self, bytes: &[u8]) -> Result<i64, LogError> {
        self.append(bytes)?.wait()
    }

    /// Appends not yet answered.
    pub fn in_flight(&self) -> i32 {
        self.producer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .in_flight_count()
    }
}

/// An append on its way: wait for it ([`Appended::wait`]) or await it.
#[derive(Debug)]
pub struct Appended(oneshot::Receiver<Answer>);

impl Appended {
    /// Blocks until the broker answers (at most the produce timeout, plus the time to report).
    pub fn wait(self) -> Result<i64, LogError> {
        self.0.blocking_recv().unwrap_or(Err(LogError::WriterGone))
    }
}

impl Future for Appended {
    type Output = Result<i64, LogError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(LogError::WriterGone)))
    }
}
