//! The checks of the fuzz targets (`fuzz/fuzz_targets/*.rs`, one line each), as plain
//! functions of the input bytes: each panics when an input breaks what it checks. `cargo test`
//! runs every seed input (`fuzz/corpus/<target>/`) and every input a fuzzer once found
//! (`fuzz/regressions/<target>/`) through them (`tests/inputs.rs`), so a crash found is a
//! regression test from then on. docs/testing.md says what each target checks and how to
//! run them longer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a check: a broken invariant or set-up must stop the run, with its message"
)]

use std::sync::OnceLock;

use bourse_engine::{Command, Engine, Limits, codec};
use bourse_journal::{Durability, FsStorage, Journal, JournalConfig, RecoveryMode};
use bourse_marketdata::tick::{parse_message, parse_with_serde};

/// A target's check: panics when the input breaks what it checks.
pub type Check = fn(&[u8]);

/// Every target: its name (the fuzz target's and the corpus directory's) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("codec_decode", codec_decode),
    ("snapshot_load", snapshot_load),
    ("journal_recover", journal_recover),
    ("ws_message", ws_message),
    ("http_bodies", http_bodies),
    ("feed_parse", feed_parse),
];

/// The command codec: `decode` never panics, and what it accepts is canonical: encoding the
/// command gives back exactly the input.
pub fn codec_decode(data: &[u8]) {
    if let Ok(command) = codec::decode(data) {
        let mut again = Vec::new();
        codec::encode(&command, &mut again);
        assert_eq!(again, data, "decode accepted a non-canonical encoding");
    }
}

/// The feed's tick parser: the fast path agrees with serde's on every message (the same
/// items, or both refuse), and neither panics.
pub fn feed_parse(data: &[u8]) {
    let (mut fast, mut reference) = (Vec::new(), Vec::new());
    let a = parse_message(data, &mut fast);
    let b = parse_with_serde(data, &mut reference);
    assert_eq!(
        a.is_ok(),
        b.is_ok(),
        "fast {a:?} and serde {b:?} disagree on {:?}",
        String::from_utf8_lossy(data)
    );
    assert_eq!(fast, reference, "{:?}", String::from_utf8_lossy(data));
}

/// A WebSocket client's text message: the typed one-pass read of an order agrees with the
/// general read whenever it accepts one, and neither panics.
pub fn ws_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let general = bourse_gateway::ws_message::general(text);
    if let Some(typed) = bourse_gateway::ws_message::typed_order(text) {
        let (id, op, fields) = general.expect("the general read refuses a typed order");
        assert_eq!((&id, op.as_str()), (&typed.id, "order"), "{text}");
        let (side, body) = bourse_gateway::ws_message::order_of_fields(fields)
            .expect("the general read refuses the typed order's fields");
        assert_eq!((side, body), (typed.side, typed.body), "{text}");
    } else if let Ok((_, op, fields)) = general
        && op == "order"
    {
        let _ = bourse_gateway::ws_message::order_of_fields(fields);
    }
}

/// The body of each write endpoint (the first byte picks which): read and checked as its
/// handler does, never panicking.
pub fn http_bodies(data: &[u8]) {
    if let Some((&which, body)) = data.split_first() {
        let _ = bourse_gateway::fuzzing::write_body(which, body);
    }
}

/// Patches from an input: (offset, xor) pairs, 3 bytes each (a little-endian u16 offset
/// into `len` bytes, then the byte to xor), skipping a zero xor.
fn patches(data: &[u8], len: usize) -> Vec<(usize, u8)> {
    data.chunks_exact(3)
        .filter(|c| c[2] != 0 && len > 0)
        .map(|c| (usize::from(u16::from_le_bytes([c[0], c[1]])) % len, c[2]))
        .collect()
}

/// A snapshot of an engine after 2,000 commands of the seeded workload (300 accounts, two
/// books, orders of every kind), and its state hash.
fn snapshot() -> &'static (Vec<u8>, bourse_engine::StateHash) {
    static SNAPSHOT: OnceLock<(Vec<u8>, bourse_engine::StateHash)> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let mut engine = Engine::new(Limits::default());
        let mut generator = bourse_tests::workload::Generator::new(7);
        let mut last = 0;
        for _ in 0..2_000 {
            let command: Command = generator.next_command();
            let mut events = Vec::new();
            let _ = engine.apply(&command, &mut events);
            generator.observe(&events);
            last = command.seq;
        }
        let bytes = bourse_snapshots::encode(last, &engine.to_image())
            .expect("encode")
            .to_bytes();
        (bytes, engine.state_hash())
    })
}

