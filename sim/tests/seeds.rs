//! The simulation's fixed seeds (what the test command runs; `bourse-sim --seeds N` runs
//! more): every seed passes every check, one seed gives the same run twice, and the seeds do
//! inject what the simulator claims to (crashes, failed syncs, full disks, torn writes, bit
//! flips in segments and snapshots, deferred commits, slow syncs, lost history and market-data
//! writes), so a quiet simulator cannot pass for a thorough one.

use bourse_sim::{Config, Report, run};

/// The fixed seeds and their length.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=48;
const BATCHES: u64 = 300;

fn config(seed: u64) -> Config {
    Config {
        seed,
        batches: BATCHES,
        faults: true,
        torn_any_order: false,
    }
}

/// A crash during a commit keeps any subset of its unsynced sectors, in any order (FORMAT.md's
/// crash table): recovery cuts the records after a lost one instead of refusing the journal,
/// and still loses nothing acknowledged. Before the commit mark, 42 of the first 50 seeds
/// failed here.
#[test]
fn torn_writes_in_any_order_are_cut_and_lose_nothing_acknowledged() {
    let mut total = Report::default();
    for seed in 1..=24 {
        let config = Config {
            torn_any_order: true,
            ..config(seed)
        };
        let report = run(config).unwrap_or_else(|failure| panic!("{failure}"));
        total.add(&report);
    }
    assert!(
        total.records_cut_after_tears > 0,
        "no tear left a valid record after a lost one: {total:?}"
    );
    assert!(total.acknowledged > 0 && total.crashes > 0, "{total:?}");
}

#[test]
fn the_fixed_seeds_pass_every_check_and_inject_every_fault() {
    let mut total = Report::default();
    let mut refused = 0;
    for seed in SEEDS {
        let report = run(config(seed)).unwrap_or_else(|failure| panic!("{failure}"));
        refused += u64::from(report.refused.is_some());
        total.add(&report);
    }
    let injected = [
        ("acknowledged commands", total.acknowledged),
        ("crashes", total.crashes),
        ("crashes during recovery", total.crashes_in_recovery),
        (
            "crashes while writing a snapshot",
            total.crashes_in_snapshot,
        ),
        ("damaged snapshots refused at load", total.snapshots_refused),
        ("failed syncs", total.disk.failed_syncs),
        ("full disks", total.disk.no_space),
        ("torn sectors lost", total.disk.torn_sectors_lost),
        ("directory changes undone", total.disk.dir_changes_undone),
        ("bits flipped in segments", total.disk.bit_flips),
        ("runs ended on a refused corruption", refused),
        ("commands the history caught up", total.history_caught_up),
        (
            "recoveries after retention",
            total.recoveries_after_retention,
        ),
        ("deferred commits", total.deferred_commits),
        (
            "fee quotes checked against a whole fill",
            total.fee_quotes_checked,
        ),
        (
            "recoveries failed on read errors",
            total.recoveries_failed_on_reads,
        ),
        (
            "market feed messages taken again",
            total.market.messages_again,
        ),
        ("market checkpoints", total.market.checkpoints),
        ("snapshots the pipeline was asked for", total.snapshots),
        ("history syncs landed", total.history_syncs),
        (
            "acknowledgements that waited over 50 ms for a slow sync",
            total
                .ack_latency
                .0
                .count_between(50_000_000, total.ack_latency.0.max()),
        ),
        (
            "market log sectors lost",
            total.market.disk.torn_sectors_lost,
        ),
        ("failed market syncs", total.market.disk.failed_syncs),
        (
            "history log sectors lost",
            total.history_disk.torn_sectors_lost,
        ),
        (
            "history log directory changes undone",
            total.history_disk.dir_changes_undone,
        ),
    ];
    for (what, n) in injected {
        assert!(n > 0, "the fixed seeds made no {what}: {injected:?}");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let first = run(config(7)).unwrap_or_else(|failure| panic!("{failure}"));
    let second = run(config(7)).unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(first, second);
    assert!(first.crashes > 0 && first.acknowledged > 0, "{first:?}");
    let other = run(config(8)).unwrap_or_else(|failure| panic!("{failure}"));
    assert_ne!(first, other, "two seeds, one run");
}
