//! `cluster = kafka`: this server as one of several equal nodes sharing a shard's command log
//! on Kafka (docs/cluster.md).
//!
//! [`ClusterNode::start`] checks the shard's topics (and prints what the broker says of
//! them), then starts the node's [`Replica`] (the log applied through the local pipeline,
//! from the offset recovery ended at), its checkpoints, its [`Proposer`] and the probe that
//! says whether it has the whole log ([`Freshness`]). From then on nothing but the log goes
//! into the pipeline: the API, the default catalogue and the liquidity provider send their
//! commands through [`ClusterNode::sequencer`], and the periodic snapshot is a record of the
//! log ([`ClusterNode::poll`]), so that every replica cuts it at the same offset.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_cluster::{
    Answers, CheckpointConfig, Checkpointer, Freshness, Guarantees, LogPath, LogWriter, Pending,
    Proposer, ReaderConfig, Replica, Sequencer, WriterConfig, checkpoint_topic, command_topic,
};
use bourse_engine::CommandKind;
use bourse_gateway::state::ClusterInfo;
use bourse_pipeline::Handle;

use crate::settings::ServeConfig;

/// How long the node that runs the once-only roles waits for the whole log at start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Retention of a command topic this node creates (development only): a week.
const DEV_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// A running node's cluster side.
pub(crate) struct ClusterNode {
    replica: Replica,
    path: Arc<LogPath>,
    info: ClusterInfo,
    /// Whether this node runs the once-only roles.
    roles: bool,
    snapshots: LogSnapshots,
}

impl ClusterNode {
    /// Checks the topics and starts replicating from `from` (recovery's `last_seq`) into
    /// `handle`'s pipeline, which must take commands from nothing else.
    pub(crate) fn start(
        config: &ServeConfig,
        from: u64,
        last_snapshot: u64,
        handle: &Handle,
    ) -> Result<ClusterNode, String> {
        let brokers = config
            .kafka_brokers
            .as_deref()
            .ok_or("cluster = kafka needs kafka-brokers (the brokers of the command log)")?;
        if config.load_rate > 0 {
            return Err(
                "the load generator (load-rate) drives a single node's pipeline; in a cluster, \
                 drive the nodes' API instead"
                    .into(),
            );
        }
        let topic = command_topic(&config.cluster_prefix, config.shard);
        let checkpoints_topic = checkpoint_topic(&config.cluster_prefix, config.shard);
        for name in [&topic, &checkpoints_topic] {
            ensure_topic(brokers, name, config.cluster_development)?;
        }
        let answers = Arc::new(Answers::new(config.node_id));
        let checkpoints = if config.checkpoint_every > 0 {
            Some(
                Checkpointer::start(CheckpointConfig {
                    brokers: brokers.to_owned(),
                    topic: checkpoints_topic,
                    node: config.node_id,
                    nodes: config.cluster_nodes,
                    interval: config.checkpoint_every,
                })
                .map_err(|e| format!("cannot start the checkpoints: {e}"))?,
            )
        } else {
            None
        };
        let mut reader =
            ReaderConfig::new(brokers, &topic, format!("bourse-node-{}", config.node_id));
        reader.fetch_wait_max = Duration::from_millis(config.log_fetch_wait_ms);
        let replica = Replica::start(
            &reader,
            from,
            handle.clone(),
            Arc::clone(&answers),
            checkpoints.clone(),
        )
        .map_err(|e| format!("cannot resume the command log at offset {from}: {e}"))?;
        let mut writer = WriterConfig::new(brokers, &topic);
        writer.linger = Duration::from_micros(config.log_linger_us);
        let writer = LogWriter::new(&writer)
            .map_err(|e| format!("cannot start the command log's producer: {e}"))?;
        let applied = {
            let handle = std::sync::Mutex::new(handle.clone());
            Box::new(move || {
                handle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .stats()
                    .applied_seq
            })
        };
        let freshness = Freshness::start(
            brokers,
            &topic,
            Duration::from_millis(config.max_staleness_ms),
            applied,
        )
        .map_err(|e| format!("cannot start the freshness probe: {e}"))?;
        let path = Arc::new(LogPath::new(Proposer::new(writer, answers), freshness));
        tracing::info!(
            "cluster: node {} of {}, shard {} (topic {topic}), resuming the log at offset \
             {from}; checkpoints {}; staleness bound {} ms",
            config.node_id,
            config.cluster_nodes,
            config.shard,
            if config.checkpoint_every > 0 {
                format!("every {} offsets", config.checkpoint_every)
            } else {
                "off".to_owned()
            },
            config.max_staleness_ms
        );
        let roles = config.node_id == config.roles_node;
        Ok(ClusterNode {
            replica,
            path,
            info: ClusterInfo {
                node: config.node_id,
                shard: config.shard,
                topic,
                peers: config
                    .cluster_peers
                    .as_ref()
                    .map(|peers| peers.0.clone())
                    .unwrap_or_default(),
                checkpoints,
                market_tier: None,
            },
            roles,
            snapshots: LogSnapshots {
                every: if roles { config.snapshot_every } else { 0 },
                last: last_snapshot,
                pending: None,
            },
        })
    }

