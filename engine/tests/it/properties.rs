//! Property tests: random command streams over three products, with the engine's invariants
//! checked after every command.
//!
//! A [`Harness`] drives the engine from abstract operations ([`Op`]), resolving them against the
//! current state (which orders are open, which request ids were used) so that cancels, amends and
//! duplicate requests hit real targets most of the time. Besides the engine's own queries it keeps
//! a model built only from the events (open orders with their time priority, balances, deposits
//! minus withdrawals), and checks after every command that:
//!
//! * per asset, the sum of all balances (fee account included) equals deposits minus withdrawals
//!   (from non-duplicate events) and the asset's `total_supply`; per account and asset the balance
//!   total equals what the events say it should be;
//! * no balance is negative; every account's `held` equals what its open orders hold; a resting
//!   buy holds at least `buy_hold(price, remaining)`, a resting sell exactly its base quantity;
//! * no book is crossed, levels are strictly ordered and each level's quantity and count equal its
//!   orders'; the books equal the model's open orders in the model's price-time order;
//! * every fill is against the best opposite order, within the taker's limit, between different
//!   accounts, with the notional and a schedule fee; every order ends rested, cancelled or filled;
//! * a rejected command emits nothing and leaves `state_hash` unchanged, and its reason is one the
//!   command's defects allow (exactly the expected one where it is fully determined);
//! * event sequence numbers are consecutive from 1 and carry the command's seq and timestamp;
//! * a placement whose client order id is in the order-key window (placed within
//!   `ORDER_KEY_WINDOW_MS` of engine time, among the newest `order_keys_max`) is answered with one
//!   `OrderDuplicate` naming the first order if its body is the same, and refused
//!   (`DuplicateClientOrderId`) if not; the model keeps its own window and compares it with the
//!   engine's image.

use std::collections::{BTreeMap, VecDeque};

use bourse_engine::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::support::{DAY_MS, T0, create_account, funds};

pub(crate) const USD: AssetId = AssetId::new(0);
pub(crate) const AAPL: AssetId = AssetId::new(1);
pub(crate) const MSFT: AssetId = AssetId::new(2);
const N_ASSETS: usize = 3;
const N_PRODUCTS: usize = 3;
/// The centre of each product's price band, in ticks: prices cluster here so orders cross often.
// Bands straddle the book's 64-tick page boundaries (128 and 64).
const CENTRE: [i64; N_PRODUCTS] = [128, 64, 8];
const AMOUNTS: [i64; 6] = [1, 50, 500, 2_000, 10_000, 50_000];
/// Traders created by the setup (ids 1..=7; the last is pending).
const SETUP_TRADERS: u32 = 7;

// ----- operations ---------------------------------------------------------------------------

/// An account, resolved against the accounts that exist when the operation runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Who {
    /// One of the six verified traders of the setup (unless their status changed since).
    Core(u8),
    /// One of the existing non-fee accounts.
    Trader(u8),
    /// The fee account (id 0).
    Fee,
    /// An account that does not exist.
    Unknown(u8),
}

/// Who acts on an existing order.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Actor {
    Owner,
    Other(Who),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum OrderRef {
    /// The i-th open order (by id).
    Open(u16),
    /// The i-th order ever accepted (maybe closed since).
    Any(u16),
    /// An id that never existed.
    Bogus(u8),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum PriceSel {
    Band(i8),
    Far(u8),
    Zero,
    Negative(i64),
    TooBig,
    Max,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum QtySel {
    Small(i64),
    Mid(i64),
    /// Relative to the order's open quantity (amendments).
    Rel(i8),
    Zero,
    Negative(i64),
    TooBig,
    Max,
    Extreme(bool),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum AmendPrice {
    Keep,
    Same,
    Band(i8),
    Bad(PriceSel),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum AmountSel {
    Fixed(u8),
    /// Available balance plus a delta (withdrawals beyond the balance when positive).
    AvailablePlus(i8),
    /// Fills the asset's supply up to `AMOUNT_MAX`.
    FillSupply,
    Zero,
    Negative,
    TooBig,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Place {
        who: Who,
        product: u8,
        side: Side,
        order_type: OrderType,
        with_price: bool,
        tif: TimeInForce,
        price: PriceSel,
        qty: QtySel,
        stp: SelfTradePrevention,
        cid: Option<u8>,
    },
    Cancel {
        actor: Actor,
        order: OrderRef,
    },
    Amend {
        actor: Actor,
        order: OrderRef,
        qty: QtySel,
        price: AmendPrice,
    },
    Funds {
        deposit: bool,
        who: Who,
        asset: u8,
        amount: AmountSel,
        request: u8,
    },
    /// Repeats an earlier funds request (as the other kind when `flip`).
    RepeatFunds {
        index: u16,
        flip: bool,
    },
    /// Places again one of the recent keyed placements; with `change`, one lot more.
    RepeatPlace {
        index: u16,
        change: bool,
    },
    CreateAccount {
        status: ProfileStatus,
        bad_name: bool,
    },
    /// Sets a profile status; with `revert_after`, sets it back to verified that many
    /// operations later.
    SetProfileStatus {
        who: Who,
        status: ProfileStatus,
        revert_after: Option<u8>,
    },
    /// Halts or resumes a product; with `revert_after`, resumes it that many operations later.
    SetProductStatus {
        product: u8,
        halted: bool,
        revert_after: Option<u8>,
    },
    Bookmark {
        who: Who,
        product: u8,
        add: bool,
    },
    AdvanceClock {
        ms: i64,
    },
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        30 => any::<u8>().prop_map(Who::Core),
        10 => any::<u8>().prop_map(Who::Trader),
        1 => Just(Who::Fee),
        1 => (0u8..4).prop_map(Who::Unknown),
    ]
}

/// A profile status change. The six core traders are set back to verified a little later, so
/// that trading goes on.
fn status_change() -> impl Strategy<Value = Op> {
    let target = prop_oneof![
        6 => any::<u8>().prop_map(Who::Trader),
        1 => Just(Who::Fee),
        1 => (0u8..4).prop_map(Who::Unknown),
    ];
    prop_oneof![
        (target, profile_status(1)).prop_map(|(who, status)| Op::SetProfileStatus {
            who,
            status,
            revert_after: None
        }),
        (any::<u8>(), profile_status(1), 3u8..40).prop_map(|(i, status, n)| Op::SetProfileStatus {
            who: Who::Core(i),
            status,
            revert_after: Some(n)
        }),
    ]
}

/// A product status change: a halt for a while, or a change that may be a no-op.
fn product_status_change() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..N_PRODUCTS as u8, 3u8..40).prop_map(|(product, n)| Op::SetProductStatus {
            product,
            halted: true,
            revert_after: Some(n)
        }),
        (0u8..=N_PRODUCTS as u8, prop::bool::weighted(0.05)).prop_map(|(product, halted)| {
            Op::SetProductStatus {
                product,
                halted,
                revert_after: None,
            }
        }),
    ]
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![9 => Just(Actor::Owner), 1 => who().prop_map(Actor::Other)]
}

fn order_ref() -> impl Strategy<Value = OrderRef> {
    prop_oneof![
        12 => any::<u16>().prop_map(OrderRef::Open),
        2 => any::<u16>().prop_map(OrderRef::Any),
        1 => any::<u8>().prop_map(OrderRef::Bogus),
    ]
}

fn bad_price() -> impl Strategy<Value = PriceSel> {
    prop_oneof![
        Just(PriceSel::Zero),
        (1i64..=i64::MAX).prop_map(PriceSel::Negative),
        Just(PriceSel::TooBig),
        Just(PriceSel::Max),
    ]
}

fn price_sel() -> impl Strategy<Value = PriceSel> {
    prop_oneof![
        60 => (-6i8..=6).prop_map(PriceSel::Band),
        2 => any::<u8>().prop_map(PriceSel::Far),
        3 => bad_price(),
    ]
}

fn qty_sel() -> impl Strategy<Value = QtySel> {
    prop_oneof![
        60 => (1i64..=12).prop_map(QtySel::Small),
        2 => (13i64..=100).prop_map(QtySel::Mid),
        1 => Just(QtySel::Zero),
        1 => (1i64..=i64::MAX).prop_map(QtySel::Negative),
        1 => Just(QtySel::TooBig),
        1 => Just(QtySel::Max),
        1 => any::<bool>().prop_map(QtySel::Extreme),
    ]
}

fn amend_qty() -> impl Strategy<Value = QtySel> {
    prop_oneof![4 => (-4i8..=4).prop_map(QtySel::Rel), 2 => qty_sel()]
}

fn amend_price() -> impl Strategy<Value = AmendPrice> {
    prop_oneof![
        8 => Just(AmendPrice::Keep),
        2 => Just(AmendPrice::Same),
        8 => (-6i8..=6).prop_map(AmendPrice::Band),
        1 => bad_price().prop_map(AmendPrice::Bad),
    ]
}

fn amount_sel() -> impl Strategy<Value = AmountSel> {
    prop_oneof![
        30 => (0u8..AMOUNTS.len() as u8).prop_map(AmountSel::Fixed),
        8 => (-3i8..=3).prop_map(AmountSel::AvailablePlus),
        1 => Just(AmountSel::FillSupply),
        1 => Just(AmountSel::Zero),
        1 => Just(AmountSel::Negative),
        1 => Just(AmountSel::TooBig),
    ]
}

/// (type, whether a price is given, time in force): mostly well formed, sometimes not.
fn order_shape() -> impl Strategy<Value = (OrderType, bool, TimeInForce)> {
    prop_oneof![
        30 => Just((OrderType::Limit, true, TimeInForce::Gtc)),
        8 => Just((OrderType::Limit, true, TimeInForce::Ioc)),
        8 => Just((OrderType::Limit, true, TimeInForce::Fok)),
        8 => Just((OrderType::Limit, true, TimeInForce::PostOnly)),
        10 => Just((OrderType::Market, false, TimeInForce::Ioc)),
        1 => Just((OrderType::Market, true, TimeInForce::Ioc)),
        1 => Just((OrderType::Limit, false, TimeInForce::Gtc)),
        1 => Just((OrderType::Market, false, TimeInForce::Gtc)),
        1 => Just((OrderType::Market, false, TimeInForce::Fok)),
        1 => Just((OrderType::Market, false, TimeInForce::PostOnly)),
    ]
}

