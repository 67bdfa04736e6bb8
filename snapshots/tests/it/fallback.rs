//! A damaged newest snapshot is skipped: loading falls back to the one before, and replaying
//! the commands since reaches the same state as the engine that never stopped.

use std::fs;
use std::path::Path;

use bourse_engine::*;
use bourse_snapshots::{SnapshotError, load_newest, snapshot_file_name, write_snapshot};

use crate::stream::engine_after;

/// Runs 600 commands, snapshotting after 200 and 400; returns the commands, the live engine
/// at the end and the two snapshot seqs.
fn run_with_snapshots(dir: &Path, seed: u64) -> (Vec<Command>, Engine, u64, u64) {
    let (mut engine, mut stream) = engine_after(seed, 1_000);
    let mut commands = Vec::new();
    let mut seqs = Vec::new();
    for i in 1..=600 {
        let (command, _, _) = stream.step(&mut engine);
        commands.push(command.clone());
        if i == 200 || i == 400 {
            write_snapshot(dir, command.seq, &engine.to_image(), 5).unwrap();
            seqs.push(command.seq);
        }
    }
    (commands, engine, seqs[0], seqs[1])
}

fn recover_and_replay(dir: &Path, commands: &[Command], live: &Engine, expect_seq: u64) {
    let recovered = load_newest(dir).unwrap();
    let (seq, mut engine) = recovered.newest.expect("an older snapshot");
    assert_eq!(seq, expect_seq);
    assert_eq!(recovered.skipped.len(), 1, "{:?}", recovered.skipped);
    for command in commands.iter().filter(|c| c.seq > seq) {
        let _ = engine.apply(command, &mut Vec::new());
    }
    assert_eq!(engine.state_hash(), live.state_hash());
    assert_eq!(engine.event_seq(), live.event_seq());
}

#[test]
fn a_truncated_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let (commands, live, first, second) = run_with_snapshots(dir.path(), 7);
    let newest = dir.path().join(snapshot_file_name(second));
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    recover_and_replay(dir.path(), &commands, &live, first);
}

#[test]
fn a_bit_flipped_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let (commands, live, first, second) = run_with_snapshots(dir.path(), 8);
    let newest = dir.path().join(snapshot_file_name(second));
    let mut bytes = fs::read(&newest).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x10;
    fs::write(&newest, &bytes).unwrap();
    let recovered = load_newest(dir.path()).unwrap();
    assert!(matches!(
        recovered.skipped[0].error,
        SnapshotError::PayloadChecksum
    ));
    recover_and_replay(dir.path(), &commands, &live, first);
}

#[test]
fn the_newest_good_snapshot_loads_and_old_ones_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Limits::default());
    for seq in 1..=6 {
        write_snapshot(dir.path(), seq * 10, &engine.to_image(), 3).unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let expected: Vec<String> = [40, 50, 60].map(snapshot_file_name).to_vec();
    assert_eq!(names, expected);
    let recovered = load_newest(dir.path()).unwrap();
    assert_eq!(recovered.newest.as_ref().map(|(s, _)| *s), Some(60));
    assert!(recovered.skipped.is_empty());
    assert!(matches!(
        write_snapshot(dir.path(), 70, &engine.to_image(), 0),
        Err(SnapshotError::KeepNone)
    ));
    // A file renamed to another seq is refused by its header.
    fs::rename(
        dir.path().join(snapshot_file_name(60)),
        dir.path().join(snapshot_file_name(99)),
    )
    .unwrap();
    let recovered = load_newest(dir.path()).unwrap();
    assert_eq!(recovered.newest.map(|(s, _)| s), Some(50));
    assert!(matches!(
        recovered.skipped[0].error,
        SnapshotError::SeqMismatch {
            name: 99,
            header: 60
        }
    ));
}

#[test]
fn an_empty_directory_has_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let recovered = load_newest(dir.path()).unwrap();
    assert!(recovered.newest.is_none() && recovered.skipped.is_empty());
}
