//! Trading over the HTTP API against a real `bourse serve`: the seed's use cases (create an
//! account, add funds, view the products, buy, sell) between two accounts, with balances,
//! fees, orders, trades and funds history checked to the cent; cancel; authorization of every
//! private endpoint; and the history surviving a restart and a rebuild from the journal.
//!
//! The default catalogue lists AAPL (whole shares, priced in cents) with fees of 0.10% maker
//! and 0.20% taker, rounded up to the cent.

use bourse_tests::client::*;
use bourse_tests::server::{Server, http_addr};

use serde_json::{Value, json};

/// Everything both accounts can read, for comparing across restarts.
fn everything(client: &Client, tokens: &[&str]) -> Vec<Value> {
    let mut all = Vec::new();
    for token in tokens {
        for path in [
            "/api/v1/funds",
            "/api/v1/orders?status=open",
            "/api/v1/orders?status=closed",
            "/api/v1/trades",
            "/api/v1/funds/history",
        ] {
            all.push(client.expect(200, "GET", path, Some(token), Value::Null));
        }
    }
    all.push(client.expect(200, "GET", "/api/v1/products/AAPL", None, Value::Null));
    all
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn two_accounts_trade_with_fees_orders_and_histories_to_the_cent() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let client = Client {
        addr: http_addr(&mut server),
    };

    // The catalogue.
    let products = client.expect(200, "GET", "/api/v1/products", None, Value::Null);
    let aapl = products
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["symbol"] == "AAPL")
        .expect("AAPL is listed");
    assert_eq!(aapl["productName"], "Apple Inc.");
    assert_eq!(aapl["currency"], "USD");
    assert_eq!(aapl["currentPrice"], Value::Null, "no trade yet");
    assert_eq!(aapl["histories"], json!([]));
    let found = client.expect(
        200,
        "GET",
        "/api/v1/products?query=apple",
        None,
        Value::Null,
    );
    assert_eq!(pluck(&found, &["symbol"]), vec![vec!["AAPL".to_string()]]);
    let (_, head, first) =
        client.call_with_head("GET", "/api/v1/products?limit=3", None, &Value::Null);
    assert_eq!(first.as_array().unwrap().len(), 3);
    let cursor = header(&head, "x-next-cursor")
        .expect("a next page")
        .to_string();
    let second = client.expect(
        200,
        "GET",
        &format!("/api/v1/products?limit=3&cursor={cursor}"),
        None,
        Value::Null,
    );
    assert_ne!(first[0]["symbol"], second[0]["symbol"]);

    // Seller: 10 shares in. Buyer: 1,000.00 USD in.
    let (seller, buyer) = client.seller_and_buyer("Sam Seller", "Bea Buyer");

    // The seller offers 5 at 150.00; it rests.
    let offer = client.expect(
        201,
        "POST",
        "/api/v1/product/sell",
        Some(&seller),
        json!({"symbol": "AAPL", "quantity": "5", "type": "limit", "price": "150.00",
               "clientOrderId": "offer-1"}),
    );
    assert_eq!(offer["status"], "open");
    assert_eq!(offer["remainingQuantity"], "5");
    assert_eq!(offer["timeInForce"], "GTC");
    assert_eq!(offer["clientOrderId"], "offer-1");
    assert_eq!(offer["fills"], json!([]));
    let offer_id = offer["orderId"].as_u64().unwrap();
    let book = client.expect(200, "GET", "/api/v1/products/AAPL/book", None, Value::Null);
    assert_eq!(
        pluck(&book["asks"], &["price", "quantity", "orders"]),
        vec![vec!["150", "5", "1"]]
    );
    assert_eq!(book["bids"], json!([]));

    // The buyer asks for a fee quote, then buys 3 at market: 450.00 + 0.90 taker fee.
    let quote = client.expect(
        200,
        "GET",
        "/api/v1/fees?symbol=AAPL&side=buy&quantity=3",
        Some(&buyer),
        Value::Null,
    );
    assert_eq!(
        (
            &quote["liquidity"],
            &quote["rate"],
            &quote["notional"],
            &quote["fee"]
        ),
        (
            &json!("taker"),
            &json!("0.002"),
            &json!("450.00"),
            &json!("0.90")
        )
    );
    let bought = client.expect(
        201,
        "POST",
        "/api/v1/product/buy",
        Some(&buyer),
        json!({"symbol": "AAPL", "quantity": "3", "type": "market"}),
    );
    assert_eq!(bought["status"], "filled");
    assert_eq!(bought["filledQuantity"], "3");
    assert_eq!(bought["averagePrice"], "150");
    assert_eq!(bought["notional"], "450.00");
    assert_eq!(bought["fees"], "0.90");
    assert_eq!(
        pluck(
            &bought["fills"],
            &["price", "quantity", "notional", "fee", "liquidity"]
        ),
        vec![vec!["150", "3", "450.00", "0.90", "taker"]]
    );
    let bought_id = bought["orderId"].as_u64().unwrap();

    // The seller was the maker: 450.00 - 0.45; 2 shares still offered (held).
    assert_eq!(
        client.balances(&seller),
        vec![row("USD", "449.55", "0.00"), row("AAPL", "5", "2")]
    );
    assert_eq!(
        client.balances(&buyer),
        vec![row("USD", "549.10", "0.00"), row("AAPL", "3", "0")]
    );
    let open = client.expect(
        200,
        "GET",
        "/api/v1/orders?status=open",
        Some(&seller),
        Value::Null,
    );
    assert_eq!(
        pluck(
            &open,
            &[
                "orderId",
                "status",
                "filledQuantity",
                "remainingQuantity",
                "fees"
            ]
        ),
        vec![vec![
            offer_id.to_string(),
            "open".into(),
            "3".into(),
            "2".into(),
            "0.45".into()
        ]]
    );

    // Authorization: the buyer cannot see or cancel the seller's order.
    let path = format!("/api/v1/orders/{offer_id}");
    let refused = client.expect(404, "GET", &path, Some(&buyer), Value::Null);
    assert_eq!(refused["error"]["code"], "unknown_order");
    client.expect(404, "DELETE", &path, Some(&buyer), Value::Null);
    // The seller cancels the rest; the shares are released.
    let cancelled = client.expect(200, "DELETE", &path, Some(&seller), Value::Null);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["endReason"], "requested");
    assert_eq!(cancelled["filledQuantity"], "3");
    assert_eq!(
        pluck(&cancelled["fills"], &["quantity", "fee", "liquidity"]),
        vec![vec!["3", "0.45", "maker"]]
    );
    let again = client.expect(409, "DELETE", &path, Some(&seller), Value::Null);
    assert_eq!(again["error"]["code"], "order_closed");
    assert_eq!(
        client.balances(&seller),
        vec![row("USD", "449.55", "0.00"), row("AAPL", "7", "0")]
    );

    // The buyer sells 1 back at 151.00 (rests), the seller takes it with a limit buy:
    // the seller pays 151.00 + 0.31 (0.302 rounded up), the buyer gets 151.00 - 0.16.
    let resale = client.expect(
        201,
        "POST",
        "/api/v1/product/sell",
        Some(&buyer),
        json!({"symbol": "AAPL", "quantity": "1", "type": "limit", "price": "151"}),
    );
    assert_eq!(resale["status"], "open");
    let taken = client.expect(
        201,
        "POST",
        "/api/v1/product/buy",
        Some(&seller),
        json!({"symbol": "AAPL", "quantity": "1", "type": "limit", "price": "151.00",
               "timeInForce": "IOC"}),
    );
    assert_eq!(
        (&taken["status"], &taken["fees"]),
        (&json!("filled"), &json!("0.31"))
    );
    assert_eq!(
        client.balances(&seller),
        vec![row("USD", "298.24", "0.00"), row("AAPL", "8", "0")]
    );
    assert_eq!(
        client.balances(&buyer),
        vec![row("USD", "699.94", "0.00"), row("AAPL", "2", "0")]
    );

    // Histories, newest first.
    let trades = client.expect(200, "GET", "/api/v1/trades", Some(&buyer), Value::Null);
    assert_eq!(
        pluck(
            &trades,
            &["side", "liquidity", "price", "quantity", "notional", "fee"]
        ),
        vec![
            vec!["sell", "maker", "151", "1", "151.00", "0.16"],
            vec!["buy", "taker", "150", "3", "450.00", "0.90"],
        ]
    );
    let funds = client.expect(
        200,
        "GET",
        "/api/v1/funds/history",
        Some(&buyer),
        Value::Null,
    );
    assert_eq!(
        pluck(
            &funds,
            &["kind", "currency", "amount", "requestId", "symbol"]
        ),
        vec![
            vec!["fee", "USD", "0.16", "null", "AAPL"],
            vec!["fee", "USD", "0.90", "null", "AAPL"],
            vec!["deposit", "USD", "1000.00", "b-1", "null"],
        ]
    );
    let closed = client.expect(
        200,
        "GET",
        "/api/v1/orders?status=closed",
        Some(&buyer),
        Value::Null,
    );
    let resale_id = resale["orderId"].as_u64().unwrap();
    assert_eq!(
        pluck(&closed, &["orderId", "status"]),
        vec![
            vec![resale_id.to_string(), "filled".to_string()],
            vec![bought_id.to_string(), "filled".to_string()]
        ]
    );
    let (_, head, page) =
        client.call_with_head("GET", "/api/v1/trades?limit=1", Some(&buyer), &Value::Null);
    assert_eq!(page.as_array().unwrap().len(), 1);
    let cursor = header(&head, "x-next-cursor")
        .expect("a second page")
        .to_string();
    let older = client.expect(
        200,
        "GET",
        &format!("/api/v1/trades?limit=1&cursor={cursor}"),
        Some(&buyer),
        Value::Null,
    );
    assert_eq!(pluck(&older, &["price"]), vec![vec!["150"]]);

    // Bourse's fills are the product's ticks: the catalogue shows the last one, and the
    // histories the one-minute closes (both fills may fall in one minute or two).
    let product = client.expect(200, "GET", "/api/v1/products/AAPL", None, Value::Null);
    assert_eq!(product["currentPrice"], "151");
    assert_eq!(product["tradable"], true);
    let closes = pluck(&product["histories"], &["price"]);
    assert!(
        closes == vec![vec!["151"]] || closes == vec![vec!["150"], vec!["151"]],
        "{closes:?}"
    );
    let ticks = client.expect(200, "GET", "/api/v1/products/AAPL/ticks", None, Value::Null);
    assert_eq!(
        pluck(&ticks, &["price", "size", "source"]),
        vec![vec!["150", "3", "bourse"], vec!["151", "1", "bourse"]]
    );
    let candles = client.expect(
        200,
        "GET",
        "/api/v1/products/AAPL/candles?interval=1d",
        None,
        Value::Null,
    );
    assert_eq!(
        pluck(
            &candles,
            &["open", "high", "low", "close", "volume", "count"]
        ),
        vec![vec!["150", "151", "150", "151", "4", "2"]]
    );
    assert_eq!(
        (&product["tickSize"], &product["lotSize"]),
        (&json!("0.01"), &json!("1"))
    );

    // Everything is the same after a restart, and after rebuilding the history from the
    // journal alone.
    let before = everything(&client, &[&seller, &buyer]);
    server.stop();
    let mut server = Server::start(dir.path(), &[]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    assert_eq!(everything(&client, &[&seller, &buyer]), before);
    server.stop();
    std::fs::remove_dir_all(dir.path().join("history")).unwrap();
    let mut server = Server::start(dir.path(), &[]);
    assert!(
        matches!(
            server.report().history,
            bourse_server::HistoryStart::CaughtUp { from_event: 0, .. }
        ),
        "{:?}",
        server.report()
    );
    let client = Client {
        addr: http_addr(&mut server),
    };
    assert_eq!(everything(&client, &[&seller, &buyer]), before);
    server.stop();
}