fn stp() -> impl Strategy<Value = SelfTradePrevention> {
    prop_oneof![
        Just(SelfTradePrevention::CancelResting),
        Just(SelfTradePrevention::CancelIncoming),
        Just(SelfTradePrevention::CancelBoth),
    ]
}

/// A profile status, `Verified` with weight `verified` against 1 each for the others.
fn profile_status(verified: u32) -> impl Strategy<Value = ProfileStatus> {
    prop_oneof![
        verified => Just(ProfileStatus::Verified),
        1 => Just(ProfileStatus::Pending),
        1 => Just(ProfileStatus::Rejected),
    ]
}

fn place() -> impl Strategy<Value = Op> {
    (
        who(),
        prop_oneof![30 => 0u8..N_PRODUCTS as u8, 1 => Just(N_PRODUCTS as u8)],
        side(),
        order_shape(),
        price_sel(),
        qty_sel(),
        stp(),
        prop_oneof![4 => Just(None), 1 => (0u8..6).prop_map(Some)],
    )
        .prop_map(
            |(who, product, side, (order_type, with_price, tif), price, qty, stp, cid)| Op::Place {
                who,
                product,
                side,
                order_type,
                with_price,
                tif,
                price,
                qty,
                stp,
                cid,
            },
        )
}

/// One random operation.
pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        50 => place(),
        // A limit order whose notional cannot fit: price and quantity both at their maxima.
        1 => place().prop_map(|op| match op {
            Op::Place { who, product, side, stp, cid, .. } => Op::Place {
                who,
                product,
                side,
                order_type: OrderType::Limit,
                with_price: true,
                tif: TimeInForce::Gtc,
                price: PriceSel::Max,
                qty: QtySel::Max,
                stp,
                cid,
            },
            other => other,
        }),
        4 => (actor(), order_ref()).prop_map(|(actor, order)| Op::Cancel { actor, order }),
        8 => (actor(), order_ref(), amend_qty(), amend_price())
            .prop_map(|(actor, order, qty, price)| Op::Amend { actor, order, qty, price }),
        14 => (any::<bool>(), who(), prop_oneof![20 => 0u8..N_ASSETS as u8, 1 => Just(N_ASSETS as u8)], amount_sel(), 0u8..48)
            .prop_map(|(deposit, who, asset, amount, request)| Op::Funds { deposit, who, asset, amount, request }),
        4 => (any::<u16>(), prop::bool::weighted(0.2)).prop_map(|(index, flip)| Op::RepeatFunds { index, flip }),
        4 => (any::<u16>(), prop::bool::weighted(0.3)).prop_map(|(index, change)| Op::RepeatPlace { index, change }),
        2 => (profile_status(4), prop::bool::weighted(0.1))
            .prop_map(|(status, bad_name)| Op::CreateAccount { status, bad_name }),
        2 => status_change(),
        2 => product_status_change(),
        2 => (who(), 0u8..=N_PRODUCTS as u8, any::<bool>()).prop_map(|(who, product, add)| Op::Bookmark { who, product, add }),
        3 => prop_oneof![
            Just(1_000i64),
            Just(3_600_000),
            Just(DAY_MS),
            Just(10 * DAY_MS),
            Just(-3_600_000)
        ]
        .prop_map(|ms| Op::AdvanceClock { ms }),
    ]
}

/// `n` operations drawn from [`op`] with a fixed seed (the same on every run and platform).
pub(crate) fn seeded_ops(seed: u64, n: usize) -> Vec<Op> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = op();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("op strategy")
                .current()
        })
        .collect()
}

// ----- the model ----------------------------------------------------------------------------

/// An open order as the events describe it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Open {
    account: AccountId,
    product: ProductId,
    side: Side,
    price: Price,
    remaining: i64,
    cid: Option<ClientOrderId>,
    /// Time priority: assigned when the order (re)enters a level.
    prio: u64,
}

/// A remembered keyed placement: its body, order, command and engine time.
#[derive(Clone, Copy, Debug)]
struct ModelKey {
    body: NewOrder,
    order: OrderId,
    command_seq: u64,
    at_ms: i64,
}

/// Whether two placements ask for the same (client order id and account aside).
fn same_body(a: &NewOrder, b: &NewOrder) -> bool {
    (a.product, a.side, a.order_type, a.price, a.qty)
        == (b.product, b.side, b.order_type, b.price, b.qty)
        && (a.time_in_force, a.self_trade) == (b.time_in_force, b.self_trade)
}

/// What an order was accepted as.
#[derive(Clone, Copy, Debug)]
struct Meta {
    account: AccountId,
    tif: TimeInForce,
    stp: SelfTradePrevention,
}

/// The order matching during the current command.
#[derive(Clone, Copy, Debug)]
struct Taker {
    id: OrderId,
    account: AccountId,
    product: ProductId,
    side: Side,
    limit: Option<Price>,
    order_type: OrderType,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    cid: Option<ClientOrderId>,
    remaining: i64,
    filled: i64,
    /// Own resting orders cancelled by self-trade prevention.
    stp_cancels: u32,
    /// Cancel-both cancelled an own resting order: the taker must stop now.
    must_stop: bool,
}

/// What the current command is, for the event checks.
#[derive(Clone, Copy, Debug)]
enum Ctx {
    Place(NewOrder),
    Amend { amend: AmendOrder, old: Open },
    Cancel(OrderId),
    Other,
}

/// Counters over a run: they show what a stream exercised.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) commands: u64,
    pub(crate) rejected: BTreeMap<String, u64>,
    pub(crate) fills: u64,
    pub(crate) rested: u64,
    pub(crate) kept_priority: u64,
    pub(crate) cancelled: BTreeMap<String, u64>,
    pub(crate) duplicate_funds: u64,
    pub(crate) duplicate_orders: u64,
    pub(crate) amends_taking: u64,
    pub(crate) fok_filled: u64,
    pub(crate) market_orders: u64,
    pub(crate) fills_per_product: [u64; N_PRODUCTS],
}

impl Stats {
    pub(crate) fn n_rejected(&self, reason: &str) -> u64 {
        self.rejected.get(reason).copied().unwrap_or(0)
    }
}

/// The expected outcome of a command, as far as its defects and the state determine it.
#[derive(Debug)]
enum Expect {
    Exactly(Result<(), Reject>),
    /// The command has these defects: it must be rejected for one of them.
    OneOf(Vec<Reject>),
    /// A fill-or-kill order: accepted and filled in full, or `FillOrKillUnfillable`.
    FillOrKill,
}

fn reject_name(reject: &Reject) -> String {
    format!("{reject:?}")
}

/// The schedule's rate for a trailing volume: the last tier whose threshold it reaches.
fn rate(schedule: &FeeSchedule, volume: i64, liquidity: Liquidity) -> u32 {
    let tier = schedule
        .tiers()
        .iter()
        .rfind(|t| t.volume_min <= volume)
        .expect("a tier from 0");
    match liquidity {
        Liquidity::Maker => tier.maker_ppm,
        Liquidity::Taker => tier.taker_ppm,
    }
}

/// The fee on a notional: `ceil(notional * ppm / 1e6)`, computed here independently of the
/// engine's `fee_for`.
fn fee_ceil(notional: i64, ppm: u32) -> i64 {
    let fee = (notional as i128 * ppm as i128 + 999_999) / 1_000_000;
    i64::try_from(fee).unwrap()
}

fn valid_price(price: Price) -> bool {
    Price::new_checked(price.ticks()).is_ok()
}

fn valid_qty(qty: Qty) -> bool {
    Qty::new_checked(qty.lots()).is_ok()
}

/// Whether a taker on `side` with `limit` may trade at `maker`.
fn crosses(side: Side, limit: Price, maker: Price) -> bool {
    match side {
        Side::Buy => maker <= limit,
        Side::Sell => maker >= limit,
    }
}

/// Sort key of price-time priority on `side` (smaller is better).
fn priority(side: Side, o: &Open) -> (i64, u64) {
    match side {
        Side::Buy => (-o.price.ticks(), o.prio),
        Side::Sell => (o.price.ticks(), o.prio),
    }
}

/// The engine plus an event-derived model, checked after every command.
pub(crate) struct Harness {
    pub(crate) engine: Engine,
    seq: u64,
    /// The next command's timestamp; the clock may be turned back (`Op::AdvanceClock`).
    now_ms: i64,
    /// The newest timestamp applied: the engine acts at `max(clock_ms, now_ms)`.
    clock_ms: i64,
    /// Every command applied, setup included (for replays).
    pub(crate) log: Vec<Command>,
    /// What every command returned and emitted, in order.
    pub(crate) outcomes: Vec<(Result<(), Reject>, Vec<Event>)>,
    pub(crate) stats: Stats,
    last_event_seq: u64,
    /// Deposits minus withdrawals per asset.
    net: [i128; N_ASSETS],
    /// Every balance total the events imply.
    totals: BTreeMap<(AccountId, AssetId), i128>,
    /// Accepted funds requests: (deposit, asset, amount, command seq).
    funds: BTreeMap<(AccountId, RequestId), (bool, AssetId, i64, u64)>,
    funds_history: Vec<(bool, FundsRequest)>,
    /// The order-key window as the events imply it, and its ids oldest first.
    keys: BTreeMap<(AccountId, ClientOrderId), ModelKey>,
    key_queue: VecDeque<(AccountId, ClientOrderId)>,
    /// Every placement tried with a client order id (for `Op::RepeatPlace`).
    keyed: Vec<NewOrder>,
    open: BTreeMap<OrderId, Open>,
    meta: BTreeMap<OrderId, Meta>,
    accepted: Vec<OrderId>,
    next_prio: u64,
    /// Operations counted by `step`.
    steps: u64,
    /// Trailing volume per (account, quote asset) before the current command, plus its fills.
    volumes: BTreeMap<(AccountId, AssetId), i64>,
    /// Operations scheduled for a later step (status reverts).
    later: Vec<(u64, Op)>,
}

