//! Differential test: the engine against a naive reference matcher written here.
//!
//! The reference keeps each side of the book as a `Vec` of orders, re-sorted by (price, arrival)
//! after every insertion, and matches by looking at the first element: no levels, no links, no
//! slots. It models price-time priority, GTC / IOC / FOK / post-only limit orders, market orders,
//! cancels, amendments (a smaller quantity at the same price keeps priority; anything else
//! re-enters at the back and may match as taker) and the three self-trade prevention modes.
//! A fill-or-kill order is decided by running it on a clone of the reference and checking that it
//! filled in full. Funds are ample, so money never limits an order; fees are the flat 0.1% maker
//! / 0.2% taker of the test product, rounded up.
//!
//! After every command the test compares: the result (including the rejection reason), the
//! events (acceptances, fills with ids, accounts, price, quantity, notional, fees and remaining
//! quantities, cancellations with reasons, restings with priority flags), both sides of the book
//! order by order, and every account's balance total in both assets.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use bourse_engine::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::support::*;

const N_TRADERS: u32 = 4;
// 1024 is a page boundary of the book's ladder: the band covers two pages.
const MID: i64 = 1_024;
const USD_EACH: i64 = 1_000_000_000_000;
const SHARES_EACH: i64 = 1_000_000_000;

/// What the reference predicts and what the engine's events are compared as.
#[derive(Clone, Debug, PartialEq)]
enum Ev {
    Accepted {
        id: u64,
        account: AccountId,
        side: Side,
        price: Option<i64>,
        qty: i64,
    },
    Fill {
        maker: u64,
        taker: u64,
        maker_account: AccountId,
        taker_account: AccountId,
        taker_side: Side,
        price: i64,
        qty: i64,
        notional: i64,
        maker_fee: i64,
        taker_fee: i64,
        maker_remaining: i64,
        taker_remaining: i64,
    },
    Cancelled {
        id: u64,
        account: AccountId,
        remaining: i64,
        reason: CancelReason,
    },
    Rested {
        id: u64,
        account: AccountId,
        side: Side,
        price: i64,
        remaining: i64,
        priority_kept: bool,
    },
    /// A placement repeating a keyed one: the first order's id.
    Duplicate { id: u64, account: AccountId },
}

fn project(events: &[Event]) -> Vec<Ev> {
    events
        .iter()
        .map(|e| match e.kind {
            EventKind::OrderAccepted {
                order,
                account,
                product,
                side,
                price,
                qty,
                ..
            } => {
                assert_eq!(product, P);
                Ev::Accepted {
                    id: order.get(),
                    account,
                    side,
                    price: price.map(Price::ticks),
                    qty: qty.lots(),
                }
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
                assert_eq!(product, P);
                Ev::Fill {
                    maker: maker_order.get(),
                    taker: taker_order.get(),
                    maker_account,
                    taker_account,
                    taker_side,
                    price: price.ticks(),
                    qty: qty.lots(),
                    notional: notional.minor(),
                    maker_fee: maker_fee.minor(),
                    taker_fee: taker_fee.minor(),
                    maker_remaining: maker_remaining.lots(),
                    taker_remaining: taker_remaining.lots(),
                }
            }
            EventKind::OrderCancelled {
                order,
                account,
                product,
                remaining,
                reason,
            } => {
                assert_eq!(product, P);
                Ev::Cancelled {
                    id: order.get(),
                    account,
                    remaining: remaining.lots(),
                    reason,
                }
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
                assert_eq!(product, P);
                Ev::Rested {
                    id: order.get(),
                    account,
                    side,
                    price: price.ticks(),
                    remaining: remaining.lots(),
                    priority_kept,
                }
            }
            EventKind::OrderDuplicate { order, account, .. } => Ev::Duplicate {
                id: order.get(),
                account,
            },
            other => panic!("unexpected event {other:?}"),
        })
        .collect()
}

// ----- the reference ------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ROrder {
    id: u64,
    account: AccountId,
    side: Side,
    price: i64,
    remaining: i64,
    /// Arrival at its level: smaller is earlier.
    time: u64,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    cid: Option<ClientOrderId>,
}

/// An order while it matches.
#[derive(Clone, Copy, Debug)]
struct Incoming {
    id: u64,
    account: AccountId,
    side: Side,
    limit: Option<i64>,
    remaining: i64,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    cid: Option<ClientOrderId>,
    may_rest: bool,
}

