//! What can go wrong with the command log.

use rdkafka::error::KafkaError;

/// A failure of the command log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A setting the log cannot work with.
    #[error("command log configuration: {0}")]
    Config(String),
    /// The client could not be created or a request could not be sent.
    #[error("command log: {what}: {source}")]
    Kafka {
        what: &'static str,
        #[source]
        source: KafkaError,
    },
    /// The broker did not take the record: it is unreachable, has too few in-sync replicas,
    /// or did not answer within the produce timeout. Nothing was appended that any reader
    /// will see acknowledged by this writer; the caller retries or answers "unavailable".
    #[error("command log: append failed: {0}")]
    NotAppended(String),
    /// The producer's queue is full (more appends in flight than it holds).
    #[error("command log: too many appends in flight")]
    Busy,
    /// A record was read out of order: the reader expected `expected` and got `found`.
    #[error("command log: expected offset {expected}, read offset {found}")]
    Gap { expected: i64, found: i64 },
    /// The transport under the reader failed.
    #[error("command log: {0}")]
    Feed(#[from] bourse_feed::FeedError),
    /// The writer was dropped before the broker answered.
    #[error("command log: the writer stopped before the broker answered")]
    WriterGone,
}
