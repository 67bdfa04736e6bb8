//! Adapters that replay [`Op`]s into a venue: Bourse's engine, `matchcore` 0.4 and
//! `orderbook-rs` 0.15.
//!
//! - **Bourse** gets a real [`Command`] per op, through wallets, holds and fees: 1,000 verified
//!   accounts funded generously beforehand, one product (ticks of 0.01, lots of 1, fees 0.1%
//!   maker / 0.2% taker), events into a [`CountingSink`]. A move is `AmendOrder` with the new
//!   price and the same open quantity. The engine numbers orders itself, from 1, one per
//!   accepted `PlaceOrder`; the adapter maps generator ids to engine ids as they are assigned.
//! - **matchcore** gets its native `Command`s: submit a limit order (GTC or IOC), cancel, and a
//!   price-only amendment (native; loses time priority, matches if it crosses). Its order id is
//!   the submit's sequence number, mapped the same way. It has no accounts and no money.
//! - **orderbook-rs** gets `add_limit_order` (GTC or IOC), `cancel_order` and
//!   `update_order(UpdatePrice)` (native; internally a cancel then re-add, which matches if it
//!   crosses). Order ids are the generator's (`Id::Sequential`). The book has a `StubClock`, so
//!   it reads no wall clock, and no self-trade prevention (the default). It has no accounts and
//!   no money either.
//!
//! After a run, [`Venue::verify`] checks the venue's resting orders against the generator's
//! model (see [`crate::mix`]).

use std::sync::Arc;

use bourse_engine as be;
use bourse_engine::{
    AccountId, AddProduct, AmendOrder, AssetCode, AssetId, Command, CommandKind, CountingSink,
    CreateAccount, Engine, FeeSchedule, FundsMethod, FundsRequest, Limits, NewOrder, OrderId,
    OrderType, Price, ProductId, ProfileStatus, Qty, RequestId, SelfTradePrevention, Symbol,
    TimeInForce, TokenHash,
};

use crate::mix::{Op, RestingOrder, Side};

/// A venue that can replay the mix.
pub trait Venue {
    /// For people: the name and version.
    const NAME: &'static str;
    /// For file names and benchmark ids.
    const ID: &'static str;

    /// A fresh venue with `users` trading users (numbered from 0).
    fn new(users: u32) -> Self
    where
        Self: Sized;

    /// Applies one op. Rejections are counted, not returned.
    fn apply(&mut self, op: &Op);

    /// Rejected ops (or errors returned), by [`OpKind::index`](crate::mix::OpKind::index).
    fn errors(&self) -> [u64; 4];

    /// Checks that the venue's resting orders are exactly `expected` (id, side, price,
    /// remaining quantity).
    fn verify(&self, expected: &[RestingOrder]) -> Result<(), String>;
}

/// Grows `ids` so that `id` indexes it.
#[inline]
fn slot<T: Copy + Default>(ids: &mut Vec<T>, id: u32) -> &mut T {
    let idx = id as usize;
    if idx >= ids.len() {
        ids.resize(idx + 1, T::default());
    }
    &mut ids[idx]
}

// ----- Bourse ---------------------------------------------------------------------------------

/// The start of a UTC day, so that a run of a few million commands stays within it.
pub const T0_MS: i64 = 1_699_920_000_000;
pub const USD: AssetId = AssetId::new(0);
pub const XYZ: AssetId = AssetId::new(1);
pub const PRODUCT: ProductId = ProductId::new(0);
/// Each user's deposit: $1tn and 100bn shares (no benchmark runs out).
pub const FUNDS_USD_MINOR: i64 = 100_000_000_000_000;
pub const FUNDS_SHARES: i64 = 100_000_000_000;

/// The command for the `seq`th command of a run: one command per microsecond of engine time
/// from [`T0_MS`].
#[inline]
pub fn bourse_command(seq: u64, kind: CommandKind) -> Command {
    Command {
        seq,
        timestamp_ms: T0_MS + (seq / 1_000) as i64,
        kind,
    }
}

