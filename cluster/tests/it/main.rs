//! The command log against a real broker (tansu on 127.0.0.1; see `bourse_feed::tansu`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bourse_cluster::{
    Guarantees, LogError, LogReader, LogRecord, LogWriter, ReaderConfig, WriterConfig,
    check_position, check_topic, command_topic, create_command_topic, describe_topic, log_bounds,
};
use bourse_feed::tansu::TansuBroker;

/// How long a test waits for readers to see what was appended.
const CATCH_UP: Duration = Duration::from_secs(60);

fn broker_with_log(shard: u16) -> anyhow::Result<(TansuBroker, String)> {
    let broker = TansuBroker::start()?;
    let topic = command_topic("test", shard);
    bourse_feed::create_topic(&broker.brokers(), &topic, 1)?;
    Ok((broker, topic))
}

/// The records a reader has handed over, with their offsets.
type Seen = Arc<Mutex<Vec<(i64, Vec<u8>)>>>;

/// A reader from `from` that keeps every record, and the records so far.
fn collecting_reader(
    brokers: &str,
    topic: &str,
    name: &str,
    from: i64,
) -> anyhow::Result<(LogReader, Seen)> {
    let seen: Seen = Arc::default();
    let reader = {
        let seen = Arc::clone(&seen);
        LogReader::start(
            &ReaderConfig::new(brokers, topic, name),
            from,
            move |record: LogRecord<'_>| {
                seen.lock()
                    .unwrap()
                    .push((record.offset, record.bytes.to_vec()));
            },
        )?
    };
    Ok((reader, seen))
}

