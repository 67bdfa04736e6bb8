//! Market data across three nodes (`market-tier = partitioned`, docs/market-data.md "Across
//! nodes"): how fast the tier takes in products, what a product costs in memory per copy,
//! how long a read takes when the node holds the product against one it forwards, and how
//! long two copies take to exist again after a node's loss.
//!
//! ```text
//! cargo build --release -p bourse
//! cargo run --release -p bourse-benches --bin market_tier -- [--products 300000]
//!     [--partitions 12] [--reads 2000] [--quick]
//! ```
//!
//! **Setup.** tansu (memory storage) on 127.0.0.1 and three `bourse serve --cluster kafka
//! --feed kafka --market-tier partitioned --tick-partitions P` nodes (two copies of each
//! partition), no liquidity provider. The broker, the nodes and this process share the
//! machine's cores.
//!
//! **Workload.** `--products` products `B0000000...`, one tick each (so each has every candle
//! open, as BENCHMARKS.md's memory figure), sent as messages of 500 ticks, each message to the
//! partition its symbols hash to (CRC-32, what the nodes recompute).
//!
//! **Measured.**
//! - *Sent:* from the first message sent until the producer has flushed the last.
//! - *In:* from the first message sent until every node answers the last product of every
//!   partition (ingest is per partition and in order, so the rest is in): products/s, and
//!   ticks/s into history and candles summed over the copies (each tick is built twice).
//! - *Memory:* each node's resident set (`VmRSS`) after the load less before it, summed and
//!   divided by the products times the copies.
//! - *Reads:* `GET /api/v1/products/{symbol}` on node 0, one request at a time on a fresh
//!   connection, for products node 0 holds and for products it forwards: p50, p99.
//! - *Catalogue pages:* `GET /api/v1/products?limit=100` on node 0 from the first page on,
//!   following the cursor, and the same for a search (`query=b00`): each page is gathered
//!   from the three nodes (docs/market-data.md, "Across nodes"): p50, p99 per page.
//! - *Two copies again:* node 1 is killed (SIGKILL); the time until both survivors hold every
//!   partition and have caught up with all of them, with the products that had to be built.
//!
//! - *From a full topic:* afterwards, one new node (`market-tier = all`) reads the whole topic
//!   from nothing, until it answers every partition's last product; then three new
//!   partitioned nodes do, until each answers them all (each builds its two-thirds).
//!
//! **Checks:** every read answers 200 with the product's price; the pages list the products
//! in listing order (by partition, then as loaded), none twice; a failed check stops the run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bourse_benches::report::cpu_model;
use bourse_benches::serve::{Serve, http, http_with_head};
use bourse_feed::tansu::TansuBroker;
use bourse_marketdata::placement::{Partitioner, holders};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    about = "Market data over three nodes: intake, memory, local against routed reads, recovery"
)]
struct Args {
    /// Products loaded.
    #[arg(long, default_value_t = 300_000)]
    products: usize,
    /// Partitions of the tick topic.
    #[arg(long, default_value_t = 12)]
    partitions: u32,
    /// Reads of each kind (local, routed).
    #[arg(long, default_value_t = 2_000)]
    reads: usize,
    /// A smoke run: 3,000 products, 200 reads of each kind.
    #[arg(long)]
    quick: bool,
    /// The `bourse` binary.
    #[arg(long, default_value = "target/release/bourse")]
    bourse: PathBuf,
}

/// Ticks in one feed message.
const BATCH: usize = 500;
const TS: i64 = 1_764_000_000_000;

fn symbol(i: usize) -> String {
    format!("B{i:07}")
}

