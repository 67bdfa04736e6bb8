//! Market data without the network: how fast feed messages go into tick history and candles,
//! how much memory a product costs, and how fast candle queries are.
//!
//! 1. **Ingest.** `--products` products, messages of `--batch` ticks of one product each (as a
//!    Kafka message keyed by symbol carries them), `--ticks` ticks in all, written as the
//!    feed's JSON up front. Timed: parsing alone, then parsing + `Market::ingest` (tick log,
//!    candles of 7 intervals, duplicate checks) into a fresh directory; median of `--reps`.
//! 2. **Memory.** `--memory-products` products defined through the feed, each with one tick
//!    (so all 7 candles are open), against the process's resident set before and after.
//! 3. **Candle queries.** A product with a day of 1m candles (one tick a minute) and one with a
//!    year of 1d candles (one tick a day); `--queries` queries of the whole range each,
//!    latency percentiles (HdrHistogram). Then the same queries answered as the API answers
//!    them (candles read, rendered as the API's candles and serialised to JSON), without and
//!    with conversion into EUR at the rate of each candle's time (`?currency=EUR`,
//!    `gateway/src/fx.rs`), a EURUSD pair ticking as often as the product, half a period
//!    later; the two alternate query by query, so both see the same machine. Last, a
//!    catalogue page of 50 products (`GET /products`: each one's current price and last 10
//!    one-minute closes, `gateway/src/listing.rs`), plain and in EUR, alternating likewise.
//!
//! `cargo run --release -p bourse-benches --bin market`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::time::Instant;

use bourse_benches::args::{Flags, or_exit};
use bourse_benches::report::{fmt_int, median, sorted};
use bourse_marketdata::candle::Interval;
use bourse_marketdata::fixed::ONE;
use bourse_marketdata::tick::{self, FeedItem, ProductDef, Source, Symbol, Tick};
use bourse_marketdata::{Applied, Batch, Market, MarketConfig};
use hdrhistogram::Histogram;

const USAGE: &str = "usage: market [--ticks 2000000] [--products 1000] [--batch 100] \
[--reps 3] [--memory-products 1000000] [--queries 10000] [--quick]";

struct Config {
    ticks: usize,
    products: usize,
    batch: usize,
    reps: usize,
    memory_products: usize,
    queries: usize,
}

fn parse() -> Result<Config, String> {
    let mut config = Config {
        ticks: 2_000_000,
        products: 1_000,
        batch: 100,
        reps: 3,
        memory_products: 1_000_000,
        queries: 10_000,
    };
    let mut flags = Flags::from_env(USAGE);
    while let Some(flag) = flags.next_flag()? {
        if flag == "--quick" {
            config = Config {
                ticks: 100_000,
                products: 100,
                batch: 100,
                reps: 1,
                memory_products: 10_000,
                queries: 100,
            };
            continue;
        }
        let value = flags.value(&flag)?;
        let n = value.number()?.max(1) as usize;
        match flag.as_str() {
            "--ticks" => config.ticks = n,
            "--products" => config.products = n,
            "--batch" => config.batch = n,
            "--reps" => config.reps = n,
            "--memory-products" => config.memory_products = n,
            "--queries" => config.queries = n,
            _ => return Err(flags.unknown(&flag)),
        }
    }
    Ok(config)
}

fn symbol(i: usize) -> Symbol {
    Symbol::new(&format!("P{i:07}")).expect("valid")
}

/// The feed's messages: `(key, payload)`.
fn messages(config: &Config) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut seq = vec![0u64; config.products];
    let t0 = 1_764_000_000_000i64;
    let n_messages = config.ticks / config.batch;
    for m in 0..n_messages {
        let p = m % config.products;
        let ticks: Vec<Tick> = (0..config.batch)
            .map(|k| {
                seq[p] += 1;
                Tick {
                    price: (100 * ONE) + ((m * 7 + k * 13) % 1000) as i64 * (ONE / 100),
                    size: (1 + (k % 50) as i64) * ONE,
                    ts: t0 + (m as i64) * 10 + k as i64 / 10,
                    seq: seq[p],
                    source: Source::Feed,
                }
            })
            .collect();
        let mut payload = Vec::new();
        tick::write_message(symbol(p), &ticks, &mut payload);
        out.push(payload);
    }
    out
}

