//! A seeded, realistic command stream for cross-crate tests: 300 accounts, two products (a
//! share with tiered fees, a coin with lots of 0.001), limit and market orders of every time
//! in force, cancels, amendments, deposits and withdrawals (some repeated), halts and profile
//! changes, and a share of commands the engine rejects. The generator learns which orders are
//! open from the engine's events ([`Generator::observe`]), so most cancels and amendments hit
//! real orders; fed the same events it makes the same commands, which is what lets a test
//! rebuild the expected state of a crashed process from the seed alone.

use std::collections::HashMap;

use bourse_engine::*;

pub const T0: i64 = 1_700_000_000_000;
pub const N_ACCOUNTS: u32 = 300;

pub const USD: AssetId = AssetId::new(0);
pub const AAPL: AssetId = AssetId::new(1);
pub const BTC: AssetId = AssetId::new(2);
/// AAPL/USD: ticks of 0.01 USD, lots of one share.
pub const P_AAPL: ProductId = ProductId::new(0);
/// BTC-USD: ticks of 10 USD, lots of 0.001 BTC.
pub const P_BTC: ProductId = ProductId::new(1);
pub const PRODUCTS: [ProductId; 2] = [P_AAPL, P_BTC];
/// Where each product's prices start, in ticks.
pub const START_MID: [i64; 2] = [18_925, 6_000];

