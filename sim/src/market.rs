//! The market data in the simulation (`bourse_marketdata::Market`): a seeded feed of ticks
//! (out of order, late, some beyond the lateness bound, duplicates, gaps in sequence numbers)
//! taken message by message, its tick and candle logs on simulated disks (one per log
//! directory, crashing with the rest of the process), checkpoints at seeded points. After a
//! crash it reopens from its checkpoint and logs and the feed is read again from the offset
//! it stored, as Kafka redelivers. The checkpoint file itself stays on the real file system
//! (it is written whole, synced and renamed: a crash leaves the old one or the new one).
//!
//! Checked after every recovery: each product's candles of every interval are the aggregate
//! of its stored ticks. At the end of a run: after the feed is read to its end, the market
//! holds exactly what a market that never crashed holds (products, open candles, offsets,
//! every stored candle and tick): nothing lost, nothing counted twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bourse_journal::PrepareNext;
use bourse_marketdata::candle::{Candle, Interval};
use bourse_marketdata::fixed::ONE;
use bourse_marketdata::tick::{FeedItem, ProductDef, Source, Symbol, Tick};
use bourse_marketdata::{Applied, Batch, Market, MarketConfig};
use bourse_tests::workload::SplitMix64;

use crate::disk::{DiskCounts, Faults, SimDisk};

const SYMBOLS: [&str; 3] = ["AAPL", "MSFT", "X.Y"];

/// Small segments, so that the logs roll.
const SEGMENT_BYTES: u64 = 8 << 10;

/// One simulated disk per log directory, shared by every open of it.
#[derive(Clone)]
struct Disks {
    seed: u64,
    faults: Arc<Mutex<Faults>>,
    by_dir: Arc<Mutex<BTreeMap<PathBuf, SimDisk>>>,
}

impl Disks {
    fn disk(&self, dir: &Path) -> SimDisk {
        let mut by_dir = self
            .by_dir
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = by_dir.len() as u64;
        by_dir
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                let faults = *self
                    .faults
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                SimDisk::new(self.seed ^ (0x3A7C_0000 + n), faults)
            })
            .clone()
    }

    fn each(&self, mut f: impl FnMut(&SimDisk)) {
        let by_dir = self
            .by_dir
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        by_dir.values().for_each(&mut f);
    }
}

/// The market, a reference that never crashes, and the feed.
pub(crate) struct SimMarket {
    /// The real directory of both markets' checkpoints and log directories.
    _dir: tempfile::TempDir,
    config: MarketConfig,
    disks: Disks,
    market: Option<Market<crate::disk::SimDisk>>,
    reference: Market<crate::disk::SimDisk>,
    feed: Feed,
    /// Every message sent so far: `(partition, items)`; a message's offset is its index + 1.
    sent: Vec<(i32, Vec<FeedItem>)>,
    /// The next message the market takes.
    next: usize,
    /// Each partition's position after a restart, as Kafka resumes it: a message of the
    /// partition before it is not delivered again.
    resumed: std::collections::BTreeMap<i32, usize>,
    /// One past the newest message the market ever took (a restart may take some again).
    taken_to: usize,
}

