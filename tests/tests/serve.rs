//! `bourse serve` as a process: SIGKILL under load loses nothing acknowledged and half-applies
//! nothing; SIGTERM shuts down cleanly with a final snapshot; a bad setting is refused.
//!
//! **Which binary.** These tests run the real `bourse` binary of this workspace. Cargo only
//! builds a package's binaries for that package's own integration tests
//! (`CARGO_BIN_EXE_<name>`), and this is `bourse-tests`, so the first test that needs the
//! binary runs `cargo build -p bourse` with the cargo that built this
//! test (`env!("CARGO")`), the profile this test was built with and its target directory
//! (both read off the test executable's path, `<target-dir>/<profile-dir>/deps/`), then
//! uses `<target-dir>/<profile-dir>/bourse`. Cargo releases its build lock before it runs
//! tests, and the build is a no-op when `cargo test --workspace` has already built the
//! binary; either way the binary is current with the sources. `BOURSE_BIN=/path/to/bourse`
//! overrides this (for a cross-compiled build, whose test executables live under
//! `<target-dir>/<triple>/`).
//!
//! **The kill test** starts `bourse serve --load-rate 20000 --ack-log -` (durable journal,
//! 1 MiB segments so they roll, a snapshot requested every 500 commands, so at nearly every
//! 100 ms check), reads the acknowledgement lines (`<seq> <crc32c of the journal payload>`),
//! SIGKILLs the server after a random number of them, keeps every line that was already in
//! the pipe (those were acknowledged too), and restarts it on the same directory, several
//! rounds. Each restart must report its recovery (`recovered to seq N`, N at least every seq
//! acknowledged before). At the end the test opens the store itself and checks that every
//! acknowledged command is in the journal, byte for byte (its CRC32C), and that the
//! recovered state equals a single-threaded replay of the whole journal from seq 1: the
//! journal is the state, so nothing unacknowledged can be half-applied.
//!
//! `BOURSE_SERVE_ROUNDS` (default 6) and `BOURSE_SERVE_SEED` make a longer soak.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command as Process;

use bourse_engine::codec::decode;
use bourse_engine::{Engine, Limits};
use bourse_store::{DiscardEvents, Silent, Store, StoreConfig};
use bourse_tests::workload::SplitMix64;

mod common;
use common::*;

const ROUNDS: u64 = 6;

/// `recovered to seq N in ...` → N.
fn recovered_seq(line: &str) -> u64 {
    line.split("recovered to seq ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sequence number in {line:?}"))
}

/// Adds an acknowledgement; a sequence number is never acknowledged twice.
fn record(acked: &mut BTreeMap<u64, u32>, (seq, crc): (u64, u32)) {
    if let Some(before) = acked.insert(seq, crc) {
        panic!("seq {seq} acknowledged twice (crc {before} then {crc})");
    }
}

/// Opens the store and checks it against the acknowledgements: each one is in the journal
/// with the same payload CRC, and the recovered state is a replay of the whole journal.
/// Returns the recovery report's (last seq, records replayed, snapshot seq).
fn check_store(dir: &Path, acked: &BTreeMap<u64, u32>) -> (u64, u64, Option<u64>) {
    let mut recovered = Store::open(&StoreConfig::new(dir), &mut Silent).expect("recovery");
    let last_seq = recovered.report.last_seq;
    if let Some((&highest, _)) = acked.last_key_value() {
        assert!(
            last_seq >= highest,
            "recovered to seq {last_seq}, but seq {highest} was acknowledged"
        );
    }
    let journal = recovered.store.journal();
    assert_eq!(journal.first_seq(), 1, "retention keep: the whole journal");
    let mut replayed = Engine::new(Limits::default());
    let mut matched = 0;
    let mut next = 1;
    for record in journal.read_from(1).expect("read the journal") {
        let record = record.expect("a good record");
        assert_eq!(record.seq, next);
        next += 1;
        if let Some(&crc) = acked.get(&record.seq) {
            assert_eq!(
                crc32c::crc32c(&record.payload),
                crc,
                "seq {}: the journal holds another command than the one acknowledged",
                record.seq
            );
            matched += 1;
        }
        let command = decode(&record.payload).expect("a decodable command");
        assert_eq!(command.seq, record.seq);
        let _ = replayed.apply(&command, &mut DiscardEvents);
    }
    assert_eq!(next - 1, last_seq);
    assert_eq!(
        matched,
        acked.len(),
        "acknowledged commands missing from the journal"
    );
    assert_eq!(
        replayed.state_hash(),
        recovered.engine.state_hash(),
        "the recovered state is not the journal's"
    );
    let snapshot = recovered.report.snapshot.as_ref().map(|(seq, _)| *seq);
    (last_seq, recovered.report.replayed, snapshot)
}

