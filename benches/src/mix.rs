//! A seeded, deterministic generator of exchange-core's published benchmark mix.
//!
//! exchange-core's single-book benchmark: 1,000 users, about 1,000 resting limit orders over
//! about 750 price levels, and a stream of 9% GTC limit orders, 3% IOC limit orders, 6% cancels
//! and 82% moves (a resting order changes its price). Quantities are small.
//!
//! # How the generator knows what rests
//!
//! It keeps its own reference book, a plain price-time FIFO model (a `BTreeMap` of price levels,
//! each a queue of order ids), and applies every op to it as it is generated. So it knows, for
//! every op, which resting orders fill and by how much, which leave the book, and what is left
//! of each order. The whole stream is generated before any timing, and a venue only replays it.
//!
//! That is honest only if every venue matches exactly as the model does, so each adapter checks
//! it after a run: [`crate::venues::Venue::verify`] compares the venue's resting orders (id,
//! side, price, remaining) with [`Mix::resting`], and the run also counts rejections (there
//! should be none). A venue that diverged would reject cancels and moves of orders it no longer
//! has, and its final book would differ.
//!
//! A [`Op::Move`] carries the remaining quantity the model predicts, because Bourse's
//! `AmendOrder` states the new open quantity along with the new price (the peers' price-only
//! amendments ignore it). Every op names the user that sends it, as an authenticated request
//! would.
//!
//! # Constraints that keep the three venues comparable
//!
//! - **No self-trades.** Bourse always applies self-trade prevention; the peers do not (by
//!   default). A taker's user is picked among those who own none of the makers it would hit, and
//!   a move that would hit an order of its own owner is kept passive.
//! - **A crossing order fills in full within its limit.** matchcore 0.4.0 matches a crossing
//!   limit order with no price limit (`submit_crossable_order` calls `match_order(.., None, ..)`,
//!   and so does a crossing price amendment), so a taker whose quantity exceeds what its limit
//!   reaches sweeps deeper levels there and rests nothing. So GTC orders never cross, an IOC's
//!   quantity is capped at what its limit reaches, and a move whose remaining quantity exceeds
//!   what its new price reaches is kept passive: no taker leaves a remainder, and no IOC
//!   expires partially filled.
//!
//! # Shape of the book
//!
//! The mid price random-walks one tick at a time (once in `mid_step_every` ops on average).
//! A GTC order is passive: `pct_at_touch`% of them quote 1..=4 ticks from the mid, the others
//! go `|2 * mean of 4 U(0..dev) - dev|` ticks behind it with `dev = 1 + U(0,1)^2 * band_ticks`
//! (the shape of exchange-core's generator), so most orders sit near the top and a tail reaches
//! far behind; a price that would cross is clamped one tick inside the opposite best. A move
//! steps an order towards the mid by `1 + distance / move_pull_div` ticks (like exchange-core's
//! moves towards the last trade price); one pinned against the other side steps back instead.
//! An IOC's limit lies 0..=`taker_reach_ticks` beyond the opposite best.
//!
//! The book is held near `target_orders` by the takers' appetite: at or above the target an
//! IOC asks for `crowded_ioc_factor` times a usual size and a move may cross (and fill); below
//! it an IOC asks for 1..=3 lots and a move that would cross is kept passive. Sizes are
//! `1 + U(0..6)^3` lots (1 to 126, mostly a few), as in exchange-core's generator.

use std::collections::{BTreeMap, VecDeque};

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for a workload generator.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below `n / 2^64`).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// One request to a venue. Ids are the generator's, sequential from 1 over all `Place` ops (a
/// venue maps them to its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A limit order: GTC (rests what does not match) or IOC.
    Place {
        user: u32,
        id: u32,
        side: Side,
        price_ticks: i64,
        qty: i64,
        ioc: bool,
    },
    /// Cancel a resting order.
    Cancel { user: u32, id: u32 },
    /// Change a resting order's price; `remaining` is its open quantity (unchanged).
    Move {
        user: u32,
        id: u32,
        new_price: i64,
        remaining: i64,
    },
}

/// The four op types of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    Gtc,
    Ioc,
    Cancel,
    Move,
}

