//! Faults injected into the logs' storage ([`FaultyStorage`], through
//! [`Market::open_with_storage`]) while thousands of feed messages are taken: a full disk when
//! a log needs a new segment, and a failed sync at a checkpoint. Each comes back as a typed
//! error and stops the market; no checkpoint is written after a failed sync; and reopening
//! the directory with the plain [`FsStorage`] ([`Market::open`]) gives exactly the candles,
//! ticks and offsets of a market that took only the acknowledged messages.

use std::path::Path;

use bourse_journal::{Faults, FaultyStorage, FsStorage};
use bourse_marketdata::tick::{FeedItem, Source};
use bourse_marketdata::{Applied, Batch, Market, MarketConfig, MarketError};

use crate::{config, feed, ingest, summary};

type Faulty = FaultyStorage<FsStorage>;

/// EIO on Linux: what [`FaultyStorage`] fails a sync with. (ENOSPC, what it fails a
/// preallocation with, is checked as [`std::io::ErrorKind::StorageFull`].)
const EIO: i32 = 5;

/// Messages of the feed (each 1 to 5 ticks, some duplicate or late).
const N_MESSAGES: usize = 6_000;
/// Messages taken before the fault is switched on.
const N_BEFORE_FAULT: usize = 3_000;

/// Every log of the market over a [`FaultyStorage`] sharing one set of switches.
fn open_faulty(config: MarketConfig) -> (Market<Faulty>, Faults) {
    let faults = Faults::default();
    let switches = faults.clone();
    let market = Market::open_with_storage(config, move |dir: &Path| {
        Ok(FaultyStorage::new(FsStorage::new(dir)?, switches.clone()))
    })
    .unwrap();
    (market, faults)
}

fn batch(index: usize, partition: i32, items: &[FeedItem]) -> Batch<'_> {
    Batch {
        source: Source::Feed,
        partition,
        next_offset: index as i64 + 1,
        items,
    }
}

/// A market in a directory of its own, on the plain file system, fed messages `..n`.
fn reference(feed: &[(i32, Vec<FeedItem>)], n: usize) -> (tempfile::TempDir, Market) {
    let dir = tempfile::tempdir().unwrap();
    let mut market = Market::open(config(dir.path())).unwrap();
    ingest(&mut market, feed, 0, n);
    (dir, market)
}

/// Reopens the directory of `config` with the plain file system and checks that it took
/// exactly messages `..n` of `feed`, as a market on the plain file system fed just those.
fn assert_reopens_to(config: MarketConfig, feed: &[(i32, Vec<FeedItem>)], n: usize) {
    let mut reopened = Market::open(config).unwrap();
    let (_reference_dir, reference) = reference(feed, n);
    let (got, want) = (summary(&reopened), summary(&reference));
    assert_eq!(got.products, want.products);
    assert_eq!(got.open, want.open);
    assert_eq!(got.candles, want.candles);
    assert_eq!(got.ticks, want.ticks);
    // The offsets too, once a consumer resumed each partition from its stored offset: one
    // lags only over messages that added nothing (they write no record), and taking those
    // again adds nothing either.
    let mut applied = Applied::default();
    for (index, (partition, items)) in feed.iter().enumerate().take(n) {
        if (index as i64) < reopened.offset(Source::Feed, *partition).unwrap_or(0) {
            continue;
        }
        reopened
            .ingest(&batch(index, *partition, items), &mut applied)
            .unwrap();
        assert!(applied.ticks.is_empty(), "message {index} was lost");
        assert!(applied.products.is_empty(), "message {index} was lost");
    }
    assert_eq!(summary(&reopened), want);
}

/// Ingests from message `from` until one fails; returns its index and error.
fn ingest_until_error(
    market: &mut Market<Faulty>,
    feed: &[(i32, Vec<FeedItem>)],
    from: usize,
) -> Option<(usize, MarketError)> {
    let mut applied = Applied::default();
    for (index, (partition, items)) in feed.iter().enumerate().skip(from) {
        if let Err(error) = market.ingest(&batch(index, *partition, items), &mut applied) {
            return Some((index, error));
        }
    }
    None
}

/// After a failure: refused whatever comes, even once the disk behaves again.
fn assert_stopped(market: &mut Market<Faulty>, feed: &[(i32, Vec<FeedItem>)], next: usize) {
    let (partition, items) = &feed[next];
    let result = market.ingest(&batch(next, *partition, items), &mut Applied::default());
    assert!(matches!(result, Err(MarketError::Failed)), "{result:?}");
    assert!(matches!(market.checkpoint(), Err(MarketError::Failed)));
}