fn config_in(dir: &std::path::Path) -> MarketConfig {
    MarketConfig {
        checkpoint_ticks: u64::MAX,
        ..MarketConfig::new(dir)
    }
}

fn ingest(config: &Config, messages: &[Vec<u8>]) -> (f64, f64) {
    let mut items = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    for payload in messages {
        items.clear();
        tick::parse_message(payload, &mut items).expect("valid");
        n += items.len();
    }
    let parse_s = started.elapsed().as_secs_f64();
    assert_eq!(n, messages.len() * config.batch);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut market = Market::open(config_in(dir.path())).expect("open");
    let mut applied = Applied::default();
    let started = Instant::now();
    for (offset, payload) in messages.iter().enumerate() {
        items.clear();
        tick::parse_message(payload, &mut items).expect("valid");
        let batch = Batch {
            source: Source::Feed,
            partition: 0,
            next_offset: offset as i64 + 1,
            items: &items,
        };
        market.ingest(&batch, &mut applied).expect("ingest");
    }
    let total_s = started.elapsed().as_secs_f64();
    assert_eq!(market.counters().ticks as usize, n);
    (parse_s, total_s)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn memory(config: &Config) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut market = Market::open(config_in(dir.path())).expect("open");
    let mut applied = Applied::default();
    let before = rss_bytes();
    let usd = Symbol::new("USD").expect("valid");
    let n = config.memory_products;
    for chunk_start in (0..n).step_by(1000) {
        let mut items = Vec::with_capacity(2000);
        for i in chunk_start..(chunk_start + 1000).min(n) {
            let symbol = symbol(i);
            items.push(FeedItem::Product(ProductDef {
                symbol,
                name: format!("Product number {i} Inc."),
                currency: usd,
                tick_size: ONE / 100,
            }));
            items.push(FeedItem::Tick {
                symbol,
                tick: Tick {
                    price: 100 * ONE,
                    size: ONE,
                    ts: 1_764_000_000_000,
                    seq: 1,
                    source: Source::Feed,
                },
            });
        }
        let batch = Batch {
            source: Source::Feed,
            partition: 0,
            next_offset: chunk_start as i64 + 1,
            items: &items,
        };
        market.ingest(&batch, &mut applied).expect("ingest");
    }
    let after = rss_bytes();
    assert_eq!(market.catalogue().len(), n);
    let started = Instant::now();
    let found = market.catalogue().search("product 99999", None, 50);
    let search_us = started.elapsed().as_secs_f64() * 1e6;
    assert!(!found.is_empty() || n < 99_999);
    drop(market);
    (
        (after.saturating_sub(before)) as f64 / n as f64,
        search_us as u64,
    )
}

