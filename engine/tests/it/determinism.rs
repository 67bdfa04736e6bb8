//! Determinism: the same commands give the same states and the same events, whatever engine
//! instance runs them and wherever a run is cloned; different streams give different states.
//!
//! The streams are the property tests' random operations (seeded), recorded as commands by a
//! first engine (with all its invariant checks) and then replayed on fresh engines.

use bourse_engine::*;

use crate::properties::{Harness, seeded_ops};

/// A recorded stream: every command (setup included) and what the recording engine answered.
struct Recording {
    commands: Vec<Command>,
    outcomes: Vec<(Result<(), Reject>, Vec<Event>)>,
    final_hash: StateHash,
}

fn record(seed: u64, n_ops: usize) -> Recording {
    let mut h = Harness::new();
    for op in seeded_ops(seed, n_ops) {
        h.step(&op);
    }
    Recording {
        commands: h.log,
        outcomes: h.outcomes,
        final_hash: h.engine.state_hash(),
    }
}

fn apply(engine: &mut Engine, command: &Command) -> (Result<(), Reject>, Vec<Event>) {
    let mut events = Vec::new();
    let result = engine.apply(command, &mut events);
    (result, events)
}

#[test]
fn two_engines_fed_the_same_stream_agree_after_every_command() {
    for seed in [11u64, 12, 13, 14] {
        let rec = record(seed, 3_000);
        assert!(rec.commands.len() > 2_800, "seed {seed}: short stream");
        let mut a = Engine::new(Limits::default());
        let mut b = Engine::new(Limits::default());
        let mut n_events = 0u64;
        for (i, command) in rec.commands.iter().enumerate() {
            let out_a = apply(&mut a, command);
            let out_b = apply(&mut b, command);
            assert_eq!(
                out_a, out_b,
                "seed {seed}: command {i} ({command:?}) answered differently"
            );
            assert_eq!(
                out_a, rec.outcomes[i],
                "seed {seed}: command {i} differs from the recording"
            );
            assert_eq!(
                a.state_hash(),
                b.state_hash(),
                "seed {seed}: hashes differ after command {i}"
            );
            for event in &out_a.1 {
                n_events += 1;
                assert_eq!(
                    event.seq, n_events,
                    "seed {seed}: event seqs are consecutive"
                );
            }
            assert_eq!((a.event_seq(), b.event_seq()), (n_events, n_events));
        }
        assert_eq!(a.state_hash(), rec.final_hash);
        assert!(n_events > 1_500, "seed {seed}: only {n_events} events");
    }
}

#[test]
fn a_clone_taken_mid_stream_continues_exactly_like_the_original() {
    let rec = record(21, 3_000);
    let n = rec.commands.len();
    let mut engine = Engine::new(Limits::default());
    let mut clones: Vec<(usize, Engine)> = Vec::new();
    for (i, command) in rec.commands.iter().enumerate() {
        if i % 600 == 0 || i == n / 2 {
            let clone = engine.clone();
            assert_eq!(clone.state_hash(), engine.state_hash());
            assert_eq!(clone.event_seq(), engine.event_seq());
            clones.push((i, clone));
        }
        assert_eq!(apply(&mut engine, command), rec.outcomes[i]);
    }
    let final_hash = engine.state_hash();
    assert_eq!(final_hash, rec.final_hash);
    for (start, mut clone) in clones {
        for (i, command) in rec.commands.iter().enumerate().skip(start) {
            assert_eq!(
                apply(&mut clone, command),
                rec.outcomes[i],
                "clone from {start}: command {i}"
            );
        }
        assert_eq!(clone.state_hash(), final_hash, "clone from {start}");
        assert_eq!(clone.event_seq(), engine.event_seq(), "clone from {start}");
    }
}

