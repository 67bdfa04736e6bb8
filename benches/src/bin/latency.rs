//! Acknowledgement latency of the pipeline (`bourse-pipeline`) under an open-loop load of
//! exchange-core's mix, per durability mode and topology, over a sweep of offered rates.
//!
//! ```text
//! cargo run --release -p bourse-benches --bin latency -- [--rates 100k,250k,...]
//!     [--durability none,async,durable] [--topology single,parallel] [--seconds S | --commands N]
//!     [--warmup S] [--out-json PATH] [--out-svg PATH] [--markdown] [--quick] [--dir DIR]
//!     [--ring-size N] [--batch-max N] [--spin-us N] [--sender-wait spin|yield]
//!     [--fsync-samples N] [--idle-secs S] [--seed N]
//! ```
//!
//! **Workload.** Exactly the throughput benchmark's Bourse commands
//! ([`bourse_benches::commands::Live`]): the setup (two assets, one product, 1,000 verified
//! accounts with two deposits each) and the 1,000 book-building GTC orders are submitted
//! first and waited for (not timed); then the mix (9% GTC, 3% IOC, 6% cancel, 82% move) is
//! offered at a fixed rate R: `--warmup` seconds untimed, then `--seconds` (or `--commands`)
//! timed.
//!
//! **Method: open loop, no coordinated omission.** A sender thread publishes command *i* at
//! its intended time `t0 + i/R` (it spins when less than a few µs away and yields the CPU
//! otherwise; `--sender-wait spin` never yields). If the ring is full (`Busy`) it retries the
//! same command (counted as a busy retry) and everything behind it is late; the latency of
//! each command is still counted from its *intended* time. The sender hands each ticket with
//! its intended time through a bounded channel to a receiver thread, which waits for the
//! tickets in order (`Ticket::wait`, blocking) and records `ack − intended` in an
//! HdrHistogram (ns, 3 significant digits). A rate whose achieved throughput is under 90% of
//! the offered one, whose p99.9 exceeds 1 s, or where the sender falls more than 1 s behind
//! (the run is then cut short) is unsustainable, and the sweep of that mode and topology stops
//! there.
//!
//! **Checks.** After every run the pipeline is shut down and the data directory reopened with
//! `Store::open` (a fresh replay of the journal): the replayed state hash and last sequence
//! number must equal the pipeline's, every command must have an `Ok` outcome with the next
//! sequence number, and the rejections must be those of the generator's live engine (none).
//! The exit status is 1 if any check fails.
//!
//! Also measured: the disk's sync cost in the same process (4 KiB `write_at` + `fdatasync`,
//! and the journal's one-record durable `commit`, an `msync`) before each durable sweep; the
//! process's CPU time while a started pipeline sits idle; the cost of `Instant::now`.
//!
//! Output: progress on stderr, the markdown tables on stdout with `--markdown`, a JSON file
//! and an SVG plot of the latency percentiles (by default `benches/results/latency.json` and
//! `.svg`; `--quick` writes files only when asked).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use bourse_benches::args::{Flags, or_exit, parse_rate};
use bourse_benches::commands::Live;
use bourse_benches::disk::{commit_one_record, file_sync, new_histogram};
use bourse_benches::mix::{Mix, MixConfig};
use bourse_benches::report::{
    P50_P99, P50_P99_P999, cpu_model, fmt_int, fmt_ns, fmt_rate, labeled_percentiles, percentiles,
};
use bourse_engine::CommandKind;
use bourse_journal::{Durability, JournalConfig};
use bourse_pipeline::{
    Handle, Outcome, Pipeline, PipelineConfig, Stats, SubmitError, SyncMode, Ticket, Topology,
};
use bourse_store::{SegmentFill, Silent, Store, StoreConfig};
use hdrhistogram::Histogram;

const USAGE: &str = "usage: latency [--rates LIST (100k,250k,500k,1M,1.5M,2M,3M)] \
[--durability LIST (none,async,durable)] [--topology LIST (single,parallel)] \
[--seconds S (2)] [--commands N] [--warmup S (0.5)] [--out-json PATH] [--out-svg PATH] \
[--markdown] [--quick] [--dir DIR] [--ring-size N (65536)] [--batch-max N (4096)] \
[--spin-us N (50)] [--client one|two (one)] [--sender-wait spin|yield (yield)] \
[--fsync-samples N (1000)] [--fill zeroes|allocate (zeroes)] [--sync thread|inline (thread)] \
[--idle-secs S (1)] [--seed N]";

/// A run is cut short when the sender falls this far behind its schedule.
const LAG_ABORT_NS: u64 = 1_000_000_000;
/// The sender yields the CPU while its next command is further away than this.
const YIELD_ABOVE_NS: u64 = 3_000;
/// The sender starts this long after the threads are created.
const START_DELAY: Duration = Duration::from_millis(5);

/// Which threads play the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    /// One thread sends on schedule and polls answers in between (the default).
    One,
    /// A sender thread and a receiver thread that blocks on each ticket in turn.
    Two,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SenderWait {
    Spin,
    Yield,
}

struct Args {
    rates: Vec<u64>,
    durabilities: Vec<Durability>,
    topologies: Vec<Topology>,
    seconds: f64,
    commands: Option<u64>,
    warmup: f64,
    out_json: Option<PathBuf>,
    out_svg: Option<PathBuf>,
    markdown: bool,
    quick: bool,
    dir: Option<PathBuf>,
    ring_size: usize,
    batch_max: usize,
    spin_us: u64,
    sender_wait: SenderWait,
    client: Client,
    fsync_samples: usize,
    fill: SegmentFill,
    sync: SyncMode,
    idle_secs: f64,
    seed: u64,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s.trim() {
        "none" => Ok(Durability::None),
        "async" => Ok(Durability::Async),
        "durable" => Ok(Durability::Durable),
        other => Err(format!(
            "unknown durability {other:?} (none, async, durable)"
        )),
    }
}