fn price(i: usize) -> String {
    format!("{}.{:02}", 10 + i % 500, i % 100)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The node's `market` status: (live nodes, held, ready).
fn tier_status(addr: &str) -> Option<(usize, usize, usize)> {
    let (status, body) = http(addr, "GET", "/api/v1/cluster/node", None, &Value::Null).ok()?;
    let market = (status == 200).then_some(&body["market"])?;
    let len = |key: &str| market[key].as_array().map(Vec::len);
    Some((len("live")?, len("owned")? + len("standby")?, len("ready")?))
}

/// Whether the node has caught up with every partition it holds (a catalogue page needs a
/// caught-up holder of every partition; a node calls one caught up at its consumer's next
/// statistics report, up to a second after it is).
fn caught_up(addr: &str) -> bool {
    let Ok((200, body)) = http(addr, "GET", "/api/v1/cluster/node", None, &Value::Null) else {
        return false;
    };
    let list = |key: &str| -> Vec<u64> {
        body["market"][key]
            .as_array()
            .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_u64).collect())
    };
    let ready = list("ready");
    ["owned", "standby", "pinned"]
        .iter()
        .flat_map(|key| list(key))
        .all(|p| ready.contains(&p))
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Whether node `addr` answers product `i` with 200 and its price.
fn answered(addr: &str, i: usize) -> bool {
    let path = format!("/api/v1/products/{}", symbol(i));
    let want: f64 = price(i).parse().unwrap();
    match http(addr, "GET", &path, None, &Value::Null) {
        Ok((200, body)) => {
            body["currentPrice"]
                .as_str()
                .and_then(|p| p.parse::<f64>().ok())
                == Some(want)
        }
        _ => false,
    }
}