fn queries(config: &Config) -> Vec<(String, Histogram<u64>, usize)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut market = Market::open(config_in(dir.path())).expect("open");
    let mut applied = Applied::default();
    let t0 = 1_735_689_600_000i64; // 2025-01-01
    let day = Symbol::new("DAY").expect("valid");
    let year = Symbol::new("YEAR").expect("valid");
    let mut offset = 0;
    let mut feed = |market: &mut Market, symbol: Symbol, seq: u64, ts: i64| {
        offset += 1;
        let items = [FeedItem::Tick {
            symbol,
            tick: Tick {
                price: 100 * ONE + seq as i64,
                size: ONE,
                ts,
                seq,
                source: Source::Feed,
            },
        }];
        let batch = Batch {
            source: Source::Feed,
            partition: 0,
            next_offset: offset,
            items: &items,
        };
        market.ingest(&batch, &mut applied).expect("ingest");
    };
    let eurusd = Symbol::new("EURUSD").expect("valid");
    for minute in 0..1_441u64 {
        feed(&mut market, day, minute + 1, t0 + minute as i64 * 60_000);
        feed(
            &mut market,
            eurusd,
            minute + 1,
            t0 + minute as i64 * 60_000 + 30_000,
        );
    }
    for d in 0..366u64 {
        feed(&mut market, year, d + 1, t0 + d as i64 * 86_400_000);
    }
    // 47 more products for a catalogue page of 50, each with the day's last 15 minutes.
    for p in 0..47u64 {
        let symbol = Symbol::new(&format!("LIST{p}")).expect("valid");
        for minute in 1_426..1_441u64 {
            feed(
                &mut market,
                symbol,
                minute,
                t0 + minute as i64 * 60_000 + p as i64,
            );
        }
    }
    // The daily pair's ticks come after the minute ones (a feed's ticks of one product are in
    // time order); one a day, half a day after the product's, from day 0.
    for d in 1..366u64 {
        feed(
            &mut market,
            eurusd,
            2_000 + d,
            t0 + d as i64 * 86_400_000 + 43_200_000,
        );
    }
    let mut out = Vec::new();
    for (name, symbol, interval, expected) in [
        ("a day of 1m candles", day, Interval::M1, 1_441),
        ("a year of 1d candles", year, Interval::D1, 366),
    ] {
        let id = market.catalogue().id(&symbol).expect("listed");
        let mut histogram = Histogram::<u64>::new(3).expect("histogram");
        let mut n = 0;
        for _ in 0..config.queries {
            let started = Instant::now();
            let state = *market.product(id).expect("state");
            let mut reader = market.reader().expect("reader");
            let candles = reader
                .candles(
                    id,
                    interval,
                    state.candle_heads[interval.index()].link(),
                    Some(state.candles.open[interval.index()]),
                    0,
                    i64::MAX,
                    5_000,
                )
                .expect("query");
            histogram
                .record(started.elapsed().as_nanos() as u64)
                .expect("record");
            n = candles.len();
        }
        assert_eq!(n, expected, "{name}");
        out.push((name.to_string(), histogram, n));
    }
    out.extend(answered(config, &market, [day, year], t0));
    out
}

/// The queries of [`queries`] as the API answers them (`day` and `year` are its products),
/// plain and in EUR, alternating query by query.
fn answered(
    config: &Config,
    market: &Market,
    [day, year]: [Symbol; 2],
    t0: i64,
) -> Vec<(String, Histogram<u64>, usize)> {
    let mut out = Vec::new();
    let pair = bourse_gateway::fx::pair_for(market, "USD", "EUR").expect("EURUSD is a rate");
    let eur: std::sync::Arc<str> = "EUR".into();
    for (name, symbol, interval, from) in [
        ("a day of 1m candles", day, Interval::M1, t0 + 60_000),
        ("a year of 1d candles", year, Interval::D1, t0 + 86_400_000),
    ] {
        let id = market.catalogue().id(&symbol).expect("listed");
        let mut plain = Histogram::<u64>::new(3).expect("histogram");
        let mut converted = Histogram::<u64>::new(3).expect("histogram");
        let (mut n_plain, mut n_converted) = (0, 0);
        for _ in 0..config.queries {
            for convert in [false, true] {
                let started = Instant::now();
                let state = *market.product(id).expect("state");
                let open = state.candles.open[interval.index()];
                let mut reader = market.reader().expect("reader");
                let candles = reader
                    .candles(
                        id,
                        interval,
                        state.candle_heads[interval.index()].link(),
                        Some(open),
                        from,
                        i64::MAX,
                        5_000,
                    )
                    .expect("query");
                let views: Vec<bourse_gateway::render::CandleView> = if convert {
                    let rates = bourse_gateway::fx::rates_for_candles(
                        market,
                        &mut reader,
                        &pair,
                        interval,
                        &candles,
                    )
                    .expect("a rate for every candle");
                    candles
                        .iter()
                        .zip(&rates)
                        .map(|(c, rate)| {
                            bourse_gateway::render::candle_view(c, c.start != open.start)
                                .converted(c, &eur, &pair, rate)
                                .expect("a positive rate")
                        })
                        .collect()
                } else {
                    candles
                        .iter()
                        .map(|c| bourse_gateway::render::candle_view(c, c.start != open.start))
                        .collect()
                };
                let json = serde_json::to_vec(&views).expect("serialise");
                let elapsed = started.elapsed().as_nanos() as u64;
                std::hint::black_box(json);
                if convert {
                    converted.record(elapsed).expect("record");
                    n_converted = views.len();
                } else {
                    plain.record(elapsed).expect("record");
                    n_plain = views.len();
                }
            }
        }
        assert_eq!(n_plain, n_converted, "{name}");
        out.push((format!("{name}, answered"), plain, n_plain));
        out.push((format!("{name}, answered in EUR"), converted, n_converted));
    }
    out.extend(listings(config, market));
    out
}