#[allow(clippy::too_many_lines, reason = "a flag table: one arm per flag")]
fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rates: [
            100_000, 250_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000,
        ]
        .to_vec(),
        durabilities: vec![Durability::None, Durability::Async, Durability::Durable],
        topologies: vec![Topology::Single, Topology::Parallel],
        seconds: 2.0,
        commands: None,
        warmup: 0.5,
        out_json: None,
        out_svg: None,
        markdown: false,
        quick: false,
        dir: None,
        ring_size: PipelineConfig::default().ring_size,
        batch_max: PipelineConfig::default().batch_max,
        spin_us: PipelineConfig::default().spin.as_micros() as u64,
        sender_wait: SenderWait::Yield,
        client: Client::One,
        fsync_samples: 1_000,
        fill: SegmentFill::Zeroes,
        sync: PipelineConfig::default().sync,
        idle_secs: 1.0,
        seed: MixConfig::default().seed,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // `--quick` first, so that explicit flags override what it sets.
    if raw.iter().any(|a| a == "--quick") {
        args.quick = true;
        args.rates = vec![100_000, 500_000];
        args.topologies = vec![Topology::Single];
        args.seconds = 0.2;
        args.warmup = 0.05;
        args.fsync_samples = 200;
        args.idle_secs = 0.2;
    }
    let mut flags = Flags::new(raw, USAGE);
    while let Some(flag) = flags.next_flag()? {
        match flag.as_str() {
            "--quick" => continue,
            "--markdown" => {
                args.markdown = true;
                continue;
            }
            _ => {}
        }
        let value = flags.value(&flag)?;
        match flag.as_str() {
            "--rates" => {
                args.rates = value.list(parse_rate)?;
                args.rates.sort_unstable();
                args.rates.dedup();
            }
            "--durability" => args.durabilities = value.list(parse_durability)?,
            "--topology" => args.topologies = value.list(|t| t.trim().parse::<Topology>())?,
            "--seconds" => args.seconds = value.seconds()?,
            "--commands" => args.commands = Some(value.number()?.max(1)),
            "--warmup" => args.warmup = value.seconds()?,
            "--out-json" => args.out_json = Some(value.into_path()),
            "--out-svg" => args.out_svg = Some(value.into_path()),
            "--dir" => args.dir = Some(value.into_path()),
            "--ring-size" => args.ring_size = value.number()? as usize,
            "--batch-max" => args.batch_max = value.number()?.max(1) as usize,
            "--spin-us" => args.spin_us = value.number()?,
            "--sender-wait" => {
                args.sender_wait = value.one_of(
                    "--sender-wait",
                    &[("spin", SenderWait::Spin), ("yield", SenderWait::Yield)],
                )?
            }
            "--fill" => {
                args.fill = value.one_of(
                    "--fill",
                    &[
                        ("zeroes", SegmentFill::Zeroes),
                        ("allocate", SegmentFill::Allocate),
                    ],
                )?
            }
            "--sync" => {
                args.sync = value.one_of(
                    "--sync",
                    &[("thread", SyncMode::Thread), ("inline", SyncMode::Inline)],
                )?
            }
            "--client" => {
                args.client =
                    value.one_of("--client", &[("one", Client::One), ("two", Client::Two)])?
            }
            "--fsync-samples" => args.fsync_samples = value.number()?.max(10) as usize,
            "--idle-secs" => args.idle_secs = value.seconds()?,
            "--seed" => args.seed = value.number()?,
            _ => return Err(flags.unknown(&flag)),
        }
    }
    if args.rates.is_empty() || args.durabilities.is_empty() || args.topologies.is_empty() {
        return Err(flags.error("empty list"));
    }
    if !args.quick {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        args.out_json
            .get_or_insert_with(|| results.join("latency.json"));
        args.out_svg
            .get_or_insert_with(|| results.join("latency.svg"));
    }
    Ok(args)
}

// ----- the workload ---------------------------------------------------------------------------

/// The commands, generated once for the longest run; each run submits a prefix.
struct Workload {
    /// Setup and the book-building orders: submitted first, not timed.
    setup: Vec<CommandKind>,
    /// The mix after the book is built.
    stream: Vec<CommandKind>,
    /// Positions in `stream` that the generator's live engine rejected.
    rejected_at: Vec<usize>,
}

impl Workload {
    fn generate(seed: u64, stream_len: usize) -> Workload {
        let config = MixConfig {
            seed,
            ..MixConfig::default()
        };
        let mix = Mix::generate(&config, 0, stream_len);
        let mut live = Live::new();
        let mut setup = Vec::with_capacity(3 + 3 * config.users as usize + config.target_orders);
        live.setup(config.users, &mut |c| setup.push(c.kind.clone()));
        let (book, rest) = mix.ops.split_at(config.target_orders);
        for op in book {
            live.op(op, &mut |c| setup.push(c.kind.clone()));
        }
        assert_eq!(live.rejected, 0, "a setup command was rejected");
        let mut stream = Vec::with_capacity(rest.len());
        let mut rejected_at = Vec::new();
        for op in rest {
            let before = live.rejected;
            live.op(op, &mut |c| stream.push(c.kind.clone()));
            if live.rejected != before {
                rejected_at.push(stream.len() - 1);
            }
        }
        Workload {
            setup,
            stream,
            rejected_at,
        }
    }

    fn rejected_below(&self, n: usize) -> u64 {
        self.rejected_at.partition_point(|&i| i < n) as u64
    }
}

// ----- one run --------------------------------------------------------------------------------

struct RunResult {
    durability: Durability,
    topology: Topology,
    rate: u64,
    measured: u64,
    /// Measured commands per second, first intended send to last acknowledgement.
    achieved: f64,
    hist: Histogram<u64>,
    busy_retries: u64,
    batches: u64,
    consumed: u64,
    parks: u64,
    /// The sender fell more than `LAG_ABORT_NS` behind and stopped early.
    aborted: bool,
    /// How late the sender published, worst case (ns after the intended time).
    sender_late_max: u64,
    /// CPU time of the pipeline's threads (and the journal's helper) over the timed part,
    /// warm-up included, per command sent in it.
    pipeline_cpu_per_command: f64,
    /// Durations of the pipeline's durable syncs during the run (warm-up included), ns;
    /// empty when nothing runs on a sync thread.
    sync_times: Histogram<u64>,
    failures: Vec<String>,
}

impl RunResult {
    fn sustainable(&self) -> bool {
        !self.aborted
            && self.achieved >= 0.9 * self.rate as f64
            && self.hist.value_at_quantile(0.999) <= 1_000_000_000
    }

    fn mean_batch(&self) -> f64 {
        self.consumed as f64 / self.batches.max(1) as f64
    }
}

fn store_config(dir: &Path, durability: Durability, fill: SegmentFill) -> StoreConfig {
    StoreConfig {
        journal: JournalConfig {
            durability,
            ..JournalConfig::default()
        },
        segment_fill: fill,
        ..StoreConfig::new(dir)
    }
}