/// Waits until `reader` has handed over everything before `end`, or fails with its state.
fn wait_for(reader: &LogReader, end: i64) {
    let deadline = Instant::now() + CATCH_UP;
    while reader.next_offset() < end {
        assert!(reader.failure().is_none(), "{:?}", reader.failure());
        assert!(
            Instant::now() < deadline,
            "the reader is at {} of {end} after {CATCH_UP:?}",
            reader.next_offset()
        );
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

#[test]
fn every_reader_sees_every_append_in_one_order_at_its_acknowledged_offset() -> anyhow::Result<()> {
    let (broker, topic) = broker_with_log(0)?;
    let brokers = broker.brokers();
    const WRITERS: usize = 3;
    const APPENDS: usize = 300;
    // Three writers (three gateways) append at once; each keeps the offsets it was answered.
    let acknowledged: Vec<Vec<(i64, Vec<u8>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let writer = LogWriter::new(&WriterConfig::new(&brokers, &topic)).unwrap();
                scope.spawn(move || {
                    let pending: Vec<_> = (0..APPENDS)
                        .map(|n| {
                            let bytes = format!("writer {w} command {n}").into_bytes();
                            (writer.append(&bytes).unwrap(), bytes)
                        })
                        .collect();
                    pending
                        .into_iter()
                        .map(|(appended, bytes)| (appended.wait().unwrap(), bytes))
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = (WRITERS * APPENDS) as i64;
    let mut offsets: Vec<i64> = acknowledged.iter().flatten().map(|(o, _)| *o).collect();
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..total).collect::<Vec<_>>(),
        "one offset per append"
    );
    for appends in &acknowledged {
        assert!(
            appends.windows(2).all(|p| p[0].0 < p[1].0),
            "one writer's appends keep their order"
        );
    }
    // Three replicas read the log from the start: the same records in the same order, each
    // at the offset its writer was told.
    let readers: Vec<_> = (0..3)
        .map(|r| collecting_reader(&brokers, &topic, &format!("replica-{r}"), 0))
        .collect::<anyhow::Result<_>>()?;
    for (reader, _) in &readers {
        wait_for(reader, total);
    }
    let first = readers[0].1.lock().unwrap().clone();
    assert_eq!(first.len(), total as usize);
    for (_, seen) in &readers[1..] {
        assert_eq!(
            *seen.lock().unwrap(),
            first,
            "every replica reads one order"
        );
    }
    for (offset, bytes) in acknowledged.iter().flatten() {
        assert_eq!(&first[*offset as usize], &(*offset, bytes.clone()));
    }
    for (reader, _) in readers {
        assert_eq!(reader.stop()?, total);
    }
    Ok(())
}

#[test]
fn a_reader_resumes_exactly_at_its_offset() -> anyhow::Result<()> {
    let (broker, topic) = broker_with_log(1)?;
    let brokers = broker.brokers();
    let writer = LogWriter::new(&WriterConfig::new(&brokers, &topic))?;
    // Appends in several batches, so that the resume point falls inside one.
    for n in 0..500 {
        writer.append(format!("{n}").as_bytes())?;
        if n % 97 == 0 {
            writer.append_wait(b"sync")?;
        }
    }
    let last = writer.append_wait(b"last")?;
    let from = 250;
    let (reader, seen) = collecting_reader(&brokers, &topic, "resumer", from)?;
    wait_for(&reader, last + 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first().map(|(o, _)| *o), Some(from));
    assert_eq!(
        seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (from..=last).collect::<Vec<_>>()
    );
    assert_eq!(seen.last().map(|(_, b)| b.as_slice()), Some(&b"last"[..]));
    assert_eq!(reader.stop()?, last + 1);
    Ok(())
}

#[test]
fn an_append_the_broker_cannot_take_fails_within_the_produce_timeout() -> anyhow::Result<()> {
    let (mut broker, topic) = broker_with_log(2)?;
    let mut config = WriterConfig::new(broker.brokers(), &topic);
    config.produce_timeout = Duration::from_secs(2);
    let writer = LogWriter::new(&config)?;
    assert_eq!(writer.append_wait(b"before")?, 0);
    broker.pause()?;
    let started = Instant::now();
    let refused = writer.append_wait(b"during");
    let took = started.elapsed();
    broker.resume()?;
    assert!(
        matches!(refused, Err(LogError::NotAppended(_))),
        "{refused:?}"
    );
    assert!(took < Duration::from_secs(10), "the refusal took {took:?}");
    // The writer works again once the broker is back; the refused append may or may not be
    // in the log (the broker may have taken it before it stopped answering): the caller
    // retries with the command's idempotency key, which the engine deduplicates.
    // The broker may still refuse the producer that timed out (tansu fences it when it asks
    // for a new epoch); an append after that gets a new producer. A gateway answers such a
    // refusal 503 and its client retries; so does this test, a bounded number of times.
    let mut attempts = 0;
    let after = loop {
        attempts += 1;
        match writer.append_wait(b"after") {
            Ok(offset) => break offset,
            Err(LogError::NotAppended(why)) if attempts < 5 => eprintln!("retrying: {why}"),
            Err(other) => return Err(other.into()),
        }
    };
    let (reader, seen) = collecting_reader(&broker.brokers(), &topic, "checker", 0)?;
    wait_for(&reader, after + 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(|(_, b)| b.as_slice()),
        Some(&b"before"[..])
    );
    assert_eq!(seen.last().map(|(_, b)| b.as_slice()), Some(&b"after"[..]));
    reader.stop()?;
    Ok(())
}

/// Appends `bytes`, retrying a refusal a bounded number of times (as a gateway's client
/// retries a 503); the offset it was acknowledged at.
fn append_retrying(writer: &LogWriter, bytes: &[u8]) -> anyhow::Result<i64> {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        match writer.append_wait(bytes) {
            Ok(offset) => return Ok(offset),
            Err(LogError::NotAppended(why)) if Instant::now() < deadline => {
                eprintln!("retrying: {why}");
            }
            Err(other) => return Err(other.into()),
        }
    }
}

#[test]
fn what_was_acknowledged_survives_a_broker_killed_and_restarted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut broker = TansuBroker::start_persistent(dir.path())?;
    let topic = command_topic("test", 3);
    bourse_feed::create_topic(&broker.brokers(), &topic, 1)?;
    let writer = LogWriter::new(&WriterConfig::new(broker.brokers(), &topic))?;
    let mut acknowledged = Vec::new();
    for n in 0..100 {
        let bytes = format!("before {n}").into_bytes();
        acknowledged.push((append_retrying(&writer, &bytes)?, bytes));
    }
    broker.kill_and_restart()?;
    for n in 0..100 {
        let bytes = format!("after {n}").into_bytes();
        acknowledged.push((append_retrying(&writer, &bytes)?, bytes));
    }
    let end = acknowledged.last().map_or(0, |(offset, _)| offset + 1);
    let (reader, seen) = collecting_reader(&broker.brokers(), &topic, "survivor", 0)?;
    wait_for(&reader, end);
    let seen = seen.lock().unwrap().clone();
    // Every acknowledged append is in the log at its offset, in one gap-free order.
    assert_eq!(
        seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..end).collect::<Vec<_>>()
    );
    for (offset, bytes) in &acknowledged {
        assert_eq!(&seen[*offset as usize].1, bytes, "offset {offset}");
    }
    reader.stop()?;
    Ok(())
}

