//! Order → acknowledgement latency over the WebSocket API, open loop, as the `ws` and
//! `cluster_ws` benchmarks measure it.
//!
//! Each [`Connection`] is one client (one account, tokio-tungstenite) on one server's
//! address; all of them send limit orders at a fixed total rate: order `k` of a connection is
//! due at `start + k / (rate / connections)`, and its latency runs from that due time to its
//! answer (`{"op": "order", "ok": true}`, sent once the order is durable), so a stall counts
//! in full (no coordinated omission). A client wakes at its next due time (tokio's timer, no
//! spinning) and sends every order due by then in one write. Sides alternate at one price, so
//! the book stays a few orders deep and most orders trade. The first `warmup` seconds of
//! orders are answered but not measured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Value;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(addr: &str) -> Ws {
    try_connect(addr).await.expect("websocket handshake")
}

/// A client with an 8 KiB read buffer, as the server has: tungstenite's default, 128 KiB,
/// is zero-filled before every read, which would bill this client (on the same CPUs as
/// the server) for work that is not the server's. Nagle's algorithm is off, as browsers
/// have it for WebSockets: with it on, a write waits for the acknowledgement of the one
/// before, which added about 5 ms to the cluster's median at 10,000 orders/s
/// (BENCHMARKS.md, "Three nodes over WebSocket").
pub async fn try_connect(addr: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    let url = format!("ws://{addr}/api/v1/ws");
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    Ok(ws)
}

pub async fn authenticate(ws: &mut Ws, token: &str) {
    ws.send(Message::text(
        json!({"op": "auth", "id": 0, "token": token}).to_string(),
    ))
    .await
    .expect("send auth");
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message
            && text.contains("\"auth\"")
        {
            assert!(text.contains("\"ok\":true"), "auth refused: {text}");
            return;
        }
    }
    panic!("no answer to auth");
}

fn order(id: u64, price: &str) -> Message {
    let side = if id.is_multiple_of(2) { "sell" } else { "buy" };
    Message::text(format!(
        r#"{{"op":"order","id":{id},"side":"{side}","symbol":"AAPL","quantity":"1","type":"limit","price":"{price}"}}"#
    ))
}

/// What the order benchmark reads of an answer: serde skips the rest (the order and its
/// fills) without building it, so the client spends little of the shared CPUs on parsing.
#[derive(serde::Deserialize)]
struct OrderAnswer {
    op: Option<String>,
    id: Option<u64>,
    ok: Option<bool>,
    error: Option<AnswerError>,
}

/// An answer's error.
#[derive(serde::Deserialize)]
pub struct AnswerError {
    pub code: String,
}

/// The id of an accepted order's answer, read from the start of the message (the gateway
/// writes `op`, `ok` and `id` first), without parsing the rest; `None` for anything else,
/// which is then parsed in full. This keeps the client's share of the two CPUs small.
pub fn quick_ok(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"op":"order","ok":true,"id":"#)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if !rest[digits..].starts_with(',') {
        return None;
    }
    rest[..digits].parse().ok()
}

/// The settings of an order benchmark's flags: `--bourse PATH` (the `bourse` binary),
/// `--rates R,...` (orders a second, one run each), `--connections N`, `--seconds S` measured
/// after `--warmup S`.
pub struct OrderFlags {
    pub bourse: PathBuf,
    pub rates: Vec<u64>,
    pub connections: u64,
    pub seconds: f64,
    pub warmup: f64,
}

impl OrderFlags {
    /// `target/release/bourse`, 16 connections, 1 s of warm-up and 5 s measured at `rates`.
    pub fn new(rates: Vec<u64>) -> OrderFlags {
        OrderFlags {
            bourse: PathBuf::from("target/release/bourse"),
            rates,
            connections: 16,
            seconds: 5.0,
            warmup: 1.0,
        }
    }

    /// A smoke run's: one `rate` over `connections` for a second, after 0.2 s.
    pub fn quick(&mut self, rate: u64, connections: u64) {
        self.rates = vec![rate];
        self.connections = connections;
        self.seconds = 1.0;
        self.warmup = 0.2;
    }

