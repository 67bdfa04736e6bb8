//! `bourse serve` as a process: SIGKILL under load loses nothing acknowledged and half-applies
//! nothing; SIGTERM shuts down cleanly with a final snapshot; a taken port and a bad setting
//! fail the start with their exit codes.
//!
//! **The kill test** starts `bourse serve --load-rate 20000 --ack-log -` (durable journal,
//! 1 MiB segments so they roll, a snapshot requested every 500 commands, so at nearly every
//! 100 ms check), reads the acknowledgement lines (`<seq> <crc32c of the journal payload>`),
//! SIGKILLs the server after a random number of them, keeps every line that was already in
//! the pipe (those were acknowledged too), and restarts it on the same directory, several
//! rounds. Each restart must report its recovery (`recovered to seq N`, N at least every seq
//! acknowledged before). At the end the test opens the store itself and checks that every
//! acknowledged command is in the journal, byte for byte (its CRC32C), and that the
//! recovered state equals a single-threaded replay of the whole journal from seq 1: the
//! journal is the state, so nothing unacknowledged can be half-applied.
//!
//! `BOURSE_SERVE_ROUNDS` (default 6) and `BOURSE_SERVE_SEED` make a longer soak.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Command as Process;

use bourse_tests::acks::check_store;
use bourse_tests::workload::SplitMix64;

use crate::{BOURSE, start};

const ROUNDS: u64 = 6;

/// `recovered to seq N in ...` → N.
fn recovered_seq(line: &str) -> u64 {
    line.split("recovered to seq ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sequence number in {line:?}"))
}

/// Adds an acknowledgement; a sequence number is never acknowledged twice.
fn record(acked: &mut BTreeMap<u64, u32>, (seq, crc): (u64, u32)) {
    if let Some(before) = acked.insert(seq, crc) {
        panic!("seq {seq} acknowledged twice (crc {before} then {crc})");
    }
}

fn env_u64(var: &str) -> Option<u64> {
    std::env::var(var)
        .ok()
        .map(|v| v.parse().expect("a number"))
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged() {
    let rounds = env_u64("BOURSE_SERVE_ROUNDS").unwrap_or(ROUNDS);
    let mut rng = SplitMix64(env_u64("BOURSE_SERVE_SEED").unwrap_or(0x5E4E_0005));
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeMap::new();
    let mut from_snapshot = 0;
    for round in 0..rounds {
        let mut server = start(
            dir.path(),
            &[
                "--load-rate",
                "20000",
                "--ack-log",
                "-",
                "--durability",
                "durable",
                "--segment-size-mib",
                "1",
                "--snapshot-every",
                "500",
            ],
        );
        let report = server.wait_for_log("recovered to seq");
        let highest = acked.last_key_value().map_or(0, |(&seq, _)| seq);
        assert!(
            recovered_seq(&report) >= highest,
            "round {round}: {report:?}, but seq {highest} was acknowledged"
        );
        eprintln!("round {round}: {report}");
        from_snapshot += report.contains("snapshot at seq") as u32;
        // Early rounds die in the setup sometimes; later ones mostly in the steady load.
        let kill_after = match round {
            0 => 1 + rng.below(200),
            _ => 500 + rng.below(10_000),
        };
        for _ in 0..kill_after {
            match server.next_ack() {
                Some(ack) => record(&mut acked, ack),
                None => panic!("bourse serve ended early:\n{}", server.rest_of_log()),
            }
        }
        server.child.kill().unwrap();
        // What was in the pipe when it died was acknowledged, too.
        while let Some(ack) = server.next_ack() {
            record(&mut acked, ack);
        }
        let status = server.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: {status}"
        );
    }
    // One more start: recovery succeeds and reports at least everything acknowledged.
    let mut server = start(dir.path(), &[]);
    let report = server.wait_for_log("recovered to seq");
    let highest = *acked.last_key_value().unwrap().0;
    assert!(recovered_seq(&report) >= highest, "{report}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let (last_seq, _, _) = check_store(dir.path(), &acked);
    assert!(
        from_snapshot >= 1,
        "no restart recovered from a snapshot: snapshots are not taken"
    );
    eprintln!(
        "{rounds} SIGKILLs: {} acknowledged commands all present, journal ends at seq {last_seq}, {from_snapshot} restarts from a snapshot",
        acked.len()
    );
}

#[test]
fn sigterm_drains_commits_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(
        dir.path(),
        &[
            "--load-rate",
            "20000",
            "--ack-log",
            "-",
            "--snapshot-every",
            "0",
        ],
    );
    server.wait_for_log("recovered to seq 0 ");
    let mut acked = BTreeMap::new();
    for _ in 0..2_000 {
        let ack = server.next_ack().expect("an acknowledgement");
        record(&mut acked, ack);
    }
    // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped, so the
    // signal reaches no other process.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    while let Some(ack) = server.next_ack() {
        record(&mut acked, ack);
    }
    let status = server.child.wait().unwrap();
    let log = server.rest_of_log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("SIGTERM received: shutting down"), "{log}");
    let summary = log
        .lines()
        .find(|line| line.contains("stopped cleanly at seq "))
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    let last_seq: u64 = summary
        .split("stopped cleanly at seq ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(summary.contains("state hash "), "{summary}");
    assert!(
        summary.contains(&format!("snapshot at seq {last_seq}")),
        "{summary}"
    );
    assert!(
        dir.path()
            .join("snapshots")
            .join(bourse_snapshots::snapshot_file_name(last_seq))
            .exists(),
        "no final snapshot"
    );
    // Everything the load generator sent was answered before the end: the drain is complete.
    assert_eq!(*acked.last_key_value().unwrap().0, last_seq);
    let (recovered_to, replayed, snapshot) = check_store(dir.path(), &acked);
    assert_eq!(recovered_to, last_seq);
    assert_eq!(snapshot, Some(last_seq));
    assert_eq!(replayed, 0, "a clean shutdown leaves nothing to replay");
}

#[test]
fn a_taken_http_port_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Process::new(BOURSE)
        .args(["serve", "--http-addr", &addr, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn a_bad_setting_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Process::new(BOURSE)
        .args(["serve", "--ring-size", "1000", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--ring-size") && stderr.contains("power of two"),
        "{stderr}"
    );

    let output = Process::new(BOURSE)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env("BOURSE_DURABILITY", "fast")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("BOURSE_DURABILITY") && stderr.contains("\"fast\""),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "nothing is created before the settings are good"
    );
}
