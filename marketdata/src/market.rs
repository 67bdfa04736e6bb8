//! [`Market`]: the state of market data (catalogue, open candles, duplicate windows, chain
//! heads, consumed offsets) over its logs, fed message by message.
//!
//! # Exactly once
//! Every feed message that adds anything becomes one record of the tick log, and that record
//! carries the partition's next offset. The record is the unit of atomicity: after a crash the
//! log holds a message whole or not at all, and the offsets the consumer resumes from are the
//! ones of the last record (or of the checkpoint, which is taken from the same state). So a
//! crash between any two steps neither loses a tick nor counts one twice: replaying the log
//! rebuilds exactly the state that wrote it. (viabtc's market-price service saves candles
//! and offsets separately, and a crash between the two saves double-counts.)
//!
//! # Recovery
//! A checkpoint (every `checkpoint_ticks` ticks, or every as many ticks as there are products
//! if that is more, and at shutdown) syncs the logs, then writes
//! the whole state atomically with the tick log's next sequence number. Opening loads it and
//! replays the tick log's records after it, re-deriving candles; the candle records that were
//! written after the checkpoint are written again (the old copies are unreachable: chains
//! only follow heads). A restart therefore re-reads neither the topic nor the whole log.
//!
//! # Failures
//! An error of [`Market::ingest`] or [`Market::checkpoint`] stops the market: both answer
//! [`MarketError::Failed`] from then on, so neither a half-applied message nor anything
//! after a failed sync is ever written into a checkpoint. Reopening recovers from the logs.
//! The logs' I/O goes through the journal crate's [`Storage`] seam
//! ([`Market::open_with_storage`]), which is how the tests inject a full disk and failed
//! syncs.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bourse_journal::{FsStorage, PrepareNext, Storage};
use rustc_hash::FxHashMap;

use crate::MarketError;
use crate::candle::{Candle, Interval, N_INTERVALS, Refusal, Step};
use crate::catalogue::{Catalogue, Origin};
use crate::checkpoint::{self, ProductState};
use crate::fixed::ONE;
use crate::log::{Log, LogReader, StorageFactory};
use crate::reader::MarketReader;
use crate::record::{self, CANDLE_LEN, Item, Link, SAME_RECORD};
use crate::tick::{FeedItem, ProductDef, Source, Symbol, Tick};

/// How market data is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketConfig {
    /// Directory of the logs and the checkpoint.
    pub dir: PathBuf,
    /// Lateness bound (candle rule 6), ms.
    pub late_ms: i64,
    /// How long ticks are kept, ms of exchange time behind the newest tick.
    pub tick_retention_ms: i64,
    /// How long candles of each interval are kept (`i64::MAX`: for ever).
    pub candle_retention_ms: [i64; N_INTERVALS],
    /// Segment size of the tick log; the candle logs' is derived from it
    /// ([`MarketConfig::candle_segment_size_bytes`]).
    pub segment_size_bytes: u64,
    /// A checkpoint after this many ticks.
    pub checkpoint_ticks: u64,
    /// Currency of a product first seen in a tick (no definition).
    pub default_currency: Symbol,
    /// Tick size of a product first seen in a tick.
    pub default_tick_size: i64,
    /// How each log prepares its next segment: on a background thread (the default), or
    /// when it rolls (`bourse-sim`, which runs in one thread).
    pub prepare_next: PrepareNext,
}

const DAY_MS: i64 = 86_400_000;

