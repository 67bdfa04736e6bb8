//! Journal replay: a seeded stream of commands is applied to a live engine while each command's
//! encoding (`bourse_engine::codec`) is appended to a journal on disk; the journal is then
//! reopened, and its records decoded and replayed into fresh engines. The replay must end in
//! the same state hash, give the same answer and the same events for every command, and agree
//! with the live engine's hash wherever it stops. At three points k, the state after k records
//! is also written as a snapshot file, loaded back, and the rest of the journal replayed on top
//! (`bourse_store::replay`, the start-up path): the end state is again the live one.
//!
//! The default run is the 1,000,000 commands (about 3 s in the dev profile);
//! `BOURSE_REPLAY_COMMANDS=<n>` runs another size (at least 10,000).

use std::collections::BTreeMap;
use std::time::Instant;

use bourse_engine::codec::{decode, encode};
use bourse_engine::*;
use bourse_journal::{Durability, FsStorage, Journal, JournalConfig};

const DEFAULT_COMMANDS: usize = 1_000_000;
const SEED: u64 = 0x5EED_0001;
const COMMIT_EVERY: usize = 1_000;
/// The live and the replayed state hashes are also compared every this many commands (a hash
/// walks the whole state, remembered funds requests included, so not at every commit).
const HASH_EVERY: usize = 20_000;
use bourse_tests::workload::{Generator, N_ACCOUNTS};

fn n_commands() -> usize {
    match std::env::var("BOURSE_REPLAY_COMMANDS") {
        Ok(n) => n
            .replace('_', "")
            .parse()
            .expect("BOURSE_REPLAY_COMMANDS is a number of commands"),
        Err(_) => DEFAULT_COMMANDS,
    }
}

fn config() -> JournalConfig {
    JournalConfig {
        // Small enough that a run rolls over several segments.
        segment_size_bytes: 8 << 20,
        durability: Durability::None,
        ..JournalConfig::default()
    }
}

