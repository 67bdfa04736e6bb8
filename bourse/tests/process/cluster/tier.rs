//! `market-tier = partitioned` with real processes: tansu and three nodes, the tick topic's
//! partitions spread over them, two copies each.

use std::time::{Duration, Instant};

use bourse_tests::client::{Client, eventually};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{Cluster, REQUEST_TIMEOUT};

/// Three nodes on the tick feed with `market-tier = partitioned`, 12 partitions, two copies.
pub(super) fn partitioned_cluster() -> Cluster {
    Cluster::start(&[
        "--feed",
        "kafka",
        "--market-tier",
        "partitioned",
        "--tick-partitions",
        "12",
    ])
}

/// The products of the partitioned market-data test, and their ticks: `MT00000`... each with
/// ticks of sequence numbers `seqs`, all in one minute.
const TIER_PRODUCTS: usize = 1200;
/// The minute every tick of the test falls in (1,764,000,000,000 ms is a multiple of 60,000).
const TIER_T0: i64 = 1_764_000_000_000;

fn tier_symbol(i: usize) -> String {
    format!("MT{i:05}")
}

/// Tick `seq` of product `i`: (price, size, ts).
fn tier_tick(i: usize, seq: i64) -> (Decimal, Decimal, i64) {
    let price = Decimal::new(1000 + (i as i64 % 90) * 100 + (seq * 37) % 50, 2);
    (price, Decimal::from(seq), TIER_T0 + seq * 1000)
}