#[test]
fn a_topic_weaker_than_required_is_refused_unless_allowed() -> anyhow::Result<()> {
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    let topic = command_topic("test", 4);
    assert_eq!(describe_topic(&brokers, &topic)?, None);
    let refused = check_topic(&brokers, &topic, &Guarantees::PRODUCTION, true);
    assert!(
        matches!(&refused, Err(LogError::Config(why)) if why.contains("does not exist")),
        "{refused:?}"
    );
    // One broker can hold one copy: the development guarantees.
    let single = Guarantees {
        replication_factor: 1,
        min_insync_replicas: 1,
    };
    create_command_topic(&brokers, &topic, &single, -1)?;
    create_command_topic(&brokers, &topic, &single, -1)?;
    let report = describe_topic(&brokers, &topic)?.expect("the topic exists");
    eprintln!("tansu reports: {report}");
    assert_eq!((report.partitions, report.replication_factor), (1, 1));
    let refused = check_topic(&brokers, &topic, &Guarantees::PRODUCTION, false);
    assert!(
        matches!(&refused, Err(LogError::Config(why)) if why.contains("replication factor 1 is below 3")),
        "{refused:?}"
    );
    assert_eq!(
        check_topic(&brokers, &topic, &Guarantees::PRODUCTION, true)?,
        report
    );
    Ok(())
}

#[test]
fn a_replica_may_resume_only_inside_the_log() -> anyhow::Result<()> {
    let (broker, topic) = broker_with_log(5)?;
    let brokers = broker.brokers();
    assert_eq!(log_bounds(&brokers, &topic)?, (0, 0));
    check_position(&brokers, &topic, 0)?;
    let writer = LogWriter::new(&WriterConfig::new(&brokers, &topic))?;
    for n in 0..5 {
        writer.append_wait(format!("{n}").as_bytes())?;
    }
    assert_eq!(log_bounds(&brokers, &topic)?, (0, 5));
    check_position(&brokers, &topic, 3)?;
    check_position(&brokers, &topic, 5)?;
    // A node that applied more than the log holds is not a replica of this log.
    let refused = check_position(&brokers, &topic, 6);
    assert!(
        matches!(&refused, Err(LogError::Config(why)) if why.contains("ends at 5")),
        "{refused:?}"
    );
    Ok(())
}

/// Three nodes' heartbeats on one members topic: each sees the others, a node stopped is
/// dead to the others after the timeout, and back when it starts again.
#[test]
fn members_see_each_other_and_a_stopped_node_goes_and_comes_back() -> anyhow::Result<()> {
    use bourse_cluster::{Member, Members, MembersConfig, members_topic};
    let broker = TansuBroker::start()?;
    let brokers = broker.brokers();
    let topic = members_topic("test");
    bourse_feed::create_topic(&brokers, &topic, 1)?;
    let member = |node: u16| Member {
        node,
        addr: format!("http://127.0.0.1:{}", 9000 + node),
    };
    let start = |node: u16| {
        Members::start(MembersConfig {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(600),
            ..MembersConfig::new(&brokers, &topic, member(node))
        })
    };
    let ids = |members: &Members| -> Vec<u16> { members.live().iter().map(|m| m.node).collect() };
    let wait = |what: &str, condition: &dyn Fn() -> bool| {
        let deadline = Instant::now() + CATCH_UP;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let one = start(1)?;
    let mut two = Some(start(2)?);
    let three = start(3)?;
    wait("everyone live everywhere", &|| {
        ids(&one) == [1, 2, 3]
            && ids(&three) == [1, 2, 3]
            && two.as_ref().is_some_and(|two| ids(two) == [1, 2, 3])
    });
    assert_eq!(
        one.live()[1],
        member(2),
        "the address travels with the heartbeat"
    );
    if let Some(two) = two.take() {
        two.stop();
    }
    wait("node 2 dead to 1 and 3", &|| {
        ids(&one) == [1, 3] && ids(&three) == [1, 3]
    });
    let two = start(2)?;
    wait("node 2 back", &|| {
        ids(&one) == [1, 2, 3] && ids(&three) == [1, 2, 3] && ids(&two) == [1, 2, 3]
    });
    Ok(())
}