/// Replays the first `k` records of the journal into a fresh engine.
fn replay_prefix(journal: &Journal<FsStorage>, k: usize) -> Engine {
    let mut engine = Engine::new(Limits::default());
    let mut events = Vec::new();
    for record in journal.read_from(1).unwrap().take(k) {
        let record = record.unwrap();
        let command = decode(&record.payload).unwrap();
        events.clear();
        let _ = engine.apply(&command, &mut events);
    }
    engine
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn a_journaled_stream_replays_bit_for_bit() {
    let n = n_commands();
    assert!(n >= 10_000, "at least 10,000 commands");
    let checkpoints = [n / 10 + 3, n / 3, 2 * n / 3 + 1];
    let dir = tempfile::tempdir().unwrap();

    // ----- live: apply each command and journal it --------------------------------------
    let started = Instant::now();
    let mut live = Engine::new(Limits::default());
    let mut generator = Generator::new(SEED);
    let mut journal = Journal::open(FsStorage::new(dir.path()).unwrap(), config()).unwrap();
    let mut live_events: Vec<Event> = Vec::new();
    // For each command, its answer and where its events end in `live_events`.
    let mut live_outcomes: Vec<(Result<(), Reject>, usize)> = Vec::with_capacity(n);
    let mut periodic_hashes: Vec<StateHash> = Vec::new();
    let mut checkpoint_hashes: Vec<StateHash> = Vec::new();
    let mut buf = Vec::with_capacity(256);
    let mut n_rejected = 0usize;
    let mut rejects: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=n {
        let command = generator.next_command();
        buf.clear();
        encode(&command, &mut buf);
        journal.append(command.seq, &buf).unwrap();
        let start = live_events.len();
        let result = live.apply(&command, &mut live_events);
        if i <= 5 + 2 * N_ACCOUNTS as usize {
            assert_eq!(result, Ok(()), "setup command {i}: {command:?}");
        }
        if let Err(reject) = result {
            n_rejected += 1;
            *rejects.entry(format!("{reject:?}")).or_insert(0usize) += 1;
        }
        generator.observe(&live_events[start..]);
        live_outcomes.push((result, live_events.len()));
        if i.is_multiple_of(COMMIT_EVERY) {
            assert_eq!(journal.commit().unwrap(), Some(command.seq));
        }
        if i.is_multiple_of(HASH_EVERY) {
            periodic_hashes.push(live.state_hash());
        }
        if checkpoints.contains(&i) {
            checkpoint_hashes.push(live.state_hash());
        }
    }
    journal.commit().unwrap();
    drop(journal);
    let live_hash = live.state_hash();
    let live_time = started.elapsed();

    // The stream is a real workload: trades, cancels, amendments, rejections.
    let count = |f: fn(&EventKind) -> bool| live_events.iter().filter(|e| f(&e.kind)).count();
    let n_fills = count(|k| matches!(k, EventKind::Fill { .. }));
    let n_cancels = count(|k| matches!(k, EventKind::OrderCancelled { .. }));
    let n_amends = count(|k| {
        matches!(
            k,
            EventKind::OrderRested {
                priority_kept: true,
                ..
            }
        )
    });
    let n_duplicates = count(|k| {
        matches!(
            k,
            EventKind::Deposited {
                duplicate: true,
                ..
            }
        )
    });
    eprintln!(
        "{n} commands: {} events, {n_fills} fills, {n_cancels} cancels, {n_rejected} rejected, \
         {} open orders at the end; rejections: {rejects:?}",
        live_events.len(),
        live.n_open_orders(),
    );
    assert!(n_fills > n / 20, "only {n_fills} fills");
    assert!(n_cancels > n / 20, "only {n_cancels} cancels");
    assert!(n_amends > 0 && n_duplicates > 0);
    assert!(
        n_rejected > n / 100 && n_rejected < n / 3,
        "{n_rejected} rejected"
    );

    // ----- replay: reopen the journal, decode and apply every record -------------------------
    let started = Instant::now();
    let journal = Journal::open(FsStorage::new(dir.path()).unwrap(), config()).unwrap();
    assert_eq!(journal.last_seq(), Some(n as u64));
    assert!(
        journal.segment_first_seqs().len() > 1,
        "the run spans segments"
    );
    let mut replayed = Engine::new(Limits::default());
    let mut events: Vec<Event> = Vec::new();
    let mut n_records = 0usize;
    let mut events_from = 0usize;
    for record in journal.read_from(1).unwrap() {
        let record = record.unwrap();
        let command = decode(&record.payload).unwrap();
        assert_eq!(command.seq, record.seq);
        let i = n_records;
        n_records += 1;
        events.clear();
        let result = replayed.apply(&command, &mut events);
        let (live_result, events_to) = live_outcomes[i];
        assert_eq!(result, live_result, "record {}: {command:?}", record.seq);
        assert!(
            events.as_slice() == &live_events[events_from..events_to],
            "record {}: the events differ",
            record.seq
        );
        events_from = events_to;
        if n_records.is_multiple_of(HASH_EVERY) {
            assert_eq!(
                replayed.state_hash(),
                periodic_hashes[n_records / HASH_EVERY - 1],
                "after record {n_records}"
            );
        }
    }
    let replay_time = started.elapsed();
    assert_eq!(n_records, n);
    assert_eq!(events_from, live_events.len());
    assert_eq!(replayed.state_hash(), live_hash);
    assert_eq!(replayed.event_seq(), live.event_seq());

    // ----- stopping part-way: a fresh engine fed the first k records -------------------------
    // ----- then a snapshot at k, loaded from its file, plus replay of the rest -------------
    let snapshots = tempfile::tempdir().unwrap();
    for (k, hash) in checkpoints.iter().zip(&checkpoint_hashes) {
        let engine = replay_prefix(&journal, *k);
        assert_eq!(
            engine.state_hash(),
            *hash,
            "replay stopped after {k} records"
        );
        assert_eq!(
            engine.event_seq(),
            live_events[..live_outcomes[k - 1].1].len() as u64
        );

        let seq = *k as u64;
        bourse_snapshots::write_snapshot(snapshots.path(), seq, &engine.to_image(), 5).unwrap();
        drop(engine);
        let (loaded_seq, mut engine) = bourse_snapshots::load_newest(snapshots.path())
            .unwrap()
            .newest
            .unwrap();
        assert_eq!(loaded_seq, seq);
        assert_eq!(engine.state_hash(), *hash, "snapshot at {k}, loaded");
        let n_replayed = bourse_store::replay(&journal, seq + 1, &mut engine, &mut |_| {}).unwrap();
        assert_eq!(n_replayed, (n - k) as u64);
        assert_eq!(
            engine.state_hash(),
            live_hash,
            "snapshot at {k} plus replay of the rest"
        );
        assert_eq!(engine.event_seq(), live.event_seq());
    }

    eprintln!(
        "live (generate, encode, journal, apply): {live_time:.2?}, {:.0} commands/s; \
         replay (read, decode, apply, compare): {replay_time:.2?}, {:.0} commands/s",
        n as f64 / live_time.as_secs_f64(),
        n as f64 / replay_time.as_secs_f64(),
    );
}