fn product_spec(
    symbol: &str,
    base: AssetId,
    quote: AssetId,
    price: (u8, i64),
    qty: (u8, i64),
    fees: FeeSchedule,
) -> CommandKind {
    CommandKind::add_product(AddProduct {
        symbol: Symbol::new(symbol).unwrap(),
        name: symbol.into(),
        base,
        quote,
        price_scale: price.0,
        tick_size: price.1,
        qty_scale: qty.0,
        lot_size: qty.1,
        fees,
    })
}

/// Three assets, three products (two sharing USD as quote, AAPL as base of one and quote of
/// another), and seven funded traders (the seventh pending).
fn setup_commands() -> Vec<CommandKind> {
    let asset = |code: &str, scale| CommandKind::AddAsset {
        code: AssetCode::new(code).unwrap(),
        scale,
    };
    let tiered = FeeSchedule::new(&[
        FeeTier {
            volume_min: 0,
            maker_ppm: 1_000,
            taker_ppm: 2_500,
        },
        FeeTier {
            volume_min: 20_000,
            maker_ppm: 0,
            taker_ppm: 1_500,
        },
        FeeTier {
            volume_min: 200_000,
            maker_ppm: 500,
            taker_ppm: 500,
        },
    ])
    .unwrap();
    let mut commands = vec![
        asset("USD", 2),
        asset("AAPL", 0),
        asset("MSFT", 2),
        // AAPL/USD: tick 0.01, lot 1 share: 1 cent per tick-lot.
        product_spec(
            "AAPL",
            AAPL,
            USD,
            (2, 1),
            (0, 1),
            FeeSchedule::flat(1_000, 2_000).unwrap(),
        ),
        // MSFT/USD: tick 0.05, lot 5 shares: 25 cents per tick-lot, 500 minor MSFT per lot.
        product_spec("MSFT", MSFT, USD, (2, 5), (0, 5), tiered),
        // MSFT/AAPL: whole AAPL per MSFT; lot 1 MSFT (100 minor).
        product_spec(
            "MSFT-AAPL",
            MSFT,
            AAPL,
            (0, 1),
            (0, 1),
            FeeSchedule::flat(2_000, 0).unwrap(),
        ),
    ];
    for n in 1..=SETUP_TRADERS {
        let status = if n == SETUP_TRADERS {
            ProfileStatus::Pending
        } else {
            ProfileStatus::Verified
        };
        commands.push(create_account(&format!("trader-{n}"), status));
        let account = AccountId::new(n);
        for (asset, amount) in [(USD, 500_000), (AAPL, 3_000), (MSFT, 300_000)] {
            let request = format!("setup-{}", asset.get());
            commands.push(CommandKind::Deposit(funds(
                account, asset, amount, &request,
            )));
        }
    }
    commands
}

impl Harness {
    pub(crate) fn new() -> Harness {
        Self::with_limits(Limits::default())
    }

    pub(crate) fn with_limits(limits: Limits) -> Harness {
        let mut h = Harness {
            engine: Engine::new(limits),
            seq: 0,
            now_ms: T0,
            clock_ms: i64::MIN,
            log: Vec::new(),
            outcomes: Vec::new(),
            stats: Stats::default(),
            last_event_seq: 0,
            net: [0; N_ASSETS],
            totals: BTreeMap::new(),
            funds: BTreeMap::new(),
            funds_history: Vec::new(),
            keys: BTreeMap::new(),
            key_queue: VecDeque::new(),
            keyed: Vec::new(),
            open: BTreeMap::new(),
            meta: BTreeMap::new(),
            accepted: Vec::new(),
            next_prio: 0,
            steps: 0,
            later: Vec::new(),
            volumes: BTreeMap::new(),
        };
        for kind in setup_commands() {
            let ctx = Ctx::Other;
            let result = h.exec(kind.clone(), ctx);
            assert_eq!(result, Ok(()), "setup {kind:?}");
        }
        assert_eq!(h.engine.n_products(), N_PRODUCTS);
        h.check_state();
        h
    }

    /// Runs one operation: resolves it, predicts the outcome, applies it, checks everything.
    pub(crate) fn step(&mut self, op: &Op) {
        self.steps += 1;
        while let Some(i) = self.later.iter().position(|(due, _)| *due <= self.steps) {
            let (_, later) = self.later.remove(i);
            self.step_now(&later);
        }
        self.step_now(op);
    }

