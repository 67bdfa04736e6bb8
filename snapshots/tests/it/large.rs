//! An image large enough (12,001 accounts) that [`Engine::from_archived`] rebuilds the accounts
//! and the books on two threads: it round-trips through the snapshot bytes and through a file,
//! the loaded engines answer later commands exactly like the original, and damaged bytes are
//! refused without a panic.

use bourse_engine::*;
use bourse_snapshots::{
    HEADER_CHECKSUM_OFFSET, HEADER_LEN, HEADER_PAYLOAD_CHECKSUM_OFFSET, decode, encode,
    load_newest, snapshot_file_name, write_snapshot,
};

use crate::stream::SplitMix64;

/// Above the engine's threshold (10,000) for the two-thread load.
const N_ACCOUNTS: u32 = 12_000;
const N_PRODUCTS: u32 = 4;
/// Every `PENDING_EVERY`th account stays pending: no funds, no orders.
const PENDING_EVERY: u32 = 97;

struct Builder {
    engine: Engine,
    seq: u64,
    timestamp_ms: i64,
    n_rejected: usize,
}

impl Builder {
    fn command(&mut self, kind: CommandKind) -> Command {
        self.seq += 1;
        self.timestamp_ms += 1_000;
        Command {
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            kind,
        }
    }

    /// Applies a setup command that must be accepted.
    fn must(&mut self, kind: CommandKind) {
        let command = self.command(kind);
        self.engine
            .apply(&command, &mut Vec::new())
            .unwrap_or_else(|r| panic!("{command:?} rejected: {r:?}"));
    }

    /// Applies a command that may be rejected (counted).
    fn may(&mut self, kind: CommandKind) {
        let command = self.command(kind);
        if self.engine.apply(&command, &mut Vec::new()).is_err() {
            self.n_rejected += 1;
        }
    }
}

fn funds(account: u32, asset: u16, amount: i64, id: &str) -> FundsRequest {
    FundsRequest {
        account: AccountId::new(account),
        asset: AssetId::new(asset),
        amount: Amount::from_minor(amount),
        request_id: RequestId::new(id).unwrap(),
        method: FundsMethod::Unspecified,
    }
}

/// The product account `a` trades (and holds funds for).
fn product_of(a: u32) -> u32 {
    (a / 3) % N_PRODUCTS
}

/// Product `p` trades asset `p + 2` against USD (0), or EUR (1) for product 2.
fn quote_of(p: u32) -> u16 {
    if p == 2 { 1 } else { 0 }
}

fn limit(account: u32, product: u32, side: Side, price: i64, lots: i64) -> NewOrder {
    NewOrder {
        account: AccountId::new(account),
        product: ProductId::new(product),
        side,
        order_type: OrderType::Limit,
        price: Some(Price::from_ticks(price)),
        qty: Qty::from_lots(lots),
        time_in_force: TimeInForce::Gtc,
        self_trade: SelfTradePrevention::default(),
        client_order_id: None,
    }
}

/// 12,000 accounts over four products (two quote assets, one product with fee tiers), a few
/// thousand resting orders (a third with client order ids), some trades, deposits and
/// withdrawals, bookmarks. Returns the builder (its engine, seq and clock).
fn build() -> Builder {
    let mut b = Builder {
        engine: Engine::new(Limits::default()),
        seq: 0,
        timestamp_ms: 1_700_000_000_000,
        n_rejected: 0,
    };
    for (code, scale) in [("USD", 2), ("EUR", 2)] {
        b.must(CommandKind::AddAsset {
            code: AssetCode::new(code).unwrap(),
            scale,
        });
    }
    add_products(&mut b);
    for a in 1..=N_ACCOUNTS {
        add_account(&mut b, a);
    }
    b
}

/// The instruments of each product and the products, the first with fee tiers.
fn add_products(b: &mut Builder) {
    let tiers = FeeSchedule::new(&[
        FeeTier {
            volume_min: 0,
            maker_ppm: 1_000,
            taker_ppm: 2_500,
        },
        FeeTier {
            volume_min: 1_000_000,
            maker_ppm: 0,
            taker_ppm: 1_000,
        },
    ])
    .unwrap();
    for p in 0..N_PRODUCTS {
        let code = format!("A{p}");
        b.must(CommandKind::AddAsset {
            code: AssetCode::new(&code).unwrap(),
            scale: 0,
        });
        b.must(CommandKind::add_product(AddProduct {
            symbol: Symbol::new(&code).unwrap(),
            name: format!("Asset {p}"),
            base: AssetId::new(p as u16 + 2),
            quote: AssetId::new(quote_of(p)),
            price_scale: 2,
            tick_size: 1,
            qty_scale: 0,
            lot_size: 1,
            fees: if p == 0 {
                tiers
            } else {
                FeeSchedule::flat(500, 1_500).unwrap()
            },
        }));
    }
}

