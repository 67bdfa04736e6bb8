//! Journal replay: a seeded stream of commands is applied to a live engine while each command's
//! encoding (`bourse_engine::codec`) is appended to a journal on disk; the journal is then
//! reopened, and its records decoded and replayed into fresh engines. The replay must end in
//! the same state hash, give the same answer and the same events for every command, and agree
//! with the live engine's hash wherever it stops.
//!
//! The default run is the 1,000,000 commands (about 3 s in the dev profile);
//! `BOURSE_REPLAY_COMMANDS=<n>` runs another size (at least 10,000).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bourse_engine::codec::{decode, encode};
use bourse_engine::*;
use bourse_journal::{Durability, FsStorage, Journal, JournalConfig};

const DEFAULT_COMMANDS: usize = 1_000_000;
const SEED: u64 = 0x5EED_0001;
const COMMIT_EVERY: usize = 1_000;
/// The live and the replayed state hashes are also compared every this many commands (a hash
/// walks the whole state, remembered funds requests included, so not at every commit).
const HASH_EVERY: usize = 20_000;
const T0: i64 = 1_700_000_000_000;
const N_ACCOUNTS: u32 = 300;

const USD: AssetId = AssetId::new(0);
const AAPL: AssetId = AssetId::new(1);
const BTC: AssetId = AssetId::new(2);
/// AAPL/USD: ticks of 0.01 USD, lots of one share.
const P_AAPL: ProductId = ProductId::new(0);
/// BTC-USD: ticks of 10 USD, lots of 0.001 BTC.
const P_BTC: ProductId = ProductId::new(1);
const PRODUCTS: [ProductId; 2] = [P_AAPL, P_BTC];
/// Where each product's prices start, in ticks.
const START_MID: [i64; 2] = [18_925, 6_000];