fn pipeline_config(args: &Args, topology: Topology) -> PipelineConfig {
    PipelineConfig {
        topology,
        ring_size: args.ring_size,
        batch_max: args.batch_max,
        spin: Duration::from_micros(args.spin_us),
        sync: args.sync,
        ..PipelineConfig::default()
    }
}

/// Submits `kind`, retrying while the ring is busy; counts the retries.
#[inline]
fn submit(handle: &mut Handle, kind: &CommandKind, busy: &mut u64) -> Result<Ticket, SubmitError> {
    loop {
        match handle.try_submit(kind.clone()) {
            Err(SubmitError::Busy) => {
                *busy += 1;
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

#[inline]
fn ns_since(t0: Instant) -> u64 {
    Instant::now().saturating_duration_since(t0).as_nanos() as u64
}

struct SenderOut {
    busy: u64,
    stats_at_start: Option<Stats>,
    aborted: bool,
    late_max: u64,
    error: Option<String>,
}

struct ReceiverOut {
    hist: Histogram<u64>,
    last_ack_ns: u64,
    received: u64,
    rejected: u64,
    failures: Vec<String>,
}

#[allow(
    clippy::too_many_lines,
    reason = "a benchmark run in its order (set up, measure, report), its figures kept in local variables"
)]
fn run_once(
    args: &Args,
    work: &Workload,
    base: &Path,
    durability: Durability,
    topology: Topology,
    rate: u64,
    measured_n: usize,
) -> RunResult {
    let warmup_n = ((args.warmup * rate as f64) as usize).min(work.stream.len() - measured_n);
    let total = warmup_n + measured_n;
    let tmp = tempfile::Builder::new()
        .prefix("bourse-latency-")
        .tempdir_in(base)
        .expect("temporary directory");
    let config = store_config(tmp.path(), durability, args.fill);
    let recovered = Store::open(&config, &mut Silent).expect("open store");
    let pipeline =
        Pipeline::start(recovered, pipeline_config(args, topology)).expect("start pipeline");
    let mut handle = pipeline.handle();
    let mut failures = Vec::new();

    // Setup, not timed.
    let mut busy_setup = 0;
    let tickets: Vec<Ticket> = work
        .setup
        .iter()
        .map(|kind| submit(&mut handle, kind, &mut busy_setup).expect("setup submit"))
        .collect();
    for (i, ticket) in tickets.into_iter().enumerate() {
        match ticket.wait() {
            Ok(outcome) if outcome.result.is_ok() && outcome.seq == i as u64 + 1 => {}
            other => failures.push(format!("setup command {i}: {other:?}")),
        }
    }
    let first_stream_seq = work.setup.len() as u64 + 1;

    // The timed part.
    let cpu_before = threads_cpu_ns("bourse-");
    let plan = Plan {
        stream: &work.stream[..total],
        warmup_n,
        period_ns: 1e9 / rate as f64,
        first_stream_seq,
        capacity: args.ring_size.max(1024) * 2,
        sender_wait: args.sender_wait,
        t0: Instant::now() + START_DELAY,
    };
    let (sent, received) = match args.client {
        Client::One => client_one_thread(handle, &plan),
        Client::Two => client_two_threads(handle, &plan),
    };
    let period_ns = plan.period_ns;
    let stats_end = pipeline.stats();
    let sync_times = pipeline.sync_times();
    let pipeline_cpu_ns = threads_cpu_ns("bourse-").saturating_sub(cpu_before);
    if let Some(error) = sent.error {
        failures.push(error);
    }
    failures.extend(received.failures);
    let expected_rejected = work.rejected_below(received.received as usize);
    if received.rejected != expected_rejected {
        failures.push(format!(
            "{} commands rejected where the generator's engine rejected {expected_rejected}",
            received.rejected
        ));
    }
    let submitted = work.setup.len() as u64 + received.received;

    // Correctness: the pipeline's final state against a fresh replay of its journal.
    match pipeline.shutdown() {
        Ok(finished) => {
            let (hash, last_seq) = (finished.state_hash, finished.last_seq);
            drop(finished);
            if last_seq != submitted {
                failures.push(format!(
                    "the pipeline's last seq is {last_seq}, {submitted} commands were submitted"
                ));
            }
            match Store::open(&config, &mut Silent) {
                Ok(replayed) => {
                    if replayed.report.last_seq != last_seq {
                        failures.push(format!(
                            "the journal replays to seq {}, the pipeline ended at {last_seq}",
                            replayed.report.last_seq
                        ));
                    }
                    if replayed.engine.state_hash() != hash {
                        failures.push(
                            "the replayed state hash differs from the pipeline's final state"
                                .into(),
                        );
                    }
                }
                Err(error) => failures.push(format!("reopen: {error}")),
            }
        }
        Err(error) => failures.push(format!("shutdown: {error}")),
    }
    drop(tmp);

    let start = sent.stats_at_start.unwrap_or(stats_end);
    let measured = received.received.saturating_sub(warmup_n as u64);
    let first_due = (warmup_n as f64 * period_ns) as u64;
    let window = received.last_ack_ns.saturating_sub(first_due).max(1);
    RunResult {
        durability,
        topology,
        rate,
        measured,
        achieved: measured as f64 * 1e9 / window as f64,
        hist: received.hist,
        busy_retries: sent.busy,
        batches: stats_end.batches - start.batches,
        consumed: stats_end.consumed - start.consumed,
        parks: stats_end.consumer_parks - start.consumer_parks,
        aborted: sent.aborted,
        sender_late_max: sent.late_max,
        pipeline_cpu_per_command: pipeline_cpu_ns as f64 / received.received.max(1) as f64,
        sync_times,
        failures,
    }
}

/// What a client needs for one timed run.
struct Plan<'a> {
    /// Warm-up and measured commands, in order.
    stream: &'a [CommandKind],
    warmup_n: usize,
    period_ns: f64,
    first_stream_seq: u64,
    /// Tickets in flight at most.
    capacity: usize,
    sender_wait: SenderWait,
    /// Command *i* is due at `t0 + i * period`.
    t0: Instant,
}

impl Plan<'_> {
    #[inline]
    fn due(&self, i: usize) -> u64 {
        (i as f64 * self.period_ns) as u64
    }
}

