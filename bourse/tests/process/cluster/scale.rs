//! `market-tier = partitioned` at scale: three nodes, 12 partitions, two copies, and
//! `BOURSE_TIER_PRODUCTS` products (30,000 by default; the README's test command runs it again
//! alone with 3,000,000).
//!
//! Every product gets two ticks in one minute. Through each node, every product's price and
//! one-minute close (the listing's `histories`) equal the reference, the listing pages through
//! them all in listing order, a search pages through its products in order, and one product in
//! 300 has its whole one-minute candle checked. Then node 1 is SIGKILLed while one more tick
//! per partition flows: within 10 s every partition is answered through both survivors with
//! its new tick, two copies exist again, and every product is checked again through them.

use std::time::{Duration, Instant};

use bourse_marketdata::placement::Partitioner;
use bourse_tests::client::{CandleRow, Client, dec, eventually, header};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::REQUEST_TIMEOUT;

const PARTITIONS: u32 = 12;
/// Products in one feed message.
const BATCH: usize = 500;
/// The minute every tick falls in (a multiple of 60,000 ms).
const T0: i64 = 1_764_000_000_000;

fn products() -> usize {
    std::env::var("BOURSE_TIER_PRODUCTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30_000)
}

fn symbol(i: usize) -> String {
    format!("S{i:07}")
}

/// The product of a symbol of this test.
fn product_of(symbol: &str) -> Option<usize> {
    let digits = symbol.strip_prefix('S')?;
    (digits.len() == 7 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// Tick `seq` (1 to 3) of product `i`: (price, size, ts).
fn tick(i: usize, seq: i64) -> (Decimal, Decimal, i64) {
    let base = Decimal::new(1000 + (i as i64 % 500) * 100 + i as i64 % 100, 2);
    let price = match seq {
        1 => base,
        2 => base + Decimal::new(i as i64 % 7 - 3, 1),
        _ => base + Decimal::new(i as i64 % 5 + 1, 1),
    };
    (price, Decimal::from(seq), T0 + seq * 1000)
}

fn tick_json(i: usize, seq: i64) -> Value {
    let (price, size, ts) = tick(i, seq);
    json!({"symbol": symbol(i), "price": price.to_string(), "size": size.to_string(), "ts": ts,
           "seq": seq})
}

/// The products of each partition, in the order published.
fn by_partition(n: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); PARTITIONS as usize];
    for i in 0..n {
        out[Partitioner::Crc32.partition(symbol(i).as_bytes(), PARTITIONS) as usize].push(i);
    }
    out
}

/// Publishes ticks `seqs` of `products` of each partition, `BATCH` products a message, to
/// the partition their symbols hash to (what the nodes recompute).
fn publish(brokers: &str, partitions: &[Vec<usize>], seqs: &[i64]) {
    let producer = bourse_feed::Producer::new(&bourse_feed::ProducerConfig::new(brokers)).unwrap();
    for (partition, products) in partitions.iter().enumerate() {
        for chunk in products.chunks(BATCH) {
            let items: Vec<Value> = chunk
                .iter()
                .flat_map(|&i| seqs.iter().map(move |&seq| tick_json(i, seq)))
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
    producer.flush(Duration::from_secs(300)).unwrap();
}

/// Whether `client` answers product `i` with `price`.
fn answers(client: &Client, i: usize, price: Decimal) -> bool {
    let path = format!("/api/v1/products/{}", symbol(i));
    match client.try_call_with_head("GET", &path, None, &Value::Null, REQUEST_TIMEOUT) {
        Ok((200, _, body)) => {
            body["currentPrice"].as_str().and_then(|p| p.parse().ok()) == Some(price)
        }
        _ => false,
    }
}

/// The reference of product `i` after ticks `1..=last`: its price and its one-minute candle.
fn reference(i: usize, last: i64) -> (Decimal, CandleRow) {
    let ticks: Vec<_> = (1..=last).map(|seq| tick(i, seq)).collect();
    let prices = ticks.iter().map(|t| t.0);
    let candle = (
        T0,
        ticks[0].0,
        prices.clone().max().unwrap(),
        prices.min().unwrap(),
        ticks[ticks.len() - 1].0,
        ticks.iter().map(|t| t.1).sum(),
        ticks.len() as u64,
    );
    (ticks[ticks.len() - 1].0, candle)
}

/// Through `client`, every page of the listing (500 a page): the test's products are all
/// there, after the tradable ones, in listing order (`order`), each with the price and
/// one-minute close of its reference (`last(i)`: its last tick).
fn check_listing(client: &Client, order: &[usize], last: &dyn Fn(usize) -> i64) {
    let mut at = 0;
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/products?limit=500{cursor}");
        let (status, head, page) = client.call_with_head("GET", &path, None, &Value::Null);
        assert_eq!(status, 200, "{path} via {}: {page}", client.addr);
        for item in page.as_array().unwrap() {
            let Some(i) = item["symbol"].as_str().and_then(product_of) else {
                assert_eq!(at, 0, "a product not of the test after the test's: {item}");
                continue;
            };
            assert_eq!(Some(&i), order.get(at), "listing order via {}", client.addr);
            let (price, candle) = reference(i, last(i));
            let listed: Decimal = item["currentPrice"].as_str().unwrap().parse().unwrap();
            assert_eq!(listed, price, "{item} via {}", client.addr);
            let closes = item["histories"].as_array().unwrap();
            let close = closes
                .first()
                .map(|c| (dec(&c["price"]), c["timestamp"].as_i64()));
            assert_eq!(
                (closes.len(), close),
                (1, Some((candle.4, Some(T0)))),
                "{item} via {}",
                client.addr
            );
            at += 1;
        }
        match header(&head, "x-next-cursor") {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(at, order.len(), "products listed via {}", client.addr);
}

/// Through `client`: a search pages (7 a page) through its products in listing order, and
/// one product in 300 has its one-minute candle equal to its reference.
fn check_search_and_candles(client: &Client, order: &[usize], last: &dyn Fn(usize) -> i64) {
    let query = "s00012";
    let want: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| symbol(i).to_ascii_lowercase().starts_with(query))
        .collect();
    let mut found = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/products?query={query}&limit=7{cursor}");
        let (status, head, page) = client.call_with_head("GET", &path, None, &Value::Null);
        assert_eq!(status, 200, "{path} via {}: {page}", client.addr);
        found.extend(
            page.as_array()
                .unwrap()
                .iter()
                .filter_map(|p| product_of(p["symbol"].as_str()?)),
        );
        match header(&head, "x-next-cursor") {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(found, want, "search {query:?} via {}", client.addr);
    for &i in order.iter().step_by(300) {
        let path = format!("/api/v1/products/{}/candles?interval=1m", symbol(i));
        let (status, body) = client.call("GET", &path, None, &Value::Null);
        assert_eq!(status, 200, "{path} via {}: {body}", client.addr);
        assert_eq!(
            bourse_tests::client::candle_rows(&body),
            [reference(i, last(i)).1],
            "{path} via {}",
            client.addr
        );
    }
}

#[test]
fn many_products_over_three_nodes_are_exact_through_each_and_survive_a_node() {
    let n = products();
    let mut cluster = super::tier::partitioned_cluster();
    let brokers = cluster.broker.brokers();
    let partitions = by_partition(n);
    let order: Vec<usize> = partitions.iter().flatten().copied().collect();
    let lasts: Vec<usize> = partitions
        .iter()
        .filter_map(|p| p.last().copied())
        .collect();
    let started = Instant::now();
    publish(&brokers, &partitions, &[1, 2]);
    let sent = started.elapsed();
    for id in 0..3 {
        let client = cluster.client(id);
        for &i in &lasts {
            let price = tick(i, 2).0;
            eventually(&format!("{} through node {id}", symbol(i)), || {
                answers(&client, i, price).then_some(())
            });
        }
    }
    eprintln!(
        "{n} products ({} ticks) published in {sent:?}, answered through every node {:?} after \
         the first was sent",
        2 * n,
        started.elapsed()
    );
    super::tier::caught_up(&cluster, &[0, 1, 2]);
    let checked = Instant::now();
    for id in 0..3 {
        let client = cluster.client(id);
        check_listing(&client, &order, &|_| 2);
        check_search_and_candles(&client, &order, &|_| 2);
    }
    eprintln!(
        "every product checked through three nodes in {:?}",
        checked.elapsed()
    );

    // Node 1 dies; a third tick of each partition's last product is published meanwhile.
    cluster.kill(1);
    let killed = Instant::now();
    let newest: Vec<Vec<usize>> = partitions
        .iter()
        .map(|p| p.last().copied().into_iter().collect())
        .collect();
    publish(&brokers, &newest, &[3]);
    for id in [0, 2] {
        let client = cluster.client(id);
        for &i in &lasts {
            let price = tick(i, 3).0;
            eventually(&format!("{} through node {id}", symbol(i)), || {
                answers(&client, i, price).then_some(())
            });
        }
    }
    let served_again = killed.elapsed();
    eprintln!("every partition served again through nodes 0 and 2 {served_again:?} after the kill");
    assert!(served_again < Duration::from_secs(10), "{served_again:?}");
    eventually("two copies on the survivors", || {
        let held: Vec<(usize, usize)> = [0, 2]
            .iter()
            .filter_map(|&id| super::tier::held_partitions(&cluster, id))
            .collect();
        (held == [(12, 12), (12, 12)]).then_some(())
    });
    eprintln!("two copies again {:?} after the kill", killed.elapsed());
    let last = |i: usize| if lasts.contains(&i) { 3 } else { 2 };
    for id in [0, 2] {
        let client = cluster.client(id);
        check_listing(&client, &order, &last);
        check_search_and_candles(&client, &order, &last);
    }
}