    #[allow(
        clippy::too_many_lines,
        reason = "a dispatch: one arm per operation of the model, each a few lines"
    )]
    fn step_now(&mut self, op: &Op) {
        match *op {
            Op::Place {
                who,
                product,
                side,
                order_type,
                with_price,
                tif,
                price,
                qty,
                stp,
                cid,
            } => {
                let product = ProductId::new(if (product as usize) < N_PRODUCTS {
                    product as u32
                } else {
                    7
                });
                let order = NewOrder {
                    account: self.who(who),
                    product,
                    side,
                    order_type,
                    price: with_price.then(|| self.price(product, price)),
                    qty: self.qty(qty, 1),
                    time_in_force: tif,
                    self_trade: stp,
                    client_order_id: cid.map(|c| ClientOrderId::new(&format!("cid-{c}")).unwrap()),
                };
                self.place(order);
            }
            Op::RepeatPlace { index, change } => {
                // One of the 8 newest, so that most repeats fall within the window.
                let n = self.keyed.len();
                if n == 0 {
                    return;
                }
                let mut order = self.keyed[n - 1 - index as usize % n.min(8)];
                if change {
                    order.qty = Qty::from_lots(order.qty.lots().saturating_add(1));
                }
                self.place(order);
            }
            Op::Cancel { actor, order } => {
                let order = self.order_ref(order);
                let account = self.actor(actor, order);
                let expect = match (self.engine.account_status(account), self.open.get(&order)) {
                    (None, _) => Expect::OneOf(vec![Reject::UnknownAccount]),
                    (Some(_), Some(o)) if o.account == account => Expect::Exactly(Ok(())),
                    (Some(_), _) => Expect::OneOf(vec![Reject::UnknownOrder]),
                };
                self.run(
                    CommandKind::CancelOrder { account, order },
                    Ctx::Cancel(order),
                    expect,
                );
            }
            Op::Amend {
                actor,
                order,
                qty,
                price,
            } => {
                let order = self.order_ref(order);
                let account = self.actor(actor, order);
                let old = self.open.get(&order).copied();
                let remaining = old.map_or(1, |o| o.remaining);
                let price = match price {
                    AmendPrice::Keep => None,
                    AmendPrice::Same => Some(old.map_or(Price::from_ticks(CENTRE[0]), |o| o.price)),
                    AmendPrice::Band(offset) => Some(self.price(
                        old.map_or(ProductId::new(0), |o| o.product),
                        PriceSel::Band(offset),
                    )),
                    AmendPrice::Bad(sel) => Some(self.price(ProductId::new(0), sel)),
                };
                let amend = AmendOrder {
                    account,
                    order,
                    qty: self.qty(qty, remaining),
                    price,
                };
                let expect = self.expect_amend(&amend, old);
                let ctx = match old {
                    Some(old) => Ctx::Amend { amend, old },
                    None => Ctx::Other,
                };
                self.run(CommandKind::AmendOrder(amend), ctx, expect);
            }
            Op::Funds {
                deposit,
                who,
                asset,
                amount,
                request,
            } => {
                let account = self.who(who);
                let asset = AssetId::new(if (asset as usize) < N_ASSETS {
                    asset as u16
                } else {
                    9
                });
                let amount = self.amount(account, asset, amount);
                let request = funds(account, asset, amount, &format!("r{request}"));
                self.funds_request(deposit, request);
            }
            Op::RepeatFunds { index, flip } => {
                if self.funds_history.is_empty() {
                    return;
                }
                let (deposit, request) =
                    self.funds_history[index as usize % self.funds_history.len()];
                self.funds_request(deposit != flip, request);
            }
            Op::CreateAccount { status, bad_name } => {
                let name = if bad_name {
                    " ".to_string()
                } else {
                    format!("acct-{}", self.seq)
                };
                let mut defects = Vec::new();
                if bad_name {
                    defects.push(Reject::InvalidName);
                }
                if self.engine.n_accounts() >= self.engine.limits().accounts_max as usize {
                    defects.push(Reject::LimitReached(LimitKind::Accounts));
                }
                let expect = if defects.is_empty() {
                    Expect::Exactly(Ok(()))
                } else {
                    Expect::OneOf(defects)
                };
                self.run(create_account(&name, status), Ctx::Other, expect);
            }
            Op::SetProfileStatus {
                who,
                status,
                revert_after,
            } => {
                if let Some(n) = revert_after {
                    let revert = Op::SetProfileStatus {
                        who,
                        status: ProfileStatus::Verified,
                        revert_after: None,
                    };
                    self.later.push((self.steps + n as u64, revert));
                }
                let account = self.who(who);
                let expect = match self.engine.account_status(account) {
                    None => Expect::OneOf(vec![Reject::UnknownAccount]),
                    Some(s) if s == status || account == AccountId::FEES => {
                        Expect::OneOf(vec![Reject::StatusUnchanged])
                    }
                    Some(_) => Expect::Exactly(Ok(())),
                };
                self.run(
                    CommandKind::SetProfileStatus { account, status },
                    Ctx::Other,
                    expect,
                );
            }
            Op::SetProductStatus {
                product,
                halted,
                revert_after,
            } => {
                if let Some(n) = revert_after {
                    let revert = Op::SetProductStatus {
                        product,
                        halted: false,
                        revert_after: None,
                    };
                    self.later.push((self.steps + n as u64, revert));
                }
                let product = ProductId::new(product as u32);
                let status = if halted {
                    ProductStatus::Halted
                } else {
                    ProductStatus::Trading
                };
                let expect = match self.engine.product_info(product) {
                    None => Expect::OneOf(vec![Reject::UnknownProduct]),
                    Some(p) if p.status() == status => Expect::OneOf(vec![Reject::StatusUnchanged]),
                    Some(_) => Expect::Exactly(Ok(())),
                };
                self.run(
                    CommandKind::SetProductStatus { product, status },
                    Ctx::Other,
                    expect,
                );
            }
            Op::Bookmark { who, product, add } => {
                let account = self.who(who);
                let product = ProductId::new(product as u32);
                let mut defects = Vec::new();
                if self.engine.product_info(product).is_none() {
                    defects.push(Reject::UnknownProduct);
                }
                if self.engine.account_status(account).is_none() {
                    defects.push(Reject::UnknownAccount);
                }
                let marked = self.engine.bookmarks(account).contains(&product);
                if add && marked {
                    defects.push(Reject::AlreadyBookmarked);
                }
                let max = self.engine.limits().bookmarks_per_account_max as usize;
                if add && !marked && self.engine.bookmarks(account).len() >= max {
                    defects.push(Reject::LimitReached(LimitKind::Bookmarks));
                }
                if !add && !marked {
                    defects.push(Reject::NotBookmarked);
                }
                let expect = if defects.is_empty() {
                    Expect::Exactly(Ok(()))
                } else {
                    Expect::OneOf(defects)
                };
                let kind = if add {
                    CommandKind::AddBookmark { account, product }
                } else {
                    CommandKind::RemoveBookmark { account, product }
                };
                self.run(kind, Ctx::Other, expect);
            }
            Op::AdvanceClock { ms } => self.now_ms += ms,
        }
    }

    fn place(&mut self, order: NewOrder) {
        if order.client_order_id.is_some() {
            self.keyed.push(order);
        }
        let expect = self.expect_place(&order);
        self.run(CommandKind::PlaceOrder(order), Ctx::Place(order), expect);
    }

    /// The model's key of `o` if it is in the window at the engine's time.
    fn live_key(&self, o: &NewOrder) -> Option<&ModelKey> {
        let cid = o.client_order_id?;
        let now = self.engine_time();
        self.keys
            .get(&(o.account, cid))
            .filter(|k| now - k.at_ms <= ORDER_KEY_WINDOW_MS)
    }

    /// An accepted placement at `now`: the window forgets what is out of it, then as many of
    /// the oldest as make room for one, then remembers the new key.
    fn remember_key(&mut self, o: &NewOrder, order: OrderId, command_seq: u64, now: i64) {
        let max = self.engine.limits().order_keys_max as usize;
        while let Some(id) = self.key_queue.front() {
            let expired = now - self.keys[id].at_ms > ORDER_KEY_WINDOW_MS;
            if !expired && self.key_queue.len() < max {
                break;
            }
            self.keys.remove(id);
            self.key_queue.pop_front();
        }
        if let Some(cid) = o.client_order_id
            && self.key_queue.len() < max
        {
            let key = ModelKey {
                body: *o,
                order,
                command_seq,
                at_ms: now,
            };
            assert!(self.keys.insert((o.account, cid), key).is_none());
            self.key_queue.push_back((o.account, cid));
        }
    }

    /// The engine's window (from its image) equals the model's, in order.
    fn check_keys(&self) {
        let image = self.engine.to_image();
        let engine: Vec<(u32, String, u64, u64, i64)> = image
            .order_keys
            .iter()
            .map(|k| {
                let cid = k.client_order_id.to_short().expect("valid id");
                (k.account, cid.to_string(), k.order, k.command_seq, k.at_ms)
            })
            .collect();
        let model: Vec<(u32, String, u64, u64, i64)> = self
            .key_queue
            .iter()
            .map(|id| {
                let k = &self.keys[id];
                (
                    id.0.get(),
                    id.1.to_string(),
                    k.order.get(),
                    k.command_seq,
                    k.at_ms,
                )
            })
            .collect();
        assert_eq!(engine, model, "the order-key window");
    }

    // ----- resolving operations -----------------------------------------------------------

    fn who(&self, who: Who) -> AccountId {
        let n = self.engine.n_accounts() as u32;
        match who {
            Who::Core(i) => AccountId::new(1 + i as u32 % (SETUP_TRADERS - 1)),
            Who::Trader(i) => AccountId::new(1 + i as u32 % (n - 1)),
            Who::Fee => AccountId::FEES,
            Who::Unknown(3) => AccountId::new(u32::MAX),
            Who::Unknown(k) => AccountId::new(n + k as u32),
        }
    }

    fn order_ref(&self, r: OrderRef) -> OrderId {
        match r {
            OrderRef::Open(i) if !self.open.is_empty() => {
                *self.open.keys().nth(i as usize % self.open.len()).unwrap()
            }
            OrderRef::Any(i) if !self.accepted.is_empty() => {
                self.accepted[i as usize % self.accepted.len()]
            }
            OrderRef::Open(i) | OrderRef::Any(i) => OrderId::new(1_000_000 + i as u64),
            OrderRef::Bogus(k) => match k % 3 {
                0 => OrderId::new(0),
                1 => OrderId::new(self.accepted.last().map_or(1, |id| id.get() + 1) + k as u64),
                _ => OrderId::new(u64::MAX),
            },
        }
    }

    fn actor(&self, actor: Actor, order: OrderId) -> AccountId {
        match actor {
            Actor::Owner => self
                .meta
                .get(&order)
                .map_or(AccountId::new(1), |m| m.account),
            Actor::Other(who) => self.who(who),
        }
    }

    fn price(&self, product: ProductId, sel: PriceSel) -> Price {
        let centre = CENTRE[product.get() as usize % N_PRODUCTS];
        Price::from_ticks(match sel {
            PriceSel::Band(offset) => (centre + offset as i64).max(1),
            PriceSel::Far(k) => centre + 20 + k as i64,
            PriceSel::Zero => 0,
            PriceSel::Negative(v) => -v,
            PriceSel::TooBig => PRICE_TICKS_MAX + 1,
            PriceSel::Max => PRICE_TICKS_MAX,
        })
    }

    fn qty(&self, sel: QtySel, current: i64) -> Qty {
        Qty::from_lots(match sel {
            QtySel::Small(n) | QtySel::Mid(n) => n,
            QtySel::Rel(d) => current + d as i64,
            QtySel::Zero => 0,
            QtySel::Negative(v) => -v,
            QtySel::TooBig => QTY_LOTS_MAX + 1,
            QtySel::Max => QTY_LOTS_MAX,
            QtySel::Extreme(true) => i64::MAX,
            QtySel::Extreme(false) => i64::MIN,
        })
    }

    fn amount(&self, account: AccountId, asset: AssetId, sel: AmountSel) -> i64 {
        match sel {
            AmountSel::Fixed(i) => AMOUNTS[i as usize % AMOUNTS.len()],
            AmountSel::AvailablePlus(d) => self.engine.balance(account, asset).available + d as i64,
            AmountSel::FillSupply => {
                AMOUNT_MAX
                    - self
                        .engine
                        .asset_info(asset)
                        .map_or(0, |a| a.total_supply().minor())
            }
            AmountSel::Zero => 0,
            AmountSel::Negative => -5,
            AmountSel::TooBig => AMOUNT_MAX + 1,
        }
    }

    fn funds_request(&mut self, deposit: bool, r: FundsRequest) {
        self.funds_history.push((deposit, r));
        let expect = self.expect_funds(deposit, &r);
        let kind = if deposit {
            CommandKind::Deposit(r)
        } else {
            CommandKind::Withdraw(r)
        };
        self.run(kind, Ctx::Other, expect);
    }

    /// The best open order on `side` of `product` in the model.
    fn best(&self, product: ProductId, side: Side) -> Option<(OrderId, Open)> {
        self.open
            .iter()
            .filter(|(_, o)| o.product == product && o.side == side)
            .min_by_key(|(_, o)| priority(side, o))
            .map(|(id, o)| (*id, *o))
    }

    // ----- expectations -------------------------------------------------------------------

    /// Defects of the account for trading (`None` if it may trade).
    fn trader_defect(&self, account: AccountId) -> Option<Reject> {
        match self.engine.account_status(account) {
            None => Some(Reject::UnknownAccount),
            Some(_) if account == AccountId::FEES => Some(Reject::FeeAccountCannotTrade),
            Some(ProfileStatus::Pending) => Some(Reject::AccountNotVerified),
            Some(ProfileStatus::Rejected) => Some(Reject::AccountRejected),
            Some(ProfileStatus::Verified) => None,
        }
    }

    /// What a limit order of `side` holds, in which asset; `None` on overflow.
    fn hold(p: &Product, side: Side, price: Price, qty: Qty) -> Option<(AssetId, i64)> {
        p.notional(price, qty).ok()?;
        match side {
            Side::Buy => Some((p.quote(), p.buy_hold(price, qty).ok()?)),
            Side::Sell => Some((p.base(), p.base_amount(qty).ok()?)),
        }
    }

    /// A placement's outcome: a key in the window decides it before anything else.
    fn expect_place(&self, o: &NewOrder) -> Expect {
        match self.live_key(o) {
            Some(key) if same_body(&key.body, o) => Expect::Exactly(Ok(())),
            Some(_) => Expect::Exactly(Err(Reject::DuplicateClientOrderId)),
            None => self.expect_new_order(o),
        }
    }

    fn expect_new_order(&self, o: &NewOrder) -> Expect {
        let mut defects: Vec<Reject> = self.trader_defect(o.account).into_iter().collect();
        let p = self.engine.product_info(o.product);
        match p {
            None => defects.push(Reject::UnknownProduct),
            Some(p) if p.status() == ProductStatus::Halted => defects.push(Reject::ProductHalted),
            Some(_) => {}
        }
        if !valid_qty(o.qty) {
            defects.push(Reject::InvalidQuantity);
        }
        match (o.order_type, o.price) {
            (OrderType::Limit, Some(price)) if !valid_price(price) => {
                defects.push(Reject::InvalidPrice)
            }
            (OrderType::Limit, Some(_)) | (OrderType::Market, None) => {}
            _ => defects.push(Reject::InvalidPriceForOrderType),
        }
        if o.order_type == OrderType::Market && o.time_in_force != TimeInForce::Ioc {
            defects.push(Reject::InvalidTimeInForce);
        }
        if let Some(cid) = o.client_order_id
            && self
                .open
                .values()
                .any(|x| x.account == o.account && x.cid == Some(cid))
        {
            defects.push(Reject::DuplicateClientOrderId);
        }
        if matches!(o.time_in_force, TimeInForce::Gtc | TimeInForce::PostOnly) && p.is_some() {
            let limits = self.engine.limits();
            let own = self
                .open
                .values()
                .filter(|x| x.account == o.account)
                .count();
            let in_book = self
                .open
                .values()
                .filter(|x| x.product == o.product)
                .count();
            if own >= limits.open_orders_per_account_max as usize {
                defects.push(Reject::LimitReached(LimitKind::OpenOrdersPerAccount));
            }
            if in_book >= limits.orders_per_book_max as usize {
                defects.push(Reject::LimitReached(LimitKind::OrdersPerBook));
            }
            if self.open.len() >= limits.orders_total_max as usize {
                defects.push(Reject::LimitReached(LimitKind::OrdersTotal));
            }
        }
        if !defects.is_empty() {
            return Expect::OneOf(defects);
        }
        let p = p.unwrap();
        let best = self.best(o.product, o.side.opposite());
        match o.price {
            Some(price) => {
                let Some((asset, hold)) = Self::hold(p, o.side, price, o.qty) else {
                    return Expect::Exactly(Err(Reject::Overflow));
                };
                if self.engine.balance(o.account, asset).available < hold {
                    return Expect::Exactly(Err(Reject::InsufficientFunds));
                }
                if o.time_in_force == TimeInForce::PostOnly
                    && best.is_some_and(|(_, b)| crosses(o.side, price, b.price))
                {
                    return Expect::Exactly(Err(Reject::WouldTakeLiquidity));
                }
                if o.time_in_force == TimeInForce::Fok {
                    return Expect::FillOrKill;
                }
                Expect::Exactly(Ok(()))
            }
            None if o.side == Side::Sell => {
                let base = p.base_amount(o.qty).expect("small quantities fit");
                let ok = self.engine.balance(o.account, p.base()).available >= base;
                Expect::Exactly(if ok {
                    Ok(())
                } else {
                    Err(Reject::InsufficientFunds)
                })
            }
            None => {
                // A market buy must afford one lot at the best ask (at its taker rate).
                let Some((_, ask)) = best else {
                    return Expect::Exactly(Ok(()));
                };
                let volume = self
                    .engine
                    .trailing_volume(o.account, p.quote(), self.engine_time());
                let rate = rate(p.fees(), volume, Liquidity::Taker);
                let n1 = p.notional(ask.price, Qty::from_lots(1)).unwrap();
                let ok =
                    self.engine.balance(o.account, p.quote()).available >= n1 + fee_ceil(n1, rate);
                Expect::Exactly(if ok {
                    Ok(())
                } else {
                    Err(Reject::InsufficientFunds)
                })
            }
        }
    }

    fn expect_amend(&self, a: &AmendOrder, old: Option<Open>) -> Expect {
        let mut defects = Vec::new();
        let owned = old.filter(|o| o.account == a.account);
        if self.engine.account_status(a.account).is_none() {
            defects.push(Reject::UnknownAccount);
        }
        if owned.is_none() {
            defects.push(Reject::UnknownOrder);
        }
        defects.extend(
            self.trader_defect(a.account)
                .filter(|r| *r != Reject::UnknownAccount),
        );
        if let Some(o) = owned
            && self.engine.product_info(o.product).unwrap().status() == ProductStatus::Halted
        {
            defects.push(Reject::ProductHalted);
        }
        if !valid_qty(a.qty) {
            defects.push(Reject::InvalidQuantity);
        }
        if a.price.is_some_and(|p| !valid_price(p)) {
            defects.push(Reject::InvalidPrice);
        }
        let Some(o) = owned else {
            return Expect::OneOf(defects);
        };
        let price = a.price.unwrap_or(o.price);
        if price == o.price && a.qty.lots() == o.remaining {
            defects.push(Reject::NothingToAmend);
        }
        if !defects.is_empty() {
            return Expect::OneOf(defects);
        }
        let p = self.engine.product_info(o.product).unwrap();
        let Some((asset, hold)) = Self::hold(p, o.side, price, a.qty) else {
            return Expect::Exactly(Err(Reject::Overflow));
        };
        if price == o.price && a.qty.lots() < o.remaining {
            return Expect::Exactly(Ok(()));
        }
        let held = self.engine.order(a.order).expect("open order").held.minor();
        if self.engine.balance(a.account, asset).available + held < hold {
            return Expect::Exactly(Err(Reject::InsufficientFunds));
        }
        let tif = self.meta[&a.order].tif;
        let best = self.best(o.product, o.side.opposite());
        if tif == TimeInForce::PostOnly
            && best.is_some_and(|(_, b)| crosses(o.side, price, b.price))
        {
            return Expect::Exactly(Err(Reject::WouldTakeLiquidity));
        }
        Expect::Exactly(Ok(()))
    }

    fn expect_funds(&self, deposit: bool, r: &FundsRequest) -> Expect {
        let Some(status) = self.engine.account_status(r.account) else {
            return Expect::OneOf(vec![Reject::UnknownAccount]);
        };
        if let Some(&(was_deposit, asset, amount, _)) = self.funds.get(&(r.account, r.request_id)) {
            // Idempotency: the same body repeats the original; another body is refused.
            let same = was_deposit == deposit && asset == r.asset && amount == r.amount.minor();
            return if same {
                Expect::Exactly(Ok(()))
            } else {
                Expect::OneOf(vec![Reject::RequestIdMismatch])
            };
        }
        let mut defects = Vec::new();
        if status == ProfileStatus::Rejected {
            defects.push(Reject::AccountRejected);
        }
        let asset = self.engine.asset_info(r.asset);
        if asset.is_none() {
            defects.push(Reject::UnknownAsset);
        }
        if Amount::new_checked(r.amount.minor()).is_err() {
            defects.push(Reject::InvalidAmount);
        }
        let remembered = self.funds.keys().filter(|(a, _)| *a == r.account).count();
        if remembered >= self.engine.limits().funds_requests_per_account_max as usize {
            defects.push(Reject::LimitReached(LimitKind::FundsRequestsPerAccount));
        }
        if !defects.is_empty() {
            return Expect::OneOf(defects);
        }
        let supply = asset.unwrap().total_supply().minor();
        if deposit && supply > AMOUNT_MAX - r.amount.minor() {
            return Expect::Exactly(Err(Reject::Overflow));
        }
        if !deposit && self.engine.balance(r.account, r.asset).available < r.amount.minor() {
            return Expect::Exactly(Err(Reject::InsufficientFunds));
        }
        Expect::Exactly(Ok(()))
    }

    // ----- applying and checking ----------------------------------------------------------

    /// The time the engine acts at for the next command: time never goes back in it.
    fn engine_time(&self) -> i64 {
        self.clock_ms.max(self.now_ms)
    }

    /// Applies a command with the rejection checks; returns its result.
    fn exec(&mut self, kind: CommandKind, ctx: Ctx) -> Result<(), Reject> {
        self.seq += 1;
        let command = Command {
            seq: self.seq,
            timestamp_ms: self.now_ms,
            kind,
        };
        let before = self.engine.state_hash();
        self.volumes.clear();
        if matches!(ctx, Ctx::Place(_) | Ctx::Amend { .. }) {
            for a in 0..self.engine.n_accounts() as u32 {
                for quote in [USD, AAPL] {
                    let account = AccountId::new(a);
                    let volume = self
                        .engine
                        .trailing_volume(account, quote, self.engine_time());
                    self.volumes.insert((account, quote), volume);
                }
            }
        }
        let mut events = Vec::new();
        let result = self.engine.apply(&command, &mut events);
        self.stats.commands += 1;
        match result {
            Err(reject) => {
                assert!(
                    events.is_empty(),
                    "rejected {command:?} ({reject:?}) emitted {events:?}"
                );
                assert_eq!(
                    self.engine.state_hash(),
                    before,
                    "rejected {command:?} ({reject:?}) changed the state"
                );
                assert_eq!(
                    self.engine.event_seq(),
                    self.last_event_seq,
                    "a rejection moved the event seq"
                );
                *self.stats.rejected.entry(reject_name(&reject)).or_default() += 1;
            }
            Ok(()) => {
                assert!(!events.is_empty(), "accepted {command:?} emitted nothing");
                self.absorb(&command, &events, ctx);
            }
        }
        self.clock_ms = self.clock_ms.max(command.timestamp_ms);
        self.log.push(command);
        self.outcomes.push((result, events));
        result
    }

    fn run(&mut self, kind: CommandKind, ctx: Ctx, expect: Expect) {
        let description = format!("{kind:?}");
        let result = self.exec(kind, ctx);
        let events = &self.outcomes.last().unwrap().1;
        match (&expect, result) {
            (Expect::Exactly(want), got) => assert_eq!(got, *want, "outcome of {description}"),
            (Expect::OneOf(defects), Err(reject)) => {
                assert!(
                    defects.contains(&reject),
                    "{description} rejected as {reject:?}, its defects are {defects:?}"
                )
            }
            (Expect::OneOf(defects), Ok(())) => {
                panic!("{description} accepted despite {defects:?}")
            }
            (Expect::FillOrKill, Err(reject)) => {
                assert_eq!(reject, Reject::FillOrKillUnfillable, "{description}")
            }
            (Expect::FillOrKill, Ok(())) => {
                let filled: i64 = events
                    .iter()
                    .filter_map(|e| match e.kind {
                        EventKind::Fill { qty, .. } => Some(qty.lots()),
                        _ => None,
                    })
                    .sum();
                let EventKind::OrderAccepted { qty, .. } = events[0].kind else {
                    panic!("no OrderAccepted")
                };
                assert_eq!(
                    filled,
                    qty.lots(),
                    "accepted fill-or-kill order not filled in full: {description}"
                );
                self.stats.fok_filled += 1;
            }
        }
        self.check_state();
    }

    fn add_total(&mut self, account: AccountId, asset: AssetId, delta: i128) {
        *self.totals.entry((account, asset)).or_default() += delta;
    }

    /// Checks the events of an accepted command and folds them into the model.
    fn absorb(&mut self, command: &Command, events: &[Event], ctx: Ctx) {
        let mut taker: Option<Taker> = None;
        match ctx {
            Ctx::Amend { amend, old } => {
                let price = amend.price.unwrap_or(old.price);
                let meta = self.meta[&amend.order];
                if price == old.price && amend.qty.lots() < old.remaining {
                    assert!(
                        matches!(events, [Event { kind: EventKind::OrderRested { priority_kept: true, remaining, price: p, .. }, .. }]
                            if *remaining == amend.qty && *p == price),
                        "a smaller amendment at the same price: {events:?}"
                    );
                } else {
                    // The order leaves its place and matches again as a taker with its own id.
                    self.open.remove(&amend.order).expect("amended order open");
                    self.stats.amends_taking += 1;
                    taker = Some(Taker {
                        id: amend.order,
                        account: old.account,
                        product: old.product,
                        side: old.side,
                        limit: Some(price),
                        order_type: OrderType::Limit,
                        tif: meta.tif,
                        stp: meta.stp,
                        cid: old.cid,
                        remaining: amend.qty.lots(),
                        filled: 0,
                        stp_cancels: 0,
                        must_stop: false,
                    });
                }
            }
            Ctx::Place(_) => assert!(
                matches!(events[0].kind, EventKind::OrderAccepted { .. })
                    || matches!(
                        events[..],
                        [Event {
                            kind: EventKind::OrderDuplicate { .. },
                            ..
                        }]
                    ),
                "a placed order's first event is OrderAccepted, or its one event OrderDuplicate: \
                 {events:?}"
            ),
            Ctx::Cancel(_) | Ctx::Other => {
                assert_eq!(events.len(), 1, "{command:?} emits one event: {events:?}")
            }
        }
        for event in events {
            self.last_event_seq += 1;
            assert_eq!(
                event.seq, self.last_event_seq,
                "event seqs are consecutive from 1"
            );
            assert_eq!(
                (event.command_seq, event.timestamp_ms),
                (command.seq, command.timestamp_ms.max(self.clock_ms)),
                "events carry the command's seq and the engine's time"
            );
            self.absorb_event(command, event, ctx, &mut taker);
        }
        assert_eq!(self.engine.event_seq(), self.last_event_seq);
        if let Some(t) = taker {
            assert_eq!(
                t.remaining, 0,
                "taker {t:?} neither rested nor cancelled: {events:?}"
            );
        }
    }

    #[allow(
        clippy::too_many_lines,
        reason = "a dispatch: one arm per event kind, each checking it against the model"
    )]
    fn absorb_event(
        &mut self,
        command: &Command,
        event: &Event,
        ctx: Ctx,
        taker: &mut Option<Taker>,
    ) {
        match event.kind {
            EventKind::Deposited {
                account,
                asset,
                amount,
                request_id,
                method,
                duplicate,
                original_command_seq,
            }
            | EventKind::Withdrawn {
                account,
                asset,
                amount,
                request_id,
                method,
                duplicate,
                original_command_seq,
            } => {
                let deposit = matches!(event.kind, EventKind::Deposited { .. });
                match &command.kind {
                    CommandKind::Deposit(r) | CommandKind::Withdraw(r) => {
                        assert_eq!(method, r.method, "the event carries the request's method")
                    }
                    other => panic!("a funds event from {other:?}"),
                }
                let key = (account, request_id);
                if duplicate {
                    let original = self
                        .funds
                        .get(&key)
                        .expect("a duplicate of an accepted request");
                    assert_eq!(
                        *original,
                        (deposit, asset, amount.minor(), original_command_seq),
                        "duplicate body"
                    );
                    self.stats.duplicate_funds += 1;
                } else {
                    assert_eq!(original_command_seq, command.seq);
                    let previous = self
                        .funds
                        .insert(key, (deposit, asset, amount.minor(), command.seq));
                    assert!(previous.is_none(), "request id {request_id} applied twice");
                    let delta = if deposit {
                        amount.minor() as i128
                    } else {
                        -(amount.minor() as i128)
                    };
                    self.net[asset.get() as usize] += delta;
                    self.add_total(account, asset, delta);
                }
            }
            EventKind::OrderAccepted {
                order,
                account,
                product,
                side,
                order_type,
                time_in_force,
                price,
                qty,
                client_order_id,
            } => {
                let Ctx::Place(o) = ctx else {
                    panic!("OrderAccepted outside a placement")
                };
                assert_eq!(
                    (
                        account,
                        product,
                        side,
                        order_type,
                        time_in_force,
                        price,
                        qty,
                        client_order_id
                    ),
                    (
                        o.account,
                        o.product,
                        o.side,
                        o.order_type,
                        o.time_in_force,
                        o.price,
                        o.qty,
                        o.client_order_id
                    )
                );
                assert!(
                    self.accepted.last().is_none_or(|last| *last < order),
                    "order ids increase"
                );
                assert!(taker.is_none());
                self.remember_key(&o, order, command.seq, event.timestamp_ms);
                self.accepted.push(order);
                self.meta.insert(
                    order,
                    Meta {
                        account,
                        tif: time_in_force,
                        stp: o.self_trade,
                    },
                );
                if order_type == OrderType::Market {
                    self.stats.market_orders += 1;
                }
                *taker = Some(Taker {
                    id: order,
                    account,
                    product,
                    side,
                    limit: price,
                    order_type,
                    tif: time_in_force,
                    stp: o.self_trade,
                    cid: client_order_id,
                    remaining: qty.lots(),
                    filled: 0,
                    stp_cancels: 0,
                    must_stop: false,
                });
            }
            EventKind::OrderDuplicate {
                account,
                order,
                client_order_id,
                original_command_seq,
            } => {
                let Ctx::Place(o) = ctx else {
                    panic!("OrderDuplicate outside a placement")
                };
                let key = *self
                    .live_key(&o)
                    .expect("a duplicate of a key in the window");
                assert!(same_body(&key.body, &o), "a duplicate with another body");
                assert_eq!(
                    (account, Some(client_order_id), order, original_command_seq),
                    (o.account, o.client_order_id, key.order, key.command_seq),
                    "the duplicate names the first placement"
                );
                self.stats.duplicate_orders += 1;
            }
            EventKind::Fill {
                product,
                maker_order,
                taker_order,
                maker_account,
                taker_account,
                taker_side,
                price,
                qty,
                notional,
                maker_fee,
                taker_fee,
                maker_remaining,
                taker_remaining,
            } => {
                let t = taker.as_mut().expect("a fill has a taker");
                assert!(
                    !t.must_stop,
                    "cancel-both went on matching after cancelling an own order"
                );
                assert_eq!(
                    (taker_order, taker_account, taker_side, product),
                    (t.id, t.account, t.side, t.product)
                );
                assert!(
                    t.tif != TimeInForce::PostOnly,
                    "a post-only order took liquidity"
                );
                let (best_id, maker) = self
                    .best(product, t.side.opposite())
                    .expect("a fill has a maker");
                assert_eq!(
                    maker_order, best_id,
                    "fill not against the best opposite order"
                );
                assert_eq!((maker_account, maker.price), (maker.account, price));
                assert_ne!(maker_account, taker_account, "self-trade");
                if let Some(limit) = t.limit {
                    assert!(
                        crosses(t.side, limit, price),
                        "fill at {price:?} beyond limit {limit:?}"
                    );
                }
                let q = qty.lots();
                assert!(
                    q > 0 && q <= maker.remaining && q <= t.remaining,
                    "fill qty {q}"
                );
                assert_eq!(maker_remaining.lots(), maker.remaining - q);
                assert_eq!(taker_remaining.lots(), t.remaining - q);
                t.remaining -= q;
                t.filled += q;
                if maker_remaining.lots() == 0 {
                    self.open.remove(&maker_order);
                } else {
                    self.open.get_mut(&maker_order).unwrap().remaining -= q;
                }
                let p = self.engine.product_info(product).unwrap();
                let (base, quote) = (p.base(), p.quote());
                assert_eq!(
                    notional.minor() as i128,
                    price.ticks() as i128 * q as i128 * p.quote_per_tick_lot() as i128
                );
                // The rates follow each side's trailing volume, which this command's earlier
                // fills have raised (exact while no daily bucket can saturate).
                let maker_volume = self.volumes[&(maker_account, quote)];
                let taker_volume = self.volumes[&(taker_account, quote)];
                if maker_volume.max(taker_volume) < AMOUNT_MAX / 30 - notional.minor() {
                    let maker_rate = rate(p.fees(), maker_volume, Liquidity::Maker);
                    let taker_rate = rate(p.fees(), taker_volume, Liquidity::Taker);
                    assert_eq!(
                        (maker_fee.minor(), taker_fee.minor()),
                        (
                            fee_ceil(notional.minor(), maker_rate),
                            fee_ceil(notional.minor(), taker_rate)
                        ),
                        "fees on {notional:?} at volumes {maker_volume} / {taker_volume}"
                    );
                } else {
                    let tiers = p.fees().tiers();
                    assert!(
                        tiers
                            .iter()
                            .any(|t| maker_fee.minor() == fee_ceil(notional.minor(), t.maker_ppm))
                    );
                    assert!(
                        tiers
                            .iter()
                            .any(|t| taker_fee.minor() == fee_ceil(notional.minor(), t.taker_ppm))
                    );
                }
                *self.volumes.get_mut(&(maker_account, quote)).unwrap() += notional.minor();
                *self.volumes.get_mut(&(taker_account, quote)).unwrap() += notional.minor();
                let base_qty = q as i128 * p.base_per_lot() as i128;
                let (buyer, seller, buyer_fee, seller_fee) = match taker_side {
                    Side::Buy => (taker_account, maker_account, taker_fee, maker_fee),
                    Side::Sell => (maker_account, taker_account, maker_fee, taker_fee),
                };
                let n = notional.minor() as i128;
                self.add_total(buyer, quote, -(n + buyer_fee.minor() as i128));
                self.add_total(buyer, base, base_qty);
                self.add_total(seller, base, -base_qty);
                self.add_total(seller, quote, n - seller_fee.minor() as i128);
                self.add_total(
                    AccountId::FEES,
                    quote,
                    (maker_fee.minor() + taker_fee.minor()) as i128,
                );
                self.stats.fills += 1;
                self.stats.fills_per_product[product.get() as usize] += 1;
            }
            EventKind::OrderRested {
                order,
                account,
                product,
                side,
                price,
                remaining,
                priority_kept,
            } => {
                self.stats.rested += 1;
                if priority_kept {
                    let Ctx::Amend { amend, old } = ctx else {
                        panic!("priority kept outside an amendment")
                    };
                    assert_eq!(
                        (order, account, product, side, price),
                        (amend.order, old.account, old.product, old.side, old.price)
                    );
                    assert!(remaining.lots() < old.remaining);
                    self.open.get_mut(&order).unwrap().remaining = remaining.lots();
                    self.stats.kept_priority += 1;
                    return;
                }
                let t = taker.take().expect("only the taker rests");
                assert!(
                    !t.must_stop,
                    "cancel-both rested after cancelling an own order"
                );
                assert_eq!(
                    (order, account, product, side),
                    (t.id, t.account, t.product, t.side)
                );
                assert_eq!((Some(price), remaining.lots()), (t.limit, t.remaining));
                assert!(t.remaining > 0);
                assert!(
                    matches!(t.tif, TimeInForce::Gtc | TimeInForce::PostOnly),
                    "a {:?} order rested",
                    t.tif
                );
                if let Some((_, best)) = self.best(product, side.opposite()) {
                    assert!(
                        !crosses(side, price, best.price),
                        "order {order} rested across the book"
                    );
                }
                self.next_prio += 1;
                self.open.insert(
                    order,
                    Open {
                        account,
                        product,
                        side,
                        price,
                        remaining: t.remaining,
                        cid: t.cid,
                        prio: self.next_prio,
                    },
                );
            }
            EventKind::OrderCancelled {
                order,
                account,
                product,
                remaining,
                reason,
            } => {
                *self
                    .stats
                    .cancelled
                    .entry(format!("{reason:?}"))
                    .or_default() += 1;
                if let Some(t) = taker.as_ref().filter(|t| t.id == order) {
                    // The taker's unmatched rest.
                    assert_eq!(
                        (account, product, remaining.lots()),
                        (t.account, t.product, t.remaining)
                    );
                    assert!(t.remaining > 0);
                    assert!(
                        !t.must_stop || reason == CancelReason::SelfTrade,
                        "cancel-both stopped as {reason:?}"
                    );
                    let opposite = self.best(product, t.side.opposite());
                    let crossing = opposite
                        .filter(|(_, b)| t.limit.is_none_or(|l| crosses(t.side, l, b.price)));
                    match reason {
                        CancelReason::Expired => {
                            assert!(
                                matches!(t.tif, TimeInForce::Ioc | TimeInForce::Fok),
                                "a {:?} order expired",
                                t.tif
                            );
                            assert!(
                                crossing.is_none(),
                                "{order} expired with {crossing:?} still matchable"
                            );
                        }
                        CancelReason::SelfTrade => {
                            assert_ne!(t.stp, SelfTradePrevention::CancelResting);
                            if t.stp == SelfTradePrevention::CancelIncoming {
                                let (_, own) = crossing.expect("stopped at an own order");
                                assert_eq!(own.account, t.account);
                            } else {
                                assert!(
                                    t.stp_cancels > 0,
                                    "cancel-both cancelled no resting order"
                                );
                            }
                        }
                        CancelReason::InsufficientFunds => {
                            assert!(t.order_type == OrderType::Market && t.side == Side::Buy);
                            let (_, ask) = crossing.expect("ran out of funds with asks left");
                            let p = self.engine.product_info(product).unwrap();
                            let volume = self.engine.trailing_volume(
                                account,
                                p.quote(),
                                command.timestamp_ms.max(self.clock_ms),
                            );
                            let n1 = p.notional(ask.price, Qty::from_lots(1)).unwrap();
                            let cost = n1 + fee_ceil(n1, rate(p.fees(), volume, Liquidity::Taker));
                            assert!(
                                self.engine.balance(account, p.quote()).available < cost,
                                "stopped while affordable"
                            );
                        }
                        CancelReason::Requested => panic!("the taker cancelled as requested"),
                    }
                    *taker = None;
                    return;
                }
                let o = self.open.remove(&order).expect("cancelled order was open");
                assert_eq!(
                    (account, product, remaining.lots()),
                    (o.account, o.product, o.remaining)
                );
                match reason {
                    CancelReason::Requested => {
                        assert!(matches!(ctx, Ctx::Cancel(id) if id == order))
                    }
                    CancelReason::SelfTrade => {
                        let t = taker.as_mut().expect("self-trade prevention needs a taker");
                        assert_ne!(t.stp, SelfTradePrevention::CancelIncoming);
                        assert_eq!(account, t.account);
                        // It was the best opposite order, within the taker's limit.
                        let mut rest = self.open.clone();
                        rest.insert(order, o);
                        let best = rest
                            .iter()
                            .filter(|(_, x)| x.product == product && x.side == t.side.opposite())
                            .min_by_key(|(_, x)| priority(x.side, x))
                            .map(|(id, _)| *id);
                        assert_eq!(best, Some(order), "self-trade cancel of a non-best order");
                        assert!(t.limit.is_none_or(|l| crosses(t.side, l, o.price)));
                        assert!(!t.must_stop, "cancel-both cancelled two own orders");
                        t.stp_cancels += 1;
                        t.must_stop = t.stp == SelfTradePrevention::CancelBoth;
                    }
                    other => panic!("a resting order cancelled as {other:?}"),
                }
            }
            EventKind::AccountCreated { account, .. } => {
                assert_eq!(
                    account.get() as usize + 1,
                    self.engine.n_accounts(),
                    "account ids are dense"
                );
            }
            EventKind::AssetAdded { .. }
            | EventKind::ProductAdded { .. }
            | EventKind::ProfileStatusChanged { .. }
            | EventKind::CurrencyPreferenceChanged { .. }
            | EventKind::ProductStatusChanged { .. }
            | EventKind::BookmarkAdded { .. }
            | EventKind::BookmarkRemoved { .. } => {}
        }
    }

    /// The whole-state invariants.
    pub(crate) fn check_state(&self) {
        self.check_keys();
        let e = &self.engine;
        let n_assets = e.n_assets();
        // Money: nothing negative; totals as the events say; conservation per asset.
        let mut sums = vec![0i128; n_assets];
        let mut held: BTreeMap<(AccountId, AssetId), i64> = BTreeMap::new();
        for a in 0..e.n_accounts() as u32 {
            let account = AccountId::new(a);
            for &(asset, b) in e.balances(account) {
                assert!(
                    b.available >= 0 && b.held >= 0,
                    "negative balance {b:?} of {account} in {asset}"
                );
                sums[asset.get() as usize] += b.total() as i128;
                if b.held != 0 {
                    held.insert((account, asset), b.held);
                }
                let expected = self.totals.get(&(account, asset)).copied().unwrap_or(0);
                assert_eq!(
                    b.total() as i128,
                    expected,
                    "balance of {account} in {asset} differs from its events"
                );
            }
        }
        for (&(account, asset), &total) in &self.totals {
            assert_eq!(
                e.balance(account, asset).total() as i128,
                total,
                "balance of {account} in {asset}"
            );
        }
        for (i, sum) in sums.iter().enumerate() {
            let asset = AssetId::new(i as u16);
            assert_eq!(
                *sum, self.net[i],
                "asset {asset}: balances vs deposits - withdrawals"
            );
            assert_eq!(
                e.asset_info(asset).unwrap().total_supply().minor() as i128,
                *sum,
                "asset {asset}: total supply"
            );
        }
        self.check_books(&held);
    }

    /// The books' invariants; `held` is each wallet's held amount, which the open orders must
    /// account for exactly.
    fn check_books(&self, held: &BTreeMap<(AccountId, AssetId), i64>) {
        let e = &self.engine;
        let mut order_held: BTreeMap<(AccountId, AssetId), i64> = BTreeMap::new();
        let mut n_orders = 0;
        for pi in 0..e.n_products() as u32 {
            let product = ProductId::new(pi);
            let p = e.product_info(product).unwrap();
            for side in [Side::Buy, Side::Sell] {
                let orders = e.book_orders(product, side);
                let levels: Vec<LevelView> = e.book_levels(product, side).collect();
                let mut model: Vec<(OrderId, Open)> = self
                    .open
                    .iter()
                    .filter(|(_, o)| o.product == product && o.side == side)
                    .map(|(id, o)| (*id, *o))
                    .collect();
                model.sort_by_key(|(_, o)| priority(side, o));
                let got: Vec<(OrderId, AccountId, i64, i64, Option<ClientOrderId>)> = orders
                    .iter()
                    .map(|o| {
                        (
                            o.id,
                            o.account,
                            o.price.ticks(),
                            o.remaining.lots(),
                            o.client_order_id,
                        )
                    })
                    .collect();
                let want: Vec<(OrderId, AccountId, i64, i64, Option<ClientOrderId>)> = model
                    .iter()
                    .map(|(id, o)| (*id, o.account, o.price.ticks(), o.remaining, o.cid))
                    .collect();
                assert_eq!(got, want, "book {product} {side:?} differs from the events");
                let mut groups: Vec<(Price, i64, u32)> = Vec::new();
                for o in &orders {
                    assert_eq!((o.product, o.side), (product, side));
                    assert!(o.remaining.lots() > 0);
                    assert_eq!(e.order(o.id), Some(*o), "order lookup");
                    let asset = match side {
                        Side::Buy => {
                            let need = p.buy_hold(o.price, o.remaining).unwrap();
                            assert!(
                                o.held.minor() >= need,
                                "buy {} holds {:?} < {need}",
                                o.id,
                                o.held
                            );
                            p.quote()
                        }
                        Side::Sell => {
                            assert_eq!(
                                o.held.minor(),
                                o.remaining.lots() * p.base_per_lot(),
                                "sell {} hold",
                                o.id
                            );
                            p.base()
                        }
                    };
                    *order_held.entry((o.account, asset)).or_default() += o.held.minor();
                    match groups.last_mut() {
                        Some(g) if g.0 == o.price => {
                            g.1 += o.remaining.lots();
                            g.2 += 1;
                        }
                        _ => groups.push((o.price, o.remaining.lots(), 1)),
                    }
                }
                n_orders += orders.len();
                let level_tuples: Vec<(Price, i64, u32)> = levels
                    .iter()
                    .map(|l| (l.price, l.qty.lots(), l.n_orders))
                    .collect();
                assert_eq!(level_tuples, groups, "levels of {product} {side:?}");
                for w in levels.windows(2) {
                    let ordered = match side {
                        Side::Buy => w[0].price > w[1].price,
                        Side::Sell => w[0].price < w[1].price,
                    };
                    assert!(ordered, "levels of {product} {side:?} out of order");
                }
            }
            let bid = e.book_levels(product, Side::Buy).next();
            let ask = e.book_levels(product, Side::Sell).next();
            if let (Some(bid), Some(ask)) = (bid, ask) {
                assert!(
                    bid.price < ask.price,
                    "book {product} crossed: {bid:?} / {ask:?}"
                );
            }
        }
        assert_eq!(n_orders, e.n_open_orders());
        assert_eq!(n_orders, self.open.len());
        assert_eq!(
            *held, order_held,
            "held balances vs what the open orders hold"
        );
    }
}