/// The buyer's balances and closed orders, which a repeated order must not move.
fn buyer_state(client: &Client, buyer: &str) -> (Vec<(String, String, String)>, Value) {
    let closed = client.expect(
        200,
        "GET",
        "/api/v1/orders?status=closed",
        Some(buyer),
        Value::Null,
    );
    (client.balances(buyer), closed)
}

/// Orders are idempotent by `clientOrderId`: a retried market buy (its answer lost, say) is
/// answered 200 with the first order and `duplicate: true` and buys nothing more, before and
/// after a restart from the final snapshot and after one from the journal alone; another body
/// under the same key is 409.
#[test]
fn a_retried_market_buy_is_placed_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let (seller, buyer) = client.seller_and_buyer("Sam Seller", "Bea Buyer");
    client.expect(
        201,
        "POST",
        "/api/v1/product/sell",
        Some(&seller),
        json!({"symbol": "AAPL", "quantity": "5", "type": "limit", "price": "150.00"}),
    );

    // 2 at 150.00 plus the 0.60 taker fee.
    let buy = json!({"symbol": "AAPL", "quantity": "2", "type": "market",
                     "clientOrderId": "retry-1"});
    let first = client.expect(
        201,
        "POST",
        "/api/v1/product/buy",
        Some(&buyer),
        buy.clone(),
    );
    assert_eq!(first["status"], "filled");
    assert_eq!(first["fills"].as_array().unwrap().len(), 1);
    assert_eq!(first.get("duplicate"), None, "a new order is no duplicate");
    let after_first = buyer_state(&client, &buyer);
    assert_eq!(
        after_first.0,
        vec![row("USD", "699.40", "0.00"), row("AAPL", "2", "0")]
    );
    // The answer to a repeat is the first order as it is now, marked.
    let mut expected = first.clone();
    expected["duplicate"] = json!(true);

    let repeat = |client: &Client| {
        let again = client.expect(
            200,
            "POST",
            "/api/v1/product/buy",
            Some(&buyer),
            buy.clone(),
        );
        assert_eq!(again, expected);
        assert_eq!(buyer_state(client, &buyer), after_first, "nothing moved");
        let mut other = buy.clone();
        other["quantity"] = json!("3");
        let refused = client.expect(409, "POST", "/api/v1/product/buy", Some(&buyer), other);
        assert_eq!(refused["error"]["code"], "duplicate_client_order_id");
        let book = client.expect(200, "GET", "/api/v1/products/AAPL/book", None, Value::Null);
        assert_eq!(
            pluck(&book["asks"], &["price", "quantity"]),
            vec![vec!["150", "3"]]
        );
    };
    repeat(&client);

    // After a clean stop the window comes back from the final snapshot.
    server.stop();
    let mut server = Server::start(dir.path(), &[]);
    assert!(
        server.report().recovery.contains("snapshot at seq"),
        "{}",
        server.report().recovery
    );
    let client = Client {
        addr: http_addr(&mut server),
    };
    repeat(&client);

    // Without snapshots, from the journal alone.
    server.stop();
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let mut server = Server::start(dir.path(), &[]);
    assert!(
        server.report().recovery.contains("no snapshot"),
        "{}",
        server.report().recovery
    );
    let client = Client {
        addr: http_addr(&mut server),
    };
    repeat(&client);
    // Another key is another order.
    let mut other_key = buy.clone();
    other_key["clientOrderId"] = json!("retry-2");
    let second = client.expect(201, "POST", "/api/v1/product/buy", Some(&buyer), other_key);
    assert_ne!(second["orderId"], first["orderId"]);
    server.stop();
}

