//! Topic administration and metadata: what tansu needs done explicitly.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;

use crate::FeedError;

/// How long an admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`create_topic`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicCreation {
    /// The topic was created.
    Created,
    /// A topic of that name already existed (its partition count was not checked).
    AlreadyExists,
}

/// Creates `topic` with `partitions` partitions (replication factor 1) through the admin API.
pub fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<TopicCreation, FeedError> {
    if partitions < 1 {
        return Err(FeedError::Config(format!(
            "a topic needs at least one partition, not {partitions}"
        )));
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(FeedError::kafka("admin client creation"))?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    let results = block_on(admin.create_topics([&new_topic], &options))
        .map_err(FeedError::kafka("create topic"))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(TopicCreation::Created),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(TopicCreation::AlreadyExists),
        Some(Err((name, code))) => Err(FeedError::Topic {
            topic: name,
            message: code.to_string(),
        }),
        None => Err(FeedError::Topic {
            topic: topic.to_owned(),
            message: "the broker answered with no result".into(),
        }),
    }
}

/// The number of partitions of `topic`, or `None` if the broker does not know the topic.
pub fn partition_count(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Option<usize>, FeedError> {
    let client = metadata_client(brokers)?;
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(FeedError::kafka("metadata"))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|count| *count > 0))
}

/// Whether a broker at `brokers` answers a metadata request within `timeout`.
pub fn broker_answers(brokers: &str, timeout: Duration) -> Result<bool, FeedError> {
    let client = metadata_client(brokers)?;
    Ok(client.fetch_metadata(None, timeout).is_ok())
}

/// A consumer without a group: used only for metadata requests (topics, partitions,
/// watermarks).
pub fn metadata_client(brokers: &str) -> Result<BaseConsumer, FeedError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(FeedError::kafka("metadata client creation"))
}

/// Runs a future to completion on this thread, parking between polls. The admin client
/// completes its futures from its own polling thread, so no runtime is needed.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            // A spurious unpark only costs one more poll.
            Poll::Pending => std::thread::park(),
        }
    }
}