#[derive(Clone, Debug, Default)]
struct Reference {
    /// Best first: highest price, then earliest.
    bids: Vec<ROrder>,
    /// Best first: lowest price, then earliest.
    asks: Vec<ROrder>,
    next_id: u64,
    clock: u64,
    /// Every keyed placement accepted, with its order id (the test's engine time stands
    /// still, so no key leaves the order-key window).
    keys: BTreeMap<(AccountId, ClientOrderId), (NewOrder, u64)>,
    /// Balance totals (available + held) per account and asset.
    totals: BTreeMap<(AccountId, AssetId), i128>,
}

fn fee(notional: i64, ppm: i64) -> i64 {
    (notional * ppm + 999_999) / 1_000_000
}

fn would_trade(side: Side, limit: i64, maker_price: i64) -> bool {
    match side {
        Side::Buy => maker_price <= limit,
        Side::Sell => maker_price >= limit,
    }
}

impl Reference {
    fn side_mut(&mut self, side: Side) -> &mut Vec<ROrder> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn side(&self, side: Side) -> &Vec<ROrder> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn sort(&mut self) {
        self.bids.sort_by_key(|o| (Reverse(o.price), o.time));
        self.asks.sort_by_key(|o| (o.price, o.time));
    }

    /// Puts an order at the back of its price level.
    fn rest(&mut self, mut order: ROrder) {
        self.clock += 1;
        order.time = self.clock;
        self.side_mut(order.side).push(order);
        self.sort();
    }

    fn find(&self, id: u64) -> Option<&ROrder> {
        self.bids
            .iter()
            .chain(self.asks.iter())
            .find(|o| o.id == id)
    }

    fn remove(&mut self, id: u64) -> ROrder {
        for side in [Side::Buy, Side::Sell] {
            let orders = self.side_mut(side);
            if let Some(i) = orders.iter().position(|o| o.id == id) {
                return orders.remove(i);
            }
        }
        panic!("reference: no order {id}");
    }

    fn credit(&mut self, account: AccountId, asset: AssetId, delta: i128) {
        *self.totals.entry((account, asset)).or_default() += delta;
    }

    /// Matches `t` against the book, then rests or cancels what is left.
    fn run(&mut self, mut t: Incoming, out: &mut Vec<Ev>) {
        let mut stopped = None;
        while t.remaining > 0 {
            let opposite = self.side(t.side.opposite());
            let Some(best) = opposite.first().cloned() else {
                break;
            };
            if t.limit
                .is_some_and(|limit| !would_trade(t.side, limit, best.price))
            {
                break;
            }
            if best.account == t.account {
                if t.stp != SelfTradePrevention::CancelIncoming {
                    self.side_mut(t.side.opposite()).remove(0);
                    out.push(Ev::Cancelled {
                        id: best.id,
                        account: best.account,
                        remaining: best.remaining,
                        reason: CancelReason::SelfTrade,
                    });
                }
                if t.stp != SelfTradePrevention::CancelResting {
                    stopped = Some(CancelReason::SelfTrade);
                    break;
                }
                continue;
            }
            let qty = t.remaining.min(best.remaining);
            let notional = best.price * qty;
            let (maker_fee, taker_fee) = (
                fee(notional, MAKER_PPM as i64),
                fee(notional, TAKER_PPM as i64),
            );
            t.remaining -= qty;
            let maker_remaining = best.remaining - qty;
            if maker_remaining == 0 {
                self.side_mut(t.side.opposite()).remove(0);
            } else {
                self.side_mut(t.side.opposite())[0].remaining = maker_remaining;
            }
            let (buyer, seller, buyer_fee, seller_fee) = match t.side {
                Side::Buy => (t.account, best.account, taker_fee, maker_fee),
                Side::Sell => (best.account, t.account, maker_fee, taker_fee),
            };
            self.credit(buyer, USD, -((notional + buyer_fee) as i128));
            self.credit(buyer, AAPL, qty as i128);
            self.credit(seller, AAPL, -(qty as i128));
            self.credit(seller, USD, (notional - seller_fee) as i128);
            self.credit(AccountId::FEES, USD, (maker_fee + taker_fee) as i128);
            out.push(Ev::Fill {
                maker: best.id,
                taker: t.id,
                maker_account: best.account,
                taker_account: t.account,
                taker_side: t.side,
                price: best.price,
                qty,
                notional,
                maker_fee,
                taker_fee,
                maker_remaining,
                taker_remaining: t.remaining,
            });
        }
        if t.remaining == 0 {
            return;
        }
        if t.may_rest && stopped.is_none() {
            let price = t.limit.expect("a resting order has a price");
            out.push(Ev::Rested {
                id: t.id,
                account: t.account,
                side: t.side,
                price,
                remaining: t.remaining,
                priority_kept: false,
            });
            self.rest(ROrder {
                id: t.id,
                account: t.account,
                side: t.side,
                price,
                remaining: t.remaining,
                time: 0,
                tif: t.tif,
                stp: t.stp,
                cid: t.cid,
            });
        } else {
            out.push(Ev::Cancelled {
                id: t.id,
                account: t.account,
                remaining: t.remaining,
                reason: stopped.unwrap_or(CancelReason::Expired),
            });
        }
    }

