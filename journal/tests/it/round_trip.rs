use bourse_journal::{Durability, Error, format};

use crate::{append_range, assert_records, open_fs, read_all, small_config};

#[test]
fn append_commit_reopen_round_trip_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(Durability::Durable);
    let mut journal = open_fs(dir.path(), config).unwrap();
    assert_eq!(journal.commit().unwrap(), None);
    append_range(&mut journal, 1, 200, 7);
    let n_segments = journal.segment_first_seqs().len();
    assert!(n_segments >= 10, "rolled {n_segments} times");
    assert_records(&read_all(&journal, 1), 1, 200);
    drop(journal);

    let mut journal = open_fs(dir.path(), config).unwrap();
    assert_eq!(journal.recovery_report(), &Default::default());
    assert_eq!(journal.segment_first_seqs().len(), n_segments);
    assert_eq!(
        (journal.next_seq(), journal.committed_seq()),
        (201, Some(200))
    );
    assert_records(&read_all(&journal, 1), 1, 200);
    assert_records(&read_all(&journal, 137), 137, 200);
    assert!(read_all(&journal, 201).is_empty());
    append_range(&mut journal, 201, 260, 5);
    drop(journal);

    let journal = open_fs(dir.path(), config).unwrap();
    assert_records(&read_all(&journal, 1), 1, 260);
    // Segment files are named by their first sequence number, zero-padded.
    for &first_seq in journal.segment_first_seqs() {
        let name = bourse_journal::segment_file_name(first_seq);
        assert!(dir.path().join(name).exists());
    }
}

#[test]
fn append_refuses_out_of_order_and_oversized_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(Durability::None);
    let mut journal = open_fs(dir.path(), config).unwrap();
    let error = journal.append(2, b"x").unwrap_err();
    assert!(matches!(
        error,
        Error::SequenceOutOfOrder {
            expected: 1,
            found: 2
        }
    ));
    journal.append(1, b"x").unwrap();
    let error = journal.append(1, b"x").unwrap_err();
    assert!(matches!(
        error,
        Error::SequenceOutOfOrder {
            expected: 2,
            found: 1
        }
    ));

    let payload_len_max = format::payload_len_max(config.segment_size_bytes);
    let error = journal
        .append(2, &vec![1; payload_len_max + 1])
        .unwrap_err();
    assert!(
        matches!(error, Error::RecordTooLarge { payload_len, .. } if payload_len == payload_len_max + 1)
    );
    // The largest record fills a fresh segment exactly.
    journal.append(2, &vec![1; payload_len_max]).unwrap();
    journal.append(3, b"").unwrap();
    assert_eq!(journal.segment_first_seqs(), &[1, 2, 3]);
    assert_eq!(journal.commit().unwrap(), Some(3));
    drop(journal);
    let journal = open_fs(dir.path(), config).unwrap();
    let records = read_all(&journal, 1);
    assert_eq!(records.len(), 3);
    assert_eq!(records[1].payload.len(), payload_len_max);
    assert!(records[2].payload.is_empty());
}

#[test]
fn invalid_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for segment_size_bytes in [0, 64, 1020, 1 << 40] {
        let config = bourse_journal::JournalConfig {
            segment_size_bytes,
            ..small_config(Durability::None)
        };
        let error = open_fs(dir.path(), config).unwrap_err();
        assert!(
            matches!(error, Error::InvalidConfig(_)),
            "{segment_size_bytes}"
        );
    }
}

#[test]
fn retention_removes_whole_segments_before_a_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(Durability::Durable);
    let mut journal = open_fs(dir.path(), config).unwrap();
    append_range(&mut journal, 1, 100, 10);
    let firsts = journal.segment_first_seqs().to_vec();
    let keep_from = firsts[3] + 1;
    assert_eq!(journal.remove_segments_before(keep_from).unwrap(), 3);
    assert_eq!(journal.first_seq(), firsts[3]);
    assert!(matches!(
        journal.read_from(firsts[3] - 1),
        Err(Error::NotRetained { .. })
    ));
    assert_records(&read_all(&journal, keep_from), keep_from, 100);
    // Never the current segment, whatever the sequence number.
    journal.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(journal.segment_first_seqs().len(), 1);
    journal.commit().unwrap();
    let first = journal.first_seq();
    drop(journal);

    let mut journal = open_fs(dir.path(), config).unwrap();
    assert_eq!(journal.first_seq(), first);
    assert_records(&read_all(&journal, first), first, 100);
    append_range(&mut journal, 101, 120, 3);
    assert_records(&read_all(&journal, first), first, 120);
}

#[test]
fn sequence_numbers_stop_before_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let config = bourse_journal::JournalConfig {
        first_seq: bourse_journal::SEQ_MAX - 1,
        ..small_config(Durability::None)
    };
    let mut journal = open_fs(dir.path(), config).unwrap();
    journal
        .append(bourse_journal::SEQ_MAX - 1, b"last")
        .unwrap();
    let error = journal
        .append(bourse_journal::SEQ_MAX, b"one too many")
        .unwrap_err();
    assert!(matches!(error, Error::SequenceExhausted), "{error}");
    assert_eq!(journal.commit().unwrap(), Some(bourse_journal::SEQ_MAX - 1));
}

#[test]
fn records_are_read_back_at_the_positions_append_returned_across_rolls_and_reopen() {
    use bourse_journal::{FsStorage, PositionReader};

    let dir = tempfile::tempdir().unwrap();
    let config = small_config(Durability::None);
    let mut journal = open_fs(dir.path(), config).unwrap();
    let positions: Vec<_> = (1..=120)
        .map(|seq| journal.append(seq, &crate::payload(seq)).unwrap())
        .collect();
    journal.commit().unwrap();
    assert!(journal.segment_first_seqs().len() > 5);
    let mut reader = PositionReader::new(FsStorage::new(dir.path()).unwrap());
    // Newest first, as a chain walk reads them, while the writer still has the journal open.
    for (index, position) in positions.iter().enumerate().rev() {
        let seq = index as u64 + 1;
        let record = reader.read_at(*position).unwrap();
        assert_eq!(
            (record.seq, record.payload),
            (seq, &crate::payload(seq)[..])
        );
    }
    // A replay tells where each record lies.
    let mut replay = journal.read_from(30).unwrap();
    while let Some(record) = replay.next_ref() {
        let seq = record.unwrap().seq;
        assert_eq!(replay.position(), Some(positions[seq as usize - 1]));
    }
    drop(replay);
    drop(journal);
    let mut reader = PositionReader::new(FsStorage::new(dir.path()).unwrap());
    assert_eq!(reader.read_at(positions[41]).unwrap().seq, 42);
    // A position no append returned is an error, not a panic.
    let mut bad = positions[41];
    bad.offset += 8;
    assert!(reader.read_at(bad).is_err());
    bad.offset = 1 << 40;
    assert!(reader.read_at(bad).is_err());
    bad.segment = 999_999;
    assert!(reader.read_at(bad).is_err());
}