impl MarketConfig {
    /// The defaults, in `dir`: late ticks up to 60 s; ticks kept 7 days; 1s candles 1 day,
    /// 1m 30 days, 5m 90 days, 15m 1 year, longer ones for ever; 64 MiB tick segments; a
    /// checkpoint every million ticks; unknown products quoted in USD with a 0.01 tick.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            late_ms: 60_000,
            tick_retention_ms: 7 * DAY_MS,
            candle_retention_ms: [
                DAY_MS,
                30 * DAY_MS,
                90 * DAY_MS,
                365 * DAY_MS,
                i64::MAX,
                i64::MAX,
                i64::MAX,
            ],
            segment_size_bytes: 64 << 20,
            checkpoint_ticks: 1_000_000,
            default_currency: Symbol::USD,
            default_tick_size: ONE / 100,
            prepare_next: PrepareNext::Background,
        }
    }

    /// Segment size of each candle log: an eighth of the tick log's, at least 1 MiB (and at
    /// most the tick log's). Segments are allocated whole when a log starts one, and the
    /// seven candle logs hold far less than the tick log, so at the 64 MiB default a new
    /// market directory takes 64 + 7 x 8 MiB of disk rather than 8 x 64 MiB.
    pub fn candle_segment_size_bytes(&self) -> u64 {
        (self.segment_size_bytes / 8)
            .max(1 << 20)
            .min(self.segment_size_bytes)
    }
}

/// Counts since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Ticks taken.
    pub ticks: u64,
    /// Ticks dropped as duplicates.
    pub duplicates: u64,
    /// Ticks refused as too late.
    pub late: u64,
    /// Products defined (new).
    pub products: u64,
    /// Tick records written.
    pub records: u64,
    /// Candle versions written.
    pub candles_written: u64,
    /// Of those, amendments by late ticks.
    pub amended: u64,
}

/// One feed message (or batch of Bourse trades), with where it ends in its source.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// The source.
    pub source: Source,
    /// The partition (0 for Bourse).
    pub partition: i32,
    /// The partition's offset to resume from after this message.
    pub next_offset: i64,
    /// What it says.
    pub items: &'a [FeedItem],
}

/// What a batch changed, for pushing to clients.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Ticks taken, by product id.
    pub ticks: Vec<(u32, Tick)>,
    /// Products defined or redefined.
    pub products: Vec<u32>,
    /// Stored candles amended by late ticks.
    pub amended: Vec<(u32, Interval, Candle)>,
}

impl Applied {
    /// Empties it (what `Market::ingest` does first).
    pub fn clear(&mut self) {
        self.ticks.clear();
        self.products.clear();
        self.amended.clear();
    }
}

/// The market-data state over its logs. One writer (the ingest thread); readers share it
/// behind a lock and walk the logs with a [`MarketReader`]. `S` is the storage of the logs'
/// segments ([`FsStorage`] unless opened with [`Market::open_with_storage`]).
pub struct Market<S: Storage = FsStorage> {
    config: MarketConfig,
    catalogue: Catalogue,
    states: Vec<ProductState>,
    offsets: BTreeMap<(Source, i32), i64>,
    ticks: Log<S>,
    candles: Vec<Log<S>>,
    candle_readers: Vec<LogReader<S>>,
    newest_ts: i64,
    counters: Counters,
    buf: Vec<u8>,
    in_record: FxHashMap<u32, u32>,
    ticks_since_checkpoint: u64,
    /// Opening found a tick log without its first segments and no checkpoint, and started
    /// the market data over ([`Market::started_over`]).
    started_over: bool,
    failed: bool,
}

impl<S: Storage> std::fmt::Debug for Market<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market")
            .field("config", &self.config)
            .field("products", &self.states.len())
            .field("offsets", &self.offsets)
            .field("ticks", &self.ticks)
            .field("candles", &self.candles)
            .field("newest_ts", &self.newest_ts)
            .field("counters", &self.counters)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn log_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

impl Market {
    /// Opens (or creates) the market data in `config.dir`: loads the checkpoint and replays
    /// the tick log after it. The logs' segments are files in their directories
    /// ([`FsStorage`]).
    pub fn open(config: MarketConfig) -> Result<Self, MarketError> {
        Self::open_with_storage(config, |dir: &Path| FsStorage::new(dir))
    }

    /// Heap bytes of the in-memory state per product, roughly: for the memory benchmark.
    pub fn state_bytes_per_product() -> usize {
        std::mem::size_of::<ProductState>()
    }
}