    fn best_crosses(&self, side: Side, price: i64) -> bool {
        self.side(side.opposite())
            .first()
            .is_some_and(|best| would_trade(side, price, best.price))
    }

    /// A placement: a repeat of a keyed one is answered with the first order if its body is
    /// the same and refused if not; otherwise [`Reference::place_new`].
    fn place(&mut self, o: &NewOrder) -> Result<Vec<Ev>, Reject> {
        let Some(cid) = o.client_order_id else {
            return self.place_new(o);
        };
        if let Some((first, id)) = self.keys.get(&(o.account, cid)) {
            let same = NewOrder {
                client_order_id: first.client_order_id,
                ..*o
            } == *first;
            return if same {
                Ok(vec![Ev::Duplicate {
                    id: *id,
                    account: o.account,
                }])
            } else {
                Err(Reject::DuplicateClientOrderId)
            };
        }
        let events = self.place_new(o)?;
        if let Some(Ev::Accepted { id, .. }) = events.first() {
            self.keys.insert((o.account, cid), (*o, *id));
        }
        Ok(events)
    }

    fn place_new(&mut self, o: &NewOrder) -> Result<Vec<Ev>, Reject> {
        let qty = o.qty.lots();
        if !(1..=QTY_LOTS_MAX).contains(&qty) {
            return Err(Reject::InvalidQuantity);
        }
        let limit = match (o.order_type, o.price) {
            (OrderType::Limit, Some(p)) if (1..=PRICE_TICKS_MAX).contains(&p.ticks()) => {
                Some(p.ticks())
            }
            (OrderType::Limit, Some(_)) => return Err(Reject::InvalidPrice),
            (OrderType::Market, None) => None,
            _ => return Err(Reject::InvalidPriceForOrderType),
        };
        if o.order_type == OrderType::Market && o.time_in_force != TimeInForce::Ioc {
            return Err(Reject::InvalidTimeInForce);
        }
        if o.client_order_id.is_some()
            && self
                .bids
                .iter()
                .chain(&self.asks)
                .any(|r| r.account == o.account && r.cid == o.client_order_id)
        {
            return Err(Reject::DuplicateClientOrderId);
        }
        if o.time_in_force == TimeInForce::PostOnly && self.best_crosses(o.side, limit.unwrap()) {
            return Err(Reject::WouldTakeLiquidity);
        }
        let incoming = Incoming {
            id: self.next_id,
            account: o.account,
            side: o.side,
            limit,
            remaining: qty,
            tif: o.time_in_force,
            stp: o.self_trade,
            cid: o.client_order_id,
            may_rest: matches!(o.time_in_force, TimeInForce::Gtc | TimeInForce::PostOnly),
        };
        if o.time_in_force == TimeInForce::Fok {
            // Fill or kill: try it on a copy; it must fill in full.
            let mut trial = self.clone();
            let mut events = Vec::new();
            trial.run(incoming, &mut events);
            let filled: i64 = events
                .iter()
                .map(|e| {
                    if let Ev::Fill { qty, .. } = e {
                        *qty
                    } else {
                        0
                    }
                })
                .sum();
            if filled < qty {
                return Err(Reject::FillOrKillUnfillable);
            }
        }
        self.next_id += 1;
        let mut out = vec![Ev::Accepted {
            id: incoming.id,
            account: o.account,
            side: o.side,
            price: limit,
            qty,
        }];
        self.run(incoming, &mut out);
        Ok(out)
    }