// ----- the tests ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    /// Random streams of up to 300 commands, every invariant checked after every command.
    #[test]
    fn invariants_hold_after_every_command(ops in prop::collection::vec(op(), 1..300)) {
        let mut h = Harness::new();
        for op in &ops {
            h.step(op);
        }
    }
}

/// Long seeded streams: the same checks over thousands of commands, where books get deep and
/// fee tiers change; and the streams must have exercised what they are meant to.
#[test]
fn long_seeded_runs_keep_the_invariants() {
    for seed in 1..=6u64 {
        let mut h = Harness::new();
        for op in seeded_ops(seed, 3_000) {
            h.step(&op);
        }
        let s = &h.stats;
        assert!(s.fills > 150, "seed {seed}: {s:?}");
        assert!(
            s.fills_per_product.iter().all(|&n| n > 20),
            "seed {seed}: {s:?}"
        );
        assert!(
            s.kept_priority > 5 && s.amends_taking > 20 && s.fok_filled > 3,
            "seed {seed}: {s:?}"
        );
        assert!(
            s.duplicate_funds > 5 && s.duplicate_orders > 5 && s.market_orders > 30,
            "seed {seed}: {s:?}"
        );
        for reason in ["SelfTrade", "Expired", "Requested"] {
            assert!(
                s.cancelled.get(reason).copied().unwrap_or(0) > 3,
                "seed {seed}: no {reason} cancels: {s:?}"
            );
        }
        for reason in [
            "UnknownAccount",
            "UnknownOrder",
            "UnknownProduct",
            "UnknownAsset",
            "InvalidPrice",
            "InvalidQuantity",
            "InvalidAmount",
            "InvalidPriceForOrderType",
            "InvalidTimeInForce",
            "InsufficientFunds",
            "RequestIdMismatch",
            "DuplicateClientOrderId",
            "FeeAccountCannotTrade",
            "WouldTakeLiquidity",
            "FillOrKillUnfillable",
            "NothingToAmend",
            "AccountNotVerified",
            "Overflow",
            "ProductHalted",
        ] {
            assert!(
                s.n_rejected(reason) > 0,
                "seed {seed}: no {reason} rejection: {s:?}"
            );
        }
    }
}

