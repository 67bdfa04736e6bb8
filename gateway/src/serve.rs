//! `bourse serve`: the server process.
//!
//! 1. Reads the configuration ([`crate::config`]) and prints the effective settings, each
//!    with where it came from.
//! 2. Recovers the data directory (newest good snapshot + journal replay, progress on stderr)
//!    and prints the recovery report: `recovered to seq N in X ms: ...`.
//! 3. Starts the pipeline and, with `--load-rate`, the embedded load generator
//!    ([`crate::load`]).
//! 4. Runs until SIGINT or SIGTERM. The main thread waits on a channel fed by a signal
//!    thread, with a 100 ms timeout, and between waits checks that the pipeline still runs
//!    and requests a periodic snapshot through the ring when `snapshot-every` commands have
//!    been applied since the last one.
//! 5. On the first signal it stops accepting (the load generator stops submitting and
//!    collects the answers to what it has in flight), then shuts the pipeline down: the ring is
//!    drained and every accepted command answered, the last batch committed and, by default, a
//!    final snapshot written. It prints one summary line (last seq, state hash) and exits 0.
//!    A second signal exits at once (130 or 143): everything acknowledged is already in the
//!    journal.
//!
//! If the pipeline stops by itself (a journal failure, a panic in a pipeline thread), the
//! process prints `bourse: the engine stopped: <cause>` and exits with [`EXIT_ENGINE_STOPPED`]
//! at once, without waiting for producers or draining anything: the pipeline has already
//! answered everything uncommitted with `Stopped`, and nothing is acknowledged after the cause.
//!
//! Everything the server says goes to stderr, so stdout is free for `--ack-log -`.
//!
//! No async runtime yet: signals arrive over a plain channel, so moving this loop onto tokio
//! with the HTTP gateway (next issue) is a matter of replacing `recv_timeout` with a
//! `select!` over `tokio::signal` and an interval.

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use bourse_pipeline::{Handle, Pipeline, PipelineError, SubmitError, Ticket};
use bourse_store::{ConsoleProgress, Store};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{self, AckLog, FeedMode, Invocation, ServeConfig};
use crate::history::{self, History, HistoryHandle, HistoryLog};
use crate::load::{self, Load};
use crate::market::MarketService;

/// Exit code of a clean shutdown.
pub const EXIT_OK: i32 = 0;
/// Exit code when recovery or start-up fails.
pub const EXIT_START_FAILED: i32 = 1;
/// Exit code of a configuration error.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code when the pipeline stopped by itself (EX_SOFTWARE).
pub const EXIT_ENGINE_STOPPED: i32 = 70;
/// How often the main thread looks at the pipeline between signals.
const POLL: Duration = Duration::from_millis(100);

/// Runs `bourse serve` with the arguments after `serve`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let loaded = match config::load(args, &|name| std::env::var(name).ok()) {
        Ok(Invocation::Help) => {
            print!("{}", config::help());
            return EXIT_OK;
        }
        Ok(Invocation::Serve(loaded)) => loaded,
        Err(error) => {
            eprintln!("bourse serve: configuration error: {error}");
            return EXIT_CONFIG;
        }
    };
    eprint!(
        "bourse: serve, effective configuration:\n{}",
        loaded.describe()
    );
    match serve(&loaded.config) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("bourse: {message}");
            EXIT_START_FAILED
        }
    }
}

