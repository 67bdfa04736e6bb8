//! The replicated cluster under simulation: three nodes over one simulated command log, on a
//! simulated clock, with seeded network delays, partitions, broker outages, node crashes,
//! clock steps and the disk faults of the single-node run.
//!
//! **What is real and what is simulated.** The broker is simulated: an append-only list of
//! records that never loses one (Kafka with `acks=all` and three in-sync copies; losing the
//! broker's data is out of scope, docs/cluster.md says what a node does then). Each node is a
//! replica as `bourse-cluster` builds it, in one thread: the log's record at offset `o`
//! decoded by [`bourse_cluster::log_command`] as command `o + 1`, journaled on the node's own
//! simulated disk (one sync a fetched batch, the pipeline's group commit), applied by the
//! engine, snapshotted when a `Snapshot` record comes by (the roles node appends one every
//! [`SNAPSHOT_EVERY`] records), and recovered from its snapshot and journal after a crash. A
//! node's gateway stamps commands with its own clock (skewed, and sometimes stepped back),
//! keys each with [`bourse_cluster::record_key`], and answers a client once its own replica
//! has applied the record and the broker acknowledged the append: what the client is told is
//! what that replica's engine did. Freshness is [`bourse_cluster::FreshnessTracker`], the
//! rule the server runs, here on the simulated clock; divergence is
//! [`bourse_cluster::CheckpointVotes`], fed every node's hash every [`CHECKPOINT_EVERY`]
//! records.
//!
//! **The network.** An append reaches the broker after a seeded delay, unless the node's link
//! is cut; the producer retries it until its 5 s timeout, so a link healed in time delivers
//! it. When a link is cut, each append in flight has either reached the broker (written; the
//! acknowledgement lost) or not, by a coin. A timed-out append is answered 503, and the
//! client retries a keyed command (deposit, withdrawal, order with a client order id) through
//! another node, up to [`RETRIES`] times. A broker outage cuts every link. A crashed node's
//! clients are answered 503 too. A paused node (SIGSTOP) does nothing until it continues,
//! while its socket still takes the broker's answers to its probes.
//!
//! **Checked.** Every record every replica applies gives exactly the events a reference
//! engine, fed the log once in order, gave (so every answer a client gets is the cluster's);
//! every checkpoint's hash equals the reference's, and no node is outvoted; after every
//! recovery, the node's journal is the log's prefix byte for byte and its engine's hash is a
//! replay of that prefix from nothing; a node that answers an authenticated read has applied
//! every record appended more than [`MAX_STALENESS`] earlier, and a node cut off for longer
//! than the bound (plus a probe) is stale; a command retried through several nodes takes
//! effect at most once. At the end the links heal, every node catches up, and all three hold
//! the reference's state hash.
//!
//! **Tampering** (`ClusterConfig::tamper`): one node's replica doubles every deposit it
//! applies, as the server's `cluster::tamper` failpoint does. The run must then stop that
//! node on its checkpoint's vote, and only that node.

mod replica;
mod report;

pub use report::ClusterReport;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bourse_cluster::{CheckpointVotes, FreshnessTracker, log_command, log_record, parse_key};
use bourse_engine::{Amount, Command, CommandKind, Engine, Event, EventKind, Limits, StateHash};
use bourse_journal::{Durability, Journal, JournalConfig, PrepareNext, RecoveryMode};
use bourse_tests::workload::{Generator, SplitMix64, T0};

use crate::common::{
    SnapshotFate, keep_snapshot, load_newest_snapshot, read_all, replay, write_snapshot,
};
use crate::disk::{Faults, SimDisk};
use crate::{FAULTS, RECOVERY_READ_FAILS};

/// Nodes in the cluster.
pub const NODES: u16 = 3;
/// The freshness bound (`max-staleness-ms`, its default).
pub const MAX_STALENESS: Duration = Duration::from_millis(1_000);
/// The producer's timeout: an append not acknowledged in this long is answered 503.
const PRODUCE_TIMEOUT_MS: u64 = 5_000;
/// A checkpoint after every this many records (the server's default is 10,000; a run here is
/// a few thousand records).
pub const CHECKPOINT_EVERY: u64 = 64;
/// The roles node appends a `Snapshot` record every this many records.
pub const SNAPSHOT_EVERY: u64 = 256;
/// Records one fetch brings at most.
const FETCH_MAX: u64 = 64;
/// Times a client sends a keyed command again after a 503.
pub const RETRIES: u32 = 4;

