//! The Kafka path end to end: a real Kafka-protocol broker (tansu, memory storage) on
//! 127.0.0.1, `bourse serve --feed kafka` consuming it.
//!
//! - Ticks with duplicates, out-of-order and late ones, and malformed messages: the history
//!   and the candles are exactly what the rules say, and every malformed message is counted.
//! - The gateway is killed (SIGKILL) while a producer keeps publishing, and restarted: every
//!   tick is there exactly once.
//! - The broker goes away (SIGSTOP): the gateway keeps serving; when it comes back
//!   (SIGCONT), what was published meanwhile arrives.

use std::time::{Duration, Instant};

use bourse_feed::tansu::TansuBroker;
use std::sync::{Arc, Mutex};

use bourse_feed::{
    AssignmentMode, Consumer, ConsumerConfig, FeedMessage, Producer, ProducerConfig, Record,
    create_topic,
};
use bourse_tests::client::{Client, aggregate, candle_rows, dec, eventually};
use bourse_tests::process::http_addr;

use bourse_tests::process::Server;

use crate::{BOURSE, start_with_market};
use rust_decimal::Decimal;
use serde_json::{Value, json};

pub(crate) const TOPIC: &str = "ticks";
pub(crate) const DEAD_LETTER: &str = "ticks-dead";
pub(crate) const T0: i64 = 1_764_000_000_000;

pub(crate) fn producer(brokers: &str) -> Producer {
    Producer::new(&ProducerConfig::new(brokers).property("linger.ms", "1")).unwrap()
}

pub(crate) fn send(producer: &Producer, key: &str, payload: &str) {
    producer
        .send_blocking(
            &Record::keyed(TOPIC, key.as_bytes(), payload.as_bytes()),
            Duration::from_secs(30),
        )
        .unwrap();
}

pub(crate) fn tick(symbol: &str, seq: u64, ts: i64, price: &str, size: u64) -> Value {
    json!({"symbol": symbol, "price": price, "size": size.to_string(), "ts": ts, "seq": seq})
}

pub(crate) fn serve(dir: &std::path::Path, brokers: &str) -> (Server, Client) {
    let mut server = start_with_market(
        dir,
        // Every partition to this gateway: a restart after SIGKILL resumes at once, instead
        // of waiting out the group's session timeout for the dead member (the consumer
        // group's sharing and rebalancing are tested in the feed crate).
        &[
            "--feed",
            "kafka",
            "--kafka-brokers",
            brokers,
            "--kafka-assignment",
            "all",
            "--kafka-dead-letter",
            DEAD_LETTER,
            "--liquidity",
            "false",
        ],
    );
    let client = Client {
        addr: http_addr(&mut server),
    };
    (server, client)
}

pub(crate) fn ticks_of(client: &Client, symbol: &str) -> Vec<Value> {
    let (status, body) = client.call(
        "GET",
        &format!("/api/v1/products/{symbol}/ticks?limit=5000"),
        None,
        &Value::Null,
    );
    if status != 200 {
        return Vec::new();
    }
    body.as_array().cloned().unwrap_or_default()
}