fn serve(config: &ServeConfig) -> Result<i32, String> {
    if config.durability == bourse_journal::Durability::None {
        eprintln!(
            "bourse: durability none: acknowledged commands may be lost in a crash or power loss"
        );
    }
    // Signals are caught from here on; one that arrives during recovery stops the server
    // right after it.
    let signals = listen_for_signals().map_err(|e| format!("cannot handle signals: {e}"))?;
    let ack_log = open_ack_log(config)?;

    let store_config = config.store();
    let mut recovered = Store::open(&store_config, &mut ConsoleProgress::stderr())
        .map_err(|e| format!("recovery of {} failed: {e}", store_config.dir.display()))?;
    eprintln!("bourse: {}", recovered.report);
    for skipped in &recovered.report.skipped_snapshots {
        eprintln!(
            "bourse: skipped snapshot {}: {}",
            skipped.path.display(),
            skipped.error
        );
    }
    let (history, history_log) = open_history(&store_config, &mut recovered)?;
    let next_seq = recovered.next_seq();
    let last_snapshot = recovered
        .report
        .snapshot
        .as_ref()
        .map_or(0, |(seq, _)| *seq);

    let hub = std::sync::Arc::new(crate::hub::Hub::new(config.ws_queue));
    let market = MarketService::start(config.market(), std::sync::Arc::clone(&hub))?;
    let pipeline = Pipeline::start(recovered, config.pipeline())
        .map_err(|e| format!("cannot start the pipeline: {e}"))?;
    let mut handle = pipeline.handle();
    // Subscribed before anything can submit a command, so the history misses no event.
    let events = handle.subscribe();
    // Bourse's fills the market data missed (a crash between the two), before newer ones.
    let caught_up = crate::market::catch_up_bourse(&market, &history, &handle)?;
    if caught_up > 0 {
        eprintln!("bourse: market data: {caught_up} of Bourse's fills taken from the history");
    }
    let (history, history_thread) = HistoryHandle::spawn(
        history,
        history_log,
        events,
        std::sync::Arc::clone(&hub),
        pipeline.handle(),
        Some(market.sender()),
    )?;
    let added = crate::catalogue::ensure(&mut handle)?;
    if added > 0 {
        eprintln!("bourse: default catalogue: {added} assets and products added");
    }
    start_feed(config, &market, &handle)?;
    let liquidity = if config.liquidity && config.feed != FeedMode::Off {
        let started = crate::liquidity::Liquidity::start(
            pipeline.handle(),
            std::sync::Arc::clone(&market),
            &history,
        )?;
        eprintln!("bourse: liquidity provider quoting every product the feed prices");
        Some(started)
    } else {
        None
    };
    // After the catalogue, which may have added the generator's quote currency.
    let existing = if config.load_rate > 0 {
        let survey = handle
            .try_query(load::survey)
            .and_then(|ticket| ticket.wait())
            .map_err(|e| format!("cannot survey the state for the load generator: {e}"))?;
        Some(survey)
    } else {
        None
    };
    let http = match config.http_addr {
        Some(addr) => {
            let state = crate::http::AppState::new(
                pipeline.handle(),
                history.clone(),
                hub,
                std::sync::Arc::clone(&market),
                next_seq - 1,
                config,
            );
            let server = crate::http::Server::start(addr, state)?;
            eprintln!("bourse: HTTP on http://{}", server.addr);
            eprintln!(
                "{}",
                crate::web::WebFiles::new(&config.web_dir).startup_line(server.addr)
            );
            Some(server)
        }
        None => None,
    };
    eprintln!(
        "bourse: serving {} (ring {}, {} topology), next seq {next_seq}; SIGINT or SIGTERM stops",
        config.data_dir.display(),
        config.ring_size,
        config.value("topology")
    );
    let mut load = match existing {
        Some(existing) => {
            eprintln!(
                "bourse: load generator: {} commands/s on {}",
                config.load_rate,
                load::SYMBOL
            );
            Some(
                Load::spawn(
                    pipeline.handle(),
                    existing,
                    config.load_rate,
                    next_seq,
                    ack_log,
                )
                .map_err(|e| format!("cannot start the load generator: {e}"))?,
            )
        }
        None => None,
    };

    let mut snapshots = PeriodicSnapshots {
        every: config.snapshot_every,
        last: last_snapshot,
        pending: None,
    };
    let signal = loop {
        match signals.recv_timeout(POLL) {
            Ok(signal) => break signal,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err("the signal thread ended".into());
            }
        }
        if let Some(cause) = pipeline.stopped() {
            engine_stopped(&cause);
        }
        snapshots.tick(&mut handle, pipeline.stats().applied_seq);
        if load.as_ref().is_some_and(Load::is_finished) {
            let summary = load.take().map(Load::stop).unwrap_or_default();
            eprintln!("bourse: the load generator ended: {summary}");
        }
    };

    eprintln!(
        "bourse: {} received: shutting down (stop accepting, drain the ring, commit{})",
        signal_name(signal),
        if config.snapshot_on_shutdown {
            ", snapshot"
        } else {
            ""
        }
    );
    if let Some(http) = http
        && let Err(error) = http.stop()
    {
        eprintln!("bourse: {error}");
    }
    let load_summary = load.map(Load::stop);
    if let Some(liquidity) = liquidity {
        liquidity.stop();
    }
    if let Some(cause) = pipeline.stopped() {
        engine_stopped(&cause);
    }
    drop(snapshots);
    drop(handle);
    let finished = match pipeline.shutdown() {
        Ok(finished) => finished,
        Err(PipelineError::Stopped(cause)) => engine_stopped(&cause),
        Err(error) => return Err(format!("shutdown failed: {error}")),
    };
    finish_history(&history, history_thread, finished.engine.event_seq());
    if let Err(error) = market.stop() {
        eprintln!("bourse: market data: the last checkpoint failed: {error}");
    }
    let snapshot = match bourse_snapshots::list_snapshots(&store_config.snapshots_dir()) {
        Ok(list) => match list.last() {
            Some((seq, _)) if *seq == finished.last_seq => format!("snapshot at seq {seq}"),
            Some((seq, _)) => format!("newest snapshot at seq {seq}"),
            None => "no snapshot".to_string(),
        },
        Err(error) => format!("snapshots unreadable: {error}"),
    };
    let load = load_summary.map_or(String::new(), |s| format!("; load: {s}"));
    eprintln!(
        "bourse: stopped cleanly at seq {}, state hash {}, {snapshot}{load}",
        finished.last_seq, finished.state_hash
    );
    Ok(EXIT_OK)
}

