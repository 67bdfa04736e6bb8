//! Replays exchange-core's benchmark mix into Bourse's engine, matchcore and orderbook-rs on one
//! thread, and prints commands per second (median of repetitions), the ratios, and Bourse's
//! latency per op type as a markdown table.
//!
//! ```text
//! cargo run --release -p bourse-benches --bin throughput -- [--ops N] [--warmup N] [--reps N]
//!     [--seed N] [--sample-every N] [--out PATH] [--venues bourse,matchcore,orderbook-rs]
//! ```
//!
//! Defaults: 3,000,000 timed ops after 200,000 warm-up ops, 3 repetitions (about 40 s, most of
//! it orderbook-rs). Each repetition gives every venue a fresh book, replays the warm-up untimed
//! and times the rest as one block; the venues take turns going first. Then, untimed, each
//! venue's final book is checked against the generator's model. A last pass replays the mix
//! into Bourse alone, timing every `--sample-every`th op on its own for the latency table.
//! The report goes to stdout (and to `--out PATH`); progress goes to stderr. The exit status is
//! 1 if a venue's final book differs from the model.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bourse_benches::args::{Flags, or_exit};
use bourse_benches::mix::{Mix, MixConfig, OpKind};
use bourse_benches::report::{cpu_model, fmt_rate_mk, median, percentiles, sorted};
use bourse_benches::venues::{BourseVenue, MatchcoreVenue, OrderbookRsVenue, Venue};
use hdrhistogram::Histogram;

struct Args {
    ops: usize,
    warmup: usize,
    reps: usize,
    seed: u64,
    sample_every: usize,
    out: Option<String>,
    /// Which venues run: bit 0 Bourse, 1 matchcore, 2 orderbook-rs.
    venues: [bool; 3],
}

const USAGE: &str = "usage: throughput [--ops N (3000000)] [--warmup N (200000)] [--reps N (3)] \
[--seed N] [--sample-every N (8)] [--out PATH] [--venues bourse,matchcore,orderbook-rs]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        ops: 3_000_000,
        warmup: 200_000,
        reps: 3,
        seed: MixConfig::default().seed,
        sample_every: 8,
        out: None,
        venues: [true; 3],
    };
    let mut flags = Flags::from_env(USAGE);
    while let Some(flag) = flags.next_flag()? {
        let value = flags.value(&flag)?;
        match flag.as_str() {
            "--ops" => args.ops = value.number()? as usize,
            "--warmup" => args.warmup = value.number()? as usize,
            "--reps" => args.reps = value.number()?.max(1) as usize,
            "--seed" => args.seed = value.number()?,
            "--sample-every" => args.sample_every = value.number()?.max(1) as usize,
            "--out" => args.out = Some(value.into_string()),
            "--venues" => {
                args.venues = [false; 3];
                for v in value.list(|name| match name.trim() {
                    "bourse" => Ok(0),
                    "matchcore" => Ok(1),
                    "orderbook-rs" => Ok(2),
                    other => Err(value.unknown("venue", other)),
                })? {
                    args.venues[v] = true;
                }
            }
            _ => return Err(flags.unknown(&flag)),
        }
    }
    Ok(args)
}

/// One venue's results over all repetitions.
struct Runs {
    name: &'static str,
    rates: Vec<f64>,
    errors: [u64; 4],
    verified: Result<(), String>,
}

impl Runs {
    fn median(&self) -> f64 {
        median(&sorted(&self.rates))
    }
}

/// A fresh venue, warmed up untimed, then the measured ops timed as one block.
fn run_once<V: Venue>(mix: &Mix, runs: &mut Runs) {
    let mut venue = V::new(mix.config.users);
    for op in mix.warmup_ops() {
        venue.apply(op);
    }
    let measured = mix.measured_ops();
    let start = Instant::now();
    for op in measured {
        venue.apply(op);
    }
    let elapsed = start.elapsed();
    black_box(&mut venue);
    runs.rates
        .push(measured.len() as f64 / elapsed.as_secs_f64());
    runs.errors = venue.errors();
    if runs.verified.is_ok() {
        runs.verified = venue.verify(&mix.resting);
    }
}

