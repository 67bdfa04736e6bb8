//! Divergence caught, not assumed away: at every `interval`-th command each replica publishes
//! its state hash to the shard's checkpoint topic and reads everyone's. A replica whose hash
//! at an offset differs from the one a majority of the cluster's nodes agree on stops, with
//! the offset and both hashes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use bourse_engine::StateHash;

use crate::{LogError, LogReader, LogRecord, LogWriter, ReaderConfig, WriterConfig};

/// The checkpoint topic of shard `shard`: `<prefix>.checkpoints.<shard>`.
pub fn checkpoint_topic(prefix: &str, shard: u16) -> String {
    format!("{prefix}.checkpoints.{shard}")
}

/// Checkpoints kept for comparison; older ones are dropped.
const KEPT: usize = 1_000;

/// One node's hash at one offset: node `u16`, offset `i64`, hash `u128`, little-endian.
fn encode(node: u16, offset: i64, hash: StateHash) -> [u8; 26] {
    let mut bytes = [0u8; 26];
    bytes[..2].copy_from_slice(&node.to_le_bytes());
    bytes[2..10].copy_from_slice(&offset.to_le_bytes());
    bytes[10..].copy_from_slice(&hash.0.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<(u16, i64, StateHash)> {
    let bytes: &[u8; 26] = bytes.try_into().ok()?;
    let node = u16::from_le_bytes(bytes[..2].try_into().ok()?);
    let offset = i64::from_le_bytes(bytes[2..10].try_into().ok()?);
    let hash = u128::from_le_bytes(bytes[10..].try_into().ok()?);
    Some((node, offset, StateHash(hash)))
}

/// What the checkpoints say so far, from one node's seat: every node's hash by offset, and
/// whether a majority of the cluster disagrees with this node. [`Checkpointer`] feeds it the
/// checkpoint topic; the simulator feeds it its simulated nodes' hashes.
#[derive(Debug)]
pub struct CheckpointVotes {
    /// This node.
    me: u16,
    /// Nodes in the cluster.
    nodes: usize,
    /// By offset: each node's hash.
    hashes: BTreeMap<i64, HashMap<u16, StateHash>>,
    /// Why this node must stop, once it must (kept from the first disagreement).
    divergence: Option<String>,
    /// Checkpoints where every node agreed with this one.
    agreed: u64,
    /// The newest of those.
    last_agreed: Option<i64>,
}

/// Settings of [`Checkpointer::start`].
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    pub brokers: String,
    /// The shard's checkpoint topic ([`checkpoint_topic`]).
    pub topic: String,
    /// This node.
    pub node: u16,
    /// Nodes in the cluster; a hash is the cluster's when more than half of them published it.
    pub nodes: usize,
    /// A checkpoint after every `interval`-th command (sequence numbers divisible by it).
    pub interval: u64,
}

/// Publishes this node's hashes and compares everyone's.
pub struct Checkpointer {
    config: CheckpointConfig,
    writer: LogWriter,
    reader: Mutex<Option<LogReader>>,
    seen: Arc<Mutex<CheckpointVotes>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How long the broker may hold a fetch of the checkpoint topic. Nothing waits on a
/// checkpoint (a divergence stops the node a little later at worst), and tansu 0.6.0 answers
/// every fetch only after this long, data or not: a short wait here is a busy poll that takes
/// the broker's CPU from the command log (BENCHMARKS.md, "Three nodes over WebSocket").
const CHECKPOINT_FETCH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl Checkpointer {
    /// Starts reading the checkpoint topic (from its start) and a writer to it.
    pub fn start(config: CheckpointConfig) -> Result<Arc<Checkpointer>, LogError> {
        if config.interval == 0 || config.nodes == 0 {
            return Err(LogError::Config(
                "checkpoints need an interval and a cluster size above 0".into(),
            ));
        }
        let writer = LogWriter::new(&WriterConfig::new(&config.brokers, &config.topic))?;
        let seen = Arc::new(Mutex::new(CheckpointVotes::new(config.node, config.nodes)));
        let reader = {
            let seen = Arc::clone(&seen);
            let mut reader = ReaderConfig::new(
                &config.brokers,
                &config.topic,
                format!("checkpoints-{}", config.node),
            );
            reader.fetch_wait_max = CHECKPOINT_FETCH_WAIT;
            LogReader::start(&reader, 0, move |record: LogRecord<'_>| {
                if let Some((node, offset, hash)) = decode(record.bytes) {
                    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                    seen.observe(node, offset, hash);
                }
            })?
        };
        Ok(Arc::new(Checkpointer {
            config,
            writer,
            reader: Mutex::new(Some(reader)),
            seen,
        }))
    }

    /// Whether the command with sequence number `seq` is followed by a checkpoint.
    pub fn due(&self, seq: u64) -> bool {
        seq.is_multiple_of(self.config.interval)
    }

    /// Publishes this node's hash after the command at `offset`.
    pub fn publish(&self, offset: i64, hash: StateHash) -> Result<(), LogError> {
        // Not waited for: the comparison happens when it comes back through the topic.
        self.writer
            .append(&encode(self.config.node, offset, hash))
            .map(drop)
    }

    /// Why this node must stop, if a majority disagreed with it.
    pub fn divergence(&self) -> Option<String> {
        self.lock().divergence().map(str::to_owned)
    }

    /// Checkpoints at which every node agreed with this one, so far.
    pub fn agreed(&self) -> u64 {
        self.lock().agreed()
    }

    /// Stops reading the checkpoint topic.
    pub fn stop(&self) -> Result<(), LogError> {
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match reader {
            Some(reader) => reader.stop().map(drop),
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CheckpointVotes> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CheckpointVotes {
    /// Node `me`'s view of a cluster of `nodes` nodes, before any checkpoint.
    pub fn new(me: u16, nodes: usize) -> CheckpointVotes {
        CheckpointVotes {
            me,
            nodes,
            hashes: BTreeMap::new(),
            divergence: None,
            agreed: 0,
            last_agreed: None,
        }
    }

    /// Takes `node`'s `hash` at `offset` and judges this node.
    pub fn observe(&mut self, node: u16, offset: i64, hash: StateHash) {
        let (me, nodes) = (self.me, self.nodes);
        let quorum = nodes / 2 + 1;
        let at = self.hashes.entry(offset).or_default();
        at.insert(node, hash);
        let Some(mine) = at.get(&me).copied() else {
            return;
        };
        let mut votes: HashMap<StateHash, usize> = HashMap::new();
        for h in at.values() {
            *votes.entry(*h).or_default() += 1;
        }
        if let Some((cluster, _)) = votes.iter().find(|(_, n)| **n >= quorum)
            && *cluster != mine
            && self.divergence.is_none()
        {
            self.divergence = Some(format!(
                "state diverged at offset {offset}: this node (node {me}) has hash {mine}, \
                 {quorum} or more nodes have {cluster}"
            ));
        }
        if votes.len() == 1 && at.len() == nodes && self.last_agreed.is_none_or(|l| offset > l) {
            self.last_agreed = Some(offset);
            self.agreed += 1;
        }
        while self.hashes.len() > KEPT {
            self.hashes.pop_first();
        }
    }

    /// Why this node must stop, if a majority disagreed with it.
    pub fn divergence(&self) -> Option<&str> {
        self.divergence.as_deref()
    }

    /// Checkpoints at which every node agreed with this one, so far.
    pub fn agreed(&self) -> u64 {
        self.agreed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips() {
        let hash = StateHash(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(decode(&encode(7, 42, hash)), Some((7, 42, hash)));
        assert_eq!(decode(&[0; 25]), None);
    }

    #[test]
    fn the_node_outvoted_stops_and_the_others_go_on() {
        let (good, bad) = (StateHash(1), StateHash(2));
        let mut nodes: Vec<CheckpointVotes> =
            (0..3).map(|me| CheckpointVotes::new(me, 3)).collect();
        for seen in &mut nodes {
            for (node, hash) in [(0, good), (1, good), (2, bad)] {
                seen.observe(node, 99, hash);
            }
        }
        assert_eq!(nodes[0].divergence(), None);
        assert_eq!(nodes[1].divergence(), None);
        let why = nodes[2].divergence().unwrap_or_default();
        assert!(
            why.contains("offset 99") && why.contains(&bad.to_string()),
            "{why}"
        );
        assert!(why.contains(&good.to_string()), "{why}");
        assert_eq!(nodes[0].agreed(), 0, "not every node agreed");
        let mut all_agree = CheckpointVotes::new(0, 3);
        for node in 0..3 {
            all_agree.observe(node, 5, good);
            all_agree.observe(node, 5, good);
        }
        assert_eq!((all_agree.agreed(), all_agree.divergence()), (1, None));
    }
}
