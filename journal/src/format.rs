//! The on-disk format: constants, the segment header and the record codec.
//!
//! Pure functions over byte slices, no I/O. `journal/FORMAT.md` draws the same layout; the
//! offsets below are the ones it names, and a test checks that they tile the header.

/// The first 8 bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"BOURSEJ\0";
/// The version of the on-disk format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Length of the segment header; the first record starts here.
pub const HEADER_LEN: usize = 64;
/// Header field offsets (all little-endian).
pub const HEADER_MAGIC_OFFSET: usize = 0;
/// `u32` format version.
pub const HEADER_VERSION_OFFSET: usize = 8;
/// `u32`, zero in version 1.
pub const HEADER_FLAGS_OFFSET: usize = 12;
/// `u64` sequence number of the first record the segment holds.
pub const HEADER_FIRST_SEQ_OFFSET: usize = 16;
/// `u64` total size of the segment file in bytes.
pub const HEADER_SEGMENT_SIZE_OFFSET: usize = 24;
/// `u32` CRC32C of bytes `0..HEADER_CHECKSUM_OFFSET`.
pub const HEADER_CHECKSUM_OFFSET: usize = 32;
/// Bytes `HEADER_RESERVED_OFFSET..HEADER_COMMITTED_OFFSET` are zero.
pub const HEADER_RESERVED_OFFSET: usize = 36;
/// `u64` commit mark: every record numbered below it was durable (a commit had returned it)
/// when the mark was written. Not covered by the header checksum: it changes after the header
/// is written, with its own checksum.
pub const HEADER_COMMITTED_OFFSET: usize = 40;
/// `u32` CRC32C of the commit mark's 8 bytes; a mark whose checksum fails (all zero: none
/// written) is absent.
pub const HEADER_COMMITTED_CHECKSUM_OFFSET: usize = 48;
/// Bytes `HEADER_TAIL_RESERVED_OFFSET..HEADER_LEN` are zero.
pub const HEADER_TAIL_RESERVED_OFFSET: usize = 52;

/// Length of a record header (length, checksum, sequence number).
pub const RECORD_HEADER_LEN: usize = 16;
/// `u32` payload length in bytes (padding excluded).
pub const RECORD_LENGTH_OFFSET: usize = 0;
/// `u32` CRC32C of the length field, the sequence field and the payload.
pub const RECORD_CHECKSUM_OFFSET: usize = 4;
/// `u64` sequence number.
pub const RECORD_SEQ_OFFSET: usize = 8;
/// Records start and end on multiples of this (zero padding after the payload).
pub const RECORD_ALIGN: usize = 8;

/// Smallest segment size accepted: a header and one record with an 8-byte payload.
pub const SEGMENT_SIZE_MIN: u64 = (HEADER_LEN + RECORD_HEADER_LEN + RECORD_ALIGN) as u64;
/// Largest segment size accepted (offsets and payload lengths then fit in a `u32`).
pub const SEGMENT_SIZE_MAX: u64 = 1 << 31;

/// Bytes a record with `payload_len` payload bytes takes in a segment, padding included.
pub const fn record_len(payload_len: usize) -> usize {
    (RECORD_HEADER_LEN + payload_len).div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// The largest payload a segment of `segment_size` bytes can hold.
pub const fn payload_len_max(segment_size: u64) -> usize {
    // Rounded down to the alignment: a record never ends past the segment.
    let space = (segment_size as usize - HEADER_LEN) / RECORD_ALIGN * RECORD_ALIGN;
    space - RECORD_HEADER_LEN
}

/// Why bytes are not a valid segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    #[error("file shorter than the segment header")]
    Truncated,
    /// The first 8 bytes are not [`MAGIC`].
    #[error("bad magic (not a journal segment)")]
    BadMagic,
    /// The checksum does not match the header bytes.
    #[error("header checksum mismatch")]
    ChecksumMismatch,
    /// Written by a format version this build does not read.
    #[error("format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
    },
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number of the first record in the segment.
    pub first_seq: u64,
    /// Size of the segment file in bytes.
    pub segment_size: u64,
}