impl ReceiverOut {
    fn new() -> Self {
        ReceiverOut {
            hist: new_histogram(),
            last_ack_ns: 0,
            received: 0,
            rejected: 0,
            failures: Vec::new(),
        }
    }

    /// Records the answer to stream command `i`, acknowledged at `now` (ns since t0).
    #[inline]
    fn record(
        &mut self,
        p: &Plan,
        i: usize,
        due: u64,
        now: u64,
        answer: Result<Outcome, SubmitError>,
    ) {
        if i >= p.warmup_n {
            self.hist.saturating_record(now.saturating_sub(due).max(1));
        }
        self.last_ack_ns = now;
        self.received += 1;
        match answer {
            Ok(outcome) => {
                self.rejected += u64::from(outcome.result.is_err());
                let expected = p.first_stream_seq + i as u64;
                if outcome.seq != expected && self.failures.len() < 5 {
                    self.failures.push(format!(
                        "command {i}: seq {} where {expected} was expected",
                        outcome.seq
                    ));
                }
            }
            Err(error) => {
                if self.failures.len() < 5 {
                    self.failures.push(format!("command {i}: {error}"));
                }
            }
        }
    }
}

/// The default client: one thread sends each command when it is due and, whenever it has
/// nothing to send, polls the oldest outstanding tickets (`Ticket::try_take`) and records the
/// ones answered. It is the only thread that spins; the pipeline has the other core.
fn client_one_thread(mut handle: Handle, p: &Plan) -> (SenderOut, ReceiverOut) {
    let mut sent = SenderOut {
        busy: 0,
        stats_at_start: None,
        aborted: false,
        late_max: 0,
        error: None,
    };
    let mut received = ReceiverOut::new();
    let mut pending: VecDeque<(Ticket, u64)> = VecDeque::with_capacity(p.capacity);
    // Stream index of the oldest pending ticket.
    let mut head = 0usize;
    let mut next = 0usize;
    let total = p.stream.len();
    loop {
        let mut now = ns_since(p.t0);
        // Send what is due (one at a time, polling answers in between).
        if next < total && pending.len() < p.capacity {
            let due = p.due(next);
            if due <= now {
                let late = now - due;
                sent.late_max = sent.late_max.max(late);
                if late > LAG_ABORT_NS {
                    sent.aborted = true;
                    break;
                }
                if next == p.warmup_n {
                    sent.stats_at_start = Some(handle.stats());
                }
                match handle.try_submit(p.stream[next].clone()) {
                    Ok(ticket) => {
                        pending.push_back((ticket, due));
                        next += 1;
                    }
                    Err(SubmitError::Busy) => sent.busy += 1,
                    Err(error) => {
                        sent.error = Some(format!("command {next}: {error}"));
                        break;
                    }
                }
            } else if p.sender_wait == SenderWait::Yield
                && due - now > YIELD_ABOVE_NS
                && pending.is_empty()
            {
                std::thread::yield_now();
            }
        }
        // Answers that have arrived, oldest first.
        while let Some((ticket, due)) = pending.front_mut() {
            let Some(answer) = ticket.try_take() else {
                break;
            };
            now = ns_since(p.t0);
            let due = *due;
            pending.pop_front();
            received.record(p, head, due, now, answer);
            head += 1;
        }
        if next == total && pending.is_empty() {
            break;
        }
        std::hint::spin_loop();
    }
    // After an abort or an error, wait for what was sent (it must still be answered).
    for (ticket, due) in pending {
        let answer = ticket.wait();
        received.record(p, head, due, ns_since(p.t0), answer);
        head += 1;
    }
    (sent, received)
}

