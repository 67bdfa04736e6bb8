//! The pipeline (`bourse_pipeline`) under concurrent producers, in both topologies and both durable sync modes: every
//! command gets exactly one answer, sequence numbers are dense, every answer is what a
//! single-threaded replay of the journal gives, and the final state equals the replay's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bourse_engine::codec::decode;
use bourse_engine::*;
use bourse_journal::{Durability, JournalConfig};
use bourse_pipeline::{
    Handle, Outcome, Pipeline, PipelineConfig, SnapshotMode, SubmitError, SyncMode, Topology,
};
use bourse_store::{Silent, Store, StoreConfig};
use bourse_tests::workload::{Generator, N_ACCOUNTS, PRODUCTS, START_MID, SplitMix64};

const TOPOLOGIES: [Topology; 2] = [Topology::Single, Topology::Parallel];
/// Every way the pipeline can run a durable journal.
const VARIANTS: [(Topology, SyncMode); 3] = [
    (Topology::Single, SyncMode::Thread),
    (Topology::Single, SyncMode::Inline),
    (Topology::Parallel, SyncMode::Thread),
];

fn store_config(dir: &std::path::Path, durability: Durability) -> StoreConfig {
    StoreConfig {
        journal: JournalConfig {
            segment_size_bytes: 1 << 20,
            durability,
            ..JournalConfig::default()
        },
        ..StoreConfig::new(dir)
    }
}

fn start(dir: &std::path::Path, config: PipelineConfig, durability: Durability) -> Pipeline {
    let recovered = Store::open(&store_config(dir, durability), &mut Silent).unwrap();
    Pipeline::start(recovered, config).unwrap()
}

/// Submits, retrying while the ring is busy (a thread yields; it never sleeps).
fn submit(handle: &mut Handle, kind: CommandKind) -> Outcome {
    loop {
        match handle.submit_blocking(kind.clone()) {
            Err(SubmitError::Busy) => std::thread::yield_now(),
            other => return other.unwrap(),
        }
    }
}

/// The workload's setup (assets, products, 300 funded accounts), submitted in order.
fn setup(handle: &mut Handle) -> Vec<Outcome> {
    let mut generator = Generator::new(1);
    let n_setup = 5 + 4 * N_ACCOUNTS as usize;
    (0..n_setup)
        .map(|_| {
            let outcome = submit(handle, generator.next_command().kind);
            assert_eq!(outcome.result, Ok(()));
            outcome
        })
        .collect()
}

/// A random order or a cancel of one of this producer's open orders.
fn next_kind(rng: &mut SplitMix64, open: &mut Vec<(AccountId, OrderId)>) -> CommandKind {
    if !open.is_empty() && rng.chance(30) {
        let (account, order) = open.swap_remove(rng.below(open.len() as u64) as usize);
        return CommandKind::CancelOrder { account, order };
    }
    let p = rng.below(2) as usize;
    let side = if rng.chance(50) {
        Side::Buy
    } else {
        Side::Sell
    };
    let offset = rng.range(-5, 20);
    let price = match side {
        Side::Buy => START_MID[p] - offset,
        Side::Sell => START_MID[p] + offset,
    };
    CommandKind::PlaceOrder(NewOrder {
        account: AccountId::new(1 + rng.below(N_ACCOUNTS as u64) as u32),
        product: PRODUCTS[p],
        side,
        order_type: OrderType::Limit,
        price: Some(Price::from_ticks(price)),
        qty: Qty::from_lots(rng.range(1, 20)),
        time_in_force: TimeInForce::Gtc,
        self_trade: SelfTradePrevention::CancelResting,
        client_order_id: None,
    })
}

fn remember_rested(outcome: &Outcome, open: &mut Vec<(AccountId, OrderId)>) {
    for event in &outcome.events {
        if let EventKind::OrderRested { order, account, .. } = event.kind {
            open.push((account, order));
        }
    }
}