#[test]
fn every_private_endpoint_refuses_a_missing_or_wrong_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let token = client.account("Owner");
    let (id, _) = token.split_once('.').unwrap();
    let wrong = format!("{id}.{}", "0".repeat(64));
    let order = json!({"symbol": "AAPL", "quantity": "1", "type": "market"});
    let endpoints: &[(&str, &str, Value)] = &[
        ("GET", "/api/v1/account", Value::Null),
        ("GET", "/api/v1/funds", Value::Null),
        (
            "PUT",
            "/api/v1/funds",
            json!({"amount": "1", "currency": "USD", "type": "upi", "requestId": "r", "additionalInformation": {"vpa": "a@b"}}),
        ),
        (
            "POST",
            "/api/v1/funds",
            json!({"amount": "1", "currency": "USD", "requestId": "w"}),
        ),
        ("GET", "/api/v1/funds/history", Value::Null),
        ("GET", "/api/v1/bookmarks", Value::Null),
        ("PUT", "/api/v1/bookmarks/AAPL", Value::Null),
        ("DELETE", "/api/v1/bookmarks/AAPL", Value::Null),
        ("POST", "/api/v1/product/buy", order.clone()),
        ("POST", "/api/v1/product/sell", order),
        ("GET", "/api/v1/orders", Value::Null),
        ("GET", "/api/v1/orders/1", Value::Null),
        ("DELETE", "/api/v1/orders/1", Value::Null),
        ("GET", "/api/v1/trades", Value::Null),
        (
            "GET",
            "/api/v1/fees?symbol=AAPL&side=buy&quantity=1&price=1",
            Value::Null,
        ),
    ];
    for (method, path, body) in endpoints {
        for token in [None, Some(wrong.as_str()), Some("not-a-token")] {
            let answer = client.expect(401, method, path, token, body.clone());
            assert_eq!(answer["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    // Nothing above changed anything.
    assert_eq!(
        client.balances(&token),
        Vec::<(String, String, String)>::new()
    );
    let history = client.expect(
        200,
        "GET",
        "/api/v1/funds/history",
        Some(&token),
        Value::Null,
    );
    assert_eq!(history, json!([]));
    server.stop();
}

/// A refused request: method, path, token, content type, body; then the answer's status,
/// error code and a part of its message.
type BadRequest<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    String,
    u16,
    &'a str,
    &'a str,
);

const ADMIN: &str = "admin-secret-for-tests-0123456789";

/// The engine's state hash, through the admin API.
fn state_hash(client: &Client) -> String {
    let status = client.expect(200, "GET", "/api/v1/admin/status", Some(ADMIN), Value::Null);
    status["stateHash"].as_str().unwrap().to_string()
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a corpus: one bad request after another, each with the refusal it must get"
)]
fn a_corpus_of_bad_requests_is_refused_precisely_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--admin-token", ADMIN]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let (seller, buyer) = client.seller_and_buyer("Seller", "Buyer");
    client.expect(
        201,
        "POST",
        "/api/v1/product/sell",
        Some(&seller),
        json!({"symbol": "AAPL", "quantity": "5", "type": "limit", "price": "150.00",
               "clientOrderId": "ask-1"}),
    );
    let hash = state_hash(&client);
    let balances = (client.balances(&seller), client.balances(&buyer));

    let order = |extra: Value| {
        let mut body = json!({"symbol": "AAPL", "quantity": "1", "type": "limit", "price": "140"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body.to_string()
    };
    let deposit = |amount: &str, currency: &str, request_id: &str| {
        json!({"amount": amount, "currency": currency, "type": "upi", "requestId": request_id,
               "additionalInformation": {"vpa": "me@bank"}})
        .to_string()
    };
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let fee_token = format!("0.{}", "a".repeat(64));
    let b = Some(buyer.as_str());
    let s = Some(seller.as_str());
    let corpus: Vec<BadRequest> = vec![
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            "{\"symbol\":".into(),
            400,
            "invalid_request",
            "invalid JSON body",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            "[1,2]".into(),
            400,
            "invalid_request",
            "invalid JSON body",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"leverage": "100"})),
            400,
            "invalid_request",
            "unknown field `leverage`",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": 1})),
            400,
            "invalid_request",
            "invalid type: integer `1`, expected a string",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": "-1"})),
            400,
            "invalid_request",
            "quantity must be positive",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": "0"})),
            400,
            "invalid_request",
            "quantity must be positive",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": "1e40"})),
            400,
            "invalid_request",
            "is not a decimal number",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": "99999999999999999999"})),
            400,
            "invalid_request",
            "too large",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": "1.5"})),
            400,
            "invalid_request",
            "lot size 1",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"price": "140.001"})),
            400,
            "invalid_request",
            "tick size 0.01",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"price": "-140"})),
            400,
            "invalid_request",
            "price must be positive",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"price": null})),
            400,
            "invalid_request",
            "a limit order needs a price",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"type": "market"})),
            400,
            "invalid_request",
            "a market order takes no price",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"type": "stop"})),
            400,
            "invalid_request",
            "not one of market, limit",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"timeInForce": "GTD"})),
            400,
            "invalid_request",
            "not one of GTC, IOC, FOK, POST_ONLY",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"type": "market", "price": null, "timeInForce": "FOK"})),
            400,
            "invalid_request",
            "can only be IOC",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"clientOrderId": "has space"})),
            400,
            "invalid_request",
            "clientOrderId",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"symbol": "NOPE"})),
            404,
            "unknown_symbol",
            "no product \"NOPE\"",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": "100", "price": "150"})),
            422,
            "insufficient_funds",
            "insufficient",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"price": "150", "timeInForce": "POST_ONLY"})),
            422,
            "would_take_liquidity",
            "post-only",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "application/json",
            order(json!({"quantity": "6", "price": "150", "timeInForce": "FOK"})),
            422,
            "would_not_fill",
            "fill-or-kill",
        ),
        (
            "POST",
            "/api/v1/product/sell",
            s,
            "application/json",
            order(json!({"price": "160", "clientOrderId": "ask-1"})),
            409,
            "duplicate_client_order_id",
            "client order id",
        ),
        (
            "POST",
            "/api/v1/product/sell",
            s,
            "application/json",
            order(json!({"quantity": "6", "price": "160"})),
            422,
            "insufficient_funds",
            "insufficient",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            None,
            "application/json",
            order(json!({})),
            401,
            "unauthorized",
            "missing Authorization",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            Some("1.abc"),
            "application/json",
            order(json!({})),
            401,
            "unauthorized",
            "invalid token",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            Some(&fee_token),
            "application/json",
            order(json!({})),
            401,
            "unauthorized",
            "invalid token",
        ),
        (
            "POST",
            "/api/v1/product/buy",
            b,
            "text/plain",
            order(json!({})),
            415,
            "unsupported_media_type",
            "Content-Type: application/json",
        ),
        (
            "PUT",
            "/api/v1/account",
            None,
            "application/json",
            big,
            413,
            "payload_too_large",
            "larger than 65536 bytes",
        ),
        (
            "PUT",
            "/api/v1/funds",
            b,
            "application/json",
            deposit("-5", "USD", "d-1"),
            400,
            "invalid_request",
            "amount must be positive",
        ),
        (
            "PUT",
            "/api/v1/funds",
            b,
            "application/json",
            deposit("1.001", "USD", "d-1"),
            400,
            "invalid_request",
            "too many decimals",
        ),
        (
            "PUT",
            "/api/v1/funds",
            b,
            "application/json",
            deposit("1", "XXX", "d-1"),
            400,
            "invalid_request",
            "unknown currency",
        ),
        (
            "PUT",
            "/api/v1/funds",
            b,
            "application/json",
            deposit("1", "USD", &"r".repeat(37)),
            400,
            "invalid_request",
            "requestId",
        ),
        (
            "PUT",
            "/api/v1/funds",
            b,
            "application/json",
            deposit("1", "USD", "b-1"),
            409,
            "duplicate_request",
            "requestId",
        ),
        (
            "POST",
            "/api/v1/funds",
            b,
            "application/json",
            json!({"amount": "1000.01", "currency": "USD", "requestId": "w-1"}).to_string(),
            422,
            "insufficient_funds",
            "available balance",
        ),
        (
            "GET",
            "/api/v1/orders?status=bogus",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "not one of open, closed",
        ),
        (
            "GET",
            "/api/v1/orders?limit=0",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "limit must be",
        ),
        (
            "GET",
            "/api/v1/trades?cursor=abc",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "is not a cursor",
        ),
        (
            "GET",
            "/api/v1/trades?page=2",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "unknown field `page`",
        ),
        (
            "GET",
            "/api/v1/orders/abc",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "is not an order id",
        ),
        (
            "DELETE",
            "/api/v1/orders/0",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "is not an order id",
        ),
        (
            "DELETE",
            "/api/v1/orders/999999",
            b,
            "application/json",
            String::new(),
            404,
            "unknown_order",
            "no order 999999",
        ),
        (
            "DELETE",
            "/api/v1/orders/1",
            b,
            "application/json",
            String::new(),
            404,
            "unknown_order",
            "no order 1",
        ),
        (
            "GET",
            "/api/v1/fees?side=buy&quantity=1",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "needs symbol",
        ),
        (
            "GET",
            "/api/v1/fees?symbol=AAPL&side=up&quantity=1",
            b,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "not buy or sell",
        ),
        (
            "GET",
            "/api/v1/products?limit=100000",
            None,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "limit must be",
        ),
        (
            "GET",
            "/api/v1/products/NOPE/book",
            None,
            "application/json",
            String::new(),
            404,
            "unknown_symbol",
            "NOPE",
        ),
        (
            "GET",
            "/api/v1/products/AAPL/book?depth=-1",
            None,
            "application/json",
            String::new(),
            400,
            "invalid_request",
            "depth must be",
        ),
        (
            "PUT",
            "/api/v1/bookmarks/NOPE",
            b,
            "application/json",
            String::new(),
            404,
            "unknown_symbol",
            "NOPE",
        ),
        (
            "PUT",
            "/api/v1/account",
            None,
            "application/json",
            json!({"name": "", "proof": "p", "currencyPreference": "USD"}).to_string(),
            400,
            "invalid_request",
            "name must be",
        ),
        (
            "PUT",
            "/api/v1/admin/accounts/1/status",
            None,
            "application/json",
            json!({"status": "rejected"}).to_string(),
            401,
            "unauthorized",
            "admin",
        ),
        (
            "PUT",
            "/api/v1/admin/accounts/1/status",
            b,
            "application/json",
            json!({"status": "rejected"}).to_string(),
            401,
            "unauthorized",
            "admin",
        ),
        (
            "PUT",
            "/api/v1/admin/accounts/1/status",
            Some(ADMIN),
            "application/json",
            json!({"status": "banned"}).to_string(),
            400,
            "invalid_request",
            "not one of pending",
        ),
        (
            "PUT",
            "/api/v1/admin/accounts/999/status",
            Some(ADMIN),
            "application/json",
            json!({"status": "verified"}).to_string(),
            404,
            "unknown_account",
            "999",
        ),
        (
            "PATCH",
            "/api/v1/orders",
            b,
            "application/json",
            String::new(),
            405,
            "method_not_allowed",
            "PATCH",
        ),
        (
            "GET",
            "/api/v1/nowhere",
            b,
            "application/json",
            String::new(),
            404,
            "not_found",
            "/api/v1/nowhere",
        ),
    ];
    for (method, path, token, content_type, body, status, code, message) in &corpus {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", *content_type)];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let (got, answer) = http(&client.addr, method, path, &headers, body);
        let shown = &body[..body.len().min(120)];
        assert_eq!(got, *status, "{method} {path} {shown}: {answer}");
        let answer = json(&answer);
        assert_eq!(
            answer["error"]["code"], *code,
            "{method} {path} {shown}: {answer}"
        );
        let text = answer["error"]["message"].as_str().unwrap();
        assert!(
            text.contains(message),
            "{method} {path} {shown}: {text:?} lacks {message:?}"
        );
    }
    assert_eq!(
        state_hash(&client),
        hash,
        "a refused request changed the state"
    );
    assert_eq!(
        (client.balances(&seller), client.balances(&buyer)),
        balances
    );
    server.stop();
}