/// The brief's client: a sender thread publishes on schedule and hands each ticket with its
/// intended time through a bounded channel to a receiver thread, which waits for each in turn
/// (`Ticket::wait`, blocking) and records it.
fn client_two_threads(mut handle: Handle, p: &Plan) -> (SenderOut, ReceiverOut) {
    let Plan {
        stream,
        warmup_n,
        period_ns,
        capacity,
        sender_wait,
        t0,
        ..
    } = *p;
    let (tx, rx) = sync_channel::<(Ticket, u64)>(capacity);
    std::thread::scope(|scope| {
        let receiver = scope.spawn(move || {
            let mut out = ReceiverOut::new();
            for (i, (ticket, due)) in rx.into_iter().enumerate() {
                let answer = ticket.wait();
                out.record(p, i, due, ns_since(t0), answer);
            }
            out
        });
        let sender = scope.spawn(move || {
            let mut out = SenderOut {
                busy: 0,
                stats_at_start: None,
                aborted: false,
                late_max: 0,
                error: None,
            };
            let mut now = ns_since(t0);
            for (i, kind) in stream.iter().enumerate() {
                let due = (i as f64 * period_ns) as u64;
                while now < due {
                    if sender_wait == SenderWait::Yield && due - now > YIELD_ABOVE_NS {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    now = ns_since(t0);
                }
                if i == warmup_n {
                    out.stats_at_start = Some(handle.stats());
                }
                let ticket = match submit(&mut handle, kind, &mut out.busy) {
                    Ok(ticket) => ticket,
                    Err(error) => {
                        out.error = Some(format!("command {i}: {error}"));
                        break;
                    }
                };
                // `now` is stale when the sender is behind; read the clock now and then to
                // see how far.
                if i % 256 == 0 {
                    now = ns_since(t0);
                    let late = now.saturating_sub(due);
                    out.late_max = out.late_max.max(late);
                    if late > LAG_ABORT_NS {
                        out.aborted = true;
                    }
                }
                if tx.send((ticket, due)).is_err() || out.aborted {
                    break;
                }
            }
            drop(tx);
            out
        });
        (
            sender.join().expect("sender thread"),
            receiver.join().expect("receiver thread"),
        )
    })
}

/// Nanoseconds on the CPU so far of this process's threads whose name starts with `prefix`
/// (`/proc/self/task/*/schedstat`).
fn threads_cpu_ns(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

// ----- idle CPU, clock cost, machine ----------------------------------------------------------

/// CPU time of the whole process so far (user + system).
fn process_cpu() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Idle {
    topology: Topology,
    secs: f64,
    cpu: Duration,
    parks: u64,
}

/// Starts a pipeline (durable journal, nothing submitted after one command), lets it settle,
/// and measures the process's CPU time over `secs` of idleness.
fn idle_cpu(args: &Args, base: &Path, topology: Topology) -> Idle {
    let tmp = tempfile::Builder::new()
        .prefix("bourse-latency-idle-")
        .tempdir_in(base)
        .expect("temporary directory");
    let recovered = Store::open(
        &store_config(tmp.path(), Durability::Durable, args.fill),
        &mut Silent,
    )
    .expect("open");
    let pipeline = Pipeline::start(recovered, pipeline_config(args, topology)).expect("start");
    let mut handle = pipeline.handle();
    handle
        .submit_blocking(CommandKind::AddAsset {
            code: bourse_engine::AssetCode::new("USD").expect("code"),
            scale: 2,
        })
        .expect("a first command");
    // Let the engine thread finish its spin and park, then measure a plain idle interval:
    // both sleeps are the workload here (doing nothing), not a wait for another thread.
    std::thread::sleep(Duration::from_millis(200));
    let (cpu0, parks0, t) = (
        process_cpu(),
        pipeline.stats().consumer_parks,
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(args.idle_secs));
    let cpu = process_cpu() - cpu0;
    let parks = pipeline.stats().consumer_parks - parks0;
    let secs = t.elapsed().as_secs_f64();
    drop(handle);
    pipeline.shutdown().expect("shutdown");
    Idle {
        topology,
        secs,
        cpu,
        parks,
    }
}

/// The mean cost of one `Instant::now()`.
fn clock_cost_ns() -> f64 {
    let n = 1_000_000;
    let t = Instant::now();
    let mut last = t;
    for _ in 0..n {
        last = std::hint::black_box(Instant::now());
    }
    (last - t).as_nanos() as f64 / n as f64
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ----- sync cost ------------------------------------------------------------------------------

struct SyncCost {
    /// 4 KiB `write_at` in place + `fdatasync`.
    fdatasync: Histogram<u64>,
    /// The journal's durable one-record `commit` (`msync`).
    msync: Histogram<u64>,
}

fn sync_cost(base: &Path, n: usize) -> SyncCost {
    let tmp = tempfile::Builder::new()
        .prefix("bourse-latency-sync-")
        .tempdir_in(base)
        .expect("temporary directory");
    let fdatasync = file_sync(&tmp.path().join("in-place"), n, false);
    let dir = tmp.path().join("journal");
    std::fs::create_dir_all(&dir).expect("journal dir");
    let msync = commit_one_record(&dir, Durability::Durable, 64, n);
    SyncCost { fdatasync, msync }
}

// ----- formatting -----------------------------------------------------------------------------

fn mode_name(d: Durability) -> &'static str {
    match d {
        Durability::None => "none",
        Durability::Async => "async",
        Durability::Durable => "durable",
    }
}

fn topology_name(t: Topology) -> &'static str {
    match t {
        Topology::Single => "single",
        Topology::Parallel => "parallel",
    }
}

const QUANTILES: [(f64, &str); 5] = [
    (0.5, "p50"),
    (0.9, "p90"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

fn verdict(r: &RunResult) -> String {
    if !r.failures.is_empty() {
        "**CHECK FAILED**".into()
    } else if r.aborted {
        "unsustainable (fell 1 s behind, cut short)".into()
    } else if !r.sustainable() {
        if r.achieved < 0.9 * r.rate as f64 {
            format!(
                "unsustainable ({:.0}% of offered)",
                100.0 * r.achieved / r.rate as f64
            )
        } else {
            "unsustainable (p99.9 > 1 s)".into()
        }
    } else {
        "ok".into()
    }
}

// ----- derived figures ------------------------------------------------------------------------

/// The highest offered rate of a sustainable run of `durability`/`topology` whose p99.9 is
/// under `bound_ns` (and every lower rate too: the sweep is in order).
fn highest_rate(
    runs: &[RunResult],
    durability: Durability,
    topology: Topology,
    bound_ns: u64,
) -> Option<u64> {
    let mut best = None;
    for r in runs
        .iter()
        .filter(|r| r.durability == durability && r.topology == topology)
    {
        if r.sustainable() && r.failures.is_empty() && r.hist.value_at_quantile(0.999) < bound_ns {
            best = Some(r.rate);
        } else {
            break;
        }
    }
    best
}

/// The durable target: a sustained run at ≥ 1 M/s with p99 ≤ 2 × the fsync p99.
fn durable_target(runs: &[RunResult], topology: Topology, fsync_p99: u64) -> (bool, String) {
    let candidates: Vec<&RunResult> = runs
        .iter()
        .filter(|r| {
            r.durability == Durability::Durable && r.topology == topology && r.rate >= 1_000_000
        })
        .collect();
    let met = candidates.iter().find(|r| {
        r.sustainable()
            && r.failures.is_empty()
            && r.achieved >= 0.98 * r.rate as f64
            && r.hist.value_at_quantile(0.99) <= 2 * fsync_p99
    });
    // A run's offered and achieved rates and p99, and the fsync p99.
    let figures = |r: &RunResult| {
        (
            fmt_rate(r.rate as f64),
            fmt_rate(r.achieved),
            fmt_ns(r.hist.value_at_quantile(0.99)),
            fmt_ns(fsync_p99),
        )
    };
    match (met, candidates.first()) {
        (Some(r), _) => {
            let (offered, achieved, p99, fsync) = figures(r);
            (
                true,
                format!(
                    "met at {offered}/s offered ({achieved}/s achieved): p99 {p99} ≤ 2 × {fsync}"
                ),
            )
        }
        (None, Some(r)) => {
            let (offered, achieved, p99, fsync) = figures(r);
            (
                false,
                format!(
                    "missed: at {offered}/s offered, {achieved}/s achieved, p99 {p99} against 2 × \
                     {fsync} = {}",
                    fmt_ns(2 * fsync_p99)
                ),
            )
        }
        (None, None) => {
            let best = runs
                .iter()
                .filter(|r| r.durability == Durability::Durable && r.topology == topology)
                .filter(|r| r.sustainable())
                .map(|r| r.achieved)
                .fold(0.0, f64::max);
            (
                false,
                format!(
                    "missed: no durable rate of 1 M/s or more was run or reached (best sustained {}/s)",
                    fmt_rate(best)
                ),
            )
        }
    }
}

// ----- the SVG plot ---------------------------------------------------------------------------

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Percentile curve points: (number of nines, ns), up to the resolution of the sample count.
fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    let max_nines = (h.len().max(1) as f64).log10().min(6.0);
    let mut pts = Vec::new();
    let mut x = 0.0;
    while x <= max_nines + 1e-9 {
        let q = 1.0 - 10f64.powf(-x);
        pts.push((x, h.value_at_quantile(q).max(1)));
        x += 0.05;
    }
    pts
}

#[allow(
    clippy::too_many_lines,
    reason = "a report written top to bottom, one block per section"
)]
fn svg(runs: &[RunResult], args: &Args, title: &str) -> String {
    let rows: Vec<Durability> = args.durabilities.clone();
    let cols: Vec<Topology> = args.topologies.clone();
    let (pw, ph) = (440.0, 280.0); // plot area per panel
    let (ml, mr, mt, mb) = (70.0, 45.0, 40.0, 50.0);
    let (top, legend_h) = (50.0, 30.0);
    let width = (cols.len() as f64 * (ml + pw + mr)).max(900.0);
    let height = top + legend_h + rows.len() as f64 * (mt + ph + mb);
    let max_nines = 6.0f64;
    let y_min = 3.0f64; // 1 µs
    let y_max = runs
        .iter()
        .map(|r| (r.hist.max().max(1) as f64).log10().ceil())
        .fold(6.0f64, f64::max)
        .min(10.0);
    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    )
    .unwrap();
    writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{:.0}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{title}</text>"#,
        width / 2.0
    )
    .unwrap();
    // Legend: one colour per offered rate.
    let mut lx = 20.0;
    for (i, rate) in args.rates.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        writeln!(
            s,
            r#"<line x1="{lx}" y1="{y}" x2="{x2}" y2="{y}" stroke="{color}" stroke-width="3"/><text x="{tx}" y="{ty}">{}/s offered</text>"#,
            fmt_rate(*rate as f64),
            y = top + 10.0,
            x2 = lx + 24.0,
            tx = lx + 30.0,
            ty = top + 14.0,
        )
        .unwrap();
        lx += 122.0;
    }
    writeln!(
        s,
        r#"<text x="{lx}" y="{}">dashed: unsustainable</text>"#,
        top + 14.0
    )
    .unwrap();
    let nines_label = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
    let decade_label = |d: i32| match d {
        0 => "1 ns",
        1 => "10 ns",
        2 => "100 ns",
        3 => "1 µs",
        4 => "10 µs",
        5 => "100 µs",
        6 => "1 ms",
        7 => "10 ms",
        8 => "100 ms",
        9 => "1 s",
        _ => "10 s",
    };
    for (ri, durability) in rows.iter().enumerate() {
        for (ci, topology) in cols.iter().enumerate() {
            let x0 = ci as f64 * (ml + pw + mr) + ml;
            let y0 = top + legend_h + ri as f64 * (mt + ph + mb) + mt;
            let px = |n: f64| x0 + n / max_nines * pw;
            let py = |ns: u64| {
                let l = (ns.max(1) as f64).log10().clamp(y_min, y_max);
                y0 + ph - (l - y_min) / (y_max - y_min) * ph
            };
            writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">durability {}, topology {}</text>"#,
                x0 + pw / 2.0,
                y0 - 10.0,
                mode_name(*durability),
                topology_name(*topology)
            )
            .unwrap();
            writeln!(
                s,
                r##"<rect x="{x0:.1}" y="{y0:.1}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
            )
            .unwrap();
            for (n, label) in nines_label.iter().enumerate() {
                let x = px(n as f64);
                writeln!(
                    s,
                    r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10">{label}</text>"##,
                    y0 + ph,
                    y0 + ph + 14.0
                )
                .unwrap();
            }
            writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">percentile (log scale of nines)</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle" font-size="11">ack − intended send</text>"#,
                x0 + pw / 2.0,
                y0 + ph + 30.0,
                x0 - 60.0,
                y0 + ph / 2.0
            )
            .unwrap();
            for d in (y_min as i32)..=(y_max as i32) {
                let y = py(10u64.pow(d as u32));
                writeln!(
                    s,
                    r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"##,
                    x0 + pw,
                    x0 - 6.0,
                    y + 4.0,
                    decade_label(d)
                )
                .unwrap();
            }
            for r in runs
                .iter()
                .filter(|r| r.durability == *durability && r.topology == *topology)
            {
                let color = args
                    .rates
                    .iter()
                    .position(|x| *x == r.rate)
                    .map_or("#000", |i| PALETTE[i % PALETTE.len()]);
                let dash = if r.sustainable() {
                    ""
                } else {
                    r#" stroke-dasharray="5,4""#
                };
                let points: Vec<String> = curve(&r.hist)
                    .iter()
                    .map(|&(n, ns)| format!("{:.1},{:.1}", px(n), py(ns)))
                    .collect();
                writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{}"><title>{} {} {}/s</title></polyline>"#,
                    points.join(" "),
                    mode_name(r.durability),
                    topology_name(r.topology),
                    fmt_rate(r.rate as f64)
                )
                .unwrap();
            }
        }
    }
    writeln!(s, "</svg>").unwrap();
    s
}

