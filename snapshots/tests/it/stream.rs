//! A seeded random command stream (SplitMix64): setup, then a mix of orders, cancels, amends,
//! funds requests (with repeats), bookmarks and status changes over several days.

use bourse_engine::*;

pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for tests.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const N_ACCOUNTS: u32 = 12;
pub const N_PRODUCTS: u32 = 3;
const DAY_MS: i64 = 86_400_000;

/// Generates commands and keeps the sequence number and clock.
pub struct Stream {
    rng: SplitMix64,
    seq: u64,
    timestamp_ms: i64,
    n_requests: u64,
    /// One past the newest order id seen accepted.
    next_order_id: u64,
}

impl Stream {
    pub fn new(seed: u64) -> Self {
        Stream {
            rng: SplitMix64::new(seed),
            seq: 0,
            timestamp_ms: 1_700_000_000_000,
            n_requests: 0,
            next_order_id: 1,
        }
    }

    fn command(&mut self, kind: CommandKind) -> Command {
        self.seq += 1;
        // Mostly small steps, sometimes a day or more, so the volume windows roll.
        self.timestamp_ms += match self.rng.below(200) {
            0 => DAY_MS + self.rng.below(DAY_MS as u64) as i64,
            _ => self.rng.below(60_000) as i64,
        };
        Command {
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            kind,
        }
    }

    /// Assets, products (one with fee tiers), verified accounts with deposits.
    pub fn setup(&mut self) -> Vec<Command> {
        let mut kinds = Vec::new();
        for (code, scale) in [("USD", 2), ("AAA", 0), ("BBB", 4), ("CCC", 0)] {
            kinds.push(CommandKind::AddAsset {
                code: AssetCode::new(code).unwrap(),
                scale,
            });
        }
        let tiers = FeeSchedule::new(&[
            FeeTier {
                volume_min: 0,
                maker_ppm: 1_000,
                taker_ppm: 2_500,
            },
            FeeTier {
                volume_min: 5_000_000,
                maker_ppm: 0,
                taker_ppm: 1_000,
            },
        ])
        .unwrap();
        for (i, (symbol, base, qty_scale)) in [("AAA", 1u16, 0u8), ("BBB", 2, 2), ("CCC", 3, 0)]
            .into_iter()
            .enumerate()
        {
            kinds.push(CommandKind::add_product(AddProduct {
                symbol: Symbol::new(symbol).unwrap(),
                name: format!("{symbol} Inc."),
                base: AssetId::new(base),
                quote: AssetId::new(0),
                price_scale: 2,
                // One tick on one lot must be a whole cent.
                tick_size: 10i64.pow(qty_scale as u32),
                qty_scale,
                lot_size: 1,
                fees: if i == 0 {
                    tiers
                } else {
                    FeeSchedule::flat(500, 1_500).unwrap()
                },
            }));
        }
        for a in 1..=N_ACCOUNTS {
            kinds.push(CommandKind::create_account(CreateAccount {
                name: format!("trader {a}"),
                proof: format!("passport:{a}"),
                currency_preference: AssetCode::new("USD").unwrap(),
                token_hash: TokenHash([a as u8; 32]),
                initial_status: ProfileStatus::Verified,
            }));
            for asset in 0..4u16 {
                kinds.push(self.funds(true, a, asset, 50_000_000, false));
            }
        }
        kinds.into_iter().map(|k| self.command(k)).collect()
    }

    fn funds(
        &mut self,
        deposit: bool,
        account: u32,
        asset: u16,
        amount: i64,
        may_repeat: bool,
    ) -> CommandKind {
        self.n_requests += 1;
        // Sometimes repeat an earlier id: a duplicate or a mismatch.
        let id = if may_repeat && self.rng.below(8) == 0 {
            self.rng.below(self.n_requests)
        } else {
            self.n_requests
        };
        let request = FundsRequest {
            account: AccountId::new(account),
            asset: AssetId::new(asset),
            amount: Amount::from_minor(amount),
            request_id: RequestId::new(&format!("r-{id}")).unwrap(),
            method: FundsMethod::Unspecified,
        };
        if deposit {
            CommandKind::Deposit(request)
        } else {
            CommandKind::Withdraw(request)
        }
    }