/// Publishes ticks `seqs` of every product, one message a product keyed by its symbol
/// (librdkafka's default partitioner, which `tick-partitioner = crc32` recomputes).
fn publish_tier_ticks(brokers: &str, seqs: std::ops::RangeInclusive<i64>) {
    let producer = bourse_feed::Producer::new(&bourse_feed::ProducerConfig::new(brokers)).unwrap();
    for i in 0..TIER_PRODUCTS {
        let symbol = tier_symbol(i);
        let items: Vec<Value> = seqs
            .clone()
            .map(|seq| {
                let (price, size, ts) = tier_tick(i, seq);
                json!({"symbol": symbol, "price": price.to_string(), "size": size.to_string(),
                       "ts": ts, "seq": seq})
            })
            .collect();
        let payload = Value::Array(items).to_string();
        let record = bourse_feed::Record::keyed("ticks", symbol.as_bytes(), payload.as_bytes());
        producer
            .send_blocking(&record, Duration::from_secs(30))
            .unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// The exchange rate of the test: one tick of EURUSD at 1.25 US dollars a euro, before every
/// product's ticks. Every node holds its partition (`rate-pairs`), whoever owns it.
const RATE: &str = "1.25";

fn publish_rate(brokers: &str) {
    let producer = bourse_feed::Producer::new(&bourse_feed::ProducerConfig::new(brokers)).unwrap();
    let payload = json!([{"symbol": "EURUSD", "price": RATE, "size": "1", "ts": TIER_T0,
                          "seq": 1}])
    .to_string();
    let record = bourse_feed::Record::keyed("ticks", b"EURUSD", payload.as_bytes());
    producer
        .send_blocking(&record, Duration::from_secs(30))
        .unwrap();
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// Through each of `nodes`, the catalogue in euros: every product's price is its newest tick's
/// (of `1..=last`) divided by the rate, at the rate's tick, whichever node holds the product.
fn converted_through(cluster: &Cluster, nodes: &[usize], last: i64) {
    let rate: Decimal = RATE.parse().unwrap();
    for &id in nodes {
        let client = cluster.client(id);
        let mut seen = 0;
        let mut cursor = String::new();
        loop {
            let path = format!("/api/v1/products?currency=EUR&limit=500{cursor}");
            let (status, head, page) = client.call_with_head("GET", &path, None, &Value::Null);
            assert_eq!(status, 200, "{path} via node {id}: {page}");
            for item in page.as_array().unwrap() {
                let Some(i) = item["symbol"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("MT"))
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                let want = (tier_tick(i, last).0 / rate).round_dp(8);
                let price: Decimal = item["currentPrice"].as_str().unwrap().parse().unwrap();
                assert_eq!(price, want, "{item} via node {id}");
                assert_eq!(item["ownCurrency"], "USD", "{item}");
                assert_eq!(item["rate"]["pair"], "EURUSD", "{item}");
                assert_eq!(item["rate"]["time"], TIER_T0, "{item}");
                seen += 1;
            }
            match bourse_tests::client::header(&head, "x-next-cursor") {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(seen, TIER_PRODUCTS, "products in euros via node {id}");
    }
}

/// Whether `client` answers product `i` with the newest of ticks `1..=last` as its price.
fn tier_price_is(client: &Client, i: usize, last: i64) -> bool {
    let path = format!("/api/v1/products/{}", tier_symbol(i));
    match client.try_call_with_head("GET", &path, None, &Value::Null, REQUEST_TIMEOUT) {
        Ok((200, _, body)) => {
            body["currentPrice"]
                .as_str()
                .and_then(|p| p.parse::<Decimal>().ok())
                == Some(tier_tick(i, last).0)
        }
        _ => false,
    }
}

/// Product `i`'s one-minute candle through `client` equals the aggregate of ticks `1..=last`.
fn check_tier_candle(client: &Client, i: usize, last: i64) {
    let path = format!("/api/v1/products/{}/candles?interval=1m", tier_symbol(i));
    let (status, body) = client.call("GET", &path, None, &Value::Null);
    assert_eq!(status, 200, "{path} via {}: {body}", client.addr);
    let ticks: Vec<Value> = (1..=last)
        .map(|seq| {
            let (price, size, ts) = tier_tick(i, seq);
            json!({"price": price.to_string(), "size": size.to_string(), "ts": ts})
        })
        .collect();
    let want = bourse_tests::client::aggregate(&ticks, "ts", 60_000);
    assert_eq!(want.len(), 1, "the ticks fall in one minute");
    assert_eq!(
        bourse_tests::client::candle_rows(&body),
        want,
        "{path} via {}",
        client.addr
    );
}

/// A WebSocket client of the node at `addr`.
fn tier_socket(addr: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    tungstenite::client(format!("ws://{addr}/api/v1/ws"), stream)
        .unwrap()
        .0
}

/// Reads messages until one `wanted` says is it.
fn tier_read_until(
    socket: &mut tungstenite::WebSocket<std::net::TcpStream>,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        if let tungstenite::Message::Text(text) = socket.read().expect("a message") {
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            assert!(message.get("error").is_none(), "{message}");
            if wanted(&message) {
                return message;
            }
        }
    }
}

/// The prices of the ticks a `ticks:` message carries.
fn tier_prices(message: &Value) -> Vec<Decimal> {
    let data = &message["data"];
    let ticks: Vec<&Value> = match data {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    ticks
        .iter()
        .filter_map(|t| t["price"].as_str()?.parse().ok())
        .collect()
}

/// The partitions node `id` holds (owned and standby) and has caught up with, as its
/// `GET /api/v1/cluster/node` says.
pub(super) fn held_partitions(cluster: &Cluster, id: usize) -> Option<(usize, usize)> {
    let (status, body) = cluster
        .client(id)
        .call("GET", "/api/v1/cluster/node", None, &Value::Null);
    let market = (status == 200).then_some(&body["market"])?;
    let count = |key: &str| market[key].as_array().map(Vec::len);
    Some((count("owned")? + count("standby")?, count("ready")?))
}

/// Waits until each of `nodes` has caught up with every partition it holds. A node answers a
/// product as soon as one holder has; a catalogue page needs a caught-up holder of every
/// partition (else it is 503, never a page with a hole), and a node calls a partition caught
/// up only at the next statistics report of its consumer, up to a second later.
pub(super) fn caught_up(cluster: &Cluster, nodes: &[usize]) {
    for &id in nodes {
        let client = cluster.client(id);
        eventually(
            &format!("node {id} to catch up with its partitions"),
            || {
                let (status, body) = client.call("GET", "/api/v1/cluster/node", None, &Value::Null);
                let market = (status == 200).then_some(&body["market"])?;
                let list = |key: &str| -> Option<Vec<u64>> {
                    market[key].as_array()?.iter().map(Value::as_u64).collect()
                };
                let ready = list("ready")?;
                let held = [list("owned")?, list("standby")?, list("pinned")?].concat();
                (!held.is_empty() && held.iter().all(|p| ready.contains(p))).then_some(())
            },
        );
    }
}

/// `market-tier = partitioned`: three nodes, 12 partitions of the tick topic, two copies of
/// each. Every product is answered through every node as its holders have it; a node
/// SIGKILLed while ticks flow is replaced by the standbys within 10 s with exact candles;
/// the node restarts and serves again.
#[test]
fn partitioned_market_data_is_answered_through_any_node_and_survives_a_node() {
    let mut cluster = partitioned_cluster();
    let brokers = cluster.broker.brokers();
    // The nodes place the partitions once they hear each other's heartbeats.
    let placed = Instant::now();
    eventually("the three nodes to share the partitions", || {
        let held: Vec<usize> = (0..3)
            .filter_map(|id| held_partitions(&cluster, id).map(|(held, _)| held))
            .collect();
        (held.len() == 3 && held.iter().sum::<usize>() == 24).then_some(())
    });
    eprintln!(
        "partitions placed over three nodes {:?} after start",
        placed.elapsed()
    );
    publish_rate(&brokers);
    publish_tier_ticks(&brokers, 1..=3);
    every_product_through(&cluster, &[0, 1, 2], 3);
    caught_up(&cluster, &[0, 1, 2]);
    converted_through(&cluster, &[0, 1, 2], 3);
    // Each node holds only its partitions (two copies of 12 over three nodes), and has
    // caught up with all of them.
    let held: Vec<(usize, usize)> = (0..3)
        .map(|id| held_partitions(&cluster, id).expect("the node's placement"))
        .collect();
    assert!(held.iter().all(|&(n, _)| n < 12), "{held:?}");
    assert_eq!(held.iter().map(|&(n, _)| n).sum::<usize>(), 24, "{held:?}");
    the_same_listing_through(&cluster, &[0, 1, 2]);
    a_single_node_lists_the_same(&cluster, &brokers);
    let (mut socket, channel, watched) = watch_a_product_of_node_1(&cluster);

    // Node 1 dies; ticks 4 and 5 of every product are published meanwhile.
    cluster.kill(1);
    let killed = Instant::now();
    publish_tier_ticks(&brokers, 4..=5);
    every_product_through(&cluster, &[0, 2], 5);
    let served_again = killed.elapsed();
    // The WebSocket client was told of the gap, then got the next holder's snapshot, which
    // has the newest tick.
    let gap = tier_read_until(&mut socket, |m| m["type"] == "gap");
    assert_eq!(gap["channel"], json!(channel));
    let newest = tier_tick(watched, 5).0;
    tier_read_until(&mut socket, |m| {
        m["channel"] == json!(channel) && tier_prices(m).contains(&newest)
    });
    eprintln!("every product served again through nodes 0 and 2 {served_again:?} after the kill");
    assert!(served_again < Duration::from_secs(10), "{served_again:?}");
    // Two copies again: the survivors hold every partition between them, twice.
    eventually("two copies on the survivors", || {
        let held: Vec<(usize, usize)> = [0, 2]
            .iter()
            .filter_map(|&id| held_partitions(&cluster, id))
            .collect();
        (held == [(12, 12), (12, 12)]).then_some(())
    });
    the_same_listing_through(&cluster, &[0, 2]);
    converted_through(&cluster, &[0, 2], 5);
    // Each survivor now answers every product itself, at once: a partition it calls caught
    // up is caught up.
    for id in [0, 2] {
        let client = cluster.client(id);
        for i in 0..TIER_PRODUCTS {
            assert!(
                tier_price_is(&client, i, 5),
                "{} through node {id}, which says it holds it caught up",
                tier_symbol(i)
            );
        }
    }
    // Node 1 back: it takes its partitions up again and serves.
    cluster.start_node(1, &[]);
    cluster.wait_fresh(1);
    every_product_through(&cluster, &[1], 5);
}

/// Every page of `GET /products?query=&limit=` through `client`, following the cursors: the
/// symbols.
fn listing_through(client: &Client, query: &str, limit: usize) -> Vec<String> {
    let mut symbols = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/products?query={query}&limit={limit}{cursor}");
        let (status, head, page) = client.call_with_head("GET", &path, None, &Value::Null);
        assert_eq!(status, 200, "{path} via {}: {page}", client.addr);
        let items = page.as_array().expect("a page");
        assert!(items.len() <= limit);
        symbols.extend(
            items
                .iter()
                .map(|p| p["symbol"].as_str().unwrap().to_string()),
        );
        match bourse_tests::client::header(&head, "x-next-cursor") {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return symbols,
        }
    }
}

/// Through each of `nodes`, the catalogue pages (a page size that crosses partitions) list
/// the same products in the same order: the tradable ones first, then the test's by
/// partition and, within one, in the order they were first published. A search does too.
fn the_same_listing_through(cluster: &Cluster, nodes: &[usize]) {
    let mut published: Vec<(u32, usize)> = (0..TIER_PRODUCTS)
        .map(|i| {
            let partition = bourse_marketdata::placement::Partitioner::Crc32
                .partition(tier_symbol(i).as_bytes(), 12);
            (partition, i)
        })
        .collect();
    // The rate was published first: its partition's first product.
    let rate_partition = bourse_marketdata::placement::Partitioner::Crc32.partition(b"EURUSD", 12);
    published.push((rate_partition, usize::MAX));
    published.sort_unstable_by_key(|&(partition, i)| (partition, i.wrapping_add(1)));
    let expected: Vec<String> = published
        .iter()
        .map(|&(_, i)| {
            if i == usize::MAX {
                "EURUSD".into()
            } else {
                tier_symbol(i)
            }
        })
        .collect();
    for &id in nodes {
        let client = cluster.client(id);
        let all = listing_through(&client, "", 97);
        let tradable = all
            .iter()
            .take_while(|s| !s.starts_with("MT") && *s != "EURUSD")
            .count();
        assert!(tradable > 0, "the engine's products come first: {all:?}");
        assert_eq!(
            all[tradable..],
            expected[..],
            "the listing through node {id}"
        );
        let found = listing_through(&client, "mt0", 61);
        let want: Vec<String> = expected
            .iter()
            .filter(|s| s.starts_with("MT0"))
            .cloned()
            .collect();
        assert_eq!(found, want, "a search through node {id}");
    }
}

/// A node of its own on the same topic (`market-tier = all`, every partition, no cluster)
/// lists the feed's products in the order the three nodes do together.
fn a_single_node_lists_the_same(cluster: &Cluster, brokers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut alone = bourse_tests::process::Server::start_with_market(
        std::path::Path::new(crate::BOURSE),
        dir.path(),
        &[
            "--feed",
            "kafka",
            "--kafka-brokers",
            brokers,
            "--liquidity",
            "false",
        ],
    );
    let client = Client {
        addr: bourse_tests::process::http_addr(&mut alone),
    };
    let feed_part = |all: Vec<String>| -> Vec<String> {
        let tradable = all
            .iter()
            .take_while(|s| !s.starts_with("MT") && *s != "EURUSD")
            .count();
        all[tradable..].to_vec()
    };
    let together = feed_part(listing_through(&cluster.client(0), "", 97));
    let last = tier_symbol(TIER_PRODUCTS - 1);
    eventually("the single node to have every product", || {
        let path = format!("/api/v1/products/{last}");
        (client.call("GET", &path, None, &Value::Null).0 == 200).then_some(())
    });
    eventually("the single node to list every product", || {
        let alone = feed_part(listing_through(&client, "", 97));
        (alone.len() == together.len()).then_some(alone)
    });
    assert_eq!(
        feed_part(listing_through(&client, "", 97)),
        together,
        "one node's listing against three nodes'"
    );
}

/// Every product answered through each of `nodes` with the newest of ticks `1..=last` (as
/// soon as the node can), and one product in 40 with its exact candle.
fn every_product_through(cluster: &Cluster, nodes: &[usize], last: i64) {
    for &id in nodes {
        let client = cluster.client(id);
        for i in 0..TIER_PRODUCTS {
            eventually(&format!("{} through node {id}", tier_symbol(i)), || {
                tier_price_is(&client, i, last).then_some(())
            });
        }
        for i in (0..TIER_PRODUCTS).step_by(40) {
            check_tier_candle(&client, i, last);
        }
    }
}

/// A WebSocket client of node 0 on `ticks:` of a product node 1 owns and node 0 does not
/// hold (relayed), after its first snapshot: the socket, the channel and the product.
fn watch_a_product_of_node_1(
    cluster: &Cluster,
) -> (tungstenite::WebSocket<std::net::TcpStream>, String, usize) {
    let watched = (0..TIER_PRODUCTS)
        .find(|&i| {
            let partition = bourse_marketdata::placement::Partitioner::Crc32
                .partition(tier_symbol(i).as_bytes(), 12);
            bourse_marketdata::placement::holders(partition, &[0, 1, 2], 2) == [1, 2]
        })
        .expect("a product owned by node 1 and not held by node 0");
    let mut socket = tier_socket(&cluster.nodes[0].addr);
    let channel = format!("ticks:{}", tier_symbol(watched));
    socket
        .send(tungstenite::Message::text(
            json!({"op": "subscribe", "channels": [channel]}).to_string(),
        ))
        .unwrap();
    let first = tier_read_until(&mut socket, |m| m["type"] == "snapshot");
    assert_eq!(first["channel"], json!(channel));
    assert!(
        tier_prices(&first).contains(&tier_tick(watched, 3).0),
        "{first}"
    );
    (socket, channel, watched)
}
