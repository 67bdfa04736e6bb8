//! The journal against a reference model (a `Vec` of payloads) under random operations.

use bourse_journal::{Durability, JournalConfig};
use proptest::prelude::*;

use crate::{open_fs, read_all};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Commit,
    Reopen,
    RemoveBefore(u64),
    ReadFrom(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Append),
        2 => Just(Op::Commit),
        1 => Just(Op::Reopen),
        1 => (0..400u64).prop_map(Op::RemoveBefore),
        1 => (0..400u64).prop_map(Op::ReadFrom),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn journal_matches_a_vec_of_payloads(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig {
            segment_size_bytes: 512,
            durability: Durability::None,
            ..JournalConfig::default()
        };
        let mut journal = open_fs(dir.path(), config).unwrap();
        // model[i] is the payload of sequence number i + 1.
        let mut model: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            match op {
                Op::Append(payload) => {
                    let seq = model.len() as u64 + 1;
                    journal.append(seq, &payload).unwrap();
                    model.push(payload);
                }
                Op::Commit => {
                    let last = (!model.is_empty()).then_some(model.len() as u64);
                    prop_assert_eq!(journal.commit().unwrap(), last);
                }
                Op::Reopen => {
                    drop(journal);
                    journal = open_fs(dir.path(), config).unwrap();
                    prop_assert_eq!(journal.recovery_report(), &Default::default());
                    prop_assert_eq!(journal.next_seq(), model.len() as u64 + 1);
                }
                Op::RemoveBefore(seq) => {
                    let first_before = journal.first_seq();
                    journal.remove_segments_before(seq).unwrap();
                    // Only whole segments before `seq` go.
                    prop_assert!(journal.first_seq() <= seq.max(first_before));
                }
                Op::ReadFrom(seq) => {
                    let first = journal.first_seq();
                    let next = journal.next_seq();
                    if (first..=next).contains(&seq) {
                        let records = read_all(&journal, seq);
                        prop_assert_eq!(records.len() as u64, next - seq);
                        for record in records {
                            prop_assert_eq!(&record.payload, &model[record.seq as usize - 1]);
                        }
                    } else {
                        prop_assert!(journal.read_from(seq).is_err());
                    }
                }
            }
        }
        let first = journal.first_seq();
        let records = read_all(&journal, first);
        prop_assert_eq!(records.len(), model.len() + 1 - first as usize);
    }
}