/// Account `a`: its funds, bookmarks, a resting order for a third of them and now and then a
/// taker.
fn add_account(b: &mut Builder, a: u32) {
    let pending = a.is_multiple_of(PENDING_EVERY);
    b.must(CommandKind::create_account(CreateAccount {
        name: format!("trader {a}"),
        proof: format!("passport:{a:06}"),
        currency_preference: AssetCode::new(if a.is_multiple_of(5) { "EUR" } else { "USD" })
            .unwrap(),
        token_hash: TokenHash([(a % 251) as u8; 32]),
        initial_status: if pending {
            ProfileStatus::Pending
        } else {
            ProfileStatus::Verified
        },
    }));
    if pending {
        return;
    }
    let product = product_of(a);
    let quote = quote_of(product);
    b.must(CommandKind::Deposit(funds(a, quote, 5_000_000, "d-q")));
    b.must(CommandKind::Deposit(funds(
        a,
        product as u16 + 2,
        1_000,
        "d-b",
    )));
    if a.is_multiple_of(7) {
        b.must(CommandKind::Withdraw(funds(a, quote, 12_345, "w-1")));
    }
    if a % 4 == 1 {
        for p in [product, (product + 1) % N_PRODUCTS] {
            b.must(CommandKind::AddBookmark {
                account: AccountId::new(a),
                product: ProductId::new(p),
            });
        }
    }
    // A resting order for a third of the accounts: bids below 10_000 ticks, asks from
    // 10_001 up, over 40 levels a side.
    if a.is_multiple_of(3) {
        let level = (a / 24 % 40) as i64;
        let side = if (a / 12).is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let price = match side {
            Side::Buy => 9_999 - level,
            Side::Sell => 10_001 + level,
        };
        let mut order = limit(a, product, side, price, 1 + (a % 9) as i64);
        if a.is_multiple_of(9) {
            order.client_order_id = Some(ClientOrderId::new(&format!("c-{a}")).unwrap());
        }
        b.must(CommandKind::PlaceOrder(order));
    }
    // Now and then a taker that crosses a level or two: trades, fees, volume windows.
    if a % 50 == 25 && a > 600 {
        let side = if (a / 50).is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let price = match side {
            Side::Buy => 10_002,
            Side::Sell => 9_998,
        };
        b.may(CommandKind::PlaceOrder(limit(a, product, side, price, 3)));
    }
}

/// The further commands: takers that fill, cancels and amends of resting orders (picked from
/// the books at the start; some are gone by then and are rejected), funds requests.
fn further_commands(engine: &Engine, seq: u64, timestamp_ms: i64, n: usize) -> Vec<Command> {
    let resting: Vec<OrderView> = (0..N_PRODUCTS)
        .flat_map(|p| {
            [Side::Buy, Side::Sell]
                .into_iter()
                .flat_map(move |side| engine.book_orders(ProductId::new(p), side))
        })
        .collect();
    assert!(!resting.is_empty());
    let mut rng = SplitMix64::new(4_242);
    let mut commands = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let account = 1 + rng.below(N_ACCOUNTS as u64) as u32;
        let product = product_of(account);
        let o = &resting[rng.below(resting.len() as u64) as usize];
        let kind = match rng.below(10) {
            0..=3 => {
                let side = if rng.below(2) == 0 {
                    Side::Buy
                } else {
                    Side::Sell
                };
                // Up to 15 levels through the touch.
                let depth = rng.below(16) as i64;
                let price = match side {
                    Side::Buy => 10_001 + depth,
                    Side::Sell => 9_999 - depth,
                };
                let mut order = limit(account, product, side, price, 1 + rng.below(12) as i64);
                if rng.below(4) == 0 {
                    order.client_order_id = Some(ClientOrderId::new(&format!("n-{i}")).unwrap());
                }
                if rng.below(5) == 0 {
                    order.time_in_force = TimeInForce::Ioc;
                }
                CommandKind::PlaceOrder(order)
            }
            4..=5 => CommandKind::CancelOrder {
                account: o.account,
                order: o.id,
            },
            6..=7 => {
                let lots = o.remaining.lots();
                let qty = Qty::from_lots(1 + rng.below(lots.max(1) as u64 + 2) as i64);
                let price = (rng.below(2) == 0).then(|| {
                    let delta = rng.below(5) as i64;
                    Price::from_ticks(match o.side {
                        Side::Buy => o.price.ticks() - delta,
                        Side::Sell => o.price.ticks() + delta,
                    })
                });
                CommandKind::AmendOrder(AmendOrder {
                    account: o.account,
                    order: o.id,
                    qty,
                    price,
                })
            }
            8 => CommandKind::Deposit(funds(account, quote_of(product), 10_000, "d-q")),
            _ => CommandKind::Withdraw(funds(account, quote_of(product), 5_000, &format!("w-{i}"))),
        };
        commands.push(Command {
            seq: seq + 1 + i,
            timestamp_ms: timestamp_ms + 500 * (i as i64 + 1),
            kind,
        });
    }
    commands
}

