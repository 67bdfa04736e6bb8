//! The market over real logs: candles equal the aggregate of the stored ticks, and a restart
//! at any point (with or without a checkpoint) continues to exactly the state of a run that
//! never stopped. `faults`: a full disk and failed syncs injected into the logs' storage.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod faults;

use std::collections::BTreeMap;

use bourse_marketdata::candle::{Candle, Interval, ProductCandles};
use bourse_marketdata::fixed::ONE;
use bourse_marketdata::tick::{FeedItem, ProductDef, Source, Symbol, Tick};
use bourse_marketdata::{Applied, Batch, Market, MarketConfig};

/// SplitMix64, so that every failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn config(dir: &std::path::Path) -> MarketConfig {
    MarketConfig {
        segment_size_bytes: 8192,
        checkpoint_ticks: u64::MAX,
        ..MarketConfig::new(dir)
    }
}

const SYMBOLS: [&str; 3] = ["AAPL", "MSFT", "X.Y"];

/// Messages of a feed with out-of-order, late and duplicate ticks: `(partition, items)`.
fn feed(seed: u64, n_messages: usize) -> Vec<(i32, Vec<FeedItem>)> {
    feed_with(seed, n_messages, true)
}

/// As [`feed`]; without `messy`, no duplicates and no late ticks.
fn feed_with(seed: u64, n_messages: usize, messy: bool) -> Vec<(i32, Vec<FeedItem>)> {
    let mut rng = Rng(seed);
    let mut out = vec![(
        0,
        vec![FeedItem::Product(ProductDef {
            symbol: Symbol::new("AAPL").unwrap(),
            name: "Apple Inc.".into(),
            currency: Symbol::new("USD").unwrap(),
            tick_size: ONE / 100,
        })],
    )];
    let mut seq = [0u64; 3];
    let mut ts = [1_764_000_000_000i64; 3];
    let mut price = [100 * ONE; 3];
    let mut sent: Vec<(usize, Tick)> = Vec::new();
    for _ in 0..n_messages {
        let p = rng.below(3) as usize;
        let mut items = Vec::new();
        for _ in 0..1 + rng.below(5) {
            let tick = if messy && !sent.is_empty() && rng.below(10) == 0 {
                // A duplicate of something sent before (maybe of another product).
                let (q, t) = sent[rng.below(sent.len() as u64) as usize];
                items.push(FeedItem::Tick {
                    symbol: Symbol::new(SYMBOLS[q]).unwrap(),
                    tick: t,
                });
                continue;
            } else {
                seq[p] += 1 + u64::from(rng.below(8) == 0); // sometimes a gap
                ts[p] += rng.below(40_000) as i64;
                price[p] = (price[p] + (rng.below(201) as i64 - 100) * ONE / 100).max(ONE);
                // Sometimes late: up to 90 s behind (beyond the 60 s bound sometimes).
                let late = if messy && rng.below(6) == 0 {
                    rng.below(90_000) as i64
                } else {
                    0
                };
                Tick {
                    price: price[p],
                    size: (1 + rng.below(500) as i64) * ONE,
                    ts: ts[p] - late,
                    seq: seq[p],
                    source: Source::Feed,
                }
            };
            sent.push((p, tick));
            items.push(FeedItem::Tick {
                symbol: Symbol::new(SYMBOLS[p]).unwrap(),
                tick,
            });
        }
        out.push((rng.below(2) as i32, items));
    }
    out
}

/// Ingests messages `from..to` of `feed`, each with its partition's next offset.
fn ingest(market: &mut Market, feed: &[(i32, Vec<FeedItem>)], from: usize, to: usize) {
    let mut applied = Applied::default();
    for (index, (partition, items)) in feed.iter().enumerate().take(to).skip(from) {
        let batch = Batch {
            source: Source::Feed,
            partition: *partition,
            next_offset: index as i64 + 1,
            items,
        };
        market.ingest(&batch, &mut applied).unwrap();
    }
}

/// Where to resume: the message after the highest offset stored (offsets here are global
/// message indexes, so the larger of the partitions' offsets).
fn resume_from(market: &Market) -> usize {
    market.offsets().values().copied().max().unwrap_or(0) as usize
}

#[derive(Debug, PartialEq)]
struct Summary {
    products: Vec<(String, String)>,
    places: Vec<bourse_marketdata::catalogue::Place>,
    open: Vec<ProductCandles>,
    offsets: Vec<((Source, i32), i64)>,
    candles: Vec<Vec<Vec<Candle>>>,
    ticks: Vec<Vec<Tick>>,
}