/// SplitMix64: small, fast and good enough to drive a test.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True `percent`% of the time.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Makes the next command from the PRNG and what the engine has said so far (open orders, used
/// request ids), so that most commands hit real targets and some are rejected.
pub struct Generator {
    rng: SplitMix64,
    seq: u64,
    now_ms: i64,
    mid: [i64; 2],
    /// Open orders with their owner and product, and each one's index in `open`.
    open: Vec<(OrderId, AccountId, ProductId)>,
    open_index: HashMap<OrderId, usize>,
    next_request: u64,
    next_cid: u64,
    last_deposit: Option<FundsRequest>,
    halted: [bool; 2],
    unverified: Vec<AccountId>,
    pending: Vec<CommandKind>,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut pending = vec![
            CommandKind::AddAsset {
                code: AssetCode::new("USD").unwrap(),
                scale: 2,
            },
            CommandKind::AddAsset {
                code: AssetCode::new("AAPL").unwrap(),
                scale: 0,
            },
            CommandKind::AddAsset {
                code: AssetCode::new("BTC").unwrap(),
                scale: 8,
            },
            CommandKind::add_product(AddProduct {
                symbol: Symbol::new("AAPL").unwrap(),
                name: "Apple Inc.".into(),
                base: AAPL,
                quote: USD,
                price_scale: 2,
                tick_size: 1,
                qty_scale: 0,
                lot_size: 1,
                fees: FeeSchedule::new(&[
                    FeeTier {
                        volume_min: 0,
                        maker_ppm: 1_000,
                        taker_ppm: 2_000,
                    },
                    FeeTier {
                        volume_min: 50_000_000,
                        maker_ppm: 500,
                        taker_ppm: 1_500,
                    },
                    FeeTier {
                        volume_min: 500_000_000,
                        maker_ppm: 0,
                        taker_ppm: 1_000,
                    },
                ])
                .unwrap(),
            }),
            CommandKind::add_product(AddProduct {
                symbol: Symbol::new("BTC-USD").unwrap(),
                name: "Bitcoin".into(),
                base: BTC,
                quote: USD,
                price_scale: 0,
                tick_size: 10,
                qty_scale: 3,
                lot_size: 1,
                fees: FeeSchedule::flat(800, 1_600).unwrap(),
            }),
        ];
        for i in 1..=N_ACCOUNTS {
            pending.push(CommandKind::create_account(CreateAccount {
                name: format!("Trader {i}"),
                proof: format!("passport:{i:06}"),
                currency_preference: AssetCode::new("USD").unwrap(),
                token_hash: TokenHash([i as u8; 32]),
                initial_status: ProfileStatus::Verified,
            }));
        }
        let mut g = Generator {
            rng: SplitMix64(seed),
            seq: 0,
            now_ms: T0,
            mid: START_MID,
            open: Vec::new(),
            open_index: HashMap::new(),
            next_request: 0,
            next_cid: 0,
            last_deposit: None,
            halted: [false; 2],
            unverified: Vec::new(),
            pending: Vec::new(),
        };
        for i in 1..=N_ACCOUNTS {
            let account = AccountId::new(i);
            // 100,000 USD, 2,000 shares, 5 BTC.
            for (asset, amount) in [(USD, 10_000_000), (AAPL, 2_000), (BTC, 500_000_000)] {
                let request = g.funds(account, asset, amount);
                pending.push(CommandKind::Deposit(request));
            }
        }
        pending.reverse();
        g.pending = pending;
        g
    }

    fn funds(&mut self, account: AccountId, asset: AssetId, amount: i64) -> FundsRequest {
        self.next_request += 1;
        FundsRequest {
            account,
            asset,
            amount: Amount::from_minor(amount),
            request_id: RequestId::new(&format!("r-{}", self.next_request)).unwrap(),
            // Every method, so that journals carry both funds encodings.
            method: match self.next_request % 4 {
                0 => FundsMethod::Unspecified,
                1 => {
                    let digits = format!("{:04}", self.next_request % 10_000);
                    FundsMethod::Card(CardLast4::new(digits.as_bytes()).unwrap())
                }
                2 => FundsMethod::Upi,
                _ => FundsMethod::Bank,
            },
        }
    }

    fn account(&mut self) -> AccountId {
        AccountId::new(1 + self.rng.below(N_ACCOUNTS as u64) as u32)
    }

    /// Commands of the set-up (assets, products, accounts and their first deposits) still to
    /// come before the trading mix.
    pub fn setup_left(&self) -> usize {
        self.pending.len()
    }

    pub fn next_command(&mut self) -> Command {
        self.seq += 1;
        self.now_ms += self.rng.range(0, 1_500);
        let kind = match self.pending.pop() {
            Some(kind) => kind,
            None => self.next_kind(),
        };
        Command {
            seq: self.seq,
            timestamp_ms: self.now_ms,
            kind,
        }
    }

    fn next_kind(&mut self) -> CommandKind {
        let p = self.rng.below(2) as usize;
        if self.halted[p] && self.rng.chance(10) {
            self.halted[p] = false;
            return CommandKind::SetProductStatus {
                product: PRODUCTS[p],
                status: ProductStatus::Trading,
            };
        }
        // Accounts set back to pending are verified again soon.
        if self.rng.chance(10)
            && let Some(account) = self.unverified.pop()
        {
            return CommandKind::SetProfileStatus {
                account,
                status: ProfileStatus::Verified,
            };
        }
        if self.rng.chance(10) {
            self.mid[p] = (self.mid[p] + self.rng.range(-2, 2)).clamp(100, 100_000);
        }
        // Cancel more when the books grow.
        let cancel_pct = if self.open.len() > 4_000 { 45 } else { 18 };
        let roll = self.rng.below(100);
        let cancel_from = 100 - cancel_pct;
        if roll >= cancel_from {
            return self.cancel();
        }
        match roll {
            0..=41 => self.limit_order(p),
            42..=49 => self.market_order(p),
            50..=61 => self.amend(p),
            62..=66 => self.deposit(),
            67..=71 => self.withdraw(),
            _ => self.odd_one(p),
        }
    }

    fn limit_order(&mut self, p: usize) -> CommandKind {
        let side = if self.rng.chance(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        // Mostly on the passive side of the mid, sometimes through it.
        let offset = self.rng.range(-3, 25);
        let price = match side {
            Side::Buy => self.mid[p] - offset,
            Side::Sell => self.mid[p] + offset,
        };
        let time_in_force = match self.rng.below(20) {
            0 => TimeInForce::Ioc,
            1 => TimeInForce::Fok,
            2 => TimeInForce::PostOnly,
            _ => TimeInForce::Gtc,
        };
        let client_order_id = if self.rng.chance(20) {
            self.next_cid += 1;
            // Reused now and then: a clash with an open order, or with a key in the
            // order-key window and another body, is rejected; the same body is a duplicate.
            let n = if self.rng.chance(5) {
                self.next_cid / 2
            } else {
                self.next_cid
            };
            ClientOrderId::new(&format!("c-{n}"))
        } else {
            None
        };
        CommandKind::PlaceOrder(NewOrder {
            account: self.account(),
            product: PRODUCTS[p],
            side,
            order_type: OrderType::Limit,
            price: Some(Price::from_ticks(price)),
            qty: Qty::from_lots(self.rng.range(1, 40)),
            time_in_force,
            self_trade: self.stp(),
            client_order_id,
        })
    }

    fn stp(&mut self) -> SelfTradePrevention {
        match self.rng.below(10) {
            0 => SelfTradePrevention::CancelIncoming,
            1 => SelfTradePrevention::CancelBoth,
            _ => SelfTradePrevention::CancelResting,
        }
    }

    fn market_order(&mut self, p: usize) -> CommandKind {
        CommandKind::PlaceOrder(NewOrder {
            account: self.account(),
            product: PRODUCTS[p],
            side: if self.rng.chance(50) {
                Side::Buy
            } else {
                Side::Sell
            },
            order_type: OrderType::Market,
            price: None,
            qty: Qty::from_lots(self.rng.range(1, 30)),
            time_in_force: TimeInForce::Ioc,
            self_trade: self.stp(),
            client_order_id: None,
        })
    }

    fn pick_open(&mut self) -> Option<(OrderId, AccountId, ProductId)> {
        if self.open.is_empty() {
            return None;
        }
        let i = self.rng.below(self.open.len() as u64) as usize;
        Some(self.open[i])
    }

    fn cancel(&mut self) -> CommandKind {
        match self.pick_open() {
            // Now and then by someone else (rejected).
            Some((order, owner, _)) if self.rng.chance(97) => CommandKind::CancelOrder {
                account: owner,
                order,
            },
            Some((order, _, _)) => CommandKind::CancelOrder {
                account: self.account(),
                order,
            },
            None => CommandKind::CancelOrder {
                account: self.account(),
                order: OrderId::new(self.rng.range(1, 1_000_000) as u64),
            },
        }
    }

    fn amend(&mut self, p: usize) -> CommandKind {
        let Some((order, account, product)) = self.pick_open() else {
            return self.limit_order(p);
        };
        let p = if product == P_AAPL { 0 } else { 1 };
        let price = if self.rng.chance(50) {
            Some(Price::from_ticks(self.mid[p] + self.rng.range(-20, 20)))
        } else {
            None
        };
        CommandKind::AmendOrder(AmendOrder {
            account,
            order,
            qty: Qty::from_lots(self.rng.range(1, 45)),
            price,
        })
    }

    fn deposit(&mut self) -> CommandKind {
        if let Some(last) = self.last_deposit
            && self.rng.chance(10)
        {
            // A repeat (a duplicate), or the same id with another body (rejected).
            let mut again = last;
            if self.rng.chance(30) {
                again.amount = Amount::from_minor(last.amount.minor() + 1);
            }
            return CommandKind::Deposit(again);
        }
        let account = self.account();
        let (asset, amount) = match self.rng.below(3) {
            0 => (USD, self.rng.range(1, 5_000_000)),
            1 => (AAPL, self.rng.range(1, 500)),
            _ => (BTC, self.rng.range(1, 100_000_000)),
        };
        let request = self.funds(account, asset, amount);
        self.last_deposit = Some(request);
        CommandKind::Deposit(request)
    }

    fn withdraw(&mut self) -> CommandKind {
        let account = self.account();
        // Sometimes far more than anyone holds (rejected).
        let (asset, amount) = match self.rng.below(4) {
            0 => (USD, self.rng.range(1, 2_000_000)),
            1 => (AAPL, self.rng.range(1, 300)),
            2 => (BTC, self.rng.range(1, 50_000_000)),
            _ => (USD, 1_000_000_000_000),
        };
        CommandKind::Withdraw(self.funds(account, asset, amount))
    }

    /// Rare commands and malformed ones.
    fn odd_one(&mut self, p: usize) -> CommandKind {
        let account = self.account();
        match self.rng.below(10) {
            0 => CommandKind::AddBookmark {
                account,
                product: PRODUCTS[p],
            },
            1 => CommandKind::RemoveBookmark {
                account,
                product: PRODUCTS[p],
            },
            2 if self.rng.chance(10) => {
                // Halt a product for a while, or resume it.
                self.halted[p] = !self.halted[p];
                CommandKind::SetProductStatus {
                    product: PRODUCTS[p],
                    status: if self.halted[p] {
                        ProductStatus::Halted
                    } else {
                        ProductStatus::Trading
                    },
                }
            }
            3 => {
                // A negative or zero price, or no price at all on a limit order.
                let mut order = match self.limit_order(p) {
                    CommandKind::PlaceOrder(order) => order,
                    _ => unreachable!(),
                };
                order.price = match self.rng.below(3) {
                    0 => Some(Price::from_ticks(-self.rng.range(0, 100))),
                    1 => Some(Price::from_ticks(PRICE_TICKS_MAX + 1)),
                    _ => None,
                };
                CommandKind::PlaceOrder(order)
            }
            4 => {
                // A bad quantity, an unknown account or an unknown product.
                let mut order = match self.limit_order(p) {
                    CommandKind::PlaceOrder(order) => order,
                    _ => unreachable!(),
                };
                match self.rng.below(3) {
                    0 => order.qty = Qty::from_lots(-self.rng.range(0, 5)),
                    1 => order.account = AccountId::new(N_ACCOUNTS + 1 + self.rng.below(9) as u32),
                    _ => order.product = ProductId::new(7),
                }
                CommandKind::PlaceOrder(order)
            }
            5 if self.rng.chance(20) => {
                // Back to pending for a while (or already verified: rejected as unchanged).
                let status = if self.rng.chance(50) {
                    self.unverified.push(account);
                    ProfileStatus::Pending
                } else {
                    ProfileStatus::Verified
                };
                CommandKind::SetProfileStatus { account, status }
            }
            6 => CommandKind::Deposit(FundsRequest {
                amount: Amount::from_minor(-self.rng.range(0, 10)),
                ..self.funds(account, USD, 1)
            }),
            7 => CommandKind::AmendOrder(AmendOrder {
                account,
                order: OrderId::new(u64::MAX - self.rng.below(10)),
                qty: Qty::from_lots(1),
                price: None,
            }),
            _ => self.limit_order(p),
        }
    }

    /// Learns which orders are open from the events.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            match event.kind {
                EventKind::OrderRested {
                    order,
                    account,
                    product,
                    ..
                } => self.track(order, account, product),
                EventKind::OrderCancelled { order, .. } => self.close(order),
                EventKind::Fill {
                    maker_order,
                    maker_remaining,
                    taker_order,
                    taker_remaining,
                    ..
                } => {
                    if maker_remaining == Qty::ZERO {
                        self.close(maker_order);
                    }
                    // An amended order that crossed the book fills as a taker.
                    if taker_remaining == Qty::ZERO {
                        self.close(taker_order);
                    }
                }
                _ => {}
            }
        }
    }

    /// An amended order rests again under the same id: tracked once.
    fn track(&mut self, order: OrderId, account: AccountId, product: ProductId) {
        if !self.open_index.contains_key(&order) {
            self.open_index.insert(order, self.open.len());
            self.open.push((order, account, product));
        }
    }

    fn close(&mut self, order: OrderId) {
        if let Some(i) = self.open_index.remove(&order) {
            self.open.swap_remove(i);
            if let Some(&(moved, _, _)) = self.open.get(i) {
                self.open_index.insert(moved, i);
            }
        }
    }
}