impl OpKind {
    pub const ALL: [OpKind; 4] = [OpKind::Gtc, OpKind::Ioc, OpKind::Cancel, OpKind::Move];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Gtc => "GTC limit",
            OpKind::Ioc => "IOC limit",
            OpKind::Cancel => "cancel",
            OpKind::Move => "move",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Place { ioc: false, .. } => OpKind::Gtc,
            Op::Place { ioc: true, .. } => OpKind::Ioc,
            Op::Cancel { .. } => OpKind::Cancel,
            Op::Move { .. } => OpKind::Move,
        }
    }
}

/// Parameters of the mix.
#[derive(Clone, Debug)]
pub struct MixConfig {
    pub seed: u64,
    pub users: u32,
    /// The book is held near this many resting orders.
    pub target_orders: usize,
    /// Where the mid price starts, in ticks.
    pub start_mid: i64,
    /// Passive orders go up to this many ticks behind the mid (see `depth`).
    pub band_ticks: i64,
    /// Percent of passive orders that quote 1..=4 ticks from the mid instead.
    pub pct_at_touch: u64,
    /// A move steps towards the mid by `1 + distance / move_pull_div` ticks.
    pub move_pull_div: u64,
    /// The mid moves one tick on average once in this many ops.
    pub mid_step_every: u64,
    /// A taker's limit lies 0..=this many ticks beyond the opposite best.
    pub taker_reach_ticks: i64,
    /// While the book holds at least `target_orders`, an IOC asks for this many times a usual
    /// order size (below it, for 1..=3 lots).
    pub crowded_ioc_factor: i64,
    /// Percent of ops of each type: GTC, IOC, cancel (moves are the rest).
    pub pct_gtc: u64,
    pub pct_ioc: u64,
    pub pct_cancel: u64,
}

impl Default for MixConfig {
    fn default() -> Self {
        MixConfig {
            seed: 0x00B0_0B5E_5EED,
            users: 1_000,
            target_orders: 1_000,
            start_mid: 100_000,
            band_ticks: 10_000,
            pct_at_touch: 30,
            move_pull_div: 100,
            mid_step_every: 200,
            taker_reach_ticks: 4,
            crowded_ioc_factor: 4,
            pct_gtc: 9,
            pct_ioc: 3,
            pct_cancel: 6,
        }
    }
}

/// A resting order as the model expects it at the end of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestingOrder {
    pub id: u32,
    pub user: u32,
    pub side: Side,
    pub price: i64,
    pub remaining: i64,
}

/// What the measured part of the stream looks like.
#[derive(Clone, Debug, Default)]
pub struct MixStats {
    /// Ops by [`OpKind::index`].
    pub counts: [u64; 4],
    /// Ops of each kind that traded.
    pub trading: [u64; 4],
    /// Fills (maker-taker pairs).
    pub fills: u64,
    pub filled_qty: u64,
    /// Resting orders and price levels, averaged over every op.
    pub mean_orders: f64,
    pub mean_levels: f64,
    pub min_orders: usize,
    pub max_orders: usize,
    pub min_levels: usize,
    pub max_levels: usize,
    pub min_mid: i64,
    pub max_mid: i64,
    /// Best ask minus best bid in ticks, averaged over the ops where both sides have orders.
    pub mean_spread: f64,
}

/// A generated stream: `ops[..warmup]` builds the book and warms up, `ops[warmup..]` is timed.
#[derive(Clone, Debug)]
pub struct Mix {
    pub config: MixConfig,
    pub ops: Vec<Op>,
    pub warmup: usize,
    /// The largest order id used.
    pub max_id: u32,
    /// The model's resting orders after the whole stream, by id.
    pub resting: Vec<RestingOrder>,
    /// Over the measured part only.
    pub stats: MixStats,
}

impl Mix {
    /// Builds the book with `target_orders` passive GTC orders, then `warmup_ops` ops of the mix
    /// (both untimed), then `measured_ops` ops of the mix.
    pub fn generate(config: &MixConfig, warmup_ops: usize, measured_ops: usize) -> Mix {
        let mut g = Generator::new(config.clone());
        let mut ops = Vec::with_capacity(config.target_orders + warmup_ops + measured_ops);
        for _ in 0..config.target_orders {
            let op = g.passive_gtc();
            ops.push(op);
        }
        for _ in 0..warmup_ops {
            let op = g.next_op();
            ops.push(op);
        }
        let warmup = ops.len();
        g.start_stats();
        let (fills0, qty0) = (g.model.fills, g.model.filled_qty);
        for _ in 0..measured_ops {
            let op = g.next_op();
            ops.push(op);
            g.sample();
        }
        let mut stats = g.stats.clone();
        stats.fills = g.model.fills - fills0;
        stats.filled_qty = g.model.filled_qty - qty0;
        let n = measured_ops.max(1) as f64;
        stats.mean_orders = g.sum_orders as f64 / n;
        stats.mean_levels = g.sum_levels as f64 / n;
        stats.mean_spread = g.sum_spread as f64 / g.n_spread.max(1) as f64;
        let mut resting: Vec<RestingOrder> = g
            .model
            .live
            .iter()
            .map(|&id| {
                let o = g.model.orders[id as usize];
                RestingOrder {
                    id,
                    user: o.user,
                    side: o.side,
                    price: o.price,
                    remaining: o.remaining,
                }
            })
            .collect();
        resting.sort_by_key(|o| o.id);
        Mix {
            config: config.clone(),
            ops,
            warmup,
            max_id: g.next_id - 1,
            resting,
            stats,
        }
    }

