use bourse_journal::{
    Durability, Error, Faults, FaultyStorage, FsStorage, Journal, JournalConfig, PrepareNext,
    SPARE_FILE_NAME, Storage,
};

use crate::{append_range, assert_records, open_fs, payload, read_all, small_config};

fn faulty(dir: &std::path::Path) -> (FaultyStorage<FsStorage>, Faults) {
    let faults = Faults::default();
    (
        FaultyStorage::new(FsStorage::new(dir).unwrap(), faults.clone()),
        faults,
    )
}

fn os_error(error: &Error) -> Option<i32> {
    match error {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// Without a spare (no `prepare_next_segment` call in `Manual` mode), the roll creates the
/// segment itself.
fn manual_config() -> JournalConfig {
    JournalConfig {
        prepare_next: PrepareNext::Manual,
        ..small_config(Durability::Durable)
    }
}

#[test]
fn enospc_on_preallocation_is_a_clear_error_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = faulty(dir.path());
    faults.set_preallocate_fails(true);
    let error = Journal::open(storage.clone(), small_config(Durability::Durable)).unwrap_err();
    assert_eq!(os_error(&error), Some(libc::ENOSPC), "{error}");
    assert!(storage.list().unwrap().is_empty());

    faults.set_preallocate_fails(false);
    let mut journal = Journal::open(storage.clone(), manual_config()).unwrap();
    let mut seq = 1;
    // Fill the first segment, then fail the roll.
    while journal.segment_first_seqs().len() == 1 {
        journal.append(seq, &payload(seq)).unwrap();
        seq += 1;
    }
    let roll_seq = seq - 1;
    assert_eq!(journal.segment_first_seqs(), &[1, roll_seq]);
    append_range(&mut journal, seq, seq + 20, 5);
    seq += 21;
    faults.set_preallocate_fails(true);
    let n_files = storage.list().unwrap().len();
    let error = loop {
        match journal.append(seq, &payload(seq)) {
            Ok(_) => seq += 1,
            Err(error) => break error,
        }
    };
    assert_eq!(os_error(&error), Some(libc::ENOSPC), "{error}");
    assert!(matches!(
        &error,
        Error::Io {
            action: "create segment",
            ..
        }
    ));
    assert_eq!(
        storage.list().unwrap().len(),
        n_files,
        "nothing left behind"
    );
    assert_eq!(
        journal.next_seq(),
        seq,
        "the refused record was not appended"
    );
    // What was appended before is still committed; space comes back, the writer goes on.
    assert_eq!(journal.commit().unwrap(), Some(seq - 1));
    faults.set_preallocate_fails(false);
    append_range(&mut journal, seq, seq + 10, 3);
    drop(journal);
    let journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    assert_records(&read_all(&journal, 1), 1, seq + 10);
}

#[test]
fn failed_sync_stops_the_writer_and_never_reports_the_batch_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = faulty(dir.path());
    let mut journal = Journal::open(storage, small_config(Durability::Durable)).unwrap();
    append_range(&mut journal, 1, 5, 10);
    journal.append(6, &payload(6)).unwrap();
    faults.set_sync_fails(true);
    let error = journal.commit().unwrap_err();
    assert_eq!(os_error(&error), Some(libc::EIO), "{error}");
    assert_eq!(journal.committed_seq(), Some(5));

    // No retry may acknowledge 6, even once syncs work again.
    faults.set_sync_fails(false);
    assert!(matches!(journal.commit(), Err(Error::Stopped { .. })));
    assert!(matches!(
        journal.append(7, b"x"),
        Err(Error::Stopped { .. })
    ));
    assert!(matches!(
        journal.remove_segments_before(1),
        Err(Error::Stopped { .. })
    ));
    assert_eq!(journal.committed_seq(), Some(5));
    drop(journal);

    // Reopening is the way back; what was committed is there.
    let journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    let records = read_all(&journal, 1);
    assert!(records.len() >= 5);
    assert_records(&records[..5], 1, 5);
}

#[test]
fn failed_sync_while_rolling_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = faulty(dir.path());
    let mut journal = Journal::open(storage, small_config(Durability::Durable)).unwrap();
    append_range(&mut journal, 1, 3, 10);
    faults.set_sync_fails(true);
    let mut seq = 4;
    let error = loop {
        match journal.append(seq, &payload(seq)) {
            Ok(_) => seq += 1,
            Err(error) => break error,
        }
    };
    assert_eq!(os_error(&error), Some(libc::EIO), "{error}");
    assert_eq!(
        journal.segment_first_seqs(),
        &[1],
        "no segment after a failed sync"
    );
    faults.set_sync_fails(false);
    assert!(matches!(journal.commit(), Err(Error::Stopped { .. })));
    assert_eq!(journal.committed_seq(), Some(3));
}

/// Appends from `journal.next_seq()` until the journal has `n_segments` segments; returns the
/// next sequence number.
fn append_until_segments<S: Storage>(journal: &mut Journal<S>, n_segments: usize) -> u64 {
    let mut seq = journal.next_seq();
    while journal.segment_first_seqs().len() < n_segments {
        journal.append(seq, &payload(seq)).unwrap();
        seq += 1;
        if seq.is_multiple_of(4) {
            journal.commit().unwrap();
        }
    }
    seq
}