/// What one cluster run does.
#[derive(Clone, Copy, Debug)]
pub struct ClusterConfig {
    pub seed: u64,
    /// Steps of the simulated clock (1 to 40 ms each).
    pub steps: u64,
    /// Disk faults, crashes, partitions and clock steps on, or a quiet network.
    pub faults: bool,
    /// This node's replica doubles every deposit it applies (module docs).
    pub tamper: Option<u16>,
}

/// A record of the simulated command log.
struct Record {
    key: Option<[u8; 10]>,
    bytes: Vec<u8>,
    appended_ms: u64,
}

/// The broker's log, and a reference engine that applied it once, in order.
struct Log {
    records: Vec<Record>,
    /// The reference's events for each record.
    events: Vec<Vec<Event>>,
    /// The reference's state hash after each checkpoint's record, by offset.
    hashes: BTreeMap<u64, StateHash>,
    reference: Engine,
    /// Every node's published checkpoint: (node, offset, hash), in the topic's order.
    checkpoints: Vec<(u16, u64, StateHash)>,
}

impl Log {
    fn append(&mut self, key: Option<[u8; 10]>, bytes: Vec<u8>, now: u64) -> Result<u64, String> {
        let offset = self.records.len() as u64;
        let command = log_command(offset, &bytes)?;
        let mut events = Vec::new();
        let _ = self.reference.apply(&command, &mut events);
        if (offset + 1).is_multiple_of(CHECKPOINT_EVERY) {
            self.hashes.insert(offset, self.reference.state_hash());
            Engine::from_image(self.reference.to_image())
                .map_err(|e| format!("the reference engine broke an invariant: {e}"))?;
        }
        self.events.push(events);
        self.records.push(Record {
            key,
            bytes,
            appended_ms: now,
        });
        Ok(offset)
    }

    fn len(&self) -> u64 {
        self.records.len() as u64
    }

    /// Records appended at or before `ms`.
    fn appended_by(&self, ms: u64) -> u64 {
        self.records.partition_point(|r| r.appended_ms <= ms) as u64
    }
}

/// A client's command and what became of it.
struct Op {
    kind: CommandKind,
    /// Carries a key the engine deduplicates: a client may send it again.
    keyed: bool,
    attempts: u32,
    /// Offsets of the log where it was written (more than one after a retry).
    offsets: Vec<u64>,
    /// The node of the latest attempt.
    node: u16,
    retry_at: Option<u64>,
    /// Answered with an outcome, or given up.
    done: bool,
}

/// An append on its way to the broker.
struct Append {
    node: u16,
    request: u64,
    op: usize,
    bytes: Vec<u8>,
    arrive_ms: u64,
    deadline_ms: u64,
    /// Already on the broker (the link was cut after it arrived): the acknowledgement is what
    /// is missing.
    written: bool,
    /// Sent by a process that crashed since; still in the network, it may reach the broker
    /// after the node has started again.
    zombie: bool,
}

/// One node: its gateway's clock and waiting requests, its replica and its disk.
struct Node {
    id: u16,
    disk: SimDisk,
    /// `None` while the node is down.
    journal: Option<Journal<SimDisk>>,
    engine: Engine,
    /// The journal's first sequence number when empty: 1, or past a peer's snapshot.
    base_seq: u64,
    snapshots: Vec<(u64, Vec<u8>)>,
    down_until: u64,
    /// Stopped for good: outvoted at a checkpoint (exit code 70).
    stopped: bool,
    /// The link to the broker is down until then.
    cut_until: u64,
    /// Since when it has been cut, if it is.
    cut_since: Option<u64>,
    skew_ms: i64,
    tracker: FreshnessTracker<Duration>,
    started_ms: u64,
    next_probe: u64,
    /// Probes out: (asked at, answer arrives at).
    probes: VecDeque<(u64, u64)>,
    /// Answers that reached the node's socket and wait for the process: (asked at, log end).
    received: VecDeque<(u64, u64)>,
    /// Paused (SIGSTOP) until then: the process does nothing, its socket still receives.
    paused_until: u64,
    votes: CheckpointVotes,
    votes_read: usize,
    next_request: u64,
    /// Requests waiting for an answer: request → op. Registered before the append, as
    /// `bourse_cluster::Answers::wait_for` is.
    waiting: BTreeMap<u64, usize>,
    /// Waiting requests a record of the log was delivered to (the replica applied a record
    /// whose key names the request): request → offset.
    delivered: BTreeMap<u64, u64>,
    /// Waiting requests whose append the broker acknowledged.
    acknowledged: std::collections::BTreeSet<u64>,
}