    pub fn warmup_ops(&self) -> &[Op] {
        &self.ops[..self.warmup]
    }

    pub fn measured_ops(&self) -> &[Op] {
        &self.ops[self.warmup..]
    }
}

// ----- the reference model -------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct ModelOrder {
    user: u32,
    side: Side,
    price: i64,
    remaining: i64,
}

/// A price-time FIFO book.
#[derive(Default)]
struct Model {
    bids: BTreeMap<i64, VecDeque<u32>>,
    asks: BTreeMap<i64, VecDeque<u32>>,
    /// By id; index 0 unused.
    orders: Vec<ModelOrder>,
    /// Ids of resting orders, in no particular order (for uniform picks).
    live: Vec<u32>,
    /// By id: the index in `live`, or `u32::MAX`.
    live_pos: Vec<u32>,
    fills: u64,
    filled_qty: u64,
}

/// What a taker would meet: quantity within its limit, and the owners of the makers it would hit.
struct Probe {
    available: i64,
    maker_users: Vec<u32>,
}

fn crosses(taker: Side, limit: i64, maker_price: i64) -> bool {
    match taker {
        Side::Buy => maker_price <= limit,
        Side::Sell => maker_price >= limit,
    }
}

impl Model {
    fn levels_mut(&mut self, side: Side) -> &mut BTreeMap<i64, VecDeque<u32>> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn best(&self, side: Side) -> Option<i64> {
        match side {
            Side::Buy => self.bids.last_key_value().map(|(p, _)| *p),
            Side::Sell => self.asks.first_key_value().map(|(p, _)| *p),
        }
    }

    fn n_levels(&self) -> usize {
        self.bids.len() + self.asks.len()
    }

    /// The opposite side's orders a `side` taker with `limit` would reach, in matching order,
    /// until `want` lots are covered.
    fn probe(&self, side: Side, limit: i64, want: i64) -> Probe {
        let mut probe = Probe {
            available: 0,
            maker_users: Vec::new(),
        };
        let mut visit = |queue: &VecDeque<u32>| -> bool {
            for &id in queue {
                let o = &self.orders[id as usize];
                probe.maker_users.push(o.user);
                probe.available += o.remaining;
                if probe.available >= want {
                    return true;
                }
            }
            false
        };
        match side {
            Side::Buy => {
                for (_, queue) in self.asks.range(..=limit) {
                    if visit(queue) {
                        break;
                    }
                }
            }
            Side::Sell => {
                for (_, queue) in self.bids.range(limit..).rev() {
                    if visit(queue) {
                        break;
                    }
                }
            }
        }
        probe
    }

    fn add_order(&mut self, o: ModelOrder) -> u32 {
        if self.orders.is_empty() {
            self.orders.push(ModelOrder {
                user: 0,
                side: Side::Buy,
                price: 0,
                remaining: 0,
            });
            self.live_pos.push(u32::MAX);
        }
        self.orders.push(o);
        self.live_pos.push(u32::MAX);
        (self.orders.len() - 1) as u32
    }

    /// Appends `id` at the back of its price level.
    fn rest(&mut self, id: u32) {
        let o = self.orders[id as usize];
        self.levels_mut(o.side)
            .entry(o.price)
            .or_default()
            .push_back(id);
        self.live_pos[id as usize] = self.live.len() as u32;
        self.live.push(id);
    }

