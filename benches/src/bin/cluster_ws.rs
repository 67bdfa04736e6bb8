//! Order → acknowledgement latency over WebSocket through three `bourse serve --cluster
//! kafka` nodes on one tansu broker, next to one `bourse serve` without cluster (the durable
//! single-node path, same build, same workload) in the same run; the CPU each process spends
//! per order; and the highest rate one shard sustains.
//!
//! ```text
//! cargo build --release -p bourse
//! cargo run --release -p bourse-benches --bin cluster_ws -- [--rates 1000,10000,50000]
//! ```
//!
//! **Setup.** tansu 0.6.0 on 127.0.0.1 with its SQLite storage (`--broker memory` for its
//! memory storage) and three nodes as `bourse/tests/process/cluster.rs` starts them: `--cluster
//! kafka --node-id N --kafka-brokers ... --cluster-topic-check development --cluster-peers
//! ...`, each with its own durable journal, no feed and no liquidity provider, `rate-limit 0`
//! and `ws-queue 1000000` (as `ws` runs its server), every other setting its default (the log
//! writers' 5 ms linger, a checkpoint every 10,000 offsets). A fresh broker and fresh nodes
//! (and a fresh single server) for every run, so each starts from the same state.
//!
//! **Workload** ([`bourse_benches::ws_orders`], as `ws` measures one node): `--connections`
//! clients, client `i` on node `i mod 3` with its own account (created and funded through that
//! node), limit orders of one AAPL share at one price, sides alternating, open loop at a total
//! rate R: each order's latency runs from its due time to its answer (no coordinated
//! omission). `--warmup` s answered but not measured, then `--seconds` s measured.
//!
//! **CPU.** utime + stime of each `bourse` process and of tansu (`/proc/PID/stat`) and this
//! process's own (`getrusage`) before and after each run (connections, warm-up and the last
//! answers included), as CPU-ms per 1,000 orders sent. Beside them, what else kept the
//! machine busy meanwhile (`/proc/stat` less this benchmark's processes), in cores.
//!
//! **Checks**: every order answered `ok` (non-ok answers counted by error code) and no
//! connection closed; after each run the three nodes reach the log's end (at least the
//! broker's high watermark, unchanged over 100 ms) with one `appliedSeq` and one `stateHash`
//! (`GET /api/v1/admin/status`), and the log grew by exactly the orders sent. Every rate is
//! run and reported; then, if any check failed, the failures are printed and the exit status
//! is 1.
//!
//! **The highest sustained rate** (`--max-rates`, one fresh cluster per step, `--max-seconds`
//! measured): the rates are tried in order until one is not sustained: an order refused, the
//! achieved rate (measured answers over the time from the first measured due time to the last
//! answer) under 95% of the offered one, or the p99 over `--max-p99-ms`.
//!
//! The machine's cores are shared by the broker, the nodes and this load generator, which
//! never spins: its clients sleep until their next order is due.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use bourse_benches::args::{Flags, or_exit};
use bourse_benches::report::{cpu_model, fmt_int, fmt_ns};
use bourse_benches::serve::{
    BENCH_SETTINGS, Serve, account, clock_ticks_per_second, http, http_text, own_cpu_seconds,
    process_cpu_seconds,
};
use bourse_benches::ws_orders::{Connection, OrderFlags, RateResult, order_run};
use bourse_feed::tansu::TansuBroker;
use serde_json::Value;

const USAGE: &str = "usage: cluster_ws [--bourse PATH (target/release/bourse)] \
[--rates 1000,10000,50000] [--connections 16] [--seconds 5] [--warmup 1] \
[--max-rates 2000,4000,...,100000 (\"\" skips)] [--max-seconds 3] [--max-p99-ms 50] \
[--broker sqlite|memory] [--no-single] [--quick]";

/// The admin token of every server this benchmark starts.
const ADMIN: &str = "bench-admin-token-0123456789";
/// How many nodes the cluster has.
const NODES: usize = 3;
/// How long the nodes may take to reach the log's end after a run.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
/// A sustained rate achieves at least this share of the offered one.
const SUSTAINED_SHARE: f64 = 0.95;