/// The setup [`BourseVenue::new`] applies, in order: two assets, one product, then per user an
/// account and two deposits.
pub fn bourse_setup(users: u32, mut each: impl FnMut(CommandKind)) {
    let code = |s: &str| AssetCode::new(s).expect("asset code");
    each(CommandKind::AddAsset {
        code: code("USD"),
        scale: 2,
    });
    each(CommandKind::AddAsset {
        code: code("XYZ"),
        scale: 0,
    });
    each(CommandKind::add_product(AddProduct {
        symbol: Symbol::new("XYZ").expect("symbol"),
        name: "Benchmark Corp.".into(),
        base: XYZ,
        quote: USD,
        price_scale: 2,
        tick_size: 1,
        qty_scale: 0,
        lot_size: 1,
        fees: FeeSchedule::flat(1_000, 2_000).expect("fees"),
    }));
    for user in 0..users {
        each(CommandKind::create_account(CreateAccount {
            name: format!("user-{user}"),
            proof: "passport:BENCH".into(),
            currency_preference: code("USD"),
            token_hash: TokenHash([7; 32]),
            initial_status: ProfileStatus::Verified,
        }));
        let account = BourseVenue::account(user);
        for (asset, amount, rid) in [(USD, FUNDS_USD_MINOR, "usd"), (XYZ, FUNDS_SHARES, "xyz")] {
            each(CommandKind::Deposit(FundsRequest {
                account,
                asset,
                amount: be::Amount::from_minor(amount),
                request_id: RequestId::new(rid).expect("request id"),
                method: FundsMethod::Unspecified,
            }));
        }
    }
}

/// The command kind [`BourseVenue::apply`] gives the engine for `op`: a limit `PlaceOrder`
/// (GTC or IOC), a `CancelOrder`, or an `AmendOrder` with the new price and the same open
/// quantity.
#[inline]
pub fn bourse_op(op: &Op, ids: &EngineIds) -> CommandKind {
    match *op {
        Op::Place {
            user,
            side: s,
            price_ticks,
            qty,
            ioc,
            ..
        } => CommandKind::PlaceOrder(NewOrder {
            account: BourseVenue::account(user),
            product: PRODUCT,
            side: side(s),
            order_type: OrderType::Limit,
            price: Some(Price::from_ticks(price_ticks)),
            qty: Qty::from_lots(qty),
            time_in_force: if ioc {
                TimeInForce::Ioc
            } else {
                TimeInForce::Gtc
            },
            self_trade: SelfTradePrevention::CancelResting,
            client_order_id: None,
        }),
        Op::Cancel { user, id } => CommandKind::CancelOrder {
            account: BourseVenue::account(user),
            order: ids.get(id),
        },
        Op::Move {
            user,
            id,
            new_price,
            remaining,
        } => CommandKind::AmendOrder(AmendOrder {
            account: BourseVenue::account(user),
            order: ids.get(id),
            qty: Qty::from_lots(remaining),
            price: Some(Price::from_ticks(new_price)),
        }),
    }
}

/// Engine order ids by generator id. The engine numbers orders itself, from 1, one per
/// accepted `PlaceOrder`.
pub struct EngineIds {
    /// The id the engine gives the next accepted order.
    next: u64,
    ids: Vec<u64>,
}

impl Default for EngineIds {
    fn default() -> Self {
        EngineIds {
            next: 1,
            ids: Vec::new(),
        }
    }
}

impl EngineIds {
    /// The engine's id for a generator id (0, no order, if it has none).
    #[inline]
    pub fn get(&self, id: u32) -> OrderId {
        OrderId::new(self.ids.get(id as usize).copied().unwrap_or(0))
    }

    /// After the engine accepted `op`: a `Place` takes the next engine id.
    #[inline]
    pub fn accepted(&mut self, op: &Op) {
        if let Op::Place { id, .. } = *op {
            *slot(&mut self.ids, id) = self.next;
            self.next += 1;
        }
    }
}

/// Bourse's engine with one product and funded accounts.
pub struct BourseVenue {
    pub engine: Engine,
    pub sink: CountingSink,
    seq: u64,
    ids: EngineIds,
    errors: [u64; 4],
}

impl BourseVenue {
    fn command(&mut self, kind: CommandKind) -> Result<(), be::Reject> {
        self.seq += 1;
        self.engine
            .apply(&bourse_command(self.seq, kind), &mut self.sink)
    }

    fn setup(&mut self, kind: CommandKind) {
        if let Err(reject) = self.command(kind.clone()) {
            panic!("setup command {kind:?} rejected: {reject:?}");
        }
    }

    pub fn account(user: u32) -> AccountId {
        AccountId::new(user + 1)
    }

    /// The engine's id for a generator id.
    pub fn engine_id(&self, id: u32) -> OrderId {
        self.ids.get(id)
    }
}

fn side(side: Side) -> be::Side {
    match side {
        Side::Buy => be::Side::Buy,
        Side::Sell => be::Side::Sell,
    }
}

impl Venue for BourseVenue {
    const NAME: &'static str = "Bourse (engine)";
    const ID: &'static str = "bourse";

    fn new(users: u32) -> Self {
        let mut v = BourseVenue {
            engine: Engine::new(Limits::default()),
            sink: CountingSink::default(),
            seq: 0,
            ids: EngineIds::default(),
            errors: [0; 4],
        };
        bourse_setup(users, |kind| v.setup(kind));
        v
    }

