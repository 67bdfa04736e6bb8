//! A broker that stops answering does not kill the consumer; consumption catches up after.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::ensure;

use bourse_feed::tansu::TansuBroker;
use bourse_feed::{AssignmentMode, Consumer, ConsumerConfig};

use crate::support::{
    SharedStore, callbacks, check_exactly_once_in_order, create, lock, produce, wait_until,
};

const BEFORE: u64 = 2_000;
const AFTER: u64 = 3_000;

#[test]
fn consumer_survives_a_paused_broker_and_catches_up() -> anyhow::Result<()> {
    let mut broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create(&brokers, "ticks", 3)?;
    produce(&brokers, "ticks", 0..BEFORE)?;

    let store = SharedStore::default();
    let (offsets, handler) = callbacks(&store);
    let mut config = ConsumerConfig::new(&brokers, "ticks", "outage")
        // Notice a silent broker within seconds rather than librdkafka's default minute.
        .property("socket.timeout.ms", "2000")
        .property("socket.connection.setup.timeout.ms", "2000");
    config.assignment = AssignmentMode::Group;
    config.statistics_interval = Duration::from_millis(200);
    let consumer = Consumer::start(config, offsets, handler)?;
    let stats = Arc::clone(consumer.stats());
    wait_until("the first messages", || stats.messages() == BEFORE)?;
    wait_until("reachable", || stats.broker_reachable())?;
    let errors_before = stats.errors();

    broker.pause()?;
    wait_until("the outage to be noticed", || {
        !stats.broker_reachable() && stats.errors() > errors_before
    })?;
    assert!(stats.running(), "the consumer thread survives the outage");
    assert!(!consumer.is_finished());
    broker.resume()?;

    produce(&brokers, "ticks", BEFORE..BEFORE + AFTER)?;
    wait_until("catching up", || stats.messages() == BEFORE + AFTER)?;
    wait_until("reachable again", || stats.broker_reachable())?;
    drop(consumer.stop()?);
    check_exactly_once_in_order(&lock(&store), BEFORE + AFTER)
}

/// How long `stop` may take while the broker is paused: the loop's poll timeout, the close
/// timeout (1 s here) and slack for a loaded 2-core machine.
const STOP_BOUND: Duration = Duration::from_secs(15);

/// `stop` returns within a bound while the broker does not answer, with monitoring commits on
/// (librdkafka's close waits for them until the coordinator returns).
fn stop_returns_while_paused(mode: AssignmentMode) -> anyhow::Result<()> {
    let mut broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    create(&brokers, "ticks", 3)?;
    produce(&brokers, "ticks", 0..300)?;
    let store = SharedStore::default();
    let (offsets, handler) = callbacks(&store);
    let mut config = ConsumerConfig::new(&brokers, "ticks", "stop-paused");
    config.assignment = mode;
    config.commit_interval = Some(Duration::from_millis(50));
    config.close_timeout = Duration::from_secs(1);
    let consumer = Consumer::start(config, offsets, handler)?;
    let stats = Arc::clone(consumer.stats());
    wait_until("all messages", || stats.messages() == 300)?;

    broker.pause()?;
    let started = Instant::now();
    let (stopped, wait_stopped) = mpsc::channel();
    let stopper = std::thread::spawn(move || {
        let result = consumer.stop().map(drop);
        let _ = stopped.send(());
        result
    });
    let in_time = wait_stopped.recv_timeout(STOP_BOUND).is_ok();
    let took = started.elapsed();
    // Let a stuck stop finish either way, so that the test reports instead of hanging.
    broker.resume()?;
    let joined = stopper.join();
    ensure!(in_time, "stop() blocked while the broker was paused");
    ensure!(took < STOP_BOUND, "stop() took {took:?}");
    joined.map_err(|_| anyhow::anyhow!("the stopping thread panicked"))??;
    assert!(!stats.running());
    check_exactly_once_in_order(&lock(&store), 300)
}

#[test]
fn group_consumer_stops_while_the_broker_is_paused() -> anyhow::Result<()> {
    stop_returns_while_paused(AssignmentMode::Group)
}

#[test]
fn static_consumer_stops_while_the_broker_is_paused() -> anyhow::Result<()> {
    stop_returns_while_paused(AssignmentMode::AllPartitions)
}