struct Config {
    orders: OrderFlags,
    max_rates: Vec<u64>,
    max_seconds: f64,
    max_p99_ms: u64,
    sqlite: bool,
    single: bool,
}

fn parse() -> Result<Config, String> {
    let mut config = Config {
        orders: OrderFlags::new(vec![1_000, 10_000, 50_000]),
        max_rates: vec![
            2_000, 4_000, 6_000, 8_000, 10_000, 15_000, 20_000, 30_000, 40_000, 50_000, 70_000,
            100_000,
        ],
        max_seconds: 3.0,
        max_p99_ms: 50,
        sqlite: true,
        single: true,
    };
    let mut flags = Flags::from_env(USAGE);
    while let Some(flag) = flags.next_flag()? {
        match flag.as_str() {
            "--quick" => {
                config.orders.quick(1_000, 6);
                config.max_rates = Vec::new();
                continue;
            }
            "--no-single" => {
                config.single = false;
                continue;
            }
            _ => {}
        }
        let value = flags.value(&flag)?;
        if config.orders.take(&flag, &value)? {
            continue;
        }
        match flag.as_str() {
            "--max-rates" => config.max_rates = value.numbers()?,
            "--max-seconds" => config.max_seconds = value.positive_seconds()?,
            "--max-p99-ms" => config.max_p99_ms = value.number()?,
            "--broker" => {
                config.sqlite = value.one_of("broker", &[("sqlite", true), ("memory", false)])?
            }
            _ => return Err(flags.unknown(&flag)),
        }
    }
    if config.orders.rates.contains(&0) || config.max_rates.contains(&0) {
        return Err(flags.error("a rate must be at least 1"));
    }
    if config.orders.connections < NODES as u64 {
        return Err(flags.error(&format!("at least {NODES} connections, one a node")));
    }
    Ok(config)
}

/// The settings of every server: no feed and no liquidity provider (its quotes would trade
/// with the benchmark's orders), the benchmark's limits, and the admin API.
fn common_args() -> Vec<String> {
    [
        "--feed",
        "off",
        "--liquidity",
        "false",
        "--admin-token",
        ADMIN,
    ]
    .into_iter()
    .chain(BENCH_SETTINGS)
    .map(str::to_owned)
    .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `appliedSeq` and `stateHash` of a server's `GET /api/v1/admin/status`.
fn admin_status(addr: &str) -> Result<(u64, String), String> {
    let (status, body) = http(
        addr,
        "GET",
        "/api/v1/admin/status",
        Some(ADMIN),
        &Value::Null,
    )?;
    let applied = body["appliedSeq"].as_u64();
    let hash = body["stateHash"].as_str();
    match (status, applied, hash) {
        (200, Some(applied), Some(hash)) => Ok((applied, hash.to_owned())),
        _ => Err(format!(
            "GET /api/v1/admin/status on {addr}: {status} {body}"
        )),
    }
}

/// The whole machine's busy and total CPU seconds so far, from the first line of
/// `/proc/stat` (busy: everything but idle and iowait), to tell what else ran during a run.
fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    let hz = clock_ticks_per_second();
    ((total - idle) / hz, total / hz)
}

/// A tansu broker and three nodes of one shard (see the module docs).
struct Cluster {
    nodes: Vec<Serve>,
    broker: TansuBroker,
    _root: tempfile::TempDir,
}

