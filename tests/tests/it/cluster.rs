//! Replicas of one engine over a Kafka command log (`bourse_cluster`, tansu on 127.0.0.1):
//! three pipelines, each with its own journal, fed by one log that three writers append to at
//! once, reach the same state, bit for bit, with the record at offset `o` as command `o + 1`;
//! a replica stopped and recovered from its own journal resumes the log where it left off and
//! reaches the same state again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_cluster::{
    Answers, CheckpointConfig, Checkpointer, LogWriter, ProposeError, Proposer, ReaderConfig,
    Replica, WriterConfig, checkpoint_topic, command_topic, log_record,
};
use bourse_engine::{CommandKind, StateHash};
use bourse_feed::tansu::TansuBroker;
use bourse_journal::{Durability, JournalConfig};
use bourse_pipeline::{Outcome, Pipeline, PipelineConfig};
use bourse_store::{Silent, Store, StoreConfig};
use bourse_tests::workload::{Generator, N_ACCOUNTS, T0};

/// How long replicas may take to apply what was appended.
const CATCH_UP: Duration = Duration::from_secs(120);
/// Trading commands each writer appends.
const TRADING_PER_WRITER: usize = 1_500;

/// One node's engine: a pipeline on its own data directory, fed by the log.
struct Node {
    pipeline: Pipeline,
    replica: Replica,
    answers: Arc<Answers>,
    /// The snapshot recovery started from, by sequence number.
    recovered_from: Option<u64>,
    checkpointer: Option<Arc<Checkpointer>>,
}

/// Checkpoints of a test cluster: its topic, its size and the interval.
#[derive(Clone)]
struct Checkpoints {
    topic: String,
    nodes: usize,
    interval: u64,
}

/// The workload's set-up commands (assets, products, funded accounts).
const SETUP: usize = 5 + 4 * N_ACCOUNTS as usize;

/// The checkpoints of a three-node cluster on shard `shard`, every `interval` commands, with
/// their topic created.
fn checkpoints(brokers: &str, shard: u16, interval: u64) -> Checkpoints {
    let checkpoints = Checkpoints {
        topic: checkpoint_topic("it", shard),
        nodes: 3,
        interval,
    };
    bourse_feed::create_topic(brokers, &checkpoints.topic, 1).unwrap();
    checkpoints
}

/// Three nodes, numbered from `first_id`, one on each of `dirs`.
fn start_nodes(
    dirs: &[tempfile::TempDir],
    brokers: &str,
    topic: &str,
    first_id: u16,
    checkpoints: Option<&Checkpoints>,
) -> Vec<Node> {
    (first_id..)
        .zip(dirs)
        .map(|(id, dir)| start_node(dir.path(), brokers, topic, id, checkpoints))
        .collect()
}

/// Stops every node's replica, then its pipeline.
fn stop_all(nodes: Vec<Node>) {
    for node in nodes {
        node.replica.stop().unwrap();
        node.pipeline.shutdown().unwrap();
    }
}

