use super::*;
use bourse_engine::{CardLast4, FundsMethod};
use bourse_journal::PrepareNext;

fn accepted(seq: u64, order: u64, account: u32, qty: i64) -> Entry {
    Entry::Accepted {
        seq,
        ts: 1000 + seq as i64,
        order,
        account,
        product: 1,
        side: SideName::Sell,
        market: false,
        tif: Tif::Gtc,
        price: Some(100),
        qty,
        client_order_id: None,
    }
}

fn fill(seq: u64, maker: (u64, u32), taker: (u64, u32), qty: i64, remaining: (i64, i64)) -> Entry {
    Entry::Fill {
        seq,
        ts: 1000 + seq as i64,
        product: 1,
        maker_order: maker.0,
        taker_order: taker.0,
        maker_account: maker.1,
        taker_account: taker.1,
        taker_side: SideName::Buy,
        price: 100,
        qty,
        notional: 100 * qty,
        maker_fee: qty,
        taker_fee: 2 * qty,
        maker_remaining: remaining.0,
        taker_remaining: remaining.1,
    }
}

#[test]
fn fills_move_orders_to_filled_and_record_both_sides() {
    let mut h = History::default();
    let entries = vec![
        accepted(1, 10, 7, 5),
        Entry::Rested {
            seq: 2,
            ts: 1002,
            order: 10,
            price: 100,
            remaining: 5,
        },
        accepted(3, 11, 8, 3),
        fill(4, (10, 7), (11, 8), 3, (2, 0)),
    ];
    h.fold(3, 4, &entries);
    let maker = h.order(7, 10).unwrap();
    assert_eq!(
        (maker.filled, maker.remaining, maker.status),
        (3, 2, OrderStatus::Open)
    );
    assert_eq!((maker.notional, maker.fees), (300, 3));
    let taker = h.order(8, 11).unwrap();
    assert_eq!(taker.status, OrderStatus::Filled);
    assert_eq!(taker.trades, vec![4]);
    assert!(
        h.order(7, 11).is_none(),
        "another account's order is not visible"
    );
    assert_eq!(h.trades(7, None, 10).items[0].liquidity, Liquidity::Maker);
    assert_eq!(h.trades(8, None, 10).items[0].fee, 6);
    assert_eq!(h.funds(8, None, 10).items[0].kind, FundsKind::Fee);
    assert_eq!(h.orders(7, true, None, 10).items.len(), 1);
    assert_eq!(h.orders(8, false, None, 10).items.len(), 1);
    // Folding the same entries again changes nothing.
    h.fold(3, 4, &entries);
    assert_eq!(h.trades(7, None, 10).items.len(), 1);
    assert_eq!(h.event_seq(), 4);
}

#[test]
fn cancels_and_expiries_close_orders() {
    let mut h = History::default();
    h.fold(
        2,
        4,
        &[
            accepted(1, 1, 7, 5),
            Entry::Cancelled {
                seq: 2,
                ts: 5,
                order: 1,
                remaining: 5,
                reason: EndReason::Expired,
            },
            accepted(3, 2, 7, 5),
            Entry::Cancelled {
                seq: 4,
                ts: 6,
                order: 2,
                remaining: 5,
                reason: EndReason::Requested,
            },
        ],
    );
    let closed = h.orders(7, false, None, 10).items;
    assert_eq!(
        closed.iter().map(|o| (o.id, o.status)).collect::<Vec<_>>(),
        vec![(2, OrderStatus::Cancelled), (1, OrderStatus::Expired)]
    );
    assert!(h.orders(7, true, None, 10).items.is_empty());
}

#[test]
fn funds_entries_keep_their_method_and_old_entries_read_as_unspecified() {
    let card = Entry::Funds {
        seq: 1,
        ts: 1,
        account: 3,
        asset: 1,
        amount: 100,
        withdrawal: false,
        request_id: "r1".into(),
        method: "card".into(),
        card_last4: Some("1111".into()),
    };
    let text = serde_json::to_string(&card).unwrap();
    assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), card);
    // As the log had it before methods were recorded.
    let old: Entry = serde_json::from_str(
            r#"{"k":"funds","seq":2,"ts":2,"account":3,"asset":1,"amount":5,"withdrawal":true,"requestId":"r2"}"#,
        )
        .unwrap();
    let mut h = History::default();
    h.fold(2, 2, &[card, old]);
    let methods: Vec<_> = h
        .funds(3, None, 10)
        .items
        .iter()
        .map(|f| f.method)
        .collect();
    assert_eq!(
        methods,
        vec![
            Some(FundsMethod::Unspecified),
            Some(FundsMethod::Card(CardLast4::new(b"1111").unwrap()))
        ]
    );
}