impl Node {
    fn up(&self) -> bool {
        self.journal.is_some()
    }

    /// The next offset its replica applies: everything before it is applied.
    fn applied(&self) -> u64 {
        self.journal.as_ref().map_or(0, |j| j.next_seq() - 1)
    }

    /// Up and not paused: the process runs.
    fn active(&self, now: u64) -> bool {
        self.up() && now >= self.paused_until
    }

    fn linked(&self, now: u64) -> bool {
        now >= self.cut_until
    }
}

fn journal_config(first_seq: u64) -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 16 * 1024,
        durability: Durability::Durable,
        recovery: RecoveryMode::Refuse,
        prepare_next: PrepareNext::Manual,
        first_seq,
    }
}

struct Cluster {
    config: ClusterConfig,
    rng: SplitMix64,
    now: u64,
    log: Log,
    nodes: Vec<Node>,
    ops: Vec<Op>,
    inflight: Vec<Append>,
    generator: Generator,
    next_snapshot: u64,
    report: ClusterReport,
}

/// Runs one seed of the cluster.
pub fn run_cluster(config: ClusterConfig) -> Result<ClusterReport, crate::Failure> {
    let fail = |message: String| crate::Failure {
        seed: config.seed,
        message,
        cluster: true,
    };
    let mut cluster = Cluster::new(config).map_err(fail)?;
    cluster.run().map_err(fail)?;
    Ok(cluster.report)
}

impl Cluster {
    fn new(config: ClusterConfig) -> Result<Cluster, String> {
        let mut rng = SplitMix64(config.seed ^ 0xC1_05_7E_12);
        let mut nodes = Vec::new();
        for id in 0..NODES {
            let disk = SimDisk::new(config.seed * 31 + u64::from(id), Faults::default());
            let journal = Journal::open(disk.clone(), journal_config(1))
                .map_err(|e| format!("node {id}'s new journal: {e}"))?;
            let skew_ms = rng.range(-2_000, 2_000);
            nodes.push(Node {
                id,
                disk,
                journal: Some(journal),
                engine: Engine::new(Limits::default()),
                base_seq: 1,
                snapshots: Vec::new(),
                down_until: 0,
                stopped: false,
                cut_until: 0,
                cut_since: None,
                skew_ms,
                tracker: FreshnessTracker::new(MAX_STALENESS),
                started_ms: 0,
                next_probe: 0,
                probes: VecDeque::new(),
                received: VecDeque::new(),
                paused_until: 0,
                votes: CheckpointVotes::new(id, usize::from(NODES)),
                votes_read: 0,
                next_request: bourse_cluster::first_request(Duration::from_millis(
                    T0.unsigned_abs(),
                )),
                waiting: BTreeMap::new(),
                delivered: BTreeMap::new(),
                acknowledged: std::collections::BTreeSet::new(),
            });
        }
        let mut log = Log {
            records: Vec::new(),
            events: Vec::new(),
            hashes: BTreeMap::new(),
            reference: Engine::new(Limits::default()),
            checkpoints: Vec::new(),
        };
        // The catalogue and the accounts are in the log before clients come, as the roles
        // node writes the default catalogue.
        let mut generator = Generator::new(config.seed);
        while generator.setup_left() > 0 {
            let command = generator.next_command();
            let offset = log.append(None, log_record(command.kind, command.timestamp_ms), 0)?;
            generator.observe(&log.events[offset as usize]);
        }
        let faults = Cluster::running_faults(config.faults);
        for node in &nodes {
            node.disk.set_faults(faults);
        }
        Ok(Cluster {
            config,
            rng,
            now: 0,
            next_snapshot: log.len() + SNAPSHOT_EVERY,
            log,
            nodes,
            ops: Vec::new(),
            inflight: Vec::new(),
            generator,
            report: ClusterReport {
                seed: config.seed,
                ..ClusterReport::default()
            },
        })
    }

    fn running_faults(on: bool) -> Faults {
        if on { FAULTS } else { Faults::default() }
    }