    /// Takes `flag` and its value if it is one of these settings; whether it was.
    pub fn take(&mut self, flag: &str, value: &Value) -> Result<bool, String> {
        match flag {
            "--bourse" => self.bourse = PathBuf::from(value.as_str()),
            "--rates" => self.rates = value.numbers()?,
            "--connections" => self.connections = value.number()?.max(1),
            "--seconds" => self.seconds = value.positive_seconds()?,
            "--warmup" => self.warmup = value.positive_seconds()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One client of an order run: the server it talks to and its account's token.
#[derive(Clone)]
pub struct Connection {
    pub addr: String,
    pub token: String,
}

/// The outcome of one rate.
pub struct RateResult {
    pub offered: u64,
    /// Orders sent, warm-up included.
    pub sent: u64,
    /// Measured orders answered `ok` (after the warm-up).
    pub acked: u64,
    /// Orders answered with anything but `ok`, warm-up included.
    pub errors: u64,
    /// Those answers by their error code.
    pub error_codes: BTreeMap<String, u64>,
    /// Connections closed by the server before all their answers came.
    pub dropped: u64,
    /// The measured seconds of the schedule.
    pub seconds: f64,
    /// Seconds from the first measured order's due time to the last measured answer.
    pub span: f64,
    pub latency: Histogram<u64>,
}

impl RateResult {
    /// Measured answers per second over the time they took to come (below the offered rate
    /// when the server falls behind, since the last answers then come late).
    pub fn achieved(&self) -> f64 {
        if self.span > 0.0 {
            self.acked as f64 / self.span
        } else {
            0.0
        }
    }

    /// Every order was sent, answered `ok`, and no connection was closed.
    pub fn all_ok(&self) -> bool {
        self.errors == 0 && self.dropped == 0
    }
}

/// What one connection measured.
struct ConnectionResult {
    histogram: Histogram<u64>,
    acked: u64,
    last_answer: Option<Instant>,
    error_codes: BTreeMap<String, u64>,
}

/// Offers `rate` orders a second over `connections` for `warmup` + `seconds` (see the module
/// docs), and waits for every answer.
#[allow(
    clippy::too_many_lines,
    reason = "a benchmark run in its order (connect, send and read, merge), its figures kept in local variables"
)]
pub async fn order_run(
    connections: &[Connection],
    rate: u64,
    warmup: f64,
    seconds: f64,
) -> RateResult {
    let per_conn = rate as f64 / connections.len() as f64;
    let interval = Duration::from_secs_f64(1.0 / per_conn);
    let total = warmup + seconds;
    let n_orders = (per_conn * total).ceil() as u64;
    let dropped = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut sockets = Vec::new();
    for connection in connections {
        let mut ws = connect(&connection.addr).await;
        authenticate(&mut ws, &connection.token).await;
        sockets.push(ws);
    }
    let start_at = tokio::time::Instant::now() + Duration::from_millis(300);
    let measured_from = Duration::from_secs_f64(warmup);
    for ws in sockets {
        let dropped = Arc::clone(&dropped);
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let start = start_at.into_std();
            let writer = tokio::spawn(async move {
                // Open loop: wake at the next order's due time, then send every order due by
                // now in one write (the timer wakes at millisecond granularity; latency is
                // still measured from each order's own due time).
                let mut k = 1;
                while k <= n_orders {
                    tokio::time::sleep_until(start_at + interval * k as u32).await;
                    let now = tokio::time::Instant::now();
                    while k <= n_orders && start_at + interval * k as u32 <= now {
                        if sink.feed(order(k, "100.00")).await.is_err() {
                            return sink;
                        }
                        k += 1;
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                }
                sink
            });
            let mut result = ConnectionResult {
                histogram: Histogram::new_with_bounds(1_000, 60_000_000_000, 3)
                    .expect("histogram bounds"),
                acked: 0,
                last_answer: None,
                error_codes: BTreeMap::new(),
            };
            let mut answered = 0u64;
            while answered < n_orders {
                let Some(Ok(message)) = stream.next().await else {
                    // The server closed the connection (a slow consumer: this client did
                    // not read its answers fast enough).
                    dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                let Message::Text(text) = message else {
                    continue;
                };
                let now = Instant::now();
                let answer = match quick_ok(text.as_str()) {
                    Some(k) => OrderAnswer {
                        op: Some("order".into()),
                        id: Some(k),
                        ok: Some(true),
                        error: None,
                    },
                    None => match serde_json::from_str::<OrderAnswer>(text.as_str()) {
                        Ok(answer) => answer,
                        Err(_) => continue,
                    },
                };
                if answer
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == "slow_consumer")
                {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                if answer.op.as_deref() != Some("order") {
                    continue;
                }
                answered += 1;
                if answer.ok != Some(true) {
                    let code = answer
                        .error
                        .map_or_else(|| "no code".to_owned(), |e| e.code);
                    *result.error_codes.entry(code).or_default() += 1;
                    continue;
                }
                let Some(k) = answer.id else {
                    continue;
                };
                let due = interval * k as u32;
                if due < measured_from {
                    continue;
                }
                let latency = now.saturating_duration_since(start + due);
                result
                    .histogram
                    .saturating_record(latency.as_nanos() as u64);
                result.acked += 1;
                result.last_answer = Some(now);
            }
            let _ = writer.await;
            result
        }));
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
    let (mut acked, mut last_answer, mut error_codes) = (0, None, BTreeMap::new());
    for task in tasks {
        let r = task.await.expect("a connection task");
        latency.add(r.histogram).expect("same bounds");
        acked += r.acked;
        last_answer = last_answer.max(r.last_answer);
        for (code, n) in r.error_codes {
            *error_codes.entry(code).or_default() += n;
        }
    }
    let first_due = start_at.into_std() + measured_from;
    RateResult {
        offered: rate,
        sent: n_orders * connections.len() as u64,
        acked,
        errors: error_codes.values().sum(),
        error_codes,
        dropped: dropped.load(Ordering::Relaxed),
        seconds,
        span: last_answer.map_or(0.0, |last| {
            last.saturating_duration_since(first_due).as_secs_f64()
        }),
        latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_ok_reads_an_accepted_answer_only() {
        assert_eq!(
            quick_ok(r#"{"op":"order","ok":true,"id":42,"order":{}}"#),
            Some(42)
        );
        assert_eq!(quick_ok(r#"{"op":"order","ok":false,"id":42}"#), None);
        assert_eq!(quick_ok(r#"{"op":"order","ok":true,"id":42}"#), None);
    }
}
