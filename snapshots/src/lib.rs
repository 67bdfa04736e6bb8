//! Snapshots: point-in-time images of the whole engine state, written atomically and checked
//! on load.
//!
//! A snapshot file is a 64-byte header (magic, format version, the sequence number of the last
//! command applied, payload length, CRC32C of the payload, CRC32C of the header) followed by
//! the `rkyv` archive of an [`EngineImage`]; `FORMAT.md` beside this crate draws the bytes.
//! This build writes version 2 and reads versions 1 (converted on load, with an empty
//! order-key window) and 2.
//!
//! - [`write_snapshot`] writes `snapshot-<seq>.snap` through a temporary file (write, fsync,
//!   rename, fsync of the directory) and keeps the newest `keep_newest` snapshots.
//! - [`fork_snapshot`] (Unix) takes the snapshot in a `fork()`ed child that shares the engine's
//!   memory copy-on-write: the engine thread pauses only for the `fork` (about 20 ms at a million
//!   accounts and a million resting orders); reap the child with [`SnapshotChild::try_wait`] or
//!   [`SnapshotChild::wait`]. The module docs of `fork.rs` give the safety argument.
//! - [`load_newest`] tries the snapshots newest first and returns the first that passes every
//!   check (header, checksum, `bytecheck` validation, [`Engine::from_archived`]), with the files
//!   it skipped and why. It maps each file ([`open_snapshot`]) and builds the engine straight
//!   from the validated archive. It never panics, whatever the files hold.
//! - [`encode`] and [`decode`] are the same without files.
//!
//! Without `fork`, the engine thread's pause is [`Engine::to_image`] (about half a second at
//! that size); encoding and writing can then happen on another thread.
//!
//! ```
//! use bourse_engine::{Engine, Limits};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::new(Limits::default());
//! bourse_snapshots::write_snapshot(dir.path(), 7, &engine.to_image(), 3).unwrap();
//! let recovered = bourse_snapshots::load_newest(dir.path()).unwrap();
//! let (seq, loaded) = recovered.newest.unwrap();
//! assert_eq!(seq, 7);
//! assert_eq!(loaded.state_hash(), engine.state_hash());
//! ```

mod error;
#[cfg(unix)]
mod fork;
mod format;
mod store;
mod v1;

pub use bourse_engine::{Engine, EngineImage, StateHash};
pub use error::SnapshotError;
#[cfg(unix)]
pub use fork::{SnapshotChild, SnapshotOutcome, fork_snapshot};
pub use format::{
    Encoded, FORMAT_VERSION, FORMAT_VERSION_MIN, HEADER_CHECKSUM_OFFSET, HEADER_LEN,
    HEADER_PAYLOAD_CHECKSUM_OFFSET, HEADER_PAYLOAD_LEN_OFFSET, HEADER_RESERVED_OFFSET,
    HEADER_SEQ_OFFSET, HEADER_VERSION_OFFSET, MAGIC, PAYLOAD_LEN_MAX, check_header, decode,
    decode_image, decode_unaligned, encode, read_aligned,
};
pub use store::{
    Recovered, Skipped, SnapshotBytes, list_snapshots, load_newest, load_newest_at_most,
    open_snapshot, snapshot_file_name, write_encoded, write_file_bytes, write_snapshot,
};