#[test]
fn pages_are_newest_first_with_a_cursor() {
    let mut h = History::default();
    let entries: Vec<Entry> = (1..=5)
        .map(|i| Entry::Funds {
            seq: i,
            ts: i as i64,
            account: 3,
            asset: 1,
            amount: 100 * i as i64,
            withdrawal: false,
            request_id: format!("r{i}"),
            method: "bank".into(),
            card_last4: None,
        })
        .collect();
    h.fold(5, 5, &entries);
    let first = h.funds(3, None, 2);
    assert_eq!(
        first.items.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![5, 4]
    );
    assert_eq!(first.next, Some(4));
    let second = h.funds(3, first.next, 2);
    assert_eq!(
        second.items.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let last = h.funds(3, second.next, 2);
    assert_eq!(last.items.iter().map(|f| f.id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(last.next, None);
}

#[test]
fn the_log_folds_back_to_the_same_history() {
    let dir = tempfile::tempdir().unwrap();
    let entries = vec![
        accepted(1, 10, 7, 5),
        accepted(2, 11, 8, 3),
        fill(3, (10, 7), (11, 8), 3, (2, 0)),
    ];
    {
        let (mut log, mut h) = HistoryLog::open(dir.path()).unwrap();
        log.append(2, 2, &entries[..2]).unwrap();
        log.append(3, 4, &entries[2..]).unwrap();
        h.fold(3, 4, &entries);
    }
    let (_, h) = HistoryLog::open(dir.path()).unwrap();
    // Event 4 was not kept, but seen.
    assert_eq!((h.event_seq(), h.through_seq()), (4, 3));
    assert_eq!(h.order(7, 10).unwrap().filled, 3);
    assert_eq!(h.trades(8, None, 10).items.len(), 1);
}

/// An observer with a bug: it panics while the model is write-locked.
struct PanicsWhileLocked;

impl Observer for PanicsWhileLocked {
    fn folded(&mut self, _: &History, _: &[Entry]) {
        panic!("a bug in the observer");
    }

    fn released(&mut self, _: &[Entry], _: u64) {}
}

#[test]
fn a_panic_while_folding_stops_the_history_and_the_half_folded_model_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let (log, model) = HistoryLog::open(dir.path()).unwrap();
    let (tx, rx) = tokio::sync::broadcast::channel(8);
    let (handle, thread) =
        HistoryHandle::spawn(model, log, rx, PanicsWhileLocked, std::sync::Arc::default()).unwrap();
    assert_eq!(handle.failure(), None);
    assert!(handle.with_model(|_| ()).is_ok());
    let batch = bourse_pipeline::EventBatch {
        first_seq: 1,
        last_seq: 1,
        events: Vec::new(),
    };
    tx.send(std::sync::Arc::new(batch)).unwrap();
    // The thread catches the panic, records it and ends.
    thread.join().unwrap();
    let failure = handle.failure().expect("the history failed").to_string();
    assert!(failure.contains("a bug in the observer"), "{failure}");
    assert_eq!(handle.with_model(|_| ()), Err(failure.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(handle.read(0, |_| ())), Err(failure));
}

#[test]
fn a_full_disk_stops_the_history_log_and_what_it_wrote_reads_back() {
    use bourse_journal::{Faults, FaultyStorage, FsStorage};
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let storage = FaultyStorage::new(FsStorage::new(dir.path()).unwrap(), faults.clone());
    let (mut log, _) = HistoryLog::open_with_storage(
        dir.path(),
        storage,
        64 << 10,
        bourse_journal::PrepareNext::Background,
    )
    .unwrap();
    // Under load (records of a few entries, several segments), then the disk fills.
    let mut last_ok = 0;
    let mut refused = None;
    for through in 1..=200_000u64 {
        if through == 5_000 {
            faults.set_preallocate_fails(true);
        }
        let entries = [accepted(through, through, 7, 5)];
        match log.append(through, through, &entries) {
            Ok(()) => last_ok = through,
            Err(why) => {
                refused = Some(why);
                break;
            }
        }
    }
    let why = refused.expect("the full disk refused an append");
    assert!(
        why.contains("No space left") || why.contains("os error 28"),
        "{why}"
    );
    assert!(last_ok >= 5_000, "several segments were written first");
    drop(log);
    // Everything appended before the refusal reads back, in order.
    let (_, h) = HistoryLog::open(dir.path()).unwrap();
    assert_eq!((h.through_seq(), h.event_seq()), (last_ok, last_ok));
    assert_eq!(
        h.orders(7, true, None, usize::MAX).items.len() as u64,
        last_ok
    );
}

/// A history log of 64 KiB segments in `dir`, on storage whose faults the returned handle
/// turns on.
fn faulty_log(
    dir: &std::path::Path,
) -> (
    HistoryLog<bourse_journal::FaultyStorage<bourse_journal::FsStorage>>,
    History,
    bourse_journal::Faults,
) {
    use bourse_journal::{Faults, FaultyStorage, FsStorage};
    let faults = Faults::default();
    let storage = FaultyStorage::new(FsStorage::new(dir).unwrap(), faults.clone());
    let (log, model) = HistoryLog::open_with_storage(
        dir,
        storage,
        64 << 10,
        bourse_journal::PrepareNext::Background,
    )
    .unwrap();
    (log, model, faults)
}

#[test]
fn a_failed_history_log_stops_the_history_thread_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let (log, model, faults) = faulty_log(dir.path());
    let (tx, rx) = tokio::sync::broadcast::channel(1 << 16);
    let (handle, thread) =
        HistoryHandle::spawn(model, log, rx, (), std::sync::Arc::default()).unwrap();
    faults.set_preallocate_fails(true);
    // Batches until the log needs a new segment, which the full disk refuses.
    for through in 1..=60_000u64 {
        let batch = bourse_pipeline::EventBatch {
            first_seq: through,
            last_seq: through,
            events: Vec::new(),
        };
        if tx.send(std::sync::Arc::new(batch)).is_err() {
            break; // the thread has ended
        }
    }
    drop(tx);
    thread.join().unwrap();
    let failure = handle.failure().expect("the history failed").to_string();
    assert!(failure.starts_with("the history log failed"), "{failure}");
    assert!(handle.with_model(|_| ()).is_err());
}

/// The thread syncs its log as it goes and when the bus closes, and raises the journal's
/// retention floor to what the log holds durably; a failed sync stops it with the cause.
#[test]
fn the_history_thread_syncs_its_log_and_raises_the_retention_floor() {
    use std::sync::atomic::{AtomicU64, Ordering};
    for failing in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (log, model, faults) = faulty_log(dir.path());
        let durable = std::sync::Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::broadcast::channel(1 << 10);
        let (handle, thread) =
            HistoryHandle::spawn(model, log, rx, (), std::sync::Arc::clone(&durable)).unwrap();
        faults.set_sync_fails(failing);
        let send = |through: u64| {
            let batch = bourse_pipeline::EventBatch {
                first_seq: through,
                last_seq: through,
                events: Vec::new(),
            };
            tx.send(std::sync::Arc::new(batch)).is_ok()
        };
        for through in 1..=100u64 {
            send(through);
        }
        let mut last = 100;
        if !failing {
            // Batches go on (paced, so the thread keeps up with the bus) until a sync on the
            // sync thread has raised the floor: it covers at least the first hundred.
            while durable.load(Ordering::Acquire) == 0 && last < 100_000 {
                last += 1;
                send(last);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(
                durable.load(Ordering::Acquire) >= 100,
                "no sync in {last} batches"
            );
        }
        drop(tx);
        thread.join().unwrap();
        if failing {
            let failure = handle.failure().expect("the history failed").to_string();
            assert!(failure.contains("cannot sync the history log"), "{failure}");
            assert_eq!(durable.load(Ordering::Acquire), 0);
        } else {
            assert_eq!(handle.failure(), None);
            // At the end everything is synced.
            assert_eq!(durable.load(Ordering::Acquire), last);
        }
    }
}

/// An observer that holds the thread in its first batch until told to go on.
struct Blocks(std::sync::mpsc::Receiver<()>);

impl Observer for Blocks {
    fn folded(&mut self, _: &History, _: &[Entry]) {
        let _ = self.0.recv();
    }

    fn released(&mut self, _: &[Entry], _: u64) {}
}

#[test]
fn falling_behind_the_bus_makes_the_history_unavailable_but_is_no_failure_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (log, model) = HistoryLog::open(dir.path()).unwrap();
    let (tx, rx) = tokio::sync::broadcast::channel(4);
    let (go_on, wait) = std::sync::mpsc::channel();
    let (handle, thread) =
        HistoryHandle::spawn(model, log, rx, Blocks(wait), std::sync::Arc::default()).unwrap();
    let batch = |seq: u64| {
        std::sync::Arc::new(bourse_pipeline::EventBatch {
            first_seq: seq,
            last_seq: seq,
            events: Vec::new(),
        })
    };
    tx.send(batch(1)).unwrap();
    // The thread holds batch 1 in its observer while 20 more overflow the bus of 4.
    for seq in 2..=21 {
        tx.send(batch(seq)).unwrap();
    }
    for _ in 0..21 {
        let _ = go_on.send(());
    }
    thread.join().unwrap();
    assert_eq!(handle.failure(), None, "the server goes on");
    let why = handle.with_model(|_| ()).unwrap_err();
    assert!(why.contains("behind"), "{why}");
}

#[test]
fn a_batch_larger_than_a_segment_is_split_across_records_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let storage = bourse_journal::FsStorage::new(dir.path()).unwrap();
    let (mut log, _) =
        HistoryLog::open_with_storage(dir.path(), storage, 8 << 10, PrepareNext::Manual).unwrap();
    log.append(1, 1, &[accepted(1, 1, 7, 5)]).unwrap();
    // About 250 bytes of JSON each: far more than one 8 KiB segment holds.
    let entries: Vec<Entry> = (2..=400).map(|seq| accepted(seq, seq, 7, 5)).collect();
    log.append(400, 401, &entries).unwrap();
    drop(log);
    let (log, h) = HistoryLog::open(dir.path()).unwrap();
    assert!(!log.started_over);
    assert_eq!((h.through_seq(), h.event_seq()), (400, 401));
    assert_eq!(h.orders(7, true, None, usize::MAX).items.len(), 400);
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(segments > 5, "{segments} segments");
}

