//! Measures recovery's journal replay (`bourse_store::replay`) on exchange-core's mix and prints
//! a markdown report: commands per second (median and range over repetitions), where the time
//! goes, and the cost of opening the journal.
//!
//! ```text
//! cargo run --release -p bourse-benches --bin replay_bench -- [--commands N] [--reps N]
//!     [--segment-mib N] [--seed N] [--dir DIR] [--out PATH] [--no-cold]
//!     [--only replay|serial|read|decode|apply|open]
//! ```
//!
//! Defaults: 5,000,000 commands, 5 repetitions, 64 MiB segments (about 30 s in all).
//!
//! **Workload.** The journal holds exactly the commands the throughput benchmark
//! (`throughput`, the Bourse venue) gives the engine: 3 setup commands (two assets, one
//! product), then per user an account and two deposits (1,000 users), then the mix of
//! [`bourse_benches::mix`] (the book-building GTC orders, then 9% GTC, 3% IOC, 6% cancel, 82%
//! move) up to `--commands` records in all. A second engine driven through
//! [`BourseVenue`] on the same ops must end with the same state hash, which shows the commands
//! are the throughput benchmark's.
//!
//! **Method.** The commands are applied live, encoded with the engine's codec and appended to
//! a journal in a fresh temporary directory (under `--dir`; `Durability::None`, a commit every
//! 1,000 records), which is then closed. Each repetition, with the files in the page cache
//! (warm), times separately:
//!
//! 1. `Journal::open` (it checks every record of every segment);
//! 2. `bourse_store::replay` into a fresh engine (what recovery runs: pipelined on two cores),
//!    then checks the engine's state hash against the live one;
//! 3. `replay_with(.., ReplayMode::Serial)`, the same on one thread, and the same loop over the
//!    reader's owning `Iterator` (a `Vec` per record), as replay was first written;
//! 4. the split: reading the records only (`Reader::next_ref`: framing and CRC32C), reading and
//!    decoding (`codec::decode` and the sequence check), and applying already-decoded commands
//!    only (`Engine::apply` into a sink that drops events).
//!
//! Then, unless `--no-cold`, one cold run: the segment files are synced and evicted from the
//! page cache with `posix_fadvise(POSIX_FADV_DONTNEED)` (checked with `mincore`), and `open`
//! and `replay` are timed again. The exit status is 1 if a replayed state hash differs from
//! the live one. The report goes to stdout (and `--out PATH`); progress goes to stderr.
//!
//! `--only WHAT` runs just one of the measurements (for a profiler: `perf record`), prints
//! its rates and no report.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourse_benches::args::{Flags, or_exit};
use bourse_benches::commands::Live;
use bourse_benches::mix::{Mix, MixConfig};
use bourse_benches::report::{cpu_model, fmt_rate_mk, median, sorted};
use bourse_benches::venues::{BourseVenue, Venue};
use bourse_engine::codec::{decode, encode};
use bourse_engine::{Command, Engine, Limits, StateHash};
use bourse_journal::{Durability, FsStorage, Journal, JournalConfig, segment_file_name};
use bourse_store::replay::{DiscardEvents, ReplayMode, replay, replay_with};

const USAGE: &str = "usage: replay_bench [--commands N (5000000)] [--reps N (5)] \
[--segment-mib N (64)] [--seed N] [--dir DIR] [--out PATH] [--no-cold] \
[--only replay|serial|read|decode|apply|open]";

/// Records per commit while writing the journal.
const COMMIT_EVERY: u64 = 1_000;

struct Args {
    commands: u64,
    reps: usize,
    segment_mib: u64,
    seed: u64,
    dir: Option<PathBuf>,
    out: Option<String>,
    cold: bool,
    only: Option<Measure>,
}

