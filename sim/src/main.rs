//! `bourse-sim`: runs seeds of the deterministic simulation (the crate's docs say what a run
//! does and checks) and reports what they did; a failing seed prints the command that
//! replays it, and the exit code is 1.
//!
//! ```text
//! cargo run --release -p bourse-sim -- --seeds 1000          # seeds 1..=1000
//! cargo run --release -p bourse-sim -- --seed 42 --verbose   # one seed, its report
//! ```

use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Deterministic simulation of the engine, journal, snapshots and recovery")]
struct Args {
    /// Run this seed alone.
    #[arg(long)]
    seed: Option<u64>,
    /// Run this many seeds, from --first.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed of --seeds.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Batches of commands a seed runs.
    #[arg(long, default_value_t = 400)]
    batches: u64,
    /// Without disk faults (crashes only).
    #[arg(long)]
    no_faults: bool,
    /// Torn writes keep unsynced sectors in any order, not only a prefix (docs/testing.md).
    #[arg(long)]
    torn_any_order: bool,
    /// Print each seed's report.
    #[arg(long)]
    verbose: bool,
    /// Run the replicated cluster instead: three nodes over a simulated command log
    /// (docs/testing.md).
    #[arg(long)]
    cluster: bool,
    /// Steps of the simulated clock a cluster seed runs (1 to 40 ms each).
    #[arg(long, default_value_t = 3_000)]
    steps: u64,
    /// Cluster runs: this node's replica doubles every deposit; the run must stop it.
    #[arg(long)]
    tamper: Option<u16>,
}

