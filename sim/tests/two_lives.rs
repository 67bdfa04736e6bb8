//! A journal that is never synced (the history's and the market data's logs) on the simulated
//! disk: what open cuts after a crash must stay cut, or a second crash brings the cut records
//! back behind the ones written after the cut, two lives of the log in one. The simulator's
//! market data found it (the market resumed past the messages it had taken).

use bourse_journal::{Durability, Journal, JournalConfig, PrepareNext, RecoveryMode};
use bourse_sim::disk::{Faults, SimDisk};

fn config() -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 64 << 10,
        durability: Durability::None,
        recovery: RecoveryMode::Repair,
        prepare_next: PrepareNext::Manual,
        ..JournalConfig::default()
    }
}

/// The payload of record `seq` of life `life`: 300 bytes, so that records span sectors.
fn payload(life: u8, seq: u64) -> Vec<u8> {
    let mut bytes = vec![life; 300];
    bytes[..8].copy_from_slice(&seq.to_le_bytes());
    bytes
}

#[test]
fn a_cut_stays_cut_across_the_next_crash() {
    let mut mixed = Vec::new();
    let mut cuts = 0;
    for seed in 0..300 {
        let disk = SimDisk::new(
            seed,
            Faults {
                torn_any_order: true,
                ..Faults::default()
            },
        );
        // Life A: 40 records, nothing synced; the crash keeps some of its sectors, in any order.
        let mut journal = Journal::open(disk.clone(), config()).unwrap();
        for seq in 1..=40 {
            journal.append(seq, &payload(b'A', seq)).unwrap();
        }
        drop(journal);
        disk.crash();
        // Life B: open cuts what the crash tore, then writes its own records after the cut.
        let mut journal = Journal::open(disk.clone(), config()).unwrap();
        let report = journal.recovery_report();
        cuts += u64::from(report.torn_tail.is_some() || report.repair.is_some());
        let from = journal.next_seq();
        for seq in from..from + 5 {
            journal.append(seq, &payload(b'B', seq)).unwrap();
        }
        drop(journal);
        disk.crash();
        // Whatever the second crash kept, the log is one life: no A record after a B one.
        let journal = Journal::open(disk.clone(), config()).unwrap();
        let lives: Vec<u8> = journal
            .read_from(1)
            .unwrap()
            .map(|record| record.unwrap().payload[8])
            .collect();
        if lives.windows(2).any(|pair| pair == [b'B', b'A']) {
            mixed.push(seed);
        }
    }
    assert!(cuts > 0, "no seed tore life A");
    assert!(
        mixed.is_empty(),
        "two lives in one log with seeds {mixed:?}"
    );
}
