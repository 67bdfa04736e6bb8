//! The service: the ingest thread, the sources, checkpoints and counters.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bourse_marketdata::sim::Simulator;
use bourse_marketdata::tick::{FeedItem, Malformed, ProductDef, Source, Tick};
use bourse_marketdata::{Applied, Batch, Market, MarketConfig};

use crate::unix_ms;

/// Messages waiting for the ingest thread before sources wait.
const INPUT_QUEUE: usize = 4096;
/// Messages applied under one write lock.
const INPUTS_PER_LOCK: usize = 256;

type KafkaConsumer = bourse_feed::Consumer<Box<dyn FnMut(bourse_feed::FeedMessage<'_>) + Send>>;

/// What the ingest thread takes.
#[derive(Debug)]
pub enum Input {
    /// A feed message: its partition, its offset, and what it says (or why not).
    Feed {
        partition: i32,
        offset: i64,
        items: Result<Vec<FeedItem>, Malformed>,
    },
    /// Bourse's trades (or product definitions) up to an engine event.
    Bourse {
        next_event_seq: u64,
        items: Vec<FeedItem>,
    },
    /// Product definitions from Bourse's engine (the offsets stay as they are).
    Define(Vec<ProductDef>),
    /// A checkpoint, answered when written.
    Checkpoint(mpsc::Sender<Result<(), String>>),
    /// Ends the ingest thread (after what was queued before it).
    Stop,
}

/// What the ingest thread tells after each message it applied (the API's fan-out implements
/// it).
pub trait Publisher: Send + 'static {
    /// Called with the market still write-locked, right after a message was applied:
    /// `applied` holds the ticks it added and the stored candles it amended. A subscription
    /// that takes a snapshot under the read lock is followed by exactly what is published
    /// here.
    fn applied(&mut self, market: &Market, applied: &Applied);
}

/// A publisher that tells no one (tools and tests that only need the state).
impl Publisher for () {
    fn applied(&mut self, _: &Market, _: &Applied) {}
}

/// Counters of the ingest thread, for `/metrics`.
#[derive(Debug, Default)]
pub struct MarketStats {
    pub messages: AtomicU64,
    pub malformed: [AtomicU64; Malformed::KINDS.len()],
    logged: Mutex<u32>,
    /// Set once when ingestion stopped for good (an error of the logs, a panic).
    pub failed: OnceLock<String>,
}

impl MarketStats {
    fn malformed(&self, error: &Malformed, partition: i32, offset: i64) {
        let kind = Malformed::KINDS
            .iter()
            .position(|k| *k == error.kind())
            .unwrap_or(0);
        self.malformed[kind].fetch_add(1, Ordering::Relaxed);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if *logged & (1 << kind) == 0 {
            *logged |= 1 << kind;
            tracing::warn!(
                "market data: skipped a malformed message (partition {partition}, offset {offset}): {error} (logged once per kind; /metrics counts them)"
            );
        }
    }
}

/// The market data of a running server.
pub struct MarketService {
    market: Arc<RwLock<Market>>,
    tx: SyncSender<Input>,
    /// The Kafka consumer, when the feed is Kafka.
    kafka: Mutex<Option<KafkaConsumer>>,
    /// Its counters (lag, reachability), for `/metrics`.
    pub kafka_stats: Mutex<Option<Arc<bourse_feed::FeedStats>>>,
    ingest: Mutex<Option<JoinHandle<()>>>,
    stop_sources: Arc<AtomicBool>,
    sources: Mutex<Vec<JoinHandle<()>>>,
    pub stats: Arc<MarketStats>,
}

impl std::fmt::Debug for MarketService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketService").finish_non_exhaustive()
    }
}