// ----- JSON -----------------------------------------------------------------------------------

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_hist(h: &Histogram<u64>) -> String {
    let mut s = String::from("{");
    for (q, name) in QUANTILES {
        write!(s, "\"{name}_ns\": {}, ", h.value_at_quantile(q)).unwrap();
    }
    write!(s, "\"max_ns\": {}, \"mean_ns\": {:.0}", h.max(), h.mean()).unwrap();
    s.push('}');
    s
}

struct Report<'a> {
    args: &'a Args,
    started: String,
    cpu: String,
    cores: usize,
    kernel: String,
    load_before: String,
    clock_ns: f64,
    runs: Vec<RunResult>,
    sync: Vec<(Topology, SyncCost)>,
    idle: Vec<Idle>,
}

#[allow(
    clippy::too_many_lines,
    reason = "a report written top to bottom, one block per section"
)]
fn json(report: &Report) -> String {
    let a = report.args;
    let mut s = String::from("{\n");
    writeln!(s, "  \"benchmark\": \"bourse latency (issue 5)\",").unwrap();
    writeln!(s, "  \"started_unix\": {},", report.started).unwrap();
    writeln!(
        s,
        "  \"machine\": {{\"cpu\": {}, \"cores\": {}, \"kernel\": {}, \"loadavg_before\": {}, \"instant_now_ns\": {:.1}}},",
        json_str(&report.cpu),
        report.cores,
        json_str(&report.kernel),
        json_str(&report.load_before),
        report.clock_ns
    )
    .unwrap();
    writeln!(
        s,
        "  \"config\": {{\"seconds\": {}, \"commands\": {}, \"warmup_s\": {}, \"ring_size\": {}, \"batch_max\": {}, \"spin_us\": {}, \"sender_wait\": \"{}\", \"seed\": {}, \"quick\": {}}},",
        a.seconds,
        a.commands.map_or("null".to_string(), |c| c.to_string()),
        a.warmup,
        a.ring_size,
        a.batch_max,
        a.spin_us,
        if a.sender_wait == SenderWait::Spin { "spin" } else { "yield" },
        a.seed,
        a.quick
    )
    .unwrap();
    s.push_str("  \"sync_cost\": [");
    for (i, (topology, c)) in report.sync.iter().enumerate() {
        write!(
            s,
            "{}\n    {{\"before\": \"durable {}\", \"fdatasync_4k\": {}, \"journal_commit_msync\": {}}}",
            if i > 0 { "," } else { "" },
            topology_name(*topology),
            json_hist(&c.fdatasync),
            json_hist(&c.msync)
        )
        .unwrap();
    }
    s.push_str("\n  ],\n  \"idle\": [");
    for (i, idle) in report.idle.iter().enumerate() {
        write!(
            s,
            "{}\n    {{\"topology\": \"{}\", \"seconds\": {:.3}, \"cpu_ms\": {:.3}, \"cpu_percent\": {:.3}, \"consumer_parks\": {}}}",
            if i > 0 { "," } else { "" },
            topology_name(idle.topology),
            idle.secs,
            idle.cpu.as_secs_f64() * 1e3,
            100.0 * idle.cpu.as_secs_f64() / idle.secs,
            idle.parks
        )
        .unwrap();
    }
    s.push_str("\n  ],\n  \"runs\": [");
    for (i, r) in report.runs.iter().enumerate() {
        let curve: Vec<String> = curve(&r.hist)
            .iter()
            .step_by(5)
            .map(|(n, ns)| format!("[{:.6}, {ns}]", 100.0 * (1.0 - 10f64.powf(-n))))
            .collect();
        write!(
            s,
            "{}\n    {{\"durability\": \"{}\", \"topology\": \"{}\", \"offered_per_s\": {}, \"achieved_per_s\": {:.0}, \"measured\": {}, \"latency\": {}, \"busy_retries\": {}, \"batches\": {}, \"mean_batch\": {:.2}, \"consumer_parks\": {}, \"sender_late_max_ns\": {}, \"pipeline_cpu_ns_per_command\": {:.0}, \"sync_under_load\": {}, \"aborted\": {}, \"sustainable\": {}, \"check_ok\": {}, \"failures\": [{}], \"percentile_curve\": [{}]}}",
            if i > 0 { "," } else { "" },
            mode_name(r.durability),
            topology_name(r.topology),
            r.rate,
            r.achieved,
            r.measured,
            json_hist(&r.hist),
            r.busy_retries,
            r.batches,
            r.mean_batch(),
            r.parks,
            r.sender_late_max,
            r.pipeline_cpu_per_command,
            if r.sync_times.is_empty() {
                "null".to_string()
            } else {
                json_hist(&r.sync_times)
            },
            r.aborted,
            r.sustainable(),
            r.failures.is_empty(),
            r.failures.iter().map(|f| json_str(f)).collect::<Vec<_>>().join(", "),
            curve.join(", ")
        )
        .unwrap();
    }
    s.push_str("\n  ],\n  \"derived\": [");
    let derived = derived_lines(report);
    for (i, (key, value)) in derived.iter().enumerate() {
        write!(
            s,
            "{}\n    {{\"what\": {}, \"value\": {}}}",
            if i > 0 { "," } else { "" },
            json_str(key),
            json_str(value)
        )
        .unwrap();
    }
    s.push_str("\n  ]\n}\n");
    s
}