impl Cluster {
    fn start(bourse: &Path, sqlite: bool) -> Result<Cluster, String> {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let broker = if sqlite {
            let dir = root.path().join("broker");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            TansuBroker::start_persistent(&dir)
        } else {
            TansuBroker::start()
        }
        .map_err(|e| format!("cannot start tansu: {e:#}"))?;
        let addrs: Vec<String> = (0..NODES)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut nodes = Vec::with_capacity(NODES);
        // One after the other: the first creates the topics and appends the default catalogue
        // before it serves HTTP.
        for (id, addr) in addrs.iter().enumerate() {
            let peers: Vec<String> = addrs
                .iter()
                .filter(|other| *other != addr)
                .map(|other| format!("http://{other}"))
                .collect();
            let mut args = common_args();
            args.extend(
                [
                    "--http-addr",
                    addr,
                    "--cluster",
                    "kafka",
                    "--node-id",
                    &id.to_string(),
                    "--kafka-brokers",
                    &broker.brokers(),
                    "--cluster-topic-check",
                    "development",
                    "--cluster-peers",
                    &peers.join(","),
                ]
                .map(str::to_owned),
            );
            let dir = root.path().join(format!("node{id}"));
            nodes.push(Serve::start(bourse, &dir, &args)?);
        }
        Ok(Cluster {
            nodes,
            broker,
            _root: root,
        })
    }

    /// Waits until every node has applied the whole log and checks that they agree: the
    /// common `appliedSeq` and `stateHash`. The whole log: at least the broker's high
    /// watermark, and the same on two looks 100 ms apart (nothing is appended after a run,
    /// and tansu's memory storage was seen to report a watermark below what it had served).
    fn converged(&mut self) -> Result<(u64, String), String> {
        let topic = bourse_cluster::command_topic("bourse", 0);
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        let mut last = None;
        loop {
            for node in &mut self.nodes {
                if let Some(why) = node.exited() {
                    return Err(why);
                }
            }
            let (_, end) = bourse_cluster::log_bounds(&self.broker.brokers(), &topic)
                .map_err(|e| format!("the log's bounds: {e}"))?;
            let statuses = self
                .nodes
                .iter()
                .map(|node| admin_status(&node.addr))
                .collect::<Result<Vec<_>, _>>();
            // A node may answer 503 while it catches up; that is waited out like a lag.
            if let Ok(statuses) = &statuses {
                let (applied, hash) = &statuses[0];
                let same = statuses.iter().all(|(a, _)| a == applied);
                if same && i64::try_from(*applied).is_ok_and(|a| a >= end) {
                    if statuses.iter().any(|(_, h)| h != hash) {
                        return Err(format!(
                            "the nodes' states differ at appliedSeq {applied}: {statuses:?}"
                        ));
                    }
                    if last == Some(*applied) {
                        return Ok((*applied, hash.clone()));
                    }
                    last = Some(*applied);
                } else {
                    last = None;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the nodes did not reach the log's end ({end}) within {CONVERGE_TIMEOUT:?}: \
                     {statuses:?}"
                ));
            }
            // The pace of this poll (a broker request and three HTTP requests a round); the
            // nodes' answer must hold on two rounds in a row.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The CPU seconds used so far by each node, then by the broker.
    fn cpu_seconds(&self) -> Vec<f64> {
        self.nodes
            .iter()
            .map(Serve::cpu_seconds)
            .chain([process_cpu_seconds(self.broker.pid())])
            .collect()
    }
}

/// What a run is made on: one server, or a cluster.
enum Target {
    Single(Serve),
    Cluster(Cluster),
}

impl Target {
    fn nodes(&self) -> &[Serve] {
        match self {
            Target::Single(serve) => std::slice::from_ref(serve),
            Target::Cluster(cluster) => &cluster.nodes,
        }
    }

    /// CPU seconds per process: the servers, then the broker if there is one.
    fn cpu_seconds(&self) -> Vec<f64> {
        match self {
            Target::Single(serve) => vec![serve.cpu_seconds()],
            Target::Cluster(cluster) => cluster.cpu_seconds(),
        }
    }

