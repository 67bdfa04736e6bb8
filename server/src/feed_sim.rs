//! `bourse feed-sim --brokers HOST:PORT`: the embedded exchange simulator, publishing to Kafka
//! what `bourse serve` would otherwise feed itself, so the whole path (topic, consumer,
//! history, candles, clients) can be run by hand:
//!
//! ```sh
//! bourse feed-sim --brokers 127.0.0.1:9092 --partitions 3 --rate 1000 &
//! bourse serve --feed kafka --kafka-brokers 127.0.0.1:9092
//! ```
//!
//! It creates the topic when missing, publishes a definition of every product, then ticks
//! (messages keyed by symbol, in the format of `docs/market-data.md`) at `--rate` ticks per
//! second (0: as fast as it can), `--batch` ticks of one product per message, until `--count`
//! ticks were sent (0: until interrupted).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bourse_feed::{Producer, ProducerConfig, Record, create_topic};
use bourse_marketdata::sim::Simulator;
use bourse_marketdata::tick::{self, Tick};
use clap::builder::TypedValueParser as _;

/// `bourse feed-sim`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FeedSimArgs {
    /// The Kafka brokers, HOST:PORT[,HOST:PORT...]
    #[arg(long)]
    pub brokers: String,
    /// The topic of ticks (created when missing)
    #[arg(long, default_value = "ticks")]
    pub topic: String,
    /// The topic's partitions, when it is created
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=4096))]
    pub partitions: i32,
    /// Synthetic products SIM0000001... added to the eight default stocks
    #[arg(long, default_value_t = 0)]
    #[arg(value_parser = clap::value_parser!(u32).range(0..=10_000_000).try_map(usize::try_from))]
    pub products: usize,
    /// Ticks per second (0: as fast as it can)
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Ticks of one product per message
    #[arg(long, default_value_t = 1)]
    #[arg(value_parser = clap::value_parser!(u16).range(1..=10_000).map(usize::from))]
    pub batch: usize,
    /// Stop after this many ticks (0: run until interrupted)
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// The seed of the random walks
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs `bourse feed-sim`.
pub fn main(o: FeedSimArgs) -> Result<()> {
    publish(&o, &std::sync::atomic::AtomicBool::new(false))
}

/// Publishes as `main` does until `stop` is set (or `--count` ticks were sent).
pub fn publish(o: &FeedSimArgs, stop: &std::sync::atomic::AtomicBool) -> Result<()> {
    let created = create_topic(&o.brokers, &o.topic, o.partitions)
        .with_context(|| format!("cannot create the topic {}", o.topic))?;
    tracing::info!("topic {} ({created:?})", o.topic);
    let producer = Producer::new(
        &ProducerConfig::new(&o.brokers)
            .property("linger.ms", "5")
            .property("queue.buffering.max.messages", "1000000"),
    )
    .context("cannot create the producer")?;
    let mut products = crate::catalogue::simulated();
    products.extend(Simulator::synthetic(o.products));
    let mut sim = Simulator::new(products, o.seed);
    let mut payload = Vec::new();
    for p in sim.products() {
        payload.clear();
        tick::write_product(&p.def, &mut payload);
        send(&producer, &o.topic, p.def.symbol.as_bytes(), &payload)?;
    }
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut next = 0usize;
    let mut ticks: Vec<Tick> = Vec::with_capacity(o.batch);
    while (o.count == 0 || sent < o.count) && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let index = next % sim.len();
        next += 1;
        let now = bourse_market_service::unix_ms();
        ticks.clear();
        let n = o
            .batch
            .min(usize::try_from(o.count.saturating_sub(sent)).unwrap_or(usize::MAX));
        let n = if o.count == 0 { o.batch } else { n };
        for _ in 0..n {
            ticks.push(sim.step(index, now));
        }
        let symbol = sim.products()[index].def.symbol;
        payload.clear();
        tick::write_message(symbol, &ticks, &mut payload);
        send(&producer, &o.topic, symbol.as_bytes(), &payload)?;
        sent += n as u64;
        if o.rate > 0 {
            // Pacing: the exchange's clock (not synchronisation).
            let due = Duration::from_secs_f64(sent as f64 / o.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("cannot flush the producer")?;
    tracing::info!(
        "{sent} ticks of {} products in {:.1} s",
        sim.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn send(producer: &Producer, topic: &str, key: &[u8], payload: &[u8]) -> Result<()> {
    let record = Record::keyed(topic, key, payload);
    producer
        .send_blocking(&record, Duration::from_secs(60))
        .context("cannot send to Kafka")
}