#[test]
fn enospc_when_a_log_grows_stops_the_market_and_reopening_keeps_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints every thousand ticks, inside `ingest`.
    let config = MarketConfig {
        checkpoint_ticks: 1_000,
        ..config(dir.path())
    };
    let feed = feed(11, N_MESSAGES);
    let (mut market, faults) = open_faulty(config.clone());
    let mut applied = Applied::default();
    for (index, (partition, items)) in feed.iter().enumerate().take(N_BEFORE_FAULT) {
        market
            .ingest(&batch(index, *partition, items), &mut applied)
            .unwrap();
    }
    let n_segments = std::fs::read_dir(dir.path().join("ticks")).unwrap().count();
    assert!(
        n_segments > 20,
        "the load rolled: {n_segments} tick segments"
    );

    // The disk fills: the spares being prepared fail, then the roll that needs a segment.
    faults.set_preallocate_fails(true);
    let (refused, error) =
        ingest_until_error(&mut market, &feed, N_BEFORE_FAULT).expect("a log met the full disk");
    match &error {
        MarketError::Journal(bourse_journal::Error::Io { action, source, .. }) => {
            assert_eq!(*action, "create segment", "{error}");
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{error}");
        }
        other => panic!("not a journal I/O error: {other:?}"),
    }
    faults.set_preallocate_fails(false);
    assert_stopped(&mut market, &feed, refused + 1);
    drop(market);

    // The refused message wrote no tick record (the failed roll came first): reopening
    // gives exactly the messages before it.
    assert_reopens_to(config, &feed, refused);
}

/// Takes the feed with a checkpoint every 400 messages (explicit, or inside `ingest` every
/// 1,000 ticks when `automatic`), fails syncs before the checkpoint after
/// [`N_BEFORE_FAULT`] messages, and checks what a reopen finds.
fn failed_sync_case(seed: u64, automatic: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = MarketConfig {
        checkpoint_ticks: if automatic { 1_000 } else { u64::MAX },
        ..config(dir.path())
    };
    let feed = feed(seed, N_MESSAGES);
    let (mut market, faults) = open_faulty(config.clone());
    let mut applied = Applied::default();
    let mut n_checkpoints = 0;
    for (index, (partition, items)) in feed.iter().enumerate().take(N_BEFORE_FAULT) {
        market
            .ingest(&batch(index, *partition, items), &mut applied)
            .unwrap();
        if !automatic && (index + 1).is_multiple_of(400) {
            market.checkpoint().unwrap();
            n_checkpoints += 1;
        }
    }
    let checkpoint_path = dir.path().join("market.ckpt");
    let checkpoint = std::fs::read(&checkpoint_path).unwrap();
    assert!(automatic || n_checkpoints == N_BEFORE_FAULT / 400);

    faults.set_sync_fails(true);
    let (error, acknowledged) = if automatic {
        // The next checkpoint inside `ingest` fails. That message's tick record was written
        // before the checkpoint: the message is taken (the stored offsets resume after it).
        let (failed, error) =
            ingest_until_error(&mut market, &feed, N_BEFORE_FAULT).expect("a checkpoint");
        (error, failed + 1)
    } else {
        let n = N_BEFORE_FAULT + 150;
        let mut applied = Applied::default();
        for (index, (partition, items)) in feed.iter().enumerate().take(n).skip(N_BEFORE_FAULT) {
            market
                .ingest(&batch(index, *partition, items), &mut applied)
                .unwrap();
        }
        (market.checkpoint().unwrap_err(), n)
    };
    match &error {
        MarketError::Io { action, source, .. } => {
            assert_eq!(*action, "sync log segment", "{error}");
            assert_eq!(source.raw_os_error(), Some(EIO), "{error}");
        }
        other => panic!("not a sync error: {other:?}"),
    }
    // Syncs work again, but nothing is reported durable any more: no checkpoint is written.
    faults.set_sync_fails(false);
    assert_stopped(&mut market, &feed, acknowledged);
    assert_eq!(std::fs::read(&checkpoint_path).unwrap(), checkpoint);
    drop(market);

    // The checkpoint before the fault plus the logs after it: every acknowledged message
    // (their records reached the page cache, which the reopen reads), nothing else.
    assert_reopens_to(config, &feed, acknowledged);
}

#[test]
fn a_failed_sync_at_a_checkpoint_stops_the_market_and_reopening_keeps_every_acknowledged_message() {
    failed_sync_case(12, false);
}

#[test]
fn a_failed_sync_at_a_checkpoint_inside_ingest_stops_the_market_and_keeps_its_message() {
    failed_sync_case(13, true);
}