#[test]
fn pending_accounts_cannot_trade_until_the_admin_verifies_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &["--admin-token", ADMIN, "--auto-verify", "false"],
    );
    let client = Client {
        addr: http_addr(&mut server),
    };
    let created = client.expect(
        201,
        "PUT",
        "/api/v1/account",
        None,
        json!({"name": "New", "proof": "passport", "currencyPreference": "USD"}),
    );
    assert_eq!(created["profileStatus"], "pending");
    let token = created["token"].as_str().unwrap();
    let id = created["accountId"].as_str().unwrap();
    client.deposit(token, "100.00", "USD", "d-1");
    let buy = json!({"symbol": "AAPL", "quantity": "1", "type": "limit", "price": "10"});
    let refused = client.expect(403, "POST", "/api/v1/product/buy", Some(token), buy.clone());
    assert_eq!(refused["error"]["code"], "account_not_verified");
    let path = format!("/api/v1/admin/accounts/{id}/status");
    let set = client.expect(
        200,
        "PUT",
        &path,
        Some(ADMIN),
        json!({"status": "verified"}),
    );
    assert_eq!(set["profileStatus"], "verified");
    let account = client.expect(200, "GET", "/api/v1/account", Some(token), Value::Null);
    assert_eq!(account["profileStatus"], "verified");
    let placed = client.expect(201, "POST", "/api/v1/product/buy", Some(token), buy);
    assert_eq!(placed["status"], "open");
    server.stop();
}