/// A catalogue page of every product (`GET /products`: current price and the last 10
/// one-minute closes each), plain and in EUR (`gateway/src/listing.rs`), alternating.
fn listings(config: &Config, market: &Market) -> Vec<(String, Histogram<u64>, usize)> {
    let eur = bourse_gateway::convert::Target {
        currency: "EUR".into(),
        explicit: false,
    };
    let ids: Vec<u32> = (0..u32::try_from(market.catalogue().len()).expect("few")).collect();
    let mut plain = Histogram::<u64>::new(3).expect("histogram");
    let mut converted = Histogram::<u64>::new(3).expect("histogram");
    let mut n = 0;
    for _ in 0..config.queries {
        for target in [None, Some(&eur)] {
            let started = Instant::now();
            let mut reader = market.reader().expect("reader");
            let mut rates = target.map(|t| bourse_gateway::listing::PageRates::new(t.clone()));
            let items: Vec<bourse_gateway::listing::Listing> = ids
                .iter()
                .filter_map(|&id| {
                    bourse_gateway::listing::listing_json(market, &mut reader, id, rates.as_mut())
                        .expect("listing")
                })
                .collect();
            let json = serde_json::to_vec(&items).expect("serialise");
            let elapsed = started.elapsed().as_nanos() as u64;
            std::hint::black_box(json);
            n = items.len();
            match target {
                None => plain.record(elapsed).expect("record"),
                Some(_) => converted.record(elapsed).expect("record"),
            }
        }
    }
    vec![
        (format!("a catalogue page of {n} products"), plain, n),
        (
            format!("a catalogue page of {n} products in EUR"),
            converted,
            n,
        ),
    ]
}

fn main() {
    let config = or_exit(parse());
    println!(
        "market data, {} ({} cores)",
        bourse_benches::report::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let messages = messages(&config);
    let bytes: usize = messages.iter().map(Vec::len).sum();
    println!(
        "ingest: {} ticks of {} products in messages of {} ticks ({} bytes of JSON a tick)",
        fmt_int(config.ticks as u64),
        config.products,
        config.batch,
        bytes / config.ticks.max(1)
    );
    let mut parse_rates = Vec::new();
    let mut total_rates = Vec::new();
    for _ in 0..config.reps {
        let (parse_s, total_s) = ingest(&config, &messages);
        let n = (messages.len() * config.batch) as f64;
        parse_rates.push(n / parse_s);
        total_rates.push(n / total_s);
    }
    let parse_rate = median(&sorted(&parse_rates));
    let total_rate = median(&sorted(&total_rates));
    println!(
        "  parse only:              {:>12} ticks/s ({:.0} ns a tick)",
        fmt_int(parse_rate as u64),
        1e9 / parse_rate
    );
    println!(
        "  parse + history/candles: {:>12} ticks/s ({:.0} ns a tick; {:.0} ns of it after parsing)",
        fmt_int(total_rate as u64),
        1e9 / total_rate,
        1e9 / total_rate - 1e9 / parse_rate
    );
    let (per_product, search_us) = memory(&config);
    println!(
        "memory: {} products with open candles: {:.0} bytes a product (resident set; the state alone is {} bytes); a search of \"product 99999\" took {} µs",
        fmt_int(config.memory_products as u64),
        per_product,
        Market::state_bytes_per_product(),
        search_us
    );
    for (name, histogram, n) in queries(&config) {
        println!(
            "query {name} ({n} items): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({} queries)",
            histogram.value_at_quantile(0.5) as f64 / 1e3,
            histogram.value_at_quantile(0.99) as f64 / 1e3,
            histogram.max() as f64 / 1e3,
            config.queries
        );
    }
}
