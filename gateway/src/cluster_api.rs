//! The cluster as the API shows it: `GET /api/v1/cluster` (every node, its applied offset
//! and its lag: this node's own view and each peer's, asked over HTTP), `GET
//! /api/v1/cluster/node` (this node alone, what the peers ask), and the gate that keeps a
//! node that may be behind the log from answering with old state ([`freshness_gate`]).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::state::AppState;

/// How long `GET /cluster` waits for a peer's answer.
const PEER_TIMEOUT: Duration = Duration::from_millis(500);
/// The most bytes of a peer's answer read.
const PEER_BODY_MAX: usize = 16 * 1024;

/// One node as `GET /cluster` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node's id (0 on a single node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u16>,
    /// Where the node was asked (peers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The next log offset the node will apply: offsets below it are in its state (on a
    /// single node: the next journal sequence number minus one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// The log's end at the broker's newest answer to this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_end: Option<u64>,
    /// `logEnd - nextOffset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Whether the node has had the whole log within its staleness bound (it answers
    /// authenticated requests only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh: Option<bool>,
    /// Milliseconds since the node last had the whole log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind_ms: Option<u64>,
    /// Milliseconds since the broker last answered the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard_ms_ago: Option<u64>,
    /// Checkpoints at which every node agreed with this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints_agreed: Option<u64>,
    /// `market-tier = partitioned`: the tick topic's partitions this node holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub market: Option<crate::tier::TierStatus>,
    /// Why the peer could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `GET /cluster`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClusterView {
    /// `single`: one node, its journal is the log; `kafka`: nodes sharing a Kafka command log.
    mode: &'static str,
    /// The engine shard.
    shard: u16,
    /// The shard's command topic (`kafka` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    /// The node that answered.
    this_node: NodeStatus,
    /// The other nodes, as each answered (or why it did not).
    peers: Vec<NodeStatus>,
}

/// This node's status.
fn own_status(state: &AppState) -> NodeStatus {
    let applied = state.handle.stats().applied_seq;
    let (Some(info), Some(path)) = (&state.cluster, state.sequencer.log_path()) else {
        return NodeStatus {
            node: Some(0),
            next_offset: Some(applied),
            fresh: Some(true),
            ..NodeStatus::default()
        };
    };
    let status = path.freshness().status();
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    NodeStatus {
        node: Some(info.node),
        url: None,
        next_offset: Some(status.next_offset),
        log_end: status.log_end,
        lag: status
            .log_end
            .map(|end| end.saturating_sub(status.next_offset)),
        fresh: Some(status.fresh),
        behind_ms: status.behind.map(millis),
        heard_ms_ago: status.heard_ago.map(millis),
        checkpoints_agreed: info.checkpoints.as_ref().map(|c| c.agreed()),
        market: info.market_tier.as_ref().map(|tier| tier.status()),
        error: None,
    }
}

/// `GET /cluster/node`.
#[utoipa::path(
    get,
    path = "/api/v1/cluster/node",
    tag = "cluster",
    responses((status = 200, description = "this node's place in the log", body = NodeStatus))
)]
pub(crate) async fn node(State(state): State<AppState>) -> Response {
    axum::Json(own_status(&state)).into_response()
}

/// `GET /cluster`.
#[utoipa::path(
    get,
    path = "/api/v1/cluster",
    tag = "cluster",
    responses((status = 200, description = "every node, its applied offset and its lag", body = ClusterView))
)]
pub(crate) async fn cluster(State(state): State<AppState>) -> Response {
    let this_node = own_status(&state);
    let Some(info) = &state.cluster else {
        return axum::Json(ClusterView {
            mode: "single",
            shard: 0,
            topic: None,
            this_node,
            peers: Vec::new(),
        })
        .into_response();
    };
    let asked = info.peers.iter().map(|url| ask_peer(url.clone()));
    let peers = futures_util::future::join_all(asked).await;
    axum::Json(ClusterView {
        mode: "kafka",
        shard: info.shard,
        topic: Some(info.topic.clone()),
        this_node,
        peers,
    })
    .into_response()
}

/// A peer's `GET /cluster/node`, or why it did not answer.
async fn ask_peer(url: String) -> NodeStatus {
    let asked = tokio::time::timeout(PEER_TIMEOUT, fetch_node(&url)).await;
    let mut status = match asked {
        Ok(Ok(status)) => status,
        Ok(Err(why)) => NodeStatus {
            error: Some(why),
            ..NodeStatus::default()
        },
        Err(_) => NodeStatus {
            error: Some(format!("no answer within {} ms", PEER_TIMEOUT.as_millis())),
            ..NodeStatus::default()
        },
    };
    status.url = Some(url);
    status
}

async fn fetch_node(base: &str) -> Result<NodeStatus, String> {
    let answer = crate::peer::get(base, "/api/v1/cluster/node", None, PEER_BODY_MAX).await?;
    if !answer.status.is_success() {
        return Err(format!("answered {}", answer.status));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("unreadable answer: {e}"))
}

/// Keeps a node that may be behind the log (see `bourse_cluster::Freshness`) from answering
/// an authenticated request: a read would show old balances and orders (503 `stale`), a
/// write could not be answered within the bound (503 `unavailable`). Public market data
/// (no `Authorization`) is still served, with its timestamps; the admin API and the cluster
/// status are always served, so that operators can see what is wrong.
pub(crate) async fn freshness_gate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let gated = request.headers().contains_key(header::AUTHORIZATION)
        && path.starts_with("/api/")
        && !path.starts_with("/api/v1/admin/")
        && !path.starts_with("/api/v1/cluster");
    if gated && let Err(stale) = state.sequencer.fresh() {
        let read = request.method() == Method::GET || request.method() == Method::HEAD;
        return crate::error::stale_error(&stale, read).into_response();
    }
    next.run(request).await
}