/// A market buy that can only afford part of the book stops with `InsufficientFunds`, pays
/// exactly what its fills cost, and leaves its account with less than one more lot would cost.
#[test]
fn a_market_buy_spends_down_to_less_than_one_lot() {
    let mut h = Harness::new();
    let (seller, buyer) = (AccountId::new(1), AccountId::new(2));
    for price in [95, 100, 105] {
        let order = NewOrder {
            account: seller,
            product: ProductId::new(0),
            side: Side::Sell,
            order_type: OrderType::Limit,
            price: Some(Price::from_ticks(price)),
            qty: Qty::from_lots(100),
            time_in_force: TimeInForce::Gtc,
            self_trade: SelfTradePrevention::CancelResting,
            client_order_id: None,
        };
        h.run(
            CommandKind::PlaceOrder(order),
            Ctx::Place(order),
            Expect::Exactly(Ok(())),
        );
    }
    let order = NewOrder {
        account: buyer,
        product: ProductId::new(0),
        side: Side::Buy,
        order_type: OrderType::Market,
        price: None,
        qty: Qty::from_lots(300),
        time_in_force: TimeInForce::Ioc,
        self_trade: SelfTradePrevention::CancelResting,
        client_order_id: None,
    };
    h.funds_request(false, funds(buyer, USD, 480_000, "w"));
    h.run(
        CommandKind::PlaceOrder(order),
        Ctx::Place(order),
        Expect::Exactly(Ok(())),
    );
    let events = &h.outcomes.last().unwrap().1;
    assert!(
        matches!(
            events.last().unwrap().kind,
            EventKind::OrderCancelled {
                reason: CancelReason::InsufficientFunds,
                ..
            }
        ),
        "{events:?}"
    );
    // 20_000 cents: 100 at 95 (9_500 + 19 fee) and 100 at 100 (10_000 + 20) leave 461; at 105,
    // 4 lots cost 420 + 1 and 5 would cost 525 + 2.
    let got: Vec<(i64, i64)> = crate::support::fills(events)
        .iter()
        .map(|f| (f.2, f.3))
        .collect();
    assert_eq!(got, vec![(95, 100), (100, 100), (105, 4)]);
    assert_eq!(
        h.engine.balance(buyer, USD),
        Balance {
            available: 40,
            held: 0
        }
    );
}

