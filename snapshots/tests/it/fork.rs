//! Snapshots written by a forked child: the state at the fork, whatever the parent does next;
//! errors come back as errors; `try_wait` never blocks.

use std::time::Instant;

use bourse_snapshots::{
    SnapshotError, fork_snapshot, load_newest, snapshot_file_name, write_snapshot,
};

use crate::stream::engine_after;

#[test]
fn forked_snapshot_has_the_state_at_the_fork() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, mut stream) = engine_after(11, 3_000);
    let seq = 3_000;
    let at_fork = engine.state_hash();
    let mut child = fork_snapshot(&engine, seq, dir.path(), 2).unwrap();
    assert_eq!(child.seq, seq);
    // The parent goes on changing its engine while the child writes.
    for _ in 0..2_000 {
        let _ = stream.step(&mut engine);
    }
    assert_ne!(engine.state_hash(), at_fork, "the commands changed nothing");
    // Polls until the child is done (the child's own work bounds the loop).
    let outcome = loop {
        if let Some(outcome) = child.try_wait().unwrap() {
            break outcome;
        }
        std::thread::yield_now();
    };
    assert_eq!(outcome.seq, seq);
    assert_eq!(outcome.path, dir.path().join(snapshot_file_name(seq)));
    assert!(child.try_wait().is_err(), "a reaped child answers once");

    let recovered = load_newest(dir.path()).unwrap();
    let (loaded_seq, loaded) = recovered.newest.unwrap();
    assert_eq!(loaded_seq, seq);
    assert_eq!(loaded.state_hash(), at_fork);
}

#[test]
fn forked_snapshots_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, mut stream) = engine_after(12, 500);
    let mut hashes = Vec::new();
    for seq in 1..=4u64 {
        let _ = stream.step(&mut engine);
        hashes.push(engine.state_hash());
        let outcome = fork_snapshot(&engine, seq * 10, dir.path(), 2)
            .unwrap()
            .wait()
            .unwrap();
        assert!(outcome.path.exists());
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let (seq, loaded) = load_newest(dir.path()).unwrap().newest.unwrap();
    assert_eq!(seq, 40);
    assert_eq!(loaded.state_hash(), hashes[3]);
}

#[test]
fn a_child_error_comes_back_as_an_error() {
    let (engine, _) = engine_after(13, 200);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no such directory");
    let error = fork_snapshot(&engine, 5, &missing, 2)
        .unwrap()
        .wait()
        .unwrap_err();
    match &error {
        SnapshotError::Child(text) => assert!(text.contains("no such directory"), "{text}"),
        other => panic!("unexpected error {other:?}"),
    }
    // The same through try_wait.
    let mut child = fork_snapshot(&engine, 5, &missing, 2).unwrap();
    let error = loop {
        match child.try_wait() {
            Ok(None) => std::thread::yield_now(),
            Ok(Some(outcome)) => panic!("wrote {outcome:?}"),
            Err(error) => break error,
        }
    };
    assert!(matches!(error, SnapshotError::Child(_)), "{error:?}");
    assert!(matches!(
        fork_snapshot(&engine, 5, dir.path(), 0),
        Err(SnapshotError::KeepNone)
    ));
}

#[test]
fn try_wait_does_not_block() {
    // A big enough state that the child is still writing when the parent first asks.
    let (engine, _) = engine_after(14, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let mut child = fork_snapshot(&engine, 9, dir.path(), 2).unwrap();
    let t = Instant::now();
    let first = child.try_wait();
    let first_call = t.elapsed();
    // Not blocking: one non-blocking waitpid (the bound is loose for a loaded machine).
    assert!(first_call.as_secs() < 1, "try_wait took {first_call:?}");
    match first {
        Ok(None) => {
            let outcome = child.wait().unwrap();
            assert_eq!(outcome.seq, 9);
        }
        Ok(Some(outcome)) => assert_eq!(outcome.seq, 9),
        Err(error) => panic!("{error}"),
    }
    // The file equals an in-thread snapshot of the same state.
    let other = tempfile::tempdir().unwrap();
    let path = write_snapshot(other.path(), 9, &engine.to_image(), 1).unwrap();
    assert_eq!(
        std::fs::read(path).unwrap(),
        std::fs::read(dir.path().join(snapshot_file_name(9))).unwrap()
    );
}

#[test]
fn dropping_an_unreaped_child_kills_and_reaps_it() {
    let (engine, _) = engine_after(15, 5_000);
    let dir = tempfile::tempdir().unwrap();
    let child = fork_snapshot(&engine, 3, dir.path(), 2).unwrap();
    let pid = child.pid;
    drop(child);
    // Reaped: no such child any more.
    // SAFETY: waitpid with a null status pointer writes no memory, and WNOHANG makes it only
    // ask the kernel about `pid`; it has no precondition on this process's state.
    let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    assert_eq!(r, -1);
}