fn assert_same_state(a: &Engine, b: &Engine, context: &str) {
    assert_eq!(a.state_hash(), b.state_hash(), "{context}: hash");
    assert_eq!(a.event_seq(), b.event_seq(), "{context}: event seq");
    assert_eq!(a.n_open_orders(), b.n_open_orders(), "{context}: orders");
    assert_eq!(a.n_accounts(), b.n_accounts(), "{context}: accounts");
}

#[test]
fn a_large_image_round_trips_and_behaves_the_same() {
    let b = build();
    let original = b.engine;
    assert_eq!(original.n_accounts(), N_ACCOUNTS as usize + 1);
    let image = original.to_image();
    let n_orders: usize = image
        .books
        .iter()
        .map(|b| b.bids.len() + b.asks.len())
        .sum();
    assert!(n_orders > 3_000, "only {n_orders} resting orders");
    let n_client_ids = image
        .books
        .iter()
        .flat_map(|b| b.bids.iter().chain(&b.asks))
        .filter(|o| o.client_order_id.is_some())
        .count();
    assert!(n_client_ids > 300, "only {n_client_ids} client order ids");
    assert!(image.funds_requests.len() > 20_000);
    assert!(image.funds_requests.iter().any(|f| !f.is_deposit));
    let count = |f: fn(&AccountImage) -> bool| image.accounts.iter().filter(|a| f(a)).count();
    assert!(
        count(|a| !a.volumes.is_empty()) > 100,
        "few accounts traded"
    );
    assert!(count(|a| a.bookmarks.len() == 2) > 2_000, "few bookmarks");
    assert!(image.accounts.iter().any(|a| a.status == 0));

    // Through the bytes.
    let bytes = encode(b.seq, &image).unwrap().to_bytes();
    let (seq, decoded) = decode(&bytes).expect("valid snapshot");
    assert_eq!(seq, b.seq);
    assert_same_state(&original, &decoded, "decoded");
    assert!(decoded.to_image() == image, "decoded: image differs");

    // Through a file, with an older snapshot beside it.
    let dir = tempfile::tempdir().unwrap();
    write_snapshot(
        dir.path(),
        b.seq - 10,
        &Engine::new(Limits::default()).to_image(),
        3,
    )
    .unwrap();
    write_snapshot(dir.path(), b.seq, &image, 3).unwrap();
    drop(image);
    let recovered = load_newest(dir.path()).unwrap();
    assert!(recovered.skipped.is_empty(), "{:?}", recovered.skipped);
    let (seq, loaded) = recovered.newest.expect("a snapshot");
    assert_eq!(seq, b.seq);
    assert_same_state(&original, &loaded, "loaded");

    // The same commands to all three.
    let commands = further_commands(&original, b.seq, b.timestamp_ms, 4_000);
    let mut engines = [original, decoded, loaded];
    let (mut n_fills, mut n_cancelled, mut n_amended, mut n_rejected) = (0, 0, 0, 0);
    for (i, command) in commands.iter().enumerate() {
        let mut expected = Vec::new();
        let result = engines[0].apply(command, &mut expected);
        match (&command.kind, &result) {
            (_, Err(_)) => n_rejected += 1,
            (CommandKind::CancelOrder { .. }, Ok(())) => n_cancelled += 1,
            (CommandKind::AmendOrder(_), Ok(())) => n_amended += 1,
            _ => {}
        }
        n_fills += expected
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Fill { .. }))
            .count();
        for (k, engine) in engines[1..].iter_mut().enumerate() {
            let mut events = Vec::new();
            let got = engine.apply(command, &mut events);
            assert_eq!(
                (&got, &events),
                (&result, &expected),
                "command {i} ({command:?}), rebuilt engine {k}"
            );
        }
    }
    assert!(n_fills > 1_000, "only {n_fills} fills");
    assert!(n_cancelled > 200, "only {n_cancelled} cancels");
    assert!(n_amended > 200, "only {n_amended} amends");
    assert!(n_rejected > 50, "only {n_rejected} rejections");
    assert_same_state(&engines[0], &engines[1], "decoded, after the commands");
    assert_same_state(&engines[0], &engines[2], "loaded, after the commands");
    let image = engines[0].to_image();
    assert!(
        engines[1].to_image() == image,
        "decoded: image differs at the end"
    );
    assert!(
        engines[2].to_image() == image,
        "loaded: image differs at the end"
    );
}

