//! The API over HTTP against an in-process server: accounts and tokens, health and metrics,
//! deposits and withdrawals to the cent, bookmarks across a restart.

use bourse_tests::client::*;
use bourse_tests::server::{Server, http_addr};

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn accounts_are_created_with_a_token_that_only_opens_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let addr = http_addr(&mut server);
    let json_type = ("Content-Type", "application/json");
    let create = |name: &str| {
        let body = format!(
            r#"{{"name": "{name}", "proof": "passport:123", "currencyPreference": "USD"}}"#
        );
        let (status, body) = http(&addr, "PUT", "/api/v1/account", &[json_type], &body);
        assert_eq!(status, 201, "{body}");
        json(&body)
    };
    let alice = create("Alice");
    let bob = create("Bob");
    assert_eq!(
        alice["profileStatus"], "verified",
        "auto-verify is on by default"
    );
    let alice_token = alice["token"].as_str().unwrap().to_string();
    let bob_token = bob["token"].as_str().unwrap().to_string();
    assert_ne!(alice["accountId"], bob["accountId"]);
    assert!(alice_token.starts_with(&format!("{}.", alice["accountId"].as_str().unwrap())));

    let get = |token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        http(&addr, "GET", "/api/v1/account", &headers, "")
    };
    let (status, body) = get(Some(&alice_token));
    assert_eq!(status, 200, "{body}");
    let profile = json(&body);
    assert_eq!(profile["accountId"], alice["accountId"]);
    assert_eq!(profile["name"], "Alice");
    assert_eq!(profile["currencyPreference"], "USD");
    assert_eq!(profile["profileStatus"], "verified");
    assert!(
        profile["createdAt"].as_i64().unwrap() > 1_600_000_000_000,
        "{body}"
    );
    let (status, body) = get(Some(&bob_token));
    assert_eq!((status, json(&body)["name"].clone()), (200, "Bob".into()));

    // No token, a malformed one, a wrong secret, another account's id with this secret, and
    // the fee account: 401 in the contract's shape, and nothing about who exists.
    let bob_id = bob["accountId"].as_str().unwrap();
    let alice_secret = alice_token.split_once('.').unwrap().1;
    for token in [
        None,
        Some("nonsense".to_string()),
        Some(format!(
            "{}.{}",
            alice["accountId"].as_str().unwrap(),
            "00".repeat(32)
        )),
        Some(format!("{bob_id}.{alice_secret}")),
        Some(format!("0.{alice_secret}")),
        Some("99999.abc".to_string()),
    ] {
        let (status, body) = get(token.as_deref());
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(json(&body)["error"]["code"], "unauthorized", "{body}");
    }

    // Bad bodies: each a 4xx with a precise message, and no account created.
    for (headers, body, status, needle) in [
        (vec![json_type], "{", 400, "invalid JSON"),
        (
            vec![json_type],
            r#"{"name": "X", "proof": "", "currencyPreference": "USD", "admin": true}"#,
            400,
            "unknown field",
        ),
        (
            vec![json_type],
            r#"{"name": "", "proof": "", "currencyPreference": "USD"}"#,
            400,
            "name must be",
        ),
        (
            vec![json_type],
            r#"{"name": 5, "proof": "", "currencyPreference": "USD"}"#,
            400,
            "invalid type",
        ),
        (
            vec![json_type],
            r#"{"name": "X", "proof": "", "currencyPreference": "dollars and cents"}"#,
            400,
            "currencyPreference",
        ),
        (
            vec![],
            r#"{"name": "X", "proof": "", "currencyPreference": "USD"}"#,
            415,
            "Content-Type",
        ),
    ] {
        let (got, answer) = http(&addr, "PUT", "/api/v1/account", &headers, body);
        assert_eq!(got, status, "{body}: {answer}");
        let message = json(&answer)["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let carol = create("Carol");
    let ids: Vec<u64> = [&alice, &bob, &carol]
        .iter()
        .map(|a| a["accountId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids[2], ids[1] + 1, "the refused bodies created no account");

    // The token survives a restart: only its hash is journaled.
    server.stop();
    let mut server = Server::start(dir.path(), &[]);
    let addr2 = http_addr(&mut server);
    let auth = format!("Bearer {alice_token}");
    let (status, body) = http(
        &addr2,
        "GET",
        "/api/v1/account",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["name"], "Alice");
    let journal = std::fs::read_dir(dir.path().join("journal")).unwrap();
    for entry in journal {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let secret = alice_secret.as_bytes();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the token's secret is in the journal"
        );
    }
}

#[test]
fn health_and_metrics_answer_over_http_and_shutdown_stops_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--load-rate", "5000"]);
    let addr = http_addr(&mut server);
    // Some commands are through before the first request.
    let handle = server.handle();
    eventually("100 commands committed", || {
        (handle.stats().committed_seq >= 100).then_some(())
    });

    let (status, body) = http_get(&addr, "/api/v1/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "up", "{body}");
    assert_eq!(health["recovered"], true, "{body}");
    assert_eq!(health["recoveredSeq"], 0, "{body}");
    assert!(health["committedSeq"].as_u64().unwrap() >= 100, "{body}");
    assert!(
        health["appliedSeq"].as_u64().unwrap() >= health["committedSeq"].as_u64().unwrap(),
        "{body}"
    );

    let (status, text) = http_get(&addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    let metric = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(metric("bourse_engine_up"), 1);
    assert!(metric("bourse_committed_seq") >= 100);
    assert!(metric("bourse_commands_consumed_total") >= 100);
    assert_eq!(metric("bourse_ring_size"), 65_536);
    // The health request above was counted (this one is counted after it is answered).
    assert!(
        text.contains("bourse_http_requests_total{class=\"2xx\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bourse_http_request_duration_seconds_bucket{le=\"+Inf\"} 1"),
        "{text}"
    );
    assert_eq!(metric("bourse_http_request_duration_seconds_count"), 1);
    // What waits in the ring fits in the ring.
    assert!(metric("bourse_ring_occupancy") < 65_536, "{text}");
    assert_eq!(metric("bourse_ws_connections"), 0);

    // Anything else has the contract's error shape.
    let (status, body) = http_get(&addr, "/api/v1/no-such-thing");
    assert_eq!(status, 404, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "not_found", "{body}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/no-such-thing"),
        "{body}"
    );

    let summary = server.stop();
    assert!(summary.contains("stopped cleanly at seq "), "{summary}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still listening on {addr} after the shutdown"
    );
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a scenario: one story's steps in order, each checking what the one before did"
)]
fn deposits_credit_the_wallet_to_the_cent_and_bad_ones_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The default catalogue lists USD (2 decimals).
    let mut server = Server::start(dir.path(), &[]);
    let addr = http_addr(&mut server);
    let json_type = ("Content-Type", "application/json");
    let (status, body) = http(
        &addr,
        "PUT",
        "/api/v1/account",
        &[json_type],
        r#"{"name": "Dana", "proof": "passport:9", "currencyPreference": "USD"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let token = json(&body)["token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    let headers = [json_type, ("Authorization", auth.as_str())];
    // The wallet's balances, as `[{currency, available, held}]`; its valuation is checked in
    // `bourse/tests/process/fx.rs`. Every balance here is USD, the preference: valued as
    // itself, and the total is their sum.
    let balances = || {
        let (status, body) = http(&addr, "GET", "/api/v1/funds", &headers[1..], "");
        assert_eq!(status, 200, "{body}");
        let wallet = json(&body);
        assert_eq!(wallet["currency"], "USD", "{body}");
        let mut total = rust_decimal::Decimal::ZERO;
        let rows: Vec<serde_json::Value> = wallet["balances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let (available, held) = (dec(&row["available"]), dec(&row["held"]));
                assert_eq!(dec(&row["value"]), available + held, "{body}");
                total += available + held;
                serde_json::json!({"currency": row["currency"], "available": row["available"], "held": row["held"]})
            })
            .collect();
        assert_eq!(dec(&wallet["amount"]), total, "{body}");
        serde_json::Value::Array(rows)
    };
    assert_eq!(balances(), serde_json::json!([]));

    let card = r#"{"amount": "1000.25", "currency": "USD", "type": "card", "requestId": "dep-1",
        "additionalInformation": {"cc": "4111 1111 1111 1111", "expiry": "12/39", "cvv": "123"}}"#;
    let (status, body) = http(&addr, "PUT", "/api/v1/funds", &headers, card);
    assert_eq!(status, 200, "{body}");
    let receipt = json(&body);
    assert_eq!(receipt["status"], "credited");
    assert_eq!(receipt["amount"], "1000.25");
    assert_eq!(receipt["details"]["cardLast4"], "1111");
    assert!(
        !body.contains("4111111111111111") && !body.contains("123\""),
        "{body}"
    );
    let upi = r#"{"amount": "0.75", "currency": "USD", "type": "upi", "requestId": "dep-2",
        "additionalInformation": {"vpa": "dana@bank"}}"#;
    let (status, body) = http(&addr, "PUT", "/api/v1/funds", &headers, upi);
    assert_eq!(status, 200, "{body}");
    let expected = serde_json::json!([{"currency": "USD", "available": "1001.00", "held": "0.00"}]);
    assert_eq!(balances(), expected);

    // The same request again changes nothing; the same id with another body is a conflict.
    let (status, body) = http(&addr, "PUT", "/api/v1/funds", &headers, card);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &addr,
        "PUT",
        "/api/v1/funds",
        &headers,
        &card.replace("1000.25", "5"),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(balances(), expected);

    // Bad deposits: a precise 4xx each, and the wallet unchanged.
    let deposit = |amount: &str, currency: &str, method: &str, details: &str| {
        format!(
            r#"{{"amount": {amount}, "currency": "{currency}", "type": "{method}", "requestId": "bad-{method}-{}", "additionalInformation": {details}}}"#,
            amount.len()
        )
    };
    // `cardNumber` is taken for the sketch's `cc`.
    let good_card = r#"{"cardNumber": "4111111111111111", "expiry": "12/2039", "cvv": "123"}"#;
    for (body, status, needle) in [
        (deposit("\"-5\"", "USD", "card", good_card), 400, "positive"),
        (deposit("\"0\"", "USD", "card", good_card), 400, "positive"),
        (
            deposit("\"1.001\"", "USD", "card", good_card),
            400,
            "too many decimals",
        ),
        (
            deposit("\"1e400\"", "USD", "card", good_card),
            400,
            "not a decimal",
        ),
        (
            deposit("\"99999999999999999999\"", "USD", "card", good_card),
            400,
            "too large",
        ),
        (deposit("10", "USD", "card", good_card), 400, "invalid type"),
        (
            deposit("\"10\"", "XYZ", "card", good_card),
            400,
            "unknown currency",
        ),
        (
            deposit("\"10\"", "USD", "cash", good_card),
            400,
            "not one of card, upi, bank",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cardNumber": "4111111111111112", "expiry": "12/39", "cvv": "123"}"#,
            ),
            400,
            "cc is not a valid card number",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "expiry": "12/39", "cvv": "12"}"#,
            ),
            400,
            "cvv must be 3 or 4 digits",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"expiry": "12/39", "cvv": "123"}"#,
            ),
            400,
            "needs additionalInformation.cc",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": 4111111111111111, "expiry": "12/39", "cvv": "123"}"#,
            ),
            400,
            "additionalInformation.cc must be a string",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "cardNumber": "5555555555554444", "expiry": "12/39", "cvv": "123"}"#,
            ),
            400,
            "both cc and cardNumber",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "cvv": "123"}"#,
            ),
            400,
            "needs additionalInformation.expiry",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "expiry": "1/39", "cvv": "123"}"#,
            ),
            400,
            "additionalInformation.expiry \"1/39\" is not MM/YY",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "expiry": "12-39", "cvv": "123"}"#,
            ),
            400,
            "is not MM/YY or MM/YYYY",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "expiry": "13/39", "cvv": "123"}"#,
            ),
            400,
            "13 is not a month",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "expiry": "00/39", "cvv": "123"}"#,
            ),
            400,
            "0 is not a month",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "expiry": "01/20", "cvv": "123"}"#,
            ),
            400,
            "additionalInformation.expiry \"01/20\" is in the past",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cc": "4111111111111111", "expiry": "01/2099", "cvv": "123"}"#,
            ),
            400,
            "more than 20 years ahead",
        ),
        (
            deposit("\"10\"", "USD", "upi", r#"{"vpa": "nobank"}"#),
            400,
            "name@bank",
        ),
        (deposit("\"10\"", "USD", "bank", "{}"), 400, "accountNumber"),
    ] {
        let (got, answer) = http(&addr, "PUT", "/api/v1/funds", &headers, &body);
        assert_eq!(got, status, "{body}: {answer}");
        let message = json(&answer)["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(needle), "{body}: {message}");
    }
    // Without a token nothing is read or credited.
    let (status, _) = http(&addr, "PUT", "/api/v1/funds", &[json_type], card);
    assert_eq!(status, 401);
    let (status, _) = http(&addr, "GET", "/api/v1/funds", &[], "");
    assert_eq!(status, 401);
    assert_eq!(balances(), expected);

    // Withdrawals come from the available balance, idempotently; more than it is refused.
    let withdraw = |amount: &str, id: &str| {
        let body = format!(
            r#"{{"amount": "{amount}", "currency": "USD", "requestId": "{id}", "destinationDetails": {{"iban": "DE00"}}}}"#
        );
        http(&addr, "POST", "/api/v1/funds", &headers, &body)
    };
    let (status, body) = withdraw("0.1", "wd-1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "withdrawn");
    // Amounts are answered at the currency's scale, as balances and the history show them.
    assert_eq!(json(&body)["amount"], "0.10");
    let (status, body) = withdraw("0.10", "wd-1");
    assert_eq!(
        status, 200,
        "a repeat is answered, not applied again: {body}"
    );
    let (status, body) = withdraw("1001.00", "wd-2");
    assert_eq!(status, 422, "{body}");
    assert_eq!(json(&body)["error"]["code"], "insufficient_funds", "{body}");
    let (status, body) = withdraw("0.001", "wd-3");
    assert_eq!(status, 400, "{body}");
    let expected = serde_json::json!([{"currency": "USD", "available": "1000.90", "held": "0.00"}]);
    assert_eq!(balances(), expected);
    let (status, body) = withdraw("1000.90", "wd-4");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        balances(),
        serde_json::json!([{"currency": "USD", "available": "0.00", "held": "0.00"}])
    );

    // The funds history names each method, with a card's last four digits and nothing more.
    let (status, body) = http(&addr, "GET", "/api/v1/funds/history", &headers[1..], "");
    assert_eq!(status, 200, "{body}");
    let rows: Vec<_> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["requestId"].as_str().unwrap().to_string(),
                f["amount"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
                f["details"].clone(),
            )
        })
        .collect();
    let row = |kind: &str, id: &str, amount: &str, method: &str, details: serde_json::Value| {
        (
            kind.to_string(),
            id.to_string(),
            amount.to_string(),
            method.to_string(),
            details,
        )
    };
    let none = serde_json::json!({});
    assert_eq!(
        rows,
        vec![
            row("withdrawal", "wd-4", "1000.90", "unspecified", none.clone()),
            row("withdrawal", "wd-1", "0.10", "unspecified", none.clone()),
            row("deposit", "dep-2", "0.75", "upi", none),
            row(
                "deposit",
                "dep-1",
                "1000.25",
                "card",
                serde_json::json!({"cardLast4": "1111"})
            ),
        ]
    );

    // The card's number and expiry never reach the disk: journal, history, snapshots, market
    // data, anything in the data directory.
    server.stop();
    let n_files = assert_not_on_disk(dir.path(), &[b"4111111111111111", b"12/39", b"12/2039"]);
    assert!(n_files >= 2);
}

