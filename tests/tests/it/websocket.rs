//! The WebSocket API against a real `bourse serve`: a client that trades over the socket sees
//! its fill, its order and its balance change on its channels, with snapshots first and
//! per-channel sequence numbers without gaps; bad messages get errors in the contract's shape
//! and change nothing; a client that does not read does not delay one that does, and is told
//! and dropped when its queue overflows.

use bourse_tests::client::*;
use bourse_tests::server::{Server, http_addr};

use std::collections::HashMap;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<TcpStream>;

fn connect(addr: &str) -> Socket {
    connect_with(addr, |_| {})
}

/// Connects, letting `tune` set socket options first.
fn connect_with(addr: &str, tune: impl FnOnce(&TcpStream)) -> Socket {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    tune(&stream);
    let (socket, _) =
        tungstenite::client(format!("ws://{addr}/api/v1/ws"), stream).expect("handshake");
    socket
}

fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).unwrap();
}

fn read(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("a message") {
            Message::Text(text) => return json(text.as_str()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the answer with `id`; channel messages on the way are kept in `seen`.
fn answer(socket: &mut Socket, id: u64, seen: &mut Vec<Value>) -> Value {
    loop {
        let message = read(socket);
        if message["id"] == id {
            return message;
        }
        seen.push(message);
    }
}

/// Reads channel messages until `done` says the ones so far are enough.
fn until(socket: &mut Socket, seen: &mut Vec<Value>, done: impl Fn(&[Value]) -> bool) {
    while !done(seen) {
        let message = read(socket);
        seen.push(message);
    }
}

fn on<'a>(seen: &'a [Value], channel: &str) -> Vec<&'a Value> {
    seen.iter().filter(|m| m["channel"] == channel).collect()
}

/// Every channel's messages: a snapshot, then updates numbered one after the other.
fn assert_sequenced(seen: &[Value]) {
    let mut last: HashMap<String, u64> = HashMap::new();
    for message in seen.iter().filter(|m| m.get("channel").is_some()) {
        let channel = message["channel"].as_str().unwrap().to_string();
        let seq = message["seq"].as_u64().unwrap();
        match (message["type"].as_str().unwrap(), last.get(&channel)) {
            ("snapshot", None) => {}
            ("update", Some(previous)) => {
                assert_eq!(seq, previous + 1, "a gap on {channel}: {message}")
            }
            other => panic!("{other:?} out of place on {channel}: {message}"),
        }
        last.insert(channel, seq);
    }
}

/// A repeated order over the socket (the same `clientOrderId` and body as an order placed over
/// HTTP) is answered with the first order and `duplicate: true`; another body is refused.
#[test]
fn a_repeated_order_over_the_socket_answers_the_first_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let (seller, buyer) = client.seller_and_buyer("Seller", "Buyer");
    client.expect(
        201,
        "POST",
        "/api/v1/product/sell",
        Some(&seller),
        json!({"symbol": "AAPL", "quantity": "5", "type": "limit", "price": "150.00"}),
    );
    let body = json!({"symbol": "AAPL", "quantity": "1", "type": "market", "clientOrderId": "k-1"});
    let first = client.expect(
        201,
        "POST",
        "/api/v1/product/buy",
        Some(&buyer),
        body.clone(),
    );

    let mut ws = connect(&client.addr);
    let mut seen = Vec::new();
    send(&mut ws, json!({"op": "auth", "id": 1, "token": buyer}));
    assert_eq!(answer(&mut ws, 1, &mut seen)["ok"], true);
    let mut order = body.clone();
    order["op"] = json!("order");
    order["id"] = json!(2);
    order["side"] = json!("buy");
    send(&mut ws, order.clone());
    let repeated = answer(&mut ws, 2, &mut seen);
    assert_eq!(repeated["ok"], true, "{repeated}");
    let mut expected = first.clone();
    expected["duplicate"] = json!(true);
    assert_eq!(repeated["order"], expected);
    order["id"] = json!(3);
    order["quantity"] = json!("2");
    send(&mut ws, order);
    let refused = answer(&mut ws, 3, &mut seen);
    assert_eq!(
        refused["error"]["code"], "duplicate_client_order_id",
        "{refused}"
    );
    assert_eq!(
        client.balances(&buyer),
        vec![row("USD", "849.70", "0.00"), row("AAPL", "1", "0")],
        "one share bought, once"
    );
    server.stop();
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn a_websocket_client_sees_its_fill_its_order_and_its_balance_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let (seller, buyer) = client.seller_and_buyer("Seller", "Buyer");

    let mut ws = connect(&client.addr);
    let mut seen = Vec::new();
    send(&mut ws, json!({"op": "ping", "id": 1}));
    assert_eq!(answer(&mut ws, 1, &mut seen)["ok"], true);
    // Private channels need auth first.
    send(
        &mut ws,
        json!({"op": "subscribe", "id": 2, "channels": ["orders"]}),
    );
    assert_eq!(
        answer(&mut ws, 2, &mut seen)["error"]["code"],
        "unauthorized"
    );
    send(&mut ws, json!({"op": "auth", "id": 3, "token": buyer}));
    let authed = answer(&mut ws, 3, &mut seen);
    assert_eq!(authed["ok"], true, "{authed}");
    let channels = [
        "orders",
        "trades",
        "balances",
        "book:AAPL",
        "ticks:AAPL",
        "candles:AAPL:1m",
    ];
    send(
        &mut ws,
        json!({"op": "subscribe", "id": 4, "channels": channels}),
    );
    assert_eq!(answer(&mut ws, 4, &mut seen)["channels"], json!(channels));
    until(&mut ws, &mut seen, |s| s.len() == channels.len());
    assert!(seen.iter().all(|m| m["type"] == "snapshot"), "{seen:?}");
    let balances = on(&seen, "balances")[0];
    assert_eq!(
        balances["data"]["balances"],
        json!([{"currency": "USD", "available": "1000.00", "held": "0.00"}])
    );

    // The seller's offer rests (over HTTP); the buyer's book shows it.
    client.expect(
        201,
        "POST",
        "/api/v1/product/sell",
        Some(&seller),
        json!({"symbol": "AAPL", "quantity": "5", "type": "limit", "price": "150.00"}),
    );
    until(&mut ws, &mut seen, |s| {
        on(s, "book:AAPL")
            .iter()
            .any(|m| m["data"]["asks"] == json!([{"price": "150", "quantity": "5", "orders": 1}]))
    });

    // The buyer buys 3 at market over the socket.
    send(
        &mut ws,
        json!({"op": "order", "id": 5, "side": "buy", "symbol": "AAPL", "quantity": "3",
               "type": "market"}),
    );
    let bought = answer(&mut ws, 5, &mut seen);
    assert_eq!(bought["ok"], true, "{bought}");
    assert_eq!(bought["order"]["status"], "filled");
    assert_eq!(bought["order"]["fees"], "0.90");
    until(&mut ws, &mut seen, |s| {
        let paid = on(s, "balances").iter().any(|m| {
            m["data"]["balances"][0]["available"] == "549.10"
                && m["data"]["balances"][1]
                    == json!({"currency": "AAPL", "available": "3", "held": "0"})
        });
        paid && !on(s, "trades").is_empty()
            && on(s, "ticks:AAPL").len() > 1
            && on(s, "candles:AAPL:1m").len() > 1
            && on(s, "orders")
                .iter()
                .any(|m| m["data"]["status"] == "filled")
    });
    let trade = on(&seen, "trades").last().unwrap()["data"].clone();
    assert_eq!(
        (
            &trade["side"],
            &trade["liquidity"],
            &trade["price"],
            &trade["quantity"],
            &trade["fee"]
        ),
        (
            &json!("buy"),
            &json!("taker"),
            &json!("150"),
            &json!("3"),
            &json!("0.90")
        )
    );
    // The fill is a tick of the product (source bourse) and goes into its open candle.
    let tick = on(&seen, "ticks:AAPL").last().unwrap()["data"].clone();
    assert_eq!(
        (&tick["price"], &tick["size"], &tick["source"]),
        (&json!("150"), &json!("3"), &json!("bourse"))
    );
    assert_eq!(on(&seen, "candles:AAPL:1m")[0]["data"], json!([]));
    let candle = on(&seen, "candles:AAPL:1m").last().unwrap()["data"].clone();
    assert_eq!(
        (
            &candle["open"],
            &candle["close"],
            &candle["volume"],
            &candle["closed"]
        ),
        (&json!("150"), &json!("150"), &json!("3"), &json!(false))
    );
    assert_eq!(candle["start"].as_i64().unwrap() % 60_000, 0);

    // A limit order, then its cancel over the socket.
    send(
        &mut ws,
        json!({"op": "order", "id": 6, "side": "buy", "symbol": "AAPL", "quantity": "1",
               "type": "limit", "price": "100.00"}),
    );
    let resting = answer(&mut ws, 6, &mut seen);
    assert_eq!(resting["order"]["status"], "open");
    let order_id = resting["order"]["orderId"].clone();
    send(
        &mut ws,
        json!({"op": "cancel", "id": 7, "orderId": order_id}),
    );
    let cancelled = answer(&mut ws, 7, &mut seen);
    assert_eq!(cancelled["order"]["status"], "cancelled", "{cancelled}");
    until(&mut ws, &mut seen, |s| {
        on(s, "orders")
            .iter()
            .any(|m| m["data"]["orderId"] == order_id && m["data"]["status"] == "cancelled")
    });
    assert_sequenced(&seen);
    server.stop();
}