    #[inline]
    fn apply(&mut self, op: &Op) {
        let kind = bourse_op(op, &self.ids);
        if self.command(kind).is_ok() {
            self.ids.accepted(op);
        } else {
            self.errors[op.kind().index()] += 1;
        }
    }

    fn errors(&self) -> [u64; 4] {
        self.errors
    }

    fn verify(&self, expected: &[RestingOrder]) -> Result<(), String> {
        if self.engine.n_open_orders() != expected.len() {
            return Err(format!(
                "{} open orders, expected {}",
                self.engine.n_open_orders(),
                expected.len()
            ));
        }
        for e in expected {
            let view = self
                .engine
                .order(self.engine_id(e.id))
                .ok_or_else(|| format!("order {} missing", e.id))?;
            let ok = view.price.ticks() == e.price
                && view.remaining.lots() == e.remaining
                && view.side == side(e.side)
                && view.account == Self::account(e.user);
            if !ok {
                return Err(format!(
                    "order {}: engine has {view:?}, expected {e:?}",
                    e.id
                ));
            }
        }
        Ok(())
    }
}

// ----- matchcore ------------------------------------------------------------------------------

/// `matchcore::OrderBook` (book only).
pub struct MatchcoreVenue {
    pub book: matchcore::OrderBook,
    seq: u64,
    /// matchcore order id (the submit's sequence number) by generator id.
    ids: Vec<u64>,
    errors: [u64; 4],
}

impl Venue for MatchcoreVenue {
    const NAME: &'static str = "matchcore 0.4";
    const ID: &'static str = "matchcore";

    fn new(_users: u32) -> Self {
        MatchcoreVenue {
            book: matchcore::OrderBook::new("XYZ"),
            seq: 0,
            ids: Vec::new(),
            errors: [0; 4],
        }
    }

    #[inline]
    fn apply(&mut self, op: &Op) {
        use matchcore as mc;
        let seq = self.seq;
        self.seq += 1;
        let meta = mc::CommandMeta {
            sequence_number: mc::SequenceNumber(seq),
            timestamp: mc::Timestamp(seq / 1_000),
        };
        let kind = match *op {
            Op::Place {
                id,
                side,
                price_ticks,
                qty,
                ioc,
                ..
            } => {
                *slot(&mut self.ids, id) = seq;
                let side = match side {
                    Side::Buy => mc::Side::Buy,
                    Side::Sell => mc::Side::Sell,
                };
                let tif = if ioc {
                    mc::TimeInForce::Ioc
                } else {
                    mc::TimeInForce::Gtc
                };
                mc::CommandKind::Submit(mc::SubmitCmd {
                    order: mc::NewOrder::Limit(mc::LimitOrder::new(
                        mc::Price(price_ticks as u64),
                        mc::QuantityPolicy::Standard {
                            quantity: mc::Quantity(qty as u64),
                        },
                        mc::OrderFlags::new(side, false, tif),
                    )),
                })
            }
            Op::Cancel { id, .. } => mc::CommandKind::Cancel(mc::CancelCmd {
                order_id: mc::OrderId(self.ids[id as usize]),
                order_kind: mc::OrderKind::Limit,
            }),
            Op::Move { id, new_price, .. } => mc::CommandKind::Amend(mc::AmendCmd {
                order_id: mc::OrderId(self.ids[id as usize]),
                patch: mc::AmendPatch::Limit(
                    mc::LimitOrderPatch::new().with_price(mc::Price(new_price as u64)),
                ),
            }),
        };
        let outcome = self.book.execute(&mc::Command { meta, kind });
        if matches!(outcome, mc::CommandOutcome::Rejected(_)) {
            self.errors[op.kind().index()] += 1;
        }
    }

    fn errors(&self) -> [u64; 4] {
        self.errors
    }

    fn verify(&self, expected: &[RestingOrder]) -> Result<(), String> {
        let orders = self.book.limit().orders();
        if orders.len() != expected.len() {
            return Err(format!(
                "{} resting orders, expected {}",
                orders.len(),
                expected.len()
            ));
        }
        for e in expected {
            let id = matchcore::OrderId(self.ids[e.id as usize]);
            let o = orders
                .get(&id)
                .ok_or_else(|| format!("order {} missing", e.id))?;
            let side = match e.side {
                Side::Buy => matchcore::Side::Buy,
                Side::Sell => matchcore::Side::Sell,
            };
            if o.price().0 != e.price as u64
                || o.total_quantity().0 != e.remaining as u64
                || o.side() != side
            {
                return Err(format!(
                    "order {}: matchcore has {o:?}, expected {e:?}",
                    e.id
                ));
            }
        }
        Ok(())
    }
}

