use bourse_journal::format::RECORD_HEADER_LEN;
use bourse_journal::{CorruptionKind, Durability, Error, JournalConfig, RecoveryMode};

use crate::{append_range, assert_records, open_fs, read_all, record_layout, small_config};

const LAST_SEQ: u64 = 80;

/// A journal of `1..=LAST_SEQ` in several segments; returns the segments' first sequences.
fn written_journal(dir: &std::path::Path) -> Vec<u64> {
    let mut journal = open_fs(dir, small_config(Durability::None)).unwrap();
    append_range(&mut journal, 1, LAST_SEQ, 3);
    let firsts = journal.segment_first_seqs().to_vec();
    assert!(firsts.len() >= 4);
    firsts
}

/// Flips one payload bit of the record at `record_idx` of segment `first_seq`; returns its
/// offset and sequence number.
fn flip_bit(dir: &std::path::Path, first_seq: u64, record_idx: usize) -> (u64, u64) {
    let path = dir.join(bourse_journal::segment_file_name(first_seq));
    let mut bytes = std::fs::read(&path).unwrap();
    let (offset, _, seq) = record_layout(&bytes)[record_idx];
    bytes[offset + RECORD_HEADER_LEN] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    (offset as u64, seq)
}

fn assert_refused_at(dir: &std::path::Path, first_seq: u64, offset: u64) {
    let error = open_fs(dir, small_config(Durability::None)).unwrap_err();
    let Error::Corruption {
        path,
        offset: found_offset,
        kind,
    } = &error
    else {
        panic!("expected corruption, got {error}");
    };
    assert_eq!(
        path,
        &dir.join(bourse_journal::segment_file_name(first_seq))
    );
    assert_eq!(*found_offset, offset);
    assert!(matches!(kind, CorruptionKind::Record(_)), "{kind}");
    // The message names the file and the offset.
    let message = error.to_string();
    assert!(
        message.contains(&bourse_journal::segment_file_name(first_seq))
            && message.contains(&offset.to_string())
    );
}

#[test]
fn flipped_bit_in_a_middle_record_of_the_last_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let firsts = written_journal(dir.path());
    let last_first = *firsts.last().unwrap();
    let (offset, bad_seq) = flip_bit(dir.path(), last_first, 1);
    assert_refused_at(dir.path(), last_first, offset);
    // Refusing cut nothing: a second open refuses the same way.
    assert_refused_at(dir.path(), last_first, offset);

    let config = JournalConfig {
        recovery: RecoveryMode::Repair,
        ..small_config(Durability::None)
    };
    let journal = open_fs(dir.path(), config).unwrap();
    let repair = journal.recovery_report().repair.clone().unwrap();
    assert_eq!((repair.offset, repair.segments_removed), (offset, 0));
    assert_eq!(repair.records_dropped, LAST_SEQ - bad_seq + 1);
    assert_records(&read_all(&journal, 1), 1, bad_seq - 1);
}

#[test]
fn flipped_bit_in_the_last_record_of_an_earlier_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let firsts = written_journal(dir.path());
    let path = dir
        .path()
        .join(bourse_journal::segment_file_name(firsts[1]));
    let n_records = record_layout(&std::fs::read(path).unwrap()).len();
    let (offset, _) = flip_bit(dir.path(), firsts[1], n_records - 1);
    assert_refused_at(dir.path(), firsts[1], offset);
}

#[test]
fn repair_cuts_at_the_damage_and_reports_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let firsts = written_journal(dir.path());
    let (offset, bad_seq) = flip_bit(dir.path(), firsts[1], 2);
    let config = JournalConfig {
        recovery: RecoveryMode::Repair,
        ..small_config(Durability::Durable)
    };
    let mut journal = open_fs(dir.path(), config).unwrap();
    let repair = journal.recovery_report().repair.clone().unwrap();
    assert_eq!(
        repair.path,
        dir.path()
            .join(bourse_journal::segment_file_name(firsts[1]))
    );
    assert_eq!(repair.offset, offset);
    assert_eq!(repair.last_kept_seq, Some(bad_seq - 1));
    assert_eq!(repair.records_dropped, LAST_SEQ - bad_seq + 1);
    assert_eq!(repair.segments_removed, firsts.len() - 2);
    assert_eq!(journal.segment_first_seqs(), &firsts[..2]);
    assert_records(&read_all(&journal, 1), 1, bad_seq - 1);

    // The writer goes on from the cut; the journal is whole again.
    append_range(&mut journal, bad_seq, bad_seq + 30, 4);
    drop(journal);
    let journal = open_fs(dir.path(), small_config(Durability::None)).unwrap();
    assert_eq!(journal.recovery_report(), &Default::default());
    assert_records(&read_all(&journal, 1), 1, bad_seq + 30);
}

#[test]
fn damaged_header_of_an_earlier_segment_is_refused_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let firsts = written_journal(dir.path());
    let path = dir
        .path()
        .join(bourse_journal::segment_file_name(firsts[2]));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[bourse_journal::format::HEADER_FIRST_SEQ_OFFSET] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let error = open_fs(dir.path(), small_config(Durability::None)).unwrap_err();
    assert!(
        matches!(&error, Error::Corruption { path: p, offset: 0, kind: CorruptionKind::Header(_) } if *p == path),
        "{error}"
    );

    let config = JournalConfig {
        recovery: RecoveryMode::Repair,
        ..small_config(Durability::None)
    };
    let journal = open_fs(dir.path(), config).unwrap();
    let repair = journal.recovery_report().repair.clone().unwrap();
    assert_eq!(repair.last_kept_seq, Some(firsts[2] - 1));
    assert_eq!(repair.records_dropped, LAST_SEQ - firsts[2] + 1);
    assert_eq!(journal.segment_first_seqs(), &firsts[..2]);
    assert_records(&read_all(&journal, 1), 1, firsts[2] - 1);
}

#[test]
fn blank_last_segment_from_an_interrupted_roll_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let firsts = written_journal(dir.path());
    // A roll that created and preallocated the next file, then crashed before its header
    // reached the disk.
    let path = dir
        .path()
        .join(bourse_journal::segment_file_name(LAST_SEQ + 1));
    std::fs::write(&path, vec![0; 1024]).unwrap();
    let mut journal = open_fs(dir.path(), small_config(Durability::None)).unwrap();
    assert_eq!(
        journal.recovery_report().blank_segment_removed,
        Some(LAST_SEQ + 1)
    );
    assert_eq!(journal.segment_first_seqs(), &firsts[..]);
    append_range(&mut journal, LAST_SEQ + 1, LAST_SEQ + 40, 5);
    assert_records(&read_all(&journal, 1), 1, LAST_SEQ + 40);
}