/// One of the measurements, for `--only`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measure {
    Replay,
    Serial,
    Read,
    Decode,
    Apply,
    Open,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        commands: 5_000_000,
        reps: 5,
        segment_mib: 64,
        seed: MixConfig::default().seed,
        dir: None,
        out: None,
        cold: true,
        only: None,
    };
    let mut flags = Flags::from_env(USAGE);
    while let Some(flag) = flags.next_flag()? {
        if flag == "--no-cold" {
            args.cold = false;
            continue;
        }
        let value = flags.value(&flag)?;
        match flag.as_str() {
            "--commands" => args.commands = value.number()?,
            "--reps" => args.reps = value.number()?.max(1) as usize,
            "--segment-mib" => args.segment_mib = value.number()?.max(1),
            "--seed" => args.seed = value.number()?,
            "--dir" => args.dir = Some(value.into_path()),
            "--out" => args.out = Some(value.into_string()),
            "--only" => {
                args.only = Some(value.one_of(
                    "measurement",
                    &[
                        ("replay", Measure::Replay),
                        ("serial", Measure::Serial),
                        ("read", Measure::Read),
                        ("decode", Measure::Decode),
                        ("apply", Measure::Apply),
                        ("open", Measure::Open),
                    ],
                )?);
                args.cold = false;
            }
            _ => return Err(flags.unknown(&flag)),
        }
    }
    Ok(args)
}

// ----- measurements ---------------------------------------------------------------------------

fn journal_config(args: &Args) -> JournalConfig {
    JournalConfig {
        segment_size_bytes: args.segment_mib << 20,
        durability: Durability::None,
        ..JournalConfig::default()
    }
}

fn open(dir: &Path, args: &Args) -> Journal<FsStorage> {
    Journal::open(
        FsStorage::new(dir).expect("journal dir"),
        journal_config(args),
    )
    .expect("open journal")
}

/// Samples of one measurement, in seconds.
#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }

    fn sorted(&self) -> Vec<f64> {
        sorted(&self.0)
    }

    fn median(&self) -> f64 {
        median(&self.sorted())
    }

    /// "median (min–max)" as a rate of `count` per second.
    fn rate(&self, count: u64) -> String {
        let v = self.sorted();
        let r = |s: f64| fmt_rate(count as f64 / s);
        format!("{} ({}–{})", r(self.median()), r(v[v.len() - 1]), r(v[0]))
    }

    /// "median (min–max)" in ms.
    fn ms(&self) -> String {
        let v = self.sorted();
        format!(
            "{:.0} ms ({:.0}–{:.0})",
            self.median() * 1e3,
            v[0] * 1e3,
            v[v.len() - 1] * 1e3
        )
    }

    /// Nanoseconds per item, median.
    fn ns_per(&self, count: u64) -> f64 {
        self.median() * 1e9 / count as f64
    }
}

/// A rate per second: "1.23 M/s", "456 k/s".
fn fmt_rate(r: f64) -> String {
    format!("{}/s", fmt_rate_mk(r))
}

/// Replays into a fresh engine; returns the time and checks the count and hash.
fn timed_replay(
    journal: &Journal<FsStorage>,
    mode: Option<ReplayMode>,
    n: u64,
    live_hash: &StateHash,
    failures: &mut Vec<String>,
) -> Duration {
    let mut engine = Engine::new(Limits::default());
    let mut last = 0;
    let mut progress = |applied| last = applied;
    let start = Instant::now();
    let applied = match mode {
        None => replay(journal, journal.first_seq(), &mut engine, &mut progress),
        Some(mode) => replay_with(
            journal,
            journal.first_seq(),
            &mut engine,
            &mut progress,
            mode,
        ),
    }
    .expect("replay");
    let elapsed = start.elapsed();
    let label = mode.map_or("replay".to_string(), |m| format!("replay_with {m:?}"));
    if applied != n || last != n {
        failures.push(format!(
            "{label}: applied {applied} (progress {last}), expected {n}"
        ));
    }
    let hash = engine.state_hash();
    if hash != *live_hash {
        failures.push(format!(
            "{label}: state hash {hash:?} differs from the live engine's {live_hash:?}"
        ));
    }
    drop(engine);
    elapsed
}

/// Replay as it was first written: the owning `Iterator` of the reader (a `Vec` per record),
/// decode, sequence check and apply, on one thread.
fn timed_replay_owned(
    journal: &Journal<FsStorage>,
    live_hash: &StateHash,
    failures: &mut Vec<String>,
) -> Duration {
    timed_engine(
        "owned-record replay",
        live_hash,
        failures,
        |engine, sink| {
            for record in journal.read_from(journal.first_seq()).expect("read_from") {
                let record = record.expect("record");
                let command = decode(&record.payload).expect("decode");
                assert_eq!(command.seq, record.seq);
                let _ = engine.apply(&command, sink);
            }
        },
    )
}