// ----- orderbook-rs ---------------------------------------------------------------------------

/// `orderbook_rs::OrderBook<()>` (book only).
pub struct OrderbookRsVenue {
    pub book: orderbook_rs::OrderBook<()>,
    errors: [u64; 4],
}

impl Venue for OrderbookRsVenue {
    const NAME: &'static str = "orderbook-rs 0.15";
    const ID: &'static str = "orderbook-rs";

    fn new(_users: u32) -> Self {
        let clock: Arc<dyn orderbook_rs::Clock> = Arc::new(orderbook_rs::StubClock::new());
        OrderbookRsVenue {
            book: orderbook_rs::OrderBook::with_clock("XYZ", clock),
            errors: [0; 4],
        }
    }

    #[inline]
    fn apply(&mut self, op: &Op) {
        use orderbook_rs::{Id, Side as S, TimeInForce as Tif};
        let ok = match *op {
            Op::Place {
                id,
                side,
                price_ticks,
                qty,
                ioc,
                ..
            } => {
                let side = match side {
                    Side::Buy => S::Buy,
                    Side::Sell => S::Sell,
                };
                let tif = if ioc { Tif::Ioc } else { Tif::Gtc };
                self.book
                    .add_limit_order(
                        Id::Sequential(u64::from(id)),
                        price_ticks as u128,
                        qty as u64,
                        side,
                        tif,
                        None,
                    )
                    .is_ok()
            }
            Op::Cancel { id, .. } => matches!(
                self.book.cancel_order(Id::Sequential(u64::from(id))),
                Ok(Some(_))
            ),
            Op::Move { id, new_price, .. } => self
                .book
                .update_order(pricelevel::OrderUpdate::UpdatePrice {
                    order_id: Id::Sequential(u64::from(id)),
                    new_price: pricelevel::Price::new(new_price as u128),
                })
                .is_ok(),
        };
        if !ok {
            self.errors[op.kind().index()] += 1;
        }
    }

    fn errors(&self) -> [u64; 4] {
        self.errors
    }

    fn verify(&self, expected: &[RestingOrder]) -> Result<(), String> {
        let all = self.book.get_all_orders();
        if all.len() != expected.len() {
            return Err(format!(
                "{} resting orders, expected {}",
                all.len(),
                expected.len()
            ));
        }
        for e in expected {
            let id = orderbook_rs::Id::Sequential(u64::from(e.id));
            let o = self
                .book
                .get_order(id)
                .ok_or_else(|| format!("order {} missing", e.id))?;
            let side = match e.side {
                Side::Buy => orderbook_rs::Side::Buy,
                Side::Sell => orderbook_rs::Side::Sell,
            };
            if o.price().as_u128() != e.price as u128
                || o.visible_quantity().as_u64() != e.remaining as u64
                || o.side() != side
            {
                return Err(format!(
                    "order {}: orderbook-rs has {o:?}, expected {e:?}",
                    e.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(v: &mut impl Venue, id: u32, side: Side, price: i64, qty: i64) {
        v.apply(&Op::Place {
            user: id,
            id,
            side,
            price_ticks: price,
            qty,
            ioc: false,
        });
    }

    /// Two asks (100 and 101, one lot each) and a GTC buy of 2 lots at 100: one fill at 100
    /// and one lot resting at 100 — unless the venue ignores the buy's limit.
    fn limit_respected(v: &mut impl Venue) -> Result<(), String> {
        place(v, 1, Side::Sell, 100, 1);
        place(v, 2, Side::Sell, 101, 1);
        place(v, 3, Side::Buy, 100, 2);
        let expected = [
            RestingOrder {
                id: 2,
                user: 2,
                side: Side::Sell,
                price: 101,
                remaining: 1,
            },
            RestingOrder {
                id: 3,
                user: 3,
                side: Side::Buy,
                price: 100,
                remaining: 1,
            },
        ];
        v.verify(&expected)
    }

    #[test]
    fn bourse_and_orderbook_rs_respect_a_crossing_limit() {
        limit_respected(&mut BourseVenue::new(4)).unwrap();
        limit_respected(&mut OrderbookRsVenue::new(4)).unwrap();
    }

    #[test]
    fn matchcore_sweeps_past_a_crossing_limit() {
        // matchcore 0.4.0 fills the second lot at 101 and rests nothing: the generator never
        // sends it a taker whose quantity its limit does not cover.
        let mut v = MatchcoreVenue::new(4);
        assert!(limit_respected(&mut v).is_err());
        assert!(v.book.limit().orders().is_empty());
    }
}