    fn cancel(&mut self, account: AccountId, id: OrderId) -> Result<Vec<Ev>, Reject> {
        match self.find(id.get()) {
            Some(o) if o.account == account => {
                let o = self.remove(id.get());
                Ok(vec![Ev::Cancelled {
                    id: o.id,
                    account,
                    remaining: o.remaining,
                    reason: CancelReason::Requested,
                }])
            }
            _ => Err(Reject::UnknownOrder),
        }
    }

    fn amend(&mut self, a: &AmendOrder) -> Result<Vec<Ev>, Reject> {
        let old = match self.find(a.order.get()) {
            Some(o) if o.account == a.account => o.clone(),
            _ => return Err(Reject::UnknownOrder),
        };
        let qty = a.qty.lots();
        if !(1..=QTY_LOTS_MAX).contains(&qty) {
            return Err(Reject::InvalidQuantity);
        }
        let price = match a.price {
            Some(p) if (1..=PRICE_TICKS_MAX).contains(&p.ticks()) => p.ticks(),
            Some(_) => return Err(Reject::InvalidPrice),
            None => old.price,
        };
        if price == old.price && qty == old.remaining {
            return Err(Reject::NothingToAmend);
        }
        if price == old.price && qty < old.remaining {
            let o = self
                .side_mut(old.side)
                .iter_mut()
                .find(|o| o.id == old.id)
                .unwrap();
            o.remaining = qty;
            return Ok(vec![Ev::Rested {
                id: old.id,
                account: old.account,
                side: old.side,
                price,
                remaining: qty,
                priority_kept: true,
            }]);
        }
        if old.tif == TimeInForce::PostOnly && self.best_crosses(old.side, price) {
            return Err(Reject::WouldTakeLiquidity);
        }
        self.remove(old.id);
        let mut out = Vec::new();
        let incoming = Incoming {
            id: old.id,
            account: old.account,
            side: old.side,
            limit: Some(price),
            remaining: qty,
            tif: old.tif,
            stp: old.stp,
            cid: old.cid,
            may_rest: true,
        };
        self.run(incoming, &mut out);
        Ok(out)
    }
}

// ----- the stream ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Target {
    /// The i-th order on the reference's books (bids then asks).
    Open(u16),
    /// An id that was accepted at some point, maybe closed since.
    Past(u16),
    /// Never an order.
    Bogus(u64),
}

#[derive(Clone, Copy, Debug)]
enum DPrice {
    Keep,
    Same,
    At(i64),
}

#[derive(Clone, Copy, Debug)]
enum DOp {
    Place {
        trader: u32,
        side: Side,
        order_type: OrderType,
        with_price: bool,
        tif: TimeInForce,
        price: i64,
        qty: i64,
        stp: SelfTradePrevention,
        cid: Option<u8>,
    },
    Cancel {
        owner: bool,
        trader: u32,
        target: Target,
    },
    Amend {
        owner: bool,
        trader: u32,
        target: Target,
        /// Relative to the open quantity when `relative`.
        qty: i64,
        relative: bool,
        price: DPrice,
    },
}

fn d_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn d_stp() -> impl Strategy<Value = SelfTradePrevention> {
    prop_oneof![
        Just(SelfTradePrevention::CancelResting),
        Just(SelfTradePrevention::CancelIncoming),
        Just(SelfTradePrevention::CancelBoth),
    ]
}

fn d_target() -> impl Strategy<Value = Target> {
    prop_oneof![
        10 => any::<u16>().prop_map(Target::Open),
        2 => any::<u16>().prop_map(Target::Past),
        1 => prop_oneof![Just(0u64), Just(u64::MAX), 1_000_000u64..2_000_000].prop_map(Target::Bogus),
    ]
}

fn d_qty() -> impl Strategy<Value = i64> {
    prop_oneof![40 => 1i64..=8, 5 => 9i64..=40, 1 => Just(0i64), 1 => Just(-3i64), 1 => Just(QTY_LOTS_MAX + 1)]
}