impl<S: Storage> Market<S> {
    /// Opens (or creates) the market data in `config.dir` as [`Market::open`] does, with the
    /// segments of each log in the storage `make_storage` makes for the log's directory (one
    /// log per candle interval plus the tick log; it is called again for every reader, see
    /// [`Market::reader`]). A test passes a closure that wraps an [`FsStorage`] of the
    /// directory in a [`bourse_journal::FaultyStorage`] to fail preallocations (ENOSPC) and
    /// syncs. The log directories and the checkpoint file stay on the real file system;
    /// [`Market::open`] reopens what the storages wrote there.
    pub fn open_with_storage(
        config: MarketConfig,
        make_storage: impl Fn(&Path) -> io::Result<S> + Send + Sync + 'static,
    ) -> Result<Self, MarketError> {
        let make_storage = StorageFactory::new(make_storage);
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| MarketError::io("create market directory", &config.dir, e))?;
        let image = checkpoint::load(&config.dir)?;
        let mut started_over = false;
        if image.is_none() {
            started_over = start_over_if_headless(&config, &make_storage)?;
        }
        let ticks = Log::open(
            &log_dir(&config.dir, "ticks"),
            config.segment_size_bytes,
            config.tick_retention_ms,
            config.prepare_next,
            &make_storage,
        )?;
        let mut candles = Vec::with_capacity(N_INTERVALS);
        for interval in Interval::ALL {
            candles.push(Log::open(
                &log_dir(&config.dir, &format!("candles-{}", interval.name())),
                config.candle_segment_size_bytes(),
                config.candle_retention_ms[interval.index()],
                config.prepare_next,
                &make_storage,
            )?);
        }
        let candle_readers = candles.iter().map(Log::reader).collect::<Result<_, _>>()?;
        let mut market = Self {
            config,
            catalogue: Catalogue::default(),
            states: Vec::new(),
            offsets: BTreeMap::new(),
            ticks,
            candles,
            candle_readers,
            newest_ts: 0,
            counters: Counters::default(),
            buf: Vec::new(),
            in_record: FxHashMap::default(),
            ticks_since_checkpoint: 0,
            failed: false,
            started_over,
        };
        let replay_from = match image {
            Some(image) => market.restore(image)?,
            None => market.ticks.journal.first_seq(),
        };
        market.ticks.retain_from = Some(replay_from);
        market.replay(replay_from)?;
        let newest = market.newest_ts;
        market.ticks.reconcile(newest);
        for log in &mut market.candles {
            log.reconcile(newest);
        }
        Ok(market)
    }

    fn restore(&mut self, image: checkpoint::Image) -> Result<u64, MarketError> {
        for (def, origin) in image.products.iter().zip(&image.origins) {
            self.catalogue.define(def, *origin)?;
        }
        self.states = image.states;
        self.offsets = image.offsets;
        self.newest_ts = image.newest_ts;
        self.ticks.newest = image.segments[0].clone();
        for (log, segments) in self.candles.iter_mut().zip(&image.segments[1..]) {
            log.newest = segments.clone();
        }
        if image.tick_next < self.ticks.journal.first_seq()
            || image.tick_next > self.ticks.journal.next_seq()
        {
            return Err(MarketError::Checkpoint(format!(
                "the checkpoint covers the tick log up to {} but the log holds {}..{}",
                image.tick_next,
                self.ticks.journal.first_seq(),
                self.ticks.journal.next_seq()
            )));
        }
        Ok(image.tick_next)
    }

    /// Replays tick records from `from` on, a chunk at a time (the reader borrows the log
    /// that candle appends need).
    fn replay(&mut self, mut from: u64) -> Result<(), MarketError> {
        const CHUNK: usize = 4096;
        let mut applied = Applied::default();
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            {
                let mut reader = self.ticks.journal.read_from(from)?;
                while chunk.len() < CHUNK {
                    let Some(record) = reader.next_ref() else {
                        break;
                    };
                    let payload = record?.payload.to_vec();
                    #[allow(
                        clippy::expect_used,
                        reason = "next_ref just returned a record, so the reader has a position"
                    )]
                    let position = reader.position().expect("a record was just read");
                    chunk.push((position, payload));
                }
            }
            if chunk.is_empty() {
                return Ok(());
            }
            from += chunk.len() as u64;
            for (position, payload) in chunk {
                self.replay_record(position, &payload, &mut applied)?;
            }
        }
    }

    fn replay_record(
        &mut self,
        position: bourse_journal::Position,
        payload: &[u8],
        applied: &mut Applied,
    ) -> Result<(), MarketError> {
        let header = record::ticks_header(payload)?;
        let mut newest = i64::MIN;
        for (at, item) in record::items(payload)? {
            match item {
                Item::Product(def) => {
                    self.define_product(&def, origin(header.source, header.partition), applied)?;
                }
                Item::Tick { product, tick, .. } => {
                    if product as usize >= self.states.len() {
                        return Err(record::RecordError("tick of an unknown product").into());
                    }
                    // Taken when it was written, from the same state: it is taken again.
                    if self.take_tick(product, &tick, applied)? {
                        self.states[product as usize].tick_head = Link::at(position, at);
                        newest = newest.max(tick.ts);
                    }
                }
            }
        }
        self.ticks.note(position.segment, newest);
        self.offsets
            .insert((header.source, header.partition), header.next_offset);
        Ok(())
    }

    /// Takes one message: defines products, takes the ticks the rules admit, writes one tick
    /// record with the message's offset, and stores candles that closed or were amended.
    /// After an error the market refuses everything (reopen it to recover from the logs).
    pub fn ingest(&mut self, batch: &Batch<'_>, applied: &mut Applied) -> Result<(), MarketError> {
        if self.failed {
            return Err(MarketError::Failed);
        }
        let result = self.ingest_inner(batch, applied);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn ingest_inner(
        &mut self,
        batch: &Batch<'_>,
        applied: &mut Applied,
    ) -> Result<(), MarketError> {
        applied.clear();
        let mut buf = std::mem::take(&mut self.buf);
        record::begin_ticks(&mut buf, batch.source, batch.partition, batch.next_offset);
        self.in_record.clear();
        let mut newest = i64::MIN;
        let mut n_items = 0;
        for item in batch.items {
            match item {
                FeedItem::Product(def) => {
                    self.define_product(def, origin(batch.source, batch.partition), applied)?;
                    record::push_product(&mut buf, def);
                    n_items += 1;
                }
                FeedItem::Tick { symbol, tick } => {
                    let id = match self.catalogue.id(symbol) {
                        Some(id) => id,
                        None => {
                            let def = ProductDef {
                                symbol: *symbol,
                                name: symbol.as_str().to_string(),
                                currency: self.config.default_currency,
                                tick_size: self.config.default_tick_size,
                            };
                            let from = origin(batch.source, batch.partition);
                            let id = self.define_product(&def, from, applied)?;
                            record::push_product(&mut buf, &def);
                            n_items += 1;
                            id
                        }
                    };
                    if !self.take_tick(id, tick, applied)? {
                        continue;
                    }
                    let prev = match self.in_record.get(&id) {
                        Some(&item) => Link {
                            segment: SAME_RECORD,
                            offset: 0,
                            item,
                        },
                        None => self.states[id as usize].tick_head,
                    };
                    let at = record::push_tick(&mut buf, id, tick, prev);
                    self.in_record.insert(id, at);
                    newest = newest.max(tick.ts);
                    n_items += 1;
                }
            }
        }
        if n_items > 0 {
            let position = self.ticks.append(&buf, newest, self.newest_ts)?;
            for (&id, &at) in &self.in_record {
                self.states[id as usize].tick_head = Link::at(position, at);
            }
            self.counters.records += 1;
        }
        self.buf = buf;
        self.offsets
            .insert((batch.source, batch.partition), batch.next_offset);
        // A checkpoint costs in proportion to the products: at least as many ticks as there
        // are products between two keeps its cost per tick bounded.
        let every = self.config.checkpoint_ticks.max(self.states.len() as u64);
        if self.ticks_since_checkpoint >= every {
            self.write_checkpoint()?;
        }
        Ok(())
    }

    /// Defines (or redefines) a product in the catalogue; its id.
    fn define_product(
        &mut self,
        def: &ProductDef,
        origin: Origin,
        applied: &mut Applied,
    ) -> Result<u32, MarketError> {
        let (id, new) = self.catalogue.define(def, origin)?;
        if new {
            self.states.push(ProductState::default());
            self.counters.products += 1;
        }
        applied.products.push(id);
        Ok(id)
    }

    /// Candle rules for one tick of product `id`; whether it was taken.
    fn take_tick(
        &mut self,
        id: u32,
        tick: &Tick,
        applied: &mut Applied,
    ) -> Result<bool, MarketError> {
        let state = &mut self.states[id as usize];
        match state.candles.admit(tick, self.config.late_ms) {
            Ok(()) => {}
            Err(Refusal::Duplicate) => {
                self.counters.duplicates += 1;
                return Ok(false);
            }
            Err(Refusal::Late) => {
                self.counters.late += 1;
                return Ok(false);
            }
        }
        let steps = state.candles.apply(tick);
        self.newest_ts = self.newest_ts.max(tick.ts);
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Updated => {}
                Step::Rolled(closed) => self.store_candle(id, i, &closed)?,
                Step::Late(bucket) => {
                    let amended = match self.stored_candle(id, i, bucket)? {
                        Some(mut stored) => {
                            stored.add(tick);
                            stored
                        }
                        None => Candle::of(bucket, tick),
                    };
                    self.store_candle(id, i, &amended)?;
                    self.counters.amended += 1;
                    applied.amended.push((id, Interval::ALL[i], amended));
                }
            }
        }
        self.counters.ticks += 1;
        self.ticks_since_checkpoint += 1;
        applied.ticks.push((id, *tick));
        Ok(true)
    }

    fn store_candle(
        &mut self,
        id: u32,
        interval_idx: usize,
        candle: &Candle,
    ) -> Result<(), MarketError> {
        let head = &mut self.states[id as usize].candle_heads[interval_idx];
        let mut bytes = [0u8; CANDLE_LEN];
        record::write_candle(&mut bytes, id, candle, head.link());
        let position = self.candles[interval_idx].append(&bytes, candle.start, self.newest_ts)?;
        *head = Link::at(position, 0).into();
        self.counters.candles_written += 1;
        Ok(())
    }

    /// The newest stored version of product `id`'s candle of `bucket`, if there is one.
    fn stored_candle(
        &mut self,
        id: u32,
        interval_idx: usize,
        bucket: i64,
    ) -> Result<Option<Candle>, MarketError> {
        let interval = Interval::ALL[interval_idx];
        let stop_before = bucket.saturating_sub(self.config.late_ms + interval.millis());
        let mut link = self.states[id as usize].candle_heads[interval_idx].link();
        let reader = &mut self.candle_readers[interval_idx];
        while !link.is_none() {
            let Some(record) = reader.read(link.position())? else {
                break;
            };
            let (product, candle, prev) = record::read_candle(record.payload)?;
            if product != id {
                return Err(record::RecordError("candle chain crosses products").into());
            }
            if candle.start == bucket {
                return Ok(Some(candle));
            }
            if candle.start < stop_before {
                break;
            }
            link = prev;
        }
        Ok(None)
    }

    /// Syncs the logs, then writes the state with the tick log's next sequence number
    /// (atomically: a crash leaves the old checkpoint or the new one). An error stops the
    /// market, as one of [`Market::ingest`] does: both answer [`MarketError::Failed`] from then
    /// on, so a later sync that happens to succeed never reports durable what a failed one may
    /// have lost, and no checkpoint holds a half-applied message. Reopen to recover from the
    /// logs.
    pub fn checkpoint(&mut self) -> Result<(), MarketError> {
        if self.failed {
            return Err(MarketError::Failed);
        }
        let result = self.write_checkpoint();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn write_checkpoint(&mut self) -> Result<(), MarketError> {
        self.ticks.sync()?;
        for log in &mut self.candles {
            log.sync()?;
        }
        let mut segments = vec![self.ticks.newest.clone()];
        segments.extend(self.candles.iter().map(|l| l.newest.clone()));
        let image = checkpoint::Image {
            products: self
                .catalogue
                .listings()
                .iter()
                .map(|l| ProductDef {
                    symbol: l.symbol,
                    name: l.name.to_string(),
                    currency: self.catalogue.currency(l),
                    tick_size: l.tick_size,
                })
                .collect(),
            origins: self.catalogue.origins().collect(),
            // Lent to the image, not copied (a million products' states are most of a GB).
            states: std::mem::take(&mut self.states),
            offsets: self.offsets.clone(),
            newest_ts: self.newest_ts,
            tick_next: self.ticks.journal.next_seq(),
            segments,
        };
        let saved = checkpoint::save(&self.config.dir, &image);
        self.states = image.states;
        saved?;
        self.ticks.retain_from = Some(image.tick_next);
        self.ticks_since_checkpoint = 0;
        Ok(())
    }

    /// Whether opening started the market data over: there was no checkpoint and the tick
    /// log had lost its first segments (a power loss before the first checkpoint synced the
    /// logs' directories may keep a later segment's name and not an earlier one's; retention
    /// never removes what the checkpoint's replay needs). Every log was emptied and every
    /// offset forgotten, so the feed is read again from its start.
    pub fn started_over(&self) -> bool {
        self.started_over
    }

    /// The offset to resume a partition from (`None`: never read).
    pub fn offset(&self, source: Source, partition: i32) -> Option<i64> {
        self.offsets.get(&(source, partition)).copied()
    }

    /// Every stored offset.
    pub fn offsets(&self) -> &BTreeMap<(Source, i32), i64> {
        &self.offsets
    }

    /// The catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// A product's state.
    pub fn product(&self, id: u32) -> Option<&ProductState> {
        self.states.get(id as usize)
    }

    /// The newest exchange time taken, unix ms (0: none).
    pub fn newest_ts(&self) -> i64 {
        self.newest_ts
    }

    /// Counts since start.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The configuration.
    pub fn config(&self) -> &MarketConfig {
        &self.config
    }

    /// A reader of the tick and candle history, for any thread (each of its logs over a
    /// storage of its own, made as the market's were).
    pub fn reader(&self) -> Result<MarketReader<S>, MarketError> {
        Ok(MarketReader {
            ticks: self.ticks.reader()?,
            candles: self
                .candles
                .iter()
                .map(Log::reader)
                .collect::<Result<_, _>>()?,
            late_ms: self.config.late_ms,
        })
    }
}