/// Replays the journal in `dir` single-threaded and checks every answer against it.
fn check_against_replay(
    dir: &std::path::Path,
    answers: &BTreeMap<u64, Outcome>,
    final_hash: StateHash,
) {
    let store = Store::open(&store_config(dir, Durability::None), &mut Silent).unwrap();
    assert_eq!(
        store.engine.state_hash(),
        final_hash,
        "recovery gives the final state"
    );
    let mut recovered = store.store;
    let journal = recovered.journal();
    let mut engine = Engine::new(Limits::default());
    let mut n = 0u64;
    let mut events = Vec::new();
    for record in journal.read_from(journal.first_seq()).unwrap() {
        let record = record.unwrap();
        let command = decode(&record.payload).unwrap();
        events.clear();
        let result = engine.apply(&command, &mut events);
        n += 1;
        let answered = answers
            .get(&command.seq)
            .unwrap_or_else(|| panic!("seq {} was journaled but never answered", command.seq));
        assert_eq!(answered.result, result, "seq {}", command.seq);
        assert_eq!(answered.events, events, "seq {}", command.seq);
        assert_eq!(answered.timestamp_ms, command.timestamp_ms);
    }
    assert_eq!(n, answers.len() as u64, "every answer was journaled");
    assert_eq!(engine.state_hash(), final_hash);
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn concurrent_threads_and_tasks_each_get_exactly_one_answer() {
    const THREADS: u64 = 3;
    const TASKS: u64 = 3;
    const PER_PRODUCER: usize = 3_000;
    for (topology, sync) in VARIANTS {
        let dir = tempfile::tempdir().unwrap();
        let config = PipelineConfig {
            topology,
            ring_size: 256,
            sync,
            ..PipelineConfig::default()
        };
        let pipeline = start(dir.path(), config, Durability::Durable);
        let mut handle = pipeline.handle();
        let mut answers: BTreeMap<u64, Outcome> = BTreeMap::new();
        for outcome in setup(&mut handle) {
            answers.insert(outcome.seq, outcome);
        }
        let busy_retries = Arc::new(AtomicU64::new(0));

        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let mut handle = pipeline.handle();
                std::thread::spawn(move || {
                    let mut rng = SplitMix64(100 + t);
                    let mut open = Vec::new();
                    (0..PER_PRODUCER)
                        .map(|_| {
                            let outcome = submit(&mut handle, next_kind(&mut rng, &mut open));
                            remember_rested(&outcome, &mut open);
                            outcome
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let mut handle = pipeline.handle();
                let busy_retries = Arc::clone(&busy_retries);
                runtime.spawn(async move {
                    let mut rng = SplitMix64(200 + t);
                    let mut open = Vec::new();
                    let mut outcomes = Vec::new();
                    while outcomes.len() < PER_PRODUCER {
                        let kind = next_kind(&mut rng, &mut open);
                        let outcome = loop {
                            match handle.submit(kind.clone()).await {
                                Err(SubmitError::Busy) => {
                                    busy_retries.fetch_add(1, Ordering::Relaxed);
                                    tokio::task::yield_now().await;
                                }
                                other => break other.unwrap(),
                            }
                        };
                        remember_rested(&outcome, &mut open);
                        outcomes.push(outcome);
                    }
                    outcomes
                })
            })
            .collect();
        let mut produced = Vec::new();
        for thread in threads {
            produced.extend(thread.join().unwrap());
        }
        for task in tasks {
            produced.extend(runtime.block_on(task).unwrap());
        }
        let n_produced = produced.len();
        assert_eq!(n_produced, (THREADS + TASKS) as usize * PER_PRODUCER);
        for outcome in produced {
            let seq = outcome.seq;
            assert!(
                answers.insert(seq, outcome).is_none(),
                "seq {seq} answered twice"
            );
        }
        // Dense: the answered seqs are exactly first..=last.
        let first = *answers.keys().next().unwrap();
        let last = *answers.keys().next_back().unwrap();
        assert_eq!(first, 1);
        assert_eq!(
            last - first + 1,
            answers.len() as u64,
            "{topology:?}: seqs have gaps"
        );
        let fills = answers
            .values()
            .flat_map(|o| &o.events)
            .filter(|e| matches!(e.kind, EventKind::Fill { .. }))
            .count();
        assert!(fills > 1_000, "{topology:?}: only {fills} fills");
        // The sync thread, when there is one, recorded its syncs (each a real syscall).
        let syncs = pipeline.sync_times();
        let stats = pipeline.stats();
        if topology == Topology::Single && sync == SyncMode::Thread {
            assert!(!syncs.is_empty() && syncs.len() <= stats.batches);
            assert!(syncs.max() > 100, "a sync of {} ns", syncs.max());
        } else {
            assert_eq!(syncs.len(), 0);
        }

        drop(handle);
        let finished = pipeline.shutdown().unwrap();
        assert_eq!(finished.last_seq, last);
        check_against_replay(dir.path(), &answers, finished.state_hash);
    }
}

#[test]
fn a_full_ring_answers_busy_and_stays_healthy() {
    for topology in TOPOLOGIES {
        let dir = tempfile::tempdir().unwrap();
        let config = PipelineConfig {
            topology,
            ring_size: bourse_pipeline::RING_SIZE_MIN,
            batch_max: 2,
            ..PipelineConfig::default()
        };
        // Durable commits take a sync each; a tight loop of submissions outruns them.
        let pipeline = start(dir.path(), config, Durability::Durable);
        let mut handle = pipeline.handle();
        let mut tickets = Vec::new();
        let mut busy = 0;
        let mut attempts = 0;
        while busy == 0 {
            attempts += 1;
            assert!(attempts < 10_000_000, "the ring never filled");
            match handle.try_submit(CommandKind::AddAsset {
                code: AssetCode::new(&format!("A{attempts}")).unwrap(),
                scale: 2,
            }) {
                Ok(ticket) => tickets.push(ticket),
                Err(SubmitError::Busy) => busy += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert!(pipeline.stats().busy >= 1);
        // Everything accepted is answered, in order, and the pipeline takes more.
        let seqs: Vec<u64> = tickets.into_iter().map(|t| t.wait().unwrap().seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        let next = submit(
            &mut handle,
            CommandKind::AddAsset {
                code: AssetCode::new("LAST").unwrap(),
                scale: 0,
            },
        );
        assert_eq!(next.seq, seqs.len() as u64 + 1);
        assert_eq!(next.result, Ok(()));
        drop(handle);
        let finished = pipeline.shutdown().unwrap();
        assert_eq!(finished.last_seq, next.seq);
    }
}

#[test]
fn shutdown_answers_what_was_accepted_and_refuses_the_rest() {
    for topology in TOPOLOGIES {
        let dir = tempfile::tempdir().unwrap();
        let config = PipelineConfig {
            topology,
            snapshot_on_shutdown: true,
            ..PipelineConfig::default()
        };
        let pipeline = start(dir.path(), config.clone(), Durability::Durable);
        let mut handle = pipeline.handle();
        let tickets: Vec<_> = (0..500)
            .map(|i| {
                handle
                    .try_submit(CommandKind::AddAsset {
                        code: AssetCode::new(&format!("A{i}")).unwrap(),
                        scale: 2,
                    })
                    .unwrap()
            })
            .collect();
        let finished = pipeline.shutdown().unwrap();
        for ticket in tickets {
            assert_eq!(ticket.wait().unwrap().result, Ok(()));
        }
        assert_eq!(finished.last_seq, 500);
        assert_eq!(
            handle.try_submit(CommandKind::Snapshot).err(),
            Some(SubmitError::ShuttingDown)
        );
        drop(handle);
        drop(finished);

        // The final snapshot is the recovery point; nothing is replayed.
        let recovered =
            Store::open(&store_config(dir.path(), Durability::Durable), &mut Silent).unwrap();
        assert_eq!(recovered.report.snapshot.as_ref().map(|s| s.0), Some(500));
        assert_eq!(recovered.report.replayed, 0);
        assert_eq!(recovered.engine.n_products(), 0);
    }
}

#[test]
fn a_snapshot_requested_through_the_ring_cuts_at_its_sequence_number() {
    for topology in TOPOLOGIES {
        for mode in [SnapshotMode::Fork, SnapshotMode::InThread] {
            let dir = tempfile::tempdir().unwrap();
            let config = PipelineConfig {
                topology,
                snapshot_mode: mode,
                ..PipelineConfig::default()
            };
            let pipeline = start(dir.path(), config, Durability::Durable);
            let mut handle = pipeline.handle();
            let mut answers: BTreeMap<u64, Outcome> = BTreeMap::new();
            for outcome in setup(&mut handle) {
                answers.insert(outcome.seq, outcome);
            }
            let mut rng = SplitMix64(7);
            let mut open = Vec::new();
            for _ in 0..500 {
                let outcome = submit(&mut handle, next_kind(&mut rng, &mut open));
                remember_rested(&outcome, &mut open);
                answers.insert(outcome.seq, outcome);
            }
            // Submitted while other commands keep coming from another thread.
            let mut other = pipeline.handle();
            let background = std::thread::spawn(move || {
                let mut rng = SplitMix64(8);
                let mut open = Vec::new();
                (0..500)
                    .map(|_| {
                        let outcome = submit(&mut other, next_kind(&mut rng, &mut open));
                        remember_rested(&outcome, &mut open);
                        outcome
                    })
                    .collect::<Vec<_>>()
            });
            let snapshot = loop {
                match handle.try_request_snapshot() {
                    Err(SubmitError::Busy) => std::thread::yield_now(),
                    other => break other.unwrap().wait().unwrap(),
                }
            };
            answers.insert(snapshot.seq, snapshot.clone());
            for outcome in background.join().unwrap() {
                answers.insert(outcome.seq, outcome);
            }
            drop(handle);
            let finished = pipeline.shutdown().unwrap();
            drop(finished.store);

            // Recovery starts from the requested snapshot and replays the rest.
            let recovered =
                Store::open(&store_config(dir.path(), Durability::Durable), &mut Silent).unwrap();
            assert_eq!(
                recovered.report.snapshot.as_ref().map(|s| s.0),
                Some(snapshot.seq),
                "{topology:?} {mode:?}"
            );
            assert_eq!(recovered.report.last_seq, finished.last_seq);
            assert_eq!(recovered.report.replayed, finished.last_seq - snapshot.seq);
            assert_eq!(recovered.engine.state_hash(), finished.state_hash);
            drop(recovered);
            check_against_replay(dir.path(), &answers, finished.state_hash);
        }
    }
}

#[test]
fn a_restarted_pipeline_continues_the_sequence() {
    for topology in TOPOLOGIES {
        let dir = tempfile::tempdir().unwrap();
        let config = PipelineConfig {
            topology,
            ..PipelineConfig::default()
        };
        let pipeline = start(dir.path(), config.clone(), Durability::Durable);
        let mut handle = pipeline.handle();
        let mut answers: BTreeMap<u64, Outcome> = BTreeMap::new();
        for outcome in setup(&mut handle) {
            answers.insert(outcome.seq, outcome);
        }
        drop(handle);
        let first_run = pipeline.shutdown().unwrap();
        drop(first_run.store);

        let pipeline = start(dir.path(), config, Durability::Durable);
        let mut handle = pipeline.handle();
        let mut rng = SplitMix64(9);
        let mut open = Vec::new();
        for _ in 0..300 {
            let outcome = submit(&mut handle, next_kind(&mut rng, &mut open));
            remember_rested(&outcome, &mut open);
            assert!(outcome.seq > first_run.last_seq);
            answers.insert(outcome.seq, outcome);
        }
        drop(handle);
        let finished = pipeline.shutdown().unwrap();
        assert_eq!(finished.last_seq, first_run.last_seq + 300);
        check_against_replay(dir.path(), &answers, finished.state_hash);
    }
}

#[test]
fn the_event_bus_carries_every_event_in_order_and_a_slow_reader_lags_without_blocking() {
    for topology in TOPOLOGIES {
        let dir = tempfile::tempdir().unwrap();
        let config = PipelineConfig {
            topology,
            bus_capacity: 16,
            ..PipelineConfig::default()
        };
        let pipeline = start(dir.path(), config, Durability::None);
        let mut handle = pipeline.handle();
        setup(&mut handle);
        // Subscribed after the setup: a subscriber sees what happens from then on.
        let mut reader = handle.subscribe();
        let mut slow = handle.subscribe();
        let mut answers: BTreeMap<u64, Outcome> = BTreeMap::new();
        let mut rng = SplitMix64(11);
        let mut open = Vec::new();
        let mut on_bus: Vec<Event> = Vec::new();
        let mut last_batch_seq = 0;
        for _ in 0..2_000 {
            let outcome = submit(&mut handle, next_kind(&mut rng, &mut open));
            remember_rested(&outcome, &mut open);
            answers.insert(outcome.seq, outcome);
            // The fast reader keeps up: it reads whatever has arrived.
            while let Ok(batch) = reader.try_recv() {
                assert!(batch.first_seq > last_batch_seq && batch.last_seq >= batch.first_seq);
                last_batch_seq = batch.last_seq;
                on_bus.extend_from_slice(&batch.events);
            }
        }
        drop(handle);
        pipeline.shutdown().unwrap();
        while let Ok(batch) = reader.try_recv() {
            on_bus.extend_from_slice(&batch.events);
        }
        // Every answered event went out on the bus, in sequence order, once. (The bus may
        // also carry the end of the setup: its last answer can arrive before its batch is
        // published, so a subscription made right after it still sees that batch.)
        let first_answered = *answers.keys().next().unwrap();
        on_bus.retain(|e| e.command_seq >= first_answered);
        let answered: Vec<Event> = answers.values().flat_map(|o| o.events.clone()).collect();
        assert_eq!(on_bus.len(), answered.len(), "{topology:?}");
        let differ = on_bus.iter().zip(&answered).position(|(a, b)| a != b);
        assert_eq!(differ, None, "{topology:?}: first difference at this index");
        assert!(on_bus.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        // The reader that never read was told how much it missed; the engine never waited.
        match slow.try_recv() {
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => assert!(n > 0),
            other => panic!("{topology:?}: expected Lagged, got {other:?}"),
        }
    }
}

fn new_account(i: u64) -> CommandKind {
    let mut token = [0u8; 32];
    token[..8].copy_from_slice(&i.to_le_bytes());
    CommandKind::create_account(CreateAccount {
        name: format!("Reader {i}"),
        proof: format!("passport:{i:06}"),
        currency_preference: AssetCode::new("USD").unwrap(),
        token_hash: TokenHash(token),
        initial_status: ProfileStatus::Verified,
    })
}

#[test]
fn queries_read_the_engine_and_never_show_what_is_not_durable() {
    const ACCOUNTS: u64 = 3_000;
    let runs = VARIANTS
        .iter()
        .map(|&(topology, sync)| (topology, sync, Durability::Durable))
        .chain([(Topology::Single, SyncMode::Thread, Durability::None)]);
    for (topology, sync, durability) in runs {
        let what = format!("{topology:?}, {sync:?}, {durability:?}");
        let dir = tempfile::tempdir().unwrap();
        let config = PipelineConfig {
            topology,
            ring_size: 1024,
            sync,
            ..PipelineConfig::default()
        };
        let pipeline = start(dir.path(), config, durability);
        // (`n_accounts` counts the fee account too, hence the `- 1`s.)
        // A reader thread queries the number of accounts over and over while accounts are
        // being created; each answer k means the k-th creation was applied, and it may only
        // arrive once that creation is committed.
        let seq_of_kth: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let handle = pipeline.handle();
            let seq_of_kth = Arc::clone(&seq_of_kth);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut last = 0;
                let mut answers = 0u64;
                while !done.load(Ordering::Acquire) {
                    let ticket = match handle.try_query(|engine| engine.n_accounts() as u64 - 1) {
                        Ok(ticket) => ticket,
                        Err(SubmitError::Busy) => {
                            std::thread::yield_now();
                            continue;
                        }
                        Err(error) => panic!("query refused: {error}"),
                    };
                    let k = ticket.wait().unwrap();
                    let committed = handle.stats().committed_seq;
                    assert!(k >= last, "went back from {last} to {k} accounts");
                    last = k;
                    answers += 1;
                    if k > 0 {
                        // The submitter records seqs in creation order; the k-th may not be
                        // recorded yet (its answer comes after this one), so only check the
                        // ones that are.
                        let seqs = seq_of_kth.lock().unwrap();
                        if let Some(&seq) = seqs.get(k as usize - 1) {
                            assert!(
                                committed >= seq,
                                "saw {k} accounts (seq {seq}) with only {committed} committed"
                            );
                        }
                    }
                }
                (last, answers)
            })
        };
        let mut handle = pipeline.handle();
        for i in 0..ACCOUNTS {
            let outcome = submit(&mut handle, new_account(i));
            assert_eq!(outcome.result, Ok(()), "{what}");
            seq_of_kth.lock().unwrap().push(outcome.seq);
            // Read your writes: a query sent after an answer sees that command.
            if i % 500 == 0 {
                let n = handle
                    .try_query(|engine| engine.n_accounts() as u64 - 1)
                    .unwrap()
                    .wait()
                    .unwrap();
                assert!(n > i, "{what}: created {} accounts, a query saw {n}", i + 1);
            }
        }
        done.store(true, Ordering::Release);
        let (last, answers) = reader.join().unwrap();
        assert!(
            answers > 0 && last <= ACCOUNTS,
            "{what}: {answers} answers, {last}"
        );
        let n = handle
            .try_query(|engine| engine.n_accounts() as u64 - 1)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(n, ACCOUNTS, "{what}");

        drop(handle);
        let finished = pipeline.shutdown().unwrap();
        assert_eq!(finished.engine.n_accounts() as u64 - 1, ACCOUNTS, "{what}");
    }
}

#[test]
fn a_query_after_shutdown_began_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = start(dir.path(), PipelineConfig::default(), Durability::Durable);
    let handle = pipeline.handle();
    let ticket = handle.try_query(|engine| engine.n_accounts()).unwrap();
    assert_eq!(ticket.wait().unwrap(), 1, "the fee account");
    let keep = handle.clone();
    drop(handle);
    let finished = pipeline.shutdown().unwrap();
    assert_eq!(finished.last_seq, 0);
    assert!(matches!(
        keep.try_query(|engine| engine.n_accounts()),
        Err(SubmitError::ShuttingDown | SubmitError::Stopped(_))
    ));
}
