//! The replicated cluster's fixed seeds (`bourse-sim --cluster --seeds N` runs more): every
//! seed passes every check, the seeds inject every fault the cluster simulator claims to,
//! one seed replays exactly, and a replica whose state departs is stopped by the others'
//! votes.

use bourse_sim::{ClusterConfig, ClusterReport, run_cluster};

const STEPS: u64 = 3_000;

fn config(seed: u64) -> ClusterConfig {
    ClusterConfig {
        seed,
        steps: STEPS,
        faults: true,
        tamper: None,
    }
}

/// Seeds 1, 3, 4, 8 and 9 failed when a restarted node numbered its requests from 0 again
/// (`bourse_cluster::first_request`): a record its former life appended, taken by a stalled
/// broker after the restart, was handed to a request of the new life, whose client got
/// another command's outcome.
#[test]
fn the_cluster_seeds_pass_every_check_and_inject_every_fault() {
    let mut total = ClusterReport::default();
    for seed in 1..=24 {
        let report = run_cluster(config(seed)).unwrap_or_else(|failure| panic!("{failure}"));
        total.add(&report);
    }
    let injected = [
        ("acknowledged commands", total.acknowledged),
        ("503 answers", total.unavailable),
        ("retries through another node", total.retries),
        ("commands in the log twice", total.in_log_twice),
        ("node crashes", total.node_crashes),
        ("crashes during recovery", total.crashes_in_recovery),
        (
            "crashes while writing a snapshot",
            total.crashes_in_snapshot,
        ),
        (
            "recoveries failed on read errors",
            total.recoveries_failed_on_reads,
        ),
        ("snapshots", total.snapshots),
        ("snapshots refused at load", total.snapshots_refused),
        ("nodes rebuilt from a peer", total.rebuilt_from_peer),
        ("partitions", total.partitions),
        ("broker outages", total.broker_outages),
        ("clock steps back", total.clock_steps_back),
        ("pauses", total.pauses),
        ("fresh reads", total.fresh_reads),
        ("reads refused stale", total.stale_reads),
        ("cut-off nodes found stale", total.stale_when_cut),
        ("checkpoints agreed", total.checkpoints_agreed),
        ("failed syncs", total.disk.failed_syncs),
        ("torn sectors lost", total.disk.torn_sectors_lost),
    ];
    for (what, n) in injected {
        assert!(n > 0, "the cluster seeds made no {what}: {injected:?}");
    }
}

#[test]
fn a_cluster_seed_replays_exactly() {
    let first = run_cluster(config(5)).unwrap_or_else(|failure| panic!("{failure}"));
    let second = run_cluster(config(5)).unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(first, second);
    assert!(
        first.node_crashes > 0 && first.acknowledged > 0,
        "{first:?}"
    );
    let other = run_cluster(config(6)).unwrap_or_else(|failure| panic!("{failure}"));
    assert_ne!(first.state_hash, other.state_hash, "two seeds, one run");
}

/// Node 1's replica doubles every deposit (the server's `cluster::tamper`): its hash departs
/// at the first checkpoint after a deposit, the other two outvote it, and it stops; they
/// go on and end equal to the log.
#[test]
fn a_replica_whose_state_departs_is_outvoted_and_stops_alone() {
    for seed in 1..=3 {
        let report = run_cluster(ClusterConfig {
            tamper: Some(1),
            ..config(seed)
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
        let why = report.diverged.unwrap_or_default();
        assert!(
            why.contains("this node (node 1)") && why.contains("2 or more nodes"),
            "seed {seed}: {why:?}"
        );
    }
}