const ADMIN: &str = "admin-secret-for-tests-0123456789";

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn bad_websocket_messages_get_precise_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--admin-token", ADMIN]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let buyer = client.account("Buyer");
    client.deposit(&buyer, "100.00", "USD", "b-1");
    let hash = |client: &Client| {
        client.expect(200, "GET", "/api/v1/admin/status", Some(ADMIN), Value::Null)["stateHash"]
            .clone()
    };
    let before = hash(&client);

    let mut ws = connect(&client.addr);
    let mut seen = Vec::new();
    ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    let binary = read(&mut ws);
    assert_eq!(binary["error"]["code"], "invalid_request");
    assert!(
        binary["error"]["message"]
            .as_str()
            .unwrap()
            .contains("binary frames")
    );
    ws.send(Message::text("{not json")).unwrap();
    assert!(
        read(&mut ws)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"id": 1, "op": "order", "side": "buy", "symbol": "AAPL", "quantity": "1", "type": "market"}),
            "unauthorized",
            "authenticate first",
        ),
        (
            json!({"id": 2, "op": "fly"}),
            "invalid_request",
            "unknown op",
        ),
        (json!({"id": 3}), "invalid_request", "needs \"op\""),
        (
            json!({"id": 4, "op": "auth", "token": "1.bad"}),
            "unauthorized",
            "invalid token",
        ),
        (
            json!({"id": 5, "op": "auth"}),
            "invalid_request",
            "needs \"token\"",
        ),
        (
            json!({"id": 6, "op": "subscribe", "channels": ["ticks:NOPE"]}),
            "unknown_symbol",
            "NOPE",
        ),
        (
            json!({"id": 7, "op": "subscribe", "channels": ["weather"]}),
            "unknown_channel",
            "weather",
        ),
        (
            json!({"id": 8, "op": "subscribe", "channels": []}),
            "invalid_request",
            "non-empty array",
        ),
        (
            json!({"id": 9, "op": "ping", "extra": 1}),
            "invalid_request",
            "unknown field \"extra\"",
        ),
    ];
    for (message, code, text) in &cases {
        let id = message["id"].as_u64().unwrap();
        send(&mut ws, message.clone());
        let got = answer(&mut ws, id, &mut seen);
        assert_eq!(got["error"]["code"], *code, "{message}: {got}");
        assert!(
            got["error"]["message"].as_str().unwrap().contains(text),
            "{message}: {got}"
        );
    }
    send(&mut ws, json!({"op": "auth", "id": 10, "token": buyer}));
    assert_eq!(answer(&mut ws, 10, &mut seen)["ok"], true);
    let orders: Vec<(Value, &str, &str)> = vec![
        (
            json!({"id": 11, "op": "order", "side": "up", "symbol": "AAPL"}),
            "invalid_request",
            "\"side\"",
        ),
        (
            json!({"id": 12, "op": "order", "side": "buy", "symbol": "AAPL", "quantity": "1", "type": "market", "leverage": 5}),
            "invalid_request",
            "unknown field `leverage`",
        ),
        (
            json!({"id": 13, "op": "order", "side": "buy", "symbol": "AAPL", "quantity": "-1", "type": "market"}),
            "invalid_request",
            "quantity must be positive",
        ),
        (
            json!({"id": 14, "op": "order", "side": "buy", "symbol": "AAPL", "quantity": "1", "type": "limit", "price": "1000"}),
            "insufficient_funds",
            "insufficient",
        ),
        // The typed one-pass read of an order and the general path must give the same
        // answers: a wrong type falls back to the general path, which names it; the rest
        // are checked after either read.
        (
            json!({"id": 17, "op": "order", "side": "buy", "symbol": "AAPL", "quantity": 1, "type": "market"}),
            "invalid_request",
            "invalid type: integer `1`, expected a string",
        ),
        (
            json!({"id": 18, "op": "order", "side": "buy", "symbol": "NOPE", "quantity": "1", "type": "market"}),
            "unknown_symbol",
            "NOPE",
        ),
        (
            json!({"id": 19, "op": "order", "type": "limit", "price": null, "quantity": "1", "symbol": "AAPL", "side": "buy"}),
            "invalid_request",
            "a limit order needs a price",
        ),
        (
            json!({"id": 20, "op": "order", "side": "buy", "symbol": "AAPL", "quantity": "1", "type": "stop"}),
            "invalid_request",
            "type \"stop\" is not one of market, limit",
        ),
        (
            json!({"id": 15, "op": "cancel", "orderId": "x"}),
            "invalid_request",
            "orderId",
        ),
        (
            json!({"id": 16, "op": "cancel", "orderId": 424242}),
            "unknown_order",
            "424242",
        ),
    ];
    for (message, code, text) in &orders {
        let id = message["id"].as_u64().unwrap();
        send(&mut ws, message.clone());
        let got = answer(&mut ws, id, &mut seen);
        assert_eq!(got["error"]["code"], *code, "{message}: {got}");
        assert!(
            got["error"]["message"].as_str().unwrap().contains(text),
            "{message}: {got}"
        );
    }
    assert!(seen.is_empty(), "nothing but answers: {seen:?}");
    // An oversized message: an error, then the close.
    ws.send(Message::text(format!(
        "{{\"op\": \"ping\", \"pad\": \"{}\"}}",
        "x".repeat(20_000)
    )))
    .unwrap();
    let too_big = read(&mut ws);
    assert_eq!(too_big["error"]["code"], "payload_too_large");
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected a close, got {other:?}"),
    }
    assert_eq!(hash(&client), before, "a refused message changed the state");
    server.stop();
}

