//! The crate's typed errors.

use rdkafka::error::KafkaError;

/// Everything that can go wrong in the feed transport.
///
/// A broker that is unreachable is *not* an error of the consumer: its thread keeps going and
/// reports it through [`crate::FeedStats`]. These errors are about configuration, the client
/// library, backpressure and the consumer thread itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// A configuration value is out of its range or conflicts with the contract of this crate.
    #[error("invalid feed configuration: {0}")]
    Config(String),
    /// librdkafka refused an operation (`what` names it).
    #[error("kafka {what}: {source}")]
    Kafka {
        /// The operation that failed, e.g. "consumer creation".
        what: &'static str,
        /// The client library's error.
        #[source]
        source: KafkaError,
    },
    /// The producer's local queue is full: backpressure. Serve delivery reports
    /// ([`crate::Producer::poll`]) and retry, or use [`crate::Producer::send_blocking`].
    #[error("the producer queue is full; retry after serving delivery reports")]
    QueueFull,
    /// Messages were accepted by [`crate::Producer::send`] but the broker never acknowledged them.
    #[error("{failed} message(s) were not delivered; first error: {first_error}")]
    DeliveryFailed {
        /// How many deliveries failed since the last successful flush.
        failed: u64,
        /// The first delivery error seen.
        first_error: String,
    },
    /// An admin operation on a topic was refused by the broker.
    #[error("topic {topic}: {message}")]
    Topic {
        /// The topic concerned.
        topic: String,
        /// The broker's answer.
        message: String,
    },
    /// A partition number at or above the consumer's `partitions_max` was assigned.
    #[error("partition {partition} of topic {topic} is beyond partitions_max = {partitions_max}")]
    TooManyPartitions {
        /// The topic concerned.
        topic: String,
        /// The partition number that does not fit.
        partition: i32,
        /// The configured limit.
        partitions_max: usize,
    },
    /// An operation did not finish within its deadline.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The consumer thread could not be started.
    #[error("could not spawn the consumer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The consumer thread panicked (a panic in the caller's handler or offsets callback).
    #[error("the consumer thread panicked")]
    ThreadPanicked,
}

impl FeedError {
    pub(crate) fn kafka(what: &'static str) -> impl FnOnce(KafkaError) -> FeedError {
        move |source| FeedError::Kafka { what, source }
    }
}
