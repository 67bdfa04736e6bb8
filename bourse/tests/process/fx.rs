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

/// A tansu broker with the tick topics, its address and a producer to it.
pub(crate) fn broker() -> (TansuBroker, String, bourse_feed::Producer) {
    let broker = TansuBroker::start()
        .expect("tansu (cargo install tansu --version 0.6.0 --features dynostore,libsql --locked)");
    let brokers = broker.brokers();
    create_topic(&brokers, TOPIC, 3).unwrap();
    create_topic(&brokers, DEAD_LETTER, 1).unwrap();
    let p = producer(&brokers);
    (broker, brokers, p)
}

#[test]
fn candles_in_another_currency_use_the_rate_of_their_time_and_survive_a_restart() {
    let (_broker, brokers, p) = broker();
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
        let (status, _) = candles(client, &format!("interval=1s&from={from}&currency=E%20R"));
        assert_eq!(status, 400);
        let (status, _) = candles(client, &format!("interval=1s&from={from}&currency=eur"));
        assert_eq!(status, 422);
    };
    check(&client);
    check_ticks(&client, &product, &pair);

    // After a restart the same answers, from the stored ticks and candles.
    server.stop();
    let (server, client) = serve(dir.path(), &brokers);
    check(&client);
    check_ticks(&client, &product, &pair);
    server.stop();
}