    /// Takes `id` out of its level and out of `live`.
    fn unlink(&mut self, id: u32) {
        let o = self.orders[id as usize];
        let levels = self.levels_mut(o.side);
        let queue = levels.get_mut(&o.price).expect("resting order has a level");
        let idx = queue
            .iter()
            .position(|&x| x == id)
            .expect("order in its level");
        queue.remove(idx);
        if queue.is_empty() {
            levels.remove(&o.price);
        }
        self.drop_live(id);
    }

    fn drop_live(&mut self, id: u32) {
        let pos = self.live_pos[id as usize] as usize;
        debug_assert_ne!(pos, u32::MAX as usize);
        self.live.swap_remove(pos);
        if pos < self.live.len() {
            self.live_pos[self.live[pos] as usize] = pos as u32;
        }
        self.live_pos[id as usize] = u32::MAX;
    }

    /// Matches `id` (not resting) against the opposite side within its price, then rests what is
    /// left if `may_rest`. Returns whether it traded.
    fn take(&mut self, id: u32, may_rest: bool) -> bool {
        let ModelOrder {
            side, price: limit, ..
        } = self.orders[id as usize];
        let mut remaining = self.orders[id as usize].remaining;
        let mut traded = false;
        while remaining > 0 {
            let Some(best) = self.best(side.opposite()) else {
                break;
            };
            if !crosses(side, limit, best) {
                break;
            }
            let queue = self
                .levels_mut(side.opposite())
                .get_mut(&best)
                .expect("best level");
            let maker = *queue.front().expect("levels are never empty");
            let maker_rem = &mut self.orders[maker as usize].remaining;
            let lots = remaining.min(*maker_rem);
            *maker_rem -= lots;
            remaining -= lots;
            self.fills += 1;
            self.filled_qty += lots as u64;
            traded = true;
            if self.orders[maker as usize].remaining == 0 {
                let levels = self.levels_mut(side.opposite());
                let queue = levels.get_mut(&best).expect("best level");
                queue.pop_front();
                if queue.is_empty() {
                    levels.remove(&best);
                }
                self.drop_live(maker);
            }
        }
        self.orders[id as usize].remaining = remaining;
        if remaining > 0 && may_rest {
            self.rest(id);
        }
        traded
    }
}

// ----- the generator --------------------------------------------------------------------------

struct Generator {
    cfg: MixConfig,
    rng: SplitMix64,
    model: Model,
    mid: i64,
    next_id: u32,
    stats: MixStats,
    sum_orders: u64,
    sum_levels: u64,
    sum_spread: i64,
    n_spread: u64,
    measuring: bool,
}

impl Generator {
    fn new(cfg: MixConfig) -> Self {
        let rng = SplitMix64::new(cfg.seed);
        let mid = cfg.start_mid;
        Generator {
            cfg,
            rng,
            model: Model::default(),
            mid,
            next_id: 1,
            stats: MixStats::default(),
            sum_orders: 0,
            sum_levels: 0,
            sum_spread: 0,
            n_spread: 0,
            measuring: false,
        }
    }

    fn start_stats(&mut self) {
        self.measuring = true;
        self.stats = MixStats {
            min_orders: usize::MAX,
            min_levels: usize::MAX,
            min_mid: self.mid,
            max_mid: self.mid,
            ..MixStats::default()
        };
    }

    fn sample(&mut self) {
        let (orders, levels) = (self.model.live.len(), self.model.n_levels());
        self.sum_orders += orders as u64;
        self.sum_levels += levels as u64;
        let s = &mut self.stats;
        s.min_orders = s.min_orders.min(orders);
        s.max_orders = s.max_orders.max(orders);
        s.min_levels = s.min_levels.min(levels);
        s.max_levels = s.max_levels.max(levels);
        s.min_mid = s.min_mid.min(self.mid);
        s.max_mid = s.max_mid.max(self.mid);
        if let (Some(bid), Some(ask)) = (self.model.best(Side::Buy), self.model.best(Side::Sell)) {
            self.sum_spread += ask - bid;
            self.n_spread += 1;
        }
    }

    fn user(&mut self) -> u32 {
        self.rng.below(u64::from(self.cfg.users)) as u32
    }

    /// A user who owns none of `makers`.
    fn user_avoiding(&mut self, makers: &[u32]) -> u32 {
        loop {
            let user = self.user();
            if !makers.contains(&user) {
                return user;
            }
        }
    }