/// SplitMix64: small, fast and good enough to drive a test.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True `percent`% of the time.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Makes the next command from the PRNG and what the engine has said so far (open orders, used
/// request ids), so that most commands hit real targets and some are rejected.
struct Generator {
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
    fn new(seed: u64) -> Generator {
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
        }
    }

    fn account(&mut self) -> AccountId {
        AccountId::new(1 + self.rng.below(N_ACCOUNTS as u64) as u32)
    }

    fn next_command(&mut self) -> Command {
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
            // Reused now and then: a clash with an open order is rejected.
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
    fn observe(&mut self, events: &[Event]) {
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

fn n_commands() -> usize {
    match std::env::var("BOURSE_REPLAY_COMMANDS") {
        Ok(n) => n
            .replace('_', "")
            .parse()
            .expect("BOURSE_REPLAY_COMMANDS is a number of commands"),
        Err(_) => DEFAULT_COMMANDS,
    }
}

fn config() -> JournalConfig {
    JournalConfig {
        // Small enough that a run rolls over several segments.
        segment_size_bytes: 8 << 20,
        durability: Durability::None,
        ..JournalConfig::default()
    }
}

/// Replays the first `k` records of the journal into a fresh engine.
fn replay_prefix(journal: &Journal<FsStorage>, k: usize) -> Engine {
    let mut engine = Engine::new(Limits::default());
    let mut events = Vec::new();
    for record in journal.read_from(1).unwrap().take(k) {
        let record = record.unwrap();
        let command = decode(&record.payload).unwrap();
        events.clear();
        let _ = engine.apply(&command, &mut events);
    }
    engine
}

#[test]
fn a_journaled_stream_replays_bit_for_bit() {
    let n = n_commands();
    assert!(n >= 10_000, "at least 10,000 commands");
    let checkpoints = [n / 10 + 3, n / 3, 2 * n / 3 + 1];
    let dir = tempfile::tempdir().unwrap();

    // ----- live: apply each command and journal it --------------------------------------
    let started = Instant::now();
    let mut live = Engine::new(Limits::default());
    let mut generator = Generator::new(SEED);
    let mut journal = Journal::open(FsStorage::new(dir.path()).unwrap(), config()).unwrap();
    let mut live_events: Vec<Event> = Vec::new();
    // For each command, its answer and where its events end in `live_events`.
    let mut live_outcomes: Vec<(Result<(), Reject>, usize)> = Vec::with_capacity(n);
    let mut periodic_hashes: Vec<StateHash> = Vec::new();
    let mut checkpoint_hashes: Vec<StateHash> = Vec::new();
    let mut buf = Vec::with_capacity(256);
    let mut n_rejected = 0usize;
    let mut rejects: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=n {
        let command = generator.next_command();
        buf.clear();
        encode(&command, &mut buf);
        journal.append(command.seq, &buf).unwrap();
        let start = live_events.len();
        let result = live.apply(&command, &mut live_events);
        if i <= 5 + 2 * N_ACCOUNTS as usize {
            assert_eq!(result, Ok(()), "setup command {i}: {command:?}");
        }
        if let Err(reject) = result {
            n_rejected += 1;
            *rejects.entry(format!("{reject:?}")).or_insert(0usize) += 1;
        }
        generator.observe(&live_events[start..]);
        live_outcomes.push((result, live_events.len()));
        if i.is_multiple_of(COMMIT_EVERY) {
            assert_eq!(journal.commit().unwrap(), Some(command.seq));
        }
        if i.is_multiple_of(HASH_EVERY) {
            periodic_hashes.push(live.state_hash());
        }
        if checkpoints.contains(&i) {
            checkpoint_hashes.push(live.state_hash());
        }
    }
    journal.commit().unwrap();
    drop(journal);
    let live_hash = live.state_hash();
    let live_time = started.elapsed();

    // The stream is a real workload: trades, cancels, amendments, rejections.
    let count = |f: fn(&EventKind) -> bool| live_events.iter().filter(|e| f(&e.kind)).count();
    let n_fills = count(|k| matches!(k, EventKind::Fill { .. }));
    let n_cancels = count(|k| matches!(k, EventKind::OrderCancelled { .. }));
    let n_amends = count(|k| {
        matches!(
            k,
            EventKind::OrderRested {
                priority_kept: true,
                ..
            }
        )
    });
    let n_duplicates = count(|k| {
        matches!(
            k,
            EventKind::Deposited {
                duplicate: true,
                ..
            }
        )
    });
    eprintln!(
        "{n} commands: {} events, {n_fills} fills, {n_cancels} cancels, {n_rejected} rejected, \
         {} open orders at the end; rejections: {rejects:?}",
        live_events.len(),
        live.n_open_orders(),
    );
    assert!(n_fills > n / 20, "only {n_fills} fills");
    assert!(n_cancels > n / 20, "only {n_cancels} cancels");
    assert!(n_amends > 0 && n_duplicates > 0);
    assert!(
        n_rejected > n / 100 && n_rejected < n / 3,
        "{n_rejected} rejected"
    );

    // ----- replay: reopen the journal, decode and apply every record -------------------------
    let started = Instant::now();
    let journal = Journal::open(FsStorage::new(dir.path()).unwrap(), config()).unwrap();
    assert_eq!(journal.last_seq(), Some(n as u64));
    assert!(
        journal.segment_first_seqs().len() > 1,
        "the run spans segments"
    );
    let mut replayed = Engine::new(Limits::default());
    let mut events: Vec<Event> = Vec::new();
    let mut n_records = 0usize;
    let mut events_from = 0usize;
    for record in journal.read_from(1).unwrap() {
        let record = record.unwrap();
        let command = decode(&record.payload).unwrap();
        assert_eq!(command.seq, record.seq);
        let i = n_records;
        n_records += 1;
        events.clear();
        let result = replayed.apply(&command, &mut events);
        let (live_result, events_to) = live_outcomes[i];
        assert_eq!(result, live_result, "record {}: {command:?}", record.seq);
        assert!(
            events.as_slice() == &live_events[events_from..events_to],
            "record {}: the events differ",
            record.seq
        );
        events_from = events_to;
        if n_records.is_multiple_of(HASH_EVERY) {
            assert_eq!(
                replayed.state_hash(),
                periodic_hashes[n_records / HASH_EVERY - 1],
                "after record {n_records}"
            );
        }
    }
    let replay_time = started.elapsed();
    assert_eq!(n_records, n);
    assert_eq!(events_from, live_events.len());
    assert_eq!(replayed.state_hash(), live_hash);
    assert_eq!(replayed.event_seq(), live.event_seq());

    // ----- stopping part-way: a fresh engine fed the first k records -------------------------
    for (k, hash) in checkpoints.iter().zip(&checkpoint_hashes) {
        let engine = replay_prefix(&journal, *k);
        assert_eq!(
            engine.state_hash(),
            *hash,
            "replay stopped after {k} records"
        );
        assert_eq!(
            engine.event_seq(),
            live_events[..live_outcomes[k - 1].1].len() as u64
        );
    }

    eprintln!(
        "live (generate, encode, journal, apply): {live_time:.2?}, {:.0} commands/s; \
         replay (read, decode, apply, compare): {replay_time:.2?}, {:.0} commands/s",
        n as f64 / live_time.as_secs_f64(),
        n as f64 / replay_time.as_secs_f64(),
    );
}
