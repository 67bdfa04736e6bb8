//! Exchange rates are market data, and candles asked in another currency are converted at
//! the rate in force at each candle's end (gateway/src/fx.rs): checked against a reference
//! computed here from the raw ticks of the product and of the pair, for a period when the
//! rate moved, and again after a restart.

use bourse_feed::create_topic;
use bourse_feed::tansu::TansuBroker;
use bourse_tests::client::{Client, aggregate, dec, eventually};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

use crate::kafka::{DEAD_LETTER, T0, TOPIC, producer, send, serve, tick, ticks_of};

/// A candle converted as the reference says: start, open, high, low, close (in EUR), and the
/// rate's price and time.
type Converted = (i64, Decimal, Decimal, Decimal, Decimal, Decimal, i64);

/// The reference: each candle of `product` (ticks sorted by time) divided by the last
/// `pair` tick before the candle's end, rounded half to even to 8 decimals.
fn reference(product: &[Value], pair: &[Value], interval: i64, from: i64) -> Vec<Converted> {
    let eur = |value: Decimal, rate: Decimal| {
        (value / rate)
            .round_dp_with_strategy(8, RoundingStrategy::MidpointNearestEven)
            .normalize()
    };
    aggregate(product, "ts", interval)
        .into_iter()
        .filter(|c| c.0 >= from)
        .map(|(start, open, high, low, close, _, _)| {
            let rate = pair
                .iter()
                .filter(|t| t["ts"].as_i64().unwrap() < start + interval)
                .max_by_key(|t| (t["ts"].as_i64().unwrap(), t["seq"].as_u64().unwrap()))
                .expect("a rate before every candle from `from` on");
            let price = dec(&rate["price"]);
            (
                start,
                eur(open, price),
                eur(high, price),
                eur(low, price),
                eur(close, price),
                price,
                rate["ts"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn converted(candles: &Value) -> Vec<Converted> {
    candles
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["currency"], "EUR", "{c}");
            assert_eq!(c["rate"]["pair"], "EURUSD", "{c}");
            assert_eq!(c["rate"]["operation"], "divide", "{c}");
            (
                c["start"].as_i64().unwrap(),
                dec(&c["open"]),
                dec(&c["high"]),
                dec(&c["low"]),
                dec(&c["close"]),
                dec(&c["rate"]["price"]),
                c["rate"]["time"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn candles(client: &Client, query: &str) -> (u16, Value) {
    client.call(
        "GET",
        &format!("/api/v1/products/FXP/candles?{query}"),
        None,
        &Value::Null,
    )
}

#[test]
fn candles_in_another_currency_use_the_rate_of_their_time_and_survive_a_restart() {
    let broker = TansuBroker::start()
        .expect("tansu (cargo install tansu --version 0.6.0 --features dynostore,libsql --locked)");
    let brokers = broker.brokers();
    create_topic(&brokers, TOPIC, 3).unwrap();
    create_topic(&brokers, DEAD_LETTER, 1).unwrap();
    let p = producer(&brokers);
    send(
        &p,
        "FXP",
        r#"{"type":"product","symbol":"FXP","name":"FX Probe","currency":"USD","tickSize":"0.01"}"#,
    );
    send(
        &p,
        "EURUSD",
        r#"{"type":"product","symbol":"EURUSD","name":"Euro in US dollars","currency":"USD","tickSize":"0.00001"}"#,
    );
    // The product ticks every 250 ms for 6 s; the rate ticks every 700 ms from 1.1 s on,
    // moving each time, so the 1 s candles see different rates and the first second none.
    let mut product = Vec::new();
    for seq in 1..=24u64 {
        let t = tick(
            "FXP",
            seq,
            T0 + (seq as i64 - 1) * 250,
            &format!("{}.{:02}", 100 + seq % 5, (seq * 37) % 100),
            seq,
        );
        send(&p, "FXP", &t.to_string());
        product.push(t);
    }
    let mut pair = Vec::new();
    for seq in 1..=7u64 {
        let t = json!({
            "symbol": "EURUSD",
            "price": format!("1.{:05}", 8_000 + seq * 123),
            "size": "1",
            "ts": T0 + 1_100 + (seq as i64 - 1) * 700,
            "seq": seq,
        });
        send(&p, "EURUSD", &t.to_string());
        pair.push(t);
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), &brokers);
    eventually("every tick", || {
        (ticks_of(&client, "FXP").len() == product.len()
            && ticks_of(&client, "EURUSD").len() == pair.len())
        .then_some(())
    });

    // The pair is listed as a rate.
    let (status, rates) = client.call("GET", "/api/v1/fx", None, &Value::Null);
    assert_eq!(status, 200, "{rates}");
    let listed = rates
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["symbol"] == "EURUSD")
        .cloned()
        .unwrap_or_else(|| panic!("EURUSD is not listed: {rates}"));
    assert_eq!(
        (&listed["base"], &listed["quote"], &listed["rate"]),
        (&json!("EUR"), &json!("USD"), &json!("1.08861")),
        "{listed}"
    );

    let check = |client: &Client| {
        let from = T0 + 1_000;
        for (interval, ms) in [("1s", 1_000), ("1m", 60_000)] {
            let start = from - from.rem_euclid(ms);
            let (status, body) = candles(
                client,
                &format!("interval={interval}&from={start}&currency=EUR"),
            );
            assert_eq!(status, 200, "{interval}: {body}");
            let expected = reference(&product, &pair, ms, start);
            assert!(!expected.is_empty());
            assert_eq!(converted(&body), expected, "{interval}");
        }
        // The rate moved between the 1 s candles: they were not all converted at one rate.
        let (_, body) = candles(client, &format!("interval=1s&from={from}&currency=EUR"));
        let rates: std::collections::BTreeSet<Decimal> =
            converted(&body).iter().map(|c| c.5).collect();
        assert!(rates.len() >= 4, "{rates:?}");
        // The first second has no rate at or before it: refused, not converted at 1.0.
        let (status, body) = candles(client, &format!("interval=1s&from={T0}&currency=EUR"));
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "no_rate", "{body}");
        // Its own currency, or none, is the plain series; a currency without a rate is 422.
        let (status, own) = candles(client, &format!("interval=1s&from={T0}&currency=USD"));
        assert_eq!(status, 200, "{own}");
        assert!(own[0].get("rate").is_none() && own[0].get("currency").is_none());
        let (status, body) = candles(client, &format!("interval=1s&from={from}&currency=CHF"));
        assert_eq!((status, &body["error"]["code"]), (422, &json!("no_rate")));
        let (status, _) = candles(client, &format!("interval=1s&from={from}&currency=eur"));
        assert_eq!(status, 400);
    };
    check(&client);

    // After a restart the same answers, from the stored ticks and candles.
    server.stop();
    let (server, client) = serve(dir.path(), &brokers);
    check(&client);
    server.stop();
}
