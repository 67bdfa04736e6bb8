//! The server: [`Server::start`], [`Server::poll`], [`Server::shutdown`], and [`run`], the
//! `bourse serve` process around them.
//!
//! [`run`]:
//! 1. Reads the settings ([`crate::settings`]) and prints the effective settings, each with
//!    where it came from.
//! 2. Starts the [`Server`]: recovers the data directory (newest good snapshot + journal
//!    replay, progress on stderr) and prints the recovery report (`recovered to seq N in X
//!    ms: ...`), catches the read models up, starts the pipeline, the feed, the liquidity
//!    provider, the HTTP API and, with `--load-rate`, the embedded load generator
//!    ([`crate::load`]).
//! 3. Runs until SIGINT or SIGTERM. The main thread waits on a channel fed by a signal
//!    thread, with a 100 ms timeout, and between waits calls [`Server::poll`], which checks
//!    that nothing failed ([`Server::failure`]) and requests a periodic snapshot through the ring when
//!    `snapshot-every` commands have been applied since the last one.
//! 4. On the first signal it shuts down ([`Server::shutdown`]): the API stops accepting, the
//!    load generator stops submitting and collects the answers to what it has in flight, the
//!    ring is drained and every accepted command answered, the last batch committed and, by
//!    default, a final snapshot written. It prints one summary line (last seq, state hash)
//!    and exits 0. A second signal exits at once (130 or 143): everything acknowledged is
//!    already in the journal.
//!
//! If the server fails (fail-stop: the pipeline stops by itself on a journal failure or a
//! panic, a read model fails, or an HTTP handler, a WebSocket connection or the liquidity
//! provider panics), the process logs `the server stopped: <cause>` and exits with
//! [`EXIT_ENGINE_STOPPED`] at once, without waiting for producers or draining anything: the
//! pipeline has already answered everything uncommitted with `Stopped`, and nothing is
//! acknowledged after the cause.
//!
//! Everything the server says goes to stderr, so stdout is free for `--ack-log -`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use bourse_gateway::AppState;
use bourse_gateway::fanout::HistoryFanout;
use bourse_gateway::hub::Hub;
use bourse_gateway::market_channels::MarketFanout;
use bourse_history::{History, HistoryHandle, HistoryLog};
use bourse_market_service::MarketService;
use bourse_pipeline::{Handle, Pipeline, PipelineError, SubmitError, Ticket};
use bourse_store::{ConsoleProgress, Store, StoreConfig};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::access::Access;
use crate::cluster_node::ClusterNode;
use crate::feed::Feed;
use crate::liquidity::Liquidity;
use crate::load::{self, Load};
use crate::settings::{self, AckLog, FeedMode, Invocation, ServeConfig};

/// Exit code of a clean shutdown.
pub const EXIT_OK: i32 = 0;
/// Exit code when recovery or start-up fails.
pub const EXIT_START_FAILED: i32 = 1;
/// Exit code of a configuration error.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code when the server stopped by itself (EX_SOFTWARE).
pub const EXIT_ENGINE_STOPPED: i32 = 70;
/// How often the main thread looks at the server between signals.
const POLL: Duration = Duration::from_millis(100);

/// The server stopped by itself (the engine stopped: a journal failure, a panic); nothing is
/// acknowledged after `cause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub cause: String,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server stopped: {}", self.cause)
    }
}

/// Runs `bourse serve` with the arguments after `serve`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    // Fault injection from the FAILPOINTS variable, in builds with the `failpoints` feature
    // (the tests'); nothing otherwise.
    let _failpoints = fail::FailScenario::setup();
    let loaded = match settings::load(args) {
        Ok(Invocation::Help) => {
            print!("{}", settings::help());
            return EXIT_OK;
        }
        Ok(Invocation::Serve(loaded)) => loaded,
        Err(error) => {
            tracing::error!("configuration error: {error}");
            return EXIT_CONFIG;
        }
    };
    tracing::info!(
        "serve, effective configuration:\n{}",
        loaded.describe().trim_end()
    );
    match serve(&loaded.config) {
        Ok(code) => code,
        Err(message) => {
            tracing::error!("{message}");
            EXIT_START_FAILED
        }
    }
}