/// The snapshot loader on a real snapshot with bytes changed: the input's first byte says
/// whether to fix the checksums up after patching (so that the archive validation and the
/// engine's own checks are reached), the rest are patches. Loading never panics; an unpatched
/// file loads to the same state hash; whatever loads can be written and loaded again to the
/// same state hash.
pub fn snapshot_load(data: &[u8]) {
    let (pristine, hash) = snapshot();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = pristine.clone();
    let payload_len = bytes.len() - bourse_snapshots::HEADER_LEN;
    let changes = patches(rest, bytes.len());
    for &(at, xor) in &changes {
        // Even offsets of the patch land in the payload, odd ones anywhere.
        let at = if at % 2 == 0 {
            bourse_snapshots::HEADER_LEN + at % payload_len
        } else {
            at
        };
        bytes[at] ^= xor;
    }
    if flags & 1 == 1 {
        let payload = crc32c::crc32c(&bytes[bourse_snapshots::HEADER_LEN..]);
        let at = bourse_snapshots::HEADER_PAYLOAD_CHECKSUM_OFFSET;
        bytes[at..at + 4].copy_from_slice(&payload.to_le_bytes());
        let header = crc32c::crc32c(&bytes[..bourse_snapshots::HEADER_CHECKSUM_OFFSET]);
        let at = bourse_snapshots::HEADER_CHECKSUM_OFFSET;
        bytes[at..at + 4].copy_from_slice(&header.to_le_bytes());
    }
    match bourse_snapshots::decode_unaligned(&bytes) {
        Ok((seq, engine)) => {
            if bytes == *pristine {
                assert_eq!(engine.state_hash(), *hash);
            }
            let again = bourse_snapshots::encode(seq, &engine.to_image())
                .expect("what loaded encodes")
                .to_bytes();
            let (_, reloaded) =
                bourse_snapshots::decode_unaligned(&again).expect("what was written loads");
            assert_eq!(reloaded.state_hash(), engine.state_hash());
        }
        Err(_) => assert!(bytes != *pristine, "the pristine snapshot does not load"),
    }
}

/// The payload of journal record `seq` (1 to 60 bytes from the sequence number).
fn record(seq: u64) -> Vec<u8> {
    let len = 1 + (seq * 37 % 60) as usize;
    (0..len).map(|i| (seq as usize * 7 + i) as u8).collect()
}

/// Records in the journal [`journal_recover`] damages.
const JOURNAL_RECORDS: u64 = 120;

/// The segment files of a journal of [`JOURNAL_RECORDS`] records in 1 KiB segments.
fn journal_files() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal::open(
            FsStorage::new(dir.path()).expect("dir"),
            config(RecoveryMode::Refuse),
        )
        .expect("a new journal");
        for seq in 1..=JOURNAL_RECORDS {
            journal.append(seq, &record(seq)).expect("append");
            if seq % 7 == 0 {
                journal.commit().expect("commit");
            }
        }
        journal.commit().expect("commit");
        drop(journal);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        files.sort();
        files
    })
}

fn config(recovery: RecoveryMode) -> JournalConfig {
    JournalConfig {
        segment_size_bytes: 1024,
        durability: Durability::None,
        recovery,
        prepare_next: bourse_journal::PrepareNext::Manual,
        ..JournalConfig::default()
    }
}

/// Journal recovery on segments with bytes changed (the input's first byte picks the
/// segment, the rest are patches) or cut short (when the first byte's top bit is set, the
/// segment ends after the last patch): opening never panics, refusing or repairing; what it
/// then reads is the records written, in order, from the first, with nothing changed.
pub fn journal_recover(data: &[u8]) {
    let files = journal_files();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let target = usize::from(pick & 0x7f) % files.len();
    for recovery in [RecoveryMode::Refuse, RecoveryMode::Repair] {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, (name, bytes)) in files.iter().enumerate() {
            let mut bytes = bytes.clone();
            if i == target {
                let changes = patches(rest, bytes.len());
                for &(at, xor) in &changes {
                    bytes[at] ^= xor;
                }
                if pick & 0x80 != 0
                    && let Some(&(at, _)) = changes.last()
                {
                    bytes.truncate(at);
                }
            }
            std::fs::write(dir.path().join(name), bytes).expect("write");
        }
        let Ok(storage) = FsStorage::new(dir.path()) else {
            continue;
        };
        let Ok(journal) = Journal::open(storage, config(recovery)) else {
            continue;
        };
        let Ok(reader) = journal.read_from(1) else {
            continue;
        };
        let mut expected = 1;
        for read in reader {
            let Ok(found) = read else {
                break;
            };
            assert_eq!(found.seq, expected, "records out of order after recovery");
            assert_eq!(found.payload, record(expected), "record {expected} changed");
            expected += 1;
        }
        assert!(expected <= JOURNAL_RECORDS + 1);
    }
}