#[test]
fn a_client_that_does_not_read_delays_no_one_and_is_dropped_when_its_queue_overflows() {
    let dir = tempfile::tempdir().unwrap();
    // A queue of 256 messages: the fast client must absorb the bursts in which the market-data
    // thread publishes the ticks of several fills at once; the slow one overflows it anyway
    // (1,500 book messages of ~1.5 KB against ~320 KB of socket buffers).
    let mut server = Server::start(dir.path(), &["--ws-queue", "256", "--rate-limit", "0"]);
    let client = Client {
        addr: http_addr(&mut server),
    };
    let seller = client.account("Seller");
    let buyer = client.account("Buyer");
    const TRADES: u64 = 1500;
    client.deposit(&seller, &TRADES.to_string(), "AAPL", "s-1");
    client.deposit(&buyer, "1000000.00", "USD", "b-1");
    client.expect(
        201,
        "POST",
        "/api/v1/product/sell",
        Some(&seller),
        json!({"symbol": "AAPL", "quantity": TRADES.to_string(), "type": "limit", "price": "100.00"}),
    );
    // Twenty more levels, so that every book message is about 1.5 KB.
    client.deposit(&seller, "20", "AAPL", "s-2");
    for level in 1..=20 {
        client.expect(
            201,
            "POST",
            "/api/v1/product/sell",
            Some(&seller),
            json!({"symbol": "AAPL", "quantity": "1", "type": "limit",
                   "price": format!("{}.00", 100 + level)}),
        );
    }

    // The slow client: a bounded receive buffer, subscribed, never reading.
    let mut slow = connect_with(&client.addr, |stream| {
        let size: libc::c_int = 64 * 1024;
        // SAFETY: the fd is the open socket `stream` borrows, and the option value points to
        // a live c_int whose size is the length passed.
        let set = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
    });
    send(
        &mut slow,
        json!({"op": "subscribe", "id": 1, "channels": ["ticks:AAPL", "book:AAPL"]}),
    );
    // The fast client trades and reads everything.
    let mut fast = connect(&client.addr);
    let mut seen = Vec::new();
    send(&mut fast, json!({"op": "auth", "id": 1, "token": buyer}));
    answer(&mut fast, 1, &mut seen);
    send(
        &mut fast,
        json!({"op": "subscribe", "id": 2, "channels": ["ticks:AAPL"]}),
    );
    answer(&mut fast, 2, &mut seen);
    // One order at a time, reading as it goes (its queue is as small as the slow one's).
    for i in 0..TRADES {
        send(
            &mut fast,
            json!({"op": "order", "id": 100 + i, "side": "buy", "symbol": "AAPL",
                   "quantity": "1", "type": "market"}),
        );
        let answer = answer(&mut fast, 100 + i, &mut seen);
        assert_eq!(answer["order"]["status"], "filled", "{answer}");
    }
    until(&mut fast, &mut seen, |s| {
        s.iter()
            .filter(|m| m["channel"] == "ticks:AAPL" && m["type"] == "update")
            .count()
            == TRADES as usize
    });
    assert_sequenced(&seen);
    let metrics = http_get(&client.addr, "/metrics").1;
    assert!(
        metrics.contains("bourse_ws_slow_consumers_total 1"),
        "the slow client was not dropped:\n{metrics}"
    );
    // Now the slow client reads: what was queued, then the reason, then the close.
    let mut last = Value::Null;
    loop {
        match slow.read() {
            Ok(Message::Text(text)) => last = json(text.as_str()),
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), 1013);
                break;
            }
            Ok(_) => {}
            Err(error) => panic!("no clean close ({error}); last message {last}"),
        }
    }
    assert_eq!(last["error"]["code"], "slow_consumer", "{last}");
    server.stop();
}

