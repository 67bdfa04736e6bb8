//! Trading over the HTTP API against a real `bourse serve`: the seed's use cases (create an
//! account, add funds, view the products, buy, sell) between two accounts, with balances,
//! fees, orders, trades and funds history checked to the cent; cancel; authorization of every
//! private endpoint; and the history surviving a restart and a rebuild from the journal.
//!
//! The default catalogue lists AAPL (whole shares, priced in cents) with fees of 0.10% maker
//! and 0.20% taker, rounded up to the cent.

mod common;
use common::*;

use serde_json::{Value, json};

const JSON: (&str, &str) = ("Content-Type", "application/json");

struct Client {
    addr: String,
}

impl Client {
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let (status, _, body) = self.call_with_head(method, path, token, body);
        (status, body)
    }

    fn call_with_head(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, String, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![JSON];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, head, body) = http_with_head(&self.addr, method, path, &headers, &text);
        (status, head, json(&body))
    }

    /// A call that must answer `status`; returns the body.
    fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        let (got, answer) = self.call(method, path, token, &body);
        assert_eq!(got, status, "{method} {path} {body} answered {answer}");
        answer
    }

    fn account(&self, name: &str) -> String {
        let created = self.expect(
            201,
            "PUT",
            "/api/v1/account",
            None,
            json!({"name": name, "proof": "passport", "currencyPreference": "USD"}),
        );
        created["token"].as_str().unwrap().to_string()
    }

    fn deposit(&self, token: &str, amount: &str, currency: &str, request_id: &str) {
        self.expect(
            200,
            "PUT",
            "/api/v1/funds",
            Some(token),
            json!({"amount": amount, "currency": currency, "type": "bank",
                   "requestId": request_id,
                   "additionalInformation": {"accountNumber": "DE89370400440532013000"}}),
        );
    }

    /// `{currency: (available, held)}`.
    fn balances(&self, token: &str) -> Vec<(String, String, String)> {
        let rows = self.expect(200, "GET", "/api/v1/funds", Some(token), Value::Null);
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["currency"].as_str().unwrap().to_string(),
                    r["available"].as_str().unwrap().to_string(),
                    r["held"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn row(currency: &str, available: &str, held: &str) -> (String, String, String) {
    (currency.into(), available.into(), held.into())
}

/// The fields of a list of objects, for compact assertions.
fn pluck(list: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| {
            fields
                .iter()
                .map(|f| match &item[*f] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

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
    let seller = client.account("Sam Seller");
    let buyer = client.account("Bea Buyer");
    client.deposit(&seller, "10", "AAPL", "s-1");
    client.deposit(&buyer, "1000.00", "USD", "b-1");

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

    // The catalogue shows the last trade and the recent ones.
    let product = client.expect(200, "GET", "/api/v1/products/AAPL", None, Value::Null);
    assert_eq!(product["currentPrice"], "151");
    assert_eq!(
        pluck(&product["histories"], &["price"]),
        vec![vec!["150"], vec!["151"]]
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
    server.wait_for_log("history caught up from event 0");
    let client = Client {
        addr: http_addr(&mut server),
    };
    assert_eq!(everything(&client, &[&seller, &buyer]), before);
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