    fn run(&mut self) -> Result<(), String> {
        for _ in 0..self.config.steps {
            self.report.steps += 1;
            self.step(true)?;
        }
        self.finish()
    }

    /// One tick of the simulated clock; `busy`: clients send and faults strike.
    fn step(&mut self, busy: bool) -> Result<(), String> {
        self.now += 1 + self.rng.below(40);
        if busy && self.config.faults {
            self.strike()?;
        }
        self.restart_nodes()?;
        self.deliver_appends()?;
        if busy {
            self.clients()?;
        }
        self.retries()?;
        self.probes()?;
        self.roles()?;
        for n in 0..self.nodes.len() {
            if self.rng.chance(70) {
                self.fetch(n)?;
            }
        }
        self.read_checkpoints()?;
        self.check_staleness()
    }

    /// Faults, by the seed: a node's link cut, the broker out, a node crashed, a clock
    /// stepped back.
    fn strike(&mut self) -> Result<(), String> {
        if self.rng.below(1_000) < 3 {
            let n = self.rng.below(u64::from(NODES)) as usize;
            let until = self.now + 300 + self.rng.below(4_000);
            self.report.partitions += 1;
            self.cut(n, until);
        }
        if self.rng.below(1_000) < 1 {
            let until = self.now + 500 + self.rng.below(3_000);
            self.report.broker_outages += 1;
            for n in 0..self.nodes.len() {
                self.cut(n, until);
            }
        }
        if self.rng.below(1_000) < 3 {
            let n = self.rng.below(u64::from(NODES)) as usize;
            if self.nodes[n].up() {
                let down = 50 + self.rng.below(1_500);
                self.crash(n, down);
            }
        }
        if self.rng.below(1_000) < 5 {
            let n = self.rng.below(u64::from(NODES)) as usize;
            self.nodes[n].skew_ms -= self.rng.range(1, 3_000);
            self.report.clock_steps_back += 1;
        }
        if self.rng.below(1_000) < 2 {
            // SIGSTOP, and SIGCONT later: the node must come back stale, never with old
            // balances (the reads' check), until it has caught up.
            let n = self.rng.below(u64::from(NODES)) as usize;
            if self.nodes[n].active(self.now) {
                self.nodes[n].paused_until = self.now + 500 + self.rng.below(5_000);
                self.report.pauses += 1;
            }
        }
        Ok(())
    }

    /// Node `n`'s link to the broker goes down until `until`. Each append it has in flight
    /// has reached the broker or not, by a coin.
    fn cut(&mut self, n: usize, until: u64) {
        let node = &mut self.nodes[n];
        node.cut_until = node.cut_until.max(until);
        node.cut_since.get_or_insert(self.now);
        node.probes.clear();
        let id = node.id;
        for i in 0..self.inflight.len() {
            if self.inflight[i].node == id && !self.inflight[i].written && self.rng.chance(30) {
                self.write(i);
            }
        }
    }

    /// In-flight append `i` reaches the broker.
    fn write(&mut self, i: usize) {
        let append = &mut self.inflight[i];
        append.written = true;
        let key = bourse_cluster::record_key(append.node, append.request);
        let bytes = append.bytes.clone();
        let op = append.op;
        if let Ok(offset) = self.log.append(Some(key), bytes, self.now) {
            self.ops[op].offsets.push(offset);
            let events = &self.log.events[offset as usize];
            self.generator.observe(events);
        }
    }

    /// A crash of node `n`: its process and what its disk had not made durable are gone; it
    /// comes back after `down_ms`. Its appends in flight reached the broker or not; its
    /// waiting clients are answered by a dropped connection.
    fn crash(&mut self, n: usize, down_ms: u64) {
        self.report.node_crashes += 1;
        let id = self.nodes[n].id;
        let mut i = 0;
        while i < self.inflight.len() {
            if self.inflight[i].node != id || self.inflight[i].zombie {
                i += 1;
                continue;
            }
            // Each append already sent: on the broker, still in the network (it may arrive
            // after the node starts again), or lost. Its client is answered below.
            let fate = self.rng.below(10);
            if fate < 3 && !self.inflight[i].written {
                self.write(i);
            }
            if (3..5).contains(&fate) && !self.inflight[i].written {
                // A broker that stalls may take it seconds later.
                let arrive = self.now + self.rng.below(3_000);
                let append = &mut self.inflight[i];
                append.zombie = true;
                append.arrive_ms = append.arrive_ms.max(arrive);
                append.deadline_ms = append.deadline_ms.max(arrive + 1);
                i += 1;
            } else {
                self.inflight.remove(i);
            }
        }
        let node = &mut self.nodes[n];
        node.journal = None;
        node.disk.crash();
        node.down_until = self.now + down_ms;
        node.probes.clear();
        node.received.clear();
        node.paused_until = 0;
        node.delivered.clear();
        node.acknowledged.clear();
        let waiting: Vec<usize> = std::mem::take(&mut node.waiting).into_values().collect();
        for op in waiting {
            self.unavailable(op);
        }
    }