impl MarketService {
    /// Opens the market data (checkpoint + replay) and starts the ingest thread.
    pub fn start(config: MarketConfig, publisher: impl Publisher) -> Result<Arc<Self>, String> {
        let dir = config.dir.clone();
        let market =
            Market::open(config).map_err(|e| format!("market data in {}: {e}", dir.display()))?;
        if market.started_over() {
            tracing::warn!(
                "market data in {}: the tick log had lost its first segments and there was no \
                 checkpoint (a power loss): started over, the feed is read again from its start",
                dir.display()
            );
        }
        let market = Arc::new(RwLock::new(market));
        let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
        let stats = Arc::new(MarketStats::default());
        let thread = {
            let market = Arc::clone(&market);
            let stats = Arc::clone(&stats);
            std::thread::Builder::new()
                .name("market-ingest".into())
                .spawn(move || {
                    let ingesting = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        ingest_loop(&market, &rx, publisher, &stats)
                    }));
                    let why = match ingesting {
                        Ok(Ok(())) => return,
                        Ok(Err(why)) => format!("market data stopped: {why}"),
                        Err(panic) => format!(
                            "the market-data thread panicked: {}",
                            bourse_pipeline::panic_message(&*panic)
                        ),
                    };
                    tracing::error!("{why}");
                    let _ = stats.failed.set(why);
                })
                .map_err(|e| format!("cannot start the market-data thread: {e}"))?
        };
        Ok(Arc::new(Self {
            market,
            tx,
            kafka: Mutex::new(None),
            kafka_stats: Mutex::new(None),
            ingest: Mutex::new(Some(thread)),
            stop_sources: Arc::new(AtomicBool::new(false)),
            sources: Mutex::new(Vec::new()),
            stats,
        }))
    }

    /// Reads the market; an error once the market data failed (a panic while applying a
    /// message poisons the lock: a half-applied state is never read).
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Market>, String> {
        if let Some(why) = self.failure() {
            return Err(why.to_string());
        }
        self.market
            .read()
            .map_err(|_| "the market data failed while applying a message".to_string())
    }

    /// Why the market data stopped taking messages (a failed log, a panic); the server stops
    /// then.
    pub fn failure(&self) -> Option<&str> {
        self.stats.failed.get().map(String::as_str)
    }

    /// A sender for sources.
    pub fn sender(&self) -> SyncSender<Input> {
        self.tx.clone()
    }

    /// Keeps a source thread to join at [`MarketService::stop`].
    pub fn add_source(&self, thread: JoinHandle<()>) {
        self.sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(thread);
    }

    /// Starts the embedded exchange simulator over `products` at `rate` ticks per second.
    /// It goes on from the prices and sequence numbers the market data holds.
    pub fn start_simulator(
        &self,
        products: Vec<(ProductDef, i64)>,
        rate: u64,
    ) -> Result<(), String> {
        let mut sim = Simulator::new(products, unix_ms() as u64);
        let mut offset = {
            let market = self.read()?;
            for p in sim.products().to_vec() {
                let Some(id) = market.catalogue().id(&p.def.symbol) else {
                    continue;
                };
                let Some(state) = market.product(id) else {
                    continue;
                };
                let c = state.candles;
                if c.feed.max > 0 {
                    sim.resume(&p.def.symbol, c.open[0].close, c.feed.max, c.newest_ts);
                }
            }
            market.offset(Source::Feed, 0).unwrap_or(0)
        };
        let tx = self.tx.clone();
        let stop = Arc::clone(&self.stop_sources);
        let thread = std::thread::Builder::new()
            .name("feed-sim".into())
            .spawn(move || {
                let definitions: Vec<FeedItem> = sim
                    .products()
                    .iter()
                    .map(|p| FeedItem::Product(p.def.clone()))
                    .collect();
                for chunk in definitions.chunks(1000) {
                    let input = Input::Feed {
                        partition: 0,
                        offset,
                        items: Ok(chunk.to_vec()),
                    };
                    if tx.send(input).is_err() {
                        return;
                    }
                    offset += 1;
                }
                run_simulator(&mut sim, rate, offset, &tx, &stop);
            })
            .map_err(|e| format!("cannot start the simulator: {e}"))?;
        self.add_source(thread);
        Ok(())
    }

    /// The market-data id of a symbol.
    pub fn product_id(&self, symbol: &str) -> Option<u32> {
        let symbol = bourse_marketdata::tick::Symbol::new(symbol)?;
        self.read().ok()?.catalogue().id(&symbol)
    }

    /// Starts the Kafka consumer of `topic`: each partition starts at the offset the market
    /// data stored with its state, every message is parsed on the consumer's thread and
    /// handed to the ingest thread. A malformed message also goes to `dead_letter`, if set.
    /// `assignment` says which partitions: the group coordinator shares them among the
    /// gateways of `group`, this gateway reads every one, or those it is given
    /// ([`MarketService::set_partitions`]: the market-data tier's placement).
    pub fn start_kafka(
        &self,
        brokers: &str,
        topic: &str,
        group: &str,
        assignment: bourse_feed::AssignmentMode,
        dead_letter: Option<String>,
    ) -> Result<(), String> {
        let market = Arc::clone(&self.market);
        let offsets = move |partition: i32| {
            market
                .read()
                .ok()
                .and_then(|m| m.offset(Source::Feed, partition))
        };
        let producer = match &dead_letter {
            Some(_) => Some(
                bourse_feed::Producer::new(&bourse_feed::ProducerConfig::new(brokers))
                    .map_err(|e| format!("cannot create the dead-letter producer: {e}"))?,
            ),
            None => None,
        };
        let tx = self.tx.clone();
        let handler: Box<dyn FnMut(bourse_feed::FeedMessage<'_>) + Send> =
            Box::new(move |message: bourse_feed::FeedMessage<'_>| {
                let mut items = Vec::new();
                let items = bourse_marketdata::tick::parse_message(message.payload, &mut items)
                    .map(|()| items);
                if let (Err(_), Some(producer), Some(topic)) = (&items, &producer, &dead_letter) {
                    let record = bourse_feed::Record {
                        topic,
                        key: message.key,
                        payload: message.payload,
                        partition: None,
                    };
                    // Best effort: the message is counted and skipped either way.
                    let _ = producer.send(&record);
                }
                let input = Input::Feed {
                    partition: message.partition,
                    offset: message.offset,
                    items,
                };
                // Blocks while the ingest thread is behind: back-pressure on the consumer.
                let _ = tx.send(input);
            });
        let mut config = bourse_feed::ConsumerConfig::new(brokers, topic, group);
        config.assignment = assignment;
        let consumer = bourse_feed::Consumer::start(config, offsets, handler)
            .map_err(|e| format!("cannot start the Kafka consumer: {e}"))?;
        *self.kafka_stats.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::clone(consumer.stats()));
        *self.kafka.lock().unwrap_or_else(|e| e.into_inner()) = Some(consumer);
        Ok(())
    }

    /// [`bourse_feed::AssignmentMode::Given`]: read exactly these partitions from now on,
    /// each from the offset stored with the market data's state (see
    /// `bourse_feed::Consumer::set_partitions`).
    pub fn set_partitions(&self, partitions: &[i32]) {
        if let Some(consumer) = self
            .kafka
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            consumer.set_partitions(partitions.iter().copied());
        }
    }

    /// The Kafka consumer's lag on each partition it reads (empty without one).
    pub fn partition_lags(&self) -> Vec<bourse_feed::PartitionLag> {
        self.kafka_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|stats| stats.lags())
            .unwrap_or_default()
    }

    /// Stops the sources, then the ingest thread after a last checkpoint.
    pub fn stop(&self) -> Result<(), String> {
        if let Some(consumer) = self.kafka.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = consumer.stop();
        }
        self.stop_sources.store(true, Ordering::Release);
        let sources: Vec<_> =
            std::mem::take(&mut *self.sources.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in sources {
            let _ = thread.join();
        }
        let result = self.checkpoint();
        // Everything queued before the stop is applied first; the thread then ends and lets
        // go of the logs, so the directory can be opened again in this process.
        if self.tx.send(Input::Stop).is_ok()
            && let Some(thread) = self.ingest.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = thread.join();
        }
        result
    }

    /// Writes a checkpoint (through the ingest thread, after what is queued).
    pub fn checkpoint(&self) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Input::Checkpoint(tx))
            .map_err(|_| "the market-data thread has stopped".to_string())?;
        rx.recv()
            .map_err(|_| "the market-data thread has stopped".to_string())?
    }
}