fn summary(market: &Market) -> Summary {
    let mut reader = market.reader().unwrap();
    let n = market.catalogue().len() as u32;
    let mut candles = vec![];
    let mut ticks = vec![];
    for id in 0..n {
        let state = market.product(id).unwrap();
        candles.push(
            Interval::ALL
                .iter()
                .map(|&i| {
                    reader
                        .candles(
                            id,
                            i,
                            state.candle_heads[i.index()].link(),
                            Some(state.candles.open[i.index()]),
                            0,
                            i64::MAX,
                            usize::MAX,
                        )
                        .unwrap()
                })
                .collect(),
        );
        ticks.push(
            reader
                .ticks(id, state.tick_head, 0, i64::MAX, usize::MAX)
                .unwrap(),
        );
    }
    Summary {
        products: market
            .catalogue()
            .listings()
            .iter()
            .map(|l| (l.symbol.to_string(), l.name.to_string()))
            .collect(),
        places: (0..n)
            .map(|id| market.catalogue().place(id).unwrap())
            .collect(),
        open: (0..n)
            .map(|id| market.product(id).unwrap().candles)
            .collect(),
        offsets: market.offsets().iter().map(|(k, v)| (*k, *v)).collect(),
        candles,
        ticks,
    }
}

/// Candles as the aggregate of ticks, bucket by bucket (the invariant of the candle rules).
fn aggregate(ticks: &[Tick], interval: Interval) -> Vec<Candle> {
    let mut buckets: BTreeMap<i64, Candle> = BTreeMap::new();
    for t in ticks {
        let b = interval.bucket(t.ts);
        buckets
            .entry(b)
            .and_modify(|c| c.add(t))
            .or_insert_with(|| Candle::of(b, t));
    }
    buckets.into_values().collect()
}

#[test]
fn candles_equal_the_aggregate_of_the_stored_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let mut market = Market::open(config(dir.path())).unwrap();
    let feed = feed(7, 1500);
    ingest(&mut market, &feed, 0, feed.len());
    let s = summary(&market);
    let counters = market.counters();
    assert!(counters.duplicates > 50, "{counters:?}");
    assert!(counters.late > 10, "{counters:?}");
    assert!(counters.amended > 50, "{counters:?}");
    assert_eq!(s.products.len(), 3);
    assert_eq!(s.products[0], ("AAPL".into(), "Apple Inc.".into()));
    // Undefined symbols were listed under their own name.
    assert_eq!(s.products[1].1, s.products[1].0);
    let n_ticks: usize = s.ticks.iter().map(Vec::len).sum();
    assert_eq!(n_ticks as u64, counters.ticks);
    for (id, ticks) in s.ticks.iter().enumerate() {
        for interval in Interval::ALL {
            assert_eq!(
                s.candles[id][interval.index()],
                aggregate(ticks, interval),
                "product {id} {}",
                interval.name()
            );
        }
    }
    // Range queries: exactly the ticks and candles in range, newest `limit`.
    let state = *market.product(0).unwrap();
    let all = &s.ticks[0];
    let (from, to) = (all[all.len() / 3].ts, all[2 * all.len() / 3].ts);
    let mut reader = market.reader().unwrap();
    let got = reader
        .ticks(0, state.tick_head, from, to, usize::MAX)
        .unwrap();
    let expected: Vec<Tick> = all
        .iter()
        .copied()
        .filter(|t| (from..=to).contains(&t.ts))
        .collect();
    assert_eq!(got, expected);
    let m1 = &s.candles[0][Interval::M1.index()];
    let got = reader
        .candles(
            0,
            Interval::M1,
            state.candle_heads[1].link(),
            Some(state.candles.open[1]),
            m1[5].start,
            m1[20].start,
            10,
        )
        .unwrap();
    assert_eq!(got, m1[11..=20].to_vec());
}

fn restart_case(seed: u64, crash_at: usize, checkpoint_at: Option<usize>, messy: bool) {
    let feed = feed_with(seed, 400, messy);
    let whole_dir = tempfile::tempdir().unwrap();
    let mut whole = Market::open(config(whole_dir.path())).unwrap();
    ingest(&mut whole, &feed, 0, feed.len());

    let dir = tempfile::tempdir().unwrap();
    let mut market = Market::open(config(dir.path())).unwrap();
    match checkpoint_at {
        Some(at) => {
            ingest(&mut market, &feed, 0, at);
            market.checkpoint().unwrap();
            ingest(&mut market, &feed, at, crash_at);
        }
        None => ingest(&mut market, &feed, 0, crash_at),
    }
    // A crash: the process goes away without a checkpoint (its mapped writes stay).
    drop(market);
    let mut market = Market::open(config(dir.path())).unwrap();
    let from = resume_from(&market);
    assert!(from <= crash_at);
    // Offsets are stored per partition; messages of the other partition after its own offset
    // were taken too. Resume each from its own offset, as a consumer does.
    let mut applied = Applied::default();
    for (index, (partition, items)) in feed.iter().enumerate().skip(from.min(crash_at)) {
        let next = market.offset(Source::Feed, *partition).unwrap_or(0) as usize;
        if index < next {
            continue;
        }
        let batch = Batch {
            source: Source::Feed,
            partition: *partition,
            next_offset: index as i64 + 1,
            items,
        };
        market.ingest(&batch, &mut applied).unwrap();
    }
    assert_eq!(
        summary(&market),
        summary(&whole),
        "seed {seed} crash at {crash_at} checkpoint {checkpoint_at:?}"
    );
    if !messy {
        // Nothing was offered twice: the stored offsets were exactly right (the duplicate
        // check would otherwise have hidden a re-read).
        let counters = market.counters();
        assert_eq!(
            (counters.duplicates, counters.late),
            (0, 0),
            "seed {seed} crash at {crash_at}"
        );
    }
    // And once more after a clean checkpoint and reopen.
    market.checkpoint().unwrap();
    drop(market);
    let market = Market::open(config(dir.path())).unwrap();
    assert_eq!(summary(&market), summary(&whole));
}

