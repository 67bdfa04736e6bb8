//! Order → acknowledgement latency through the replicated command log (`bourse-cluster`),
//! next to the single-node durable pipeline in the same run.
//!
//! ```text
//! cargo run --release -p bourse-benches --bin cluster -- [--rates 1000,10000] [--seconds 5]
//!     [--linger-ms 5] [--fetch-wait-ms 1] [--quick]
//! ```
//!
//! **Checks.** After each replicated run every replica must have applied the whole log with
//! one state hash, and nothing may have been refused; a failed check stops the run.
//!
//! **Setup.** tansu (the Kafka-protocol broker of the tests, in-memory storage) on 127.0.0.1;
//! a command topic of one partition; three replicas in this process, each a pipeline with its
//! own durable journal fed by a `Replica`, and a `Proposer` per node. The broker, the three
//! replicas and the load generator share this machine's cores.
//!
//! **Workload.** From the `latency` benchmark's exchange-core mix: the setup of 1,000 accounts
//! and a 1,000-order book (appended first and waited for, not timed), then the mix's
//! placements only (GTC and IOC limit orders, see [`workload`]) offered open loop at rate R for
//! `--seconds`, command *i* due at `t0 + i/R` and proposed through node `i mod 3`; its latency
//! runs from its due time to its answer (no coordinated omission). Refusals are counted.
//! `appended` is the part until the log acknowledged the append; the rest is the replica
//! fetching the record back and applying it. The single-node row proposes the same stream
//! through one durable pipeline's `Handle::submit`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bourse_benches::commands::Live;
use bourse_benches::mix::{Mix, MixConfig};
use bourse_cluster::{
    Answers, LogWriter, Proposer, ReaderConfig, Replica, WriterConfig, command_topic, log_record,
};
use bourse_engine::CommandKind;
use bourse_feed::tansu::TansuBroker;
use bourse_journal::{Durability, JournalConfig};
use bourse_pipeline::{Pipeline, PipelineConfig};
use bourse_store::{Silent, Store, StoreConfig};
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(about = "Order latency through the replicated command log, beside one node")]
struct Args {
    /// Offered rates, commands per second, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    rates: Vec<u64>,
    /// Timed seconds per rate.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// A smoke run: 1,000 orders/s for one second (the checks still hold).
    #[arg(long)]
    quick: bool,
    /// The log writers' `linger.ms` (their batching wait; `WriterConfig`'s default is 5).
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// The replicas' `fetch.wait.max.ms` (how long tansu holds every fetch).
    #[arg(long, default_value_t = 1)]
    fetch_wait_ms: u64,
}

/// One node's engine: a durable pipeline in a temporary directory.
fn pipeline(dir: &std::path::Path) -> Pipeline {
    let config = StoreConfig {
        journal: JournalConfig {
            durability: Durability::Durable,
            ..JournalConfig::default()
        },
        ..StoreConfig::new(dir)
    };
    let recovered = Store::open(&config, &mut Silent).unwrap();
    Pipeline::start(
        recovered,
        PipelineConfig {
            snapshot_on_shutdown: false,
            ..PipelineConfig::default()
        },
    )
    .unwrap()
}

/// The setup and `stream_len` orders of exchange-core's mix: its placements only (GTC and IOC
/// limit orders). Its cancels and moves name orders by the ids the engine gives in log order;
/// with three nodes appending at once the log's order is the broker's, not the generator's, so
/// they would mostly be refused and make the replicated rows look cheaper than they are.
fn workload(stream_len: usize) -> (Vec<CommandKind>, Vec<CommandKind>) {
    let config = MixConfig::default();
    let mut live = Live::new();
    let mut setup = Vec::new();
    live.setup(config.users, &mut |c| setup.push(c.kind.clone()));
    // Placements are about an eighth of the mix.
    let mix = Mix::generate(&config, 0, config.target_orders + 10 * stream_len);
    let (book, rest) = mix.ops.split_at(config.target_orders);
    for op in book {
        live.op(op, &mut |c| setup.push(c.kind.clone()));
    }
    let mut stream = Vec::new();
    for op in rest {
        live.op(op, &mut |c| {
            if matches!(c.kind, CommandKind::PlaceOrder(_)) {
                stream.push(c.kind.clone());
            }
        });
        if stream.len() >= stream_len {
            break;
        }
    }
    assert!(
        stream.len() >= stream_len,
        "the mix made too few placements"
    );
    (setup, stream)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).unwrap()
}

