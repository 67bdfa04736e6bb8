//! What the handlers share, and their two ways to the engine.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bourse_cluster::Sequencer;
use bourse_history::HistoryHandle;
use bourse_market_service::MarketService;
use bourse_pipeline::Handle;

use crate::error::{ApiError, propose_error, submit_error};
use crate::requests::RequestMetrics;

/// A node's place in the cluster (the server's settings give it).
#[derive(Clone, Debug)]
pub struct ClusterInfo {
    /// This node's id.
    pub node: u16,
    /// The engine shard this node replicates.
    pub shard: u16,
    /// The shard's command topic.
    pub topic: String,
    /// The other nodes' HTTP base addresses (`http://host:port`).
    pub peers: Vec<String>,
    /// This node's checkpoints, when it takes part in them.
    pub checkpoints: Option<Arc<bourse_cluster::Checkpointer>>,
    /// The market-data tier (`market-tier = partitioned`): which partitions this node holds,
    /// and where a product it does not hold is answered.
    pub market_tier: Option<Arc<crate::tier::MarketTier>>,
}

/// The API's own settings (the server's settings carry them).
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// New accounts are verified at once (the embedded demo) instead of `pending`.
    pub auto_verify: bool,
    /// The admin API's bearer token; `None`: the admin API is off.
    pub admin_token: Option<String>,
    /// Requests per second per account (0: no limit).
    pub rate_limit: u32,
    /// The web terminal's built files.
    pub web_dir: PathBuf,
    /// Where the snapshots are (`GET /admin/snapshot` serves the newest).
    pub snapshots_dir: PathBuf,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The local pipeline: reads, statistics (and, on a single node, commands).
    pub(crate) handle: Handle,
    /// Where commands go: the local pipeline, or the cluster's log.
    pub(crate) sequencer: Sequencer,
    /// This node's place in the cluster; `None` on a single node.
    pub(crate) cluster: Option<ClusterInfo>,
    /// New accounts are verified at once (the embedded demo) instead of `pending`.
    pub(crate) auto_verify: bool,
    /// The history read model (orders, trades, funds).
    pub(crate) history: HistoryHandle,
    /// SHA-256 of the admin token; `None`: the admin API is off.
    pub(crate) admin_token_hash: Option<[u8; 32]>,
    pub(crate) rate_limiter: Arc<crate::limits::RateLimiter>,
    /// The WebSocket connections and channels.
    pub(crate) hub: Arc<crate::hub::Hub>,
    /// Market data: the catalogue, ticks and candles.
    pub(crate) market: Arc<MarketService>,
    /// The web terminal's built files, served on every path outside the API.
    pub(crate) web: Arc<crate::web::WebFiles>,
    /// Where the snapshots are.
    pub(crate) snapshots_dir: PathBuf,
    /// The sequence number recovery ended at.
    pub(crate) recovered_seq: u64,
    pub(crate) started: Instant,
    pub(crate) requests: Arc<RequestMetrics>,
    /// Set once when a handler or a connection panicked: the server stops.
    failure: Arc<OnceLock<String>>,
}

impl AppState {
    pub fn new(
        handle: Handle,
        history: HistoryHandle,
        hub: Arc<crate::hub::Hub>,
        market: Arc<MarketService>,
        recovered_seq: u64,
        config: &ApiConfig,
    ) -> Self {
        AppState {
            sequencer: Sequencer::Local(handle.clone()),
            cluster: None,
            handle,
            market,
            auto_verify: config.auto_verify,
            history,
            admin_token_hash: config.admin_token.as_deref().map(crate::auth::sha256),
            rate_limiter: Arc::new(crate::limits::RateLimiter::new(config.rate_limit)),
            hub,
            web: Arc::new(crate::web::WebFiles::new(&config.web_dir)),
            snapshots_dir: config.snapshots_dir.clone(),
            recovered_seq,
            started: Instant::now(),
            requests: Arc::new(RequestMetrics::default()),
            failure: Arc::new(OnceLock::new()),
        }
    }
}

impl AppState {
    /// This node as one of a cluster: its commands go through `sequencer` (the shard's log)
    /// and its authenticated requests are answered only while it has the whole log.
    #[must_use]
    pub fn in_cluster(mut self, sequencer: Sequencer, info: ClusterInfo) -> Self {
        self.sequencer = sequencer;
        self.cluster = Some(info);
        self
    }

    /// Why the API failed (a handler or a connection panicked), if it did; the server stops
    /// then.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Records why the API failed (the first cause is kept).
    pub(crate) fn fail(&self, why: String) {
        tracing::error!("{why}; the server stops");
        let _ = self.failure.set(why);
    }

    /// Reads engine state (see `Handle::try_query`), with the contract's errors.
    pub(crate) async fn query<T, F>(&self, read: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&bourse_engine::Engine) -> T + Send + 'static,
    {
        let ticket = self.handle.try_query(read).map_err(submit_error)?;
        ticket.await.map_err(submit_error)
    }

    /// Submits a command (to the local pipeline or the cluster's log) and awaits its
    /// outcome, with the contract's errors.
    pub(crate) async fn submit(
        &self,
        kind: bourse_engine::CommandKind,
    ) -> Result<bourse_pipeline::Outcome, ApiError> {
        let outcome = self
            .sequencer
            .clone()
            .submit(kind)
            .await
            .map_err(propose_error)?;
        crate::offset::note_offset(outcome.seq);
        Ok(outcome)
    }
}
