//! A segment written byte by byte from the diagrams in `journal/FORMAT.md`, without the
//! crate's encoder: the page and the code agree.

use bourse_journal::{Durability, JournalConfig};

use crate::{open_fs, read_all};

const SEGMENT_SIZE: usize = 256;

fn put(bytes: &mut [u8], offset: usize, field: &[u8]) {
    bytes[offset..offset + field.len()].copy_from_slice(field);
}

/// Record layout from FORMAT.md: length, CRC32C (length, sequence, payload), sequence,
/// payload, zero padding to 8.
fn record(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut checksummed = len.to_vec();
    checksummed.extend_from_slice(&seq.to_le_bytes());
    checksummed.extend_from_slice(payload);
    let mut bytes = len.to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&checksummed).to_le_bytes());
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes.resize(bytes.len().next_multiple_of(8), 0);
    bytes
}

#[test]
fn segment_built_from_this_page_reads_back() {
    let mut bytes = vec![0u8; SEGMENT_SIZE];
    put(&mut bytes, 0, b"BOURSEJ\0");
    put(&mut bytes, 8, &1u32.to_le_bytes());
    put(&mut bytes, 12, &0u32.to_le_bytes());
    put(&mut bytes, 16, &5u64.to_le_bytes());
    put(&mut bytes, 24, &(SEGMENT_SIZE as u64).to_le_bytes());
    let header_checksum = crc32c::crc32c(&bytes[..32]);
    put(&mut bytes, 32, &header_checksum.to_le_bytes());
    // Commit mark 6 (records below 6 were committed), with its own checksum.
    put(&mut bytes, 40, &6u64.to_le_bytes());
    let mark_checksum = crc32c::crc32c(&bytes[40..48]);
    put(&mut bytes, 48, &mark_checksum.to_le_bytes());
    assert_eq!(bourse_journal::format::decode_commit_mark(&bytes), Some(6));
    let first = record(5, b"abc");
    assert_eq!(first.len(), 24);
    put(&mut bytes, 64, &first);
    let second = record(6, b"");
    put(&mut bytes, 64 + first.len(), &second);

    // The crate's encoder writes the same bytes.
    let mut encoded = vec![0; 24];
    bourse_journal::format::encode_record(5, b"abc", &mut encoded);
    assert_eq!(encoded, first);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000005.seg"), &bytes).unwrap();
    let config = JournalConfig {
        segment_size_bytes: SEGMENT_SIZE as u64,
        ..crate::small_config(Durability::None)
    };
    let mut journal = open_fs(dir.path(), config).unwrap();
    assert_eq!(journal.recovery_report(), &Default::default());
    let records = read_all(&journal, 5);
    let seqs_payloads: Vec<(u64, &[u8])> = records
        .iter()
        .map(|record| (record.seq, &record.payload[..]))
        .collect();
    assert_eq!(seqs_payloads, [(5, &b"abc"[..]), (6, &b""[..])]);
    journal.append(7, b"next").unwrap();
    assert_eq!(journal.commit().unwrap(), Some(7));
}

#[test]
fn another_format_version_is_refused_with_the_version_found() {
    let mut bytes = vec![0u8; SEGMENT_SIZE];
    put(&mut bytes, 0, b"BOURSEJ\0");
    put(&mut bytes, 8, &2u32.to_le_bytes());
    put(&mut bytes, 16, &1u64.to_le_bytes());
    put(&mut bytes, 24, &(SEGMENT_SIZE as u64).to_le_bytes());
    let header_checksum = crc32c::crc32c(&bytes[..32]);
    put(&mut bytes, 32, &header_checksum.to_le_bytes());
    put(&mut bytes, 64, &record(1, b"from the future"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000001.seg"), &bytes).unwrap();
    let error = open_fs(dir.path(), crate::small_config(Durability::None)).unwrap_err();
    assert!(error.to_string().contains("format version 2"), "{error}");
}
