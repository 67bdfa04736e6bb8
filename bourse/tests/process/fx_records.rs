//! Records, the book and the catalogue in another currency (gateway/src/convert.rs): an
//! account's trades, orders and funds movements keep their own values and add `converted`,
//! each at the pair's newest tick at or before the record's time, checked against a reference
//! computed here from the raw ticks sent for the pair, while the rate moves between the
//! records, and again after a restart. The account's preference is the default currency of
//! its requests; `own` and a public request without a token get the product's own.

use bourse_tests::client::{Client, dec, eventually};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::fx::round8;
use crate::kafka::{send, serve, tick, ticks_of};

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The pair tick in force at `time` (the newest at or before it), if any.
fn rate_at(pair: &[Value], time: i64) -> Option<&Value> {
    pair.iter()
        .filter(|r| r["ts"].as_i64().unwrap() <= time)
        .max_by_key(|r| (r["ts"].as_i64().unwrap(), r["seq"].as_u64().unwrap()))
}

/// Checks `converted` of a record at `time`: `fields` (own value name, converted value
/// name) each divided by the reference rate, or every value `null` before the first rate.
/// Returns the rate's price used, if any.
fn check_converted(
    record: &Value,
    pair: &[Value],
    time: i64,
    fields: &[(&str, &str)],
) -> Option<Decimal> {
    let converted = &record["converted"];
    assert_eq!(converted["currency"], "EUR", "{record}");
    match rate_at(pair, time) {
        None => {
            assert_eq!(converted["rate"], Value::Null, "{record}");
            for (_, to) in fields {
                assert_eq!(converted[*to], Value::Null, "{record}");
            }
            None
        }
        Some(rate) => {
            let price = dec(&rate["price"]);
            assert_eq!(converted["rate"]["pair"], "EURUSD", "{record}");
            assert_eq!(converted["rate"]["operation"], "divide", "{record}");
            assert_eq!(dec(&converted["rate"]["price"]), price, "{record}");
            assert_eq!(converted["rate"]["time"], rate["ts"], "{record}");
            for (from, to) in fields {
                assert_eq!(
                    dec(&converted[*to]),
                    round8(dec(&record[*from]) / price),
                    "{to} of {record}"
                );
            }
            Some(price)
        }
    }
}

/// A rate tick after `after` (unix ms) and not later than now, sent and seen by the server;
/// returns when the clock has passed it, so that the next record is after it.
fn send_rate(
    p: &bourse_feed::Producer,
    client: &Client,
    pair: &mut Vec<Value>,
    price: &str,
    after: i64,
) {
    let seq = pair.len() as u64 + 1;
    let ts = now_ms().max(after + 1);
    let t = tick("EURUSD", seq, ts, price, 1);
    send(p, "EURUSD", &t.to_string());
    pair.push(t);
    eventually("the rate tick, and the clock past it", || {
        (ticks_of(client, "EURUSD").len() == pair.len() && now_ms() > ts).then_some(())
    });
}

fn order(client: &Client, token: &str, side: &str, qty: &str, price: &str) -> Value {
    client.expect(
        201,
        "POST",
        &format!("/api/v1/product/{side}"),
        Some(token),
        json!({"symbol": "AAPL", "type": "limit", "quantity": qty, "price": price}),
    )
}