fn serve(config: &ServeConfig) -> Result<i32, String> {
    // Signals are caught from here on; one that arrives during recovery stops the server
    // right after it.
    let signals = listen_for_signals().map_err(|e| format!("cannot handle signals: {e}"))?;
    let ack_log = open_ack_log(config)?;
    let mut server = Server::start_with_ack_log(config, ack_log)?;
    let signal = loop {
        match signals.recv_timeout(POLL) {
            Ok(signal) => break signal,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err("the signal thread ended".into());
            }
        }
        if let Err(stopped) = server.poll() {
            engine_stopped(&stopped);
        }
    };
    tracing::info!(
        "{} received: shutting down (stop accepting, drain the ring, commit{})",
        signal_name(signal),
        if config.snapshot_on_shutdown {
            ", snapshot"
        } else {
            ""
        }
    );
    match server.shutdown() {
        Ok(summary) => {
            tracing::info!("{summary}");
            Ok(EXIT_OK)
        }
        Err(ShutdownError::Stopped(stopped)) => engine_stopped(&stopped),
        Err(ShutdownError::Failed(why)) => Err(why),
    }
}

/// Why [`Server::shutdown`] did not end cleanly.
#[derive(Debug)]
pub enum ShutdownError {
    /// The engine had stopped by itself.
    Stopped(Stopped),
    /// Draining or the final commit failed.
    Failed(String),
}

/// A running server (see the module docs).
pub struct Server {
    pipeline: Pipeline,
    handle: Handle,
    /// The cluster side (`cluster = kafka`): the replica of the shard's log and the way in.
    cluster: Option<ClusterNode>,
    /// Where ticks come from; Bourse's products in the market data.
    feed: Feed,
    /// `market-tier = partitioned`: the placement of the tick topic's partitions.
    market_tier: Option<Arc<bourse_gateway::tier::MarketTier>>,
    history: HistoryHandle,
    history_thread: JoinHandle<()>,
    market: Arc<MarketService>,
    liquidity: Option<Liquidity>,
    load: Option<Load>,
    http: Option<bourse_gateway::http::Server>,
    snapshots: PeriodicSnapshots,
    store_config: StoreConfig,
    report: StartReport,
    /// The API's shared state, to see whether a handler or a connection panicked.
    api: Option<AppState>,
}

/// What start-up found and did (each also logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    /// Recovery's report (`recovered to seq N in X ms: ...`).
    pub recovery: String,
    /// The last sequence number recovered (0: an empty data directory).
    pub recovered_seq: u64,
    /// How the history read model was brought up to the recovered engine.
    pub history: HistoryStart,
    /// The web terminal's start-up line (its address, or how to build it); `None` without
    /// HTTP.
    pub web: Option<String>,
}

