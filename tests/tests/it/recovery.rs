//! Start-up recovery (`bourse_store::Store::open`): the newest usable snapshot plus a replay of
//! the journal after it gives exactly the state before the stop or crash.
//!
//! The kill test runs a child process (this test binary, switched by an environment variable)
//! that recovers the data directory, then applies, journals and commits the seeded workload,
//! takes snapshots with retention on, and prints each durable sequence number; the parent
//! SIGKILLs it at a random moment, recovers the directory itself, and checks that nothing
//! reported durable is lost and that the recovered state hash equals the hash a fresh engine
//! reaches on the same commands. The next child continues from the recovered state, so the
//! rounds also cover crashes during recovery's aftermath, snapshot writes and retention.
//!
//! `BOURSE_RECOVERY_ROUNDS` (default 20) and `BOURSE_RECOVERY_SEED` make a longer soak:
//!
//! ```text
//! BOURSE_RECOVERY_ROUNDS=500 cargo test --release -p bourse-tests --test it -- \
//!     recovery::sigkill_recovery_restores_the_exact_state --exact --nocapture
//! ```

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};

use bourse_engine::*;
use bourse_journal::{Durability, JournalConfig};
use bourse_store::{Retention, Silent, Store, StoreConfig, StoreError};
use bourse_tests::workload::{Generator, SplitMix64};

const SEED: u64 = 0x5EED_0002;
const CHILD_DIR_VAR: &str = "BOURSE_RECOVERY_CHILD_DIR";
const ROUNDS_VAR: &str = "BOURSE_RECOVERY_ROUNDS";
const KILL_SEED_VAR: &str = "BOURSE_RECOVERY_SEED";
const ROUNDS: u64 = 20;
/// The child snapshots every this many commands.
const SNAPSHOT_EVERY: u64 = 2_000;

/// A store with small segments (so retention has whole segments to delete), two snapshots
/// kept and retention on.
fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        journal: JournalConfig {
            segment_size_bytes: 64 << 10,
            durability: Durability::Durable,
            ..JournalConfig::default()
        },
        snapshots_kept: 2,
        retention: Retention::Delete,
        ..StoreConfig::new(dir)
    }
}

/// A fresh engine and generator advanced by the same commands, as the reference.
struct Reference {
    engine: Engine,
    generator: Generator,
    events: Vec<Event>,
    seq: u64,
}

impl Reference {
    fn new() -> Self {
        Reference {
            engine: Engine::new(Limits::default()),
            generator: Generator::new(SEED),
            events: Vec::new(),
            seq: 0,
        }
    }

    /// The next command of the workload, applied to the reference engine.
    fn step(&mut self) -> Command {
        let command = self.generator.next_command();
        self.events.clear();
        let _ = self.engine.apply(&command, &mut self.events);
        self.generator.observe(&self.events);
        self.seq = command.seq;
        command
    }

    fn advance_to(&mut self, seq: u64) {
        while self.seq < seq {
            self.step();
        }
    }
}

fn env_u64(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?.replace('_', "");
    Some(match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).expect("hex number"),
        None => value.parse().expect("number"),
    })
}

/// The child's body; a no-op in a normal test run.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let config = config(Path::new(&dir));
    let mut recovered = Store::open(&config, &mut Silent).expect("recovery in the child");
    let mut reference = Reference::new();
    reference.advance_to(recovered.report.last_seq);
    assert_eq!(recovered.engine.state_hash(), reference.engine.state_hash());
    let mut rng = SplitMix64(recovered.report.last_seq ^ SEED);
    let mut events = Vec::new();
    let mut since_snapshot = 0;
    loop {
        let batch = 1 + rng.below(300);
        for _ in 0..batch {
            let command = reference.step();
            recovered.store.append(&command).unwrap();
            events.clear();
            let _ = recovered.engine.apply(&command, &mut events);
        }
        let committed = recovered.store.commit().unwrap().unwrap();
        println!("{committed}");
        since_snapshot += batch;
        if since_snapshot >= SNAPSHOT_EVERY {
            since_snapshot = 0;
            recovered
                .store
                .write_snapshot(&recovered.engine, committed)
                .unwrap();
            println!("snapshot {committed}");
        }
    }
}