/// A metric's value, if `/metrics` has it.
fn metric_of(client: &Client, name: &str) -> Option<u64> {
    let (_, text) = bourse_tests::client::http_get(&client.addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

fn metric(client: &Client, name: &str) -> u64 {
    metric_of(client, name).unwrap_or(0)
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn ticks_from_kafka_make_exact_history_and_candles_across_a_crash_and_a_broker_outage() {
    let mut broker = TansuBroker::start()
        .expect("tansu (cargo install tansu --version 0.6.0 --features dynostore,libsql --locked)");
    let brokers = broker.brokers();
    create_topic(&brokers, TOPIC, 3).unwrap();
    create_topic(&brokers, DEAD_LETTER, 1).unwrap();
    let p = producer(&brokers);

    // A product definition, 30 ticks, a duplicate, two out of order, a late one, and three
    // malformed messages.
    send(
        &p,
        "KA",
        r#"{"type":"product","symbol":"KA","name":"Kafka Alpha","currency":"USD","tickSize":"0.01"}"#,
    );
    let mut taken = Vec::new();
    for seq in 1..=30u64 {
        if seq == 11 || seq == 12 {
            continue;
        }
        let t = tick(
            "KA",
            seq,
            T0 + seq as i64 * 250,
            &format!("{}.{:02}", 100 + seq % 7, seq),
            seq,
        );
        taken.push(t.clone());
        send(&p, "KA", &t.to_string());
    }
    // 12 before 11: out of order, both taken; their times are in order of seq.
    for seq in [12u64, 11] {
        let t = tick("KA", seq, T0 + seq as i64 * 250, "99.5", 3);
        taken.push(t.clone());
        send(&p, "KA", &t.to_string());
    }
    send(
        &p,
        "KA",
        &tick("KA", 5, T0 + 5 * 250, "555", 555).to_string(),
    ); // a duplicate
    send(&p, "KA", &tick("KA", 31, T0 - 120_000, "1", 1).to_string()); // 2 minutes late
    send(&p, "KA", "not json");
    send(
        &p,
        "KA",
        r#"{"symbol":"KA","price":"-1","size":"1","ts":1,"seq":99}"#,
    );
    send(&p, "KA", "[]");
    // A batch of another product in one message.
    let batch: Vec<Value> = (1..=5)
        .map(|s| tick("KB", s, T0 + s as i64, "10", 1))
        .collect();
    send(&p, "KB", &Value::Array(batch).to_string());

    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), &brokers);
    let got = eventually("the ticks of KA", || {
        let got = ticks_of(&client, "KA");
        (got.len() == taken.len()
            && ticks_of(&client, "KB").len() == 5
            && metric(&client, "bourse_market_malformed_empty_total") == 1)
            .then_some(got)
    });
    taken.sort_by_key(|t| t["ts"].as_i64().unwrap());
    let strip = |list: &[Value]| -> Vec<(u64, String, String)> {
        list.iter()
            .map(|t| {
                (
                    t["seq"].as_u64().unwrap(),
                    t["price"].as_str().unwrap().to_string(),
                    t["size"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let expected: Vec<(u64, String, String)> = taken
        .iter()
        .map(|t| {
            (
                t["seq"].as_u64().unwrap(),
                dec(&t["price"]).normalize().to_string(),
                t["size"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(strip(&got), expected);
    assert_eq!(metric(&client, "bourse_market_duplicates_total"), 1);
    assert_eq!(metric(&client, "bourse_market_late_total"), 1);
    assert_eq!(metric(&client, "bourse_market_malformed_json_total"), 1);
    assert_eq!(metric(&client, "bourse_market_malformed_number_total"), 1);
    // The three malformed messages went to the dead-letter topic as they were.
    let dead: Arc<Mutex<Vec<String>>> = Arc::default();
    let consumer = {
        let dead = Arc::clone(&dead);
        let mut config = ConsumerConfig::new(brokers.clone(), DEAD_LETTER, "dead-letter-reader");
        config.assignment = AssignmentMode::AllPartitions;
        Consumer::start(
            config,
            |_| None,
            move |m: FeedMessage<'_>| {
                dead.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(m.payload).into_owned());
            },
        )
        .unwrap()
    };
    eventually("the dead letters", || {
        (dead.lock().unwrap().len() == 3).then_some(())
    });
    drop(consumer);
    assert_eq!(
        *dead.lock().unwrap(),
        [
            "not json",
            r#"{"symbol":"KA","price":"-1","size":"1","ts":1,"seq":99}"#,
            "[]"
        ]
    );
    let product = client.expect(200, "GET", "/api/v1/products/KA", None, Value::Null);
    assert_eq!(
        (&product["productName"], &product["tradable"]),
        (&json!("Kafka Alpha"), &json!(false))
    );

    // Candles of 1s, exactly: by bucket, open/close by time, high, low, volume, count.
    let candles = client.expect(
        200,
        "GET",
        "/api/v1/products/KA/candles?interval=1s",
        None,
        Value::Null,
    );
    assert_eq!(candle_rows(&candles), aggregate(&taken, "ts", 1_000));

    // SIGKILL while a producer publishes 3,000 ticks of KC (10 a message); restart.
    let producing = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            let p = producer(&brokers);
            for m in 0..300u64 {
                let batch: Vec<Value> = (1..=10)
                    .map(|k| tick("KC", m * 10 + k, T0 + (m * 10 + k) as i64 * 10, "20", 2))
                    .collect();
                send(&p, "KC", &Value::Array(batch).to_string());
                if m % 50 == 0 {
                    p.flush(Duration::from_secs(30)).unwrap();
                }
            }
            p.flush(Duration::from_secs(30)).unwrap();
        })
    };
    eventually("some of KC's ticks before the kill", || {
        (ticks_of(&client, "KC").len() >= 200).then_some(())
    });
    drop(server); // SIGKILL
    let (mut server, client) = serve(dir.path(), &brokers);
    producing.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let kc = loop {
        let got = ticks_of(&client, "KC");
        if got.len() >= 3_000 {
            break got;
        }
        if Instant::now() > deadline {
            let lag = metric(&client, "bourse_kafka_lag");
            let errors = metric(&client, "bourse_kafka_errors_total");
            // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped, so
            // the signal reaches no other process.
            unsafe { libc::kill(server.pid(), libc::SIGKILL) };
            panic!(
                "{} of KC's 3,000 ticks after 90 s; lag {lag}, errors {errors}; log:\n{}",
                got.len(),
                server.rest_of_log()
            );
        }
        std::thread::yield_now();
    };
    let seqs: Vec<u64> = kc.iter().map(|t| t["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=3_000).collect::<Vec<_>>(),
        "every tick once, in order"
    );
    // Caught up: the consumer's lag (from librdkafka's statistics, every second) falls to 0,
    // and the broker counts as reachable.
    eventually("a lag of 0", || {
        (metric_of(&client, "bourse_kafka_lag") == Some(0)
            && metric_of(&client, "bourse_kafka_broker_reachable") == Some(1))
        .then_some(())
    });
    let day = client.expect(
        200,
        "GET",
        "/api/v1/products/KC/candles?interval=1d",
        None,
        Value::Null,
    );
    assert_eq!(
        (&day[0]["count"], &day[0]["volume"]),
        (&json!(3_000), &json!("6000"))
    );
    // KA did not change across the crash.
    assert_eq!(strip(&ticks_of(&client, "KA")), expected);

    // The broker goes away: the gateway keeps serving, and catches up when it is back.
    broker.pause().unwrap();
    let while_away = client.expect(
        200,
        "GET",
        "/api/v1/products/KC/candles?interval=1d",
        None,
        Value::Null,
    );
    assert_eq!(while_away, day);
    assert_eq!(
        client.expect(
            200,
            "GET",
            "/api/v1/products?query=kafka",
            None,
            Value::Null
        )[0]["symbol"],
        "KA"
    );
    broker.resume().unwrap();
    send(
        &p,
        "KC",
        &tick("KC", 3_001, T0 + 30_010, "21", 1).to_string(),
    );
    eventually("the tick sent after the broker came back", || {
        (ticks_of(&client, "KC").len() == 3_001).then_some(())
    });
    server.stop();
}

#[test]
fn feed_sim_publishes_what_a_gateway_consumes_and_the_liquidity_provider_quotes_on_it() {
    let broker = TansuBroker::start().expect("tansu");
    let brokers = broker.brokers();
    let status = std::process::Command::new(BOURSE)
        .args([
            "feed-sim",
            "--brokers",
            &brokers,
            "--count",
            "480",
            "--rate",
            "0",
            "--batch",
            "5",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_with_market(
        dir.path(),
        &[
            "--feed",
            "kafka",
            "--kafka-brokers",
            &brokers,
            "--kafka-assignment",
            "all",
        ],
    );
    let client = Client {
        addr: http_addr(&mut server),
    };
    // The eight stocks and the four exchange rates, 40 ticks each.
    let symbols = [
        "AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "META", "NFLX", "EURUSD", "GBPUSD",
        "USDJPY", "USDINR",
    ];
    eventually("the 480 simulated ticks", || {
        let n: usize = symbols.iter().map(|s| ticks_of(&client, s).len()).sum();
        (n == 480).then_some(())
    });
    for symbol in symbols {
        let seqs: Vec<u64> = ticks_of(&client, symbol)
            .iter()
            .map(|t| t["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "{symbol}");
    }
    let product = client.expect(200, "GET", "/api/v1/products/NVDA", None, Value::Null);
    assert_eq!(product["productName"], "NVIDIA Corporation");
    // The liquidity provider quotes around the Kafka price of a tradable product.
    let price = dec(&product["currentPrice"]);
    let book = eventually("quotes on NVDA", || {
        let book = client.expect(200, "GET", "/api/v1/products/NVDA/book", None, Value::Null);
        (!book["asks"].as_array()?.is_empty()).then_some(book)
    });
    let (ask, bid) = (
        dec(&book["asks"][0]["price"]),
        dec(&book["bids"][0]["price"]),
    );
    assert!(bid < ask, "{book}");
    assert!(
        (ask - price).abs() * Decimal::from(100) < price,
        "ask {ask} around {price}"
    );
    server.stop();
}