/// Between syncs a power loss can keep a later segment's name and not the first one's (as a
/// log written before the log synced at all could too): what is left is not a prefix of the
/// history, and opening starts over.
#[test]
fn a_log_that_lost_its_first_segment_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let storage = bourse_journal::FsStorage::new(dir.path()).unwrap();
    let (mut log, _) =
        HistoryLog::open_with_storage(dir.path(), storage, 8 << 10, PrepareNext::Manual).unwrap();
    for seq in 1..=200 {
        log.append(seq, seq, &[accepted(seq, seq, 7, 5)]).unwrap();
    }
    drop(log);
    std::fs::remove_file(dir.path().join(bourse_journal::segment_file_name(1))).unwrap();
    let (mut log, h) = HistoryLog::open(dir.path()).unwrap();
    assert!(log.started_over);
    assert_eq!((h.through_seq(), h.event_seq()), (0, 0));
    assert!(h.orders(7, true, None, usize::MAX).items.is_empty());
    // It starts over at 1, and what it writes now reads back.
    log.append(1, 1, &[accepted(1, 1, 7, 5)]).unwrap();
    drop(log);
    let (log, h) = HistoryLog::open(dir.path()).unwrap();
    assert!(!log.started_over);
    assert_eq!(h.orders(7, true, None, usize::MAX).items.len(), 1);
}