fn get(client: &Client, path: &str, token: Option<&str>) -> Value {
    let (status, body) = client.call("GET", path, token, &Value::Null);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn records_the_book_and_the_catalogue_convert_at_the_rate_of_their_time() {
    let (_broker, brokers, p) = crate::fx::broker();
    send(
        &p,
        "EURUSD",
        r#"{"type":"product","symbol":"EURUSD","name":"Euro in US dollars","currency":"USD","tickSize":"0.00001"}"#,
    );
    // A feed product with a one-minute close from before the first rate, and one after.
    send(
        &p,
        "OLD",
        r#"{"type":"product","symbol":"OLD","name":"Older than the rates","currency":"USD","tickSize":"0.01"}"#,
    );
    let old = [
        tick("OLD", 1, now_ms() - 120_000, "50.00", 1),
        tick("OLD", 2, 0, "51.00", 1),
    ];
    send(&p, "OLD", &old[0].to_string());
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), &brokers);
    let (seller, buyer) = client.seller_and_buyer("FxS", "FxB");
    eventually("the pair's definition", || {
        client
            .call("GET", "/api/v1/products/EURUSD", None, &Value::Null)
            .0
            .eq(&200)
            .then_some(())
    });

    // The deposits came before any rate; then the rate moves between two trades.
    let mut pair = Vec::new();
    send_rate(&p, &client, &mut pair, "1.08123", 0);
    let mut later = old[1].clone();
    later["ts"] = json!(now_ms());
    send(&p, "OLD", &later.to_string());
    eventually("OLD's ticks", || {
        (ticks_of(&client, "OLD").len() == 2).then_some(())
    });
    let (status, body) = client.call(
        "PATCH",
        "/api/v1/account",
        Some(&buyer),
        &json!({"currencyPreference": "EUR"}),
    );
    assert_eq!(status, 200, "{body}");
    order(&client, &seller, "sell", "2", "190.00");
    let first = order(&client, &buyer, "buy", "2", "190.00");
    let first_time = first["updatedAt"].as_i64().unwrap();
    send_rate(&p, &client, &mut pair, "1.09457", first_time);
    order(&client, &seller, "sell", "1", "191.37");
    order(&client, &buyer, "buy", "1", "191.37");
    client.deposit(&buyer, "250.00", "USD", "b-2");
    // A resting order for the book.
    order(&client, &seller, "sell", "3", "199.99");
    eventually("both trades in AAPL's market data", || {
        (ticks_of(&client, "AAPL").len() == 2).then_some(())
    });

    let check = |client: &Client| {
        // Trades: the buyer's preference is the default.
        let trades = get(client, "/api/v1/trades", Some(&buyer));
        let trades = trades.as_array().unwrap();
        assert_eq!(trades.len(), 2);
        let mut rates = std::collections::BTreeSet::new();
        for t in trades {
            let time = t["timestamp"].as_i64().unwrap();
            let fields = [("price", "price"), ("notional", "notional"), ("fee", "fee")];
            rates.insert(check_converted(t, &pair, time, &fields).expect("a rate"));
        }
        assert_eq!(
            rates.len(),
            2,
            "the rate moved between the trades: {rates:?}"
        );
        // `own`, and the trade's own currency, add nothing; an unlisted currency is refused.
        for query in ["own", "USD"] {
            let plain = get(
                client,
                &format!("/api/v1/trades?currency={query}"),
                Some(&buyer),
            );
            assert!(plain[0].get("converted").is_none(), "{plain}");
            assert_eq!(plain[0]["price"], trades[0]["price"]);
        }
        let (status, body) = client.call(
            "GET",
            "/api/v1/trades?currency=CHF",
            Some(&buyer),
            &Value::Null,
        );
        assert_eq!(
            (status, &body["error"]["code"]),
            (422, &json!("no_rate")),
            "{body}"
        );

        // Orders, at their last change; one order with its fills, each at its time.
        let closed = get(client, "/api/v1/orders?status=closed", Some(&buyer));
        let closed = closed.as_array().unwrap();
        assert_eq!(closed.len(), 2, "{closed:?}");
        let order_fields = [
            ("price", "price"),
            ("averagePrice", "averagePrice"),
            ("notional", "notional"),
            ("fees", "fees"),
        ];
        for o in closed {
            let time = o["updatedAt"].as_i64().unwrap();
            check_converted(o, &pair, time, &order_fields).expect("a rate");
        }
        let id = closed[0]["orderId"].as_u64().unwrap();
        let one = get(client, &format!("/api/v1/orders/{id}"), Some(&buyer));
        check_converted(
            &one,
            &pair,
            one["updatedAt"].as_i64().unwrap(),
            &order_fields,
        );
        for fill in one["fills"].as_array().unwrap() {
            let fields = [("price", "price"), ("notional", "notional"), ("fee", "fee")];
            check_converted(fill, &pair, fill["timestamp"].as_i64().unwrap(), &fields);
        }

        // Funds movements: the first deposit has no rate at its time and says so.
        let funds = get(client, "/api/v1/funds/history", Some(&buyer));
        let funds = funds.as_array().unwrap();
        let deposits: Vec<&Value> = funds.iter().filter(|f| f["kind"] == "deposit").collect();
        assert_eq!(deposits.len(), 2, "{funds:?}");
        let mut marked = 0;
        for f in funds {
            let time = f["timestamp"].as_i64().unwrap();
            if check_converted(f, &pair, time, &[("amount", "amount")]).is_none() {
                marked += 1;
            }
        }
        assert_eq!(
            marked, 1,
            "only the deposit before the first rate: {funds:?}"
        );

        // The book, at the newest rate, for the account (its preference) and for anyone who
        // asks; without a token, the product's own.
        let newest = rate_at(&pair, i64::MAX).unwrap();
        let plain = get(client, "/api/v1/products/AAPL/book", None);
        assert_eq!(plain["currency"], "USD", "{plain}");
        assert!(plain.get("rate").is_none(), "{plain}");
        for book in [
            get(client, "/api/v1/products/AAPL/book", Some(&buyer)),
            get(client, "/api/v1/products/AAPL/book?currency=EUR", None),
        ] {
            assert_eq!(book["currency"], "EUR", "{book}");
            assert_eq!(book["rate"]["time"], newest["ts"], "{book}");
            assert_eq!(book["asks"][0]["quantity"], plain["asks"][0]["quantity"]);
            assert_eq!(
                dec(&book["asks"][0]["price"]),
                round8(dec(&plain["asks"][0]["price"]) / dec(&newest["price"])),
                "{book}"
            );
        }

        // The product: its current price (the second trade's tick) at the rate at its time,
        // and the same through the catalogue; a page never fails for want of a rate.
        let own = get(client, "/api/v1/products/AAPL?currency=own", Some(&buyer));
        assert!(
            own.get("rate").is_none() && own["currency"] == "USD",
            "{own}"
        );
        let time = own["timestamp"].as_i64().unwrap();
        let rate = rate_at(&pair, time).unwrap();
        let expected = round8(dec(&own["currentPrice"]) / dec(&rate["price"]));
        let detail = get(client, "/api/v1/products/AAPL", Some(&buyer));
        let listed = get(client, "/api/v1/products?query=AAPL&currency=EUR", None);
        for item in [&detail, &listed[0]] {
            assert_eq!(
                (&item["currency"], &item["ownCurrency"]),
                (&json!("EUR"), &json!("USD")),
                "{item}"
            );
            assert_eq!(dec(&item["currentPrice"]), expected, "{item}");
            assert_eq!(item["rate"]["time"], rate["ts"], "{item}");
            for close in item["histories"].as_array().unwrap() {
                assert_eq!(close["rate"]["pair"], "EURUSD", "{close}");
            }
        }
        assert_eq!(
            detail["tickSize"], own["tickSize"],
            "units stay the product's own"
        );
        let (status, body) = client.call(
            "GET",
            "/api/v1/products/AAPL?currency=CHF",
            None,
            &Value::Null,
        );
        assert_eq!((status, &body["error"]["code"]), (422, &json!("no_rate")));
        let page = get(client, "/api/v1/products?currency=CHF&limit=500", None);
        assert!(
            page.as_array()
                .unwrap()
                .iter()
                .all(|p| p.get("rate").is_none() && p["currency"] != "CHF"),
            "{page}"
        );

        // Candles: the preference is the default of a request with the token (1 s candles
        // from the first rate's second on, which all have a rate).
        let from = pair[0]["ts"].as_i64().unwrap();
        let from = from - from % 1_000;
        let explicit = get(
            client,
            &format!("/api/v1/products/AAPL/candles?interval=1s&from={from}&currency=EUR"),
            None,
        );
        let default = get(
            client,
            &format!("/api/v1/products/AAPL/candles?interval=1s&from={from}"),
            Some(&buyer),
        );
        assert!(!explicit.as_array().unwrap().is_empty());
        assert_eq!(default, explicit);
        // A wrong token is refused, not ignored.
        let (status, _) = client.call(
            "GET",
            "/api/v1/products/AAPL/candles",
            Some("1.wrong"),
            &Value::Null,
        );
        assert_eq!(status, 401);
    };
    check(&client);
    // After a restart, the same answers from the journal and the stored market data.
    server.stop();
    let (server, client) = serve(dir.path(), &brokers);
    check(&client);
    server.stop();
}
