//! Scanning segments on open: pure functions over the bytes of one segment.

use crate::error::CorruptionKind;
use crate::format::{
    HEADER_LEN, RECORD_ALIGN, RECORD_HEADER_LEN, RECORD_SEQ_OFFSET, RecordError, decode_header,
    decode_record, get_u64,
};

/// Where the valid records of a segment end, and what stopped the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// Offset just past the last valid record.
    pub end_offset: usize,
    /// The sequence number the next record must carry.
    pub next_seq: u64,
    /// `None`: every byte from `end_offset` on is zero (a clean end). Otherwise what is at
    /// `end_offset`.
    pub stop: Option<CorruptionKind>,
}

/// Checks the header of the segment in `bytes`, named `first_seq`.
pub(crate) fn check_header(bytes: &[u8], first_seq: u64) -> Result<(), CorruptionKind> {
    let header = decode_header(bytes).map_err(CorruptionKind::Header)?;
    if header.first_seq != first_seq || header.segment_size != bytes.len() as u64 {
        return Err(CorruptionKind::HeaderMismatch {
            first_seq: header.first_seq,
            segment_size: header.segment_size,
        });
    }
    Ok(())
}

/// Reads records from the header on while they are valid and numbered from `first_seq`.
pub(crate) fn scan_segment(bytes: &[u8], first_seq: u64) -> SegmentScan {
    let mut offset = HEADER_LEN;
    let mut next_seq = first_seq;
    loop {
        let stop = match decode_record(&bytes[offset..]) {
            Ok(record) if record.seq == next_seq && next_seq < u64::MAX => {
                offset += record.encoded_len();
                next_seq += 1;
                continue;
            }
            Ok(record) => CorruptionKind::SequenceMismatch {
                expected: next_seq,
                found: record.seq,
            },
            Err(RecordError::Zero | RecordError::HeaderTruncated) if is_zero(&bytes[offset..]) => {
                return SegmentScan {
                    end_offset: offset,
                    next_seq,
                    stop: None,
                };
            }
            Err(error) => CorruptionKind::Record(error),
        };
        return SegmentScan {
            end_offset: offset,
            next_seq,
            stop: Some(stop),
        };
    }
}

/// Valid records at any aligned offset from `from` on whose sequence number is at least
/// `seq_min`: `(offset, seq)`. Used to tell a torn tail (none) from damage in the middle.
pub(crate) fn valid_records_after(
    bytes: &[u8],
    from: usize,
    seq_min: u64,
) -> impl Iterator<Item = (usize, u64)> + '_ {
    // A cheap filter before the checksum: a sequence number the segment could hold.
    let seq_max = seq_min.saturating_add((bytes.len() / RECORD_HEADER_LEN) as u64);
    let start = from.next_multiple_of(RECORD_ALIGN);
    (start..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1))
        .step_by(RECORD_ALIGN)
        .filter_map(move |offset| {
            let seq = get_u64(bytes, offset + RECORD_SEQ_OFFSET);
            if !(seq_min..=seq_max).contains(&seq) {
                return None;
            }
            let record = decode_record(&bytes[offset..]).ok()?;
            Some((offset, record.seq))
        })
}

pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&byte| byte == 0)
}

/// One past the last non-zero byte of `bytes[from..]`, as an offset into `bytes` (`from` if all
/// zero).
pub(crate) fn nonzero_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(from, |last| from + last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{SegmentHeader, encode_header, encode_record, record_len};

    fn segment(payload_lens: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = vec![0; 1024];
        let header = SegmentHeader {
            first_seq: 10,
            segment_size: 1024,
        };
        encode_header(header, &mut bytes);
        let mut offsets = vec![];
        let mut offset = HEADER_LEN;
        for (i, &len) in payload_lens.iter().enumerate() {
            offsets.push(offset);
            let end = offset + record_len(len);
            encode_record(10 + i as u64, &vec![7; len], &mut bytes[offset..end]);
            offset = end;
        }
        offsets.push(offset);
        (bytes, offsets)
    }

    #[test]
    fn clean_segment_scans_to_its_end() {
        let (bytes, offsets) = segment(&[3, 0, 20]);
        assert_eq!(check_header(&bytes, 10), Ok(()));
        let scan = scan_segment(&bytes, 10);
        assert_eq!(scan.end_offset, offsets[3]);
        assert_eq!((scan.next_seq, scan.stop), (13, None));
        assert_eq!(valid_records_after(&bytes, scan.end_offset, 13).count(), 0);
    }

    #[test]
    fn damage_stops_the_scan_and_later_records_are_found() {
        let (mut bytes, offsets) = segment(&[3, 5, 20]);
        bytes[offsets[1] + RECORD_HEADER_LEN] ^= 4;
        let scan = scan_segment(&bytes, 10);
        assert_eq!(scan.end_offset, offsets[1]);
        assert_eq!(
            scan.stop,
            Some(CorruptionKind::Record(RecordError::ChecksumMismatch))
        );
        let after: Vec<_> = valid_records_after(&bytes, offsets[1], 11).collect();
        assert_eq!(after, vec![(offsets[2], 12)]);
    }

    #[test]
    fn wrong_sequence_number_is_a_mismatch() {
        let (bytes, _) = segment(&[3]);
        let scan = scan_segment(&bytes, 9);
        assert_eq!(
            scan.stop,
            Some(CorruptionKind::SequenceMismatch {
                expected: 9,
                found: 10
            })
        );
        assert_eq!(
            check_header(&bytes, 9),
            Err(CorruptionKind::HeaderMismatch {
                first_seq: 10,
                segment_size: 1024
            })
        );
    }

    #[test]
    fn nonzero_end_finds_the_last_written_byte() {
        assert_eq!(nonzero_end(&[0, 1, 0, 0], 0), 2);
        assert_eq!(nonzero_end(&[0, 1, 0, 0], 2), 2);
    }
}