fn env_u64(var: &str) -> Option<u64> {
    std::env::var(var)
        .ok()
        .map(|v| v.parse().expect("a number"))
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged() {
    let rounds = env_u64("BOURSE_SERVE_ROUNDS").unwrap_or(ROUNDS);
    let mut rng = SplitMix64(env_u64("BOURSE_SERVE_SEED").unwrap_or(0x5E4E_0005));
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeMap::new();
    let mut from_snapshot = 0;
    for round in 0..rounds {
        let mut server = Server::start(
            dir.path(),
            &[
                "--load-rate",
                "20000",
                "--ack-log",
                "-",
                "--durability",
                "durable",
                "--segment-size-mib",
                "1",
                "--snapshot-every",
                "500",
            ],
        );
        let report = server.wait_for_log("recovered to seq");
        let highest = acked.last_key_value().map_or(0, |(&seq, _)| seq);
        assert!(
            recovered_seq(&report) >= highest,
            "round {round}: {report:?}, but seq {highest} was acknowledged"
        );
        eprintln!("round {round}: {report}");
        from_snapshot += report.contains("snapshot at seq") as u32;
        // Early rounds die in the setup sometimes; later ones mostly in the steady load.
        let kill_after = match round {
            0 => 1 + rng.below(200),
            _ => 500 + rng.below(10_000),
        };
        for _ in 0..kill_after {
            match server.next_ack() {
                Some(ack) => record(&mut acked, ack),
                None => panic!("bourse serve ended early:\n{}", server.rest_of_log()),
            }
        }
        server.child.kill().unwrap();
        // What was in the pipe when it died was acknowledged, too.
        while let Some(ack) = server.next_ack() {
            record(&mut acked, ack);
        }
        let status = server.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: {status}"
        );
    }
    // One more start: recovery succeeds and reports at least everything acknowledged.
    let mut server = Server::start(dir.path(), &[]);
    let report = server.wait_for_log("recovered to seq");
    let highest = *acked.last_key_value().unwrap().0;
    assert!(recovered_seq(&report) >= highest, "{report}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let (last_seq, _, _) = check_store(dir.path(), &acked);
    assert!(
        from_snapshot >= 1,
        "no restart recovered from a snapshot: snapshots are not taken"
    );
    eprintln!(
        "{rounds} SIGKILLs: {} acknowledged commands all present, journal ends at seq {last_seq}, {from_snapshot} restarts from a snapshot",
        acked.len()
    );
}

#[test]
fn sigterm_drains_commits_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            "--load-rate",
            "20000",
            "--ack-log",
            "-",
            "--snapshot-every",
            "0",
        ],
    );
    server.wait_for_log("recovered to seq 0 ");
    let mut acked = BTreeMap::new();
    for _ in 0..2_000 {
        let ack = server.next_ack().expect("an acknowledgement");
        record(&mut acked, ack);
    }
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    while let Some(ack) = server.next_ack() {
        record(&mut acked, ack);
    }
    let status = server.child.wait().unwrap();
    let log = server.rest_of_log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("SIGTERM received: shutting down"), "{log}");
    let summary = log
        .lines()
        .find(|line| line.contains("stopped cleanly at seq "))
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    let last_seq: u64 = summary
        .split("stopped cleanly at seq ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(summary.contains("state hash "), "{summary}");
    assert!(
        summary.contains(&format!("snapshot at seq {last_seq}")),
        "{summary}"
    );
    assert!(
        dir.path()
            .join("snapshots")
            .join(bourse_snapshots::snapshot_file_name(last_seq))
            .exists(),
        "no final snapshot"
    );
    // Everything the load generator sent was answered before the end: the drain is complete.
    assert_eq!(*acked.last_key_value().unwrap().0, last_seq);
    let (recovered_to, replayed, snapshot) = check_store(dir.path(), &acked);
    assert_eq!(recovered_to, last_seq);
    assert_eq!(snapshot, Some(last_seq));
    assert_eq!(replayed, 0, "a clean shutdown leaves nothing to replay");
}

