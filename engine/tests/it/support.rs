//! A small world for tests: an engine, a command counter and shorthand for common commands.

#![allow(dead_code)]

use bourse_engine::*;

pub const T0: i64 = 1_700_000_000_000;
pub const DAY_MS: i64 = 86_400_000;
pub const USD: AssetId = AssetId::new(0);
pub const AAPL: AssetId = AssetId::new(1);
pub const P: ProductId = ProductId::new(0);
/// Maker 0.1%, taker 0.2%.
pub const MAKER_PPM: u32 = 1_000;
pub const TAKER_PPM: u32 = 2_000;

/// An engine with USD (2 decimals), AAPL (whole shares) and the product AAPL/USD with a tick of
/// 0.01 and a lot of 1 share.
pub struct World {
    pub engine: Engine,
    pub seq: u64,
    pub now_ms: i64,
    pub events: Vec<Event>,
}

impl World {
    pub fn new() -> World {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> World {
        Self::with_fees(limits, FeeSchedule::flat(MAKER_PPM, TAKER_PPM).unwrap())
    }

    pub fn with_fees(limits: Limits, fees: FeeSchedule) -> World {
        let mut w = World {
            engine: Engine::new(limits),
            seq: 0,
            now_ms: T0,
            events: Vec::new(),
        };
        w.ok(CommandKind::AddAsset {
            code: AssetCode::new("USD").unwrap(),
            scale: 2,
        });
        w.ok(CommandKind::AddAsset {
            code: AssetCode::new("AAPL").unwrap(),
            scale: 0,
        });
        w.ok(CommandKind::add_product(AddProduct {
            symbol: Symbol::new("AAPL").unwrap(),
            name: "Apple Inc.".into(),
            base: AAPL,
            quote: USD,
            price_scale: 2,
            tick_size: 1,
            qty_scale: 0,
            lot_size: 1,
            fees,
        }));
        w
    }

    /// Applies a command; returns the events it emitted (also kept in `self.events`).
    pub fn apply(&mut self, kind: CommandKind) -> Result<Vec<Event>, Reject> {
        self.seq += 1;
        let mut out = Vec::new();
        let result = self.engine.apply(
            &Command {
                seq: self.seq,
                timestamp_ms: self.now_ms,
                kind,
            },
            &mut out,
        );
        if result.is_err() {
            assert!(out.is_empty(), "a rejected command emitted events");
        }
        self.events.extend_from_slice(&out);
        result.map(|()| out)
    }

    pub fn ok(&mut self, kind: CommandKind) -> Vec<Event> {
        match self.apply(kind.clone()) {
            Ok(events) => events,
            Err(reject) => panic!("{kind:?} rejected: {reject:?}"),
        }
    }

    /// Applies a command that must be rejected, and checks that the state hash did not move.
    pub fn rejected(&mut self, kind: CommandKind) -> Reject {
        let before = self.engine.state_hash();
        let reject = self.apply(kind.clone()).expect_err("command was accepted");
        assert_eq!(
            before,
            self.engine.state_hash(),
            "rejected {kind:?} changed the state"
        );
        reject
    }

    /// A verified account, funded with `usd` minor units and `shares` AAPL.
    pub fn trader(&mut self, usd: i64, shares: i64) -> AccountId {
        let account = AccountId::new(self.engine.n_accounts() as u32);
        self.ok(create_account(
            &format!("trader-{}", account.get()),
            ProfileStatus::Verified,
        ));
        if usd > 0 {
            self.deposit(account, USD, usd);
        }
        if shares > 0 {
            self.deposit(account, AAPL, shares);
        }
        account
    }

    pub fn deposit(&mut self, account: AccountId, asset: AssetId, amount: i64) -> Vec<Event> {
        let id = format!("dep-{}", self.seq + 1);
        self.ok(CommandKind::Deposit(funds(account, asset, amount, &id)))
    }

    pub fn limit(
        &mut self,
        account: AccountId,
        side: Side,
        price: i64,
        qty: i64,
    ) -> Result<Vec<Event>, Reject> {
        self.apply(CommandKind::PlaceOrder(limit_order(
            account,
            side,
            price,
            qty,
            TimeInForce::Gtc,
        )))
    }

    /// Places a GTC limit order that must be accepted; returns its id.
    pub fn rest(&mut self, account: AccountId, side: Side, price: i64, qty: i64) -> OrderId {
        let events = self
            .limit(account, side, price, qty)
            .expect("order accepted");
        accepted_id(&events)
    }

    pub fn market(
        &mut self,
        account: AccountId,
        side: Side,
        qty: i64,
    ) -> Result<Vec<Event>, Reject> {
        self.apply(CommandKind::PlaceOrder(NewOrder {
            order_type: OrderType::Market,
            price: None,
            time_in_force: TimeInForce::Ioc,
            ..limit_order(account, side, 1, qty, TimeInForce::Ioc)
        }))
    }

    pub fn cancel(&mut self, account: AccountId, order: OrderId) -> Result<Vec<Event>, Reject> {
        self.apply(CommandKind::CancelOrder { account, order })
    }

    pub fn amend(
        &mut self,
        account: AccountId,
        order: OrderId,
        qty: i64,
        price: Option<i64>,
    ) -> Result<Vec<Event>, Reject> {
        self.apply(CommandKind::AmendOrder(AmendOrder {
            account,
            order,
            qty: Qty::from_lots(qty),
            price: price.map(Price::from_ticks),
        }))
    }

    pub fn usd(&self, account: AccountId) -> Balance {
        self.engine.balance(account, USD)
    }

    pub fn shares(&self, account: AccountId) -> Balance {
        self.engine.balance(account, AAPL)
    }

    /// (price, qty) per level, best first.
    pub fn levels(&self, side: Side) -> Vec<(i64, i64)> {
        self.engine
            .book_levels(P, side)
            .map(|l| (l.price.ticks(), l.qty.lots()))
            .collect()
    }
}

pub fn create_account(name: &str, status: ProfileStatus) -> CommandKind {
    CommandKind::create_account(CreateAccount {
        name: name.into(),
        proof: "passport:X1234567".into(),
        currency_preference: AssetCode::new("USD").unwrap(),
        token_hash: TokenHash([1; 32]),
        initial_status: status,
    })
}

pub fn funds(account: AccountId, asset: AssetId, amount: i64, request_id: &str) -> FundsRequest {
    FundsRequest {
        account,
        asset,
        amount: Amount::from_minor(amount),
        request_id: RequestId::new(request_id).unwrap(),
        method: FundsMethod::Unspecified,
    }
}

pub fn limit_order(
    account: AccountId,
    side: Side,
    price: i64,
    qty: i64,
    tif: TimeInForce,
) -> NewOrder {
    NewOrder {
        account,
        product: P,
        side,
        order_type: OrderType::Limit,
        price: Some(Price::from_ticks(price)),
        qty: Qty::from_lots(qty),
        time_in_force: tif,
        self_trade: SelfTradePrevention::CancelResting,
        client_order_id: None,
    }
}

pub fn accepted_id(events: &[Event]) -> OrderId {
    events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::OrderAccepted { order, .. } => Some(order),
            _ => None,
        })
        .expect("an OrderAccepted event")
}

/// The fills among `events`: (maker, taker, price, qty, maker_fee, taker_fee).
pub fn fills(events: &[Event]) -> Vec<(OrderId, OrderId, i64, i64, i64, i64)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Fill {
                maker_order,
                taker_order,
                price,
                qty,
                maker_fee,
                taker_fee,
                ..
            } => Some((
                maker_order,
                taker_order,
                price.ticks(),
                qty.lots(),
                maker_fee.minor(),
                taker_fee.minor(),
            )),
            _ => None,
        })
        .collect()
}

pub fn cancels(events: &[Event]) -> Vec<(OrderId, i64, CancelReason)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::OrderCancelled {
                order,
                remaining,
                reason,
                ..
            } => Some((order, remaining.lots(), reason)),
            _ => None,
        })
        .collect()
}
