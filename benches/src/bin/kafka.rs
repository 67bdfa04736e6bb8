//! Ticks per second from a pre-filled Kafka topic into tick history and candles, on one
//! consumer (a `bourse_feed::Consumer`: a dedicated thread with rdkafka's BaseConsumer), with
//! where the time goes. The broker is tansu (memory storage) on 127.0.0.1, started here; it
//! shares this machine's two cores with the consumer.
//!
//! The topic (one partition) is filled with `--ticks` ticks of `--products` products, `--batch`
//! ticks a message (the feed's JSON). Then three runs read it all from the start:
//! 1. consume only (the handler counts bytes);
//! 2. consume + parse;
//! 3. consume + parse + `Market::ingest` (tick log, candles, duplicate checks), on the
//!    consumer's thread.
//!
//! `cargo install tansu --version 0.6.0 --features dynostore,libsql --locked` first, then
//! `cargo run --release -p bourse-benches --bin kafka`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bourse_benches::args::{Flags, or_exit};
use bourse_benches::report::fmt_int;
use bourse_feed::tansu::TansuBroker;
use bourse_feed::{
    AssignmentMode, Consumer, ConsumerConfig, FeedMessage, Producer, ProducerConfig, Record,
    create_topic,
};
use bourse_marketdata::fixed::ONE;
use bourse_marketdata::tick::{self, Source, Symbol, Tick};
use bourse_marketdata::{Applied, Batch, Market, MarketConfig};

const USAGE: &str = "usage: kafka [--ticks 2000000] [--products 1000] [--batch 100] [--quick]";
const TOPIC: &str = "ticks";

fn main() {
    let (mut n_ticks, mut products, mut batch) = (2_000_000usize, 1_000usize, 100usize);
    let mut flags = Flags::from_env(USAGE);
    or_exit((|| {
        while let Some(flag) = flags.next_flag()? {
            if flag == "--quick" {
                (n_ticks, products, batch) = (50_000, 50, 100);
                continue;
            }
            let n = flags.value(&flag)?.number()?.max(1) as usize;
            match flag.as_str() {
                "--ticks" => n_ticks = n,
                "--products" => products = n,
                "--batch" => batch = n,
                _ => return Err(flags.unknown(&flag)),
            }
        }
        Ok(())
    })());
    let broker = TansuBroker::start().expect("tansu");
    let brokers = broker.brokers();
    create_topic(&brokers, TOPIC, 1).expect("topic");
    let n_messages = n_ticks / batch;
    let filled = Instant::now();
    fill(&brokers, n_messages, products, batch);
    println!(
        "kafka → market data, {} ({} cores); tansu on 127.0.0.1 shares them",
        bourse_benches::report::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "topic: {} ticks of {products} products, {batch} a message, one partition (filled in {:.1} s)",
        fmt_int((n_messages * batch) as u64),
        filled.elapsed().as_secs_f64()
    );
    let (seconds, ticks) = run_stream(&brokers, n_messages);
    println!(
        "  {:<36} {:>12} ticks/s ({:.0} ns a tick, {:.2} s)",
        "consume only, StreamConsumer (tokio)",
        fmt_int((ticks as f64 / seconds) as u64),
        seconds * 1e9 / ticks as f64,
        seconds
    );
    for stage in [
        "consume only",
        "consume + parse",
        "consume + parse + history/candles",
    ] {
        let (seconds, ticks) = run(&brokers, stage, n_messages);
        println!(
            "  {stage:<36} {:>12} ticks/s ({:.0} ns a tick, {:.2} s)",
            fmt_int((ticks as f64 / seconds) as u64),
            seconds * 1e9 / ticks as f64,
            seconds
        );
    }
}

/// Ticks in a message without parsing it: one `"seq":` per tick.
fn count_ticks(payload: &[u8]) -> u64 {
    payload.windows(6).filter(|w| w == b"\"seq\":").count() as u64
}