/// The cost of one `Instant::now()` pair, median of many.
fn timer_overhead_ns() -> u64 {
    let mut samples: Vec<u64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Bourse again, timing every `every`-th op on its own.
fn latencies(mix: &Mix, every: usize) -> Vec<Histogram<u64>> {
    let mut hists: Vec<Histogram<u64>> = (0..4)
        .map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram"))
        .collect();
    let mut venue = BourseVenue::new(mix.config.users);
    for op in mix.warmup_ops() {
        venue.apply(op);
    }
    for (i, op) in mix.measured_ops().iter().enumerate() {
        if i % every == 0 {
            let start = Instant::now();
            venue.apply(op);
            let ns = start.elapsed().as_nanos() as u64;
            hists[op.kind().index()].saturating_record(ns.max(1));
        } else {
            venue.apply(op);
        }
    }
    black_box(&mut venue);
    hists
}

fn main() {
    let args = or_exit(parse_args());
    let config = MixConfig {
        seed: args.seed,
        ..MixConfig::default()
    };
    let t = Instant::now();
    let mix = Mix::generate(&config, args.warmup, args.ops);
    eprintln!(
        "generated {} ops ({} warm-up incl. {} to build the book) in {:.2?}",
        mix.ops.len(),
        mix.warmup,
        config.target_orders,
        t.elapsed()
    );

    let mut ours = Runs {
        name: BourseVenue::NAME,
        rates: vec![],
        errors: [0; 4],
        verified: Ok(()),
    };
    let mut mc = Runs {
        name: MatchcoreVenue::NAME,
        rates: vec![],
        errors: [0; 4],
        verified: Ok(()),
    };
    let mut obr = Runs {
        name: OrderbookRsVenue::NAME,
        rates: vec![],
        errors: [0; 4],
        verified: Ok(()),
    };
    for rep in 0..args.reps {
        // Rotate the order so that no venue always runs first (or last) in a repetition.
        for k in 0..3 {
            let v = (rep + k) % 3;
            if !args.venues[v] {
                continue;
            }
            match v {
                0 => run_once::<BourseVenue>(&mix, &mut ours),
                1 => run_once::<MatchcoreVenue>(&mix, &mut mc),
                _ => run_once::<OrderbookRsVenue>(&mix, &mut obr),
            }
        }
        let mut line = format!("rep {}/{}:", rep + 1, args.reps);
        for r in [&ours, &mc, &obr] {
            if let Some(rate) = r.rates.last() {
                let _ = write!(line, " {} {:.0}/s;", r.name, rate);
            }
        }
        eprintln!("{line}");
    }
    let overhead = timer_overhead_ns();
    let hists = if args.venues[0] {
        latencies(&mix, args.sample_every)
    } else {
        Vec::new()
    };
    let runs: Vec<&Runs> = [&ours, &mc, &obr]
        .into_iter()
        .filter(|r| !r.rates.is_empty())
        .collect();
    let report = render(&args, &mix, &runs, &hists, overhead);
    print!("{report}");
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, &report) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
        eprintln!("wrote {path}");
    }
    if runs.iter().any(|r| r.verified.is_err()) {
        std::process::exit(1);
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "a report written top to bottom, one block per section"
)]
fn render(
    args: &Args,
    mix: &Mix,
    runs: &[&Runs],
    hists: &[Histogram<u64>],
    overhead_ns: u64,
) -> String {
    let s = &mix.stats;
    let n_ops: u64 = s.counts.iter().sum();
    let pct = |k: OpKind| s.counts[k.index()] as f64 * 100.0 / n_ops.max(1) as f64;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "### Throughput: exchange-core's order mix, one thread\n");
    let _ = writeln!(
        w,
        "{} ops timed per repetition after {} untimed (building a {}-order book, then warm-up), \
         median of {} repetitions, seed {:#x}; {}; `cargo run --release -p bourse-benches --bin throughput`.\n",
        n_ops,
        mix.warmup,
        mix.config.target_orders,
        args.reps,
        mix.config.seed,
        cpu_model()
    );
    let _ = writeln!(
        w,
        "Mix: {:.1}% GTC, {:.1}% IOC, {:.1}% cancel, {:.1}% move; {} users; book {:.0} orders on average \
         ({}..{}) over {:.0} price levels ({}..{}), mean spread {:.1} ticks; {:.3} fills per op \
         ({} IOC and {} moves traded).\n",
        pct(OpKind::Gtc),
        pct(OpKind::Ioc),
        pct(OpKind::Cancel),
        pct(OpKind::Move),
        mix.config.users,
        s.mean_orders,
        s.min_orders,
        s.max_orders,
        s.mean_levels,
        s.min_levels,
        s.max_levels,
        s.mean_spread,
        s.fills as f64 / n_ops.max(1) as f64,
        s.trading[OpKind::Ioc.index()],
        s.trading[OpKind::Move.index()],
    );
    let ours = runs
        .iter()
        .find(|r| r.name == BourseVenue::NAME)
        .map_or(f64::NAN, |r| r.median());
    let _ = writeln!(
        w,
        "| venue | commands/s (median) | range over repetitions | ns/command | Bourse ÷ venue | final book matches model |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---|");
    for r in runs {
        let med = r.median();
        let lo = r.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.rates.iter().copied().fold(0.0, f64::max);
        let errors: u64 = r.errors.iter().sum();
        let check = match &r.verified {
            Ok(()) if errors == 0 => "yes".to_string(),
            Ok(()) => format!(
                "yes ({errors} errors returned: {:?} by GTC/IOC/cancel/move)",
                r.errors
            ),
            Err(e) => format!("**NO**: {e}"),
        };
        let ratio = if ours.is_nan() {
            "—".to_string()
        } else {
            format!("{:.2}×", ours / med)
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} – {} | {:.0} | {} | {} |",
            r.name,
            fmt_rate_mk(med),
            fmt_rate_mk(lo),
            fmt_rate_mk(hi),
            1e9 / med,
            ratio,
            check
        );
    }
    if hists.is_empty() {
        return out;
    }
    let _ = writeln!(
        w,
        "\n#### Bourse latency per op type\n\nEvery {}th timed op measured on its own with `Instant` \
         (a separate pass; one `Instant` pair costs about {} ns here and is included).\n",
        args.sample_every, overhead_ns
    );
    let _ = writeln!(w, "| op | samples | p50 | p90 | p99 | p99.9 | max |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|");
    let ns = |v: u64| fmt_ns(Duration::from_nanos(v));
    for kind in OpKind::ALL {
        let h = &hists[kind.index()];
        if h.is_empty() {
            continue;
        }
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            kind.name(),
            h.len(),
            percentiles(h, &[0.5, 0.9, 0.99, 0.999], ns).join(" | ")
        );
    }
    out
}

fn fmt_ns(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}
