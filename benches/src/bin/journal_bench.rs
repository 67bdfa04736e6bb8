//! Measures the journal (`bourse-journal`) on this machine's disk and prints a markdown report:
//!
//! 1. **Append throughput** per durability mode (`None`, `Async`, `Durable`) for 64- and
//!    256-byte payloads, one `commit` every `--batch` records (default 1,000).
//! 2. **Durable-ack latency** under an open-loop load at a fixed offered rate (default
//!    200,000 records/s) with group commit once per batch window (0.5, 1, 2, 5 ms). The latency
//!    of a record is the end of the `commit` that covered it minus its *intended* arrival time,
//!    so a slow commit delays every record that arrives behind it (no coordinated omission).
//! 3. **Raw sync cost**: one `commit` of a single 64-byte record per mode, and
//!    `File::sync_data` after a 4 KiB write, beside it.
//!
//! ```text
//! cargo run --release -p bourse-benches --bin journal_bench -- [--out PATH] [--dir DIR]
//!     [--batch N] [--reps N] [--throughput-secs S] [--rate N] [--latency-secs S]
//!     [--sync-samples N]
//! ```
//!
//! Defaults take about 40 s. Everything runs on one thread in a fresh temporary directory
//! (under `--dir`, default the system temporary directory; put it on the disk you care
//! about), removed at the end. The report goes to stdout (and to `--out PATH`); progress goes
//! to stderr.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourse_benches::args::{Flags, or_exit};
use bourse_benches::disk::{commit_one_record, file_sync, new_histogram};
use bourse_benches::report::{
    P50_P99, P50_P99_P999, fmt_int, fmt_ns_ms, fmt_rate, labeled_percentiles, median, percentiles,
};
use bourse_journal::format::record_len;
use bourse_journal::{Durability, FsStorage, Journal, JournalConfig};
use hdrhistogram::Histogram;

const USAGE: &str = "usage: journal_bench [--out PATH] [--dir DIR] [--batch N (1000)] \
[--reps N (3)] [--throughput-secs S (2)] [--rate N (200000)] [--latency-secs S (5)] \
[--sync-samples N (1000)]";

/// Segment size for every journal here: the default, 64 MiB.
const SEGMENT_SIZE: u64 = 64 << 20;
/// A throughput repetition stops after this many record bytes on disk (or the time budget).
const THROUGHPUT_BYTES_MAX: u64 = 256 << 20;
/// Batch windows of the open-loop latency test.
const WINDOWS_US: [u64; 4] = [500, 1_000, 2_000, 5_000];
/// Untimed start of each open-loop run.
const LATENCY_WARMUP: Duration = Duration::from_millis(500);
/// Payload of the latency and sync tests.
const SMALL_PAYLOAD: usize = 64;

struct Args {
    out: Option<String>,
    dir: Option<PathBuf>,
    batch: u64,
    reps: usize,
    throughput_secs: f64,
    rate: u64,
    latency_secs: f64,
    sync_samples: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: None,
        dir: None,
        batch: 1_000,
        reps: 3,
        throughput_secs: 2.0,
        rate: 200_000,
        latency_secs: 5.0,
        sync_samples: 1_000,
    };
    let mut flags = Flags::from_env(USAGE);
    while let Some(flag) = flags.next_flag()? {
        let value = flags.value(&flag)?;
        match flag.as_str() {
            "--out" => args.out = Some(value.into_string()),
            "--dir" => args.dir = Some(value.into_path()),
            "--batch" => args.batch = value.number()?.max(1),
            "--reps" => args.reps = value.number()?.max(1) as usize,
            "--throughput-secs" => args.throughput_secs = value.positive_seconds()?,
            "--rate" => args.rate = value.number()?.max(1),
            "--latency-secs" => args.latency_secs = value.positive_seconds()?,
            "--sync-samples" => args.sync_samples = value.number()?.max(10) as usize,
            _ => return Err(flags.unknown(&flag)),
        }
    }
    Ok(args)
}

fn main() {
    let args = or_exit(parse_args());
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("bourse-journal-bench-")
        .tempdir_in(&base)
        .expect("temporary directory");
    let started = Instant::now();

    let mut report = String::new();
    writeln!(report, "## Journal (bourse-journal)\n").unwrap();
    writeln!(
        report,
        "Directory: `{}` ({}). Kernel {}. Segments of {} MiB (the default), preallocated with \
         `posix_fallocate` by the journal's background thread ahead of each roll. One thread.\n",
        tmp.path().display(),
        mount_of(tmp.path()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into()),
        SEGMENT_SIZE >> 20,
    )
    .unwrap();

    throughput_section(&args, tmp.path(), &mut report);
    latency_section(&args, tmp.path(), &mut report);
    sync_section(&args, tmp.path(), &mut report);

    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    print!("{report}");
    if let Some(path) = &args.out {
        std::fs::write(path, &report).expect("write --out");
        eprintln!("report written to {path}");
    }
}