/// Reads every record (framing and CRC32C), optionally decoding each too.
fn timed_read(journal: &Journal<FsStorage>, decode_too: bool, n: u64) -> Duration {
    let start = Instant::now();
    let mut reader = journal.read_from(journal.first_seq()).expect("read_from");
    let mut count = 0u64;
    let mut bytes = 0usize;
    while let Some(record) = reader.next_ref() {
        let record = record.expect("record");
        if decode_too {
            let command = decode(record.payload).expect("decode");
            assert_eq!(command.seq, record.seq);
            black_box(&command);
        } else {
            bytes += black_box(record.payload).len();
        }
        count += 1;
    }
    let elapsed = start.elapsed();
    black_box(bytes);
    assert_eq!(count, n);
    elapsed
}

/// Applies already-decoded commands to a fresh engine.
fn timed_apply(
    commands: &[Command],
    live_hash: &StateHash,
    failures: &mut Vec<String>,
) -> Duration {
    timed_engine("apply only", live_hash, failures, |engine, sink| {
        for command in commands {
            let _ = engine.apply(command, sink);
        }
    })
}

/// Times `run` on a fresh engine whose events are dropped, then checks the engine's state
/// hash against the live one (a failure named `label` if it differs).
fn timed_engine(
    label: &str,
    live_hash: &StateHash,
    failures: &mut Vec<String>,
    run: impl FnOnce(&mut Engine, &mut DiscardEvents),
) -> Duration {
    let mut engine = Engine::new(Limits::default());
    let mut sink = DiscardEvents;
    let start = Instant::now();
    run(&mut engine, &mut sink);
    let elapsed = start.elapsed();
    if engine.state_hash() != *live_hash {
        failures.push(format!(
            "{label}: state hash differs from the live engine's"
        ));
    }
    elapsed
}

fn segment_files(dir: &Path, journal: &Journal<FsStorage>) -> Vec<PathBuf> {
    journal
        .segment_first_seqs()
        .iter()
        .map(|&first| dir.join(segment_file_name(first)))
        .collect()
}