/// Ticks in EUR: each price divided by the pair's newest tick at or before it, against the
/// reference from the raw ticks; the ticks before the first rate are refused.
fn check_ticks(client: &Client, product: &[Value], pair: &[Value]) {
    let from = T0 + 1_100;
    let (status, body) = client.call(
        "GET",
        &format!("/api/v1/products/FXP/ticks?from={from}&limit=5000&currency=EUR"),
        None,
        &Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    let got: Vec<(i64, Decimal, Decimal, i64)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(
                (&t["currency"], &t["rate"]["pair"]),
                (&json!("EUR"), &json!("EURUSD"))
            );
            (
                t["timestamp"].as_i64().unwrap(),
                dec(&t["price"]),
                dec(&t["rate"]["price"]),
                t["rate"]["time"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<(i64, Decimal, Decimal, i64)> = product
        .iter()
        .filter(|t| t["ts"].as_i64().unwrap() >= from)
        .map(|t| {
            let ts = t["ts"].as_i64().unwrap();
            let rate = pair
                .iter()
                .filter(|r| r["ts"].as_i64().unwrap() <= ts)
                .max_by_key(|r| (r["ts"].as_i64().unwrap(), r["seq"].as_u64().unwrap()))
                .expect("a rate at or before every tick from `from` on");
            let price = dec(&rate["price"]);
            (
                ts,
                round8(dec(&t["price"]) / price),
                price,
                rate["ts"].as_i64().unwrap(),
            )
        })
        .collect();
    expected.sort_by_key(|t| t.0);
    assert!(expected.len() >= 15);
    assert_eq!(got, expected);
    let (status, body) = client.call(
        "GET",
        &format!("/api/v1/products/FXP/ticks?from={T0}&limit=5000&currency=EUR"),
        None,
        &Value::Null,
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("no_rate")),
        "{body}"
    );
}

/// Half to even at 8 decimals, as `fx.rs` and `wallet.rs` round.
pub(crate) fn round8(value: Decimal) -> Decimal {
    value
        .round_dp_with_strategy(8, RoundingStrategy::MidpointNearestEven)
        .normalize()
}

/// The newest tick of `ticks` (by time, then seq).
fn newest(ticks: &[Value]) -> &Value {
    ticks
        .iter()
        .max_by_key(|t| (t["ts"].as_i64().unwrap(), t["seq"].as_u64().unwrap()))
        .unwrap()
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn a_wallet_is_valued_in_the_preferred_currency_at_the_newest_prices_and_rates() {
    let (_broker, brokers, p) = broker();
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), &brokers);
    // USD and AAPL shares (the default catalogue's AAPL, quoted in USD), valued in EUR.
    let token = client.account("Val");
    client.deposit(&token, "1000.50", "USD", "val-usd");
    client.deposit(&token, "3", "AAPL", "val-aapl");
    let (status, body) = client.call(
        "PATCH",
        "/api/v1/account",
        Some(&token),
        &json!({"currencyPreference": "EUR"}),
    );
    // EUR is listed once the EURUSD rate is; before, it is refused.
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("unlisted_currency")),
        "{body}"
    );
    let aapl = [
        tick("AAPL", 1, T0, "189.37", 5),
        tick("AAPL", 2, T0 + 2_000, "190.11", 5),
    ];
    let eurusd = [
        tick("EURUSD", 1, T0 + 500, "1.08123", 1),
        tick("EURUSD", 2, T0 + 3_000, "1.08456", 1),
    ];
    for t in aapl.iter().chain(&eurusd) {
        send(&p, t["symbol"].as_str().unwrap(), &t.to_string());
    }
    eventually("every tick", || {
        (ticks_of(&client, "AAPL").len() == aapl.len()
            && ticks_of(&client, "EURUSD").len() == eurusd.len())
        .then_some(())
    });
    let (status, body) = client.call(
        "PATCH",
        "/api/v1/account",
        Some(&token),
        &json!({"currencyPreference": "EUR"}),
    );
    assert_eq!(status, 200, "{body}");

    // The reference, from the raw ticks: the newest AAPL price and the newest rate.
    let rate = newest(&eurusd);
    let price = newest(&aapl);
    let usd_value = round8(Decimal::new(100_050, 2) / dec(&rate["price"]));
    let aapl_value = round8(Decimal::from(3) * dec(&price["price"]) / dec(&rate["price"]));
    let check = |client: &Client| {
        let (status, wallet) = client.call("GET", "/api/v1/funds", Some(&token), &Value::Null);
        assert_eq!(status, 200, "{wallet}");
        assert_eq!(wallet["currency"], "EUR", "{wallet}");
        assert_eq!(wallet["unvalued"], json!([]), "{wallet}");
        assert_eq!(dec(&wallet["amount"]), usd_value + aapl_value, "{wallet}");
        let row = |currency: &str| {
            wallet["balances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["currency"] == currency)
                .cloned()
                .unwrap_or_else(|| panic!("no {currency} in {wallet}"))
        };
        let (usd, shares) = (row("USD"), row("AAPL"));
        assert_eq!(dec(&usd["value"]), usd_value, "{usd}");
        assert_eq!(dec(&shares["value"]), aapl_value, "{shares}");
        for r in [&usd, &shares] {
            assert_eq!(r["rate"]["pair"], "EURUSD", "{r}");
            assert_eq!(r["rate"]["operation"], "divide", "{r}");
            assert_eq!(dec(&r["rate"]["price"]), dec(&rate["price"]), "{r}");
            assert_eq!(r["rate"]["time"], rate["ts"], "{r}");
        }
        assert!(usd.get("price").is_none(), "{usd}");
        assert_eq!(
            (
                &shares["price"]["symbol"],
                &shares["price"]["currency"],
                &shares["price"]["time"]
            ),
            (&json!("AAPL"), &json!("USD"), &price["ts"]),
            "{shares}"
        );
        assert_eq!(dec(&shares["price"]["price"]), dec(&price["price"]));
    };
    check(&client);
    // After a restart, the same valuation from the stored market data and the journal.
    server.stop();
    let (server, client) = serve(dir.path(), &brokers);
    check(&client);

    // A balance without a price is not valued, and the total is not given without it.
    client.deposit(&token, "2", "MSFT", "val-msft");
    let (status, wallet) = client.call("GET", "/api/v1/funds", Some(&token), &Value::Null);
    assert_eq!(status, 200, "{wallet}");
    assert_eq!(wallet["unvalued"], json!(["MSFT"]), "{wallet}");
    assert_eq!(wallet["amount"], Value::Null, "{wallet}");
    let msft = wallet["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["currency"] == "MSFT")
        .cloned()
        .unwrap();
    assert_eq!(msft["value"], Value::Null, "{msft}");
    server.stop();
}
