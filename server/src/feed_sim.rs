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

use anyhow::{Context, Result, bail};
use bourse_feed::{Producer, ProducerConfig, Record, create_topic};
use bourse_marketdata::sim::Simulator;
use bourse_marketdata::tick::{self, Tick};

const USAGE: &str = "usage: bourse feed-sim --brokers HOST:PORT [--topic ticks] [--partitions 3] \
[--products 0] [--rate 100] [--batch 1] [--count 0] [--seed 1]";

struct Options {
    brokers: String,
    topic: String,
    partitions: i32,
    products: usize,
    rate: u64,
    batch: usize,
    count: u64,
    seed: u64,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        brokers: String::new(),
        topic: "ticks".into(),
        partitions: 3,
        products: 0,
        rate: 100,
        batch: 1,
        count: 0,
        seed: 1,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--brokers" => o.brokers = value.clone(),
            "--topic" => o.topic = value.clone(),
            "--partitions" => o.partitions = i32::try_from(number()?.clamp(1, 4096))?,
            "--products" => o.products = usize::try_from(number()?)?,
            "--rate" => o.rate = number()?,
            "--batch" => o.batch = usize::try_from(number()?.clamp(1, 10_000))?,
            "--count" => o.count = number()?,
            "--seed" => o.seed = number()?,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if o.brokers.is_empty() {
        bail!("--brokers is required\n{USAGE}");
    }
    Ok(o)
}

/// Runs `bourse feed-sim` with the arguments after `feed-sim`.
pub fn main(args: &[String]) -> Result<()> {
    let o = options(args)?;
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
    while o.count == 0 || sent < o.count {
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
