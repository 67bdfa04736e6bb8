//! Measures how many messages per second one `Consumer` delivers from a pre-filled topic.
//!
//! ```text
//! feed_bench [--brokers HOST:PORT] [--messages N] [--size BYTES] [--partitions P]
//! ```
//!
//! Without `--brokers` it starts a tansu broker (memory storage) on loopback. It creates a
//! topic, pre-fills it with N keyed messages of BYTES bytes (timing the producer too), then for
//! each consumer setting reads the whole topic from the earliest offset and reports messages/s,
//! MB/s and the CPU the bench process spent (the consumer thread and librdkafka's threads; the
//! broker is another process).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bourse_feed::tansu::TansuBroker;
use bourse_feed::{
    AssignmentMode, Consumer, ConsumerConfig, FeedMessage, Producer, ProducerConfig, Record,
    TopicCreation, create_topic,
};

/// The longest one consumer run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

struct Args {
    brokers: Option<String>,
    messages: u64,
    size: usize,
    partitions: i32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        brokers: None,
        messages: 1_000_000,
        size: 100,
        partitions: 3,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => args.brokers = Some(value()?),
            "--messages" => args.messages = value()?.parse()?,
            "--size" => args.size = value()?.parse()?,
            "--partitions" => args.partitions = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    if args.size < 8 {
        bail!("--size must be at least 8");
    }
    Ok(args)
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer we give, which points to memory
    // we own and sized for it; RUSAGE_SELF is a valid `who`.
    let result = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if result != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage succeeded, so it initialised the struct (it was zeroed before anyway).
    let usage = unsafe { usage.assume_init() };
    let micros = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// User plus system CPU time of another process (the broker), from `/proc/PID/stat`.
fn process_cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name, which ends at the last ')': state is the first, utime
    // and stime are the 12th and 13th (fields 14 and 15 of proc(5)).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads its integer argument.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_second = u64::try_from(ticks_per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

fn prefill(brokers: &str, topic: &str, args: &Args) -> anyhow::Result<()> {
    let producer = Producer::new(
        &ProducerConfig::new(brokers)
            .property("linger.ms", "20")
            .property("batch.num.messages", "10000")
            .property("batch.size", "1000000")
            .property("queue.buffering.max.messages", "1000000"),
    )?;
    let mut payload = vec![b'.'; args.size];
    let started = Instant::now();
    for index in 0..args.messages {
        payload[..8].copy_from_slice(&index.to_le_bytes());
        let key = format!("SYM{:02}", index % 50);
        let record = Record::keyed(topic, key.as_bytes(), &payload);
        producer.send_blocking(&record, RUN_TIMEOUT)?;
    }
    producer.flush(RUN_TIMEOUT)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "prefill: {} messages of {} bytes in {:.2} s = {:.0} messages/s",
        args.messages,
        args.size,
        seconds,
        args.messages as f64 / seconds
    );
    Ok(())
}

struct Scenario {
    name: &'static str,
    fetch_wait_max_ms: u64,
    batch_messages_max: usize,
    properties: &'static [(&'static str, &'static str)],
}

/// Larger fetches and local queue, for the scenarios that add them.
const BIG_FETCHES: &[(&str, &str)] = &[
    ("queued.min.messages", "1000000"),
    ("queued.max.messages.kbytes", "1048576"),
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "8388608"),
];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "librdkafka defaults (fetch.wait.max.ms=500)",
        fetch_wait_max_ms: 500,
        batch_messages_max: 1024,
        properties: &[],
    },
    Scenario {
        name: "fetch.wait.max.ms=100 fetch.min.bytes=1MB",
        fetch_wait_max_ms: 100,
        batch_messages_max: 1024,
        properties: &[("fetch.min.bytes", "1048576")],
    },
    Scenario {
        name: "fetch.wait.max.ms=10",
        fetch_wait_max_ms: 10,
        batch_messages_max: 1024,
        properties: &[],
    },
    Scenario {
        name: "fetch.wait.max.ms=10, loop batch 1",
        fetch_wait_max_ms: 10,
        batch_messages_max: 1,
        properties: &[],
    },
    Scenario {
        name: "fetch.wait.max.ms=10 + big fetches/queue",
        fetch_wait_max_ms: 10,
        batch_messages_max: 4096,
        properties: BIG_FETCHES,
    },
    Scenario {
        name: "fetch.wait.max.ms=1 + big fetches/queue",
        fetch_wait_max_ms: 1,
        batch_messages_max: 4096,
        properties: BIG_FETCHES,
    },
];