fn config(durability: Durability) -> JournalConfig {
    JournalConfig {
        segment_size_bytes: SEGMENT_SIZE,
        durability,
        ..JournalConfig::default()
    }
}

fn open(dir: &Path, durability: Durability) -> Journal<FsStorage> {
    Journal::open(
        FsStorage::new(dir).expect("journal dir"),
        config(durability),
    )
    .expect("open")
}

/// A fresh, empty subdirectory of `base` for one run.
fn fresh_dir(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("run dir");
    dir
}

fn mode_name(durability: Durability) -> &'static str {
    match durability {
        Durability::None => "None",
        Durability::Async => "Async (msync MS_ASYNC)",
        Durability::Durable => "Durable (msync MS_SYNC)",
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput

struct ThroughputRun {
    records: u64,
    secs: f64,
}

fn throughput_once(
    dir: &Path,
    durability: Durability,
    payload_len: usize,
    args: &Args,
) -> ThroughputRun {
    let mut journal = open(dir, durability);
    let payload = vec![0xA5u8; payload_len];
    let records_max = THROUGHPUT_BYTES_MAX / record_len(payload_len) as u64;
    let budget = Duration::from_secs_f64(args.throughput_secs);
    let mut seq = journal.next_seq();
    let mut records = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..args.batch {
            journal.append(seq, &payload).expect("append");
            seq += 1;
        }
        journal.commit().expect("commit");
        records += args.batch;
        if records >= records_max || start.elapsed() >= budget {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(journal);
    ThroughputRun { records, secs }
}

fn throughput_section(args: &Args, base: &Path, report: &mut String) {
    writeln!(report, "### Append throughput\n").unwrap();
    writeln!(
        report,
        "**Workload.** One thread appends records with a constant payload into a fresh journal \
         and calls `commit` after every {} records (the batch), until {} MiB of records are \
         written or {:.1} s pass, whichever is first; the clock covers every `append` and \
         `commit`, segment rolls included. {} repetitions per row, each in a fresh directory; \
         the median and range are shown. On-disk bytes count the 16-byte record header and the \
         padding to 8 bytes ({} B per 64-byte record, {} B per 256-byte record). MB = 10^6 \
         bytes. `None` and `Async` leave writeback to the kernel, so their figures are the \
         cost of writing into the page cache, not of the disk.\n",
        fmt_int(args.batch),
        THROUGHPUT_BYTES_MAX >> 20,
        args.throughput_secs,
        args.reps,
        record_len(64),
        record_len(256),
    )
    .unwrap();
    writeln!(
        report,
        "| durability | payload | records/s (median) | range | payload MB/s | on-disk MB/s | \
         records per rep |"
    )
    .unwrap();
    writeln!(report, "|---|---:|---:|---:|---:|---:|---:|").unwrap();
    for durability in [Durability::None, Durability::Async, Durability::Durable] {
        for payload_len in [64usize, 256] {
            let mut rates = Vec::new();
            let mut records = 0;
            for rep in 0..args.reps {
                let dir = fresh_dir(base, "throughput");
                let run = throughput_once(&dir, durability, payload_len, args);
                std::fs::remove_dir_all(&dir).expect("remove run dir");
                let rate = run.records as f64 / run.secs;
                eprintln!(
                    "throughput {durability:?} {payload_len} B rep {}/{}: {} records in {:.2} s, \
                     {}/s",
                    rep + 1,
                    args.reps,
                    run.records,
                    run.secs,
                    fmt_rate(rate)
                );
                rates.push(rate);
                records = run.records;
            }
            rates.sort_by(f64::total_cmp);
            let median = median(&rates);
            writeln!(
                report,
                "| {} | {} B | {} | {} – {} | {:.0} | {:.0} | {} |",
                mode_name(durability),
                payload_len,
                fmt_rate(median),
                fmt_rate(rates[0]),
                fmt_rate(rates[rates.len() - 1]),
                median * payload_len as f64 / 1e6,
                median * record_len(payload_len) as f64 / 1e6,
                fmt_int(records),
            )
            .unwrap();
        }
    }
    writeln!(report).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. Open-loop durable-ack latency

struct LatencyRun {
    latency: Histogram<u64>,
    commit: Histogram<u64>,
    batch_len: Histogram<u64>,
    /// The longest time one batch's `append` calls took (a segment roll happens there).
    append_max_ns: u64,
    late_ticks: u64,
    batches: u64,
    rolls: usize,
}

/// Sleeps until shortly before `deadline`, then spins (a plain sleep overshoots by ~50-100 µs).
fn wait_until(deadline: Instant) {
    const SPIN: Duration = Duration::from_micros(150);
    let now = Instant::now();
    if deadline > now + SPIN {
        std::thread::sleep(deadline - now - SPIN);
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

fn latency_once(dir: &Path, rate: u64, window: Duration, secs: f64) -> LatencyRun {
    let mut journal = open(dir, Durability::Durable);
    let payload = [0x5Au8; SMALL_PAYLOAD];
    let warmup_ns = LATENCY_WARMUP.as_nanos();
    let total = ((secs + LATENCY_WARMUP.as_secs_f64()) * rate as f64) as u64;
    // Record i arrives (is intended to) at start + i / rate.
    let intended_ns = |i: u64| i as u128 * 1_000_000_000 / rate as u128;
    let mut run = LatencyRun {
        latency: new_histogram(),
        commit: new_histogram(),
        batch_len: Histogram::new_with_bounds(1, 100_000_000, 3).expect("histogram"),
        append_max_ns: 0,
        late_ticks: 0,
        batches: 0,
        rolls: 0,
    };
    // The first record whose intended arrival is past the warm-up.
    let first_measured = (warmup_ns * rate as u128 / 1_000_000_000) as u64;
    let mut seq = journal.next_seq();
    let mut next = 0u64; // the first record not yet appended
    let start = Instant::now() + Duration::from_millis(5);
    // The batch-window boundary the next batch starts at (`start + tick × window`).
    let mut tick = 1u64;
    while next < total {
        wait_until(start + window * tick as u32);
        let batch_start = Instant::now();
        let elapsed_ns = (batch_start - start).as_nanos();
        // Every record whose intended arrival is at or before now.
        let arrived = ((elapsed_ns * rate as u128 / 1_000_000_000) as u64 + 1).min(total);
        if arrived <= next {
            tick += 1;
            continue;
        }
        for _ in next..arrived {
            journal.append(seq, &payload).expect("append");
            seq += 1;
        }
        let commit_start = Instant::now();
        journal.commit().expect("commit");
        let end = Instant::now();
        let end_ns = (end - start).as_nanos();
        let measured_from = next.max(first_measured);
        let measured = arrived > measured_from;
        if measured {
            for i in measured_from..arrived {
                let latency = end_ns.saturating_sub(intended_ns(i));
                run.latency.saturating_record(latency as u64);
            }
            run.commit
                .saturating_record((end - commit_start).as_nanos() as u64);
            run.batch_len.saturating_record(arrived - next);
            let append_ns = (commit_start - batch_start).as_nanos() as u64;
            run.append_max_ns = run.append_max_ns.max(append_ns);
            run.batches += 1;
        }
        next = arrived;
        // The next boundary; if the commit ran past it, the next batch starts at once (at the
        // last boundary passed) with everything that arrived meanwhile.
        let boundaries_passed = (end_ns / window.as_nanos()) as u64;
        if boundaries_passed > tick {
            run.late_ticks += u64::from(measured);
            tick = boundaries_passed;
        } else {
            tick += 1;
        }
    }
    run.rolls = journal.segment_first_seqs().len() - 1;
    run
}

fn latency_section(args: &Args, base: &Path, report: &mut String) {
    writeln!(report, "### Durable-ack latency, open loop\n").unwrap();
    writeln!(
        report,
        "**Workload.** Records of {SMALL_PAYLOAD} bytes arrive at a fixed offered rate of {} \
         records/s, record *i* at `start + i / rate`, whatever the writer is doing. \
         **Method.** One thread plays both sides: at every batch-window boundary (`start + k × \
         window`; it sleeps, then spins to the boundary) it appends every record whose intended \
         arrival time has passed, calls `commit` in `Durable` mode (one `msync(MS_SYNC)` of the \
         dirty range), and records, for each record in the batch, `commit end − intended \
         arrival`. If a commit ends after the next boundary, the next batch starts at once with \
         everything that arrived meanwhile (the last column counts those commits), so a slow \
         sync counts against every record queued behind it (no coordinated omission). The first \
         {} ms of each run are not recorded; {:.1} s are ({} records). Latency therefore \
         includes the wait for the window to close (on average half a window) plus the sync. \
         A fresh journal per window; with {}-byte records a {} MiB segment fills every {:.1} \
         s, so a run may include a roll; it happens inside `append` (in `Durable` mode: sync \
         the old segment, write the header of the spare prepared in the background, rename it), \
         so its cost shows in the \"appends of a batch, max\" column, not under commit. \
         hdrhistogram, 3 significant digits.\n",
        fmt_int(args.rate),
        LATENCY_WARMUP.as_millis(),
        args.latency_secs,
        fmt_int((args.latency_secs * args.rate as f64) as u64),
        record_len(SMALL_PAYLOAD),
        SEGMENT_SIZE >> 20,
        SEGMENT_SIZE as f64 / (record_len(SMALL_PAYLOAD) as f64 * args.rate as f64),
    )
    .unwrap();
    writeln!(
        report,
        "| window | records | batches (mean size) | p50 | p99 | p99.9 | max | commit p50 | \
         commit p99 | commit max | appends of a batch, max | segment rolls | commits that \
         overran a window |"
    )
    .unwrap();
    writeln!(
        report,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for window_us in WINDOWS_US {
        let dir = fresh_dir(base, "latency");
        let window = Duration::from_micros(window_us);
        let run = latency_once(&dir, args.rate, window, args.latency_secs);
        std::fs::remove_dir_all(&dir).expect("remove run dir");
        let h = &run.latency;
        eprintln!(
            "latency window {window_us} us: {} ({} batches, {} overran)",
            labeled_percentiles(h, &P50_P99_P999, fmt_ns_ms),
            run.batches,
            run.late_ticks
        );
        writeln!(
            report,
            "| {} ms | {} | {} ({:.0}) | {} | {} | {} | {} | {} |",
            window_us as f64 / 1e3,
            fmt_int(h.len()),
            fmt_int(run.batches),
            run.batch_len.mean(),
            percentiles(h, &[0.5, 0.99, 0.999], fmt_ns_ms).join(" | "),
            percentiles(&run.commit, &[0.5, 0.99], fmt_ns_ms).join(" | "),
            fmt_ns_ms(run.append_max_ns),
            run.rolls,
            fmt_int(run.late_ticks),
        )
        .unwrap();
    }
    writeln!(report).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Raw sync cost

fn sync_section(args: &Args, base: &Path, report: &mut String) {
    let n = args.sync_samples;
    writeln!(report, "### Raw sync cost\n").unwrap();
    writeln!(
        report,
        "**Method.** {} timed samples each, after 20 untimed. Journal rows: append one \
         {SMALL_PAYLOAD}-byte record (untimed), then time `commit` alone; in `Durable` mode \
         that is one `msync(MS_SYNC)` of the dirty range (one or two 4 KiB pages). File rows: \
         a plain `File` written with `write_at`, then `sync_data` (fdatasync) timed alone: \
         *in place* overwrites 4 KiB pages in turn within a 4 MiB file written and synced \
         beforehand (no metadata to commit); *append* writes 4 KiB at the end, so the file \
         grows and its size is committed too.\n",
        fmt_int(n as u64)
    )
    .unwrap();
    writeln!(report, "| operation | p50 | p99 | max |").unwrap();
    writeln!(report, "|---|---:|---:|---:|").unwrap();
    let mut row = |name: &str, h: &Histogram<u64>| {
        eprintln!(
            "sync {name}: {}",
            labeled_percentiles(h, &P50_P99, fmt_ns_ms)
        );
        writeln!(
            report,
            "| {name} | {} |",
            percentiles(h, &[0.5, 0.99], fmt_ns_ms).join(" | ")
        )
        .unwrap();
    };
    for durability in [Durability::Durable, Durability::Async, Durability::None] {
        let dir = fresh_dir(base, "sync");
        let h = commit_one_record(&dir, durability, SMALL_PAYLOAD, n);
        std::fs::remove_dir_all(&dir).expect("remove run dir");
        row(
            &format!(
                "journal `commit` of one {SMALL_PAYLOAD}-byte record, {}",
                mode_name(durability)
            ),
            &h,
        );
    }
    let dir = fresh_dir(base, "sync");
    let h = file_sync(&dir.join("in-place"), n, false);
    row("4 KiB `write_at` in place + `File::sync_data`", &h);
    let h = file_sync(&dir.join("append"), n, true);
    row(
        "4 KiB `write_at` at the end (file grows) + `File::sync_data`",
        &h,
    );
    std::fs::remove_dir_all(&dir).expect("remove run dir");
    writeln!(report).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The machine

/// The file system holding `path`, from `/proc/mounts` (longest matching mount point).
fn mount_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "file system unknown".into();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let point = fields.next()?;
            let fs = fields.next()?;
            path.starts_with(point)
                .then(|| (point.len(), format!("{fs} on {device}, mounted at {point}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "file system unknown".into(), |(_, text)| text)
}