/// A proposer for each node, its appends refused after `produce_timeout`.
fn proposers(
    nodes: &[Node],
    brokers: &str,
    topic: &str,
    produce_timeout: Duration,
) -> Vec<Arc<Proposer>> {
    nodes
        .iter()
        .map(|node| {
            let mut config = WriterConfig::new(brokers, topic);
            config.produce_timeout = produce_timeout;
            let writer = LogWriter::new(&config).unwrap();
            Arc::new(Proposer::new(writer, Arc::clone(&node.answers)))
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The workload of `seed` past its set-up.
fn trading(seed: u64) -> Generator {
    let mut generator = Generator::new(seed);
    for _ in 0..SETUP {
        generator.next_command();
    }
    generator
}

/// Appends `n` commands of `generator` with one writer, in order; their offsets.
fn append(writer: &LogWriter, generator: &mut Generator, n: usize) -> Vec<i64> {
    let pending: Vec<_> = (0..n)
        .map(|_| {
            let command = generator.next_command();
            writer
                .append(&log_record(command.kind, command.timestamp_ms))
                .unwrap()
        })
        .collect();
    pending.into_iter().map(|p| p.wait().unwrap()).collect()
}

/// Appends the workload's set-up in order; the offset after it.
fn append_setup(writer: &LogWriter) -> i64 {
    append(writer, &mut Generator::new(1), SETUP)
        .into_iter()
        .max()
        .unwrap()
        + 1
}

/// Proposes the workload's set-up through `proposer`, one command at a time, each answered
/// before the next; the outcomes.
fn propose_setup(runtime: &tokio::runtime::Runtime, proposer: &Proposer) -> Vec<Outcome> {
    let mut generator = Generator::new(1);
    (0..SETUP)
        .map(|_| {
            let command = generator.next_command();
            let outcome = runtime
                .block_on(proposer.propose_at(command.kind, command.timestamp_ms))
                .unwrap();
            assert_eq!(outcome.result, Ok(()), "set-up command {}", outcome.seq);
            outcome
        })
        .collect()
}

fn start_node(
    dir: &Path,
    brokers: &str,
    topic: &str,
    id: u16,
    checkpoints: Option<&Checkpoints>,
) -> Node {
    let name = format!("node-{id}");
    let config = StoreConfig {
        journal: JournalConfig {
            segment_size_bytes: 1 << 20,
            durability: Durability::Durable,
            ..JournalConfig::default()
        },
        ..StoreConfig::new(dir)
    };
    let recovered = Store::open(&config, &mut Silent).unwrap();
    let from = recovered.report.last_seq;
    let recovered_from = recovered.report.snapshot.as_ref().map(|(seq, _)| *seq);
    let pipeline = Pipeline::start(
        recovered,
        PipelineConfig {
            snapshot_on_shutdown: false,
            ..PipelineConfig::default()
        },
    )
    .unwrap();
    let answers = Arc::new(Answers::new(id));
    let checkpointer = checkpoints.map(|c| {
        Checkpointer::start(CheckpointConfig {
            brokers: brokers.to_owned(),
            topic: c.topic.clone(),
            node: id,
            nodes: c.nodes,
            interval: c.interval,
        })
        .unwrap()
    });
    let replica = Replica::start(
        &ReaderConfig::new(brokers, topic, name),
        from,
        pipeline.handle(),
        Arc::clone(&answers),
        checkpointer.clone(),
    )
    .unwrap();
    Node {
        pipeline,
        replica,
        answers,
        recovered_from,
        checkpointer,
    }
}

/// Waits until `node` has applied every command before offset `end` (nothing more is
/// appended meanwhile); its state hash then.
fn caught_up(node: &Node, end: u64) -> StateHash {
    let handle = node.pipeline.handle();
    let deadline = Instant::now() + CATCH_UP;
    loop {
        assert_eq!(node.replica.failure(), None);
        let seq = handle.stats().applied_seq;
        if seq >= end {
            assert_eq!(seq, end, "a command beyond the log");
            return handle
                .try_query(|engine| engine.state_hash())
                .unwrap()
                .wait()
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "applied {seq} of {end} after {CATCH_UP:?}"
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Waits until every node's checkpointer has seen `n` checkpoints on which all nodes agreed
/// (they come back through the topic a little after the commands), and no node failed.
fn wait_until_agreed(nodes: &[Node], n: u64) {
    let deadline = Instant::now() + CATCH_UP;
    for node in nodes {
        let checkpointer = node.checkpointer.as_ref().unwrap();
        while checkpointer.agreed() < n {
            assert!(
                Instant::now() < deadline,
                "{} checkpoints agreed",
                checkpointer.agreed()
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
        assert_eq!(node.replica.failure(), None);
    }
}

/// Appends the workload's trading commands of `seed` (its set-up skipped: it is in the log).
fn append_trading(writer: &LogWriter, seed: u64, n: usize) -> Vec<i64> {
    append(writer, &mut trading(seed), n)
}

#[test]
fn replicas_of_one_log_reach_one_state_and_a_restarted_one_resumes_where_it_stopped() {
    let broker = TansuBroker::start().unwrap();
    let brokers = broker.brokers();
    let topic = command_topic("it", 0);
    bourse_feed::create_topic(&brokers, &topic, 1).unwrap();
    let checkpoints = checkpoints(&brokers, 0, 500);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = start_nodes(&dirs, &brokers, &topic, 20, Some(&checkpoints));

    // The set-up (assets, products, funded accounts) from one writer, in order.
    let setup_writer = LogWriter::new(&WriterConfig::new(&brokers, &topic)).unwrap();
    let setup_end = append_setup(&setup_writer);

    // Three gateways' worth of trading, appended at once.
    let appended: Vec<i64> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let brokers = &brokers;
                let topic = &topic;
                scope.spawn(move || {
                    let writer = LogWriter::new(&WriterConfig::new(brokers, topic)).unwrap();
                    append_trading(&writer, 10 + w, TRADING_PER_WRITER)
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let end = u64::try_from(setup_end).unwrap() + appended.len() as u64;
    assert_eq!(appended.iter().max().map(|o| o + 1), Some(end as i64));
    let hashes: Vec<StateHash> = nodes.iter().map(|n| caught_up(n, end)).collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    // The workload traded: more events than commands, and orders rest on the books.
    let (events, open) = nodes[0]
        .pipeline
        .handle()
        .try_query(|engine| (engine.event_seq(), engine.n_open_orders()))
        .unwrap()
        .wait()
        .unwrap();
    assert!(
        events > end && open > 0,
        "{events} events, {open} open orders"
    );

    // A snapshot is a record of the log too: every replica cuts one at the same place.
    let snapshot_offset = setup_writer
        .append_wait(&log_record(CommandKind::Snapshot, T0))
        .unwrap();
    let end = end + 1;
    assert_eq!(snapshot_offset + 1, end as i64);
    let hashes_at_snapshot: Vec<StateHash> = nodes.iter().map(|n| caught_up(n, end)).collect();
    assert_eq!(hashes_at_snapshot, hashes, "a snapshot changes no state");

    // Node 2 stops; the others go on with more of the log; node 2 recovers from its own
    // snapshot and journal and resumes the log at its recovered position.
    let stopped = nodes.pop().unwrap();
    assert_eq!(stopped.replica.stop().unwrap(), end as i64);
    stopped.pipeline.shutdown().unwrap();
    let writer = LogWriter::new(&WriterConfig::new(&brokers, &topic)).unwrap();
    let more = append_trading(&writer, 20, TRADING_PER_WRITER);
    let end = end + more.len() as u64;
    let restarted = start_node(dirs[2].path(), &brokers, &topic, 22, Some(&checkpoints));
    assert_eq!(restarted.recovered_from, Some(end - more.len() as u64));
    nodes.push(restarted);
    let hashes: Vec<StateHash> = nodes.iter().map(|n| caught_up(n, end)).collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    wait_until_agreed(&nodes, 3);
    stop_all(nodes);
}

#[test]
fn every_node_takes_commands_and_answers_with_what_its_replica_applied() {
    let broker = TansuBroker::start().unwrap();
    let brokers = broker.brokers();
    let topic = command_topic("it", 1);
    bourse_feed::create_topic(&brokers, &topic, 1).unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = start_nodes(&dirs, &brokers, &topic, 0, None);
    let proposers = proposers(&nodes, &brokers, &topic, Duration::from_secs(5));
    let runtime = runtime();
    // The set-up through node 0, one command at a time, each answered before the next.
    let mut answered = propose_setup(&runtime, &proposers[0]);
    // Then clients of all three nodes at once, each its own task, 50 in flight per node.
    const PER_NODE: usize = 600;
    let trading: Vec<_> = runtime.block_on(async {
        let mut nodes_tasks = Vec::new();
        for (n, proposer) in proposers.iter().enumerate() {
            let mut generator = trading(30 + n as u64);
            let commands: Vec<_> = (0..PER_NODE).map(|_| generator.next_command()).collect();
            let proposer = Arc::clone(proposer);
            nodes_tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for chunk in commands.chunks(50) {
                    let in_flight: Vec<_> = chunk
                        .iter()
                        .map(|c| {
                            let proposer = Arc::clone(&proposer);
                            let (kind, at) = (c.kind.clone(), c.timestamp_ms);
                            tokio::spawn(async move { proposer.propose_at(kind, at).await })
                        })
                        .collect();
                    for task in in_flight {
                        outcomes.push(task.await.unwrap().unwrap());
                    }
                }
                outcomes
            }));
        }
        let mut all = Vec::new();
        for task in nodes_tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    answered.extend(trading);
    // Every command answered once, at its own place in the log, and no other command there.
    let mut seqs: Vec<u64> = answered.iter().map(|o| o.seq).collect();
    seqs.sort_unstable();
    let end = seqs.len() as u64;
    assert_eq!(seqs, (1..=end).collect::<Vec<_>>());
    assert!(nodes.iter().all(|n| n.answers.waiting() == 0));
    let hashes: Vec<StateHash> = nodes.iter().map(|n| caught_up(n, end)).collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    assert!(
        answered.iter().any(|o| o.events.len() > 2),
        "some commands traded"
    );
    stop_all(nodes);
}

#[test]
fn a_replica_whose_state_departs_is_caught_at_the_next_checkpoint_and_the_others_go_on() {
    let broker = TansuBroker::start().unwrap();
    let brokers = broker.brokers();
    let topic = command_topic("it", 2);
    bourse_feed::create_topic(&brokers, &topic, 1).unwrap();
    let checkpoints = checkpoints(&brokers, 2, 200);
    // Node 42's deposits are doubled as it applies them (a test-only fail point); nodes 40
    // and 41 apply the log as written. Only node 42 is named, so no other test is touched.
    fail::cfg("cluster::tamper", "return(42)").unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = start_nodes(&dirs, &brokers, &topic, 40, Some(&checkpoints));
    let writer = LogWriter::new(&WriterConfig::new(&brokers, &topic)).unwrap();
    let end = append_setup(&writer);
    let deadline = Instant::now() + CATCH_UP;
    let why = loop {
        if let Some(why) = nodes[2].replica.failure() {
            break why;
        }
        assert!(Instant::now() < deadline, "node 42 was not caught");
        std::thread::park_timeout(Duration::from_millis(20));
    };
    fail::remove("cluster::tamper");
    assert!(
        why.contains("state diverged at offset") && why.contains("node 42"),
        "{why}"
    );
    // The two that applied the log as written agree with each other and go on.
    let end = u64::try_from(end).unwrap();
    let hashes: Vec<StateHash> = nodes[..2].iter().map(|n| caught_up(n, end)).collect();
    assert_eq!(hashes[0], hashes[1]);
    for node in &nodes[..2] {
        assert_eq!(node.replica.failure(), None);
    }
    for node in nodes {
        let _ = node.replica.stop();
        node.pipeline.shutdown().unwrap();
    }
}

#[test]
fn a_broker_killed_and_restarted_under_load_loses_nothing_acknowledged() {
    let broker_dir = tempfile::tempdir().unwrap();
    let mut broker = TansuBroker::start_persistent(broker_dir.path()).unwrap();
    let brokers = broker.brokers();
    let topic = command_topic("it", 3);
    bourse_feed::create_topic(&brokers, &topic, 1).unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = start_nodes(&dirs, &brokers, &topic, 60, None);
    let proposers = proposers(&nodes, &brokers, &topic, Duration::from_secs(2));
    let runtime = runtime();
    // The set-up through node 0.
    propose_setup(&runtime, &proposers[0]);
    let mut generator = trading(1);
    // Trading through every node, round robin, one command at a time, with the broker killed
    // and restarted in the middle: each command is either answered (then it is in the log at
    // its sequence number) or refused as unavailable (then a client would retry it).
    let mut answered = Vec::new();
    let mut refused = 0;
    for i in 0..600 {
        if i == 200 {
            broker.kill_and_restart().unwrap();
        }
        let command = generator.next_command();
        match runtime.block_on(proposers[i % 3].propose_at(command.kind, command.timestamp_ms)) {
            Ok(outcome) => answered.push(outcome),
            Err(ProposeError::Unavailable(_)) => refused += 1,
            Err(other) => panic!("command {i}: {other}"),
        }
    }
    assert!(
        answered.len() >= 300,
        "{} answered, {refused} refused",
        answered.len()
    );
    let mut seqs: Vec<u64> = answered.iter().map(|o| o.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        answered.len(),
        "two answers at one place in the log"
    );
    // Every answered command is in every replica's state at its own sequence number.
    let end = answered.iter().map(|o| o.seq).max().unwrap();
    let (_, high) = bourse_cluster::log_bounds(&brokers, &topic).unwrap();
    let end = end.max(u64::try_from(high).unwrap());
    let hashes: Vec<StateHash> = nodes.iter().map(|n| caught_up(n, end)).collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    stop_all(nodes);
}