#[test]
fn different_streams_give_different_states() {
    let hashes: Vec<StateHash> = (31..39u64)
        .map(|seed| record(seed, 800).final_hash)
        .collect();
    for i in 0..hashes.len() {
        for j in i + 1..hashes.len() {
            assert_ne!(
                hashes[i],
                hashes[j],
                "seeds {} and {} ended with the same hash",
                31 + i,
                31 + j
            );
        }
    }
    // One more cent in the first deposit: the state differs from there on.
    let rec = record(41, 800);
    let mut commands = rec.commands.clone();
    let i = commands
        .iter()
        .position(|c| matches!(c.kind, CommandKind::Deposit(_)))
        .expect("a deposit");
    if let CommandKind::Deposit(r) = &mut commands[i].kind {
        r.amount = Amount::from_minor(r.amount.minor() + 1);
    }
    let mut original = Engine::new(Limits::default());
    let mut changed = Engine::new(Limits::default());
    for (k, command) in commands.iter().enumerate() {
        assert_eq!(apply(&mut original, &rec.commands[k]), rec.outcomes[k]);
        let _ = apply(&mut changed, command);
        if k == i {
            assert_ne!(
                original.state_hash(),
                changed.state_hash(),
                "a different deposit, the same hash"
            );
        }
    }
    assert_ne!(
        original.state_hash(),
        changed.state_hash(),
        "a different stream, the same end hash"
    );
}

/// Every accepted command other than a repeated funds request or order changes the state hash;
/// repeats and rejections do not. (A field left out of the hash would show up here.)
#[test]
fn the_hash_moves_exactly_when_the_state_does() {
    let rec = record(51, 3_000);
    let mut engine = Engine::new(Limits::default());
    let mut n_moved = 0;
    for (i, command) in rec.commands.iter().enumerate() {
        let before = engine.state_hash();
        let (result, events) = apply(&mut engine, command);
        let after = engine.state_hash();
        let repeat = matches!(
            events.as_slice(),
            [Event {
                kind: EventKind::Deposited {
                    duplicate: true,
                    ..
                } | EventKind::Withdrawn {
                    duplicate: true,
                    ..
                } | EventKind::OrderDuplicate { .. },
                ..
            }]
        );
        if result.is_ok() && !repeat {
            assert_ne!(
                before, after,
                "command {i} ({command:?}) was applied but the hash did not move"
            );
            n_moved += 1;
        } else {
            assert_eq!(
                before, after,
                "command {i} ({command:?}) changed nothing but moved the hash"
            );
        }
    }
    assert!(n_moved > 1_000);
}

/// The hash is of the state, not of the path: changes that are undone give back the same hash,
/// and a clone hashes like its original.
#[test]
fn equal_states_hash_equal_whatever_the_path() {
    let rec = record(61, 1_500);
    let mut engine = Engine::new(Limits::default());
    for (i, command) in rec.commands.iter().enumerate() {
        assert_eq!(apply(&mut engine, command), rec.outcomes[i]);
    }
    let start = engine.state_hash();
    let mut seq = rec.commands.last().unwrap().seq;
    let ts = rec.commands.last().unwrap().timestamp_ms;
    let mut run = |engine: &mut Engine, kind: CommandKind| {
        seq += 1;
        let (result, _) = apply(
            engine,
            &Command {
                seq,
                timestamp_ms: ts,
                kind,
            },
        );
        result
    };
    let product = ProductId::new(0);
    let account = AccountId::new(1);
    let status = engine.product_info(product).unwrap().status();
    let other = if status == ProductStatus::Trading {
        ProductStatus::Halted
    } else {
        ProductStatus::Trading
    };
    run(
        &mut engine,
        CommandKind::SetProductStatus {
            product,
            status: other,
        },
    )
    .unwrap();
    assert_ne!(engine.state_hash(), start);
    run(
        &mut engine,
        CommandKind::SetProductStatus { product, status },
    )
    .unwrap();
    assert_eq!(engine.state_hash(), start, "halt and resume");
    let marked = engine.bookmarks(account).contains(&product);
    let (there, back) = if marked {
        (
            CommandKind::RemoveBookmark { account, product },
            CommandKind::AddBookmark { account, product },
        )
    } else {
        (
            CommandKind::AddBookmark { account, product },
            CommandKind::RemoveBookmark { account, product },
        )
    };
    run(&mut engine, there).unwrap();
    assert_ne!(engine.state_hash(), start);
    run(&mut engine, back).unwrap();
    assert_eq!(engine.state_hash(), start, "bookmark and unbookmark");
    assert_eq!(engine.clone().state_hash(), start);
}
