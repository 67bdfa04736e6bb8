//! Measures `commit` latency with one 64-byte record per commit, in each durability mode.
//!
//! `cargo run --release -p bourse-journal --example commit_latency [DIR]` (DIR defaults to a
//! fresh directory under the system temporary directory; put it on the disk you care about).

use std::time::Instant;

use bourse_journal::{Durability, FsStorage, Journal, JournalConfig};

const COMMITS: usize = 500;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("bourse-commit-latency-{}", std::process::id())),
    };
    for durability in [Durability::Durable, Durability::Async, Durability::None] {
        let dir = base.join(format!("{durability:?}"));
        let config = JournalConfig {
            segment_size_bytes: 64 << 20,
            durability,
            ..JournalConfig::default()
        };
        let mut journal = Journal::open(FsStorage::new(&dir)?, config)?;
        let payload = [7u8; 64];
        let mut latencies_ns = Vec::with_capacity(COMMITS);
        for seq in 1..=COMMITS as u64 {
            journal.append(seq, &payload)?;
            let started = Instant::now();
            journal.commit()?;
            latencies_ns.push(started.elapsed().as_nanos() as u64);
        }
        latencies_ns.sort_unstable();
        let percentile = |p: usize| latencies_ns[(latencies_ns.len() - 1) * p / 100] as f64 / 1e3;
        println!(
            "{durability:?}: {COMMITS} commits of one 64-byte record: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            percentile(50),
            percentile(99),
            percentile(100)
        );
        drop(journal);
        std::fs::remove_dir_all(&dir)?;
    }
    // Only removes the base directory if it is empty (it is, unless it held other files).
    let _ = std::fs::remove_dir(&base);
    Ok(())
}