/// Defines the engine's products in the market data, then starts the feed: the embedded
/// simulator (the default stocks at their usual prices, plus `sim-products` synthetic ones)
/// or the Kafka consumer.
fn start_feed(config: &ServeConfig, market: &MarketService, handle: &Handle) -> Result<(), String> {
    let defs = handle
        .try_query(crate::market::engine_products)
        .and_then(|ticket| ticket.wait())
        .map_err(|e| format!("cannot read the engine's products: {e}"))?;
    market
        .sender()
        .send(crate::market::Input::Define(defs))
        .map_err(|_| "the market-data thread has stopped".to_string())?;
    match config.feed {
        FeedMode::Off => Ok(()),
        FeedMode::Sim => {
            let mut products = crate::catalogue::simulated();
            products.extend(bourse_marketdata::sim::Simulator::synthetic(
                config.sim_products,
            ));
            eprintln!(
                "bourse: market data: the embedded exchange simulator, {} products, {} ticks/s",
                products.len(),
                config.sim_rate
            );
            market.start_simulator(products, config.sim_rate)
        }
        FeedMode::Kafka => {
            let brokers = config
                .kafka_brokers
                .as_deref()
                .ok_or("feed = kafka needs kafka-brokers")?;
            eprintln!(
                "bourse: market data: Kafka topic {} on {brokers}, group {}",
                config.kafka_topic, config.kafka_group
            );
            market.start_kafka(
                brokers,
                &config.kafka_topic,
                &config.kafka_group,
                config.kafka_assignment_group,
                config.kafka_dead_letter.clone(),
            )
        }
    }
}