/// Fees on notionals beyond 64-bit intermediate range (tens of trillions of minor units) round
/// up exactly like small ones: two whales trade with the supplies filled to `AMOUNT_MAX`.
#[test]
fn huge_notionals_settle_and_round_fees_up() {
    let mut h = Harness::new();
    let (seller, buyer) = (AccountId::new(1), AccountId::new(2));
    let fill = |h: &mut Harness, account: AccountId, asset: AssetId, id: &str| {
        let amount = AMOUNT_MAX - h.engine.asset_info(asset).unwrap().total_supply().minor();
        h.funds_request(true, funds(account, asset, amount, id));
        assert_eq!(h.outcomes.last().unwrap().0, Ok(()));
    };
    fill(&mut h, seller, AAPL, "whale-aapl");
    fill(&mut h, buyer, USD, "whale-usd");
    let order = |account, side, qty| NewOrder {
        account,
        product: ProductId::new(0),
        side,
        order_type: OrderType::Limit,
        price: Some(Price::from_ticks(100_001)),
        qty: Qty::from_lots(qty),
        time_in_force: TimeInForce::Gtc,
        self_trade: SelfTradePrevention::CancelResting,
        client_order_id: None,
    };
    for (account, side, qty) in [
        (seller, Side::Sell, 999_999_999),
        (buyer, Side::Buy, 1_000_000_001),
    ] {
        let o = order(account, side, qty);
        h.run(
            CommandKind::PlaceOrder(o),
            Ctx::Place(o),
            Expect::Exactly(Ok(())),
        );
    }
    let events = &h.outcomes.last().unwrap().1;
    let fill = crate::support::fills(events);
    assert_eq!(fill.len(), 1);
    let notional = 100_001i64 * 999_999_999;
    assert!(notional > 10_000_000_000_000);
    assert_eq!(
        (fill[0].4, fill[0].5),
        (fee_ceil(notional, 1_000), fee_ceil(notional, 2_000))
    );
    assert_eq!(
        fill[0].5, 200_001_999_800,
        "0.2% of 100_000_999_899_999 rounded up"
    );
    // A one-cent deposit more overflows the supply.
    h.funds_request(true, funds(buyer, USD, 1, "one-more"));
    assert_eq!(h.outcomes.last().unwrap().0, Err(Reject::Overflow));
}