fn consume(
    brokers: &str,
    topic: &str,
    args: &Args,
    scenario: &Scenario,
    broker_pid: Option<u32>,
) -> anyhow::Result<()> {
    let mut config = ConsumerConfig::new(brokers, topic, format!("bench-{}", std::process::id()));
    config.assignment = AssignmentMode::AllPartitions;
    config.batch_messages_max = scenario.batch_messages_max;
    config.fetch_wait_max = Duration::from_millis(scenario.fetch_wait_max_ms);
    config.commit_interval = None;
    for (key, value) in scenario.properties {
        config.properties.push(((*key).into(), (*value).into()));
    }
    // The handler touches every payload (a checksum) so the work is not optimised away.
    let first_message_ns = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handler = {
        let first_message_ns = first_message_ns.clone();
        let mut checksum = 0u64;
        let mut seen = 0u64;
        move |message: FeedMessage<'_>| {
            if seen == 0 {
                let since_start = started.elapsed().as_nanos();
                first_message_ns.store(since_start as u64, Ordering::Relaxed);
            }
            seen += 1;
            let mut head = [0u8; 8];
            head.copy_from_slice(&message.payload[..8]);
            checksum = std::hint::black_box(checksum.wrapping_add(u64::from_le_bytes(head)));
        }
    };
    let cpu_before = cpu_time();
    let broker_cpu_before = process_cpu_time(broker_pid);
    let consumer = Consumer::start(config, |_| None, handler)?;
    let stats = Arc::clone(consumer.stats());
    let deadline = started + RUN_TIMEOUT;
    // Bounded polling of the counter; the measurement ends when the last message is handed over.
    while stats.messages() < args.messages {
        if Instant::now() >= deadline {
            bail!("{}: only {} messages", scenario.name, stats.messages());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let broker_cpu = match (process_cpu_time(broker_pid), broker_cpu_before) {
        (Some(after), Some(before)) => {
            format!("{:.2} s", after.saturating_sub(before).as_secs_f64())
        }
        _ => "n/a".into(),
    };
    drop(consumer.stop()?);
    let first = Duration::from_nanos(first_message_ns.load(Ordering::Relaxed));
    let steady = elapsed.saturating_sub(first);
    let rate = args.messages as f64 / elapsed.as_secs_f64();
    let steady_rate = args.messages as f64 / steady.as_secs_f64().max(1e-9);
    println!(
        "{:<44} {:>9.0} msg/s {:>6.1} MB/s  (from first message {:>9.0} msg/s)  \
         consumer cpu {:.2} s = {:.0} ns/msg, broker cpu {}",
        scenario.name,
        rate,
        rate * args.size as f64 / 1e6,
        steady_rate,
        cpu.as_secs_f64(),
        cpu.as_nanos() as f64 / args.messages as f64,
        broker_cpu,
    );
    Ok(())
}

/// How long the idle measurement watches a consumer of an empty topic.
const IDLE_WATCH: Duration = Duration::from_secs(5);

/// CPU spent by the consumer and the broker while the consumer waits on an empty topic.
fn idle(brokers: &str, fetch_wait_max_ms: u64, broker_pid: Option<u32>) -> anyhow::Result<()> {
    let topic = format!("idle-{fetch_wait_max_ms}-{}", std::process::id());
    create_topic(brokers, &topic, 3)?;
    let mut config = ConsumerConfig::new(brokers, &topic, format!("idle-{}", std::process::id()));
    config.assignment = AssignmentMode::AllPartitions;
    config.fetch_wait_max = Duration::from_millis(fetch_wait_max_ms);
    let consumer = Consumer::start(config, |_| None, |_: FeedMessage<'_>| {})?;
    let stats = Arc::clone(consumer.stats());
    let deadline = Instant::now() + RUN_TIMEOUT;
    while !stats.broker_reachable() || stats.lags().len() < 3 {
        if Instant::now() >= deadline {
            bail!("the idle consumer never got its partitions");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (cpu_before, broker_before) = (cpu_time(), process_cpu_time(broker_pid));
    // A measurement window, not synchronisation.
    std::thread::sleep(IDLE_WATCH);
    let cpu = cpu_time().saturating_sub(cpu_before);
    let broker = match (process_cpu_time(broker_pid), broker_before) {
        (Some(after), Some(before)) => {
            let share = after.saturating_sub(before).as_secs_f64() / IDLE_WATCH.as_secs_f64();
            format!("{:.1}%", share * 100.0)
        }
        _ => "n/a".into(),
    };
    let _handler = consumer.stop()?;
    println!(
        "idle topic, fetch.wait.max.ms={fetch_wait_max_ms:<4} consumer cpu {:.1}% of a core, broker {broker}",
        cpu.as_secs_f64() / IDLE_WATCH.as_secs_f64() * 100.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let broker = match &args.brokers {
        Some(_) => None,
        None => Some(TansuBroker::start()?),
    };
    let brokers = match (&args.brokers, &broker) {
        (Some(brokers), _) => brokers.clone(),
        (None, Some(broker)) => broker.brokers(),
        (None, None) => bail!("no broker"),
    };
    let topic = format!("bench-{}-{}", args.size, std::process::id());
    if create_topic(&brokers, &topic, args.partitions)? != TopicCreation::Created {
        bail!("topic {topic} existed");
    }
    println!(
        "workload: {} messages of {} bytes, 50 keys, {} partitions, broker {}",
        args.messages,
        args.size,
        args.partitions,
        if broker.is_some() {
            "tansu 0.6.0 (memory, loopback)"
        } else {
            &brokers
        }
    );
    prefill(&brokers, &topic, &args)?;
    for scenario in SCENARIOS {
        consume(
            &brokers,
            &topic,
            &args,
            scenario,
            broker.as_ref().map(TansuBroker::pid),
        )?;
    }
    for fetch_wait_max_ms in [500, 10, 1] {
        idle(
            &brokers,
            fetch_wait_max_ms,
            broker.as_ref().map(TansuBroker::pid),
        )?;
    }
    Ok(())
}