#[test]
fn an_account_over_its_rate_limit_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--rate-limit", "5"]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let token = client.account("Busy");
    let other = client.account("Calm");
    let auth = format!("Bearer {token}");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..30 {
        let (status, head, body) = http_with_head(
            &client.addr,
            "GET",
            "/api/v1/funds",
            &[("Authorization", &auth)],
            "",
        );
        if status == 429 {
            assert_eq!(json(&body)["error"]["code"], "rate_limited");
            retry_after = header(&head, "retry-after").map(str::to_string);
        }
        statuses.push(status);
    }
    // A burst of 5 passes; refills are 1 per 200 ms, so at most a few more in the loop.
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..30).contains(&passed), "{statuses:?}");
    assert_eq!(statuses[..5], [200; 5]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    // The other account has its own budget.
    client.expect(200, "GET", "/api/v1/funds", Some(&other), Value::Null);
    server.stop();
}

#[test]
fn the_openapi_document_covers_every_route_and_every_documented_route_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let doc = client.expect(200, "GET", "/api/v1/openapi.json", None, Value::Null);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_some() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    // Every endpoint of the contract is there.
    for (method, path) in [
        ("PUT", "/api/v1/account"),
        ("GET", "/api/v1/account"),
        ("GET", "/api/v1/products"),
        ("GET", "/api/v1/products/{symbol}"),
        ("GET", "/api/v1/products/{symbol}/book"),
        ("POST", "/api/v1/product/buy"),
        ("POST", "/api/v1/product/sell"),
        ("GET", "/api/v1/orders"),
        ("GET", "/api/v1/orders/{id}"),
        ("DELETE", "/api/v1/orders/{id}"),
        ("GET", "/api/v1/trades"),
        ("GET", "/api/v1/fees"),
        ("PUT", "/api/v1/funds"),
        ("GET", "/api/v1/funds"),
        ("POST", "/api/v1/funds"),
        ("GET", "/api/v1/funds/history"),
        ("GET", "/api/v1/bookmarks"),
        ("PUT", "/api/v1/bookmarks/{symbol}"),
        ("DELETE", "/api/v1/bookmarks/{symbol}"),
        ("GET", "/api/v1/ws"),
    ] {
        assert!(
            operations.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not in the document"
        );
    }
    // The order body is described from the struct the handler parses.
    let order = &doc["components"]["schemas"]["OrderBody"]["properties"];
    for field in [
        "symbol",
        "quantity",
        "type",
        "price",
        "timeInForce",
        "clientOrderId",
    ] {
        assert!(
            order.get(field).is_some(),
            "OrderBody lacks {field}: {order}"
        );
    }
    check_declared_answers(&doc);
    // Every documented operation is routed (whatever it answers without a token or a body,
    // it is not "no such path" or "method not allowed").
    for (method, path) in &operations {
        let concrete = path.replace("{symbol}", "AAPL").replace("{id}", "1");
        let (status, body) = http(&client.addr, method, &concrete, &[], "");
        assert!(
            status != 405 && !body.contains("\"not_found\""),
            "{method} {path} is documented but answers {status} {body}"
        );
    }
    server.stop();
}