#[test]
fn sigkill_recovery_restores_the_exact_state() {
    let rounds = env_u64(ROUNDS_VAR).unwrap_or(ROUNDS);
    let mut rng = SplitMix64(env_u64(KILL_SEED_VAR).unwrap_or(0xC0FF_EE01));
    let dir = tempfile::tempdir().unwrap();
    let mut reference = Reference::new();
    let mut last_durable = 0u64;
    let mut n_snapshots_seen = 0;
    let mut n_from_snapshot = 0;
    for round in 0..rounds {
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                "recovery::child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let reports = 1 + rng.below(40);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut n_reports = 0;
        while n_reports < reports {
            let line = lines.next().expect("the child stopped reporting").unwrap();
            if let Some(seq) = line.strip_prefix("snapshot ") {
                n_snapshots_seen += 1;
                assert!(seq.parse::<u64>().unwrap() <= last_durable);
            } else if let Ok(seq) = line.parse::<u64>() {
                assert!(seq > last_durable, "durable seqs only grow");
                last_durable = seq;
                n_reports += 1;
            }
        }
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();

        let recovered = Store::open(&config(dir.path()), &mut Silent).unwrap();
        let last = recovered.report.last_seq;
        assert!(
            last >= last_durable,
            "round {round}: recovered to {last}, but {last_durable} was reported durable"
        );
        if recovered.report.snapshot.is_some() {
            n_from_snapshot += 1;
        }
        assert!(recovered.report.skipped_snapshots.is_empty());
        reference.advance_to(last);
        assert_eq!(
            recovered.engine.state_hash(),
            reference.engine.state_hash(),
            "round {round}: recovered to {last} ({})",
            recovered.report
        );
        assert_eq!(recovered.engine.event_seq(), reference.engine.event_seq());
        last_durable = last;
    }
    eprintln!(
        "{rounds} kills: recovered up to seq {last_durable}; {n_snapshots_seen} snapshots \
         reported, {n_from_snapshot} recoveries started from one"
    );
    assert!(
        rounds < 10 || n_from_snapshot > 0,
        "no recovery used a snapshot"
    );
}

/// Runs `n` workload commands through `store` and `engine` with a commit every 500; the
/// reference follows along.
fn run(store: &mut Store, engine: &mut Engine, reference: &mut Reference, n: u64) {
    let mut events = Vec::new();
    for i in 0..n {
        let command = reference.step();
        store.append(&command).unwrap();
        events.clear();
        let _ = engine.apply(&command, &mut events);
        if i % 500 == 499 {
            store.commit().unwrap();
        }
    }
    store.commit().unwrap();
}

fn flip_a_bit(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn start_up_uses_the_newest_good_snapshot_and_replays_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        snapshots_kept: 3,
        ..config(dir.path())
    };
    let mut reference = Reference::new();
    let mut recovered = Store::open(&config, &mut Silent).unwrap();
    assert_eq!(recovered.report.last_seq, 0);
    assert!(recovered.report.snapshot.is_none());
    let (store, engine) = (&mut recovered.store, &mut recovered.engine);
    run(store, engine, &mut reference, 10_000);
    store.write_snapshot(engine, 10_000).unwrap();
    run(store, engine, &mut reference, 10_000);
    let newest = store.write_snapshot(engine, 20_000).unwrap();
    run(store, engine, &mut reference, 7_000);
    let hash = engine.state_hash();
    assert_eq!(hash, reference.engine.state_hash());
    drop(recovered);

    let again = Store::open(&config, &mut Silent).unwrap();
    assert_eq!(again.engine.state_hash(), hash);
    assert_eq!(again.report.snapshot.as_ref().unwrap().0, 20_000);
    assert_eq!(again.report.replayed, 7_000);
    assert_eq!(again.report.last_seq, 27_000);
    assert_eq!(again.next_seq(), 27_001);
    drop(again);

    // A damaged newest snapshot is skipped; the older one plus a longer replay gives the same.
    flip_a_bit(&newest);
    let again = Store::open(&config, &mut Silent).unwrap();
    assert_eq!(again.engine.state_hash(), hash);
    assert_eq!(again.report.snapshot.as_ref().unwrap().0, 10_000);
    assert_eq!(again.report.replayed, 17_000);
    assert_eq!(again.report.skipped_snapshots.len(), 1);
    assert_eq!(again.report.skipped_snapshots[0].path, newest);
    assert!(
        again
            .report
            .to_string()
            .contains("1 damaged snapshot(s) skipped")
    );
}

#[test]
fn retention_keeps_what_the_oldest_snapshot_needs() {
    for archive in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let archive_dir = dir.path().join("archive");
        let config = StoreConfig {
            retention: if archive {
                Retention::Archive(archive_dir.clone())
            } else {
                Retention::Delete
            },
            ..config(dir.path())
        };
        let mut reference = Reference::new();
        let mut recovered = Store::open(&config, &mut Silent).unwrap();
        let (store, engine) = (&mut recovered.store, &mut recovered.engine);
        run(store, engine, &mut reference, 20_000);
        let segments_before = store.journal().segment_first_seqs().len();
        assert!(segments_before > 5, "{segments_before} segments");
        store.write_snapshot(engine, 20_000).unwrap();
        // The only snapshot is at 20,000: every segment wholly before it goes.
        let first = store.journal().first_seq();
        assert!(first <= 20_001 && store.journal().segment_first_seqs().len() <= 2);
        run(store, engine, &mut reference, 20_000);
        let older = store.write_snapshot(engine, 40_000).unwrap();
        // Two kept: segments the snapshot at 20,000 needs stay.
        assert_eq!(store.journal().first_seq(), first);
        run(store, engine, &mut reference, 20_000);
        let newest = store.write_snapshot(engine, 60_000).unwrap();
        // The snapshot at 20,000 is gone; the journal now starts at or before 40,001.
        let first = store.journal().first_seq();
        assert!(first > 20_001 && first <= 40_001, "first seq {first}");
        run(store, engine, &mut reference, 1_000);
        let hash = engine.state_hash();
        drop(recovered);

        if archive {
            let archived = std::fs::read_dir(&archive_dir).unwrap().count();
            assert!(archived >= segments_before - 2, "{archived} archived");
        }

        // Even with the newest snapshot damaged, the older one still has its journal.
        flip_a_bit(&newest);
        let again = Store::open(&config, &mut Silent).unwrap();
        assert_eq!(again.report.snapshot.as_ref().unwrap().1, older);
        assert_eq!(again.engine.state_hash(), hash);
        assert_eq!(again.report.replayed, 21_000);
    }
}

