//! Snapshot files in a directory: atomic writes, retention, and loading the newest good one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bourse_engine::{Engine, EngineImage};

use crate::error::SnapshotError;
use rkyv::util::AlignedVec;

use crate::format::{Encoded, HEADER_LEN, decode, encode, read_aligned};

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
const SEQ_DIGITS: usize = 20;

/// `snapshot-<seq, 20 digits>.snap`: names sort in sequence order.
pub fn snapshot_file_name(seq: u64) -> String {
    format!("{PREFIX}{seq:0SEQ_DIGITS$}{SUFFIX}")
}

fn seq_of_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The snapshots in `dir`, oldest first.
pub fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| SnapshotError::io(dir, e))? {
        let entry = entry.map_err(|e| SnapshotError::io(dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(seq_of_name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes the snapshot of `image`, taken after command `seq`, as `dir/snapshot-<seq>.snap`:
/// into a temporary file, fsynced, renamed into place, then the directory fsynced. A crash at
/// any step leaves either the old set of snapshots or the new one (plus perhaps a temporary
/// file, which loading ignores and the next write of the same seq replaces). Then deletes all
/// but the newest `keep_newest` snapshots.
pub fn write_snapshot(
    dir: &Path,
    seq: u64,
    image: &EngineImage,
    keep_newest: usize,
) -> Result<PathBuf, SnapshotError> {
    if keep_newest == 0 {
        return Err(SnapshotError::KeepNone);
    }
    let encoded = encode(seq, image)?;
    write_encoded(dir, seq, &encoded, keep_newest)
}

/// [`write_snapshot`] of bytes already [`encode`]d for `seq` (so the encoding can be timed or
/// done elsewhere).
pub fn write_encoded(
    dir: &Path,
    seq: u64,
    encoded: &Encoded,
    keep_newest: usize,
) -> Result<PathBuf, SnapshotError> {
    write_parts(dir, seq, &[&encoded.header, &encoded.payload], keep_newest)
}

/// [`write_snapshot`] of a whole snapshot file's bytes (one fetched from a peer), which the
/// caller has checked ([`crate::decode`]) is the snapshot of command `seq`.
pub fn write_file_bytes(
    dir: &Path,
    seq: u64,
    bytes: &[u8],
    keep_newest: usize,
) -> Result<PathBuf, SnapshotError> {
    write_parts(dir, seq, &[bytes], keep_newest)
}

fn write_parts(
    dir: &Path,
    seq: u64,
    parts: &[&[u8]],
    keep_newest: usize,
) -> Result<PathBuf, SnapshotError> {
    if keep_newest == 0 {
        return Err(SnapshotError::KeepNone);
    }
    let path = dir.join(snapshot_file_name(seq));
    let tmp = dir.join(format!(".{}.tmp", snapshot_file_name(seq)));
    {
        let mut file = File::create(&tmp).map_err(|e| SnapshotError::io(&tmp, e))?;
        for part in parts {
            file.write_all(part)
                .map_err(|e| SnapshotError::io(&tmp, e))?;
        }
        file.sync_all().map_err(|e| SnapshotError::io(&tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| SnapshotError::io(&path, e))?;
    sync_dir(dir)?;
    let all = list_snapshots(dir)?;
    let n_old = all.len().saturating_sub(keep_newest);
    for (_, old) in &all[..n_old] {
        fs::remove_file(old).map_err(|e| SnapshotError::io(old, e))?;
    }
    if n_old > 0 {
        sync_dir(dir)?;
    }
    Ok(path)
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SnapshotError::io(dir, e))
}

/// A snapshot that [`load_newest`] passed over, and why.
#[derive(Debug)]
pub struct Skipped {
    pub path: PathBuf,
    pub error: SnapshotError,
}

/// What [`load_newest`] found.
#[derive(Debug)]
pub struct Recovered {
    /// The newest snapshot that passed every check: its sequence number and engine.
    pub newest: Option<(u64, Engine)>,
    /// Newer snapshots that failed a check, newest first.
    pub skipped: Vec<Skipped>,
}

/// Loads the newest snapshot in `dir` that passes every check, falling back to older ones.
/// Errors only if the directory cannot be listed; a snapshot that cannot be read or fails a
/// check is reported in [`Recovered::skipped`].
pub fn load_newest(dir: &Path) -> Result<Recovered, SnapshotError> {
    load_newest_at_most(dir, u64::MAX)
}

/// [`load_newest`] among the snapshots at or before `max_seq` (a read model that is behind
/// the newest snapshot rebuilds from an older one).
pub fn load_newest_at_most(dir: &Path, max_seq: u64) -> Result<Recovered, SnapshotError> {
    let mut skipped = Vec::new();
    let listed = list_snapshots(dir)?;
    for (seq, path) in listed.into_iter().rev().filter(|(seq, _)| *seq <= max_seq) {
        match load_file(&path, seq) {
            Ok(engine) => {
                return Ok(Recovered {
                    newest: Some((seq, engine)),
                    skipped,
                });
            }
            Err(error) => skipped.push(Skipped { path, error }),
        }
    }
    Ok(Recovered {
        newest: None,
        skipped,
    })
}

/// A snapshot file's bytes: mapped read-only (page-aligned, so the payload after the 64-byte
/// header is aligned for the archive and nothing is copied), or read into an aligned buffer
/// where it cannot be mapped (an empty file, a file system without `mmap`).
pub enum SnapshotBytes {
    Mapped(memmap2::Mmap),
    Read(AlignedVec<16>),
}

impl std::ops::Deref for SnapshotBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            SnapshotBytes::Mapped(map) => map,
            SnapshotBytes::Read(buffer) => buffer,
        }
    }
}

/// Opens a snapshot file for [`decode`]: see [`SnapshotBytes`]. The mapping is populated up
/// front (`MAP_POPULATE`: the page cache's pages are mapped in one call rather than one fault
/// at a time).
///
/// Snapshot files are never changed after their rename; if another process truncated one while
/// it is mapped, reading the lost pages would raise `SIGBUS`. Nothing in Bourse does.
pub fn open_snapshot(path: &Path) -> std::io::Result<SnapshotBytes> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() >= HEADER_LEN as u64 {
        // SAFETY: the file is only read through the map, and snapshot files are immutable once
        // renamed into place (see above).
        if let Ok(map) = unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
            return Ok(SnapshotBytes::Mapped(map));
        }
    }
    read_aligned(&mut file).map(SnapshotBytes::Read)
}

fn load_file(path: &Path, name_seq: u64) -> Result<Engine, SnapshotError> {
    let bytes = open_snapshot(path).map_err(|e| SnapshotError::io(path, e))?;
    let (seq, engine) = decode(&bytes)?;
    if seq != name_seq {
        return Err(SnapshotError::SeqMismatch {
            name: name_seq,
            header: seq,
        });
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(seq_of_name(&snapshot_file_name(0)), Some(0));
        assert_eq!(seq_of_name(&snapshot_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(seq_of_name("snapshot-1.snap"), None);
        assert_eq!(seq_of_name(".snapshot-00000000000000000001.snap.tmp"), None);
        assert!(snapshot_file_name(9) < snapshot_file_name(10));
    }
}