/// The origin of products a message of `source`'s `partition` defines.
fn origin(source: Source, partition: i32) -> Origin {
    match source {
        Source::Feed => Origin::Feed(u32::try_from(partition).unwrap_or(0)),
        Source::Bourse => Origin::Bourse,
    }
}

/// With no checkpoint, the tick log must hold its records from the first (see
/// [`Market::started_over`]); if it does not, every log's segments go. Returns whether they
/// did.
fn start_over_if_headless<S: Storage>(
    config: &MarketConfig,
    make_storage: &StorageFactory<S>,
) -> Result<bool, MarketError> {
    let mut dirs = vec![log_dir(&config.dir, "ticks")];
    dirs.extend(
        Interval::ALL
            .iter()
            .map(|interval| log_dir(&config.dir, &format!("candles-{}", interval.name()))),
    );
    let list = |storage: &S, dir: &Path| {
        storage
            .list()
            .map_err(|e| MarketError::io("list log segments", dir, e))
    };
    if !dirs[0].exists() {
        return Ok(false);
    }
    let ticks = make_storage.make(&dirs[0])?;
    if list(&ticks, &dirs[0])?
        .first()
        .is_none_or(|&first| first == 1)
    {
        return Ok(false);
    }
    for dir in dirs.iter().filter(|dir| dir.exists()) {
        let storage = make_storage.make(dir)?;
        for first_seq in list(&storage, dir)? {
            storage
                .remove(first_seq)
                .map_err(|e| MarketError::io("remove log segment", dir, e))?;
        }
    }
    Ok(true)
}