/// Every answer of the document states its body: each success a schema (the WebSocket's 101
/// has none), each error status the contract's error shape with its codes in the description;
/// no catch-all `default`. Decimals, symbols and currency codes state their patterns, and the
/// order body its required fields and enumerations.
fn check_declared_answers(doc: &Value) {
    let mut successes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                !responses.contains_key("default"),
                "{method} {path} has a catch-all answer"
            );
            for (status, response) in responses {
                if status == "101" {
                    continue;
                }
                let schema = response["content"]
                    .as_object()
                    .and_then(|types| types.values().next())
                    .map(|media| &media["schema"]);
                let Some(schema) = schema.filter(|s| !s.is_null()) else {
                    panic!("{method} {path} {status} declares no body: {response}");
                };
                if status.starts_with('2') {
                    successes += 1;
                } else {
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                    let description = response["description"].as_str().unwrap();
                    assert!(
                        description.starts_with('`'),
                        "{method} {path} {status} does not name its codes: {description}"
                    );
                }
            }
        }
    }
    // 31 operations, of which buy and sell have two successes: 201 (placed) and 200 (a repeat).
    assert_eq!(
        successes, 33,
        "every operation but the WebSocket upgrade answers a body"
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Decimal"]["pattern"], r"^-?[0-9]+(\.[0-9]+)?$");
    assert_eq!(schemas["Symbol"]["pattern"], "^[!-~]{1,16}$");
    assert_eq!(schemas["CurrencyCode"]["pattern"], "^[!-~]{1,12}$");
    let order = &schemas["OrderBody"];
    assert_eq!(order["required"], json!(["symbol", "quantity", "type"]));
    assert_eq!(order["additionalProperties"], json!(false));
    assert_eq!(
        order["properties"]["quantity"]["$ref"],
        "#/components/schemas/PositiveDecimal"
    );
    assert_eq!(schemas["OrderTypeName"]["enum"], json!(["market", "limit"]));
    let answer = &schemas["Order"];
    assert!(
        answer["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "price"),
        "an order's price is there, null for a market order: {answer}"
    );
    assert_eq!(
        answer["properties"]["status"]["$ref"],
        "#/components/schemas/OrderStatusName"
    );
}

#[test]
fn a_history_that_cannot_be_rebuilt_starts_over_and_the_server_still_serves() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--retention",
        "delete",
        "--snapshots-kept",
        "1",
        "--segment-size-mib",
        "1",
        "--snapshot-every",
        "2000",
    ];
    let mut with_load: Vec<&str> = args.to_vec();
    with_load.extend(["--load-rate", "20000"]);
    let mut server = Server::start(dir.path(), &with_load);
    // Enough commands for several 1 MiB segments, snapshots, and deleted segments. The
    // server's main loop is this thread's: it takes the periodic snapshots.
    let handle = server.handle();
    eventually("40,000 commands committed", || {
        server.poll().expect("the server runs");
        (handle.stats().committed_seq >= 40_000).then_some(())
    });
    drop(handle);
    server.stop();
    // Without its log, the history would need the journal from seq 1, which is gone.
    std::fs::remove_dir_all(dir.path().join("history")).unwrap();
    let mut server = Server::start(dir.path(), &args);
    match &server.report().history {
        bourse_server::HistoryStart::StartedOver { why, .. } => {
            assert!(why.contains("cannot be rebuilt"), "{why}");
        }
        other => panic!("the history did not start over: {other:?}"),
    }
    let client = Client {
        addr: http_addr(&mut server),
    };
    let token = client.account("After");
    client.deposit(&token, "10.00", "USD", "a-1");
    let history = client.expect(
        200,
        "GET",
        "/api/v1/funds/history",
        Some(&token),
        Value::Null,
    );
    assert_eq!(
        pluck(&history, &["kind", "amount"]),
        vec![vec!["deposit", "10.00"]]
    );
    server.stop();
    // The next start does not try again.
    let mut server = Server::start(dir.path(), &args);
    let client = Client {
        addr: http_addr(&mut server),
    };
    assert_eq!(
        server.report().history,
        bourse_server::HistoryStart::UpToDate,
        "the next start does not try again"
    );
    let history = client.expect(
        200,
        "GET",
        "/api/v1/funds/history",
        Some(&token),
        Value::Null,
    );
    assert_eq!(
        pluck(&history, &["kind", "amount"]),
        vec![vec!["deposit", "10.00"]]
    );
    server.stop();
}