fn d_price() -> impl Strategy<Value = i64> {
    prop_oneof![60 => (MID - 5)..=(MID + 5), 1 => Just(0i64), 1 => Just(-1i64), 1 => Just(PRICE_TICKS_MAX + 1)]
}

fn d_op() -> impl Strategy<Value = DOp> {
    let shape = prop_oneof![
        20 => Just((OrderType::Limit, true, TimeInForce::Gtc)),
        6 => Just((OrderType::Limit, true, TimeInForce::Ioc)),
        6 => Just((OrderType::Limit, true, TimeInForce::Fok)),
        6 => Just((OrderType::Limit, true, TimeInForce::PostOnly)),
        6 => Just((OrderType::Market, false, TimeInForce::Ioc)),
        1 => Just((OrderType::Market, true, TimeInForce::Ioc)),
        1 => Just((OrderType::Limit, false, TimeInForce::Ioc)),
        1 => Just((OrderType::Market, false, TimeInForce::Gtc)),
    ];
    let place = (
        0..N_TRADERS,
        d_side(),
        shape,
        d_price(),
        d_qty(),
        d_stp(),
        prop_oneof![5 => Just(None), 1 => (0u8..4).prop_map(Some)],
    )
        .prop_map(
            |(trader, side, (order_type, with_price, tif), price, qty, stp, cid)| DOp::Place {
                trader,
                side,
                order_type,
                with_price,
                tif,
                price,
                qty,
                stp,
                cid,
            },
        );
    let amend_price = prop_oneof![
        4 => Just(DPrice::Keep),
        1 => Just(DPrice::Same),
        4 => d_price().prop_map(DPrice::At),
    ];
    let amend_qty = prop_oneof![3 => (-3i64..=3).prop_map(|d| (d, true)), 1 => d_qty().prop_map(|q| (q, false))];
    prop_oneof![
        12 => place,
        2 => (prop::bool::weighted(0.9), 0..N_TRADERS, d_target())
            .prop_map(|(owner, trader, target)| DOp::Cancel { owner, trader, target }),
        4 => (prop::bool::weighted(0.9), 0..N_TRADERS, d_target(), amend_qty, amend_price).prop_map(
            |(owner, trader, target, (qty, relative), price)| DOp::Amend { owner, trader, target, qty, relative, price }
        ),
    ]
}

/// Counters over a stream, to show it exercised the matcher.
#[derive(Debug, Default)]
struct Coverage {
    fills: u64,
    self_trade_cancels: u64,
    rejects: BTreeMap<String, u64>,
    kept_priority: u64,
    max_depth: usize,
}

/// The engine and the reference side by side.
struct Pair {
    w: World,
    reference: Reference,
    traders: Vec<AccountId>,
    accepted: Vec<OrderId>,
    coverage: Coverage,
}

impl Pair {
    fn new() -> Pair {
        let mut w = World::new();
        let mut reference = Reference {
            next_id: 1,
            ..Reference::default()
        };
        let traders: Vec<AccountId> = (0..N_TRADERS)
            .map(|_| w.trader(USD_EACH, SHARES_EACH))
            .collect();
        for &t in &traders {
            reference.credit(t, USD, USD_EACH as i128);
            reference.credit(t, AAPL, SHARES_EACH as i128);
        }
        Pair {
            w,
            reference,
            traders,
            accepted: Vec::new(),
            coverage: Coverage::default(),
        }
    }

    fn target(&self, target: Target) -> OrderId {
        let open: Vec<u64> = self
            .reference
            .bids
            .iter()
            .chain(&self.reference.asks)
            .map(|o| o.id)
            .collect();
        match target {
            Target::Open(i) if !open.is_empty() => OrderId::new(open[i as usize % open.len()]),
            Target::Past(i) if !self.accepted.is_empty() => {
                self.accepted[i as usize % self.accepted.len()]
            }
            Target::Open(_) | Target::Past(_) => OrderId::new(999_999),
            Target::Bogus(id) => OrderId::new(id),
        }
    }

    /// The acting account: the order's owner, or the given trader.
    fn actor(&self, owner: bool, trader: u32, order: OrderId) -> AccountId {
        match self.reference.find(order.get()) {
            Some(o) if owner => o.account,
            _ => self.traders[trader as usize],
        }
    }

