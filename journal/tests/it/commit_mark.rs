//! The commit mark (FORMAT.md, "Segment header" and "Recovery rules"): a crash during a
//! commit may leave later pages of it on disk and not earlier ones, and that is a torn tail
//! to cut, not corruption; damage below the mark is acknowledged data and is refused.

use bourse_journal::format::{HEADER_LEN, RECORD_HEADER_LEN, decode_commit_mark};
use bourse_journal::{CorruptionKind, Durability, Error, JournalConfig, RecoveryMode};

use crate::{append_range, assert_records, open_fs, payload, read_all, record_layout};

fn config(durability: Durability, recovery: RecoveryMode) -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 64 << 10,
        durability,
        recovery,
        ..JournalConfig::default()
    }
}

fn durable() -> JournalConfig {
    config(Durability::Durable, RecoveryMode::Refuse)
}

/// `1..=35` committed in batches of five, then `36..=40` appended and not committed (the
/// commit a crash interrupts). Returns the segment file's path.
fn crashed_mid_commit(dir: &std::path::Path, durability: Durability) -> std::path::PathBuf {
    let mut journal = open_fs(dir, config(durability, RecoveryMode::Refuse)).unwrap();
    append_range(&mut journal, 1, 35, 5);
    for seq in 36..=40 {
        journal.append(seq, &payload(seq)).unwrap();
    }
    assert_eq!(journal.segment_first_seqs(), &[1]);
    drop(journal);
    dir.join(bourse_journal::segment_file_name(1))
}

/// Zeroes record `seq` of the segment at `path` (a page that did not reach the disk); returns
/// its offset.
fn lose_record(path: &std::path::Path, seq: u64) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let (offset, end, _) = record_layout(&bytes)[(seq - 1) as usize];
    bytes[offset..end].fill(0);
    std::fs::write(path, &bytes).unwrap();
    offset
}

fn flip_payload_bit(path: &std::path::Path, seq: u64) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let (offset, _, _) = record_layout(&bytes)[(seq - 1) as usize];
    bytes[offset + RECORD_HEADER_LEN] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
    offset
}

fn mark_of(path: &std::path::Path) -> Option<u64> {
    decode_commit_mark(&std::fs::read(path).unwrap()[..HEADER_LEN])
}

#[test]
fn the_mark_trails_the_last_commit_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_mid_commit(dir.path(), Durability::Durable);
    // The commit of 31..=35 wrote the mark of the one before it: everything below 31.
    assert_eq!(mark_of(&path), Some(31));
    let none = tempfile::tempdir().unwrap();
    let path = crashed_mid_commit(none.path(), Durability::None);
    assert_eq!(mark_of(&path), None, "only Durable mode writes a mark");
}

#[test]
fn an_unacknowledged_record_lost_before_later_ones_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_mid_commit(dir.path(), Durability::Durable);
    let offset = lose_record(&path, 37);
    let mut journal = open_fs(dir.path(), durable()).unwrap();
    let cut = journal.recovery_report().torn_tail.clone().unwrap();
    assert_eq!(cut.offset, offset as u64);
    assert_eq!(cut.records_cut, 3, "38, 39 and 40 were valid and cut");
    assert!(journal.recovery_report().repair.is_none());
    assert_eq!(journal.next_seq(), 37);
    assert_records(&read_all(&journal, 1), 1, 36);
    // The writer goes on over the cut, and a reopen finds nothing to cut.
    append_range(&mut journal, 37, 45, 3);
    drop(journal);
    let journal = open_fs(dir.path(), durable()).unwrap();
    assert_eq!(journal.recovery_report(), &Default::default());
    assert_records(&read_all(&journal, 1), 1, 45);
}

#[test]
fn damage_below_the_mark_with_records_after_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_mid_commit(dir.path(), Durability::Durable);
    let offset = flip_payload_bit(&path, 20);
    let error = open_fs(dir.path(), durable()).unwrap_err();
    let Error::Corruption {
        offset: found,
        kind,
        ..
    } = &error
    else {
        panic!("expected corruption, got {error}");
    };
    assert_eq!(*found, offset as u64);
    assert!(matches!(kind, CorruptionKind::Record(_)), "{kind}");
}

#[test]
fn without_a_mark_records_after_damage_are_refused_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_mid_commit(dir.path(), Durability::None);
    let offset = lose_record(&path, 37);
    let error = open_fs(dir.path(), config(Durability::None, RecoveryMode::Refuse)).unwrap_err();
    assert!(
        matches!(error, Error::Corruption { offset: found, .. } if found == offset as u64),
        "{error}"
    );
}

/// A repair cuts records below the mark; their numbers are written again, so the mark comes
/// down with them, and a later tear among the new records is a torn tail again.
#[test]
fn a_repair_lowers_the_mark_below_the_numbers_it_frees() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_mid_commit(dir.path(), Durability::Durable);
    flip_payload_bit(&path, 20);
    let mut journal = open_fs(
        dir.path(),
        config(Durability::Durable, RecoveryMode::Repair),
    )
    .unwrap();
    assert_eq!(journal.next_seq(), 20);
    append_range(&mut journal, 20, 30, 4);
    for seq in 31..=34 {
        journal.append(seq, &payload(seq)).unwrap();
    }
    drop(journal);
    let mark = mark_of(&path).unwrap();
    assert!(
        mark <= 29,
        "the mark {mark} names records not written again yet"
    );
    lose_record(&path, 32);
    let journal = open_fs(dir.path(), durable()).unwrap();
    assert_eq!(
        journal
            .recovery_report()
            .torn_tail
            .as_ref()
            .unwrap()
            .records_cut,
        2
    );
    assert_records(&read_all(&journal, 1), 1, 31);
}
