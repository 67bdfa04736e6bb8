use bourse_journal::{Durability, Error, Faults, FaultyStorage, FsStorage, Journal, Storage};

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

#[test]
fn enospc_on_preallocation_is_a_clear_error_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, faults) = faulty(dir.path());
    faults.set_preallocate_fails(true);
    let error = Journal::open(storage.clone(), small_config(Durability::Durable)).unwrap_err();
    assert_eq!(os_error(&error), Some(libc::ENOSPC), "{error}");
    assert!(storage.list().unwrap().is_empty());

    faults.set_preallocate_fails(false);
    let mut journal = Journal::open(storage.clone(), small_config(Durability::Durable)).unwrap();
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
            Ok(()) => seq += 1,
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
            Ok(()) => seq += 1,
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