#[test]
fn a_restart_anywhere_neither_loses_nor_double_counts() {
    for (seed, crash_at, checkpoint_at) in [
        (1, 0, None),
        (2, 1, None),
        (3, 200, None),
        (4, 401, None),
        (5, 300, Some(100)),
        (6, 300, Some(300)),
        (7, 250, Some(0)),
    ] {
        restart_case(seed, crash_at, checkpoint_at, true);
        restart_case(seed, crash_at, checkpoint_at, false);
    }
}

#[test]
fn a_damaged_checkpoint_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut market = Market::open(config(dir.path())).unwrap();
    let feed = feed(3, 20);
    ingest(&mut market, &feed, 0, feed.len());
    market.checkpoint().unwrap();
    drop(market);
    let path = dir.path().join("market.ckpt");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let error = Market::open(config(dir.path())).unwrap_err().to_string();
    assert!(error.contains("checksum"), "{error}");
}

#[test]
fn retention_drops_old_segments_and_queries_stop_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.tick_retention_ms = 3_600_000;
    let mut market = Market::open(config).unwrap();
    let symbol = Symbol::new("R").unwrap();
    let mut applied = Applied::default();
    // 2,000 ticks a minute apart: ~33 hours; only the last hour (and a segment) is kept,
    // as checkpoints move on (retention keeps what a replay from the newest needs).
    for i in 0..2_000i64 {
        if i % 100 == 99 {
            market.checkpoint().unwrap();
        }
        let tick = Tick {
            price: ONE,
            size: ONE,
            ts: 1_000_000_000_000 + i * 60_000,
            seq: i as u64 + 1,
            source: Source::Feed,
        };
        let items = [FeedItem::Tick { symbol, tick }];
        market
            .ingest(
                &Batch {
                    source: Source::Feed,
                    partition: 0,
                    next_offset: i + 1,
                    items: &items,
                },
                &mut applied,
            )
            .unwrap();
    }
    let state = *market.product(0).unwrap();
    let mut reader = market.reader().unwrap();
    let kept = reader
        .ticks(0, state.tick_head, 0, i64::MAX, usize::MAX)
        .unwrap();
    assert!(kept.len() >= 60 && kept.len() < 400, "kept {}", kept.len());
    assert_eq!(kept.last().unwrap().seq, 2_000);
    // Hourly candles are kept for ever: all 34 hours.
    let hours = reader
        .candles(
            0,
            Interval::H1,
            state.candle_heads[Interval::H1.index()].link(),
            Some(state.candles.open[4]),
            0,
            i64::MAX,
            usize::MAX,
        )
        .unwrap();
    assert_eq!(hours.iter().map(|c| c.count).sum::<u32>(), 2_000);
    let n_files = std::fs::read_dir(dir.path().join("ticks")).unwrap().count();
    assert!(n_files < 60, "{n_files} tick segments");
}

