//! The journal's typed errors.

use std::io;
use std::path::PathBuf;

use crate::format::{HeaderError, RecordError};

/// Everything the journal can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed; `action` says which, `path` where.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the journal was doing ("create segment", "sync segment", ...).
        action: &'static str,
        /// The segment file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A commit was asked for while a deferred one ([`crate::Journal::start_commit`]) is out.
    #[error("a deferred commit is still out: finish it first")]
    CommitInFlight,
    /// `append` was given a sequence number other than the next one.
    #[error("sequence number {found} appended, the next one is {expected}")]
    SequenceOutOfOrder {
        /// The only sequence number `append` accepts now.
        expected: u64,
        /// The one it was given.
        found: u64,
    },
    /// The sequence number would reach [`crate::SEQ_MAX`].
    #[error("sequence numbers are exhausted")]
    SequenceExhausted,
    /// The record does not fit in an empty segment.
    #[error(
        "a payload of {payload_len} bytes does not fit in a segment (at most {payload_len_max})"
    )]
    RecordTooLarge {
        /// The payload length.
        payload_len: usize,
        /// The largest payload the configured segment size holds.
        payload_len_max: usize,
    },
    /// A sync failed earlier; the writer accepts nothing more (reopen to recover).
    #[error("the journal stopped after a failed sync ({cause}); reopen it to recover")]
    Stopped {
        /// The failure that stopped it.
        cause: String,
    },
    /// Damaged bytes that are not a torn tail: refused, nothing was cut.
    #[error("corrupt journal: {path} at byte {offset}: {kind}")]
    Corruption {
        /// The segment file.
        path: PathBuf,
        /// Byte offset in that file.
        offset: u64,
        /// What is wrong there.
        kind: CorruptionKind,
    },
    /// A read asked for a sequence number the journal does not hold.
    #[error("sequence number {seq} is not in the journal (it holds {first}..{next})")]
    NotRetained {
        /// The one asked for.
        seq: u64,
        /// The oldest retained sequence number.
        first: u64,
        /// The next sequence number to be appended.
        next: u64,
    },
    /// The configuration is out of range.
    #[error("invalid journal configuration: {0}")]
    InvalidConfig(&'static str),
}

/// What is wrong at a corrupt position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The segment header does not decode.
    #[error("bad segment header: {0}")]
    Header(HeaderError),
    /// The header decodes but disagrees with the file (name or length).
    #[error(
        "segment header says first sequence {first_seq} and {segment_size} bytes; the file disagrees"
    )]
    HeaderMismatch {
        /// From the header.
        first_seq: u64,
        /// From the header.
        segment_size: u64,
    },
    /// A damaged record with valid records after it, or in a segment that is not the last.
    #[error("bad record ({0}) followed by more data")]
    Record(RecordError),
    /// A valid record with the wrong sequence number.
    #[error("record has sequence number {found}, expected {expected}")]
    SequenceMismatch {
        /// The sequence number that belongs here.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A segment does not start where the previous one ended.
    #[error("segment starts at sequence {found}, the previous one ends before {expected}")]
    SegmentGap {
        /// Where the previous segment ended.
        expected: u64,
        /// Where this one starts.
        found: u64,
    },
}

/// Shorthand for the journal's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