    /// Op `op` was answered 503: a keyed command is sent again later, through another node.
    fn unavailable(&mut self, op: usize) {
        self.report.unavailable += 1;
        let op = &mut self.ops[op];
        if op.keyed && op.attempts <= RETRIES {
            op.retry_at = Some(self.now + 50 + self.rng.below(1_000));
        } else {
            op.done = true;
        }
    }

    /// Nodes whose downtime is over start again: recovery.
    fn restart_nodes(&mut self) -> Result<(), String> {
        for n in 0..self.nodes.len() {
            let node = &self.nodes[n];
            if !node.up() && !node.stopped && self.now >= node.down_until {
                self.recover(n)?;
            }
        }
        Ok(())
    }

    /// Appends that arrive are written; those acknowledged whose record the node has applied
    /// are answered; those past the timeout are answered 503.
    fn deliver_appends(&mut self) -> Result<(), String> {
        let mut i = 0;
        while i < self.inflight.len() {
            let (node, arrive, deadline) = {
                let a = &self.inflight[i];
                (a.node as usize, a.arrive_ms, a.deadline_ms)
            };
            if !self.inflight[i].zombie && self.now < self.nodes[node].paused_until {
                // A paused process neither sends nor times out.
                i += 1;
                continue;
            }
            if self.nodes[node].linked(self.now) && self.now >= arrive {
                if !self.inflight[i].written {
                    self.write(i);
                }
                // Acknowledged: the client waits for the node's replica now.
                let append = self.inflight.remove(i);
                if append.zombie {
                    // Sent by a process that has since crashed: nobody waits for it.
                    continue;
                }
                self.nodes[node].acknowledged.insert(append.request);
                self.answer(node, append.request)?;
                continue;
            }
            if self.now >= deadline {
                let append = self.inflight.remove(i);
                if !append.zombie {
                    let gateway = &mut self.nodes[node];
                    gateway.waiting.remove(&append.request);
                    gateway.delivered.remove(&append.request);
                    self.unavailable(append.op);
                }
                continue;
            }
            i += 1;
        }
        Ok(())
    }

    /// Request `request` of node `n`, once the broker acknowledged its append and a record
    /// naming it was delivered, is answered with that record's outcome, which must be the
    /// op's own record's.
    fn answer(&mut self, n: usize, request: u64) -> Result<(), String> {
        let node = &mut self.nodes[n];
        if !node.acknowledged.contains(&request) {
            return Ok(());
        }
        let Some(offset) = node.delivered.get(&request).copied() else {
            return Ok(());
        };
        node.acknowledged.remove(&request);
        node.delivered.remove(&request);
        let Some(op) = node.waiting.remove(&request) else {
            return Ok(());
        };
        if !self.ops[op].offsets.contains(&offset) {
            return Err(format!(
                "node {n} answered request {request} with the outcome of the record at offset \
                 {offset}, which is another command's (its own: {:?})",
                self.ops[op].offsets
            ));
        }
        self.ops[op].done = true;
        self.report.acknowledged += 1;
        Ok(())
    }

    /// New client commands, and authenticated reads.
    fn clients(&mut self) -> Result<(), String> {
        for _ in 0..self.rng.below(4) {
            let kind = self.generator.next_command().kind;
            let keyed = match &kind {
                CommandKind::Deposit(_) | CommandKind::Withdraw(_) => true,
                CommandKind::PlaceOrder(order) => order.client_order_id.is_some(),
                _ => false,
            };
            let node = self.rng.below(u64::from(NODES)) as u16;
            self.ops.push(Op {
                kind,
                keyed,
                attempts: 0,
                offsets: Vec::new(),
                node,
                retry_at: None,
                done: false,
            });
            self.report.requests += 1;
            self.send(self.ops.len() - 1, node);
        }
        if self.rng.chance(30) {
            let n = self.rng.below(u64::from(NODES)) as usize;
            self.read(n)?;
        }
        Ok(())
    }