/// Syncs `path` and asks the kernel to drop its pages from the page cache; returns the
/// fraction of its pages still resident afterwards (by `mincore`), if it could tell.
fn evict(path: &Path) -> std::io::Result<Option<f64>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)?;
    file.sync_all()?;
    let len = file.metadata()?.len() as usize;
    // SAFETY: plain syscalls on a file descriptor we own; the mapping is read-only, used only
    // for `mincore`, and unmapped before returning.
    unsafe {
        let rc = libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if len == 0 {
            return Ok(Some(0.0));
        }
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if map == libc::MAP_FAILED {
            return Ok(None);
        }
        let page = libc::sysconf(libc::_SC_PAGESIZE).max(1) as usize;
        let mut vec = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(map, len, vec.as_mut_ptr());
        libc::munmap(map, len);
        if rc != 0 {
            return Ok(None);
        }
        let resident = vec.iter().filter(|&&b| b & 1 == 1).count();
        Ok(Some(resident as f64 / vec.len() as f64))
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "a benchmark run in its order (set up, measure, report), its figures kept in local variables"
)]
fn main() {
    let args = or_exit(parse_args());
    let config = MixConfig {
        seed: args.seed,
        ..MixConfig::default()
    };
    let setup_commands = 3 + 3 * u64::from(config.users);
    let floor = setup_commands + config.target_orders as u64;
    if args.commands <= floor {
        eprintln!("--commands must exceed {floor} (setup and the initial book)");
        std::process::exit(2);
    }
    let n = args.commands;
    let started = Instant::now();

    // ----- generate, apply live, journal ------------------------------------------------
    let t = Instant::now();
    let mix = Mix::generate(&config, 0, (n - floor) as usize);
    eprintln!("generated {} ops in {:.2?}", mix.ops.len(), t.elapsed());

    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("bourse-replay-bench-")
        .tempdir_in(&base)
        .expect("temporary directory");
    let dir = tmp.path().to_path_buf();
    let mut journal = open(&dir, &args);
    let mut live = Live::new();
    let mut buf = Vec::with_capacity(256);
    let mut payload_bytes = 0u64;
    let mut append = |command: &Command| {
        buf.clear();
        encode(command, &mut buf);
        payload_bytes += buf.len() as u64;
        journal.append(command.seq, &buf).expect("append");
        if command.seq.is_multiple_of(COMMIT_EVERY) {
            journal.commit().expect("commit");
        }
    };
    let t = Instant::now();
    live.setup(config.users, &mut append);
    for op in &mix.ops {
        live.op(op, &mut append);
    }
    let live_time = t.elapsed();
    journal.commit().expect("commit");
    assert_eq!(live.seq, n, "journaled command count");
    let live_hash = live.engine.state_hash();
    let rejected = live.rejected;
    let segments = segment_files(&dir, &journal);
    drop(journal);
    let file_bytes: u64 = segments
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    eprintln!(
        "live (apply + encode + append): {n} commands in {live_time:.2?}, {} rejected; journal \
         {} segments, {:.0} MiB of files",
        rejected,
        segments.len(),
        file_bytes as f64 / (1u64 << 20) as f64
    );

    // The same ops through the throughput benchmark's adapter: the same end state, so the
    // journal holds its commands.
    let mut venue = BourseVenue::new(config.users);
    for op in &mix.ops {
        venue.apply(op);
    }
    let mut failures = Vec::new();
    if venue.engine.state_hash() != live_hash {
        failures.push("the throughput benchmark's Bourse venue ends in another state".into());
    }
    if let Err(e) = venue.verify(&mix.resting) {
        failures.push(format!(
            "final book differs from the generator's model: {e}"
        ));
    }
    let resting = venue.engine.n_open_orders();
    drop(venue);

    // The decoded commands, for "apply only".
    let decoded: Vec<Command> = {
        let journal = open(&dir, &args);
        let mut reader = journal.read_from(1).expect("read_from");
        let mut out = Vec::with_capacity(n as usize);
        while let Some(record) = reader.next_ref() {
            out.push(decode(record.expect("record").payload).expect("decode"));
        }
        out
    };

    // ----- warm repetitions --------------------------------------------------------------
    let mut open_t = Samples::default();
    let mut auto_t = Samples::default();
    let mut serial_t = Samples::default();
    let mut owned_t = Samples::default();
    let mut read_t = Samples::default();
    let mut read_decode_t = Samples::default();
    let mut apply_t = Samples::default();
    if let Some(only) = args.only {
        for rep in 0..args.reps {
            let t = Instant::now();
            let journal = open(&dir, &args);
            let open_time = t.elapsed();
            let d = match only {
                Measure::Open => open_time,
                Measure::Replay => timed_replay(&journal, None, n, &live_hash, &mut failures),
                Measure::Serial => timed_replay(
                    &journal,
                    Some(ReplayMode::Serial),
                    n,
                    &live_hash,
                    &mut failures,
                ),
                Measure::Read => timed_read(&journal, false, n),
                Measure::Decode => timed_read(&journal, true, n),
                Measure::Apply => timed_apply(&decoded, &live_hash, &mut failures),
            };
            eprintln!(
                "rep {}/{}: {} ({:.0} ms)",
                rep + 1,
                args.reps,
                fmt_rate(n as f64 / d.as_secs_f64()),
                d.as_secs_f64() * 1e3
            );
        }
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        // `exit` runs no destructors: remove the journal first.
        drop(tmp);
        std::process::exit(i32::from(!failures.is_empty()));
    }
    for rep in 0..args.reps {
        let t = Instant::now();
        let journal = open(&dir, &args);
        open_t.push(t.elapsed());
        auto_t.push(timed_replay(&journal, None, n, &live_hash, &mut failures));
        serial_t.push(timed_replay(
            &journal,
            Some(ReplayMode::Serial),
            n,
            &live_hash,
            &mut failures,
        ));
        owned_t.push(timed_replay_owned(&journal, &live_hash, &mut failures));
        read_t.push(timed_read(&journal, false, n));
        read_decode_t.push(timed_read(&journal, true, n));
        drop(journal);
        apply_t.push(timed_apply(&decoded, &live_hash, &mut failures));
        eprintln!(
            "rep {}/{}: open {:.0} ms; replay {}; serial {}; owned records {}; read {}; \
             read+decode {}; apply {}",
            rep + 1,
            args.reps,
            open_t.0[rep] * 1e3,
            fmt_rate(n as f64 / auto_t.0[rep]),
            fmt_rate(n as f64 / serial_t.0[rep]),
            fmt_rate(n as f64 / owned_t.0[rep]),
            fmt_rate(n as f64 / read_t.0[rep]),
            fmt_rate(n as f64 / read_decode_t.0[rep]),
            fmt_rate(n as f64 / apply_t.0[rep]),
        );
    }
    drop(decoded);

    // ----- one cold run ------------------------------------------------------------------
    let cold = if args.cold {
        let mut resident_max: Option<f64> = Some(0.0);
        let mut error = None;
        for path in &segments {
            match evict(path) {
                Ok(Some(f)) => resident_max = resident_max.map(|m| m.max(f)),
                Ok(None) => resident_max = None,
                Err(e) => error = Some(e),
            }
        }
        match error {
            Some(e) => Err(format!("could not evict the segment files: {e}")),
            None => {
                let t = Instant::now();
                let journal = open(&dir, &args);
                let open_cold = t.elapsed();
                let replay_cold = timed_replay(&journal, None, n, &live_hash, &mut failures);
                Ok((resident_max, open_cold, replay_cold))
            }
        }
    } else {
        Err("not measured (--no-cold)".into())
    };

    // ----- report ------------------------------------------------------------------------
    let median_rate = n as f64 / auto_t.median();
    let mut r = String::new();
    writeln!(r, "## Journal replay (bourse_store::replay)\n").unwrap();
    writeln!(
        r,
        "{n} commands: {setup_commands} setup (2 assets, 1 product, {} accounts with 2 deposits \
         each), then exchange-core's mix ({} book-building GTC orders, then 9% GTC, 3% IOC, 6% \
         cancel, 82% move), seed {:#x}; {rejected} rejected live; {resting} orders rest at \
         the end. Journal: {} segment(s) of {} MiB, {:.0} MiB of payload ({:.1} bytes a \
         command). CPU: {}, {} cores. {} repetitions, warm page cache; live (apply + encode + \
         append) took {:.2} s.\n",
        config.users,
        config.target_orders,
        config.seed,
        segments.len(),
        args.segment_mib,
        payload_bytes as f64 / (1u64 << 20) as f64,
        payload_bytes as f64 / n as f64,
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        args.reps,
        live_time.as_secs_f64(),
    )
    .unwrap();
    writeln!(
        r,
        "| measured | commands/s, median (range) | ns/command | time |"
    )
    .unwrap();
    writeln!(r, "|---|---|---|---|").unwrap();
    let mut row = |name: &str, s: &Samples| {
        writeln!(
            r,
            "| {name} | {} | {:.0} | {} |",
            s.rate(n),
            s.ns_per(n),
            s.ms()
        )
        .unwrap();
    };
    row(
        "`replay` (pipelined: read + decode thread, apply thread)",
        &auto_t,
    );
    row("`replay_with(Serial)` (one thread)", &serial_t);
    row(
        "serial over the owning `Iterator` (a `Vec` per record; replay before `next_ref`)",
        &owned_t,
    );
    row("split: read only (framing, CRC32C)", &read_t);
    row("split: read + decode", &read_decode_t);
    row("split: apply only (decoded commands)", &apply_t);
    row("`Journal::open` (checks every record)", &open_t);
    writeln!(r).unwrap();
    match &cold {
        Ok((resident, open_cold, replay_cold)) => writeln!(
            r,
            "Cold page cache (one run; after `posix_fadvise(DONTNEED)`, {} of the pages still \
             resident): `Journal::open` {:.0} ms, then `replay` {} ({:.0} ms); open + replay \
             {}.\n",
            resident.map_or("unknown share".to_string(), |f| format!(
                "{:.1}%",
                f * 100.0
            )),
            open_cold.as_secs_f64() * 1e3,
            fmt_rate(n as f64 / replay_cold.as_secs_f64()),
            replay_cold.as_secs_f64() * 1e3,
            fmt_rate(n as f64 / (*open_cold + *replay_cold).as_secs_f64()),
        )
        .unwrap(),
        Err(why) => writeln!(r, "Cold page cache: {why}.\n").unwrap(),
    }
    writeln!(
        r,
        "Target (issue 4): at least 5 M commands/s: {} ({}).",
        if median_rate >= 5e6 { "met" } else { "missed" },
        fmt_rate(median_rate)
    )
    .unwrap();
    if !failures.is_empty() {
        writeln!(r, "\n**FAILED:**").unwrap();
        for f in &failures {
            writeln!(r, "- {f}").unwrap();
        }
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    print!("{r}");
    if let Some(path) = &args.out {
        std::fs::write(path, &r).expect("write --out");
        eprintln!("report written to {path}");
    }
    drop(tmp);
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}
