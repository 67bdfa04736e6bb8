//! What a snapshot costs at scale: an engine with 1,000,000 accounts and 1,000,000 resting
//! orders, then the time of each step and the file size.
//!
//! `cargo run --release -p bourse-snapshots --example snapshot_cost [accounts] [dir]`
//! (the directory defaults to a fresh one under the system temp dir and is removed after).

use std::time::{Duration, Instant};

use bourse_engine::*;
use bourse_snapshots::{decode_image, encode, load_newest, write_encoded};

const N_PRODUCTS: u32 = 10;
const LEVELS_PER_SIDE: i64 = 500;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn build(n_accounts: u32) -> (Engine, u64) {
    let mut engine = Engine::new(Limits {
        accounts_max: n_accounts + 1,
        orders_total_max: n_accounts + 1,
        ..Limits::default()
    });
    let mut seq = 0u64;
    let mut sink = CountingSink::default();
    let mut run = |engine: &mut Engine, kind: CommandKind| {
        seq += 1;
        let command = Command {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq as i64,
            kind,
        };
        engine.apply(&command, &mut sink).expect("accepted");
    };
    run(
        &mut engine,
        CommandKind::AddAsset {
            code: AssetCode::new("USD").unwrap(),
            scale: 2,
        },
    );
    for p in 0..N_PRODUCTS {
        run(
            &mut engine,
            CommandKind::AddAsset {
                code: AssetCode::new(&format!("A{p}")).unwrap(),
                scale: 0,
            },
        );
        run(
            &mut engine,
            CommandKind::add_product(AddProduct {
                symbol: Symbol::new(&format!("A{p}")).unwrap(),
                name: format!("Asset {p}"),
                base: AssetId::new(p as u16 + 1),
                quote: AssetId::new(0),
                price_scale: 2,
                tick_size: 1,
                qty_scale: 0,
                lot_size: 1,
                fees: FeeSchedule::flat(1_000, 2_000).unwrap(),
            }),
        );
    }
    for a in 1..=n_accounts {
        run(
            &mut engine,
            CommandKind::create_account(CreateAccount {
                name: format!("trader {a}"),
                proof: format!("passport:{a:08}"),
                currency_preference: AssetCode::new("USD").unwrap(),
                token_hash: TokenHash([a as u8; 32]),
                initial_status: ProfileStatus::Verified,
            }),
        );
        // Bids below 10_000 ticks, asks from 10_000 up: nothing crosses, every order rests.
        let product = a % N_PRODUCTS;
        let buy = a % 2 == 0;
        let level = (a / N_PRODUCTS / 2) as i64 % LEVELS_PER_SIDE;
        let (asset, price) = if buy {
            (AssetId::new(0), 9_999 - level)
        } else {
            (AssetId::new(product as u16 + 1), 10_000 + level)
        };
        run(
            &mut engine,
            CommandKind::Deposit(FundsRequest {
                account: AccountId::new(a),
                asset,
                amount: Amount::from_minor(10_000_000),
                request_id: RequestId::new("d-1").unwrap(),
            }),
        );
        run(
            &mut engine,
            CommandKind::PlaceOrder(NewOrder {
                account: AccountId::new(a),
                product: ProductId::new(product),
                side: if buy { Side::Buy } else { Side::Sell },
                order_type: OrderType::Limit,
                price: Some(Price::from_ticks(price)),
                qty: Qty::from_lots(1 + (a % 7) as i64),
                time_in_force: TimeInForce::Gtc,
                self_trade: SelfTradePrevention::default(),
                client_order_id: (a % 3 == 0)
                    .then(|| ClientOrderId::new(&format!("c-{a}")).unwrap()),
            }),
        );
    }
    (engine, seq)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n_accounts: u32 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("a number of accounts"));
    let keep_dir = args.next().map(std::path::PathBuf::from);
    let tmp = std::env::temp_dir().join(format!("bourse-snapshot-cost-{}", std::process::id()));
    let dir = keep_dir.clone().unwrap_or(tmp);
    std::fs::create_dir_all(&dir).expect("snapshot dir");

    let start = Instant::now();
    let (engine, seq) = build(n_accounts);
    println!(
        "workload: {} accounts, {} resting orders, {} products, {} commands; built in {}",
        engine.n_accounts(),
        engine.n_open_orders(),
        engine.n_products(),
        seq,
        ms(start.elapsed())
    );

    let t = Instant::now();
    let clone = engine.clone();
    let clone_time = t.elapsed();
    drop(clone);

    let t = Instant::now();
    let image = engine.to_image();
    let to_image = t.elapsed();

    let t = Instant::now();
    let bytes = encode(seq, &image).expect("encode");
    let encode_time = t.elapsed();
    drop(image);

    let t = Instant::now();
    let path = write_encoded(&dir, seq, &bytes, 2).expect("write");
    let write_time = t.elapsed();
    let size = std::fs::metadata(&path).expect("stat").len();

    let t = Instant::now();
    let recovered = load_newest(&dir).expect("load");
    let load_time = t.elapsed();
    let (loaded_seq, loaded) = recovered.newest.expect("a snapshot");
    assert_eq!(loaded_seq, seq);

    // The load again, in its parts.
    let t = Instant::now();
    let raw = bourse_snapshots::read_aligned(&mut std::fs::File::open(&path).expect("open"))
        .expect("read");
    let read_time = t.elapsed();
    let t = Instant::now();
    let (_, image) = decode_image(&raw).expect("decode");
    let decode_time = t.elapsed();
    let t = Instant::now();
    let rebuilt = Engine::from_image(image).expect("from_image");
    let from_image_time = t.elapsed();

    // The decode once more, in its parts.
    let payload = &raw[bourse_snapshots::HEADER_LEN..];
    let t = Instant::now();
    let crc = crc32c::crc32c(payload);
    let crc_time = t.elapsed();
    let t = Instant::now();
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    let copy_time = t.elapsed();
    let t = Instant::now();
    let archived = rkyv::access::<rkyv::Archived<EngineImage>, rkyv::rancor::Error>(&aligned)
        .expect("bytecheck");
    let check_time = t.elapsed();
    let t = Instant::now();
    let image: EngineImage =
        rkyv::deserialize::<EngineImage, rkyv::rancor::Error>(archived).expect("deserialize");
    let deserialize_time = t.elapsed();
    drop(image);

    let t = Instant::now();
    let (h1, h2, h3) = (
        engine.state_hash(),
        loaded.state_hash(),
        rebuilt.state_hash(),
    );
    let hash_time = t.elapsed() / 3;
    assert!(h1 == h2 && h2 == h3, "hash differs after the round trip");

    println!(
        "file size:                        {:.1} MiB",
        size as f64 / (1 << 20) as f64
    );
    println!("(a) to_image (engine pause):      {}", ms(to_image));
    println!("    for comparison, Engine::clone {}", ms(clone_time));
    println!("(b) encode (rkyv + CRC32C):       {}", ms(encode_time));
    println!("(c) write + fsync + rename + dir: {}", ms(write_time));
    println!("(d) load_newest (all of it):      {}", ms(load_time));
    println!("      read file:                  {}", ms(read_time));
    println!("      CRC + bytecheck + deserialize: {}", ms(decode_time));
    println!(
        "        CRC32C alone:                {} ({crc:08x})",
        ms(crc_time)
    );
    println!("        aligned copy alone:          {}", ms(copy_time));
    println!("        bytecheck alone:             {}", ms(check_time));
    println!(
        "        deserialize alone:           {}",
        ms(deserialize_time)
    );
    println!(
        "      from_image (validate+books):   {}",
        ms(from_image_time)
    );
    println!("state_hash (one):                 {}", ms(hash_time));
    if keep_dir.is_none() {
        std::fs::remove_dir_all(&dir).expect("remove the snapshot dir");
    }
}