    /// Sends op `op` through node `node`'s gateway.
    fn send(&mut self, op: usize, node: u16) {
        self.ops[op].attempts += 1;
        self.ops[op].node = node;
        self.ops[op].retry_at = None;
        let now = self.now;
        let n = usize::from(node);
        let applied = self.nodes[n].applied();
        let fresh = {
            let node = &mut self.nodes[n];
            node.active(now)
                && node
                    .tracker
                    .status(Duration::from_millis(now), applied)
                    .fresh
        };
        if !fresh {
            // Down (connection refused) or stale: 503 before anything is appended.
            self.unavailable(op);
            return;
        }
        let gateway = &mut self.nodes[n];
        let request = gateway.next_request;
        gateway.next_request += 1;
        gateway.waiting.insert(request, op);
        let stamp = T0 + now as i64 + gateway.skew_ms;
        let bytes = log_record(self.ops[op].kind.clone(), stamp);
        let arrive_ms = now + 1 + self.rng.below(20);
        self.inflight.push(Append {
            node,
            request,
            op,
            bytes,
            arrive_ms,
            deadline_ms: now + PRODUCE_TIMEOUT_MS,
            written: false,
            zombie: false,
        });
    }

    /// Keyed commands answered 503 go again, through another node.
    fn retries(&mut self) -> Result<(), String> {
        for op in 0..self.ops.len() {
            if self.ops[op].retry_at.is_some_and(|at| self.now >= at) {
                let other = (self.ops[op].node + 1 + self.rng.below(2) as u16) % NODES;
                self.report.retries += 1;
                self.send(op, other);
            }
        }
        Ok(())
    }

    /// An authenticated read on node `n`: served only when fresh, and then it must have
    /// applied every record appended more than the bound ago.
    fn read(&mut self, n: usize) -> Result<(), String> {
        let now = self.now;
        let node = &mut self.nodes[n];
        if !node.active(now) {
            return Ok(());
        }
        let applied = node.applied();
        let running = Duration::from_millis(now - node.started_ms);
        if node
            .tracker
            .check(Duration::from_millis(now), applied, running)
            .is_err()
        {
            self.report.stale_reads += 1;
            return Ok(());
        }
        let due = now
            .checked_sub(MAX_STALENESS.as_millis() as u64)
            .map_or(0, |then| self.log.appended_by(then));
        if applied < due {
            return Err(format!(
                "node {n} answered a read at {now} ms as fresh at offset {applied}, but the \
                 records before {due} were appended more than {} ms earlier",
                MAX_STALENESS.as_millis()
            ));
        }
        self.report.fresh_reads += 1;
        Ok(())
    }

    /// Each node asks the broker for the log's end every probe interval; an answer comes
    /// back if the link stays up.
    fn probes(&mut self) -> Result<(), String> {
        let now = self.now;
        let end = self.log.len();
        let interval = bourse_cluster::probe_interval(MAX_STALENESS).as_millis() as u64;
        for node in &mut self.nodes {
            if !node.up() {
                continue;
            }
            while let Some(&(asked, arrive)) = node.probes.front() {
                if arrive > now {
                    break;
                }
                node.probes.pop_front();
                node.received.push_back((asked, end));
            }
            if !node.active(now) {
                continue;
            }
            while let Some((asked, end)) = node.received.pop_front() {
                node.tracker.heard(Duration::from_millis(asked), end);
            }
            if now >= node.next_probe {
                node.next_probe = now + interval;
                if node.linked(now) {
                    let arrive = now + self.rng.below(30);
                    node.probes.push_back((now, arrive));
                }
            }
        }
        Ok(())
    }

    /// The roles node (0) appends a `Snapshot` record every [`SNAPSHOT_EVERY`] records.
    fn roles(&mut self) -> Result<(), String> {
        if self.log.len() < self.next_snapshot || !self.nodes[0].up() {
            return Ok(());
        }
        self.next_snapshot = self.log.len() + SNAPSHOT_EVERY;
        self.ops.push(Op {
            kind: CommandKind::Snapshot,
            keyed: false,
            attempts: 0,
            offsets: Vec::new(),
            node: 0,
            retry_at: None,
            done: false,
        });
        self.send(self.ops.len() - 1, 0);
        Ok(())
    }
}
