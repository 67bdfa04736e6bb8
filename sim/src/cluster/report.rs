//! What a cluster run did.

use bourse_engine::StateHash;

use crate::disk::DiskCounts;

/// What a cluster run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterReport {
    pub seed: u64,
    pub steps: u64,
    pub simulated_ms: u64,
    pub log_records: u64,
    /// Client commands sent (first attempts).
    pub requests: u64,
    /// Answered with the outcome.
    pub acknowledged: u64,
    /// Answered 503: append timed out, node down, stale or cut off.
    pub unavailable: u64,
    pub retries: u64,
    /// Commands whose record reached the log more than once (a retry after a lost
    /// acknowledgement); each took effect once.
    pub in_log_twice: u64,
    /// Records applied, over the three replicas.
    pub records_applied: u64,
    pub node_crashes: u64,
    pub crashes_in_recovery: u64,
    pub crashes_in_snapshot: u64,
    pub recoveries_failed_on_reads: u64,
    pub snapshots: u64,
    pub snapshots_refused: u64,
    /// Journals recovery refused for a flipped bit (each named the damaged segment).
    pub corruptions_refused: u64,
    /// Nodes rebuilt from a peer's snapshot (`join-from`): after recovery refused their
    /// journal, or when a node that joined so had no good copy of that snapshot left.
    pub rebuilt_from_peer: u64,
    pub partitions: u64,
    pub broker_outages: u64,
    pub clock_steps_back: u64,
    /// Nodes paused (SIGSTOP) and continued.
    pub pauses: u64,
    /// Authenticated reads served (each checked against the bound).
    pub fresh_reads: u64,
    /// Authenticated reads refused 503 `stale`.
    pub stale_reads: u64,
    /// Cut-off nodes found stale once the bound had passed.
    pub stale_when_cut: u64,
    /// Checkpoints at which all three nodes' hashes agreed.
    pub checkpoints_agreed: u64,
    pub disk: DiskCounts,
    /// Tampering: why the outvoted node stopped.
    pub diverged: Option<String>,
    pub state_hash: Option<StateHash>,
}

impl ClusterReport {
    /// Adds `other`'s counts to these: a total over seeds.
    pub fn add(&mut self, o: &ClusterReport) {
        self.steps += o.steps;
        self.simulated_ms += o.simulated_ms;
        self.log_records += o.log_records;
        self.requests += o.requests;
        self.acknowledged += o.acknowledged;
        self.unavailable += o.unavailable;
        self.retries += o.retries;
        self.in_log_twice += o.in_log_twice;
        self.records_applied += o.records_applied;
        self.node_crashes += o.node_crashes;
        self.crashes_in_recovery += o.crashes_in_recovery;
        self.crashes_in_snapshot += o.crashes_in_snapshot;
        self.recoveries_failed_on_reads += o.recoveries_failed_on_reads;
        self.snapshots += o.snapshots;
        self.snapshots_refused += o.snapshots_refused;
        self.corruptions_refused += o.corruptions_refused;
        self.rebuilt_from_peer += o.rebuilt_from_peer;
        self.partitions += o.partitions;
        self.broker_outages += o.broker_outages;
        self.clock_steps_back += o.clock_steps_back;
        self.pauses += o.pauses;
        self.fresh_reads += o.fresh_reads;
        self.stale_reads += o.stale_reads;
        self.stale_when_cut += o.stale_when_cut;
        self.checkpoints_agreed += o.checkpoints_agreed;
        self.disk.add(&o.disk);
    }
}