/// Small maxima for every collection, so that each `LimitReached` path is taken.
fn tight_limits() -> Limits {
    Limits {
        accounts_max: 14,
        open_orders_per_account_max: 4,
        orders_per_book_max: 8,
        orders_total_max: 16,
        bookmarks_per_account_max: 1,
        funds_requests_per_account_max: 12,
        order_keys_max: 3,
        ..Limits::default()
    }
}

proptest! {
    #![proptest_config(Config { cases: 128, failure_persistence: None, ..Config::default() })]

    /// The same streams under small limits: the limits are typed rejections that change
    /// nothing, and every invariant still holds.
    #[test]
    fn invariants_hold_under_tight_limits(ops in prop::collection::vec(op(), 1..300)) {
        let mut h = Harness::with_limits(tight_limits());
        for op in &ops {
            h.step(op);
        }
    }
}

#[test]
fn every_limit_is_reached_in_long_runs_under_tight_limits() {
    for seed in 1..=2u64 {
        let mut h = Harness::with_limits(tight_limits());
        for op in seeded_ops(seed, 3_000) {
            h.step(&op);
        }
        let s = &h.stats;
        assert!(s.fills > 100, "seed {seed}: {s:?}");
        for kind in [
            LimitKind::Accounts,
            LimitKind::OpenOrdersPerAccount,
            LimitKind::OrdersPerBook,
            LimitKind::OrdersTotal,
            LimitKind::Bookmarks,
            LimitKind::FundsRequestsPerAccount,
        ] {
            let name = reject_name(&Reject::LimitReached(kind));
            assert!(s.n_rejected(&name) > 0, "seed {seed}: no {name}: {s:?}");
        }
    }
}