fn fsync_p99(report: &Report, topology: Topology) -> Option<u64> {
    report
        .sync
        .iter()
        .find(|(t, _)| *t == topology)
        .map(|(_, c)| c.fdatasync.value_at_quantile(0.99))
}

/// The summary figures as (what, value) pairs.
fn derived_lines(report: &Report) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let runs = &report.runs;
    for &topology in &report.args.topologies {
        let t = topology_name(topology);
        for (durability, bound, label) in [
            (Durability::None, 1_000_000, "1 ms"),
            (Durability::Async, 1_000_000, "1 ms"),
            (Durability::Durable, 10_000_000, "10 ms"),
        ] {
            if !report.args.durabilities.contains(&durability) {
                continue;
            }
            let v = highest_rate(runs, durability, topology, bound)
                .map_or("not reached at any rate run".to_string(), |r| {
                    format!("{}/s", fmt_rate(r as f64))
                });
            out.push((
                format!(
                    "highest rate with p99.9 < {label}, {}, {t}",
                    mode_name(durability)
                ),
                v,
            ));
        }
        if let Some(p99) = fsync_p99(report, topology) {
            let (_, text) = durable_target(runs, topology, p99);
            out.push((
                format!("target: ≥ 1 M/s durable with p99 ≤ 2 × fsync p99, {t}"),
                text,
            ));
        }
    }
    if let Some(r) = runs
        .iter()
        .find(|r| r.durability == Durability::None && r.topology == Topology::Single)
        .or_else(|| runs.first())
    {
        out.push((
            format!(
                "hand-off p50 at the lowest rate ({}/s, {}, {})",
                fmt_rate(r.rate as f64),
                mode_name(r.durability),
                topology_name(r.topology)
            ),
            fmt_ns(r.hist.value_at_quantile(0.5)),
        ));
    }
    for idle in &report.idle {
        out.push((
            format!("idle CPU, {}", topology_name(idle.topology)),
            format!(
                "{:.2} ms of CPU in {:.2} s ({:.3}% of one core), {} parks",
                idle.cpu.as_secs_f64() * 1e3,
                idle.secs,
                100.0 * idle.cpu.as_secs_f64() / idle.secs,
                idle.parks
            ),
        ));
    }
    out
}

