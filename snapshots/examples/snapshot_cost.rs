//! What a snapshot costs at scale: an engine with 1,000,000 accounts and 1,000,000 resting
//! orders, then the time of each step and the file size: the forked snapshot (the parent's
//! pause, the child's steps, what copy-on-write costs the parent while the child lives, peak
//! memory), the in-thread path for comparison, and the load in its parts.
//!
//! Every snapshot taken holds exactly `accounts` resting orders and `accounts + 1` accounts
//! (the fee account): the build places one order per account plus an extra order for every
//! 10th account, and the extras are what is cancelled before the fork (the batch timed without
//! a child). The batch timed while the child lives cancels original orders (the child's image
//! was cut before it); they are placed again after the child is reaped, before the in-thread
//! snapshot.
//!
//! `cargo run --release -p bourse-snapshots --example snapshot_cost [accounts] [dir]`
//! (the directory defaults to a fresh one under the system temp dir and is removed after).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measuring tool: a broken setup should stop it loudly, with its message"
)]

use std::time::{Duration, Instant};

use bourse_engine::*;
use bourse_snapshots::{
    HEADER_LEN, check_header, encode, fork_snapshot, load_newest, open_snapshot, write_encoded,
};

const N_PRODUCTS: u32 = 10;
const LEVELS_PER_SIDE: i64 = 500;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The resting order account `a` places (and places again after a cancel).
fn order_of(a: u32, client_order_id: bool) -> NewOrder {
    // Bids below 10_000 ticks, asks from 10_000 up: nothing crosses, every order rests.
    let product = a % N_PRODUCTS;
    let buy = a.is_multiple_of(2);
    let level = (a / N_PRODUCTS / 2) as i64 % LEVELS_PER_SIDE;
    let price = if buy { 9_999 - level } else { 10_000 + level };
    NewOrder {
        account: AccountId::new(a),
        product: ProductId::new(product),
        side: if buy { Side::Buy } else { Side::Sell },
        order_type: OrderType::Limit,
        price: Some(Price::from_ticks(price)),
        qty: Qty::from_lots(1 + (a % 7) as i64),
        time_in_force: TimeInForce::Gtc,
        self_trade: SelfTradePrevention::default(),
        client_order_id: (client_order_id && a.is_multiple_of(3))
            .then(|| ClientOrderId::new(&format!("c-{a}")).unwrap()),
    }
}

/// Whether account `a` places an extra order in the build (every 10th account, from 1).
fn has_extra(a: u32) -> bool {
    a % 10 == 1
}