/// Opens the history read model and brings it up to the recovered engine (see
/// [`crate::history`]). A history ahead of the engine (a journal that lost its tail with
/// durability none) is thrown away and rebuilt.
fn open_history(
    store_config: &bourse_store::StoreConfig,
    recovered: &mut bourse_store::Recovered,
) -> Result<(History, HistoryLog), String> {
    let dir = store_config.dir.join(history::HISTORY_DIR);
    let engine_event_seq = recovered.engine.event_seq();
    let (mut log, mut model) = HistoryLog::open(&dir)?;
    if model.event_seq() > engine_event_seq {
        eprintln!(
            "bourse: the history (to event {}) is ahead of the engine (event {}): rebuilding it",
            model.event_seq(),
            engine_event_seq
        );
        drop(log);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        (log, model) = HistoryLog::open(&dir)?;
    }
    let started = std::time::Instant::now();
    let from_event = model.event_seq();
    let caught_up = history::catch_up(
        &mut model,
        &mut log,
        recovered.store.journal(),
        &store_config.snapshots_dir(),
        store_config.limits,
        engine_event_seq,
    );
    let replayed = match caught_up {
        Ok(replayed) => replayed,
        Err(why) => {
            // Serving matters more than old history: start it over from here, and say so.
            eprintln!(
                "bourse: {why}; the history starts over at event {engine_event_seq} (older \
                 orders, trades and funds movements are not shown)"
            );
            let last_seq = recovered.report.last_seq;
            log.append(last_seq, engine_event_seq, &[])?;
            model.fold(last_seq, engine_event_seq, &[]);
            0
        }
    };
    if replayed > 0 {
        eprintln!(
            "bourse: history caught up from event {from_event} to {} ({replayed} commands replayed in {} ms)",
            model.event_seq(),
            started.elapsed().as_millis()
        );
    }
    Ok((model, log))
}

/// Lets the history fold the last events before the process ends (it would rebuild them at
/// the next start anyway).
fn finish_history(history: &HistoryHandle, thread: std::thread::JoinHandle<()>, event_seq: u64) {
    let waited = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(history.read(event_seq, |_| ())));
    if let Err(why) = waited {
        eprintln!("bourse: the history did not finish: {why}; the next start rebuilds it");
    }
    drop(thread);
}

/// Says why the pipeline stopped and ends the process: nothing more can be acknowledged, and
/// nothing is waited for.
fn engine_stopped(cause: &str) -> ! {
    eprintln!("bourse: the engine stopped: {cause}");
    let _ = std::io::stderr().flush();
    std::process::exit(EXIT_ENGINE_STOPPED)
}

/// A thread that forwards SIGINT and SIGTERM; a second one exits the process at once.
fn listen_for_signals() -> std::io::Result<mpsc::Receiver<i32>> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("bourse-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    eprintln!(
                        "bourse: {} again: exiting now (everything acknowledged is in the journal)",
                        signal_name(signal)
                    );
                    std::process::exit(128 + signal);
                }
                let _ = tx.send(signal);
            }
        })?;
    Ok(rx)
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

fn open_ack_log(config: &ServeConfig) -> Result<Option<Box<dyn Write + Send>>, String> {
    if config.load_rate == 0 {
        if config.ack_log.is_some() {
            eprintln!("bourse: ack-log is set but load-rate is 0: no acknowledgements to log");
        }
        return Ok(None);
    }
    Ok(match &config.ack_log {
        None => None,
        Some(AckLog::Stdout) => Some(Box::new(std::io::stdout())),
        Some(AckLog::File(path)) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the ack log {}: {e}", path.display()))?,
        )),
    })
}

/// Requests a snapshot through the ring every `every` applied commands.
struct PeriodicSnapshots {
    every: u64,
    /// The sequence number of the last snapshot (or where the last request was made).
    last: u64,
    pending: Option<Ticket>,
}

impl PeriodicSnapshots {
    fn tick(&mut self, handle: &mut Handle, applied_seq: u64) {
        if let Some(ticket) = &mut self.pending {
            match ticket.try_take() {
                None => return,
                Some(Ok(outcome)) => self.last = outcome.seq,
                Some(Err(SubmitError::Snapshot(why))) => {
                    eprintln!("bourse: snapshot not taken: {why}");
                }
                // Stopping or shutting down: the main loop sees it.
                Some(Err(_)) => {}
            }
            self.pending = None;
        }
        if self.every == 0 || applied_seq < self.last.saturating_add(self.every) {
            return;
        }
        match handle.try_request_snapshot() {
            Ok(ticket) => {
                // Counted from the request, so a refused one is not retried every tick.
                self.last = applied_seq;
                self.pending = Some(ticket);
            }
            // A full ring: the next tick tries again.
            Err(SubmitError::Busy) => {}
            Err(_) => {}
        }
    }
}