/// Checks every tick on `ticks:AAPL:EUR` in `seen` against the stored `aapl` and `eurusd`
/// ticks (see the test below); returns how many it checked.
fn check_converted_ticks(seen: &[Value], aapl: &[Value], eurusd: &[Value]) -> usize {
    let mut checked = 0;
    for message in on(seen, "ticks:AAPL:EUR") {
        let ticks = match &message["data"] {
            Value::Array(ticks) => ticks.clone(),
            tick => vec![tick.clone()],
        };
        for t in ticks {
            assert_eq!(
                (&t["currency"], &t["rate"]["pair"]),
                (&json!("EUR"), &json!("EURUSD"))
            );
            let own = aapl
                .iter()
                .find(|a| a["seq"] == t["seq"] && a["source"] == t["source"])
                .unwrap_or_else(|| panic!("{t} is not a stored AAPL tick"));
            let (ts, rate_time) = (
                t["timestamp"].as_i64().unwrap(),
                t["rate"]["time"].as_i64().unwrap(),
            );
            assert!(rate_time <= ts, "{t}");
            let rate = eurusd
                .iter()
                .find(|r| {
                    r["timestamp"] == rate_time && dec(&r["price"]) == dec(&t["rate"]["price"])
                })
                .unwrap_or_else(|| panic!("{t}: its rate is not a stored EURUSD tick"));
            let between = eurusd.iter().find(|r| {
                let rt = r["timestamp"].as_i64().unwrap();
                rate_time < rt && rt < ts
            });
            assert!(
                between.is_none(),
                "{t}: a newer rate {between:?} was in force"
            );
            let expected = (dec(&own["price"]) / dec(&rate["price"]))
                .round_dp_with_strategy(8, rust_decimal::RoundingStrategy::MidpointNearestEven);
            assert_eq!(dec(&t["price"]), expected.normalize(), "{t}");
            checked += 1;
        }
    }
    checked
}

