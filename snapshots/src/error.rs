//! The crate's one error type.

use std::path::PathBuf;

use bourse_engine::ImageError;

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("file too short for a header: {len} bytes")]
    TooShort { len: usize },
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    #[error("header checksum mismatch")]
    HeaderChecksum,
    #[error(
        "format version {found} is not supported (this build reads versions {oldest} to {supported})"
    )]
    UnsupportedVersion {
        found: u32,
        oldest: u32,
        supported: u32,
    },
    #[error("payload length {declared} in the header, {actual} bytes in the file")]
    LengthMismatch { declared: u64, actual: u64 },
    #[error("payload of {len} bytes is over the maximum")]
    PayloadTooLarge { len: u64 },
    #[error("payload checksum mismatch")]
    PayloadChecksum,
    #[error("payload does not validate or decode: {0}")]
    Decode(String),
    #[error("image could not be encoded: {0}")]
    Encode(String),
    #[error("invalid engine image: {0}")]
    Image(#[from] ImageError),
    #[error("file name says sequence {name}, header says {header}")]
    SeqMismatch { name: u64, header: u64 },
    #[error("keep_newest must be at least 1")]
    KeepNone,
    #[error("fork: {0}")]
    Fork(#[source] std::io::Error),
    /// A forked snapshot child failed: its own error text, a panic, a signal, or no report.
    #[error("snapshot child: {0}")]
    Child(String),
}

impl SnapshotError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SnapshotError::Io {
            path: path.into(),
            source,
        }
    }
}