/// Reads every file under `dir` and panics if one holds any of `secrets`; returns how many
/// files were read.
fn assert_not_on_disk(dir: &std::path::Path, secrets: &[&[u8]]) -> usize {
    let mut n_files = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(next) = dirs.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            n_files += 1;
            for secret in secrets {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == *secret),
                    "{:?} is in {}",
                    String::from_utf8_lossy(secret),
                    path.display()
                );
            }
        }
    }
    n_files
}

/// The platform's sketch (`../shared/SEED.md`) writes a deposit as `{amount, type,
/// additionalInformation: {cc, expiry, cvv}}`, with no currency and no request id.
#[test]
fn a_card_deposit_as_the_sketch_writes_it_is_credited_in_the_preferred_currency() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let addr = http_addr(&mut server);
    let json_type = ("Content-Type", "application/json");
    let (status, body) = http(
        &addr,
        "PUT",
        "/api/v1/account",
        &[json_type],
        r#"{"name": "Sketch", "proof": "passport:7", "currencyPreference": "USD"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let auth = format!("Bearer {}", json(&body)["token"].as_str().unwrap());
    let headers = [json_type, ("Authorization", auth.as_str())];
    let sketch = r#"{"amount": 250, "type": "card",
        "additionalInformation": {"cc": "4242 4242 4242 4242", "expiry": "07/2039", "cvv": "9876"}}"#;
    // The sketch gives no type to amount; a JSON number is refused (money is sent as text,
    // so that no client rounds it through a float), and says how to send it.
    let (status, body) = http(&addr, "PUT", "/api/v1/funds", &headers, sketch);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("amount: invalid type"), "{body}");
    let sketch = sketch.replace("250", "\"250\"");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, body) = http(&addr, "PUT", "/api/v1/funds", &headers, &sketch);
        assert_eq!(status, 200, "{body}");
        let receipt = json(&body);
        assert_eq!(receipt["currency"], "USD", "{body}");
        assert_eq!(receipt["amount"], "250.00", "{body}");
        assert_eq!(receipt["details"]["cardLast4"], "4242", "{body}");
        let id = receipt["requestId"].as_str().unwrap().to_string();
        assert!(id.starts_with("srv-") && id.len() == 36, "{id}");
        ids.push(id);
        assert!(
            !body.contains("07/2039") && !body.contains("9876"),
            "{body}"
        );
    }
    // Without a request id the server assigned two: the same body sent twice is two deposits.
    assert_ne!(ids[0], ids[1]);
    // The sketch's withdrawal, `{amount, destinationDetails}`, is taken from the preferred
    // currency the same way.
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/funds",
        &headers,
        r#"{"amount": "100.5", "destinationDetails": {"iban": "DE00"}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let receipt = json(&body);
    assert_eq!(
        (receipt["currency"].as_str(), receipt["amount"].as_str()),
        (Some("USD"), Some("100.50")),
        "{body}"
    );
    assert!(receipt["requestId"].as_str().unwrap().starts_with("srv-"));
    let (status, body) = http(&addr, "GET", "/api/v1/funds", &headers[1..], "");
    assert_eq!(status, 200, "{body}");
    // The sketch's `{amount, currency}`, beside the balances.
    assert_eq!(
        json(&body),
        serde_json::json!({"amount": "399.5", "currency": "USD", "unvalued": [],
            "balances": [{"currency": "USD", "available": "399.50", "held": "0.00", "value": "399.5"}]})
    );
    server.stop();
    assert_not_on_disk(dir.path(), &[b"4242424242424242", b"07/2039", b"9876"]);
}