#[test]
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
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    assert!(server.child.wait().unwrap().success());
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
    let mut server = Server::start(dir.path(), &["--load-rate", "5000", "--ack-log", "-"]);
    let addr = http_addr(&mut server);
    // Some commands are through before the first request.
    for _ in 0..100 {
        server.next_ack().expect("an acknowledgement");
    }

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

    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    while server.next_ack().is_some() {}
    let status = server.child.wait().unwrap();
    let log = server.rest_of_log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still listening on {addr} after the process ended"
    );
}

#[test]
fn a_taken_http_port_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Process::new(bourse_bin())
        .args(["serve", "--http-addr", &addr, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn a_bad_setting_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Process::new(bourse_bin())
        .args(["serve", "--ring-size", "1000", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--ring-size") && stderr.contains("power of two"),
        "{stderr}"
    );

    let output = Process::new(bourse_bin())
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env("BOURSE_DURABILITY", "fast")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("BOURSE_DURABILITY") && stderr.contains("\"fast\""),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "nothing is created before the settings are good"
    );
}

#[test]
fn deposits_credit_the_wallet_to_the_cent_and_bad_ones_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Until the catalogue arrives (issue 7), the load generator's set-up adds the USD asset
    // (2 decimals); a slow rate keeps it out of the way.
    let mut server = Server::start(dir.path(), &["--load-rate", "10", "--ack-log", "-"]);
    let addr = http_addr(&mut server);
    server
        .next_ack()
        .expect("the load generator's set-up is done");
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
    let balances = || {
        let (status, body) = http(&addr, "GET", "/api/v1/funds", &headers[1..], "");
        assert_eq!(status, 200, "{body}");
        json(&body)
    };
    assert_eq!(balances(), serde_json::json!([]));

    let card = r#"{"amount": "1000.25", "currency": "USD", "type": "card", "requestId": "dep-1",
        "additionalInformation": {"cardNumber": "4111 1111 1111 1111", "cvv": "123"}}"#;
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
    let good_card = r#"{"cardNumber": "4111111111111111", "cvv": "123"}"#;
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
                r#"{"cardNumber": "4111111111111112", "cvv": "123"}"#,
            ),
            400,
            "not a valid card number",
        ),
        (
            deposit(
                "\"10\"",
                "USD",
                "card",
                r#"{"cardNumber": "4111111111111111", "cvv": "12"}"#,
            ),
            400,
            "cvv",
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

    // The card number and CVV never reach the journal or the history's log.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    while server.next_ack().is_some() {}
    assert!(server.child.wait().unwrap().success());
    let mut n_files = 0;
    for sub in ["journal", "history"] {
        for entry in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            n_files += 1;
            assert!(
                !bytes.windows(16).any(|w| w == b"4111111111111111"),
                "a card number is in {sub}"
            );
        }
    }
    assert!(n_files >= 2);
}

#[test]
fn bookmarks_are_kept_per_account_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The load generator's set-up lists the product LOAD-USD (the catalogue is issue 7).
    let mut server = Server::start(dir.path(), &["--load-rate", "10", "--ack-log", "-"]);
    let addr = http_addr(&mut server);
    server
        .next_ack()
        .expect("the load generator's set-up is done");
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
    let one = serde_json::json!({"symbols": ["LOAD-USD"]});
    assert_eq!(
        call(&addr, "GET", "/api/v1/bookmarks", &erin),
        (200, none.clone())
    );
    assert_eq!(
        call(&addr, "PUT", "/api/v1/bookmarks/LOAD-USD", &erin),
        (200, one.clone())
    );
    assert_eq!(
        call(&addr, "PUT", "/api/v1/bookmarks/LOAD-USD", &erin),
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
    let (status, _) = http(&addr, "PUT", "/api/v1/bookmarks/LOAD-USD", &[], "");
    assert_eq!(status, 401);

    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    while server.next_ack().is_some() {}
    assert!(server.child.wait().unwrap().success());
    let mut server = Server::start(dir.path(), &[]);
    let addr = http_addr(&mut server);
    assert_eq!(call(&addr, "GET", "/api/v1/bookmarks", &erin), (200, one));
    assert_eq!(
        call(&addr, "DELETE", "/api/v1/bookmarks/LOAD-USD", &erin),
        (200, none.clone())
    );
    assert_eq!(
        call(&addr, "DELETE", "/api/v1/bookmarks/LOAD-USD", &erin),
        (200, none)
    );
}