/// `tick_before` and `candle_before` (what converts one series at another's price) find the
/// newest tick and candle before any time, in a feed with late and out-of-order ticks.
#[test]
fn the_newest_tick_and_candle_before_a_time_are_found_despite_late_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let mut market = Market::open(config(dir.path())).unwrap();
    let feed = feed(11, 1200);
    ingest(&mut market, &feed, 0, feed.len());
    assert!(market.counters().late > 10);
    let s = summary(&market);
    let mut reader = market.reader().unwrap();
    let mut rng = Rng(5);
    for (id, ticks) in s.ticks.iter().enumerate() {
        let id = u32::try_from(id).unwrap();
        let state = *market.product(id).unwrap();
        let (first, last) = (ticks[0].ts, ticks[ticks.len() - 1].ts);
        let mut times: Vec<i64> = (0..60)
            .map(|_| first - 1_000 + rng.below((last - first + 2_000) as u64) as i64)
            .collect();
        // Exactly at ticks too: `before` excludes them.
        times.extend(ticks.iter().step_by(97).map(|t| t.ts));
        for before in times {
            let expected = ticks
                .iter()
                .filter(|t| t.ts < before)
                .max_by_key(|t| t.key());
            let got = reader.tick_before(id, state.tick_head, before).unwrap();
            assert_eq!(got.as_ref(), expected, "product {id}, before {before}");
            for interval in [Interval::S1, Interval::M1, Interval::H1] {
                let candles = &s.candles[id as usize][interval.index()];
                let expected = candles
                    .iter()
                    .filter(|c| c.start < before)
                    .max_by_key(|c| c.start);
                let got = reader
                    .candle_before(
                        id,
                        interval,
                        state.candle_heads[interval.index()].link(),
                        Some(state.candles.open[interval.index()]),
                        before,
                    )
                    .unwrap();
                assert_eq!(
                    got.as_ref(),
                    expected,
                    "product {id} {} before {before}",
                    interval.name()
                );
            }
        }
    }
}

/// The disk a new market takes: the tick log's segment at the configured size, each candle
/// log's an eighth of it (at least 1 MiB, at most the tick log's).
#[test]
fn candle_logs_take_an_eighth_of_the_tick_logs_segment() {
    fn segment_lengths(dir: &std::path::Path) -> BTreeMap<String, u64> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|log| {
                let bytes = std::fs::read_dir(&log)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                    .map(|p| std::fs::metadata(p).unwrap().len())
                    .sum();
                (
                    log.file_name().unwrap().to_string_lossy().into_owned(),
                    bytes,
                )
            })
            .collect()
    }
    for (tick_mib, candle_bytes) in [(64, 8 << 20), (4, 1 << 20)] {
        let dir = tempfile::tempdir().unwrap();
        let config = MarketConfig {
            segment_size_bytes: tick_mib << 20,
            ..MarketConfig::new(dir.path())
        };
        assert_eq!(config.candle_segment_size_bytes(), candle_bytes);
        drop(Market::open(config).unwrap());
        let lengths = segment_lengths(dir.path());
        assert_eq!(lengths.len(), 1 + Interval::ALL.len(), "{lengths:?}");
        for (log, bytes) in &lengths {
            let want = if log == "ticks" {
                tick_mib << 20
            } else {
                candle_bytes
            };
            assert_eq!(*bytes, want, "{log}: {lengths:?}");
        }
    }
    let small = MarketConfig {
        segment_size_bytes: 8192,
        ..MarketConfig::new("unused")
    };
    assert_eq!(small.candle_segment_size_bytes(), 8192);
}

/// Retention never removes what the replay from the newest checkpoint needs: a crash long
/// after the last checkpoint still reopens, to the state of a market that never stopped.
#[test]
fn retention_keeps_what_the_checkpoints_replay_needs() {
    let feed = feed_with(11, 600, false);
    let run = |crash: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        // Much shorter than the feed's span, so that retention has work on every roll.
        config.tick_retention_ms = 600_000;
        let mut market = Market::open(config.clone()).unwrap();
        ingest(&mut market, &feed, 0, 50);
        market.checkpoint().unwrap();
        ingest(&mut market, &feed, 50, feed.len());
        if crash {
            // No checkpoint since message 50: the replay starts there.
            drop(market);
            market = Market::open(config).unwrap();
            let from = resume_from(&market);
            ingest(&mut market, &feed, from, feed.len());
        }
        (summary(&market), dir)
    };
    let (crashed, _dir) = run(true);
    let (whole, _dir2) = run(false);
    assert_eq!(crashed.offsets, whole.offsets);
    assert_eq!(crashed.open, whole.open);
}

/// With no checkpoint, a tick log without its first segment (a power loss before anything
/// synced the logs' directories) cannot be replayed: the market starts over, and the feed
/// read again from its start gives the market that never lost anything.
#[test]
fn a_tick_log_without_its_first_segment_and_no_checkpoint_starts_over() {
    let feed = feed(5, 300);
    let dir = tempfile::tempdir().unwrap();
    let mut market = Market::open(config(dir.path())).unwrap();
    ingest(&mut market, &feed, 0, feed.len());
    let want = summary(&market);
    drop(market);
    let first = dir
        .path()
        .join("ticks")
        .join(bourse_journal::segment_file_name(1));
    std::fs::remove_file(first).unwrap();
    let mut market = Market::open(config(dir.path())).unwrap();
    assert!(market.started_over());
    assert!(market.offsets().is_empty());
    assert_eq!(market.catalogue().len(), 0);
    ingest(&mut market, &feed, 0, feed.len());
    assert_eq!(summary(&market), want);
    drop(market);
    let market = Market::open(config(dir.path())).unwrap();
    assert!(!market.started_over());
}
