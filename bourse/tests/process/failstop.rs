//! Fail-stop: a panic in a server thread (here the history's and the market data's, each
//! while it holds its read model's write lock, injected with the `fail` crate's FAILPOINTS)
//! stops `bourse serve` with the cause and exit code 70, and the data directory recovers.

use std::process::{Command as Process, Output};
use std::time::{Duration, Instant};

use crate::BOURSE;

/// The bound on a server that should stop by itself (not a pace: it stops at once).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `bourse serve` on `dir` with `failpoints`, until it exits by itself.
fn serve_until_it_stops(dir: &std::path::Path, failpoints: &str) -> Output {
    let mut child = Process::new(BOURSE)
        .args(["serve", "--feed", "sim", "--liquidity", "false"])
        .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("FAILPOINTS", failpoints)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the server did not stop by itself:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::yield_now();
    }
    child.wait_with_output().unwrap()
}

fn check_stops_with(failpoints: &str, cause: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = serve_until_it_stops(dir.path(), failpoints);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(70), "{stderr}");
    assert!(
        stderr.contains(&format!("the server stopped: {cause}")),
        "{stderr}"
    );
    // Nothing is lost: the data directory recovers, with the default catalogue the server
    // had journaled before it stopped.
    let recovered = Process::new(BOURSE)
        .args(["recover", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&recovered.stdout);
    assert!(recovered.status.success(), "{report}");
    assert!(report.contains("state: "), "{report}");
    assert!(!report.contains(" 0 products"), "{report}");
}

#[test]
fn a_panic_in_the_history_thread_stops_the_server_with_the_cause_and_exit_code_70() {
    check_stops_with("history::fold=panic", "the history thread panicked");
}

#[test]
fn a_panic_in_the_market_data_thread_stops_the_server_with_the_cause_and_exit_code_70() {
    // After 50 messages: the simulator's first ticks, once the server runs.
    check_stops_with(
        "market::ingest=50*off->panic",
        "the market-data thread panicked",
    );
}
