//! The throughput benchmark's Bourse commands as a stream: what [`BourseVenue`] gives its
//! engine, built one command at a time against a live engine (an accepted `PlaceOrder` gets
//! the next engine order id, which later cancels and moves name). `replay_bench` journals
//! them; `latency` submits them to the pipeline.

use bourse_engine::{
    AccountId, AddProduct, AmendOrder, Amount, AssetCode, Command, CommandKind, CreateAccount,
    Engine, FeeSchedule, FundsRequest, Limits, NewOrder, OrderId, OrderType, Price, ProfileStatus,
    Qty, RequestId, SelfTradePrevention, Symbol, TimeInForce, TokenHash,
};
use bourse_store::replay::DiscardEvents;

use crate::mix::{Op, Side};
use crate::venues::{BourseVenue, FUNDS_SHARES, FUNDS_USD_MINOR, PRODUCT, T0_MS, USD, XYZ};

/// Builds the throughput benchmark's Bourse commands one at a time, applying each to a live
/// engine (an accepted `PlaceOrder` gets the next engine order id, which later cancels and
/// moves name), and hands each to `out`.
pub struct Live {
    pub engine: Engine,
    sink: DiscardEvents,
    /// The sequence number of the last command built.
    pub seq: u64,
    next_order_id: u64,
    /// Engine order id by generator id.
    ids: Vec<u64>,
    /// Commands the live engine rejected.
    pub rejected: u64,
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Live {
            engine: Engine::new(Limits::default()),
            sink: DiscardEvents,
            seq: 0,
            next_order_id: 1,
            ids: Vec::new(),
            rejected: 0,
        }
    }

    /// Applies the next command; `true` if the engine accepted it.
    pub fn command(&mut self, kind: CommandKind, out: &mut impl FnMut(&Command)) -> bool {
        self.seq += 1;
        let command = Command {
            seq: self.seq,
            // As in `BourseVenue`: one command per microsecond of engine time.
            timestamp_ms: T0_MS + (self.seq / 1_000) as i64,
            kind,
        };
        out(&command);
        let accepted = self.engine.apply(&command, &mut self.sink).is_ok();
        self.rejected += u64::from(!accepted);
        accepted
    }

    /// The setup: two assets, one product, then per user an account and two deposits.
    pub fn setup(&mut self, users: u32, out: &mut impl FnMut(&Command)) {
        let code = |s: &str| AssetCode::new(s).expect("asset code");
        let mut must = |this: &mut Self, kind: CommandKind| {
            assert!(this.command(kind, out), "setup command rejected");
        };
        must(
            self,
            CommandKind::AddAsset {
                code: code("USD"),
                scale: 2,
            },
        );
        must(
            self,
            CommandKind::AddAsset {
                code: code("XYZ"),
                scale: 0,
            },
        );
        must(
            self,
            CommandKind::add_product(AddProduct {
                symbol: Symbol::new("XYZ").expect("symbol"),
                name: "Benchmark Corp.".into(),
                base: XYZ,
                quote: USD,
                price_scale: 2,
                tick_size: 1,
                qty_scale: 0,
                lot_size: 1,
                fees: FeeSchedule::flat(1_000, 2_000).expect("fees"),
            }),
        );
        for user in 0..users {
            must(
                self,
                CommandKind::create_account(CreateAccount {
                    name: format!("user-{user}"),
                    proof: "passport:BENCH".into(),
                    currency_preference: code("USD"),
                    token_hash: TokenHash([7; 32]),
                    initial_status: ProfileStatus::Verified,
                }),
            );
            let account = BourseVenue::account(user);
            for (asset, amount, rid) in [(USD, FUNDS_USD_MINOR, "usd"), (XYZ, FUNDS_SHARES, "xyz")]
            {
                must(
                    self,
                    CommandKind::Deposit(FundsRequest {
                        account,
                        asset,
                        amount: Amount::from_minor(amount),
                        request_id: RequestId::new(rid).expect("request id"),
                    }),
                );
            }
        }
    }

    pub fn engine_id(&self, id: u32) -> OrderId {
        OrderId::new(self.ids.get(id as usize).copied().unwrap_or(0))
    }

    /// The op as `BourseVenue::apply` turns it into a command.
    pub fn op(&mut self, op: &Op, out: &mut impl FnMut(&Command)) {
        let account = |user| -> AccountId { BourseVenue::account(user) };
        match *op {
            Op::Place {
                user,
                id,
                side,
                price_ticks,
                qty,
                ioc,
            } => {
                let kind = CommandKind::PlaceOrder(NewOrder {
                    account: account(user),
                    product: PRODUCT,
                    side: match side {
                        Side::Buy => bourse_engine::Side::Buy,
                        Side::Sell => bourse_engine::Side::Sell,
                    },
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
                });
                if self.command(kind, out) {
                    let idx = id as usize;
                    if idx >= self.ids.len() {
                        self.ids.resize(idx + 1, 0);
                    }
                    self.ids[idx] = self.next_order_id;
                    self.next_order_id += 1;
                }
            }
            Op::Cancel { user, id } => {
                let kind = CommandKind::CancelOrder {
                    account: account(user),
                    order: self.engine_id(id),
                };
                self.command(kind, out);
            }
            Op::Move {
                user,
                id,
                new_price,
                remaining,
            } => {
                let kind = CommandKind::AmendOrder(AmendOrder {
                    account: account(user),
                    order: self.engine_id(id),
                    qty: Qty::from_lots(remaining),
                    price: Some(Price::from_ticks(new_price)),
                });
                self.command(kind, out);
            }
        }
    }
}
