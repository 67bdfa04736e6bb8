//! The command topic's guarantees: what the broker says it has, and the check a node makes
//! before it uses the topic.
//!
//! A command log is only as safe as its topic: with one replica a broker's disk is the only
//! copy, and with unclean leader election a replica that missed acknowledged records may
//! become leader and lose them. A node reads the topic's settings through the admin API,
//! prints them, and refuses a topic weaker than required unless told to allow it (development
//! on one broker). tansu 0.6.0 has one broker and answers the configuration request with what
//! it stores for the topic: see the tests for what it reports.

use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::RDKafkaErrorCode;

use crate::LogError;

/// How long an admin or metadata request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a command topic must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guarantees {
    /// Copies of every record (`replication.factor`).
    pub replication_factor: usize,
    /// Copies a record needs before `acks=all` acknowledges it (`min.insync.replicas`).
    pub min_insync_replicas: usize,
}

impl Guarantees {
    /// A production cluster: three copies, two of them before an acknowledgement, so one
    /// broker can fail without losing or refusing anything.
    pub const PRODUCTION: Guarantees = Guarantees {
        replication_factor: 3,
        min_insync_replicas: 2,
    };
}

/// What the broker says of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicReport {
    pub topic: String,
    pub partitions: usize,
    /// Replicas of partition 0.
    pub replication_factor: usize,
    /// `None`: the broker did not say.
    pub min_insync_replicas: Option<usize>,
    /// `None`: the broker did not say.
    pub unclean_leader_election: Option<bool>,
    /// `retention.ms`; -1 keeps records forever. `None`: the broker did not say.
    pub retention_ms: Option<i64>,
}

impl fmt::Display for TopicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let said = |value: Option<String>| value.unwrap_or_else(|| "not reported".to_owned());
        write!(
            f,
            "topic {}: {} partition(s), replication factor {}, min.insync.replicas {}, \
             unclean.leader.election.enable {}, retention.ms {}",
            self.topic,
            self.partitions,
            self.replication_factor,
            said(self.min_insync_replicas.map(|v| v.to_string())),
            said(self.unclean_leader_election.map(|v| v.to_string())),
            said(self.retention_ms.map(|v| v.to_string())),
        )
    }
}

impl TopicReport {
    /// How the topic falls short of `required`, one sentence each; empty if it does not. A
    /// setting the broker does not report counts as short: the node cannot know it holds.
    pub fn shortfalls(&self, required: &Guarantees) -> Vec<String> {
        let mut short = Vec::new();
        if self.partitions != 1 {
            short.push(format!(
                "it has {} partitions; a shard's log is one partition",
                self.partitions
            ));
        }
        if self.replication_factor < required.replication_factor {
            short.push(format!(
                "replication factor {} is below {}",
                self.replication_factor, required.replication_factor
            ));
        }
        match self.min_insync_replicas {
            Some(n) if n >= required.min_insync_replicas => {}
            Some(n) => short.push(format!(
                "min.insync.replicas {n} is below {}",
                required.min_insync_replicas
            )),
            None => short.push("the broker does not report min.insync.replicas".to_owned()),
        }
        match self.unclean_leader_election {
            Some(false) => {}
            Some(true) => short.push("unclean leader election is enabled".to_owned()),
            None => {
                short.push("the broker does not report unclean.leader.election.enable".to_owned());
            }
        }
        short
    }
}

/// Reads `topic`'s partitions, replicas and settings from the broker. `Ok(None)`: no such
/// topic.
pub fn describe_topic(brokers: &str, topic: &str) -> Result<Option<TopicReport>, LogError> {
    let metadata = bourse_feed::metadata_client(brokers)?
        .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
        .map_err(|source| LogError::Kafka {
            what: "metadata",
            source,
        })?;
    let Some(found) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    else {
        return Ok(None);
    };
    let partitions = found.partitions().len();
    let replication_factor = found
        .partitions()
        .iter()
        .find(|p| p.id() == crate::LOG_PARTITION)
        .map_or(0, |p| p.replicas().len());
    let admin = admin_client(brokers)?;
    let results = bourse_feed::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()),
    )
    .map_err(|source| LogError::Kafka {
        what: "describe configs",
        source,
    })?;
    let mut report = TopicReport {
        topic: topic.to_owned(),
        partitions,
        replication_factor,
        min_insync_replicas: None,
        unclean_leader_election: None,
        retention_ms: None,
    };
    // A broker that cannot describe the topic's configuration leaves the settings unknown.
    if let Some(Ok(resource)) = results.into_iter().next() {
        let entries = resource.entry_map();
        let value = |name: &str| entries.get(name).and_then(|e| e.value.clone());
        report.min_insync_replicas = value("min.insync.replicas").and_then(|v| v.parse().ok());
        report.unclean_leader_election =
            value("unclean.leader.election.enable").and_then(|v| v.parse().ok());
        report.retention_ms = value("retention.ms").and_then(|v| v.parse().ok());
    }
    Ok(Some(report))
}