/// How the history read model was brought up to the recovered engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryStart {
    /// Its log already held every event.
    UpToDate,
    /// The command journal was replayed to fold the events the log lacked.
    CaughtUp {
        from_event: u64,
        to_event: u64,
        replayed: u64,
    },
    /// The journal no longer reaches back far enough (retention removed segments): the
    /// history starts over at `at_event`; older records are not shown.
    StartedOver { at_event: u64, why: String },
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("http_addr", &self.http_addr())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Recovers the data directory and starts everything (see the module docs). Progress
    /// and what it found go to stderr.
    pub fn start(config: &ServeConfig) -> Result<Server, String> {
        Server::start_with_ack_log(config, open_ack_log(config)?)
    }

    #[allow(
        clippy::too_many_lines,
        reason = "start-up in its order (module docs): each step a few lines, the order is \
                  what matters and reads best in one place"
    )]
    fn start_with_ack_log(
        config: &ServeConfig,
        ack_log: Option<Box<dyn Write + Send>>,
    ) -> Result<Server, String> {
        if config.durability == bourse_journal::Durability::None {
            tracing::warn!(
                "durability none: acknowledged commands may be lost in a crash or power \
                 loss"
            );
        }
        let store_config = config.store();
        if let Some(peer) = config.join_from.as_deref() {
            if !config.cluster_kafka {
                return Err("join-from is for a node of a cluster (cluster = kafka)".into());
            }
            crate::join::join_from_peer(config, peer)?;
        }
        let mut recovered = Store::open(&store_config, &mut ConsoleProgress::stderr())
            .map_err(|e| format!("recovery of {} failed: {e}", store_config.dir.display()))?;
        tracing::info!("{}", recovered.report);
        for skipped in &recovered.report.skipped_snapshots {
            tracing::warn!(
                "skipped snapshot {}: {}",
                skipped.path.display(),
                skipped.error
            );
        }
        let (history, mut history_log, history_start) = open_history(
            &store_config,
            config.history_segment_bytes(),
            &mut recovered,
        )?;
        // The journal's retention keeps what the history's catch-up would replay after a
        // crash: the history thread raises this as it syncs its log.
        let history_durable = Arc::new(std::sync::atomic::AtomicU64::new(history_log.sync()?));
        recovered
            .store
            .set_retention_floor(Arc::clone(&history_durable));
        let mut report = StartReport {
            recovery: recovered.report.to_string(),
            recovered_seq: recovered.report.last_seq,
            history: history_start,
            web: None,
        };
        let next_seq = recovered.next_seq();
        let last_snapshot = recovered
            .report
            .snapshot
            .as_ref()
            .map_or(0, |(seq, _)| *seq);

        let hub = Arc::new(Hub::new(config.ws_queue));
        let market = MarketService::start(
            config.market(),
            MarketFanout {
                hub: Arc::clone(&hub),
            },
        )?;
        let pipeline = Pipeline::start(recovered, config.pipeline())
            .map_err(|e| format!("cannot start the pipeline: {e}"))?;
        let handle = pipeline.handle();
        // Subscribed before anything can submit a command, so the history misses no event.
        let events = handle.subscribe();
        // Bourse's fills the market data missed (a crash between the two), before newer ones.
        let caught_up = bourse_market_service::catch_up_bourse(&market, &history, &handle)?;
        if caught_up > 0 {
            tracing::info!("market data: {caught_up} of Bourse's fills taken from the history");
        }
        let fanout = HistoryFanout::new(Arc::clone(&hub), pipeline.handle(), Some(market.sender()));
        let (history, history_thread) =
            HistoryHandle::spawn(history, history_log, events, fanout, history_durable)?;
        let cluster = if config.cluster_kafka {
            Some(ClusterNode::start(
                config,
                next_seq - 1,
                last_snapshot,
                &handle,
            )?)
        } else {
            None
        };
        let access = match &cluster {
            Some(node) => Access {
                handle: handle.clone(),
                commands: node.sequencer(),
            },
            None => Access::local(handle.clone()),
        };
        // What must run once in a cluster runs on the roles node, once it has the whole log
        // (what it finds missing is then really missing).
        let runs_roles = cluster.as_ref().is_none_or(ClusterNode::runs_roles);
        if let Some(node) = cluster.as_ref().filter(|node| node.runs_roles()) {
            node.wait_until_fresh()?;
        }
        if runs_roles {
            let added = crate::catalogue::ensure(&mut access.clone())?;
            if added > 0 {
                tracing::info!("default catalogue: {added} assets and products added");
            }
        }
        let feed = Feed::start(
            config,
            &market,
            &handle,
            cluster
                .as_ref()
                .map(|node| (config.node_id, node.runs_roles())),
        )?;
        let market_tier = match feed.partitioned {
            Some(partitions) => Some(crate::market_tier::start_market_tier(
                config, partitions, &market,
            )?),
            None => None,
        };
        let liquidity = if config.liquidity && config.feed != FeedMode::Off && runs_roles {
            let started = Liquidity::start(access.clone(), Arc::clone(&market), &history)?;
            tracing::info!("liquidity provider quoting every product the feed prices");
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
        let mut api_state = None;
        let http = match config.http_addr {
            Some(addr) => {
                let api = config.api();
                let mut state = AppState::new(
                    pipeline.handle(),
                    history.clone(),
                    hub,
                    Arc::clone(&market),
                    next_seq - 1,
                    &api,
                );
                if let Some(node) = &cluster {
                    let mut info = node.info();
                    info.market_tier = market_tier.clone();
                    state = state.in_cluster(node.sequencer(), info);
                }
                api_state = Some(state.clone());
                let server = bourse_gateway::http::Server::start(addr, state)?;
                tracing::info!("HTTP on http://{}", server.addr);
                let web =
                    bourse_gateway::web::WebFiles::new(&api.web_dir).startup_line(server.addr);
                tracing::info!("{web}");
                report.web = Some(web);
                Some(server)
            }
            None => None,
        };
        tracing::info!(
            "serving {} (ring {}, {} topology), next seq {next_seq}; SIGINT or SIGTERM \
             stops",
            config.data_dir.display(),
            config.ring_size,
            config.value("topology")
        );
        let load = match existing {
            Some(existing) => {
                tracing::info!(
                    "load generator: {} commands/s on {}",
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
        Ok(Server {
            pipeline,
            handle,
            cluster,
            feed,
            market_tier,
            history,
            history_thread,
            market,
            liquidity,
            load,
            http,
            snapshots: PeriodicSnapshots {
                every: config.snapshot_every,
                last: last_snapshot,
                pending: None,
            },
            store_config,
            report,
            api: api_state,
        })
    }

    /// What start-up found and did.
    pub fn report(&self) -> &StartReport {
        &self.report
    }

    /// The address the HTTP API listens on (`None`: no HTTP).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|http| http.addr)
    }

    /// A handle on the pipeline (to submit commands or read the engine).
    pub fn handle(&self) -> Handle {
        self.pipeline.handle()
    }

    /// The periodic work: a snapshot through the ring every `snapshot-every` commands, and
    /// the load generator's end. `Err` once the server stopped by itself.
    pub fn poll(&mut self) -> Result<(), Stopped> {
        if let Some(cause) = self.failure() {
            return Err(Stopped { cause });
        }
        if let Err(why) = self.feed.define_new_products(&self.market, &self.handle) {
            tracing::warn!("{why}");
        }
        let applied_seq = self.pipeline.stats().applied_seq;
        match &mut self.cluster {
            // In a cluster a snapshot is a record of the log (nothing else may enter the
            // pipeline); the roles node sends it.
            Some(node) => node.poll(applied_seq),
            None => self.snapshots.tick(&mut self.handle, applied_seq),
        }
        if self.load.as_ref().is_some_and(Load::is_finished) {
            let summary = self.load.take().map(Load::stop).unwrap_or_default();
            tracing::info!("the load generator ended: {summary}");
        }
        Ok(())
    }

    /// Why the server cannot go on, if it cannot: the engine stopped (a journal failure, a
    /// panic), a read model failed (its log failed, it fell behind, a panic while it held its
    /// lock), the liquidity provider or an API handler or connection panicked. Fail-stop:
    /// nothing after the cause is acknowledged, and a restart recovers from the journal.
    pub fn failure(&self) -> Option<String> {
        if let Some(cause) = self.pipeline.stopped() {
            return Some(format!("the engine stopped: {cause}"));
        }
        if let Some(why) = self.cluster.as_ref().and_then(ClusterNode::failure) {
            return Some(why);
        }
        let parts = [
            self.history.failure(),
            self.market.failure(),
            self.api.as_ref().and_then(AppState::failure),
        ];
        parts
            .into_iter()
            .flatten()
            .next()
            .map(str::to_string)
            .or_else(|| self.liquidity.as_ref().and_then(Liquidity::failure))
    }

    /// Stops cleanly: the API stops accepting, the load generator and the liquidity provider
    /// stop, the ring is drained, the last batch committed and (by default) a final snapshot
    /// written; the history folds the last events and the market data writes a checkpoint.
    /// Returns the summary line (`stopped cleanly at seq N, state hash H, ...`).
    pub fn shutdown(self) -> Result<String, ShutdownError> {
        let Server {
            pipeline,
            handle,
            cluster,
            feed,
            market_tier,
            history,
            history_thread,
            market,
            liquidity,
            load,
            http,
            snapshots,
            store_config,
            report: _,
            api: _,
        } = self;
        if let Some(http) = http
            && let Err(error) = http.stop()
        {
            tracing::error!("{error}");
        }
        let load_summary = load.map(Load::stop);
        if let Some(liquidity) = liquidity {
            liquidity.stop();
        }
        if let Some(tier) = market_tier {
            tier.stop();
        }
        feed.stop();
        // Nothing more from the log: what the pipeline was handed is drained below.
        if let Some(cluster) = cluster {
            cluster.stop();
        }
        if let Some(cause) = pipeline.stopped() {
            return Err(ShutdownError::Stopped(Stopped {
                cause: format!("the engine stopped: {cause}"),
            }));
        }
        drop(snapshots);
        drop(handle);
        let finished = match pipeline.shutdown() {
            Ok(finished) => finished,
            Err(PipelineError::Stopped(cause)) => {
                return Err(ShutdownError::Stopped(Stopped {
                    cause: format!("the engine stopped: {cause}"),
                }));
            }
            Err(error) => return Err(ShutdownError::Failed(format!("shutdown failed: {error}"))),
        };
        finish_history(&history, history_thread, finished.engine.event_seq());
        if let Err(error) = market.stop() {
            tracing::error!("market data: the last checkpoint failed: {error}");
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
        Ok(format!(
            "stopped cleanly at seq {}, state hash {}, {snapshot}{load}",
            finished.last_seq, finished.state_hash
        ))
    }
}

/// Opens the history read model and brings it up to the recovered engine (see
/// `bourse_history`). A history ahead of the engine (a journal that lost its tail with
/// durability none) is thrown away and rebuilt.
fn open_history(
    store_config: &StoreConfig,
    history_segment_bytes: u64,
    recovered: &mut bourse_store::Recovered,
) -> Result<(History, HistoryLog, HistoryStart), String> {
    let dir = store_config.dir.join(bourse_history::HISTORY_DIR);
    let engine_event_seq = recovered.engine.event_seq();
    let (mut log, mut model) = open_history_log(&dir, history_segment_bytes)?;
    if log.started_over {
        tracing::warn!(
            "the history log in {} held records of two lives of it (a power loss): rebuilding \
             it from the journal",
            dir.display()
        );
    }
    if model.event_seq() > engine_event_seq {
        tracing::warn!(
            "the history (to event {}) is ahead of the engine (event {}): rebuilding it",
            model.event_seq(),
            engine_event_seq
        );
        drop(log);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
        (log, model) = open_history_log(&dir, history_segment_bytes)?;
    }
    let started = std::time::Instant::now();
    let from_event = model.event_seq();
    let caught_up = bourse_history::catch_up(
        &mut model,
        &mut log,
        recovered.store.journal(),
        |covered| {
            bourse_snapshots::load_newest_at_most(&store_config.snapshots_dir(), covered)
                .map(|loaded| loaded.newest)
                .map_err(|e| format!("cannot read the snapshots: {e}"))
        },
        store_config.limits,
        engine_event_seq,
    );
    let start = match caught_up {
        Ok(0) => HistoryStart::UpToDate,
        Ok(replayed) => HistoryStart::CaughtUp {
            from_event,
            to_event: model.event_seq(),
            replayed,
        },
        Err(why) => {
            // Serving matters more than old history: start it over from here, and say so.
            tracing::warn!(
                "{why}; the history starts over at event {engine_event_seq} (older \
                 orders, trades and funds movements are not shown)"
            );
            let last_seq = recovered.report.last_seq;
            log.append(last_seq, engine_event_seq, &[])?;
            model.fold(last_seq, engine_event_seq, &[]);
            HistoryStart::StartedOver {
                at_event: engine_event_seq,
                why,
            }
        }
    };
    if let HistoryStart::CaughtUp { replayed, .. } = start {
        tracing::info!(
            "history caught up from event {from_event} to {} ({replayed} commands replayed in {} ms)",
            model.event_seq(),
            started.elapsed().as_millis()
        );
    }
    Ok((model, log, start))
}

/// The history log in `dir`, with segments of `segment_size_bytes` (setting
/// `history-segment-mib`).
fn open_history_log(dir: &Path, segment_size_bytes: u64) -> Result<(HistoryLog, History), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let storage = bourse_journal::FsStorage::new(dir)
        .map_err(|e| format!("cannot open the history log {}: {e}", dir.display()))?;
    HistoryLog::open_with_storage(
        dir,
        storage,
        segment_size_bytes,
        bourse_journal::PrepareNext::Background,
    )
}

/// Lets the history fold the last events before the process ends (it would rebuild them at
/// the next start anyway).
fn finish_history(history: &HistoryHandle, thread: JoinHandle<()>, event_seq: u64) {
    let waited = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(history.read(event_seq, |_| ())));
    if let Err(why) = waited {
        tracing::error!("the history did not finish: {why}; the next start rebuilds it");
    }
    // The bus closed with the pipeline, so the thread is ending; joined, it has let go of
    // its log and the directory can be opened again in this process.
    let _ = thread.join();
}

/// Says why the pipeline stopped and ends the process: nothing more can be acknowledged, and
/// nothing is waited for.
fn engine_stopped(stopped: &Stopped) -> ! {
    tracing::error!("{stopped}");
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
                    tracing::warn!(
                        "{} again: exiting now (everything acknowledged is in the journal)",
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
            tracing::warn!("ack-log is set but load-rate is 0: no acknowledgements to log");
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
                    tracing::warn!("snapshot not taken: {why}");
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