/// What one run measured.
struct Run {
    total: Histogram<u64>,
    appended: Option<Histogram<u64>>,
    rejected: u64,
    took: Duration,
    commands: usize,
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn report(mode: &str, rate: u64, run: &Run) {
    let q = |h: &Histogram<u64>, p: f64| ms(h.value_at_quantile(p));
    let appended = run.appended.as_ref().map_or_else(
        || "–".to_owned(),
        |h| format!("{} / {}", q(h, 0.5), q(h, 0.99)),
    );
    println!(
        "| {mode} | {rate} | {:.0} | {} | {} | {} | {} | {} | {appended} | {} |",
        run.commands as f64 / run.took.as_secs_f64(),
        q(&run.total, 0.5),
        q(&run.total, 0.9),
        q(&run.total, 0.99),
        q(&run.total, 0.999),
        ms(run.total.max()),
        run.rejected,
    );
}

/// Offers `stream` open loop at `rate`: command `i` due at `t0 + i/rate`, proposed by
/// `propose(i, kind)`; each answer's latency from its due time.
async fn open_loop<F, Fut>(stream: &[CommandKind], rate: u64, propose: F) -> Run
where
    F: Fn(usize, CommandKind) -> Fut,
    Fut: std::future::Future<Output = (bool, Option<Duration>)> + Send + 'static,
{
    let total = Arc::new(Mutex::new(histogram()));
    let appended = Arc::new(Mutex::new(histogram()));
    let rejected = Arc::new(Mutex::new(0u64));
    let t0 = tokio::time::Instant::now();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(stream.len());
    for (i, kind) in stream.iter().enumerate() {
        let due = t0 + Duration::from_nanos(i as u64 * 1_000_000_000 / rate);
        tokio::time::sleep_until(due).await;
        let answer = propose(i, kind.clone());
        let (total, appended, rejected) = (
            Arc::clone(&total),
            Arc::clone(&appended),
            Arc::clone(&rejected),
        );
        tasks.push(tokio::spawn(async move {
            let (ok, appended_after) = answer.await;
            let latency = u64::try_from(due.elapsed().as_nanos()).unwrap_or(u64::MAX);
            total.lock().unwrap().saturating_record(latency);
            if let Some(after) = appended_after {
                let after = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
                appended.lock().unwrap().saturating_record(after);
            }
            if !ok {
                *rejected.lock().unwrap() += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let took = started.elapsed();
    let appended = appended.lock().unwrap().clone();
    Run {
        total: total.lock().unwrap().clone(),
        appended: (!appended.is_empty()).then_some(appended),
        rejected: *rejected.lock().unwrap(),
        took,
        commands: stream.len(),
    }
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.rates = vec![1000];
        args.seconds = 1;
    }
    let longest = args.rates.iter().max().copied().unwrap_or(0) * args.seconds;
    let (setup, stream) = workload(usize::try_from(longest).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| mode | offered/s | achieved/s | p50 | p90 | p99 | p99.9 | max | appended p50 / p99 | rejected |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &rate in &args.rates {
        // Every run starts from the setup alone, so it offers the stream from its start.
        let n = usize::try_from(rate * args.seconds).unwrap();
        let slice = &stream[..n];
        // One node, durable: the baseline.
        let dir = tempfile::tempdir().unwrap();
        let single = pipeline(dir.path());
        let mut handle = single.handle();
        for kind in &setup {
            assert_eq!(handle.submit_blocking(kind.clone()).unwrap().result, Ok(()));
        }
        let run = runtime.block_on(open_loop(slice, rate, |_, kind| {
            let ticket = single.handle().try_submit(kind);
            async move {
                match ticket {
                    Ok(ticket) => (ticket.await.is_ok_and(|o| o.result.is_ok()), None),
                    Err(_) => (false, None),
                }
            }
        }));
        report("one node, durable", rate, &run);
        single.shutdown().unwrap();
        // Three replicas of one log.
        let broker = TansuBroker::start().unwrap();
        let brokers = broker.brokers();
        let topic = command_topic("bench", 0);
        bourse_feed::create_topic(&brokers, &topic, 1).unwrap();
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let nodes: Vec<(Pipeline, Replica, Arc<Proposer>)> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let node = u16::try_from(i).unwrap();
                let pipeline = pipeline(dir.path());
                let answers = Arc::new(Answers::new(node));
                let mut reader = ReaderConfig::new(&brokers, &topic, format!("node-{i}"));
                reader.fetch_wait_max = Duration::from_millis(args.fetch_wait_ms);
                let replica =
                    Replica::start(&reader, 0, pipeline.handle(), Arc::clone(&answers), None)
                        .unwrap();
                let mut writer = WriterConfig::new(&brokers, &topic);
                writer.linger = Duration::from_millis(args.linger_ms);
                let writer = LogWriter::new(&writer).unwrap();
                (pipeline, replica, Arc::new(Proposer::new(writer, answers)))
            })
            .collect();
        let writer = LogWriter::new(&WriterConfig::new(&brokers, &topic)).unwrap();
        let pending: Vec<_> = setup
            .iter()
            .map(|kind| writer.append(&log_record(kind.clone(), 0)).unwrap())
            .collect();
        let end = pending
            .into_iter()
            .map(|p| p.wait().unwrap())
            .max()
            .unwrap()
            + 1;
        for (pipeline, replica, _) in &nodes {
            while pipeline.stats().applied_seq < u64::try_from(end).unwrap() {
                assert_eq!(replica.failure(), None);
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
        let proposers: Vec<Arc<Proposer>> = nodes.iter().map(|(_, _, p)| Arc::clone(p)).collect();
        let run = runtime.block_on(open_loop(slice, rate, |i, kind| {
            let proposer = Arc::clone(&proposers[i % 3]);
            async move {
                match proposer.propose_timed(kind, now_ms()).await {
                    Ok((outcome, appended)) => (outcome.result.is_ok(), Some(appended)),
                    Err(_) => (false, None),
                }
            }
        }));
        report("three replicas over tansu", rate, &run);
        check_replicas(&nodes, &brokers, &topic, &run);
        for (pipeline, replica, _) in nodes {
            replica.stop().unwrap();
            pipeline.shutdown().unwrap();
        }
    }
}

/// The checks of a replicated run: every replica applied the whole log, the three states are
/// one, and nothing was refused.
fn check_replicas(
    nodes: &[(Pipeline, Replica, Arc<Proposer>)],
    brokers: &str,
    topic: &str,
    run: &Run,
) {
    let (_, high) = bourse_cluster::log_bounds(brokers, topic).unwrap();
    let high = u64::try_from(high).unwrap();
    let hashes: Vec<_> = nodes
        .iter()
        .map(|(pipeline, replica, _)| {
            while pipeline.stats().applied_seq < high {
                assert_eq!(replica.failure(), None);
                std::thread::park_timeout(Duration::from_millis(10));
            }
            let handle = pipeline.handle();
            handle
                .try_query(|engine| engine.state_hash())
                .unwrap()
                .wait()
                .unwrap()
        })
        .collect();
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "replicas differ: {hashes:?}"
    );
    assert_eq!(run.rejected, 0, "refused commands");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
