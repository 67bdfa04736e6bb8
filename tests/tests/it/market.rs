//! Market data end to end, over HTTP and WebSocket against `bourse serve` with its embedded
//! exchange simulator: the liquidity provider fills a new user's market order, candles equal
//! the aggregate of the stored ticks, everything survives a restart, and the catalogue
//! search pages through many products.

use bourse_tests::client::{Client, aggregate, candle_rows, dec, eventually, pluck};
use bourse_tests::server::{Server, http_addr};
use rust_decimal::Decimal;
use serde_json::{Value, json};

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn the_simulator_feeds_candles_and_the_liquidity_provider_fills_a_new_users_market_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_market(dir.path(), &["--sim-rate", "400"]);
    let client = Client {
        addr: http_addr(&mut server),
    };

    // The provider quotes around the simulated price.
    let book = eventually("the liquidity provider's quotes", || {
        let book = client.expect(
            200,
            "GET",
            "/api/v1/products/AAPL/book?depth=5",
            None,
            Value::Null,
        );
        (book["asks"].as_array()?.len() == 5 && book["bids"].as_array()?.len() == 5).then_some(book)
    });
    let best_ask = dec(&book["asks"][0]["price"]);
    let best_bid = dec(&book["bids"][0]["price"]);
    assert!(best_bid < best_ask, "{book}");

    // A new user's market order fills.
    let token = client.account("Ada");
    client.deposit(&token, "100000.00", "USD", "d-1");
    let bought = client.expect(
        201,
        "POST",
        "/api/v1/product/buy",
        Some(&token),
        json!({"symbol": "AAPL", "quantity": "2", "type": "market"}),
    );
    assert_eq!(bought["status"], "filled", "{bought}");
    let paid = dec(&bought["fills"][0]["price"]);
    let product = client.expect(200, "GET", "/api/v1/products/AAPL", None, Value::Null);
    let current = dec(&product["currentPrice"]);
    // Within 1% of the market price (the ladder is 0.05% a level, requoted on 0.1% moves).
    assert!(
        (paid - current).abs() * Decimal::from(100) < current,
        "paid {paid}, price {current}"
    );
    assert_eq!(product["currency"], "USD");
    assert_eq!(product["productName"], "Apple Inc.");

    // Candles of every interval equal the aggregate of the stored ticks, up to a time that
    // is over (the simulator's ticks are never late).
    let ticks = eventually("three seconds of ticks", || {
        let ticks = client.expect(
            200,
            "GET",
            "/api/v1/products/MSFT/ticks?limit=5000",
            None,
            Value::Null,
        );
        let list = ticks.as_array()?;
        let span = list.last()?["timestamp"].as_i64()? - list.first()?["timestamp"].as_i64()?;
        (span > 3_000).then_some(ticks)
    });
    let list = ticks.as_array().unwrap();
    let newest = list.last().unwrap()["timestamp"].as_i64().unwrap();
    let cut = newest - newest.rem_euclid(1_000); // the newest 1s bucket may still grow
    let done: Vec<Value> = list
        .iter()
        .filter(|t| t["timestamp"].as_i64().unwrap() < cut)
        .cloned()
        .collect();
    let first = done[0]["timestamp"].as_i64().unwrap();
    let from = first - first.rem_euclid(1_000) + 1_000; // the oldest bucket may be cut too
    let done: Vec<Value> = done
        .into_iter()
        .filter(|t| t["timestamp"].as_i64().unwrap() >= from)
        .collect();
    let candles = client.expect(
        200,
        "GET",
        &format!(
            "/api/v1/products/MSFT/candles?interval=1s&from={from}&to={}",
            cut - 1
        ),
        None,
        Value::Null,
    );
    assert!(candles.as_array().unwrap().len() >= 2, "{candles}");
    assert_eq!(candle_rows(&candles), aggregate(&done, "timestamp", 1_000));
    assert!(done.iter().all(|t| t["source"] == "feed"));

    // The user's fill is a Bourse tick of AAPL.
    let aapl = client.expect(
        200,
        "GET",
        "/api/v1/products/AAPL/ticks?limit=5000",
        None,
        Value::Null,
    );
    assert!(
        aapl.as_array()
            .unwrap()
            .iter()
            .any(|t| t["source"] == "bourse" && dec(&t["price"]) == paid),
        "the fill at {paid} is not among AAPL's ticks"
    );

    // After a restart: the same history up to the cut, and the walk goes on from where it
    // was (the next sequence numbers, no gap, no repeat).
    let before = client.expect(
        200,
        "GET",
        &format!("/api/v1/products/MSFT/candles?interval=1m&to={cut}"),
        None,
        Value::Null,
    );
    let ticks_before = client.expect(
        200,
        "GET",
        &format!("/api/v1/products/MSFT/ticks?limit=5000&to={cut}"),
        None,
        Value::Null,
    );
    server.stop();
    let mut server = Server::start_with_market(dir.path(), &["--sim-rate", "400"]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let ticks_after = client.expect(
        200,
        "GET",
        &format!("/api/v1/products/MSFT/ticks?limit=5000&to={cut}"),
        None,
        Value::Null,
    );
    assert_eq!(ticks_after, ticks_before);
    let after = client.expect(
        200,
        "GET",
        &format!("/api/v1/products/MSFT/candles?interval=1m&to={cut}"),
        None,
        Value::Null,
    );
    assert_eq!(
        pluck(&after, &["start", "open"]),
        pluck(&before, &["start", "open"])
    );
    let seqs = eventually("ticks after the restart", || {
        let all = client.expect(
            200,
            "GET",
            "/api/v1/products/MSFT/ticks?limit=5000",
            None,
            Value::Null,
        );
        let seqs: Vec<u64> = all
            .as_array()?
            .iter()
            .filter(|t| t["source"] == "feed")
            .map(|t| t["seq"].as_u64().unwrap())
            .collect();
        (seqs.len() > list.len() + 10).then_some(seqs)
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "no sequence number twice");
    assert!(
        sorted.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap in sequence numbers"
    );
    server.stop();
}

#[test]
fn market_data_requests_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        Server::start_with_market(dir.path(), &["--sim-rate", "50", "--liquidity", "false"]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    for (path, status, code, message) in [
        (
            "/api/v1/products/AAPL/candles?interval=2m",
            400,
            "invalid_request",
            "interval \"2m\" is not one of 1s, 1m, 5m, 15m, 1h, 4h, 1d",
        ),
        (
            "/api/v1/products/AAPL/candles?from=10&to=5",
            400,
            "invalid_request",
            "from must not be after to",
        ),
        (
            "/api/v1/products/AAPL/candles?from=-1",
            400,
            "invalid_request",
            "from must be a unix time in ms",
        ),
        (
            "/api/v1/products/AAPL/candles?limit=0",
            400,
            "invalid_request",
            "limit must be a whole number from 1 to 5000",
        ),
        (
            "/api/v1/products/AAPL/candles?limit=5001",
            400,
            "invalid_request",
            "limit must be a whole number from 1 to 5000",
        ),
        (
            "/api/v1/products/AAPL/candles?interval=1m&bogus=1",
            400,
            "invalid_request",
            "",
        ),
        (
            "/api/v1/products/NOPE/candles",
            404,
            "unknown_symbol",
            "no product \"NOPE\"",
        ),
        (
            "/api/v1/products/NOPE/ticks",
            404,
            "unknown_symbol",
            "no product \"NOPE\"",
        ),
        (
            "/api/v1/products/AAPL/ticks?to=x",
            400,
            "invalid_request",
            "to must be a unix time in ms",
        ),
    ] {
        let (got, body) = client.call("GET", path, None, &Value::Null);
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        if !message.is_empty() {
            assert_eq!(body["error"]["message"], message, "{path}");
        }
    }
    server.stop();
}

#[test]
fn the_catalogue_searches_and_pages_through_many_products() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_market(
        dir.path(),
        &[
            "--sim-products",
            "2000",
            "--sim-rate",
            "1000",
            "--liquidity",
            "false",
        ],
    );
    let client = Client {
        addr: http_addr(&mut server),
    };
    eventually("2,008 products listed", || {
        let found = client.expect(
            200,
            "GET",
            "/api/v1/products?query=simulated%202000",
            None,
            Value::Null,
        );
        (found.as_array()?.len() == 1).then_some(())
    });
    // "simulated 99" matches Simulated 99 and 990..999: word prefixes, in listing order.
    let mut names = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/products?query=simulated%2099&limit=4{cursor}");
        let (_, head, page) = client.call_with_head("GET", &path, None, &Value::Null);
        names.extend(
            pluck(&page, &["productName"])
                .into_iter()
                .map(|r| r[0].clone()),
        );
        match bourse_tests::client::header(&head, "x-next-cursor") {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let expected: Vec<String> = std::iter::once(99)
        .chain(990..=999)
        .map(|i| format!("Simulated {i}"))
        .collect();
    assert_eq!(names, expected);
    // The default stocks are there too, by symbol or name.
    let apple = client.expect(200, "GET", "/api/v1/products?query=appl", None, Value::Null);
    assert_eq!(pluck(&apple, &["symbol"]), vec![vec!["AAPL"]]);
    server.stop();
}