/// The three nodes of the run, each with its own data directory.
fn start_nodes(args: &Args, brokers: &str, addrs: &[String]) -> Vec<Option<Serve>> {
    (0..3)
        .map(|id| {
            let settings: Vec<String> = [
                "--cluster",
                "kafka",
                "--cluster-topic-check",
                "development",
                "--feed",
                "kafka",
                "--liquidity",
                "false",
                "--market-tier",
                "partitioned",
                "--snapshot-on-shutdown",
                "false",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([
                "--node-id".into(),
                id.to_string(),
                "--kafka-brokers".into(),
                brokers.to_owned(),
                "--http-addr".into(),
                addrs[id].clone(),
                "--tick-partitions".into(),
                args.partitions.to_string(),
            ])
            .collect();
            Some(Serve::start_in_temp(&args.bourse, &settings).unwrap())
        })
        .collect()
}

/// Sends every product's tick, `BATCH` to a message, each message to its symbols' partition;
/// returns each partition's products.
fn load(
    args: &Args,
    brokers: &str,
    partition_of: impl Fn(usize) -> u32,
) -> BTreeMap<u32, Vec<usize>> {
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..args.products {
        by_partition.entry(partition_of(i)).or_default().push(i);
    }
    let producer = bourse_feed::Producer::new(&bourse_feed::ProducerConfig::new(brokers)).unwrap();
    for (&partition, products) in &by_partition {
        for chunk in products.chunks(BATCH) {
            let items: Vec<Value> = chunk
                .iter()
                .map(|&i| {
                    json!({"symbol": symbol(i), "price": price(i), "size": "1", "ts": TS, "seq": 1})
                })
                .collect();
            let payload = Value::Array(items).to_string();
            let record = bourse_feed::Record {
                topic: "ticks",
                key: None,
                payload: payload.as_bytes(),
                partition: Some(i32::try_from(partition).unwrap()),
            };
            producer
                .send_blocking(&record, Duration::from_secs(60))
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    by_partition
}

/// Reads through node 0 (`addr`) of products it holds and products it forwards: the two
/// latency histograms (ns) and how many of each.
fn reads(
    args: &Args,
    addr: &str,
    partition_of: impl Fn(usize) -> u32,
) -> (Histogram<u64>, Histogram<u64>, usize, usize) {
    let mut local = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
    let mut routed = local.clone();
    let (mut n_local, mut n_routed) = (0, 0);
    for i in (0..args.products).step_by((args.products / (4 * args.reads)).max(1)) {
        let holds = holders(partition_of(i), &[0, 1, 2], 2).contains(&0);
        if (holds && n_local >= args.reads) || (!holds && n_routed >= args.reads) {
            continue;
        }
        let asked = Instant::now();
        assert!(answered(addr, i), "{} through node 0", symbol(i));
        let ns = u64::try_from(asked.elapsed().as_nanos()).unwrap();
        if holds {
            local.saturating_record(ns);
            n_local += 1;
        } else {
            routed.saturating_record(ns);
            n_routed += 1;
        }
    }
    (local, routed, n_local, n_routed)
}

/// Up to `pages` catalogue pages of `query` through `addr`, 100 a page, from the first on:
/// the latency of each (ns), and the symbols listed, in order.
fn pages(addr: &str, query: &str, pages: usize) -> (Histogram<u64>, Vec<String>) {
    let mut took = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
    let mut symbols = Vec::new();
    let mut cursor = String::new();
    for _ in 0..pages {
        let path = format!("/api/v1/products?query={query}&limit=100{cursor}");
        let asked = Instant::now();
        let (status, head, body) = http_with_head(addr, "GET", &path, None, &Value::Null).unwrap();
        took.saturating_record(u64::try_from(asked.elapsed().as_nanos()).unwrap());
        assert_eq!(status, 200, "{path}: {body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        symbols.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|p| p["symbol"].as_str().unwrap().to_owned()),
        );
        let next = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-next-cursor")
                .then(|| value.trim().to_owned())
        });
        match next {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    (took, symbols)
}

/// The products in listing order: by partition, then in the order loaded.
fn listing_order(by_partition: &BTreeMap<u32, Vec<usize>>, query: &str) -> Vec<String> {
    by_partition
        .values()
        .flatten()
        .map(|&i| symbol(i))
        .filter(|s| s.to_ascii_lowercase().starts_with(query))
        .collect()
}

/// A full topic read from nothing: how long one node (`market-tier = all`, every partition)
/// takes until it answers every partition's last product (`last_of`), then three new
/// partitioned nodes until each of them does.
fn from_a_full_topic(args: &Args, brokers: &str, last_of: &[usize]) -> (Duration, Duration) {
    let addr = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let settings: Vec<String> = [
        "--feed",
        "kafka",
        "--kafka-brokers",
        brokers,
        "--http-addr",
        &addr,
        "--liquidity",
        "false",
        "--snapshot-on-shutdown",
        "false",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let single = Serve::start_in_temp(&args.bourse, &settings).unwrap();
    wait(
        "one node to answer every partition",
        Duration::from_secs(900),
        || last_of.iter().all(|&i| answered(&addr, i)),
    );
    let one = started.elapsed();
    drop(single);
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let started = Instant::now();
    let nodes = start_nodes(args, brokers, &addrs);
    wait(
        "three nodes to answer every partition",
        Duration::from_secs(900),
        || {
            addrs
                .iter()
                .all(|a| last_of.iter().all(|&i| answered(a, i)))
        },
    );
    let three = started.elapsed();
    drop(nodes);
    (one, three)
}

/// After node 1's kill: how long until both survivors hold every partition, caught up (each
/// change of what they say is printed).
fn two_copies_again(addrs: &[String], partitions: usize, killed: Instant) -> Duration {
    let mut timeline = Vec::new();
    wait("two copies again", Duration::from_secs(900), || {
        let statuses: Vec<_> = [0, 2].iter().map(|&id| tier_status(&addrs[id])).collect();
        if timeline.last().is_none_or(|(_, last)| *last != statuses) {
            timeline.push((killed.elapsed(), statuses.clone()));
        }
        statuses.iter().all(|status| {
            status.is_some_and(|(live, held, ready)| {
                live == 2 && held == partitions && ready == partitions
            })
        })
    });
    for (at, statuses) in &timeline {
        eprintln!("{at:?} after the kill, nodes 0 and 2 (live, held, caught up): {statuses:?}");
    }
    killed.elapsed()
}

/// Pages of the catalogue and of a search through `addr` (checked against the listing
/// order): the p50 / p99 of each, as table cells.
fn catalogue_pages(
    addr: &str,
    by_partition: &BTreeMap<u32, Vec<usize>>,
    n_pages: usize,
) -> (String, String) {
    let mut cells = Vec::new();
    for query in ["", "b00"] {
        let (took, symbols) = pages(addr, query, n_pages);
        // The engine's tradable products come first, then the feed's.
        let ours = symbols
            .iter()
            .position(|s| {
                s.len() == 8 && s.starts_with('B') && s[1..].bytes().all(|b| b.is_ascii_digit())
            })
            .unwrap_or(symbols.len());
        let want = listing_order(by_partition, query);
        let got = &symbols[ours..];
        assert_eq!(got[..], want[..got.len()], "the pages of {query:?}");
        let q = |p: f64| took.value_at_quantile(p) as f64 / 1e6;
        cells.push(format!(
            "{:.2} / {:.2} ms ({} pages)",
            q(0.5),
            q(0.99),
            symbols.len().div_ceil(100)
        ));
    }
    let search = cells.pop().unwrap();
    (cells.pop().unwrap(), search)
}

/// The table of [`from_a_full_topic`].
fn print_full_topic(products: usize, one: Duration, three: Duration) {
    println!();
    println!(
        "| the whole topic ({products} products, one tick each) read from nothing | in | product copies built/s |"
    );
    println!("|---|---|---|");
    for (who, took, copies) in [
        ("one node (`market-tier = all`)", one, 1.0),
        ("three nodes, two copies", three, 2.0),
    ] {
        println!(
            "| {who} | {:.1} s | {:.0} |",
            took.as_secs_f64(),
            products as f64 * copies / took.as_secs_f64()
        );
    }
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.products = 3_000;
        args.reads = 200;
    }
    let partitioner = Partitioner::Crc32;
    let partition_of = |i: usize| partitioner.partition(symbol(i).as_bytes(), args.partitions);
    let broker = TansuBroker::start().unwrap();
    let brokers = broker.brokers();
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut nodes = start_nodes(&args, &brokers, &addrs);
    wait("three live nodes", Duration::from_secs(60), || {
        addrs
            .iter()
            .all(|a| tier_status(a).is_some_and(|(live, _, _)| live == 3))
    });
    let pid = |n: &Option<Serve>| n.as_ref().map_or(0, Serve::pid);
    let before: Vec<u64> = nodes.iter().map(|n| rss_kib(pid(n))).collect();
    let loaded = Instant::now();
    let by_partition = load(&args, &brokers, partition_of);
    let sent = loaded.elapsed();
    let last_of: Vec<usize> = by_partition.values().map(|p| *p.last().unwrap()).collect();
    wait(
        "every node to answer every partition's last product",
        Duration::from_secs(900),
        || {
            addrs
                .iter()
                .all(|a| last_of.iter().all(|&i| answered(a, i)))
        },
    );
    let took = loaded.elapsed();
    wait("every node caught up", Duration::from_secs(60), || {
        addrs.iter().all(|a| caught_up(a))
    });
    let after: Vec<u64> = nodes.iter().map(|n| rss_kib(pid(n))).collect();
    let grown: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum();
    let per_copy = grown as f64 * 1024.0 / (args.products as f64 * 2.0);
    let (local, routed, n_local, n_routed) = reads(&args, &addrs[0], partition_of);
    let (catalogue, search) = catalogue_pages(&addrs[0], &by_partition, args.reads / 4);

    // Node 1 dies: until both survivors hold every partition, caught up.
    let to_build: usize = (0..args.products)
        .filter(|&i| {
            let p = partition_of(i);
            holders(p, &[0, 1, 2], 2).contains(&1) && holders(p, &[0, 2], 2).len() == 2
        })
        .count();
    nodes[1] = None;
    let restored = two_copies_again(
        &addrs,
        usize::try_from(args.partitions).unwrap(),
        Instant::now(),
    );

    drop(nodes);
    // The whole topic again, from nothing: one node, then three.
    let (one, three) = from_a_full_topic(&args, &brokers, &last_of);

    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1e6;
    println!(
        "machine: {} ({} cores)",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| products | partitions | sent | in | products/s | ticks/s built (two copies) | memory per product per copy | local read p50 / p99 | routed read p50 / p99 | two copies again after SIGKILL |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} s | {:.1} s | {:.0} | {:.0} | {:.0} B | {:.2} / {:.2} ms ({n_local}) | {:.2} / {:.2} ms ({n_routed}) | {:.1} s ({to_build} products rebuilt) |",
        args.products,
        args.partitions,
        sent.as_secs_f64(),
        took.as_secs_f64(),
        args.products as f64 / took.as_secs_f64(),
        args.products as f64 * 2.0 / took.as_secs_f64(),
        per_copy,
        q(&local, 0.5),
        q(&local, 0.99),
        q(&routed, 0.5),
        q(&routed, 0.99),
        restored.as_secs_f64(),
    );
    println!();
    println!(
        "| catalogue pages through node 0, 100 a page, gathered from three nodes | p50 / p99 |"
    );
    println!("|---|---|");
    println!("| every product | {catalogue} |");
    println!("| search `b00` | {search} |");
    print_full_topic(args.products, one, three);
}