/// `ticks:AAPL:EUR` and `candles:AAPL:1s:EUR` carry AAPL's ticks and candles in euros, each
/// at the rate the REST API would use (gateway/src/market_channels.rs), checked against the
/// raw ticks of AAPL and EURUSD read back from the server: every converted price is the
/// stored price divided by a stored EURUSD tick at or before it, and no other EURUSD tick
/// lies between the two (one stamped in the same millisecond may arrive after the update).
#[test]
fn converted_market_channels_carry_prices_at_the_rate_of_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_market(dir.path(), &[]);
    let client = Client {
        addr: server.addr.clone(),
    };
    eventually("EURUSD ticks from the simulator", || {
        let (status, body) =
            client.call("GET", "/api/v1/products/EURUSD/ticks", None, &Value::Null);
        (status == 200 && !body.as_array()?.is_empty()).then_some(())
    });
    let mut socket = connect(&server.addr);
    let mut seen = Vec::new();
    send(
        &mut socket,
        json!({"op": "subscribe", "id": 1,
               "channels": ["ticks:AAPL:EUR", "candles:AAPL:1s:EUR"]}),
    );
    let subscribed = answer(&mut socket, 1, &mut seen);
    assert_eq!(subscribed["ok"], true, "{subscribed}");
    until(&mut socket, &mut seen, |seen| {
        on(seen, "ticks:AAPL:EUR")
            .iter()
            .filter(|m| m["type"] == "update")
            .count()
            >= 5
            && on(seen, "candles:AAPL:1s:EUR").len() >= 3
    });
    assert_sequenced(&seen);

    let stored = |symbol: &str| {
        let (status, body) = client.call(
            "GET",
            &format!("/api/v1/products/{symbol}/ticks?limit=5000"),
            None,
            &Value::Null,
        );
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    };
    let checked = check_converted_ticks(&seen, &stored("AAPL"), &stored("EURUSD"));
    assert!(checked >= 5, "{checked}");
    for message in on(&seen, "candles:AAPL:1s:EUR") {
        let candles = match &message["data"] {
            Value::Array(candles) => candles.clone(),
            candle => vec![candle.clone()],
        };
        for c in candles {
            assert_eq!(
                (&c["currency"], &c["rate"]["pair"]),
                (&json!("EUR"), &json!("EURUSD")),
                "{c}"
            );
            assert!(dec(&c["low"]) <= dec(&c["high"]), "{c}");
        }
    }

    // A currency no rate converts into is refused; the product's own is the plain channel.
    send(
        &mut socket,
        json!({"op": "subscribe", "id": 2, "channels": ["ticks:AAPL:CHF"]}),
    );
    let refused = answer(&mut socket, 2, &mut seen);
    assert_eq!(refused["error"]["code"], "no_rate", "{refused}");
    send(
        &mut socket,
        json!({"op": "subscribe", "id": 3, "channels": ["candles:AAPL:1s:USD"]}),
    );
    let refused = answer(&mut socket, 3, &mut seen);
    assert_eq!(refused["error"]["code"], "invalid_request", "{refused}");
    send(
        &mut socket,
        json!({"op": "unsubscribe", "id": 4, "channels": ["ticks:AAPL:EUR"]}),
    );
    let done = answer(&mut socket, 4, &mut seen);
    assert_eq!(done["ok"], true, "{done}");
}
