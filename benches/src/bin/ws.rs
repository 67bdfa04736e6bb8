//! The WebSocket API under load, against a real `bourse serve` (durable journal, the
//! default settings but `rate-limit 0` and `ws-queue 1000000`, so that a client of this
//! benchmark that falls behind is measured as late rather than dropped), started by this
//! program on 127.0.0.1.
//!
//! 1. **Order → acknowledgement.** `--connections` clients (one account each, tokio-tungstenite)
//!    send limit orders open loop at a fixed total rate ([`bourse_benches::ws_orders`]:
//!    latency from each order's due time to its answer, no coordinated omission). Per rate:
//!    `--warmup` s, then `--seconds` s measured, on a fresh server.
//! 2. **Fan-out.** `N` clients subscribe to `ticks:AAPL`; a driver connection makes
//!    `--fanout-rate` trades per second; every client counts what it receives and the delay
//!    from the server's publication (`publishedUs` in each tick) to its receipt. Reported:
//!    messages delivered per second over all clients, delay percentiles, and clients that
//!    saw a gap or were dropped as slow consumers.
//!
//! Client and server share this machine's cores: the figures are for both together.
//!
//! `cargo build --release -p bourse && cargo run --release -p bourse-benches --bin ws`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bourse_benches::args::{Flags, or_exit};
use bourse_benches::report::{fmt_int, fmt_ns};
use bourse_benches::serve::{BENCH_SETTINGS, Serve, account, own_cpu_seconds};
use bourse_benches::ws_orders::{
    AnswerError, Connection, OrderFlags, authenticate, connect, order_run, try_connect,
};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str = "usage: ws [--bourse PATH (target/release/bourse)] \
[--rates 10000,50000,100000] [--connections 16] [--seconds 5] [--warmup 1] \
[--fanout 1000,10000] [--fanout-rate 100] [--fanout-seconds 5] [--feed-fanout 1000] \
[--feed-rate 8000] [--quick] [--out PATH.json]";

struct Config {
    orders: OrderFlags,
    fanout: Vec<u64>,
    fanout_rate: u64,
    fanout_seconds: f64,
    feed_fanout: Vec<u64>,
    feed_rate: u64,
    out: Option<PathBuf>,
}

fn parse() -> Result<Config, String> {
    let mut config = Config {
        orders: OrderFlags::new(vec![10_000, 50_000, 100_000]),
        fanout: vec![1_000, 10_000],
        fanout_rate: 100,
        fanout_seconds: 5.0,
        feed_fanout: vec![1_000],
        feed_rate: 8_000,
        out: None,
    };
    let mut flags = Flags::from_env(USAGE);
    // An empty list skips that part of the benchmark.
    while let Some(flag) = flags.next_flag()? {
        if flag == "--quick" {
            config.orders.quick(2_000, 4);
            config.fanout = vec![100];
            config.fanout_rate = 50;
            config.fanout_seconds = 1.0;
            config.feed_fanout = vec![100];
            config.feed_rate = 800;
            continue;
        }
        let value = flags.value(&flag)?;
        if config.orders.take(&flag, &value)? {
            continue;
        }
        match flag.as_str() {
            "--fanout" => config.fanout = value.numbers()?,
            "--fanout-rate" => config.fanout_rate = value.number()?.max(1),
            "--fanout-seconds" => config.fanout_seconds = value.positive_seconds()?,
            "--feed-fanout" => config.feed_fanout = value.numbers()?,
            "--feed-rate" => config.feed_rate = value.number()?.max(1),
            "--out" => config.out = Some(value.into_path()),
            _ => return Err(flags.unknown(&flag)),
        }
    }
    Ok(config)
}

/// Raises the open-file limit to its hard maximum (10,000 sockets on each side).
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// The server's market data for a run: only the benchmark's own trades, or also the
/// embedded simulator's ticks at this many per second over the eight default stocks.
fn market_args(sim_rate: Option<u64>) -> Vec<String> {
    let feed: &[&str] = match sim_rate {
        None => &["--feed", "off"],
        Some(_) => &["--feed", "sim"],
    };
    let mut args: Vec<String> = feed.iter().map(|s| s.to_string()).collect();
    if let Some(rate) = sim_rate {
        args.extend(["--sim-rate".to_string(), rate.to_string()]);
    }
    // No liquidity provider: its quotes would trade with the benchmark's orders.
    args.extend(["--liquidity".to_string(), "false".to_string()]);
    args
}

/// A fresh `bourse serve` (durable journal, its defaults) with the benchmark settings and
/// `market`, on any free port.
fn start_server(bourse: &Path, market: &[String]) -> Result<Serve, String> {
    let mut args: Vec<String> = ["--http-addr", "127.0.0.1:0"]
        .into_iter()
        .chain(BENCH_SETTINGS)
        .map(str::to_owned)
        .collect();
    args.extend_from_slice(market);
    Serve::start_in_temp(bourse, &args)
}

