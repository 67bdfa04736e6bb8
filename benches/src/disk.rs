//! The disk's sync cost, measured the same way by `journal_bench` and `latency`: the journal's
//! one-record `commit` and a plain 4 KiB write followed by `File::sync_data` (fdatasync).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use bourse_journal::{Durability, FsStorage, Journal, JournalConfig};
use hdrhistogram::Histogram;

/// Untimed samples before each measurement.
const UNTIMED: usize = 20;

/// A histogram of nanoseconds from 1 ns to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram")
}

/// Times `n` `commit`s of one `payload_len`-byte record each (the append untimed) in a journal
/// opened in `dir` with `durability` and default segments. In `Durable` mode a commit is one
/// `msync(MS_SYNC)` of the dirty range (one or two 4 KiB pages).
pub fn commit_one_record(
    dir: &Path,
    durability: Durability,
    payload_len: usize,
    n: usize,
) -> Histogram<u64> {
    let mut journal = Journal::open(
        FsStorage::new(dir).expect("journal dir"),
        JournalConfig {
            durability,
            ..JournalConfig::default()
        },
    )
    .expect("open journal");
    let payload = vec![0x3Cu8; payload_len];
    let first = journal.next_seq();
    let mut h = new_histogram();
    for (i, seq) in (first..first + (n + UNTIMED) as u64).enumerate() {
        journal.append(seq, &payload).expect("append");
        let start = Instant::now();
        journal.commit().expect("commit");
        let ns = start.elapsed().as_nanos() as u64;
        if i >= UNTIMED {
            h.saturating_record(ns);
        }
    }
    h
}

/// Times `n` `File::sync_data` calls, each after a 4 KiB `write_at` to the file at `path`:
/// in place (`append == false`: pages of a 4 MiB file written and synced beforehand, in turn,
/// so no metadata changes) or at the end (the file grows, so its size is committed too).
pub fn file_sync(path: &Path, n: usize, append: bool) -> Histogram<u64> {
    const PAGE: u64 = 4096;
    const IN_PLACE_PAGES: u64 = 1024;
    let mut file: File = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .expect("open file");
    let page = [0x42u8; PAGE as usize];
    if !append {
        for _ in 0..IN_PLACE_PAGES {
            file.write_all(&page).expect("prefill");
        }
        file.sync_all().expect("sync prefill");
    }
    let mut h = new_histogram();
    for i in 0..(n + UNTIMED) as u64 {
        let offset = if append {
            i * PAGE
        } else {
            (i % IN_PLACE_PAGES) * PAGE
        };
        file.write_all_at(&page, offset).expect("write");
        let start = Instant::now();
        file.sync_data().expect("sync_data");
        let ns = start.elapsed().as_nanos() as u64;
        if i as usize >= UNTIMED {
            h.saturating_record(ns);
        }
    }
    h
}