    fn side(&mut self) -> Side {
        if self.rng.coin() {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    /// `1 + U(0..6) * U(0..6) * U(0..6)`: mostly a few lots, now and then up to 126 (as
    /// exchange-core's generator draws sizes).
    fn qty(&mut self) -> i64 {
        1 + (self.rng.below(6) * self.rng.below(6) * self.rng.below(6)) as i64
    }

    /// A price that does not cross: at most one tick inside the opposite best.
    fn non_crossing(&self, side: Side, price: i64) -> i64 {
        match (side, self.model.best(side.opposite())) {
            (Side::Buy, Some(ask)) => price.min(ask - 1),
            (Side::Sell, Some(bid)) => price.max(bid + 1),
            (_, None) => price,
        }
        .max(1)
    }

    fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Places a new order in the model and returns its op.
    fn place(&mut self, user: u32, side: Side, price: i64, qty: i64, ioc: bool) -> Op {
        let id = self.new_id();
        let model_id = self.model.add_order(ModelOrder {
            user,
            side,
            price,
            remaining: qty,
        });
        debug_assert_eq!(id, model_id);
        let traded = self.model.take(id, !ioc);
        let op = Op::Place {
            user,
            id,
            side,
            price_ticks: price,
            qty,
            ioc,
        };
        self.count(op.kind(), traded);
        op
    }

    fn count(&mut self, kind: OpKind, traded: bool) {
        if self.measuring {
            self.stats.counts[kind.index()] += 1;
            self.stats.trading[kind.index()] += u64::from(traded);
        }
    }

    /// How far behind the mid a passive order goes: `|2 * mean of 4 U(0..dev) - dev|` with
    /// `dev = 1 + U(0,1)^2 * band_ticks` (exchange-core's generator draws its GTC prices this
    /// way): most orders land near the top of the book, a few far behind it.
    fn depth(&mut self) -> i64 {
        let u = self.rng.below(1 << 32);
        let dev = 1 + ((u128::from(u * u) * self.cfg.band_ticks as u128) >> 64) as u64;
        let sum: u64 = (0..4).map(|_| self.rng.below(dev)).sum();
        (sum as i64 / 4 * 2 - dev as i64).abs()
    }

    fn passive_gtc(&mut self) -> Op {
        let side = self.side();
        // Some orders quote at the touch (1..=4 ticks from the mid), the others anywhere behind.
        let depth = if self.rng.below(100) < self.cfg.pct_at_touch {
            self.rng.range(1, 4)
        } else {
            self.depth()
        };
        let price = match side {
            Side::Buy => self.mid - depth,
            Side::Sell => self.mid + depth,
        };
        let price = self.non_crossing(side, price);
        let (user, qty) = (self.user(), self.qty());
        self.place(user, side, price, qty, false)
    }

    /// An IOC that crosses and fills in full within its limit; `None` if the other side is
    /// empty.
    fn taker(&mut self) -> Option<Op> {
        let side = self.side();
        let best = self.model.best(side.opposite())?;
        let reach = self.rng.range(0, self.cfg.taker_reach_ticks);
        let limit = match side {
            Side::Buy => best + reach,
            Side::Sell => (best - reach).max(1),
        };
        // The book is held near its target size by the IOCs' appetite.
        let want = if self.crowded() {
            self.qty() * self.cfg.crowded_ioc_factor
        } else {
            self.rng.range(1, 3)
        };
        let probe = self.model.probe(side, limit, want);
        let qty = want.min(probe.available);
        let user = self.user_avoiding(&probe.maker_users);
        Some(self.place(user, side, limit, qty, true))
    }

    fn next_op(&mut self) -> Op {
        if self.rng.below(self.cfg.mid_step_every) == 0 {
            let step = if self.rng.coin() { 1 } else { -1 };
            let lo = self.cfg.start_mid / 2;
            let hi = self.cfg.start_mid * 3 / 2;
            self.mid = (self.mid + step).clamp(lo, hi);
        }
        let roll = self.rng.below(100);
        let (gtc, ioc, cancel) = (self.cfg.pct_gtc, self.cfg.pct_ioc, self.cfg.pct_cancel);
        let empty = self.model.live.is_empty();
        if roll < gtc || (empty && roll >= gtc + ioc) {
            self.passive_gtc()
        } else if roll < gtc + ioc {
            match self.taker() {
                Some(op) => op,
                None => {
                    // Nothing to take: an IOC at the mid that expires at once.
                    let (user, side, qty) = (self.user(), self.side(), self.qty());
                    self.place(user, side, self.mid, qty, true)
                }
            }
        } else if roll < gtc + ioc + cancel {
            let id = self.random_live();
            let user = self.model.orders[id as usize].user;
            self.model.unlink(id);
            self.count(OpKind::Cancel, false);
            Op::Cancel { user, id }
        } else {
            self.move_op()
        }
    }

    fn crowded(&self) -> bool {
        self.model.live.len() >= self.cfg.target_orders
    }

    fn random_live(&mut self) -> u32 {
        let idx = self.rng.below(self.model.live.len() as u64) as usize;
        self.model.live[idx]
    }

    fn move_op(&mut self) -> Op {
        let id = self.random_live();
        let o = self.model.orders[id as usize];
        // Towards the mid by `1 + distance / move_pull_div` ticks; a tick either way if the order
        // sits at the mid.
        let toward = self.mid - o.price;
        let step = if toward == 0 {
            if self.rng.coin() { 1 } else { -1 }
        } else {
            toward.signum() * (1 + toward.unsigned_abs() / self.cfg.move_pull_div) as i64
        };
        let mut price = (o.price + step).max(1);
        if self
            .model
            .best(o.side.opposite())
            .is_some_and(|best| crosses(o.side, price, best))
        {
            // A crossing move must fill in full and must not meet its owner's orders; and it
            // shrinks the book, so it is allowed only while the book is above its target.
            let probe = self.model.probe(o.side, price, o.remaining);
            if !self.crowded()
                || probe.available < o.remaining
                || probe.maker_users.contains(&o.user)
            {
                price = self.non_crossing(o.side, price);
            }
        }
        if price == o.price {
            // Pinned against the other side: step back instead (never crosses).
            let back = 1 + self.rng.below(4) as i64;
            price = match o.side {
                Side::Buy => (o.price - back).max(1),
                Side::Sell => o.price + back,
            };
            if price == o.price {
                price = o.price + 1;
            }
        }
        self.model.unlink(id);
        self.model.orders[id as usize].price = price;
        let traded = self.model.take(id, true);
        self.count(OpKind::Move, traded);
        Op::Move {
            user: o.user,
            id,
            new_price: price,
            remaining: o.remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped_like_exchange_core() {
        let cfg = MixConfig::default();
        let a = Mix::generate(&cfg, 20_000, 100_000);
        let b = Mix::generate(&cfg, 20_000, 100_000);
        assert_eq!(a.ops, b.ops);
        let s = &a.stats;
        let total: u64 = s.counts.iter().sum();
        assert_eq!(total, 100_000);
        let pct = |k: OpKind| s.counts[k.index()] as f64 * 100.0 / total as f64;
        assert!((pct(OpKind::Gtc) - 9.0).abs() < 0.5, "{s:?}");
        assert!((pct(OpKind::Ioc) - 3.0).abs() < 0.3, "{s:?}");
        assert!((pct(OpKind::Cancel) - 6.0).abs() < 0.3, "{s:?}");
        assert!((s.mean_orders - 1_000.0).abs() < 100.0, "{s:?}");
        assert!((s.mean_levels - 750.0).abs() < 100.0, "{s:?}");
        assert!(s.fills > 0);
    }

    #[test]
    fn crossing_orders_fill_in_full() {
        // Replays the stream in a fresh model: no IOC leaves a remainder, no order is unknown.
        let mix = Mix::generate(&MixConfig::default(), 5_000, 50_000);
        let mut model = Model::default();
        for op in &mix.ops {
            match *op {
                Op::Place {
                    user,
                    id,
                    side,
                    price_ticks,
                    qty,
                    ioc,
                } => {
                    let got = model.add_order(ModelOrder {
                        user,
                        side,
                        price: price_ticks,
                        remaining: qty,
                    });
                    assert_eq!(got, id);
                    let probe = model.probe(side, price_ticks, qty);
                    assert!(!probe.maker_users.contains(&user), "self-trade in {op:?}");
                    let crossing = probe.available > 0;
                    model.take(id, !ioc);
                    if crossing {
                        assert_eq!(
                            model.orders[id as usize].remaining, 0,
                            "remainder in {op:?}"
                        );
                    }
                }
                Op::Cancel { id, .. } => model.unlink(id),
                Op::Move {
                    id,
                    new_price,
                    remaining,
                    ..
                } => {
                    assert_eq!(model.orders[id as usize].remaining, remaining);
                    model.unlink(id);
                    model.orders[id as usize].price = new_price;
                    model.take(id, true);
                }
            }
        }
        assert_eq!(model.live.len(), mix.resting.len());
    }
}