/// What the fan-out benchmark reads of a channel message.
#[derive(serde::Deserialize)]
struct ChannelMessage {
    #[serde(rename = "type")]
    kind: Option<String>,
    seq: Option<u64>,
    data: Option<TickData>,
    error: Option<AnswerError>,
}

/// A tick update read by searching for its few fields instead of parsing it, so 1,000
/// clients on the server's two CPUs cost less; `None` (then parsed in full) unless it is an
/// update with a flat `data` object holding `publishedUs`, and a `seq` outside `data`.
fn quick_update(text: &str) -> Option<ChannelMessage> {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    static UPDATE: LazyLock<Finder> = LazyLock::new(|| Finder::new(r#""type":"update""#));
    static DATA: LazyLock<Finder> = LazyLock::new(|| Finder::new(r#""data":{"#));
    static SEQ: LazyLock<Finder> = LazyLock::new(|| Finder::new(r#""seq":"#));
    static PUBLISHED: LazyLock<Finder> = LazyLock::new(|| Finder::new(r#""publishedUs":"#));
    fn number_after(text: &[u8], key: &Finder) -> Option<u64> {
        let at = key.find(text)? + key.needle().len();
        let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&text[at..at + digits])
            .ok()?
            .parse()
            .ok()
    }
    let text = text.as_bytes();
    UPDATE.find(text)?;
    let data_at = DATA.find(text)?;
    let data_end = data_at + memchr::memchr(b'}', &text[data_at..])?;
    let data = &text[data_at..data_end];
    if memchr::memchr(b'{', &data[8..]).is_some() {
        return None;
    }
    let outside = [&text[..data_at], &text[data_end..]];
    let seq = outside.iter().find_map(|part| number_after(part, &SEQ))?;
    let published_us = number_after(data, &PUBLISHED)?;
    Some(ChannelMessage {
        kind: Some("update".into()),
        seq: Some(seq),
        data: Some(TickData {
            published_us: Some(published_us),
        }),
        error: None,
    })
}

#[derive(serde::Deserialize)]
struct TickData {
    #[serde(rename = "publishedUs")]
    published_us: Option<u64>,
}

struct FanoutResult {
    clients: u64,
    connected: u64,
    trades: u64,
    delivered: u64,
    seconds: f64,
    gaps: u64,
    dropped: u64,
    delay: Histogram<u64>,
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What makes the ticks of a fan-out run.
enum Ticks<'a> {
    /// Two driver accounts trade one share with each other `rate` times a second: one tick a
    /// trade, published alone.
    Trades { drivers: &'a [String], rate: u64 },
    /// The server's embedded exchange simulator (as a Kafka feed would): every 10 ms a batch
    /// of ticks, an eighth of them AAPL's.
    Feed,
}

async fn fanout_run(addr: &str, ticks: Ticks<'_>, clients: u64, seconds: f64) -> FanoutResult {
    // A watch, not a Notify: a task busy with a message when the stop comes still sees it.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut connected = 0;
    // Connect in waves so the listen backlog is not overrun.
    for wave in (0..clients).collect::<Vec<_>>().chunks(100) {
        let mut joins = Vec::new();
        for _ in wave {
            let addr = addr.to_string();
            joins.push(tokio::spawn(async move {
                let mut ws = try_connect(&addr).await.ok()?;
                ws.send(Message::text(
                    json!({"op": "subscribe", "channels": ["ticks:AAPL"]}).to_string(),
                ))
                .await
                .ok()?;
                Some(ws)
            }));
        }
        for join in joins {
            let Ok(Some(ws)) = join.await else { continue };
            connected += 1;
            let mut stop = stop.clone();
            let delivered = Arc::clone(&delivered);
            tasks.push(tokio::spawn(async move {
                let mut ws = ws;
                let mut delay = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let (mut last_seq, mut gaps, mut dropped) = (None::<u64>, 0u64, 0u64);
                loop {
                    let message = tokio::select! {
                        _ = stop.changed() => break,
                        message = ws.next() => message,
                    };
                    let Some(Ok(Message::Text(text))) = message else {
                        dropped = 1;
                        break;
                    };
                    let received = unix_micros();
                    let parsed = quick_update(text.as_str())
                        .map(Ok)
                        .unwrap_or_else(|| serde_json::from_str::<ChannelMessage>(text.as_str()));
                    let Ok(value) = parsed else {
                        continue;
                    };
                    if value.error.is_some_and(|e| e.code == "slow_consumer") {
                        dropped = 1;
                        break;
                    }
                    let Some(seq) = value.seq else {
                        continue;
                    };
                    if let Some(last) = last_seq
                        && seq != last + 1
                    {
                        gaps += 1;
                    }
                    last_seq = Some(seq);
                    if value.kind.as_deref() == Some("update") {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        if let Some(published) = value.data.and_then(|d| d.published_us) {
                            delay.saturating_record(received.saturating_sub(published).max(1));
                        }
                    }
                }
                (delay, gaps, dropped)
            }));
        }
    }
    // Let the snapshots arrive, then trade.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = delivered.load(Ordering::Relaxed);
    let started = Instant::now();
    // The number of trades made, and the seconds the delivered messages are counted over.
    // Counted inside the window only: what arrives later is a backlog, not throughput.
    let (trades, window, delivered_n) = match ticks {
        Ticks::Trades { drivers, rate } => {
            let trades = drive_trades(addr, drivers, rate, seconds).await;
            let window = started.elapsed().as_secs_f64();
            let delivered_n = delivered.load(Ordering::Relaxed) - before;
            // Let the last ticks arrive, for their delays.
            tokio::time::sleep(Duration::from_millis(500)).await;
            (trades, window, delivered_n)
        }
        Ticks::Feed => {
            // The measurement window: the simulator publishes on its own clock.
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            let window = started.elapsed().as_secs_f64();
            (0, window, delivered.load(Ordering::Relaxed) - before)
        }
    };
    let _ = stop_tx.send(true);
    let (delay, gaps, dropped) = collect(tasks).await;
    FanoutResult {
        clients,
        connected,
        trades,
        delivered: delivered_n,
        seconds: window,
        gaps,
        dropped,
        delay,
    }
}

/// Two driver accounts trade one share with each other `rate` times a second for `seconds`;
/// returns once the last ticks have had time to arrive, with the number of trades made.
async fn drive_trades(addr: &str, drivers: &[String], rate: u64, seconds: f64) -> u64 {
    let mut a = connect(addr).await;
    authenticate(&mut a, &drivers[0]).await;
    let mut b = connect(addr).await;
    authenticate(&mut b, &drivers[1]).await;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let n = (rate as f64 * seconds) as u64;
    let start_at = tokio::time::Instant::now();
    let (mut a_sink, mut a_stream) = a.split();
    let (mut b_sink, mut b_stream) = b.split();
    let drain_a = tokio::spawn(async move { while let Some(Ok(_)) = a_stream.next().await {} });
    let drain_b = tokio::spawn(async move { while let Some(Ok(_)) = b_stream.next().await {} });
    for k in 0..n {
        tokio::time::sleep_until(start_at + interval * k as u32).await;
        // One sells, the other buys the same share: one trade, one tick.
        let sell = json!({"op": "order", "side": "sell", "symbol": "AAPL", "quantity": "1",
                          "type": "limit", "price": "100.00"});
        let buy = json!({"op": "order", "side": "buy", "symbol": "AAPL", "quantity": "1",
                         "type": "limit", "price": "100.00"});
        let _ = a_sink.send(Message::text(sell.to_string())).await;
        let _ = b_sink.send(Message::text(buy.to_string())).await;
    }
    drain_a.abort();
    drain_b.abort();
    n
}

/// The clients' delay histograms merged, and their gaps and drops summed.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, u64, u64)>>,
) -> (Histogram<u64>, u64, u64) {
    let mut delay = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut gaps, mut dropped) = (0, 0);
    for task in tasks {
        if let Ok((h, g, d)) = task.await {
            delay.add(h).expect("same bounds");
            gaps += g;
            dropped += d;
        }
    }
    (delay, gaps, dropped)
}

#[allow(
    clippy::too_many_lines,
    reason = "a benchmark run in its order (set up, measure, report), its figures kept in local variables"
)]
fn main() {
    let config = or_exit(parse());
    let fds = raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "WebSocket benchmark: bourse serve (durable journal) and this client on one machine, \
         {} CPUs, open-file limit {fds}.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut json_rates = Vec::new();
    println!(
        "| offered orders/s | connections | acked /s | errors | dropped | p50 | p90 | p99 | p99.9 | max | server CPU µs/order | client CPU µs/order |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &rate in &config.orders.rates {
        // A fresh server per rate: each run starts from the same state.
        let server = or_exit(start_server(&config.orders.bourse, &market_args(None)));
        let connections: Vec<Connection> = (0..config.orders.connections)
            .map(|i| Connection {
                addr: server.addr.clone(),
                token: account(&server.addr, &format!("trader-{i}")),
            })
            .collect();
        let (server_cpu, client_cpu) = (server.cpu_seconds(), own_cpu_seconds());
        let result = runtime.block_on(order_run(
            &connections,
            rate,
            config.orders.warmup,
            config.orders.seconds,
        ));
        // CPU per order over the whole run, warm-up included.
        let orders = rate as f64 * (config.orders.warmup + config.orders.seconds);
        let server_us = (server.cpu_seconds() - server_cpu) * 1e6 / orders;
        let client_us = (own_cpu_seconds() - client_cpu) * 1e6 / orders;
        let h = &result.latency;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {server_us:.1} | {client_us:.1} |",
            fmt_int(result.offered),
            config.orders.connections,
            fmt_int((result.acked as f64 / result.seconds) as u64),
            result.errors,
            result.dropped,
            fmt_ns(h.value_at_quantile(0.5)),
            fmt_ns(h.value_at_quantile(0.9)),
            fmt_ns(h.value_at_quantile(0.99)),
            fmt_ns(h.value_at_quantile(0.999)),
            fmt_ns(h.max()),
        );
        json_rates.push(json!({
            "offered": result.offered, "connections": config.orders.connections,
            "acked_per_s": result.acked as f64 / result.seconds, "errors": result.errors,
            "dropped": result.dropped,
            "p50_ns": h.value_at_quantile(0.5), "p90_ns": h.value_at_quantile(0.9),
            "p99_ns": h.value_at_quantile(0.99), "p999_ns": h.value_at_quantile(0.999),
            "max_ns": h.max(),
            "server_cpu_us_per_order": server_us, "client_cpu_us_per_order": client_us,
        }));
    }
    println!();
    println!(
        "| ticks from | clients | connected | delivered msgs/s | delay p50 | p99 | p99.9 | max | gaps | dropped |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json_fanout = Vec::new();
    let runs = config.fanout.iter().map(|&n| (n, None)).chain(
        config
            .feed_fanout
            .iter()
            .map(|&n| (n, Some(config.feed_rate))),
    );
    for (clients, sim_rate) in runs {
        let server = or_exit(start_server(&config.orders.bourse, &market_args(sim_rate)));
        let drivers = vec![
            account(&server.addr, "driver-a"),
            account(&server.addr, "driver-b"),
        ];
        let (ticks, source) = match sim_rate {
            None => (
                Ticks::Trades {
                    drivers: &drivers,
                    rate: config.fanout_rate,
                },
                format!("{} trades/s", fmt_int(config.fanout_rate)),
            ),
            Some(rate) => (
                Ticks::Feed,
                format!("feed, {} ticks/s of AAPL", fmt_int(rate / 8)),
            ),
        };
        let r = runtime.block_on(fanout_run(
            &server.addr,
            ticks,
            clients,
            config.fanout_seconds,
        ));
        let us = |v: u64| fmt_ns(v * 1_000);
        println!(
            "| {source} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_int(r.clients),
            fmt_int(r.connected),
            fmt_int((r.delivered as f64 / r.seconds) as u64),
            us(r.delay.value_at_quantile(0.5)),
            us(r.delay.value_at_quantile(0.99)),
            us(r.delay.value_at_quantile(0.999)),
            us(r.delay.max()),
            r.gaps,
            r.dropped,
        );
        json_fanout.push(json!({
            "source": source, "sim_rate": sim_rate,
            "clients": r.clients, "connected": r.connected,
            "trades_per_s": r.trades as f64 / config.fanout_seconds,
            "delivered_per_s": r.delivered as f64 / r.seconds,
            "delay_p50_us": r.delay.value_at_quantile(0.5),
            "delay_p99_us": r.delay.value_at_quantile(0.99),
            "delay_p999_us": r.delay.value_at_quantile(0.999),
            "delay_max_us": r.delay.max(), "gaps": r.gaps, "dropped": r.dropped,
        }));
    }
    if let Some(out) = &config.out {
        let doc = json!({"orders": json_rates, "fanout": json_fanout});
        std::fs::write(out, serde_json::to_string_pretty(&doc).unwrap())
            .unwrap_or_else(|e| eprintln!("cannot write {}: {e}", out.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_reads_agree_with_serde() {
        let update = r#"{"channel":"ticks:AAPL","data":{"price":"1.5","publishedUs":1234,"seq":5,"size":"2","source":"feed","symbol":"AAPL","timestamp":9},"seq":7,"type":"update"}"#;
        let quick = quick_update(update).expect("an update");
        let full: ChannelMessage = serde_json::from_str(update).unwrap();
        assert_eq!((quick.seq, full.seq), (Some(7), Some(7)));
        assert_eq!(quick.data.unwrap().published_us, Some(1234));
        assert_eq!(full.data.unwrap().published_us, Some(1234));
        // Another key order reads the same.
        let reordered =
            r#"{"type":"update","seq":8,"channel":"ticks:AAPL","data":{"seq":5,"publishedUs":77}}"#;
        let quick = quick_update(reordered).unwrap();
        assert_eq!(
            (quick.seq, quick.data.unwrap().published_us),
            (Some(8), Some(77))
        );
        let snapshot = r#"{"channel":"ticks:AAPL","data":[],"seq":7,"type":"snapshot"}"#;
        assert!(quick_update(snapshot).is_none());
    }
}