fn run_simulator(
    sim: &mut Simulator,
    rate: u64,
    mut offset: i64,
    tx: &SyncSender<Input>,
    stop: &AtomicBool,
) {
    if sim.is_empty() || rate == 0 {
        return;
    }
    // Ticks go out every 10 ms (or slower for low rates), spread over the products in turn.
    let period = Duration::from_millis(10).max(Duration::from_secs(1) / rate.min(100) as u32);
    let per_period = (rate as f64 * period.as_secs_f64()).max(1.0) as usize;
    let started = std::time::Instant::now();
    let mut next = 0usize;
    let mut n_periods: u32 = 0;
    while !stop.load(Ordering::Acquire) {
        let now = unix_ms();
        let mut by_product: Vec<(usize, Vec<Tick>)> = Vec::new();
        for _ in 0..per_period {
            let index = next % sim.len();
            next += 1;
            let tick = sim.step(index, now);
            match by_product.iter_mut().find(|(i, _)| *i == index) {
                Some((_, ticks)) => ticks.push(tick),
                None => by_product.push((index, vec![tick])),
            }
        }
        for (index, ticks) in by_product {
            let symbol = sim.products()[index].def.symbol;
            let items = ticks
                .into_iter()
                .map(|tick| FeedItem::Tick { symbol, tick })
                .collect();
            if tx
                .send(Input::Feed {
                    partition: 0,
                    offset,
                    items: Ok(items),
                })
                .is_err()
            {
                return;
            }
            offset += 1;
        }
        n_periods += 1;
        // Paces the generator (this is the exchange's clock, not synchronisation).
        let due = period * n_periods;
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// The ingest thread's work: applies every message until [`Input::Stop`] or the last sender
/// is gone. An error says why the market data cannot go on.
fn ingest_loop(
    market: &RwLock<Market>,
    rx: &Receiver<Input>,
    mut publisher: impl Publisher,
    stats: &MarketStats,
) -> Result<(), String> {
    let mut applied = Applied::default();
    while let Ok(first) = rx.recv() {
        let mut guard = market
            .write()
            .map_err(|_| "the market data's lock is poisoned".to_string())?;
        let mut next = Some(first);
        let mut n_applied = 0;
        while let Some(input) = next {
            if matches!(input, Input::Stop) {
                return Ok(());
            }
            apply(&mut guard, input, &mut applied, stats)?;
            fail::fail_point!("market::ingest");
            publisher.applied(&guard, &applied);
            n_applied += 1;
            next = if n_applied < INPUTS_PER_LOCK {
                rx.try_recv().ok()
            } else {
                None
            };
        }
    }
    Ok(())
}

fn apply(
    market: &mut Market,
    input: Input,
    applied: &mut Applied,
    stats: &MarketStats,
) -> Result<(), String> {
    let (source, partition, next_offset, items) = match input {
        // The loop ends on it before applying anything.
        Input::Stop => return Ok(()),
        Input::Checkpoint(answer) => {
            let _ = answer.send(market.checkpoint().map_err(|e| e.to_string()));
            applied.clear();
            return Ok(());
        }
        Input::Feed {
            partition, offset, ..
        } if market
            .offset(Source::Feed, partition)
            .is_some_and(|next| offset < next) =>
        {
            // Taken already (read again after a rebalance while it was queued): once only.
            applied.clear();
            return Ok(());
        }
        Input::Feed {
            partition,
            offset,
            items,
        } => {
            stats.messages.fetch_add(1, Ordering::Relaxed);
            let items = items.unwrap_or_else(|error| {
                stats.malformed(&error, partition, offset);
                Vec::new()
            });
            (Source::Feed, partition, offset + 1, items)
        }
        Input::Bourse {
            next_event_seq,
            items,
        } => (Source::Bourse, 0, next_event_seq as i64, items),
        Input::Define(defs) => {
            let next = market.offset(Source::Bourse, 0).unwrap_or(0);
            (
                Source::Bourse,
                0,
                next,
                defs.into_iter().map(FeedItem::Product).collect(),
            )
        }
    };
    let batch = Batch {
        source,
        partition,
        next_offset,
        items: &items,
    };
    market.ingest(&batch, applied).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publisher with a bug: it panics while the market is write-locked.
    struct PanicsWhileLocked;

    impl Publisher for PanicsWhileLocked {
        fn applied(&mut self, _: &Market, _: &Applied) {
            panic!("a bug in the publisher");
        }
    }

    #[test]
    fn a_panic_while_applying_stops_the_market_data_and_the_state_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let service =
            MarketService::start(MarketConfig::new(dir.path()), PanicsWhileLocked).unwrap();
        assert!(service.read().is_ok());
        assert_eq!(service.failure(), None);
        service.sender().send(Input::Define(Vec::new())).unwrap();
        // The thread catches the panic, records it and ends.
        let thread = service.ingest.lock().unwrap().take().unwrap();
        thread.join().unwrap();
        let failure = service
            .failure()
            .expect("the market data failed")
            .to_string();
        assert!(failure.contains("a bug in the publisher"), "{failure}");
        assert_eq!(service.read().err(), Some(failure));
        assert_eq!(service.product_id("AAPL"), None);
        assert!(
            service.checkpoint().is_err(),
            "nothing takes messages any more"
        );
    }
}
