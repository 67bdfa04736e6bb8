//! The market-data tier of a cluster (docs/market-data.md, "Across nodes"): each node reads
//! and builds only the tick topic's partitions it holds, and a request for a product whose
//! partition it does not hold is answered through a node that does.
//!
//! - **Placement.** A thread here reads the live nodes ([`bourse_cluster::Members`]) every
//!   [`PLACE_EVERY`], places every partition over them
//!   ([`bourse_marketdata::placement::holding`]: an owner and standbys by rendezvous hashing)
//!   and hands this node's partitions to the market data's Kafka consumer
//!   ([`MarketService::set_partitions`]). Each partition added starts at the offset stored
//!   with the market data's state: a partition this node held before is taken up where it
//!   stopped, not rebuilt.
//!   The first placement waits until the members topic has been read for a heartbeat
//!   interval and a half ([`Members::settled`]), so that a starting node does not begin by
//!   reading every partition as if it were alone.
//! - **Ready.** A partition held here is served here once the consumer has been level with
//!   its end once since it was added (lag 0 in a statistics report). Until then the request
//!   goes to another holder.
//! - **Routing** (`routing.rs`, a middleware): `GET /api/v1/products/{symbol}` and its
//!   `candles` and `ticks` go to a ready holder of the symbol's partition: served here if this
//!   node is one, else forwarded to the owner (or to the standby, if the owner is this node
//!   and not ready yet) and its answer relayed as it is. A forwarded request carries
//!   [`FORWARDED`]; the node it reaches serves it or answers 503, never forwards it again.
//!   The engine's book (`/book`) is every node's and is not routed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bourse_cluster::{Member, Members};
use bourse_market_service::MarketService;
use bourse_marketdata::placement::{self, NodeId, Partitioner};

/// How often the placement is computed again from the live nodes.
pub const PLACE_EVERY: Duration = Duration::from_millis(200);

/// The header of a request one node forwarded to another.
pub const FORWARDED: &str = "x-bourse-forwarded";

/// The tier's settings.
#[derive(Clone, Debug)]
pub struct TierConfig {
    /// This node.
    pub me: u16,
    /// The tick topic's partitions.
    pub partitions: u32,
    /// How many nodes hold each partition.
    pub copies: usize,
    /// How the feed's producer picks a symbol's partition.
    pub partitioner: Partitioner,
    /// Partitions every node holds besides its share: those of the exchange-rate products,
    /// so that every node converts prices.
    pub pinned: Vec<u32>,
}

/// What `GET /cluster/node` says of the tier.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct TierStatus {
    /// The tick topic's partitions.
    pub partitions: u32,
    /// How many nodes hold each.
    pub copies: usize,
    /// The live nodes, as this one hears them.
    pub live: Vec<u16>,
    /// The partitions this node owns (serves first).
    pub owned: Vec<u32>,
    /// The partitions it keeps as a standby.
    pub standby: Vec<u32>,
    /// The partitions every node holds (the exchange rates'), beside its share.
    pub pinned: Vec<u32>,
    /// Those of its partitions its consumer has caught up with: it answers for them.
    pub ready: Vec<u32>,
}

/// Where a product's market data is answered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Here.
    Local,
    /// Through these nodes: the first that answers (the owner first, then the standbys).
    Forward(Vec<Member>),
    /// No live node holds it ready.
    Unavailable,
}

struct Placed {
    /// The partitions handed to the consumer.
    held: BTreeSet<u32>,
    /// Those the consumer has been level with since they were added.
    ready: BTreeSet<u32>,
}