/// Recomputes both checksums so damage reaches `bytecheck` and [`Engine::from_archived`].
fn reseal(bytes: &mut [u8]) {
    let payload_crc = crc32c::crc32c(&bytes[HEADER_LEN..]);
    bytes[HEADER_PAYLOAD_CHECKSUM_OFFSET..HEADER_PAYLOAD_CHECKSUM_OFFSET + 4]
        .copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&bytes[..HEADER_CHECKSUM_OFFSET]);
    bytes[HEADER_CHECKSUM_OFFSET..HEADER_CHECKSUM_OFFSET + 4]
        .copy_from_slice(&header_crc.to_le_bytes());
}

#[test]
fn damage_to_a_large_snapshot_is_refused() {
    let b = build();
    let image = b.engine.to_image();
    let bytes = encode(b.seq, &image).unwrap().to_bytes();
    let payload_len = bytes.len() - HEADER_LEN;

    // A flipped bit anywhere in the payload fails the checksum.
    for k in 0..5 {
        let mut damaged = bytes.clone();
        let at = HEADER_LEN + payload_len * (2 * k + 1) / 10;
        damaged[at] ^= 1 << k;
        assert!(decode(&damaged).is_err(), "flip at {at} accepted");
    }

    // In a file, the damaged newest snapshot is skipped for the older one.
    let dir = tempfile::tempdir().unwrap();
    let older = b.seq - 1;
    write_snapshot(dir.path(), older, &image, 3).unwrap();
    let mut damaged = bytes.clone();
    damaged[HEADER_LEN + payload_len / 2] ^= 0x08;
    std::fs::write(dir.path().join(snapshot_file_name(b.seq)), &damaged).unwrap();
    let recovered = load_newest(dir.path()).unwrap();
    assert_eq!(recovered.skipped.len(), 1, "{:?}", recovered.skipped);
    let (seq, loaded) = recovered.newest.expect("the older snapshot");
    assert_eq!(seq, older);
    assert_eq!(loaded.state_hash(), b.engine.state_hash());

    // Flips behind a resealed checksum reach the archive checks and the two-thread rebuild:
    // refused or accepted, never a panic, and whatever is accepted works.
    let mut rng = SplitMix64::new(99);
    for _ in 0..12 {
        let mut damaged = bytes.clone();
        let at = HEADER_LEN + rng.below(payload_len as u64) as usize;
        damaged[at] ^= 1 << rng.below(8);
        reseal(&mut damaged);
        if let Ok((_, engine)) = decode(&damaged) {
            let _ = engine.state_hash();
            let _ = engine.to_image();
        }
    }

    // Inconsistent images, valid as archives: an error in the accounts half, in the books half,
    // and in both at once, is an error.
    type Mutation = fn(&mut EngineImage);
    let accounts: Mutation = |i| i.accounts[11_000].balances[0].available = -1;
    let books: Mutation = |i| {
        let book = i.books.iter_mut().find(|b| b.asks.len() > 2).unwrap();
        book.asks[1].held += 1;
    };
    let funds: Mutation = |i| i.funds_requests.reverse();
    let mutations: [(&str, &[Mutation]); 4] = [
        ("accounts", &[accounts]),
        ("books", &[books]),
        ("funds requests", &[funds]),
        ("accounts and books", &[accounts, books]),
    ];
    for (name, mutate) in mutations {
        let mut bad = image.clone();
        for m in mutate {
            m(&mut bad);
        }
        let bytes = encode(b.seq, &bad).unwrap().to_bytes();
        assert!(decode(&bytes).is_err(), "mutation {name:?} accepted");
    }
}