/// Creates a shard's command topic: one partition, `guarantees.replication_factor` copies,
/// `min.insync.replicas` and unclean leader election off set on the topic, records kept for
/// `retention_ms` (-1: forever). An existing topic is left as it is (check it with
/// [`check_topic`]).
pub fn create_command_topic(
    brokers: &str,
    topic: &str,
    guarantees: &Guarantees,
    retention_ms: i64,
) -> Result<(), LogError> {
    let replicas = i32::try_from(guarantees.replication_factor)
        .map_err(|_| LogError::Config("replication factor out of range".into()))?;
    let min_insync = guarantees.min_insync_replicas.to_string();
    let retention = retention_ms.to_string();
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(replicas))
        .set("min.insync.replicas", &min_insync)
        .set("unclean.leader.election.enable", "false")
        .set("retention.ms", &retention);
    let admin = admin_client(brokers)?;
    let results = bourse_feed::block_on(admin.create_topics([&new_topic], &admin_options()))
        .map_err(|source| LogError::Kafka {
            what: "create topic",
            source,
        })?;
    match results.into_iter().next() {
        Some(Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(()),
        Some(Err((name, code))) => Err(LogError::Config(format!(
            "topic {name} could not be created: {code}"
        ))),
        None => Err(LogError::Config(format!(
            "topic {topic}: the broker answered the creation with no result"
        ))),
    }
}

/// The check a node makes before it uses `topic`: the topic exists and meets `required`.
/// With `allow_weaker` (development on one broker) a shortfall is logged instead of refused.
/// The report is returned for the node to print.
pub fn check_topic(
    brokers: &str,
    topic: &str,
    required: &Guarantees,
    allow_weaker: bool,
) -> Result<TopicReport, LogError> {
    let report = describe_topic(brokers, topic)?
        .ok_or_else(|| LogError::Config(format!("the command topic {topic} does not exist")))?;
    let short = report.shortfalls(required);
    if !short.is_empty() {
        let why = short.join("; ");
        if !allow_weaker {
            return Err(LogError::Config(format!(
                "{report}: weaker than required ({why}); a development setup on one broker may \
                 allow it explicitly"
            )));
        }
        tracing::warn!("{report}: weaker than required ({why}), allowed for development");
    }
    Ok(report)
}

/// The first and one past the last offset the broker holds of the log's partition (its low
/// and high watermarks).
pub fn log_bounds(brokers: &str, topic: &str) -> Result<(i64, i64), LogError> {
    bourse_feed::metadata_client(brokers)?
        .fetch_watermarks(topic, crate::LOG_PARTITION, ADMIN_TIMEOUT)
        .map_err(|source| LogError::Kafka {
            what: "watermarks",
            source,
        })
}

/// The check a replica makes before it resumes the log at `from` (the first offset it has
/// not applied): the log must still hold `from`, and must not end before it.
pub fn check_position(brokers: &str, topic: &str, from: u64) -> Result<(), LogError> {
    let (low, high) = log_bounds(brokers, topic)?;
    match position_problem(from, low, high) {
        None => Ok(()),
        Some(why) => Err(LogError::Config(format!("{topic}: {why}"))),
    }
}

/// What is wrong with resuming at `from` a log holding offsets `low..high`, if anything.
fn position_problem(from: u64, low: i64, high: i64) -> Option<String> {
    let from_offset = i64::try_from(from).unwrap_or(i64::MAX);
    if from_offset < low {
        return Some(format!(
            "this node has applied the log up to offset {from}, but the log now starts at \
             {low}: the records between are no longer kept (retention); start this node from a \
             peer's snapshot, and keep the log longer than the oldest snapshot a node may start from"
        ));
    }
    if from_offset > high {
        return Some(format!(
            "this node has applied the log up to offset {from}, but the log ends at {high}: \
             it is not the log this node applied (a topic recreated, or a broker that lost \
             acknowledged records)"
        ));
    }
    None
}

fn admin_client(brokers: &str) -> Result<AdminClient<DefaultClientContext>, LogError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|source| LogError::Kafka {
            what: "admin client creation",
            source,
        })
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> TopicReport {
        TopicReport {
            topic: "t".into(),
            partitions: 1,
            replication_factor: 3,
            min_insync_replicas: Some(2),
            unclean_leader_election: Some(false),
            retention_ms: Some(-1),
        }
    }

    #[test]
    fn a_replica_resumes_only_inside_the_log() {
        assert_eq!(position_problem(0, 0, 0), None);
        assert_eq!(
            position_problem(7, 0, 7),
            None,
            "at the end: nothing new yet"
        );
        assert_eq!(position_problem(3, 2, 7), None);
        let gone = position_problem(1, 2, 7).unwrap_or_default();
        assert!(
            gone.contains("now starts at 2") && gone.contains("snapshot"),
            "{gone}"
        );
        let ahead = position_problem(8, 0, 7).unwrap_or_default();
        assert!(ahead.contains("ends at 7"), "{ahead}");
    }

    #[test]
    fn a_production_topic_has_no_shortfall() {
        assert_eq!(
            report().shortfalls(&Guarantees::PRODUCTION),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_weakness_is_named() {
        let weak = TopicReport {
            partitions: 2,
            replication_factor: 1,
            min_insync_replicas: Some(1),
            unclean_leader_election: Some(true),
            ..report()
        };
        let short = weak.shortfalls(&Guarantees::PRODUCTION);
        assert_eq!(short.len(), 4, "{short:?}");
        assert!(short[1].contains("replication factor 1 is below 3"));
        let unknown = TopicReport {
            min_insync_replicas: None,
            unclean_leader_election: None,
            ..report()
        };
        assert_eq!(unknown.shortfalls(&Guarantees::PRODUCTION).len(), 2);
    }
}