/// Writes the header for `header` into `buf[..HEADER_LEN]`.
pub fn encode_header(header: SegmentHeader, buf: &mut [u8]) {
    let buf = &mut buf[..HEADER_LEN];
    buf.fill(0);
    buf[HEADER_MAGIC_OFFSET..HEADER_VERSION_OFFSET].copy_from_slice(&MAGIC);
    put_u32(buf, HEADER_VERSION_OFFSET, FORMAT_VERSION);
    put_u32(buf, HEADER_FLAGS_OFFSET, 0);
    put_u64(buf, HEADER_FIRST_SEQ_OFFSET, header.first_seq);
    put_u64(buf, HEADER_SEGMENT_SIZE_OFFSET, header.segment_size);
    let checksum = crc32c::crc32c(&buf[..HEADER_CHECKSUM_OFFSET]);
    put_u32(buf, HEADER_CHECKSUM_OFFSET, checksum);
    debug_assert_eq!(decode_header(buf), Ok(header));
}

/// Reads and checks a segment header from the start of `buf`.
pub fn decode_header(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let buf = buf.get(..HEADER_LEN).ok_or(HeaderError::Truncated)?;
    if buf[HEADER_MAGIC_OFFSET..HEADER_VERSION_OFFSET] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if crc32c::crc32c(&buf[..HEADER_CHECKSUM_OFFSET]) != get_u32(buf, HEADER_CHECKSUM_OFFSET) {
        return Err(HeaderError::ChecksumMismatch);
    }
    let found = get_u32(buf, HEADER_VERSION_OFFSET);
    if found != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion { found });
    }
    Ok(SegmentHeader {
        first_seq: get_u64(buf, HEADER_FIRST_SEQ_OFFSET),
        segment_size: get_u64(buf, HEADER_SEGMENT_SIZE_OFFSET),
    })
}

/// Writes the commit mark `committed_below` into the header at the start of `buf` (see
/// [`HEADER_COMMITTED_OFFSET`]); the rest of the header is untouched.
pub fn encode_commit_mark(committed_below: u64, buf: &mut [u8]) {
    put_u64(buf, HEADER_COMMITTED_OFFSET, committed_below);
    let checksum = crc32c::crc32c(&buf[HEADER_COMMITTED_OFFSET..HEADER_COMMITTED_CHECKSUM_OFFSET]);
    put_u32(buf, HEADER_COMMITTED_CHECKSUM_OFFSET, checksum);
}

/// Removes the commit mark from the header at the start of `buf`.
pub fn clear_commit_mark(buf: &mut [u8]) {
    buf[HEADER_COMMITTED_OFFSET..HEADER_TAIL_RESERVED_OFFSET].fill(0);
}

/// The commit mark of the header at the start of `buf`: `None` if none was written or its
/// checksum fails.
pub fn decode_commit_mark(buf: &[u8]) -> Option<u64> {
    let mark = buf.get(HEADER_COMMITTED_OFFSET..HEADER_COMMITTED_CHECKSUM_OFFSET)?;
    let checksum = buf.get(HEADER_COMMITTED_CHECKSUM_OFFSET..HEADER_TAIL_RESERVED_OFFSET)?;
    (crc32c::crc32c(mark).to_le_bytes() == checksum).then(|| get_u64(buf, HEADER_COMMITTED_OFFSET))
}

/// Why bytes at a record position are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The 16 header bytes are all zero: never written (the end of the data, or a torn write).
    #[error("record header is zero")]
    Zero,
    /// Fewer bytes remain than a record header needs.
    #[error("record header cut short by the end of the segment")]
    HeaderTruncated,
    /// The length field points past the end of the segment.
    #[error("record length {payload_len} runs past the end of the segment")]
    LengthOutOfBounds {
        /// The length field.
        payload_len: u32,
    },
    /// The checksum does not match the length, sequence number and payload.
    #[error("record checksum mismatch")]
    ChecksumMismatch,
}

/// A record read from a segment, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The sequence number.
    pub seq: u64,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Bytes the record takes in the segment, padding included.
    pub fn encoded_len(&self) -> usize {
        record_len(self.payload.len())
    }
}

/// Writes a record into `buf`, which must be exactly [`record_len`]`(payload.len())` bytes.
///
/// # Panics
/// If `buf` has the wrong length or the payload is longer than `u32::MAX` (callers check both).
pub fn encode_record(seq: u64, payload: &[u8], buf: &mut [u8]) {
    assert_eq!(buf.len(), record_len(payload.len()), "record buffer length");
    #[allow(
        clippy::expect_used,
        reason = "a documented precondition (# Panics): Journal::append refuses a payload \
                  larger than a segment, and SEGMENT_SIZE_MAX is 2^31"
    )]
    let payload_len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    let payload_end = RECORD_HEADER_LEN + payload.len();
    buf[RECORD_HEADER_LEN..payload_end].copy_from_slice(payload);
    buf[payload_end..].fill(0);
    put_u64(buf, RECORD_SEQ_OFFSET, seq);
    put_u32(buf, RECORD_LENGTH_OFFSET, payload_len);
    put_u32(
        buf,
        RECORD_CHECKSUM_OFFSET,
        record_checksum(buf, payload.len()),
    );
    debug_assert_eq!(decode_record(buf), Ok(RecordRef { seq, payload }));
}