/// A record that does not follow the one before it (a power loss kept pages or names of two
/// lives of the log) ends the fold: the log starts over and `catch_up` rebuilds it.
#[test]
fn a_record_that_does_not_follow_the_one_before_starts_the_log_over() {
    let dir = tempfile::tempdir().unwrap();
    let storage = bourse_journal::FsStorage::new(dir.path()).unwrap();
    let (mut log, _) =
        HistoryLog::open_with_storage(dir.path(), storage, 8 << 10, PrepareNext::Manual).unwrap();
    for seq in 1..=3 {
        log.append(seq, seq, &[accepted(seq, seq, 7, 5)]).unwrap();
    }
    drop(log);
    // Another life's record: written when its log went up to event 40.
    let config = bourse_journal::JournalConfig {
        segment_size_bytes: 8 << 10,
        durability: bourse_journal::Durability::None,
        prepare_next: PrepareNext::Manual,
        ..bourse_journal::JournalConfig::default()
    };
    let mut journal =
        bourse_journal::Journal::open(bourse_journal::FsStorage::new(dir.path()).unwrap(), config)
            .unwrap();
    let seq = journal.next_seq();
    journal
        .append(
            seq,
            br#"{"through":41,"event_seq":41,"after":40,"entries":[]}"#,
        )
        .unwrap();
    journal.commit().unwrap();
    drop(journal);
    let (log, h) = HistoryLog::open(dir.path()).unwrap();
    assert!(log.started_over);
    assert_eq!((h.through_seq(), h.event_seq()), (0, 0));
    // A log whose records follow each other opens as it is.
    drop(log);
    let (log, _) = HistoryLog::open(dir.path()).unwrap();
    assert!(!log.started_over);
}