    /// One random command (it may well be rejected; that is part of the test).
    pub fn next_command(&mut self) -> Command {
        let next_order_id = self.next_order_id;
        let r = &mut self.rng;
        let account = 1 + r.below(N_ACCOUNTS as u64) as u32;
        let product = ProductId::new(r.below(N_PRODUCTS as u64) as u32);
        let roll = r.below(100);
        let recent_order = OrderId::new(next_order_id.saturating_sub(1 + r.below(40)).max(1));
        let kind = match roll {
            0..=54 => {
                let side = if r.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let market = r.below(12) == 0;
                let centre = 10_000i64;
                let offset = r.below(200) as i64 - 100;
                let tif = match r.below(10) {
                    0 => TimeInForce::Ioc,
                    1 => TimeInForce::Fok,
                    2 => TimeInForce::PostOnly,
                    _ => TimeInForce::Gtc,
                };
                let cid = (r.below(3) == 0)
                    .then(|| ClientOrderId::new(&format!("c-{}", r.below(30))).unwrap());
                CommandKind::PlaceOrder(NewOrder {
                    account: AccountId::new(account),
                    product,
                    side,
                    order_type: if market {
                        OrderType::Market
                    } else {
                        OrderType::Limit
                    },
                    price: (!market).then(|| Price::from_ticks(centre + offset)),
                    qty: Qty::from_lots(1 + r.below(50) as i64),
                    time_in_force: if market { TimeInForce::Ioc } else { tif },
                    self_trade: match r.below(3) {
                        0 => SelfTradePrevention::CancelResting,
                        1 => SelfTradePrevention::CancelIncoming,
                        _ => SelfTradePrevention::CancelBoth,
                    },
                    client_order_id: cid,
                })
            }
            55..=69 => CommandKind::CancelOrder {
                account: AccountId::new(account),
                order: recent_order,
            },
            70..=81 => CommandKind::AmendOrder(AmendOrder {
                account: AccountId::new(account),
                order: recent_order,
                qty: Qty::from_lots(1 + r.below(50) as i64),
                price: (r.below(2) == 0)
                    .then(|| Price::from_ticks(10_000 + r.below(200) as i64 - 100)),
            }),
            82..=87 => {
                let asset = r.below(4) as u16;
                let amount = 1 + r.below(2_000_000) as i64;
                let deposit = r.below(2) == 0;
                self.funds(deposit, account, asset, amount, true)
            }
            88..=92 => {
                if r.below(2) == 0 {
                    CommandKind::AddBookmark {
                        account: AccountId::new(account),
                        product,
                    }
                } else {
                    CommandKind::RemoveBookmark {
                        account: AccountId::new(account),
                        product,
                    }
                }
            }
            93..=95 => CommandKind::SetProfileStatus {
                account: AccountId::new(account),
                status: match r.below(4) {
                    0 => ProfileStatus::Pending,
                    _ => ProfileStatus::Verified,
                },
            },
            _ => CommandKind::SetProductStatus {
                product,
                status: if r.below(3) == 0 {
                    ProductStatus::Halted
                } else {
                    ProductStatus::Trading
                },
            },
        };
        self.command(kind)
    }
}

impl Stream {
    /// Applies `command`, returning the outcome and the events, and notes new order ids.
    pub fn apply(
        &mut self,
        engine: &mut Engine,
        command: &Command,
    ) -> (Result<(), Reject>, Vec<Event>) {
        let mut events = Vec::new();
        let result = engine.apply(command, &mut events);
        for event in &events {
            if let EventKind::OrderAccepted { order, .. } = event.kind {
                self.next_order_id = self.next_order_id.max(order.get() + 1);
            }
        }
        (result, events)
    }

    /// The next random command, applied to `engine`.
    pub fn step(&mut self, engine: &mut Engine) -> (Command, Result<(), Reject>, Vec<Event>) {
        let command = self.next_command();
        let (result, events) = self.apply(engine, &command);
        (command, result, events)
    }
}

/// An engine after the setup and `n` random commands of `seed`, and the stream to go on with.
pub fn engine_after(seed: u64, n: usize) -> (Engine, Stream) {
    let mut engine = Engine::new(Limits::default());
    let mut stream = Stream::new(seed);
    for command in stream.setup() {
        let (result, _) = stream.apply(&mut engine, &command);
        assert_eq!(result, Ok(()), "setup command {command:?}");
    }
    for _ in 0..n {
        let _ = stream.step(&mut engine);
    }
    (engine, stream)
}
