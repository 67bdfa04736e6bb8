//! Storage faults under load, through the whole server: a full disk (ENOSPC when a segment is
//! preallocated) and a failed sync (EIO), injected with the journal crate's fail points into
//! the real storage of one layer while it works: the command journal and the history log
//! under the embedded load generator, the market data's tick log under the simulator's feed.
//! Each time the server stops by itself with the cause, every command it acknowledged is in
//! the journal byte for byte (or every tick stored before the fault is still served), and a
//! restart recovers and serves again. The history log is never synced, so only a full disk
//! reaches it.
//!
//! The fail points are process-wide, so each fault names the full path of its test's
//! directory (no other server matches it) and the tests of this module take turns.

use std::path::Path;
use std::sync::Mutex;

use bourse_tests::acks::{check_store, read_ack_log};
use bourse_tests::client::eventually;
use bourse_tests::server::Server;

/// One fault configured at a time (the fail points are global).
static FAULTS: Mutex<()> = Mutex::new(());

/// Removes a fail point when dropped (also when the test fails).
struct FailPoint(&'static str);

impl FailPoint {
    fn set(name: &'static str, dir: &Path) -> FailPoint {
        fail::cfg(name, &format!("return({})", dir.display())).unwrap();
        FailPoint(name)
    }
}

impl Drop for FailPoint {
    fn drop(&mut self) {
        fail::remove(self.0);
    }
}

/// Runs the load generator until 5,000 commands are committed, injects `fail_point` into
/// the storage of `layer` (a subdirectory of the data directory), and checks what the module
/// docs say; returns the cause the server stopped with.
fn stops_and_loses_nothing(fail_point: &'static str, layer: &str, settings: &[&str]) -> String {
    let _turn = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let acks = dir.path().join("acks.log");
    let acks_arg = acks.to_str().unwrap();
    let data = dir.path().join("data");
    // A moderate rate: these tests share the disk with the rest of the suite.
    let mut load = vec![
        "--load-rate",
        "5000",
        "--ack-log",
        acks_arg,
        "--segment-size-mib",
        "1",
        "--snapshot-every",
        "0",
    ];
    load.extend_from_slice(settings);
    let mut server = Server::start(&data, &load);
    let handle = server.handle();
    eventually("5,000 commands committed", || {
        server.poll().expect("the server runs");
        (handle.stats().committed_seq >= 5_000).then_some(())
    });
    let fault = FailPoint::set(fail_point, &data.join(layer));
    let cause = eventually("the server to stop by itself", || server.poll().err());
    drop(fault);
    drop(handle);
    // The shutdown after a failure may or may not be clean (a stopped engine answers
    // nothing more); either way nothing acknowledged may be missing.
    drop(server);
    let acked = read_ack_log(&acks);
    assert!(acked.len() >= 2_000, "{} acknowledged", acked.len());
    let (recovered_to, _, _) = check_store(&data, &acked);
    // A restart recovers and serves; the history is rebuilt from the journal if it must be.
    let server = Server::start(&data, &[]);
    assert_eq!(server.report().recovered_seq, recovered_to);
    let summary = server.stop();
    assert!(summary.contains("stopped cleanly"), "{summary}");
    cause.cause
}

#[test]
fn a_full_disk_under_the_journal_stops_the_server_and_loses_nothing_acknowledged() {
    let cause = stops_and_loses_nothing("storage::preallocate", "journal", &[]);
    assert!(cause.contains("the engine stopped"), "{cause}");
    assert!(
        cause.contains("No space left") || cause.contains("os error 28"),
        "{cause}"
    );
}

#[test]
fn a_failed_journal_sync_stops_the_server_and_loses_nothing_acknowledged() {
    let cause = stops_and_loses_nothing("storage::sync", "journal", &[]);
    assert!(cause.contains("the engine stopped"), "{cause}");
    assert!(
        cause.contains("os error 5") || cause.contains("Input/output"),
        "{cause}"
    );
}

#[test]
fn a_full_disk_under_the_history_log_stops_the_server_and_loses_nothing_acknowledged() {
    // Segments of 1 MiB (batches of at most 256 commands fit), so the full disk shows within
    // a second or two; a bus deep enough that the history does not fall behind on a busy
    // machine (which would be no failure of the server, and no test of this one).
    let settings = [
        "--history-segment-mib",
        "1",
        "--batch-max",
        "256",
        "--bus-capacity",
        "1000000",
    ];
    let cause = stops_and_loses_nothing("storage::preallocate", "history", &settings);
    assert!(cause.contains("the history log failed"), "{cause}");
    assert!(
        cause.contains("No space left") || cause.contains("os error 28"),
        "{cause}"
    );
}

/// The newest stored AAPL tick, as the API shows it.
fn newest_tick(addr: &str) -> serde_json::Value {
    let (status, body) =
        bourse_tests::client::http_get(addr, "/api/v1/products/AAPL/ticks?limit=1");
    assert_eq!(status, 200, "{body}");
    let ticks = bourse_tests::client::json(&body);
    ticks[0].clone()
}

/// The embedded simulator feeds the market data (checkpoints and segment rolls often);
/// `fail_point` is injected into the tick log's storage; the server stops by itself, and a
/// restart still holds every tick stored before the fault.
fn market_stops_and_keeps_its_ticks(fail_point: &'static str) -> String {
    let _turn = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let feed = [
        "--sim-rate",
        "5000",
        "--market-checkpoint-ticks",
        "2000",
        "--market-segment-mib",
        "1",
        "--liquidity",
        "false",
    ];
    let mut server = Server::start_with_market(dir.path(), &feed);
    let before = eventually("AAPL ticks stored", || {
        server.poll().expect("the server runs");
        let tick = newest_tick(&server.addr);
        (!tick.is_null()).then_some(tick)
    });
    let fault = FailPoint::set(fail_point, &dir.path().join("market").join("ticks"));
    let cause = eventually("the server to stop by itself", || server.poll().err());
    drop(fault);
    drop(server);
    let server = Server::start(dir.path(), &[]);
    let ts = before["timestamp"].as_i64().unwrap();
    let (status, body) = bourse_tests::client::http_get(
        &server.addr,
        &format!("/api/v1/products/AAPL/ticks?from={ts}&to={ts}&limit=5000"),
    );
    assert_eq!(status, 200, "{body}");
    let kept = bourse_tests::client::json(&body);
    assert!(
        kept.as_array().unwrap().contains(&before),
        "{before} is not in {kept}"
    );
    server.stop();
    cause.cause
}

#[test]
fn a_failed_market_data_sync_stops_the_server_and_keeps_the_stored_ticks() {
    let cause = market_stops_and_keeps_its_ticks("storage::sync");
    assert!(cause.contains("market data stopped"), "{cause}");
    assert!(
        cause.contains("os error 5") || cause.contains("Input/output"),
        "{cause}"
    );
}

#[test]
fn a_full_disk_under_the_market_data_stops_the_server_and_keeps_the_stored_ticks() {
    let cause = market_stops_and_keeps_its_ticks("storage::preallocate");
    assert!(cause.contains("market data stopped"), "{cause}");
    assert!(
        cause.contains("No space left") || cause.contains("os error 28"),
        "{cause}"
    );
}