    fn step(&mut self, op: &DOp) {
        let (kind, predicted) = match *op {
            DOp::Place {
                trader,
                side,
                order_type,
                with_price,
                tif,
                price,
                qty,
                stp,
                cid,
            } => {
                let order = NewOrder {
                    account: self.traders[trader as usize],
                    product: P,
                    side,
                    order_type,
                    price: with_price.then_some(Price::from_ticks(price)),
                    qty: Qty::from_lots(qty),
                    time_in_force: tif,
                    self_trade: stp,
                    client_order_id: cid.map(|c| ClientOrderId::new(&format!("c{c}")).unwrap()),
                };
                (CommandKind::PlaceOrder(order), self.reference.place(&order))
            }
            DOp::Cancel {
                owner,
                trader,
                target,
            } => {
                let order = self.target(target);
                let account = self.actor(owner, trader, order);
                (
                    CommandKind::CancelOrder { account, order },
                    self.reference.cancel(account, order),
                )
            }
            DOp::Amend {
                owner,
                trader,
                target,
                qty,
                relative,
                price,
            } => {
                let order = self.target(target);
                let account = self.actor(owner, trader, order);
                let old = self.reference.find(order.get()).cloned();
                let qty = if relative {
                    old.as_ref().map_or(1, |o| o.remaining) + qty
                } else {
                    qty
                };
                let price = match price {
                    DPrice::Keep => None,
                    DPrice::Same => Some(Price::from_ticks(old.map_or(MID, |o| o.price))),
                    DPrice::At(p) => Some(Price::from_ticks(p)),
                };
                let amend = AmendOrder {
                    account,
                    order,
                    qty: Qty::from_lots(qty),
                    price,
                };
                (CommandKind::AmendOrder(amend), self.reference.amend(&amend))
            }
        };
        let description = format!("{kind:?}");
        let got = self.w.apply(kind).map(|events| project(&events));
        assert_eq!(got, predicted, "engine vs reference on {description}");
        match &got {
            Ok(events) => {
                for e in events {
                    match e {
                        Ev::Accepted { id, .. } => self.accepted.push(OrderId::new(*id)),
                        Ev::Fill { .. } => self.coverage.fills += 1,
                        Ev::Cancelled {
                            reason: CancelReason::SelfTrade,
                            ..
                        } => self.coverage.self_trade_cancels += 1,
                        Ev::Rested {
                            priority_kept: true,
                            ..
                        } => self.coverage.kept_priority += 1,
                        _ => {}
                    }
                }
            }
            Err(reject) => {
                *self
                    .coverage
                    .rejects
                    .entry(format!("{reject:?}"))
                    .or_default() += 1
            }
        }
        self.compare_state(&description);
    }

    fn compare_state(&mut self, description: &str) {
        for side in [Side::Buy, Side::Sell] {
            let got: Vec<(u64, AccountId, i64, i64, Option<ClientOrderId>)> = self
                .w
                .engine
                .book_orders(P, side)
                .iter()
                .map(|o| {
                    (
                        o.id.get(),
                        o.account,
                        o.price.ticks(),
                        o.remaining.lots(),
                        o.client_order_id,
                    )
                })
                .collect();
            let want: Vec<(u64, AccountId, i64, i64, Option<ClientOrderId>)> = self
                .reference
                .side(side)
                .iter()
                .map(|o| (o.id, o.account, o.price, o.remaining, o.cid))
                .collect();
            assert_eq!(got, want, "{side:?} book after {description}");
            self.coverage.max_depth = self.coverage.max_depth.max(got.len());
        }
        for account in std::iter::once(AccountId::FEES).chain(self.traders.iter().copied()) {
            for asset in [USD, AAPL] {
                let want = self
                    .reference
                    .totals
                    .get(&(account, asset))
                    .copied()
                    .unwrap_or(0);
                let got = self.w.engine.balance(account, asset).total() as i128;
                assert_eq!(
                    got, want,
                    "total of {account} in {asset} after {description}"
                );
            }
        }
    }
}

fn seeded(seed: u64, n: usize) -> Vec<DOp> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8] = 0xd1;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let strategy = d_op();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("strategy").current())
        .collect()
}

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    /// Random streams: the engine and the reference agree after every command.
    #[test]
    fn the_engine_matches_like_the_reference(ops in prop::collection::vec(d_op(), 1..250)) {
        let mut pair = Pair::new();
        for op in &ops {
            pair.step(op);
        }
    }
}