/// With a retention floor (the history log's durable point), retention keeps the newest
/// snapshot at or before the floor and the journal from it, so that the history's catch-up
/// after a power loss can replay from there; while no snapshot is at or before the floor it
/// retires no segment.
#[test]
fn retention_keeps_what_the_historys_catch_up_needs() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let floor = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let set = |at: u64| floor.store(at, std::sync::atomic::Ordering::Release);
    let mut reference = Reference::new();
    let mut recovered = Store::open(&config, &mut Silent).unwrap();
    let (store, engine) = (&mut recovered.store, &mut recovered.engine);
    store.set_retention_floor(std::sync::Arc::clone(&floor));
    let snapshots = || -> Vec<u64> {
        bourse_snapshots::list_snapshots(&config.snapshots_dir())
            .unwrap()
            .into_iter()
            .map(|(seq, _)| seq)
            .collect()
    };
    for at in [10_000, 20_000, 30_000] {
        run(store, engine, &mut reference, 10_000);
        store.write_snapshot(engine, at).unwrap();
    }
    // The history holds nothing durably: two snapshots kept (the setting), no segment retired.
    assert_eq!(snapshots(), [20_000, 30_000]);
    assert_eq!(store.journal().first_seq(), 1);
    // Durable through 25,000: the snapshot at 20,000 is its catch-up's start, kept beyond the
    // two newest, and the journal from it.
    set(25_000);
    for at in [40_000, 50_000] {
        run(store, engine, &mut reference, 10_000);
        store.write_snapshot(engine, at).unwrap();
    }
    assert_eq!(snapshots(), [20_000, 40_000, 50_000]);
    let first = store.journal().first_seq();
    assert!(first > 1 && first <= 20_001, "first seq {first}");
    // Caught up past the newest: back to the two newest, and the journal from the older.
    set(50_000);
    run(store, engine, &mut reference, 10_000);
    store.write_snapshot(engine, 60_000).unwrap();
    assert_eq!(snapshots(), [50_000, 60_000]);
    let first = store.journal().first_seq();
    assert!(first > 40_001 && first <= 50_001, "first seq {first}");
    let hash = engine.state_hash();
    drop(recovered);
    let again = Store::open(&config, &mut Silent).unwrap();
    assert_eq!(again.engine.state_hash(), hash);
}

#[test]
fn a_journal_that_does_not_reach_back_to_the_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        snapshots_kept: 1,
        ..config(dir.path())
    };
    let mut reference = Reference::new();
    let mut recovered = Store::open(&config, &mut Silent).unwrap();
    let (store, engine) = (&mut recovered.store, &mut recovered.engine);
    run(store, engine, &mut reference, 20_000);
    let snapshot = store.write_snapshot(engine, 20_000).unwrap();
    run(store, engine, &mut reference, 100);
    drop(recovered);

    // Without the snapshot, the journal (trimmed by retention) cannot rebuild the state.
    std::fs::remove_file(&snapshot).unwrap();
    match Store::open(&config, &mut Silent) {
        Err(StoreError::JournalStartsAfterSnapshot {
            snapshot_seq: 0,
            journal_first,
        }) => assert!(journal_first > 1),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_new_journal_continues_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut reference = Reference::new();
    let mut recovered = Store::open(&config, &mut Silent).unwrap();
    let (store, engine) = (&mut recovered.store, &mut recovered.engine);
    run(store, engine, &mut reference, 3_000);
    // A snapshot may not run ahead of the committed journal.
    store.append(&reference.step()).unwrap();
    assert!(matches!(
        store.write_snapshot(engine, 3_001),
        Err(StoreError::SnapshotAheadOfJournal {
            seq: 3_001,
            committed: Some(3_000)
        })
    ));
    store.write_snapshot(engine, 3_000).unwrap();
    let hash = engine.state_hash();
    drop(recovered);

    // The operator moves the journal away: the state is the snapshot's, and the new journal
    // starts right after it.
    std::fs::remove_dir_all(dir.path().join(bourse_store::JOURNAL_DIR)).unwrap();
    let again = Store::open(&config, &mut Silent).unwrap();
    assert_eq!(again.engine.state_hash(), hash);
    assert_eq!(again.next_seq(), 3_001);
    assert_eq!(again.report.replayed, 0);
}