#[test]
fn bookmarks_are_kept_per_account_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The default catalogue lists AAPL.
    let mut server = Server::start(dir.path(), &[]);
    let addr = http_addr(&mut server);
    let account = |name: &str| {
        let body = format!(r#"{{"name": "{name}", "proof": "p", "currencyPreference": "USD"}}"#);
        let (status, body) = http(
            &addr,
            "PUT",
            "/api/v1/account",
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(status, 201, "{body}");
        format!("Bearer {}", json(&body)["token"].as_str().unwrap())
    };
    let erin = account("Erin");
    let finn = account("Finn");
    let call = |addr: &str, method: &str, path: &str, auth: &str| {
        let (status, body) = http(addr, method, path, &[("Authorization", auth)], "");
        (status, json(&body))
    };
    let none = serde_json::json!({"symbols": []});
    let one = serde_json::json!({"symbols": ["AAPL"]});
    assert_eq!(
        call(&addr, "GET", "/api/v1/bookmarks", &erin),
        (200, none.clone())
    );
    assert_eq!(
        call(&addr, "PUT", "/api/v1/bookmarks/AAPL", &erin),
        (200, one.clone())
    );
    assert_eq!(
        call(&addr, "PUT", "/api/v1/bookmarks/AAPL", &erin),
        (200, one.clone()),
        "bookmarking twice is not an error"
    );
    assert_eq!(
        call(&addr, "GET", "/api/v1/bookmarks", &finn),
        (200, none.clone()),
        "per account"
    );
    let (status, error) = call(&addr, "PUT", "/api/v1/bookmarks/NOPE-USD", &erin);
    assert_eq!(
        (status, error["error"]["code"].clone()),
        (404, "unknown_symbol".into())
    );
    let (status, _) = http(&addr, "PUT", "/api/v1/bookmarks/AAPL", &[], "");
    assert_eq!(status, 401);

    server.stop();
    let mut server = Server::start(dir.path(), &[]);
    let addr = http_addr(&mut server);
    assert_eq!(call(&addr, "GET", "/api/v1/bookmarks", &erin), (200, one));
    assert_eq!(
        call(&addr, "DELETE", "/api/v1/bookmarks/AAPL", &erin),
        (200, none.clone())
    );
    assert_eq!(
        call(&addr, "DELETE", "/api/v1/bookmarks/AAPL", &erin),
        (200, none)
    );
}

/// The currency preference is changed by `PATCH /account`, is a listed currency or refused,
/// survives a restart, and is what a deposit without a currency is in.
#[test]
fn the_currency_preference_is_a_listed_currency_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded simulator lists EURUSD, GBPUSD, USDJPY and USDINR.
    let mut server = Server::start_with_market(dir.path(), &["--liquidity", "false"]);
    let addr = http_addr(&mut server);
    let json_type = ("Content-Type", "application/json");
    let (status, body) = http(
        &addr,
        "PUT",
        "/api/v1/account",
        &[json_type],
        r#"{"name": "Mia", "proof": "passport:3", "currencyPreference": "USD"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let auth = format!("Bearer {}", json(&body)["token"].as_str().unwrap());
    let headers = [json_type, ("Authorization", auth.as_str())];
    let patch = |body: &str| http(&addr, "PATCH", "/api/v1/account", &headers, body);
    let preference = || {
        let (status, body) = http(&addr, "GET", "/api/v1/account", &headers[1..], "");
        assert_eq!(status, 200, "{body}");
        json(&body)["currencyPreference"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (status, body) = patch(r#"{"currencyPreference": "EUR"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["currencyPreference"], "EUR");
    assert_eq!(preference(), "EUR");
    // Refused, and nothing changes: no rate into it, not a code, no field, another field,
    // no token.
    for (body, status, code) in [
        (r#"{"currencyPreference": "CHF"}"#, 422, "unlisted_currency"),
        (r#"{"currencyPreference": "eur"}"#, 422, "unlisted_currency"),
        (r#"{"currencyPreference": "0"}"#, 422, "unlisted_currency"),
        (r#"{"currencyPreference": "E R"}"#, 400, "invalid_request"),
        (r#"{"currencyPreference": 978}"#, 400, "invalid_request"),
        (r"{}", 400, "invalid_request"),
        (
            r#"{"currencyPreference": "JPY", "name": "x"}"#,
            400,
            "invalid_request",
        ),
    ] {
        let (got, answer) = patch(body);
        assert_eq!(
            (got, json(&answer)["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let (status, _) = http(
        &addr,
        "PATCH",
        "/api/v1/account",
        &[json_type],
        r#"{"currencyPreference": "JPY"}"#,
    );
    assert_eq!(status, 401);
    assert_eq!(preference(), "EUR");
    // The inverse pair lists a currency too (USDJPY), and the one Bourse quotes in is listed.
    for currency in ["JPY", "USD", "INR"] {
        let (status, body) = patch(&format!(r#"{{"currencyPreference": "{currency}"}}"#));
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(preference(), "INR");
    // A deposit without a currency is in the preference, which wallets do not hold: refused,
    // saying so.
    let (status, body) = http(
        &addr,
        "PUT",
        "/api/v1/funds",
        &headers,
        r#"{"amount": "5", "type": "upi", "additionalInformation": {"vpa": "mia@bank"}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("preferred currency INR"), "{body}");
    // Journaled: the same after a restart.
    server.stop();
    let mut server = Server::start_with_market(dir.path(), &["--liquidity", "false"]);
    let addr = http_addr(&mut server);
    let (status, body) = http(&addr, "GET", "/api/v1/account", &headers[1..], "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["currencyPreference"], "INR");
    server.stop();
}