/// The built engine: `n_accounts` accounts each with one resting order, plus an extra resting
/// order for every 10th account, placed right after its first so the extras are spread over
/// the order store like the rest. Returns the engine, the last seq, each account's order id
/// (index = account) and the extras as (account, order id).
fn build(n_accounts: u32) -> (Engine, u64, Vec<OrderId>, Vec<(u32, OrderId)>) {
    let n_extra = (1..=n_accounts).filter(|a| has_extra(*a)).count() as u32;
    let mut engine = Engine::new(Limits {
        accounts_max: n_accounts + 1,
        orders_total_max: n_accounts + n_extra + 1,
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
    // Order ids are given in order of acceptance, from 1.
    let mut next_order = 1u64;
    let mut orders = vec![OrderId::new(0); n_accounts as usize + 1];
    let mut extras = Vec::with_capacity(n_extra as usize);
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
        let asset = if a.is_multiple_of(2) {
            AssetId::new(0)
        } else {
            AssetId::new((a % N_PRODUCTS) as u16 + 1)
        };
        run(
            &mut engine,
            CommandKind::Deposit(FundsRequest {
                account: AccountId::new(a),
                asset,
                amount: Amount::from_minor(10_000_000),
                request_id: RequestId::new("d-1").unwrap(),
                method: FundsMethod::Unspecified,
            }),
        );
        run(&mut engine, CommandKind::PlaceOrder(order_of(a, true)));
        orders[a as usize] = OrderId::new(next_order);
        next_order += 1;
        if has_extra(a) {
            run(&mut engine, CommandKind::PlaceOrder(order_of(a, false)));
            extras.push((a, OrderId::new(next_order)));
            next_order += 1;
        }
    }
    assert_eq!(engine.n_open_orders(), (n_accounts + n_extra) as usize);
    (engine, seq, orders, extras)
}

/// Places again the orders of `accounts` (cancelled by a batch).
fn place_again(engine: &mut Engine, seq: &mut u64, accounts: &[u32]) {
    let mut sink = CountingSink::default();
    for &a in accounts {
        *seq += 1;
        let command = Command {
            seq: *seq,
            timestamp_ms: 1_700_000_000_000 + *seq as i64,
            kind: CommandKind::PlaceOrder(order_of(a, true)),
        };
        engine.apply(&command, &mut sink).expect("accepted");
    }
}

/// A field of `/proc/self/status`, in KiB.
fn status_kib(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// Cancels each (account, order); returns the total time and the per-command latencies,
/// sorted.
fn cancel_batch(
    engine: &mut Engine,
    seq: &mut u64,
    orders: impl Iterator<Item = (u32, OrderId)>,
) -> (Duration, Vec<Duration>) {
    let mut sink = CountingSink::default();
    let mut latencies = Vec::with_capacity(200_000);
    let start = Instant::now();
    for (a, order) in orders {
        *seq += 1;
        let command = Command {
            seq: *seq,
            timestamp_ms: 1_700_000_000_000 + *seq as i64,
            kind: CommandKind::CancelOrder {
                account: AccountId::new(a),
                order,
            },
        };
        let t = Instant::now();
        engine.apply(&command, &mut sink).expect("cancel accepted");
        latencies.push(t.elapsed());
    }
    let total = start.elapsed();
    latencies.sort();
    (total, latencies)
}

fn latency_summary((total, lat): &(Duration, Vec<Duration>)) -> String {
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    format!(
        "{} cancels in {} ({:.2} µs each; p50 {:.2} µs, p99 {:.2} µs, max {})",
        lat.len(),
        ms(*total),
        total.as_secs_f64() * 1e6 / lat.len() as f64,
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        ms(lat[lat.len() - 1]),
    )
}

/// `snapshot_cost load <dir>`: the load of the newest snapshot in `dir` in a fresh process,
/// whole and in its parts.
fn load_only(dir: &std::path::Path) {
    let t = Instant::now();
    let recovered = load_newest(dir).expect("load");
    let load_time = t.elapsed();
    let (_, loaded) = recovered.newest.expect("a snapshot");
    let expected = std::fs::read_to_string(dir.join("expected-hash")).expect("hash file");
    assert_eq!(
        format!("{:?}", loaded.state_hash()),
        expected,
        "hash after load"
    );
    let counts = (loaded.n_open_orders(), loaded.n_accounts());
    let expected = std::fs::read_to_string(dir.join("expected-counts")).expect("counts file");
    assert_eq!(format!("{counts:?}"), expected, "counts after load");
    let peak = status_kib("VmHWM:");
    drop(loaded);
    let path = bourse_snapshots::list_snapshots(dir)
        .expect("list")
        .pop()
        .expect("a snapshot")
        .1;

    // The parts, once more (the freed engine's memory is now warm in the heap, so the
    // from_archived below is faster than inside the first load).
    let t = Instant::now();
    let raw = open_snapshot(&path).expect("open");
    let open_time = t.elapsed();
    let t = Instant::now();
    let (_, payload) = check_header(&raw).expect("header");
    let crc = crc32c::crc32c(payload);
    let crc_time = t.elapsed();
    let t = Instant::now();
    let archived =
        rkyv::access::<ArchivedEngineImage, rkyv::rancor::Error>(payload).expect("bytecheck");
    let check_time = t.elapsed();
    let t = Instant::now();
    let rebuilt = Engine::from_archived(archived).expect("from_archived");
    let from_archived_time = t.elapsed();
    drop(rebuilt);
    let t = Instant::now();
    let read_copy = bourse_snapshots::read_aligned(&mut std::fs::File::open(&path).expect("open"))
        .expect("read");
    let read_time = t.elapsed();
    assert_eq!(&read_copy[HEADER_LEN..], payload);

    println!(
        "(d) load_newest, fresh process:   {} (peak RSS {}); loaded {} resting orders, {} \
         accounts",
        ms(load_time),
        mib(peak),
        counts.0,
        counts.1
    );
    println!("      then again in parts (heap warm):");
    println!("      open (mmap, populate):      {}", ms(open_time));
    println!(
        "      header + CRC32C:            {} ({crc:08x}; in load_newest it overlaps bytecheck)",
        ms(crc_time)
    );
    println!("      bytecheck:                  {}", ms(check_time));
    println!(
        "      from_archived:              {}",
        ms(from_archived_time)
    );
    println!(
        "      (read into a fresh buffer instead of mmap: {})",
        ms(read_time)
    );
}

#[allow(
    clippy::too_many_lines,
    reason = "the measurement as one script: its steps in the order they are timed, sections \
              marked, each step's figure printed from the same variables"
)]
fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("load") {
        args.next();
        load_only(std::path::Path::new(&args.next().expect("a directory")));
        return;
    }
    let n_accounts: u32 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("a number of accounts"));
    let keep_dir = args.next().map(std::path::PathBuf::from);
    let tmp = std::env::temp_dir().join(format!("bourse-snapshot-cost-{}", std::process::id()));
    let dir = keep_dir.clone().unwrap_or(tmp);
    let fork_dir = dir.join("forked");
    std::fs::create_dir_all(&fork_dir).expect("snapshot dir");

    let start = Instant::now();
    let (mut engine, mut seq, orders, extras) = build(n_accounts);
    println!(
        "workload: {} accounts, {} resting orders ({} of them extra, cancelled before the \
         fork), {} products, {} commands; built in {}",
        engine.n_accounts(),
        engine.n_open_orders(),
        extras.len(),
        engine.n_products(),
        seq,
        ms(start.elapsed())
    );
    // What every snapshot below must hold.
    let expected_counts = (n_accounts as usize, n_accounts as usize + 1);
    let counts = |e: &Engine| (e.n_open_orders(), e.n_accounts());
    println!(
        "parent RSS after the build:       {}",
        mib(status_kib("VmRSS:"))
    );

    // ----- The forked snapshot, and what copy-on-write costs the parent. -----
    // The batches cancel an order of every 10th account (100,000 at 1M accounts), each
    // touching its account, its order node, its level and the id maps: spread over all of the
    // engine's memory, so nearly every page written is a first write after the fork. The
    // first (no child) cancels the extra orders of accounts 1, 11, 21, ...; the second (child
    // alive) the orders of accounts 6, 16, 26, ..., placed again once the child is reaped.
    let without_child = cancel_batch(&mut engine, &mut seq, extras.iter().copied());
    assert_eq!(counts(&engine), expected_counts, "counts at the fork");
    let a2: Vec<u32> = (6..=n_accounts).step_by(10).collect();
    // Reset the peak RSS (Linux: "5" to clear_refs), so VmHWM below is the snapshot's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before_fork = status_kib("VmRSS:");
    let hash_at_fork = engine.state_hash();
    let fork_seq = seq;
    let mut child = fork_snapshot(&engine, fork_seq, &fork_dir, 2).expect("fork");
    let pause = child.pause;
    let with_child = cancel_batch(
        &mut engine,
        &mut seq,
        a2.iter().map(|&a| (a, orders[a as usize])),
    );
    let child_alive_after_batch = matches!(child.try_wait(), Ok(None));
    let outcome = if child_alive_after_batch {
        child.wait().expect("forked snapshot")
    } else {
        // Reaped by the try_wait above only if it answered; ask again for the outcome.
        panic!("the child finished before the batch did: the COW comparison is not valid");
    };
    let parent_peak = status_kib("VmHWM:");
    let forked = load_newest(&fork_dir).expect("load forked");
    let (forked_seq, forked_engine) = forked.newest.expect("the forked snapshot");
    assert_eq!(forked_seq, fork_seq);
    assert!(
        forked_engine.state_hash() == hash_at_fork,
        "the forked snapshot is not the state at the fork"
    );
    let forked_counts = counts(&forked_engine);
    assert_eq!(
        forked_counts, expected_counts,
        "counts of the forked snapshot"
    );
    drop(forked_engine);
    // Back to `n_accounts` resting orders for the in-thread snapshot.
    place_again(&mut engine, &mut seq, &a2);
    assert_eq!(
        counts(&engine),
        expected_counts,
        "counts before the in-thread path"
    );

    // ----- The in-thread path, for comparison. -----
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
    drop(bytes);
    let size = std::fs::metadata(&path).expect("stat").len();

    // ----- The load, in this process (its heap warm from the steps above). -----
    let t = Instant::now();
    let recovered = load_newest(&dir).expect("load");
    let load_time = t.elapsed();
    let (loaded_seq, loaded) = recovered.newest.expect("a snapshot");
    assert_eq!(loaded_seq, seq);
    let loaded_counts = counts(&loaded);
    assert_eq!(loaded_counts, expected_counts, "counts after the load");

    let t = Instant::now();
    let (h1, h2) = (engine.state_hash(), loaded.state_hash());
    let hash_time = t.elapsed() / 2;
    assert!(h1 == h2, "hash differs after the round trip");
    drop(loaded);
    std::fs::write(dir.join("expected-hash"), format!("{h1:?}")).expect("hash file");
    std::fs::write(dir.join("expected-counts"), format!("{expected_counts:?}"))
        .expect("counts file");

    println!(
        "file size:                        {:.1} MiB",
        size as f64 / (1 << 20) as f64
    );
    println!(
        "forked snapshot (fork_snapshot): {} resting orders, {} accounts (as loaded back)",
        forked_counts.0, forked_counts.1
    );
    println!("  (a) pause on the engine thread: {}", ms(pause));
    println!(
        "      child: to_image {}, encode {}, write {}; reaped after {}",
        ms(outcome.to_image),
        ms(outcome.encode),
        ms(outcome.write),
        ms(outcome.elapsed)
    );
    println!(
        "      COW: without a child {}",
        latency_summary(&without_child)
    );
    println!(
        "           with the child   {}",
        latency_summary(&with_child)
    );
    println!(
        "      memory: parent RSS at fork {}, parent peak {}, child peak {} (shared pages \
         counted in both), child private {}",
        mib(rss_before_fork),
        mib(parent_peak),
        mib(outcome.child_peak_rss_kib),
        mib(outcome.child_private_kib)
    );
    println!(
        "in-thread path: {} resting orders, {} accounts",
        expected_counts.0, expected_counts.1
    );
    println!("  to_image (engine pause):        {}", ms(to_image));
    println!("    for comparison, Engine::clone {}", ms(clone_time));
    println!("  (b) encode (rkyv + CRC32C):     {}", ms(encode_time));
    println!("  (c) write+fsync+rename+dir:     {}", ms(write_time));
    println!("state_hash (one):                 {}", ms(hash_time));
    println!(
        "load_newest in this process (heap warm): {}; loaded {} resting orders, {} accounts",
        ms(load_time),
        loaded_counts.0,
        loaded_counts.1
    );
    // The load that recovery does: a fresh process, nothing in its heap.
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("load")
        .arg(&dir)
        .status()
        .expect("run the loader");
    assert!(status.success(), "the fresh-process load failed");
    if keep_dir.is_none() {
        std::fs::remove_dir_all(&dir).expect("remove the snapshot dir");
    }
}
