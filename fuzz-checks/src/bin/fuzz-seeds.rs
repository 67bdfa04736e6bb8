//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` (a file per input,
//! named by its content's CRC32C): commands of the seeded workload encoded, feed messages,
//! WebSocket messages and request bodies as clients send them, and a few patch lists for the
//! snapshot and journal targets. Run from the repository's root:
//! `cargo run -p bourse-fuzz-checks --bin fuzz-seeds`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a one-off tool: a failed write should stop it, with its message"
)]

use std::path::Path;

fn write(target: &str, inputs: &[Vec<u8>]) {
    let dir = Path::new("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    for input in inputs {
        let name = format!("seed-{:08x}", crc32c::crc32c(input));
        std::fs::write(dir.join(name), input).expect("write a seed");
    }
    println!("{target}: {} seeds", inputs.len());
}

fn text(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn main() {
    let mut generator = bourse_tests::workload::Generator::new(11);
    let mut engine = bourse_engine::Engine::new(bourse_engine::Limits::default());
    let mut commands = Vec::new();
    for i in 0..400 {
        let command = generator.next_command();
        let mut events = Vec::new();
        let _ = engine.apply(&command, &mut events);
        generator.observe(&events);
        // The set-up, then every 20th command: each command kind appears.
        if i < 40 || i % 20 == 0 {
            let mut bytes = Vec::new();
            bourse_engine::codec::encode(&command, &mut bytes);
            commands.push(bytes);
        }
    }
    write("codec_decode", &commands);
    write(
        "feed_parse",
        &text(&[
            r#"{"symbol":"AAPL","price":"189.37","size":"5","ts":1764000000000,"seq":1}"#,
            r#"[{"symbol":"AAPL","price":"189.37","size":"5","ts":1764000000000,"seq":1},{"symbol":"MSFT","price":"1","size":"0.5","ts":1764000000001,"seq":9}]"#,
            r#"{"type":"product","symbol":"FXP","name":"FX Probe","currency":"USD","tickSize":"0.01"}"#,
            r#" { "symbol" : "EURUSD" , "price" : "1.08123" , "size" : "1" , "ts" : 1 , "seq" : 2 } "#,
            r#"{"symbol":"A\u0042","price":"1","size":"1","ts":1,"seq":1}"#,
            r#"[]"#,
            r#"{"symbol":"AAPL","price":"-1","size":"5","ts":1,"seq":1}"#,
        ]),
    );
    write(
        "ws_message",
        &text(&[
            r#"{"op":"order","id":1,"side":"buy","symbol":"AAPL","quantity":"3","type":"market"}"#,
            r#"{"op":"order","id":"a","side":"sell","symbol":"AAPL","quantity":"1","type":"limit","price":"150.25","timeInForce":"GTC","clientOrderId":"c-1"}"#,
            r#"{"op":"subscribe","id":2,"channels":["ticks:AAPL:EUR","candles:AAPL:1m"]}"#,
            r#"{"op":"auth","token":"1.abc"}"#,
            r#"{"op":"cancel","id":3,"orderId":7}"#,
            r#"{"op":"ping"}"#,
            r#"{"op":"order","side":"buy","symbol":"AAPL","quantity":"3","type":"market","extra":1}"#,
        ]),
    );
    let body = |which: u8, json: &str| {
        let mut input = vec![which];
        input.extend_from_slice(json.as_bytes());
        input
    };
    write(
        "http_bodies",
        &[
            body(
                0,
                r#"{"name":"Ada","proof":"passport:1","currencyPreference":"USD"}"#,
            ),
            body(1, r#"{"currencyPreference":"EUR"}"#),
            body(
                2,
                r#"{"amount":"10.50","type":"card","additionalInformation":{"cc":"4111111111111111","expiry":"12/40","cvv":"123"}}"#,
            ),
            body(
                2,
                r#"{"amount":"1","type":"upi","additionalInformation":{"vpa":"ada@bank"},"currency":"USD","requestId":"r-1"}"#,
            ),
            body(3, r#"{"amount":"5","destinationDetails":{"iban":"DE89"}}"#),
            body(
                4,
                r#"{"symbol":"AAPL","quantity":"3","type":"limit","price":"150.25","timeInForce":"POST_ONLY"}"#,
            ),
            body(5, r#"{"status":"verified"}"#),
        ],
    );
    write(
        "snapshot_load",
        &[
            vec![0],
            vec![1, 10, 0, 1],
            vec![1, 200, 3, 0x80, 7, 1, 0x01],
            vec![0, 64, 0, 0xff],
        ],
    );
    write(
        "journal_recover",
        &[
            vec![0],
            vec![0, 40, 0, 1],
            vec![1, 100, 0, 0x10],
            vec![0x82, 200, 0, 1],
            vec![0x80, 30, 0, 4],
        ],
    );
}