/// Consume only, with rdkafka's StreamConsumer on a current-thread tokio runtime: the
/// comparison with the dedicated BaseConsumer thread of `bourse_feed::Consumer`.
fn run_stream(brokers: &str, n_messages: usize) -> (f64, u64) {
    use futures_util::StreamExt;
    use rdkafka::consumer::{Consumer as _, StreamConsumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "bench-stream")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.min.bytes", "1048576")
            .set("queued.min.messages", "100000")
            .create()
            .expect("stream consumer");
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(TOPIC, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&partitions).expect("assign");
        let started = Instant::now();
        let (mut n, mut ticks) = (0, 0);
        let mut stream = consumer.stream();
        while n < n_messages {
            let message = stream.next().await.expect("a message").expect("no error");
            ticks += count_ticks(message.payload().unwrap_or(&[]));
            n += 1;
        }
        (started.elapsed().as_secs_f64(), ticks)
    })
}

fn fill(brokers: &str, n_messages: usize, products: usize, batch: usize) {
    let producer = Producer::new(
        &ProducerConfig::new(brokers)
            .property("linger.ms", "20")
            .property("batch.num.messages", "10000")
            .property("queue.buffering.max.messages", "1000000"),
    )
    .expect("producer");
    let mut seq = vec![0u64; products];
    let mut payload = Vec::new();
    for m in 0..n_messages {
        let p = m % products;
        let ticks: Vec<Tick> = (0..batch)
            .map(|k| {
                seq[p] += 1;
                Tick {
                    price: 100 * ONE + ((m + k) % 500) as i64 * (ONE / 100),
                    size: (1 + (k % 50) as i64) * ONE,
                    ts: 1_764_000_000_000 + m as i64,
                    seq: seq[p],
                    source: Source::Feed,
                }
            })
            .collect();
        let symbol = Symbol::new(&format!("P{p:06}")).expect("valid");
        payload.clear();
        tick::write_message(symbol, &ticks, &mut payload);
        producer
            .send_blocking(
                &Record::keyed(TOPIC, symbol.as_bytes(), &payload),
                Duration::from_secs(60),
            )
            .expect("send");
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// Reads the whole topic from the start; returns the seconds from start to the last message
/// and the ticks seen.
fn run(brokers: &str, stage: &'static str, n_messages: usize) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut market = Market::open(MarketConfig {
        checkpoint_ticks: u64::MAX,
        ..MarketConfig::new(dir.path())
    })
    .expect("market");
    let seen = Arc::new(AtomicU64::new(0));
    let ticks = Arc::new(AtomicU64::new(0));
    let handler = {
        let (seen, ticks) = (Arc::clone(&seen), Arc::clone(&ticks));
        let mut items = Vec::new();
        let mut applied = Applied::default();
        move |message: FeedMessage<'_>| {
            match stage {
                "consume only" => {
                    ticks.fetch_add(count_ticks(message.payload), Ordering::Relaxed);
                }
                _ => {
                    items.clear();
                    tick::parse_message(message.payload, &mut items).expect("valid");
                    ticks.fetch_add(items.len() as u64, Ordering::Relaxed);
                    if stage.ends_with("candles") {
                        let batch = Batch {
                            source: Source::Feed,
                            partition: message.partition,
                            next_offset: message.offset + 1,
                            items: &items,
                        };
                        market.ingest(&batch, &mut applied).expect("ingest");
                    }
                }
            }
            seen.fetch_add(1, Ordering::Release);
        }
    };
    let mut config = ConsumerConfig::new(brokers, TOPIC, format!("bench-{}", stage.len()))
        .property("fetch.min.bytes", "1048576")
        .property("fetch.wait.max.ms", "10")
        .property("queued.min.messages", "100000");
    config.assignment = AssignmentMode::AllPartitions;
    config.statistics_interval = Duration::ZERO;
    config.commit_interval = None;
    let started = Instant::now();
    let consumer = Consumer::start(config, |_| None, handler).expect("consumer");
    // Waits for the consumer thread to have handled every message (bounded).
    let deadline = started + Duration::from_secs(600);
    while seen.load(Ordering::Acquire) < n_messages as u64 {
        assert!(
            Instant::now() < deadline,
            "the consumer stalled at {}",
            seen.load(Ordering::Acquire)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(consumer);
    (seconds, ticks.load(Ordering::Relaxed))
}
