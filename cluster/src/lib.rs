//! The command log of one engine shard, on Kafka: the platform's sequencer when it runs as
//! several nodes.
//!
//! Each shard's commands go to one partition (0) of the shard's command topic,
//! [`command_topic`]. Kafka's order of that partition is the commands' total order and the
//! offset is a command's global sequence; every replica reads the partition from the offset
//! it has applied up to, in order, and applies what it reads. Nothing here decides an order
//! or elects anyone: the broker does, which is why no consensus protocol is written here.
//!
//! - [`LogWriter`]: appends a command's bytes and acknowledges it with its offset once the
//!   broker has it on every in-sync replica (`acks=all`), through an idempotent producer
//!   (a retried send is written once, in order). An append that the broker does not take
//!   within the produce timeout fails; the caller then must not apply anything itself.
//! - [`LogReader`]: reads the partition from an offset on its own thread and hands each
//!   record to the caller in offset order; a record that is not the next offset (a gap, or a
//!   repeat) stops the reader with [`LogError::Gap`] rather than skipping.
//!
//! - [`Replica`]: the log applied through the local pipeline, the record at offset `o` as
//!   command `o + 1`; [`log_record`] is what a gateway appends.
//! - [`Proposer`]: a node's way in: a command appended with the node's key and answered with
//!   the outcome the node's own replica gives it ([`Answers`] connects the two).
//! - [`Sequencer`]: where a node's commands go, the local pipeline (one node) or the log
//!   through its [`Proposer`] (a cluster), refused while [`Freshness`] says this node may be
//!   behind the log by more than its bound.
//! - [`Checkpointer`]: every replica's state hash at deterministic offsets, published and
//!   compared; the replica a majority disagrees with stops.
//! - [`Members`]: which nodes are alive (heartbeats on the members topic), for the market
//!   data tier's placement of partitions.
//! - [`check_topic`], [`create_command_topic`]: the topic's replication, `min.insync.replicas`
//!   and unclean leader election, read through the admin API and checked before use.
//!
//! The bytes are the caller's (the engine's command codec); this crate knows offsets.

mod checkpoint;
mod error;
mod freshness;
mod members;
mod proposer;
mod reader;
mod replica;
mod sequencer;
mod topic;
mod writer;

pub use checkpoint::{CheckpointConfig, CheckpointVotes, Checkpointer, checkpoint_topic};
pub use error::LogError;
pub use freshness::{
    Applied, Freshness, FreshnessStatus, FreshnessTracker, Moment, Stale, probe_interval,
};
pub use members::{Member, MemberView, Members, MembersConfig, members_topic};
pub use proposer::{ProposeError, ProposeTimes, Proposed, Proposer, first_request};
pub use reader::{LogReader, LogRecord, ReaderConfig};
pub use replica::{Answers, Replica, log_command, log_record, parse_key, record_key};
pub use sequencer::{LogPath, Pending, Sequencer};
pub use topic::{
    Guarantees, TopicReport, check_position, check_topic, create_command_topic, describe_topic,
    log_bounds,
};
pub use writer::{Appended, LogWriter, WriterConfig};

/// The command topic of shard `shard`: `<prefix>.commands.<shard>`, e.g. `bourse.commands.0`.
/// More shards are more topics of one partition each.
pub fn command_topic(prefix: &str, shard: u16) -> String {
    format!("{prefix}.commands.{shard}")
}

/// The partition of a command topic that holds the log.
pub const LOG_PARTITION: i32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_names_its_shard() {
        assert_eq!(command_topic("bourse", 0), "bourse.commands.0");
        assert_eq!(command_topic("x", 7), "x.commands.7");
    }
}