fn markdown(report: &Report) -> String {
    let mut s = String::new();
    writeln!(
        s,
        "Machine: {}, {} cores, Linux {}; load average before: {}; `Instant::now` {:.0} ns.\n",
        report.cpu, report.cores, report.kernel, report.load_before, report.clock_ns
    )
    .unwrap();
    writeln!(
        s,
        "| durability | topology | offered /s | achieved /s | p50 | p90 | p99 | p99.9 | p99.99 | max | busy retries | mean batch | parks | pipeline CPU /cmd | sync under load p50 / p99 / max | verdict |"
    )
    .unwrap();
    writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    .unwrap();
    for r in &report.runs {
        let q: Vec<f64> = QUANTILES.iter().map(|&(q, _)| q).collect();
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |",
            mode_name(r.durability),
            topology_name(r.topology),
            fmt_rate(r.rate as f64),
            fmt_rate(r.achieved),
            percentiles(&r.hist, &q, fmt_ns).join(" | "),
            fmt_int(r.busy_retries),
            r.mean_batch(),
            fmt_int(r.parks),
            fmt_ns(r.pipeline_cpu_per_command as u64),
            sync_summary(&r.sync_times),
            verdict(r)
        )
        .unwrap();
    }
    writeln!(s).unwrap();
    if !report.sync.is_empty() {
        writeln!(
            s,
            "| disk sync cost, measured before | 4 KiB write + `fdatasync` p50 / p99 / max | journal durable commit (`msync`) p50 / p99 / max |"
        )
        .unwrap();
        writeln!(s, "|---|---:|---:|").unwrap();
        for (topology, c) in &report.sync {
            writeln!(
                s,
                "| durable, {} | {} | {} |",
                topology_name(*topology),
                percentiles(&c.fdatasync, &[0.5, 0.99], fmt_ns).join(" / "),
                percentiles(&c.msync, &[0.5, 0.99], fmt_ns).join(" / "),
            )
            .unwrap();
        }
        writeln!(s).unwrap();
    }
    writeln!(s, "| figure | value |").unwrap();
    writeln!(s, "|---|---|").unwrap();
    for (k, v) in derived_lines(report) {
        writeln!(s, "| {k} | {v} |").unwrap();
    }
    s
}

// ----- main -----------------------------------------------------------------------------------

#[allow(
    clippy::too_many_lines,
    reason = "a benchmark run in its order (set up, measure, report), its figures kept in local variables"
)]
fn main() {
    let args = or_exit(parse_args());
    let started = Instant::now();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let measured_n = |rate: u64| -> usize {
        args.commands
            .map_or((args.seconds * rate as f64) as usize, |c| c as usize)
            .max(1)
    };
    let max_rate = *args.rates.iter().max().expect("rates");
    let stream_len = measured_n(max_rate) + (args.warmup * max_rate as f64) as usize;
    let t = Instant::now();
    let work = Workload::generate(args.seed, stream_len);
    eprintln!(
        "generated {} setup and {} mix commands in {:.2?}",
        work.setup.len(),
        work.stream.len(),
        t.elapsed()
    );
    let mut report = Report {
        args: &args,
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        load_before: loadavg(),
        clock_ns: clock_cost_ns(),
        runs: Vec::new(),
        sync: Vec::new(),
        idle: Vec::new(),
    };
    eprintln!(
        "{}, {} cores, load {}; Instant::now {:.1} ns",
        report.cpu, report.cores, report.load_before, report.clock_ns
    );

    for &topology in &args.topologies {
        let idle = idle_cpu(&args, &base, topology);
        eprintln!(
            "idle {}: {:.2} ms CPU in {:.2} s, {} parks",
            topology_name(topology),
            idle.cpu.as_secs_f64() * 1e3,
            idle.secs,
            idle.parks
        );
        report.idle.push(idle);
    }

    for &topology in &args.topologies {
        for &durability in &args.durabilities {
            if durability == Durability::Durable {
                let c = sync_cost(&base, args.fsync_samples);
                eprintln!(
                    "sync cost: fdatasync 4 KiB {}; journal commit {}",
                    labeled_percentiles(&c.fdatasync, &P50_P99, fmt_ns),
                    labeled_percentiles(&c.msync, &P50_P99, fmt_ns)
                );
                report.sync.push((topology, c));
            }
            for &rate in &args.rates {
                let r = run_once(
                    &args,
                    &work,
                    &base,
                    durability,
                    topology,
                    rate,
                    measured_n(rate),
                );
                eprintln!(
                    "{:>7} {:>8} {:>7}/s: achieved {:>7}/s {}; busy {} batch {:.1} parks {} late max {} cpu/cmd {} sync {} -> {}",
                    mode_name(durability),
                    topology_name(topology),
                    fmt_rate(rate as f64),
                    fmt_rate(r.achieved),
                    labeled_percentiles(&r.hist, &P50_P99_P999, fmt_ns),
                    r.busy_retries,
                    r.mean_batch(),
                    r.parks,
                    fmt_ns(r.sender_late_max),
                    fmt_ns(r.pipeline_cpu_per_command as u64),
                    sync_summary(&r.sync_times),
                    verdict(&r)
                );
                for f in &r.failures {
                    eprintln!("  FAILED: {f}");
                }
                let stop = !r.sustainable() || !r.failures.is_empty();
                report.runs.push(r);
                if stop {
                    break;
                }
            }
        }
    }

    let failed = report.runs.iter().any(|r| !r.failures.is_empty());
    let md = markdown(&report);
    if args.markdown {
        print!("{md}");
    } else {
        eprint!("{md}");
    }
    if let Some(path) = &args.out_json {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("results dir");
        }
        std::fs::write(path, json(&report)).expect("write --out-json");
        eprintln!("JSON written to {}", path.display());
    }
    if let Some(path) = &args.out_svg {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("results dir");
        }
        let title = format!(
            "Bourse pipeline: acknowledgement latency by percentile (open loop, exchange-core mix, {} cores)",
            report.cores
        );
        std::fs::write(path, svg(&report.runs, &args, &title)).expect("write --out-svg");
        eprintln!("SVG written to {}", path.display());
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    if failed {
        eprintln!("FAILED: a correctness check failed (see above)");
        std::process::exit(1);
    }
}

/// "p50 / p99 / max" of the syncs of a run, or "–" when none ran on a sync thread.
fn sync_summary(times: &Histogram<u64>) -> String {
    if times.is_empty() {
        return "–".into();
    }
    // `percentiles` appends the maximum.
    percentiles(times, &[0.5, 0.99], fmt_ns).join(" / ")
}
