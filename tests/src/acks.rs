//! What the server acknowledged, checked against its journal: every acknowledged command is
//! there, byte for byte, and the recovered state is a replay of the whole journal.

use std::collections::BTreeMap;
use std::path::Path;

use bourse_engine::codec::decode;
use bourse_engine::{Engine, Limits};
use bourse_store::{DiscardEvents, Silent, Store, StoreConfig};

/// The acknowledgements of an ack log (`<seq> <crc32c of the journal payload>` a line), by
/// sequence number; a sequence number acknowledged twice fails the test.
pub fn read_ack_log(path: &Path) -> BTreeMap<u64, u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut acked = BTreeMap::new();
    for line in text.lines() {
        let (seq, crc) = crate::process::parse_ack(line);
        assert!(
            acked.insert(seq, crc).is_none(),
            "seq {seq} acknowledged twice"
        );
    }
    acked
}

/// Opens the store and checks it against the acknowledgements: each one is in the journal
/// with the same payload CRC, and the recovered state is a replay of the whole journal.
/// Returns the recovery report's (last seq, records replayed, snapshot seq).
pub fn check_store(dir: &Path, acked: &BTreeMap<u64, u32>) -> (u64, u64, Option<u64>) {
    let mut recovered = Store::open(&StoreConfig::new(dir), &mut Silent).expect("recovery");
    let last_seq = recovered.report.last_seq;
    if let Some((&highest, _)) = acked.last_key_value() {
        assert!(
            last_seq >= highest,
            "recovered to seq {last_seq}, but seq {highest} was acknowledged"
        );
    }
    let journal = recovered.store.journal();
    assert_eq!(journal.first_seq(), 1, "retention keep: the whole journal");
    let mut replayed = Engine::new(Limits::default());
    let mut matched = 0;
    let mut next = 1;
    for record in journal.read_from(1).expect("read the journal") {
        let record = record.expect("a good record");
        assert_eq!(record.seq, next);
        next += 1;
        if let Some(&crc) = acked.get(&record.seq) {
            assert_eq!(
                crc32c::crc32c(&record.payload),
                crc,
                "seq {}: the journal holds another command than the one acknowledged",
                record.seq
            );
            matched += 1;
        }
        let command = decode(&record.payload).expect("a decodable command");
        assert_eq!(command.seq, record.seq);
        let _ = replayed.apply(&command, &mut DiscardEvents);
    }
    assert_eq!(next - 1, last_seq);
    assert_eq!(
        matched,
        acked.len(),
        "acknowledged commands missing from the journal"
    );
    assert_eq!(
        replayed.state_hash(),
        recovered.engine.state_hash(),
        "the recovered state is not the journal's"
    );
    let snapshot = recovered.report.snapshot.as_ref().map(|(seq, _)| *seq);
    (last_seq, recovered.report.replayed, snapshot)
}