    /// The servers' common `appliedSeq` and `stateHash` once they have everything.
    fn settled(&mut self) -> Result<(u64, String), String> {
        match self {
            Target::Single(serve) => match serve.exited() {
                Some(why) => Err(why),
                None => admin_status(&serve.addr),
            },
            Target::Cluster(cluster) => cluster.converged(),
        }
    }
}

/// What one run measured and checked.
struct Run {
    mode: &'static str,
    result: RateResult,
    /// CPU-ms per 1,000 orders sent: each server, then the broker (cluster only).
    cpu: Vec<f64>,
    client_cpu: f64,
    /// Cores busy with other work than this benchmark's processes during the run, on average.
    other_cores: f64,
    /// The servers' common `appliedSeq` and `stateHash` after the run, or why there are none
    /// or the log did not grow by exactly the orders sent.
    settled: Result<(u64, String), String>,
    /// Cluster only: the mean ms from an order's send in the node to the append's
    /// acknowledgement, to the record read back, to the durable outcome (the nodes' `/metrics`,
    /// over the order run).
    stages: Option<[f64; 3]>,
}

/// The nodes' `bourse_cluster_*` counters summed: answered, then the microseconds to the
/// append's acknowledgement, to the record read back, to the outcome.
fn stage_sums(nodes: &[Serve]) -> Option<[u64; 4]> {
    let names = [
        "bourse_cluster_answered_total",
        "bourse_cluster_appended_microseconds_total",
        "bourse_cluster_read_microseconds_total",
        "bourse_cluster_answered_microseconds_total",
    ];
    let mut sums = [0u64; 4];
    for node in nodes {
        let (_, text) = http_text(&node.addr, "GET", "/metrics", None, &Value::Null).ok()?;
        for (sum, name) in sums.iter_mut().zip(names) {
            *sum += text
                .lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())?;
        }
    }
    Some(sums)
}

/// The mean ms of each stage between two [`stage_sums`].
fn stage_means(before: Option<[u64; 4]>, after: Option<[u64; 4]>) -> Option<[f64; 3]> {
    let (before, after) = (before?, after?);
    let answered = after[0].checked_sub(before[0]).filter(|n| *n > 0)? as f64;
    let mean = |i: usize| after[i].saturating_sub(before[i]) as f64 / answered / 1e3;
    Some([mean(1), mean(2), mean(3)])
}

/// Starts a fresh target, sets up the accounts, offers `rate` and checks what came of it.
fn run(
    config: &Config,
    cluster: bool,
    rate: u64,
    warmup: f64,
    seconds: f64,
) -> Result<Run, String> {
    let mut target = if cluster {
        Target::Cluster(Cluster::start(&config.orders.bourse, config.sqlite)?)
    } else {
        let mut args = common_args();
        args.extend(["--http-addr", "127.0.0.1:0"].map(str::to_owned));
        Target::Single(Serve::start_in_temp(&config.orders.bourse, &args)?)
    };
    // Client `i` on node `i mod nodes`, its account made through that node.
    let connections: Vec<Connection> = (0..config.orders.connections)
        .map(|i| {
            let addr = target.nodes()[i as usize % target.nodes().len()]
                .addr
                .clone();
            let token = account(&addr, &format!("trader-{i}"));
            Connection { addr, token }
        })
        .collect();
    let (applied_before, _) = target.settled()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (cpu_before, client_before) = (target.cpu_seconds(), own_cpu_seconds());
    let machine_before = machine_cpu_seconds();
    let stages_before = stage_sums(target.nodes());
    let result = runtime.block_on(order_run(&connections, rate, warmup, seconds));
    let stages = if cluster {
        stage_means(stages_before, stage_sums(target.nodes()))
    } else {
        None
    };
    let (cpu_after, client_after) = (target.cpu_seconds(), own_cpu_seconds());
    let machine_after = machine_cpu_seconds();
    let per_thousand = |seconds: f64| seconds * 1e6 / result.sent as f64;
    // What the machine was busy with beyond this benchmark's processes, in cores.
    let ours: f64 = cpu_after.iter().sum::<f64>() - cpu_before.iter().sum::<f64>()
        + (client_after - client_before);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let wall = (machine_after.1 - machine_before.1) / cpus;
    let other_cores = ((machine_after.0 - machine_before.0 - ours) / wall).max(0.0);
    let mode = if cluster {
        "three nodes (cluster)"
    } else {
        "one node, durable"
    };
    let settled = target.settled().and_then(|(applied, hash)| {
        // Refused orders are the caller's to judge (they may not be in the log).
        if result.all_ok() && applied - applied_before != result.sent {
            return Err(format!(
                "{mode}: the log grew by {} commands for {} orders sent",
                applied - applied_before,
                result.sent
            ));
        }
        Ok((applied, hash))
    });
    Ok(Run {
        mode,
        cpu: cpu_after
            .iter()
            .zip(&cpu_before)
            .map(|(after, before)| per_thousand(after - before))
            .collect(),
        client_cpu: per_thousand(client_after - client_before),
        other_cores,
        settled,
        result,
        stages,
    })
}