impl SimMarket {
    pub(crate) fn new(seed: u64) -> Result<SimMarket, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("a market directory: {e}"))?;
        let market_config = config(&dir.path().join("market"));
        let disks = Disks {
            seed,
            faults: Arc::new(Mutex::new(Faults::default())),
            by_dir: Arc::default(),
        };
        let reference_disks = Disks {
            seed: !seed,
            faults: Arc::new(Mutex::new(Faults::default())),
            by_dir: Arc::default(),
        };
        let reference = open(config(&dir.path().join("reference")), &reference_disks)?;
        let market = open(market_config.clone(), &disks)?;
        Ok(SimMarket {
            _dir: dir,
            config: market_config,
            disks,
            market: Some(market),
            reference,
            feed: Feed::new(seed),
            sent: Vec::new(),
            next: 0,
            resumed: std::collections::BTreeMap::new(),
            taken_to: 0,
        })
    }

    /// Turns the faults of every log's disk on or off (bit flips never: a flipped bit in a
    /// log the checkpoint covers is refused, as the journal's own checks show).
    pub(crate) fn set_faults(&self, faults: Faults) {
        let faults = Faults {
            bit_flip: 0,
            ..faults
        };
        *self
            .disks
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = faults;
        self.disks.each(|disk| disk.set_faults(faults));
    }

    /// The feed sends a few messages and the market takes what it has not; by the seed, a
    /// checkpoint. `Err`: the market failed (a full disk, a failed sync), and the server
    /// stops with it.
    pub(crate) fn step(
        &mut self,
        rng: &mut SplitMix64,
        report: &mut MarketReport,
    ) -> Result<(), String> {
        for _ in 0..1 + rng.below(3) {
            let message = self.feed.message();
            take(&mut self.reference, self.sent.len(), &message)
                .map_err(|e| format!("the reference market: {e}"))?;
            self.sent.push(message);
        }
        let taken = self.deliver()?;
        report.messages += taken;
        let market = self.market.as_mut().ok_or("the market is not open")?;
        if rng.chance(15) {
            market.checkpoint().map_err(|e| e.to_string())?;
            report.checkpoints += 1;
        }
        Ok(())
    }

    /// Whether Kafka delivers message `index` (again): not when its partition resumed past it.
    fn delivered(&self, index: usize) -> bool {
        let partition = self.sent[index].0;
        self.resumed
            .get(&partition)
            .is_none_or(|&from| index >= from)
    }

    /// The market takes every message sent that Kafka delivers to it; how many it took.
    fn deliver(&mut self) -> Result<u64, String> {
        let mut taken = 0;
        while self.next < self.sent.len() {
            if self.delivered(self.next) {
                let market = self.market.as_mut().ok_or("the market is not open")?;
                take(market, self.next, &self.sent[self.next])?;
                taken += 1;
            }
            self.next += 1;
            self.taken_to = self.taken_to.max(self.next);
        }
        Ok(taken)
    }

    /// The process is gone.
    pub(crate) fn crash(&mut self) {
        self.market = None;
        self.disks.each(SimDisk::crash);
    }

    /// Start-up: the market from its checkpoint and logs, the feed resumed from the offset
    /// it stored, and its candles checked against its ticks.
    pub(crate) fn recover(&mut self, report: &mut MarketReport) -> Result<(), String> {
        let market = open(self.config.clone(), &self.disks)?;
        // Each partition resumes at the offset the market stored for it (a message's offset
        // is its index + 1: the stored offset is the index of the next one to deliver).
        self.resumed.clear();
        for ((source, partition), offset) in market.offsets() {
            if *source == Source::Feed {
                let offset = usize::try_from(*offset).map_err(|e| e.to_string())?;
                if offset > self.taken_to {
                    return Err(format!(
                        "the market resumes partition {partition} after message {offset} but \
                         took only {}",
                        self.taken_to
                    ));
                }
                self.resumed.insert(*partition, offset);
            }
        }
        let resume = (0..self.next)
            .find(|&i| self.delivered(i))
            .unwrap_or(self.next);
        report.messages_again += (resume..self.next).filter(|&i| self.delivered(i)).count() as u64;
        self.next = resume;
        candles_are_the_aggregate_of_ticks(&market)?;
        self.market = Some(market);
        Ok(())
    }

    /// The end of a run: the market takes the rest of the feed and must then hold what the
    /// reference holds.
    pub(crate) fn finish(&mut self) -> Result<(), String> {
        self.deliver()?;
        let market = self.market.as_mut().ok_or("the market is not open")?;
        candles_are_the_aggregate_of_ticks(market)?;
        let (got, want) = (summary(market)?, summary(&self.reference)?);
        if got != want {
            let what = [
                ("products", got.products == want.products),
                ("open candles", got.open == want.open),
                ("offsets", got.offsets == want.offsets),
                ("stored candles", got.candles == want.candles),
                ("stored ticks", got.ticks == want.ticks),
            ]
            .iter()
            .filter(|(_, same)| !same)
            .map(|(what, _)| *what)
            .collect::<Vec<_>>()
            .join(", ");
            return Err(format!(
                "the market differs from one that never crashed in its {what}"
            ));
        }
        Ok(())
    }

    /// Counts of every log disk.
    pub(crate) fn disk_counts(&self) -> DiskCounts {
        let mut total = DiskCounts::default();
        self.disks.each(|disk| total.add(&disk.counts()));
        total
    }
}

/// What the market did in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketReport {
    /// Feed messages the market took.
    pub messages: u64,
    /// Messages taken again after a restart (redelivered from the stored offset).
    pub messages_again: u64,
    pub checkpoints: u64,
    /// The logs' disks.
    pub disk: DiskCounts,
}

impl MarketReport {
    pub fn add(&mut self, other: &MarketReport) {
        self.messages += other.messages;
        self.messages_again += other.messages_again;
        self.checkpoints += other.checkpoints;
        self.disk.add(&other.disk);
    }
}

fn config(dir: &Path) -> MarketConfig {
    MarketConfig {
        segment_size_bytes: SEGMENT_BYTES,
        checkpoint_ticks: u64::MAX,
        prepare_next: PrepareNext::Manual,
        ..MarketConfig::new(dir)
    }
}

fn open(config: MarketConfig, disks: &Disks) -> Result<Market<SimDisk>, String> {
    let disks = disks.clone();
    Market::open_with_storage(config, move |dir| Ok(disks.disk(dir)))
        .map_err(|e| format!("the market does not open: {e}"))
}

/// Message `index` of the feed, with its offset.
fn take(
    market: &mut Market<SimDisk>,
    index: usize,
    (partition, items): &(i32, Vec<FeedItem>),
) -> Result<(), String> {
    let batch = Batch {
        source: Source::Feed,
        partition: *partition,
        next_offset: index as i64 + 1,
        items,
    };
    market
        .ingest(&batch, &mut Applied::default())
        .map_err(|e| e.to_string())
}

/// Everything a market holds that a reader sees.
#[derive(PartialEq)]
struct Summary {
    products: Vec<String>,
    open: Vec<bourse_marketdata::candle::ProductCandles>,
    offsets: Vec<((Source, i32), i64)>,
    candles: Vec<Vec<Vec<Candle>>>,
    ticks: Vec<Vec<Tick>>,
}

