//! Integration tests of the journal, one binary with a module per topic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod commit_mark;
mod corruption;
mod deferred;
mod faults;
mod format_doc;
mod kill;
mod model;
mod round_trip;
mod torn_tail;

use std::path::Path;

use bourse_journal::{Durability, FsStorage, Journal, JournalConfig, Record};

/// A deterministic PRNG (SplitMix64), so every failure replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `range` for tests.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The payload of record `seq`: 1 to 90 bytes, none of them zero, all derived from `seq`.
pub fn payload(seq: u64) -> Vec<u8> {
    let len = 1 + (seq * 37 % 90) as usize;
    (0..len)
        .map(|i| ((seq as usize + i) % 255) as u8 + 1)
        .collect()
}

pub fn small_config(durability: Durability) -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 1024,
        durability,
        ..JournalConfig::default()
    }
}

pub fn open_fs(dir: &Path, config: JournalConfig) -> bourse_journal::Result<Journal<FsStorage>> {
    Journal::open(FsStorage::new(dir).expect("journal directory"), config)
}

/// Appends `first..=last` with [`payload`], committing every `batch_len` records.
pub fn append_range<S: bourse_journal::Storage>(
    journal: &mut Journal<S>,
    first: u64,
    last: u64,
    batch_len: u64,
) {
    for seq in first..=last {
        journal.append(seq, &payload(seq)).unwrap();
        if seq % batch_len == 0 {
            journal.commit().unwrap();
        }
    }
    assert_eq!(journal.commit().unwrap(), Some(last));
}

/// Every record from `from` on, panicking on a read error.
pub fn read_all<S: bourse_journal::Storage>(journal: &Journal<S>, from: u64) -> Vec<Record> {
    journal
        .read_from(from)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Checks that `records` are exactly `first..=last` with the right payloads.
pub fn assert_records(records: &[Record], first: u64, last: u64) {
    let seqs: Vec<u64> = records.iter().map(|record| record.seq).collect();
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>());
    for record in records {
        assert_eq!(
            record.payload,
            payload(record.seq),
            "payload of {}",
            record.seq
        );
    }
}

/// Offsets and sequence numbers of the records in a segment file's bytes:
/// `(offset, end of the checksummed bytes, seq)`.
pub fn record_layout(bytes: &[u8]) -> Vec<(usize, usize, u64)> {
    use bourse_journal::format::{HEADER_LEN, RECORD_HEADER_LEN, decode_record};
    let mut layout = Vec::new();
    let mut offset = HEADER_LEN;
    while let Ok(record) = decode_record(&bytes[offset..]) {
        layout.push((
            offset,
            offset + RECORD_HEADER_LEN + record.payload.len(),
            record.seq,
        ));
        offset += record.encoded_len();
    }
    layout
}