/// Why a run's answers are not all `ok`, if they are not.
fn refusals(run: &Run) -> Option<String> {
    let r = &run.result;
    (!r.all_ok()).then(|| {
        format!(
            "{} at {}/s: {} orders answered with an error {:?}, {} connections closed",
            run.mode,
            fmt_int(r.offered),
            r.errors,
            r.error_codes,
            r.dropped
        )
    })
}

fn latency_row(run: &Run) -> String {
    let (r, h) = (&run.result, &run.result.latency);
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        run.mode,
        fmt_int(r.offered),
        fmt_int(r.achieved() as u64),
        fmt_ns(h.value_at_quantile(0.5)),
        fmt_ns(h.value_at_quantile(0.9)),
        fmt_ns(h.value_at_quantile(0.99)),
        fmt_ns(h.value_at_quantile(0.999)),
        fmt_ns(h.max()),
        r.errors + r.dropped,
    )
}

fn cpu_row(run: &Run) -> String {
    let (nodes, broker) = run.cpu.split_at(run.cpu.len().min(NODES));
    let cell = |v: Option<&f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"));
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
        fmt_int(run.result.offered),
        run.mode,
        cell(nodes.first()),
        cell(nodes.get(1)),
        cell(nodes.get(2)),
        cell(broker.first()),
        nodes.iter().sum::<f64>(),
        run.cpu.iter().sum::<f64>(),
        run.client_cpu,
        run.other_cores,
    )
}

/// Whether a step of the search for the highest sustained rate held, and if not why not.
fn sustained(run: &Run, p99_bound_ms: u64) -> Result<(), String> {
    if let Some(why) = refusals(run) {
        return Err(why);
    }
    let r = &run.result;
    if r.achieved() < SUSTAINED_SHARE * r.offered as f64 {
        return Err(format!(
            "achieved {:.0}/s, under {:.0}% of the offered rate",
            r.achieved(),
            SUSTAINED_SHARE * 100.0
        ));
    }
    let p99 = r.latency.value_at_quantile(0.99);
    if p99 > p99_bound_ms * 1_000_000 {
        return Err(format!("p99 {} over {p99_bound_ms} ms", fmt_ns(p99)));
    }
    Ok(())
}