/// Reads and checks the record at the start of `buf` (the rest of the segment).
///
/// Never panics and never reads outside `buf`, whatever the bytes.
pub fn decode_record(buf: &[u8]) -> Result<RecordRef<'_>, RecordError> {
    let header = buf
        .get(..RECORD_HEADER_LEN)
        .ok_or(RecordError::HeaderTruncated)?;
    if header.iter().all(|&byte| byte == 0) {
        return Err(RecordError::Zero);
    }
    let payload_len = get_u32(header, RECORD_LENGTH_OFFSET);
    let total_len = usize::try_from(payload_len)
        .ok()
        .and_then(|len| len.checked_add(RECORD_HEADER_LEN + RECORD_ALIGN - 1))
        .map(|len| len / RECORD_ALIGN * RECORD_ALIGN);
    let Some(total_len) = total_len.filter(|&len| len <= buf.len()) else {
        return Err(RecordError::LengthOutOfBounds { payload_len });
    };
    let payload = &buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload_len as usize];
    if record_checksum(&buf[..total_len], payload.len()) != get_u32(header, RECORD_CHECKSUM_OFFSET)
    {
        return Err(RecordError::ChecksumMismatch);
    }
    Ok(RecordRef {
        seq: get_u64(header, RECORD_SEQ_OFFSET),
        payload,
    })
}

/// CRC32C of the length field, the sequence field and the payload of the record in `record`.
fn record_checksum(record: &[u8], payload_len: usize) -> u32 {
    let checksum = crc32c::crc32c(&record[RECORD_LENGTH_OFFSET..RECORD_CHECKSUM_OFFSET]);
    // The sequence field and the payload are adjacent: one call covers both (replay and `open`
    // check every record, and a call costs more than the few bytes it hashes).
    const { assert!(RECORD_SEQ_OFFSET + 8 == RECORD_HEADER_LEN) };
    crc32c::crc32c_append(
        checksum,
        &record[RECORD_SEQ_OFFSET..RECORD_HEADER_LEN + payload_len],
    )
}

fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    buf[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(buf: &mut [u8], offset: usize, value: u64) {
    buf[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

fn get_u32(buf: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(le_bytes(buf, offset))
}

pub(crate) fn get_u64(buf: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(le_bytes(buf, offset))
}

/// The `N` bytes of `buf` at `offset`; panics like indexing if they are out of bounds.
fn le_bytes<const N: usize>(buf: &[u8], offset: usize) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(&buf[offset..offset + N]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_fields_tile_the_header() {
        assert_eq!(HEADER_VERSION_OFFSET, HEADER_MAGIC_OFFSET + MAGIC.len());
        assert_eq!(HEADER_FLAGS_OFFSET, HEADER_VERSION_OFFSET + 4);
        assert_eq!(HEADER_FIRST_SEQ_OFFSET, HEADER_FLAGS_OFFSET + 4);
        assert_eq!(HEADER_SEGMENT_SIZE_OFFSET, HEADER_FIRST_SEQ_OFFSET + 8);
        assert_eq!(HEADER_CHECKSUM_OFFSET, HEADER_SEGMENT_SIZE_OFFSET + 8);
        assert_eq!(HEADER_RESERVED_OFFSET, HEADER_CHECKSUM_OFFSET + 4);
        assert_eq!(HEADER_COMMITTED_OFFSET, HEADER_RESERVED_OFFSET + 4);
        assert_eq!(
            HEADER_COMMITTED_CHECKSUM_OFFSET,
            HEADER_COMMITTED_OFFSET + 8
        );
        assert_eq!(
            HEADER_TAIL_RESERVED_OFFSET,
            HEADER_COMMITTED_CHECKSUM_OFFSET + 4
        );
        const { assert!(HEADER_TAIL_RESERVED_OFFSET <= HEADER_LEN) };
        const { assert!(HEADER_COMMITTED_OFFSET.is_multiple_of(8)) };
        assert_eq!(RECORD_CHECKSUM_OFFSET, RECORD_LENGTH_OFFSET + 4);
        assert_eq!(RECORD_SEQ_OFFSET, RECORD_CHECKSUM_OFFSET + 4);
        assert_eq!(RECORD_HEADER_LEN, RECORD_SEQ_OFFSET + 8);
        assert_eq!(HEADER_LEN % RECORD_ALIGN, 0);
    }

    #[test]
    fn header_round_trips_and_detects_a_flipped_bit() {
        let header = SegmentHeader {
            first_seq: 42,
            segment_size: 4096,
        };
        let mut buf = [0u8; HEADER_LEN];
        encode_header(header, &mut buf);
        assert_eq!(decode_header(&buf), Ok(header));
        buf[HEADER_FIRST_SEQ_OFFSET] ^= 1;
        assert_eq!(decode_header(&buf), Err(HeaderError::ChecksumMismatch));
        assert_eq!(
            decode_header(&[0u8; HEADER_LEN]),
            Err(HeaderError::BadMagic)
        );
    }

    #[test]
    fn commit_mark_round_trips_leaves_the_header_alone_and_is_absent_when_damaged() {
        let header = SegmentHeader {
            first_seq: 42,
            segment_size: 4096,
        };
        let mut buf = [0u8; HEADER_LEN];
        encode_header(header, &mut buf);
        assert_eq!(decode_commit_mark(&buf), None, "a new header has no mark");
        encode_commit_mark(57, &mut buf);
        assert_eq!(decode_commit_mark(&buf), Some(57));
        assert_eq!(decode_header(&buf), Ok(header));
        clear_commit_mark(&mut buf);
        assert_eq!(decode_commit_mark(&buf), None);
        assert_eq!(decode_header(&buf), Ok(header));
        encode_commit_mark(0, &mut buf);
        assert_eq!(decode_commit_mark(&buf), Some(0));
        buf[HEADER_COMMITTED_OFFSET + 3] ^= 0x10;
        assert_eq!(decode_commit_mark(&buf), None);
        assert_eq!(decode_commit_mark(&buf[..HEADER_COMMITTED_OFFSET]), None);
    }

    #[test]
    fn record_round_trips_for_every_small_length() {
        for payload_len in 0..40 {
            let payload: Vec<u8> = (0..payload_len as u8).collect();
            let mut buf = vec![0xAA; record_len(payload_len)];
            encode_record(7, &payload, &mut buf);
            let record = decode_record(&buf).unwrap();
            assert_eq!((record.seq, record.payload), (7, &payload[..]));
            assert_eq!(record.encoded_len(), buf.len());
            assert_eq!(buf.len() % RECORD_ALIGN, 0);
        }
    }

    #[test]
    fn zero_header_and_short_buffers_are_typed() {
        assert_eq!(decode_record(&[0; 32]), Err(RecordError::Zero));
        assert_eq!(decode_record(&[1; 8]), Err(RecordError::HeaderTruncated));
        let mut buf = vec![0; record_len(8)];
        encode_record(1, &[9; 8], &mut buf);
        assert_eq!(
            decode_record(&buf[..buf.len() - 8]),
            Err(RecordError::LengthOutOfBounds { payload_len: 8 })
        );
    }

    #[test]
    fn payload_len_max_fits_exactly() {
        for segment_size in [SEGMENT_SIZE_MIN, 100, 4096, 4100] {
            let max = payload_len_max(segment_size);
            assert!(HEADER_LEN + record_len(max) <= segment_size as usize);
            assert!(HEADER_LEN + record_len(max + 1) > segment_size as usize);
        }
    }

    proptest! {
        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(record) = decode_record(&bytes) {
                prop_assert!(record.encoded_len() <= bytes.len());
            }
            let _ = decode_header(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_mutated_records(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            flip_idx in any::<usize>(),
            truncate_to in any::<usize>(),
        ) {
            let mut buf = vec![0; record_len(payload.len())];
            encode_record(3, &payload, &mut buf);
            let bit = flip_idx % (buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            let in_padding = bit / 8 >= RECORD_HEADER_LEN + payload.len();
            let decoded = decode_record(&buf);
            // A flipped bit outside the padding is always caught (CRC32C detects every 1-bit error).
            prop_assert_eq!(decoded.is_ok(), in_padding);
            let _ = decode_record(&buf[..truncate_to % (buf.len() + 1)]);
        }
    }
}