fn main() {
    let args = Args::parse();
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first..args.first.saturating_add(args.seeds)).collect(),
    };
    if args.cluster {
        return cluster(&args, &seeds);
    }
    let started = Instant::now();
    let mut total = bourse_sim::Report::default();
    let mut refused = 0u64;
    let failures = each_seed(
        &seeds,
        args.verbose,
        |seed| {
            bourse_sim::run(bourse_sim::Config {
                seed,
                batches: args.batches,
                faults: !args.no_faults,
                torn_any_order: args.torn_any_order,
            })
        },
        |report| {
            refused += u64::from(report.refused.is_some());
            total.add(report);
        },
    );
    let seconds = started.elapsed().as_secs_f64();
    let d = &total.disk;
    println!(
        "{} seeds in {seconds:.1} s ({:.0} seeds/min, {:.0} batches/s): {} commands ({} acknowledged, {} deferred commits, {} fee quotes of which {} checked against a whole fill), \
         acknowledged in {:.2} ms at the median, {:.1} ms at p99, {:.0} ms at most over {:.0} simulated s; {} crashes ({} during recovery, {} while writing a snapshot, {} recoveries failed on read errors), {} snapshots ({} damaged, {} refused at load), \
         {} syncs ({} failed), {} full disks, {} torn sectors lost ({} records after them cut), {} directory changes undone, \
         {} bits flipped ({} runs ended on a refused corruption); history log: {} torn sectors lost, \
         {} directory changes undone, {} syncs landed, {} commands caught up from the journal, {} recoveries after retention, {} history start-overs after damage; market data: {} feed messages ({} again after restarts), {} checkpoints, {} syncs ({} failed), {} full disks, {} torn sectors lost; {} failed{}",
        seeds.len(),
        seeds.len() as f64 * 60.0 / seconds.max(1e-9),
        total.batches as f64 / seconds.max(1e-9),
        total.commands,
        total.acknowledged,
        total.deferred_commits,
        total.fee_quotes,
        total.fee_quotes_checked,
        total.ack_latency.ms(0.5),
        total.ack_latency.ms(0.99),
        total.ack_latency.ms(1.0),
        total.simulated_ns as f64 / 1e9,
        total.crashes,
        total.crashes_in_recovery,
        total.crashes_in_snapshot,
        total.recoveries_failed_on_reads,
        total.snapshots,
        total.snapshots_damaged,
        total.snapshots_refused,
        d.syncs,
        d.failed_syncs,
        d.no_space,
        d.torn_sectors_lost,
        total.records_cut_after_tears,
        d.dir_changes_undone,
        d.bit_flips,
        refused,
        total.history_disk.torn_sectors_lost,
        total.history_disk.dir_changes_undone,
        total.history_syncs,
        total.history_caught_up,
        total.recoveries_after_retention,
        total.history_started_over,
        total.market.messages,
        total.market.messages_again,
        total.market.checkpoints,
        total.market.disk.syncs,
        total.market.disk.failed_syncs,
        total.market.disk.no_space,
        total.market.disk.torn_sectors_lost,
        failures.len(),
        failed_seeds(&failures)
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// The cluster's seeds and their totals.
fn cluster(args: &Args, seeds: &[u64]) {
    let started = Instant::now();
    let mut total = bourse_sim::ClusterReport::default();
    let failures = each_seed(
        seeds,
        args.verbose,
        |seed| {
            bourse_sim::run_cluster(bourse_sim::ClusterConfig {
                seed,
                steps: args.steps,
                faults: !args.no_faults,
                tamper: args.tamper,
            })
        },
        |report| total.add(report),
    );
    let seconds = started.elapsed().as_secs_f64();
    let t = &total;
    println!(
        "{} cluster seeds in {seconds:.1} s ({:.0} seeds/min, {:.0} steps/s): {:.0} simulated s, {} log records ({} applied by replicas), \
         {} requests ({} acknowledged, {} answered 503, {} retries, {} in the log twice), {} node crashes ({} during recovery, {} while writing a snapshot, \
         {} recoveries failed on read errors, {} corrupt journals refused, {} rebuilt from a peer), {} snapshots ({} refused at load), {} partitions, {} broker outages, {} clock steps back, {} pauses, \
         {} reads served fresh, {} refused stale, {} cut-off nodes found stale, {} checkpoints agreed; disks: {} syncs ({} failed), {} full, {} torn sectors lost, {} bits flipped; {} failed{}",
        seeds.len(),
        seeds.len() as f64 * 60.0 / seconds.max(1e-9),
        t.steps as f64 / seconds.max(1e-9),
        t.simulated_ms as f64 / 1000.0,
        t.log_records,
        t.records_applied,
        t.requests,
        t.acknowledged,
        t.unavailable,
        t.retries,
        t.in_log_twice,
        t.node_crashes,
        t.crashes_in_recovery,
        t.crashes_in_snapshot,
        t.recoveries_failed_on_reads,
        t.corruptions_refused,
        t.rebuilt_from_peer,
        t.snapshots,
        t.snapshots_refused,
        t.partitions,
        t.broker_outages,
        t.clock_steps_back,
        t.pauses,
        t.fresh_reads,
        t.stale_reads,
        t.stale_when_cut,
        t.checkpoints_agreed,
        t.disk.syncs,
        t.disk.failed_syncs,
        t.disk.no_space,
        t.disk.torn_sectors_lost,
        t.disk.bit_flips,
        failures.len(),
        failed_seeds(&failures)
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// Runs every seed, printing each report (with `verbose`) and each failure, and adding each
/// report with `add`; the seeds that failed.
fn each_seed<R: std::fmt::Debug>(
    seeds: &[u64],
    verbose: bool,
    run: impl Fn(u64) -> Result<R, bourse_sim::Failure>,
    mut add: impl FnMut(&R),
) -> Vec<u64> {
    let mut failures = Vec::new();
    for &seed in seeds {
        match run(seed) {
            Ok(report) => {
                if verbose {
                    println!("{report:?}");
                }
                add(&report);
            }
            Err(failure) => {
                eprintln!("FAILED {failure}");
                failures.push(seed);
            }
        }
    }
    failures
}

/// The failed seeds, for the summary line.
fn failed_seeds(failures: &[u64]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(": seeds {failures:?}")
    }
}