/// The running tier of one node.
pub struct MarketTier {
    config: TierConfig,
    members: Members,
    placed: Arc<Mutex<Placed>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for MarketTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketTier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MarketTier {
    /// Starts placing partitions over `members` and handing this node's to `market`'s
    /// consumer (started with `AssignmentMode::Given`).
    pub fn start(
        config: TierConfig,
        members: Members,
        market: Arc<MarketService>,
    ) -> Result<Arc<MarketTier>, String> {
        let placed = Arc::new(Mutex::new(Placed {
            held: BTreeSet::new(),
            ready: BTreeSet::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let tier = Arc::new(MarketTier {
            config,
            members,
            placed: Arc::clone(&placed),
            stop: Arc::clone(&stop),
            thread: Mutex::new(None),
        });
        let thread = {
            let tier = Arc::downgrade(&tier);
            std::thread::Builder::new()
                .name("bourse-placement".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let Some(tier) = tier.upgrade() else { return };
                        tier.place(&market);
                        drop(tier);
                        std::thread::park_timeout(PLACE_EVERY);
                    }
                })
                .map_err(|e| format!("cannot start the placement thread: {e}"))?
        };
        *lock(&tier.thread) = Some(thread);
        Ok(tier)
    }

    /// One round: this node's partitions from the live nodes, handed to the consumer if they
    /// changed; readiness from the consumer's lags.
    fn place(&self, market: &MarketService) {
        // Until every live node has been heard, this node would place on too few nodes and
        // start reading partitions that are not its own.
        if !self.members.settled() {
            return;
        }
        let (live, holding) = self.holding();
        let held: BTreeSet<u32> = holding
            .all()
            .into_iter()
            .chain(self.config.pinned.iter().copied())
            .collect();
        let mut placed = lock(&self.placed);
        if held != placed.held {
            let partitions: Vec<i32> = held.iter().filter_map(|&p| i32::try_from(p).ok()).collect();
            market.set_partitions(&partitions);
            tracing::info!(
                "market tier: node {} holds {} partitions ({} owned) of {} over live nodes {live:?}",
                self.config.me,
                held.len(),
                holding.owned.len(),
                self.config.partitions
            );
            placed.ready.retain(|p| held.contains(p));
            placed.held = held;
        }
        for lag in market.partition_lags() {
            if let Ok(partition) = u32::try_from(lag.partition)
                && lag.lag == Some(0)
                && placed.held.contains(&partition)
            {
                placed.ready.insert(partition);
            }
        }
    }

    /// The live nodes, and what this node holds among them.
    fn holding(&self) -> (Vec<NodeId>, placement::Holding) {
        let live: Vec<NodeId> = self
            .members
            .live()
            .iter()
            .map(|m| NodeId::from(m.node))
            .collect();
        let holding = placement::holding(
            NodeId::from(self.config.me),
            &live,
            self.config.partitions,
            self.config.copies,
        );
        (live, holding)
    }

    /// The partition of `symbol`.
    pub fn partition(&self, symbol: &str) -> u32 {
        self.config
            .partitioner
            .partition(symbol.as_bytes(), self.config.partitions)
    }

    /// Whether this node holds `partition` and has caught up with it.
    pub fn ready(&self, partition: u32) -> bool {
        lock(&self.placed).ready.contains(&partition)
    }

    /// Where `symbol`'s market data is answered from: here if this node holds its partition
    /// ready, else its other holders, the owner first.
    pub fn route(&self, symbol: &str) -> Route {
        if self.ready(self.partition(symbol)) {
            return Route::Local;
        }
        let others = self.holders_of(symbol);
        if others.is_empty() {
            Route::Unavailable
        } else {
            Route::Forward(others)
        }
    }

    /// The live holders of `symbol`'s partition other than this node, the owner first.
    pub fn holders_of(&self, symbol: &str) -> Vec<Member> {
        self.holders_of_partition(self.partition(symbol))
    }

    /// The number of partitions of the tick topic.
    pub fn partitions(&self) -> u32 {
        self.config.partitions
    }

    /// The live holders of `partition` other than this node, the owner first.
    pub fn holders_of_partition(&self, partition: u32) -> Vec<Member> {
        let live = self.members.live();
        let ids: Vec<NodeId> = live.iter().map(|m| NodeId::from(m.node)).collect();
        let me = NodeId::from(self.config.me);
        placement::holders(partition, &ids, self.config.copies)
            .into_iter()
            .filter(|&node| node != me)
            .filter_map(|node| live.iter().find(|m| NodeId::from(m.node) == node).cloned())
            .collect()
    }

    /// Stops the placement and the heartbeats (the others then place this node's partitions
    /// elsewhere).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = lock(&self.thread).take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        self.members.stop();
    }

    /// The live nodes, by id.
    pub fn live(&self) -> Vec<Member> {
        self.members.live()
    }

    /// The placement as this node sees it now.
    pub fn status(&self) -> TierStatus {
        let (live, holding) = self.holding();
        TierStatus {
            partitions: self.config.partitions,
            copies: self.config.copies,
            live: live.iter().filter_map(|&n| u16::try_from(n).ok()).collect(),
            owned: holding.owned,
            standby: holding.standby,
            pinned: self.config.pinned.clone(),
            ready: lock(&self.placed).ready.iter().copied().collect(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