/// The tables so far, on stdout.
fn print_tables(runs: &[Run], steps: &[(Run, Result<(), String>)]) {
    println!("| mode | offered/s | achieved/s | p50 | p90 | p99 | p99.9 | max | not ok |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in runs {
        println!("{}", latency_row(run));
    }
    println!();
    println!(
        "CPU-ms per 1,000 orders (utime + stime over the whole run, warm-up included):\n\n\
         | offered/s | mode | node 0 | node 1 | node 2 | broker (tansu) | all nodes | all | load generator | other load (cores) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in runs.iter().chain(steps.iter().map(|(run, _)| run)) {
        println!("{}", cpu_row(run));
    }
    println!();
    println!(
        "Inside the nodes (their `/metrics`, mean over the order run, warm-up included): from an \
         order's send to the log to\n\n\
         | offered/s | the append acknowledged | the record read back | the durable outcome |"
    );
    println!("|---:|---:|---:|---:|");
    for run in runs.iter().chain(steps.iter().map(|(run, _)| run)) {
        if let Some([appended, read, done]) = run.stages {
            println!(
                "| {} | {appended:.2} ms | {read:.2} ms | {done:.2} ms |",
                fmt_int(run.result.offered)
            );
        }
    }
    println!();
    println!("| after the run | appliedSeq | stateHash (every node) |");
    println!("|---|---:|---|");
    for run in runs.iter().chain(steps.iter().map(|(run, _)| run)) {
        let (applied, hash) = match &run.settled {
            Ok((applied, hash)) => (fmt_int(*applied), hash.clone()),
            Err(why) => ("–".to_owned(), format!("FAILED: {why}")),
        };
        println!(
            "| {} at {}/s | {applied} | {hash} |",
            run.mode,
            fmt_int(run.result.offered),
        );
    }
    if !steps.is_empty() {
        println!();
        println!("| offered/s | achieved/s | p50 | p90 | p99 | p99.9 | max | sustained |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---|");
        for (run, verdict) in steps {
            let row = latency_row(run);
            // The latency row without its mode and its count of refusals.
            let cells: Vec<&str> = row.split(" | ").collect();
            let verdict = verdict
                .as_ref()
                .map_or_else(|why| format!("no: {why}"), |()| "yes".to_owned());
            println!("| {} | {verdict} |", cells[1..cells.len() - 1].join(" | "));
        }
    }
}

fn main() {
    let config = or_exit(parse());
    eprintln!(
        "cluster_ws: {} ({} CPUs); broker storage {}; {} connections; {} s warm-up + {} s per rate",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if config.sqlite { "sqlite" } else { "memory" },
        config.orders.connections,
        config.orders.warmup,
        config.orders.seconds
    );
    let mut runs = Vec::new();
    let mut steps = Vec::new();
    // Refusals, disagreeing nodes and lost orders: every rate is still run and reported,
    // then the benchmark fails.
    let mut failures = Vec::new();
    let setup_failed = |why: String| -> Run {
        eprintln!("cluster_ws: FAILED to set up a run: {why}");
        std::process::exit(1);
    };
    for &rate in &config.orders.rates {
        for cluster in [false, true] {
            if !cluster && !config.single {
                continue;
            }
            let run = run(
                &config,
                cluster,
                rate,
                config.orders.warmup,
                config.orders.seconds,
            )
            .unwrap_or_else(setup_failed);
            eprintln!("{}", latency_row(&run));
            failures.extend(refusals(&run));
            failures.extend(run.settled.clone().err());
            runs.push(run);
        }
    }
    for &rate in &config.max_rates {
        let run = run(
            &config,
            true,
            rate,
            config.orders.warmup,
            config.max_seconds,
        )
        .unwrap_or_else(setup_failed);
        let verdict = sustained(&run, config.max_p99_ms);
        eprintln!("{} sustained: {verdict:?}", latency_row(&run));
        // A refusal only ends the search; nodes that disagree (or a lost order) fail the run.
        let diverged = run.settled.clone().err();
        let stop = verdict.is_err() || diverged.is_some();
        failures.extend(diverged);
        steps.push((run, verdict));
        if stop {
            break;
        }
    }
    print_tables(&runs, &steps);
    if !steps.is_empty() {
        let best = steps
            .iter()
            .filter(|(_, verdict)| verdict.is_ok())
            .map(|(run, _)| run.result.offered)
            .max();
        println!(
            "\nHighest sustained rate of one shard: {} (every order ok, at least {:.0}% of the \
             offered rate achieved, p99 at most {} ms).",
            best.map_or_else(
                || "none of the steps".to_owned(),
                |r| format!("{}/s", fmt_int(r))
            ),
            SUSTAINED_SHARE * 100.0,
            config.max_p99_ms
        );
    }
    if !failures.is_empty() {
        for why in &failures {
            eprintln!("cluster_ws: FAILED: {why}");
        }
        std::process::exit(1);
    }
}
