//! Kill test: a child process (this test binary, switched by an environment variable)
//! appends and commits, printing each durable sequence number; the parent kills it with
//! SIGKILL at a random point and checks that every reported record survived.
//!
//! The child alternates plain `commit`s with deferred ones (`start_commit`, the sync on
//! another thread while the next batch is appended, then `finish_commit`), and half the
//! children write zero-filled segments ([`SegmentFill::Zeroes`]).
//!
//! A normal run does 50 rounds (a few seconds). For a soak, set `BOURSE_KILL_ROUNDS` (and
//! optionally `BOURSE_KILL_SEED`, default `0xC0FFEE00`); the time limit then grows with the
//! rounds (1 s per round) and progress goes to stderr:
//!
//! ```text
//! BOURSE_KILL_ROUNDS=1000 cargo test --release -p bourse-journal --test it -- \
//!     kill::sigkill_never_loses_a_reported_durable_record --exact --nocapture
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bourse_journal::{Durability, FsStorage, Journal, JournalConfig, SegmentFill};

use crate::{Rng, assert_records, open_fs, payload, read_all};

const CHILD_DIR_VAR: &str = "BOURSE_JOURNAL_KILL_CHILD_DIR";
/// Set (to anything) when the child should zero-fill its segments.
const CHILD_ZEROES_VAR: &str = "BOURSE_JOURNAL_KILL_CHILD_ZEROES";
/// Overrides [`ROUNDS`] for a soak.
const ROUNDS_VAR: &str = "BOURSE_KILL_ROUNDS";
/// Overrides [`SEED`] for a soak.
const SEED_VAR: &str = "BOURSE_KILL_SEED";
const ROUNDS: u64 = 50;
const SEED: u64 = 0xC0FF_EE00;
const COMMITS_PER_CHILD_MAX: u64 = 2_000;
/// The whole test stops starting rounds after this (it stays well under it on 2 cores).
const TEST_TIME_MAX: Duration = Duration::from_secs(20);

/// A number from the environment (decimal, or hex with `0x`), if the variable is set.
fn env_u64(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    let value = value.trim().replace('_', "");
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{var}={value}: {e}")))
}

fn config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 4096,
        durability: Durability::Durable,
        ..JournalConfig::default()
    }
}

/// The child's body; a no-op in a normal test run (the variable is not set).
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let fill = match std::env::var_os(CHILD_ZEROES_VAR) {
        Some(_) => SegmentFill::Zeroes,
        None => SegmentFill::Allocate,
    };
    let storage = FsStorage::with_fill(std::path::Path::new(&dir), fill).unwrap();
    let mut journal = Journal::open(storage, config()).unwrap();
    let mut stdout = std::io::stdout().lock();
    let mut seq = journal.next_seq();
    for batch in 0..COMMITS_PER_CHILD_MAX {
        for _ in 0..=batch % 5 {
            journal.append(seq, &payload(seq)).unwrap();
            seq += 1;
        }
        let durable = if batch % 2 == 0 {
            journal.commit().unwrap().unwrap()
        } else {
            // Deferred: the sync runs on another thread while this one appends what the next
            // commit covers (enough records to roll a 4 KiB segment now and then).
            let pending = journal.start_commit().unwrap();
            let synced = std::thread::scope(|scope| {
                let syncer = scope.spawn(move || pending.sync());
                for _ in 0..(batch % 7) * 10 {
                    journal.append(seq, &payload(seq)).unwrap();
                    seq += 1;
                }
                syncer.join().unwrap()
            });
            journal.finish_commit(synced).unwrap().unwrap()
        };
        writeln!(stdout, "durable {durable}").unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
fn sigkill_never_loses_a_reported_durable_record() {
    let started = Instant::now();
    let exe = std::env::current_exe().unwrap();
    let soak_rounds = env_u64(ROUNDS_VAR);
    let rounds_wanted = soak_rounds.unwrap_or(ROUNDS);
    let time_max = match soak_rounds {
        Some(n) => TEST_TIME_MAX.max(Duration::from_secs(n)),
        None => TEST_TIME_MAX,
    };
    let seed = env_u64(SEED_VAR).unwrap_or(SEED);
    let mut rng = Rng::new(seed);
    let mut rounds = 0;
    let mut children = 0;
    while rounds < rounds_wanted && started.elapsed() < time_max {
        let dir = tempfile::tempdir().unwrap();
        // Half the rounds start from a journal an earlier child left, to cover reopen.
        let n_children = 1 + rng.below(2);
        let mut durable_max = 0;
        for _ in 0..n_children {
            let kill_after = 1 + rng.below(30);
            let zeroes = rng.below(2) == 0;
            let reported = run_child_and_kill(&exe, dir.path(), kill_after, zeroes);
            assert!(reported >= durable_max, "durable went backwards");
            durable_max = reported;
            let journal = open_fs(dir.path(), config()).unwrap();
            assert!(journal.recovery_report().repair.is_none());
            let records = read_all(&journal, 1);
            let last = records.last().map_or(0, |record| record.seq);
            assert!(
                last >= durable_max,
                "reported {durable_max} durable, found up to {last}"
            );
            assert_records(&records, 1, last);
            durable_max = last;
            children += 1;
        }
        rounds += 1;
        if soak_rounds.is_some() && (rounds % 50 == 0 || rounds == rounds_wanted) {
            eprintln!(
                "kill soak (seed {seed:#x}): {rounds}/{rounds_wanted} rounds, {children} children \
                 killed, every reported durable record found, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    assert_eq!(
        rounds, rounds_wanted,
        "only {rounds} rounds in {time_max:?}"
    );
}

/// Runs a child on `dir`, kills it after `kill_after` reported commits; returns the highest
/// sequence number it reported durable.
fn run_child_and_kill(
    exe: &std::path::Path,
    dir: &std::path::Path,
    kill_after: u64,
    zeroes: bool,
) -> u64 {
    let mut command = Command::new(exe);
    if zeroes {
        command.env(CHILD_ZEROES_VAR, "1");
    }
    let mut child = command
        .args([
            "kill::child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reported = 0;
    let mut n_reported = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(seq) = line.strip_prefix("durable ") else {
            continue;
        };
        reported = seq.parse().unwrap();
        n_reported += 1;
        if n_reported == kill_after {
            break;
        }
    }
    assert_eq!(n_reported, kill_after, "the child stopped early");
    child.kill().unwrap();
    child.wait().unwrap();
    reported
}