fn summary(market: &Market<SimDisk>) -> Result<Summary, String> {
    let mut reader = market.reader().map_err(|e| e.to_string())?;
    let n = market.catalogue().len() as u32;
    let mut candles = Vec::new();
    let mut ticks = Vec::new();
    let mut open = Vec::new();
    for id in 0..n {
        let state = market.product(id).ok_or("a listed product has no state")?;
        let mut by_interval = Vec::new();
        for interval in Interval::ALL {
            let i = interval.index();
            by_interval.push(
                reader
                    .candles(
                        id,
                        interval,
                        state.candle_heads[i].link(),
                        Some(state.candles.open[i]),
                        0,
                        i64::MAX,
                        usize::MAX,
                    )
                    .map_err(|e| e.to_string())?,
            );
        }
        candles.push(by_interval);
        ticks.push(
            reader
                .ticks(id, state.tick_head, 0, i64::MAX, usize::MAX)
                .map_err(|e| e.to_string())?,
        );
        open.push(state.candles);
    }
    Ok(Summary {
        products: market
            .catalogue()
            .listings()
            .iter()
            .map(|l| l.symbol.to_string())
            .collect(),
        open,
        offsets: market.offsets().iter().map(|(k, v)| (*k, *v)).collect(),
        candles,
        ticks,
    })
}

/// The candle rules' invariant: every product's candles of every interval, bucket by
/// bucket, are the aggregate of its stored ticks.
fn candles_are_the_aggregate_of_ticks(market: &Market<SimDisk>) -> Result<(), String> {
    let summary = summary(market)?;
    for (id, (ticks, candles)) in summary.ticks.iter().zip(&summary.candles).enumerate() {
        for (interval, stored) in Interval::ALL.iter().zip(candles) {
            let mut buckets: BTreeMap<i64, Candle> = BTreeMap::new();
            for tick in ticks {
                let bucket = interval.bucket(tick.ts);
                buckets
                    .entry(bucket)
                    .and_modify(|c| c.add(tick))
                    .or_insert_with(|| Candle::of(bucket, tick));
            }
            let aggregate: Vec<Candle> = buckets.into_values().collect();
            if *stored != aggregate {
                return Err(format!(
                    "product {id}'s {} candles are not the aggregate of its {} stored ticks \
                     ({} candles, {} buckets)",
                    interval.name(),
                    ticks.len(),
                    stored.len(),
                    aggregate.len()
                ));
            }
        }
    }
    Ok(())
}

/// A seeded feed of three products over two partitions: random walks with gaps in sequence
/// numbers, duplicates of earlier ticks, and late ticks (some beyond the 60 s bound).
struct Feed {
    rng: SplitMix64,
    seq: [u64; 3],
    ts: [i64; 3],
    price: [i64; 3],
    sent: Vec<(usize, Tick)>,
    defined: bool,
}

impl Feed {
    fn new(seed: u64) -> Feed {
        Feed {
            rng: SplitMix64(seed ^ 0xFEED),
            seq: [0; 3],
            ts: [1_764_000_000_000; 3],
            price: [100 * ONE; 3],
            sent: Vec::new(),
            defined: false,
        }
    }

    fn message(&mut self) -> (i32, Vec<FeedItem>) {
        let mut items = Vec::new();
        if !self.defined {
            self.defined = true;
            items.push(FeedItem::Product(ProductDef {
                symbol: symbol(0),
                name: "Apple Inc.".into(),
                currency: symbol_of("USD"),
                tick_size: ONE / 100,
            }));
        }
        let p = self.rng.below(3) as usize;
        for _ in 0..1 + self.rng.below(5) {
            if !self.sent.is_empty() && self.rng.chance(10) {
                let (q, tick) = self.sent[self.rng.below(self.sent.len() as u64) as usize];
                items.push(FeedItem::Tick {
                    symbol: symbol(q),
                    tick,
                });
                continue;
            }
            self.seq[p] += 1 + u64::from(self.rng.chance(12));
            self.ts[p] += self.rng.below(40_000) as i64;
            self.price[p] =
                (self.price[p] + (self.rng.below(201) as i64 - 100) * ONE / 100).max(ONE);
            let late = if self.rng.chance(16) {
                self.rng.below(90_000) as i64
            } else {
                0
            };
            let tick = Tick {
                price: self.price[p],
                size: (1 + self.rng.below(500) as i64) * ONE,
                ts: self.ts[p] - late,
                seq: self.seq[p],
                source: Source::Feed,
            };
            self.sent.push((p, tick));
            items.push(FeedItem::Tick {
                symbol: symbol(p),
                tick,
            });
        }
        (self.rng.below(2) as i32, items)
    }
}

fn symbol(p: usize) -> Symbol {
    symbol_of(SYMBOLS[p])
}

#[allow(
    clippy::expect_used,
    reason = "the feed's own symbols, valid by construction"
)]
fn symbol_of(text: &str) -> Symbol {
    Symbol::new(text).expect("a valid symbol")
}