/// Long seeded streams, where books get deep; they must have exercised every path.
#[test]
fn long_streams_match_the_reference() {
    for seed in 1..=8u64 {
        let mut pair = Pair::new();
        for op in seeded(seed, 5_000) {
            pair.step(&op);
        }
        let c = &pair.coverage;
        assert!(
            c.fills > 600 && c.self_trade_cancels > 100 && c.kept_priority > 50,
            "seed {seed}: {c:?}"
        );
        assert!(
            c.max_depth >= 10,
            "seed {seed}: books stayed shallow: {c:?}"
        );
        for reason in [
            "WouldTakeLiquidity",
            "FillOrKillUnfillable",
            "UnknownOrder",
            "NothingToAmend",
            "InvalidQuantity",
            "InvalidPrice",
            "InvalidPriceForOrderType",
            "InvalidTimeInForce",
            "DuplicateClientOrderId",
        ] {
            assert!(
                c.rejects.get(reason).copied().unwrap_or(0) > 0,
                "seed {seed}: no {reason}: {c:?}"
            );
        }
    }
}

/// The reference itself, on a hand-checked case, so that agreement means something.
#[test]
fn the_reference_follows_price_time_priority_and_self_trade_rules() {
    let mut r = Reference {
        next_id: 1,
        ..Reference::default()
    };
    let (a, b, c) = (AccountId::new(1), AccountId::new(2), AccountId::new(3));
    let order = |account, side, price, qty, tif, stp| NewOrder {
        account,
        product: P,
        side,
        order_type: OrderType::Limit,
        price: Some(Price::from_ticks(price)),
        qty: Qty::from_lots(qty),
        time_in_force: tif,
        self_trade: stp,
        client_order_id: None,
    };
    let cr = SelfTradePrevention::CancelResting;
    r.place(&order(a, Side::Sell, 1_001, 3, TimeInForce::Gtc, cr))
        .unwrap(); // 1
    r.place(&order(b, Side::Sell, 1_000, 2, TimeInForce::Gtc, cr))
        .unwrap(); // 2
    r.place(&order(c, Side::Sell, 1_000, 4, TimeInForce::Gtc, cr))
        .unwrap(); // 3
    assert_eq!(
        r.asks.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![2, 3, 1]
    );
    assert_eq!(
        r.place(&order(a, Side::Buy, 1_000, 1, TimeInForce::PostOnly, cr)),
        Err(Reject::WouldTakeLiquidity)
    );
    assert_eq!(
        r.place(&order(a, Side::Buy, 1_000, 7, TimeInForce::Fok, cr)),
        Err(Reject::FillOrKillUnfillable)
    );
    // B buys through its own order 2 (cancelled), fills 4 from 3 and 1 from 1, rests 0.
    let events = r
        .place(&order(b, Side::Buy, 1_001, 5, TimeInForce::Gtc, cr))
        .unwrap();
    let fills: Vec<(u64, i64, i64)> = events
        .iter()
        .filter_map(|e| {
            if let Ev::Fill {
                maker, price, qty, ..
            } = e
            {
                Some((*maker, *price, *qty))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(fills, vec![(3, 1_000, 4), (1, 1_001, 1)]);
    assert!(events.contains(&Ev::Cancelled {
        id: 2,
        account: b,
        remaining: 2,
        reason: CancelReason::SelfTrade
    }));
    assert_eq!(
        r.asks
            .iter()
            .map(|o| (o.id, o.remaining))
            .collect::<Vec<_>>(),
        vec![(1, 2)]
    );
    // Cancel-incoming against its own best ask stops at once.
    let events = r
        .place(&order(
            a,
            Side::Buy,
            1_001,
            1,
            TimeInForce::Gtc,
            SelfTradePrevention::CancelIncoming,
        ))
        .unwrap();
    assert_eq!(
        events.last(),
        Some(&Ev::Cancelled {
            id: 5,
            account: a,
            remaining: 1,
            reason: CancelReason::SelfTrade
        })
    );
    // Fees: 4 * 1000 = 4000 notional: 4 maker, 8 taker.
    assert_eq!(r.totals[&(AccountId::FEES, USD)], 4 + 8 + 2 + 3);
}