#[test]
fn a_spare_left_by_a_crash_is_removed_on_open_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = open_fs(dir.path(), manual_config()).unwrap();
    append_range(&mut journal, 1, 10, 3);
    journal.prepare_next_segment().unwrap();
    let spare_path = dir.path().join(SPARE_FILE_NAME);
    assert!(spare_path.exists());
    // A crash between writing the spare's header and renaming it: the spare even looks like
    // the next segment, with a record in it that was never acknowledged.
    let mut bytes = std::fs::read(&spare_path).unwrap();
    let header = bourse_journal::format::SegmentHeader {
        first_seq: 11,
        segment_size: bytes.len() as u64,
    };
    bourse_journal::format::encode_header(header, &mut bytes);
    let record_len = bourse_journal::format::record_len(payload(11).len());
    let header_len = bourse_journal::format::HEADER_LEN;
    bourse_journal::format::encode_record(
        11,
        &payload(11),
        &mut bytes[header_len..header_len + record_len],
    );
    std::fs::write(&spare_path, &bytes).unwrap();
    std::mem::forget(journal); // the crash: no clean-up

    let mut journal = open_fs(dir.path(), manual_config()).unwrap();
    assert!(journal.recovery_report().spare_removed);
    assert!(!spare_path.exists());
    assert_eq!(journal.next_seq(), 11, "nothing taken from the spare");
    assert_eq!(journal.committed_seq(), Some(10));
    // Goes on across rolls, with and without a spare.
    journal.prepare_next_segment().unwrap();
    let seq = append_until_segments(&mut journal, 4);
    append_range(&mut journal, seq, seq + 5, 2);
    drop(journal);
    assert!(!spare_path.exists(), "a clean close deletes the spare");
    let journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    assert!(!journal.recovery_report().spare_removed);
    assert_records(&read_all(&journal, 1), 1, seq + 5);
}

#[test]
fn enospc_while_preparing_is_reported_at_the_roll_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = faulty(dir.path());
    let mut journal = Journal::open(storage.clone(), manual_config()).unwrap();
    append_range(&mut journal, 1, 5, 2);

    // Called directly, preparation reports the error and changes nothing.
    faults.set_preallocate_fails(true);
    let error = journal.prepare_next_segment().unwrap_err();
    assert_eq!(os_error(&error), Some(libc::ENOSPC), "{error}");
    assert!(matches!(
        &error,
        Error::Io {
            action: "prepare next segment",
            ..
        }
    ));
    append_range(&mut journal, 6, 8, 2);
    drop(journal);

    // In the background (opening an existing journal preallocates nothing, so only the
    // background preparation meets the full disk): the error comes at the roll.
    let mut journal = Journal::open(storage.clone(), small_config(Durability::Durable)).unwrap();
    assert_eq!(journal.committed_seq(), Some(8));
    let n_files = storage.list().unwrap().len();
    let mut seq = 9;
    let error = loop {
        match journal.append(seq, &payload(seq)) {
            Ok(_) => seq += 1,
            Err(error) => break error,
        }
        if seq.is_multiple_of(3) {
            assert_eq!(journal.commit().unwrap(), Some(seq - 1));
        }
    };
    assert_eq!(os_error(&error), Some(libc::ENOSPC), "{error}");
    assert_eq!(storage.list().unwrap().len(), n_files);
    assert_eq!(
        journal.next_seq(),
        seq,
        "the refused record was not appended"
    );
    // Everything appended before the failed roll is acknowledged by the next commit.
    assert_eq!(journal.commit().unwrap(), Some(seq - 1));
    faults.set_preallocate_fails(false);
    let seq = append_until_segments(&mut journal, n_files + 3);
    append_range(&mut journal, seq, seq + 4, 2);
    drop(journal);
    let journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    assert_records(&read_all(&journal, 1), 1, seq + 4);
}

#[test]
fn a_roll_after_preparation_does_not_preallocate_on_the_append_path() {
    // Manual: the roll consumes the spare and preallocates nothing.
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = faulty(dir.path());
    let mut journal = Journal::open(storage, manual_config()).unwrap();
    assert_eq!(faults.preallocations(), 1, "the first segment");
    journal.prepare_next_segment().unwrap();
    journal.prepare_next_segment().unwrap(); // already prepared: nothing more
    assert_eq!(faults.preallocations(), 2);
    let seq = append_until_segments(&mut journal, 2);
    assert_eq!(faults.preallocations(), 2, "the roll used the spare");
    append_range(&mut journal, seq, seq + 3, 2);
    assert!(!dir.path().join(SPARE_FILE_NAME).exists());

    // Background: every preallocation after `open` happens on another thread.
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = faulty(dir.path());
    let mut journal = Journal::open(storage, small_config(Durability::Durable)).unwrap();
    let seq = append_until_segments(&mut journal, 6);
    append_range(&mut journal, seq, seq + 3, 2);
    drop(journal); // waits for the preparation in progress
    let threads = faults.preallocation_threads();
    let me = std::thread::current().id();
    assert_eq!(threads[0], me, "open creates the first segment itself");
    assert!(threads.len() >= 6, "{threads:?}");
    assert!(
        threads[1..].iter().all(|&thread| thread != me),
        "{threads:?}"
    );
    assert!(!dir.path().join(SPARE_FILE_NAME).exists());
    let journal = open_fs(dir.path(), small_config(Durability::Durable)).unwrap();
    assert_records(&read_all(&journal, 1), 1, seq + 3);
}
