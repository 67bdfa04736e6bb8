//! Version 1 snapshots (before the order-key window) still load, as an engine with an empty
//! window and the default `order_keys_max`.
//!
//! `fixtures/v1.snap` was written by the version 1 code (the build before the window) from
//! [`v1_commands`]; the test replays the same commands on today's engine and compares.

use bourse_engine::*;

const SEQ: u64 = 11;

fn id<const N: usize>(s: &str) -> ShortStr<N> {
    ShortStr::new(s).unwrap()
}

fn order(
    account: u32,
    side: Side,
    order_type: OrderType,
    price: Option<i64>,
    qty: i64,
    cid: Option<&str>,
) -> CommandKind {
    CommandKind::PlaceOrder(NewOrder {
        account: AccountId::new(account),
        product: ProductId::new(0),
        side,
        order_type,
        price: price.map(Price::from_ticks),
        qty: Qty::from_lots(qty),
        time_in_force: match order_type {
            OrderType::Limit => TimeInForce::Gtc,
            OrderType::Market => TimeInForce::Ioc,
        },
        self_trade: SelfTradePrevention::default(),
        client_order_id: cid.map(id),
    })
}

/// Two traders, a product, deposits, resting orders (with and without client ids) and a
/// keyed market order that fills.
fn v1_commands() -> Vec<Command> {
    let usd = AssetId::new(0);
    let aapl = AssetId::new(1);
    let account = |name: &str| {
        CommandKind::create_account(CreateAccount {
            name: name.into(),
            proof: format!("passport:{name}"),
            currency_preference: id("USD"),
            token_hash: TokenHash([name.len() as u8; 32]),
            initial_status: ProfileStatus::Verified,
        })
    };
    let deposit = |account: u32, asset: AssetId, amount: i64, request: &str| {
        CommandKind::Deposit(FundsRequest {
            account: AccountId::new(account),
            asset,
            amount: Amount::from_minor(amount),
            request_id: id(request),
            method: FundsMethod::Unspecified,
        })
    };
    let kinds = vec![
        CommandKind::AddAsset {
            code: id("USD"),
            scale: 2,
        },
        CommandKind::AddAsset {
            code: id("AAPL"),
            scale: 0,
        },
        CommandKind::add_product(AddProduct {
            symbol: id("AAPL"),
            name: "Apple".into(),
            base: aapl,
            quote: usd,
            price_scale: 2,
            tick_size: 1,
            qty_scale: 0,
            lot_size: 1,
            fees: FeeSchedule::flat(1_000, 2_000).unwrap(),
        }),
        account("ada"),
        account("bob"),
        deposit(1, usd, 10_000_000, "ada-usd"),
        deposit(2, aapl, 100, "bob-aapl"),
        order(
            2,
            Side::Sell,
            OrderType::Limit,
            Some(18_900),
            10,
            Some("ask-1"),
        ),
        order(2, Side::Sell, OrderType::Limit, Some(19_000), 5, None),
        order(1, Side::Buy, OrderType::Market, None, 3, Some("buy-1")),
        order(
            1,
            Side::Buy,
            OrderType::Limit,
            Some(18_000),
            2,
            Some("bid-1"),
        ),
    ];
    kinds
        .into_iter()
        .zip(1u64..)
        .map(|(kind, seq)| Command {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq as i64 * 1_000,
            kind,
        })
        .collect()
}

fn replayed() -> Engine {
    let mut engine = Engine::new(Limits::default());
    for command in v1_commands() {
        engine.apply(&command, &mut Vec::new()).unwrap();
    }
    engine
}

fn fixture_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1.snap")
}

#[test]
fn a_version_1_file_still_loads() {
    let bytes = std::fs::read(fixture_path()).unwrap();
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        1,
        "the fixture is a version 1 file"
    );
    let (seq, loaded) = bourse_snapshots::decode(&bytes).unwrap();
    assert_eq!(seq, SEQ);
    // Today's engine fed the same commands has the same state but for the window, which
    // remembers the three keyed placements.
    let engine = replayed();
    let mut image = engine.to_image();
    assert_eq!(image.order_keys.len(), 3);
    image.order_keys.clear();
    assert_eq!(loaded.to_image(), image);
    assert_eq!(loaded.limits().order_keys_max, ORDER_KEYS_MAX);
    assert_eq!(
        loaded.order(OrderId::new(4)).unwrap().remaining,
        Qty::from_lots(2)
    );
    assert_eq!(
        loaded.balance(AccountId::new(1), AssetId::new(1)).available,
        3,
        "the market buy's fill"
    );
    let (_, decoded) = bourse_snapshots::decode_image(&bytes).unwrap();
    assert_eq!(decoded, image);

    // The loaded engine goes on like the replayed one once the window is out of the way: a
    // new keyed order is remembered, and a repeat answered.
    let mut loaded = loaded;
    let next = Command {
        seq: SEQ + 1,
        timestamp_ms: 1_700_000_000_000 + 12_000,
        kind: order(
            1,
            Side::Buy,
            OrderType::Limit,
            Some(17_000),
            1,
            Some("bid-2"),
        ),
    };
    let mut events = Vec::new();
    loaded.apply(&next, &mut events).unwrap();
    let repeat = Command {
        seq: SEQ + 2,
        ..next.clone()
    };
    let mut repeated = Vec::new();
    loaded.apply(&repeat, &mut repeated).unwrap();
    assert!(matches!(
        repeated.as_slice(),
        [Event { kind: EventKind::OrderDuplicate { original_command_seq, .. }, .. }]
            if *original_command_seq == SEQ + 1
    ));
}