    /// Where this node's commands go: the log.
    pub(crate) fn sequencer(&self) -> Sequencer {
        Sequencer::Log(Arc::clone(&self.path))
    }

    /// The node's place in the cluster, for the API.
    pub(crate) fn info(&self) -> ClusterInfo {
        self.info.clone()
    }

    /// Whether this node runs the once-only roles (catalogue, liquidity, snapshot records).
    pub(crate) fn runs_roles(&self) -> bool {
        self.roles
    }

    /// Waits until this node has the whole log (what the once-only roles need before they
    /// look at the state and act on it).
    pub(crate) fn wait_until_fresh(&self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            match self.path.freshness().check() {
                Ok(()) => return Ok(()),
                Err(stale) if started.elapsed() > READY_TIMEOUT => {
                    return Err(format!(
                        "the command log did not come up within {} s: {stale}",
                        READY_TIMEOUT.as_secs()
                    ));
                }
                Err(_) => {
                    if let Some(why) = self.failure() {
                        return Err(why);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// The periodic work: on the roles node, a snapshot record every `snapshot-every`
    /// offsets.
    pub(crate) fn poll(&mut self, applied_seq: u64) {
        self.snapshots.tick(&self.sequencer(), applied_seq);
    }

    /// Why this node's replica stopped, or must (its state diverged), if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.replica
            .failure()
            .map(|why| format!("the replica of the command log stopped: {why}"))
    }

    /// Stops reading the log and the checkpoints (the pipeline keeps what it was handed).
    pub(crate) fn stop(self) {
        if let Err(error) = self.replica.stop() {
            tracing::warn!("the command log's reader had failed: {error}");
        }
    }
}

/// Checks that `topic` exists and meets the production guarantees, printing what the broker
/// says of it; in development, creates it if missing and lets a weaker one pass with a
/// warning.
fn ensure_topic(brokers: &str, topic: &str, development: bool) -> Result<(), String> {
    let described = describe_when_reachable(brokers, topic)?;
    if described.is_none() {
        if !development {
            return Err(format!(
                "the topic {topic} does not exist: create it with one partition, replication \
                 factor 3, min.insync.replicas 2 and unclean.leader.election.enable false \
                 (docs/cluster.md), or set cluster-topic-check development to have it created"
            ));
        }
        let dev = Guarantees {
            replication_factor: 1,
            min_insync_replicas: 1,
        };
        bourse_cluster::create_command_topic(brokers, topic, &dev, DEV_RETENTION_MS)
            .map_err(|e| format!("cannot create the topic {topic}: {e}"))?;
        tracing::warn!("cluster: created the topic {topic} for development");
    }
    let report = bourse_cluster::check_topic(brokers, topic, &Guarantees::PRODUCTION, development)
        .map_err(|e| e.to_string())?;
    tracing::info!("cluster: {report}");
    Ok(())
}

/// What the broker says of `topic`, waiting (bounded) for a broker that does not answer
/// yet: nodes and broker may start in any order.
fn describe_when_reachable(
    brokers: &str,
    topic: &str,
) -> Result<Option<bourse_cluster::TopicReport>, String> {
    let started = Instant::now();
    loop {
        match bourse_cluster::describe_topic(brokers, topic) {
            Ok(described) => return Ok(described),
            Err(error) if started.elapsed() < READY_TIMEOUT => {
                tracing::warn!("cannot read the topic {topic} yet ({error}); retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(format!("cannot read the topic {topic}: {error}")),
        }
    }
}

/// Snapshot records in the log every `every` offsets (0: none), one at a time.
struct LogSnapshots {
    every: u64,
    /// The sequence number of the last snapshot (or where the last record was sent).
    last: u64,
    pending: Option<std::sync::mpsc::Receiver<Result<u64, String>>>,
}

impl LogSnapshots {
    fn tick(&mut self, sequencer: &Sequencer, applied_seq: u64) {
        if let Some(pending) = &self.pending {
            match pending.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => return,
                Ok(Ok(seq)) => self.last = seq,
                Ok(Err(why)) => tracing::warn!("snapshot record not applied: {why}"),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {}
            }
            self.pending = None;
        }
        if self.every == 0 || applied_seq < self.last.saturating_add(self.every) {
            return;
        }
        // Counted from the request, so a refused one is not retried every tick.
        self.last = applied_seq;
        match sequencer.clone().send(CommandKind::Snapshot) {
            Ok(pending) => self.pending = Some(wait_on_thread(pending)),
            Err(why) => tracing::warn!("snapshot record not sent: {why}"),
        }
    }
}

/// Waits for a command's outcome on a thread of its own; its sequence number comes back.
fn wait_on_thread(pending: Pending) -> std::sync::mpsc::Receiver<Result<u64, String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("bourse-snapshot-record".into())
        .spawn(move || {
            let outcome = bourse_feed::block_on(pending)
                .map(|outcome| outcome.seq)
                .map_err(|e| e.to_string());
            let _ = tx.send(outcome);
        });
    if let Err(error) = spawned {
        tracing::warn!("cannot wait for the snapshot record: {error}");
    }
    rx
}
