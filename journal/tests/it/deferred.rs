//! Deferred commits: `start_commit`, a sync on another thread, `finish_commit`.

use bourse_journal::{Durability, Error, Faults, FaultyStorage, FsStorage, Journal, SegmentFill};

use crate::{assert_records, open_fs, payload, read_all, small_config};

#[test]
fn appends_go_on_while_a_deferred_commit_syncs_and_only_its_records_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    for seq in 1..=5 {
        journal.append(seq, &payload(seq)).unwrap();
    }
    let pending = journal.start_commit().unwrap();
    assert_eq!(pending.through(), Some(5));
    assert!(pending.needs_sync());
    assert!(journal.commit_in_flight());
    assert!(matches!(journal.commit(), Err(Error::CommitInFlight)));
    assert!(matches!(journal.start_commit(), Err(Error::CommitInFlight)));
    // The sync runs on another thread while this one appends across several 1 KiB segments.
    let synced = std::thread::scope(|scope| {
        let syncer = scope.spawn(move || pending.sync());
        for seq in 6..=60 {
            journal.append(seq, &payload(seq)).unwrap();
        }
        syncer.join().unwrap()
    });
    assert!(journal.segment_first_seqs().len() > 2, "rolled meanwhile");
    assert_eq!(journal.committed_seq(), None);
    assert_eq!(journal.finish_commit(synced).unwrap(), Some(5));
    assert!(!journal.commit_in_flight());
    // The next one covers the rest.
    let pending = journal.start_commit().unwrap();
    assert_eq!(pending.through(), Some(60));
    let synced = std::thread::spawn(move || pending.sync()).join().unwrap();
    assert_eq!(journal.finish_commit(synced).unwrap(), Some(60));
    drop(journal);
    let journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    assert_records(&read_all(&journal, 1), 1, 60);
}

#[test]
fn a_deferred_commit_with_nothing_new_or_without_durability_syncs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    journal.append(1, &payload(1)).unwrap();
    journal.commit().unwrap();
    let pending = journal.start_commit().unwrap();
    assert!(!pending.needs_sync());
    assert_eq!(journal.finish_commit(pending.sync()).unwrap(), Some(1));

    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_fs(dir.path(), small_config(Durability::None)).unwrap();
    journal.append(1, &payload(1)).unwrap();
    let pending = journal.start_commit().unwrap();
    assert!(!pending.needs_sync());
    assert_eq!(journal.finish_commit(pending.sync()).unwrap(), Some(1));
}

#[test]
fn a_failed_deferred_sync_stops_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let storage = FaultyStorage::new(FsStorage::new(dir.path()).unwrap(), faults.clone());
    let mut journal = Journal::open(storage, small_config(Durability::Durable)).unwrap();
    journal.append(1, &payload(1)).unwrap();
    journal.commit().unwrap();
    journal.append(2, &payload(2)).unwrap();
    let pending = journal.start_commit().unwrap();
    faults.set_sync_fails(true);
    let synced = pending.sync();
    faults.set_sync_fails(false);
    let error = journal.finish_commit(synced).unwrap_err();
    assert!(error.to_string().contains("sync segment"), "{error}");
    assert_eq!(journal.committed_seq(), Some(1));
    assert!(matches!(
        journal.append(3, &payload(3)),
        Err(Error::Stopped { .. })
    ));
    assert!(matches!(journal.start_commit(), Err(Error::Stopped { .. })));
}

#[test]
fn zero_filled_segments_are_allocated_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::with_fill(dir.path(), SegmentFill::Zeroes).unwrap();
    let mut journal = Journal::open(storage, small_config(Durability::Durable)).unwrap();
    for seq in 1..=40 {
        journal.append(seq, &payload(seq)).unwrap();
    }
    journal.commit().unwrap();
    let segments = journal.segment_first_seqs().to_vec();
    assert!(segments.len() > 1);
    drop(journal);
    // Every block of a segment is allocated (whether ext4 marks the extents written is not
    // visible without FIEMAP; BENCHMARKS.md measures what it buys).
    let path = FsStorage::new(dir.path())
        .unwrap()
        .dir()
        .join(bourse_journal::segment_file_name(segments[0]));
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(metadata.len(), 1024);
    assert!(metadata.blocks() * 512 >= 1024);
    let journal = Journal::open(
        FsStorage::with_fill(dir.path(), SegmentFill::Zeroes).unwrap(),
        small_config(Durability::Durable),
    )
    .unwrap();
    assert_records(&read_all(&journal, 1), 1, 40);
}
