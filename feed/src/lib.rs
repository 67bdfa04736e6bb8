//! Kafka transport for Bourse's market data. It knows bytes, partitions and offsets, not ticks.
//!
//! - [`Consumer`]: one OS thread running an rdkafka `BaseConsumer` on one topic. The caller owns
//!   the offsets (it stores them with the state it builds, which is what makes a restart neither
//!   lose nor repeat a message): whenever partitions are assigned, each starts at the offset the
//!   caller's callback gives. Messages reach the caller's handler on that thread as
//!   [`FeedMessage`]s, in offset order per partition. Offsets are committed to Kafka only for
//!   monitoring. [`FeedStats`] counts messages, bytes, errors, per-partition lag and whether the
//!   broker is reachable; a broker that goes away does not stop the thread.
//! - [`Producer`]: send `(topic, key, payload)`, optionally to a partition, and flush.
//! - [`create_topic`], [`partition_count`]: the admin calls a broker without auto-creation needs.
//! - [`tansu`]: test support that runs a real tansu broker on loopback.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::sync::{Arc, Mutex};
//! use bourse_feed::{Consumer, ConsumerConfig, FeedMessage};
//!
//! # fn main() -> Result<(), bourse_feed::FeedError> {
//! // The caller's state: here only the next offset per partition.
//! let next: Arc<Mutex<BTreeMap<i32, i64>>> = Arc::default();
//! let offsets = {
//!     let next = Arc::clone(&next);
//!     move |partition: i32| next.lock().unwrap().get(&partition).copied()
//! };
//! let handler = {
//!     let next = Arc::clone(&next);
//!     move |message: FeedMessage<'_>| {
//!         // Decode message.payload, update the state, and record the position with it.
//!         next.lock().unwrap().insert(message.partition, message.offset + 1);
//!     }
//! };
//! let config = ConsumerConfig::new("127.0.0.1:9092", "ticks", "bourse");
//! let consumer = Consumer::start(config, offsets, handler)?;
//! println!("messages so far: {}", consumer.stats().messages());
//! let _handler = consumer.stop()?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod consumer;
mod context;
mod error;
mod producer;
mod slots;
mod stats;
pub mod tansu;

pub use admin::{
    TopicCreation, block_on, broker_answers, create_topic, metadata_client, partition_count,
};
pub use consumer::{
    AssignmentMode, BATCH_MESSAGES_MAX, CLOSE_TIMEOUT_MAX, Consumer, ConsumerConfig, FeedMessage,
    PARTITIONS_MAX, POLL_TIMEOUT_MAX,
};
pub use error::FeedError;
pub use producer::{Producer, ProducerConfig, Record};
pub use stats::{FeedStats, PartitionLag};
