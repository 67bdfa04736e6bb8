use bourse_journal::Durability;

use crate::{Rng, append_range, assert_records, open_fs, read_all, record_layout, small_config};

/// Tears the last segment at 1,000 seeded random offsets (zeros or garbage from the cut to
/// the end of the written bytes): open keeps exactly the records the tear left intact, which
/// are all those whose checksummed bytes end before the cut, and the writer goes on after them.
#[test]
fn torn_tail_at_random_offsets_keeps_exactly_the_intact_records() {
    let dir = tempfile::tempdir().unwrap();
    // No syncs: the test is about what open reads, and fsync would dominate its runtime.
    let config = small_config(Durability::None);
    let mut journal = open_fs(dir.path(), config).unwrap();
    let mut last_seq = 60;
    append_range(&mut journal, 1, last_seq, 4);
    // At least 5 records in the last segment.
    while last_seq + 1 - journal.segment_first_seqs().last().unwrap() < 5 {
        last_seq += 1;
        append_range(&mut journal, last_seq, last_seq, 1);
    }
    let last_first_seq = *journal.segment_first_seqs().last().unwrap();
    drop(journal);
    let path = dir
        .path()
        .join(bourse_journal::segment_file_name(last_first_seq));
    let pristine = std::fs::read(&path).unwrap();
    let layout = record_layout(&pristine);
    let written_end = bourse_journal::format::record_len(payload_len(layout.last().unwrap()))
        + layout.last().unwrap().0;

    let mut rng = Rng::new(0x5EED_7042);
    for round in 0..1000 {
        let cut = layout[0].0 + rng.below((written_end - layout[0].0) as u64) as usize;
        let mut torn = pristine.clone();
        let garbage = rng.below(2) == 0;
        for byte in &mut torn[cut..written_end] {
            *byte = if garbage { rng.next_u64() as u8 } else { 0 };
        }
        std::fs::write(&path, &torn).unwrap();

        let kept: Vec<u64> = layout
            .iter()
            .take_while(|&&(offset, end, _)| torn[offset..end] == pristine[offset..end])
            .map(|&(_, _, seq)| seq)
            .collect();
        let before_cut = layout.iter().filter(|&&(_, end, _)| end <= cut).count();
        assert!(kept.len() >= before_cut, "round {round}: cut {cut}");
        assert!(kept.len() <= before_cut + 1, "round {round}: cut {cut}");
        let last_kept = kept.last().copied().unwrap_or(last_first_seq - 1);

        let mut journal = open_fs(dir.path(), config)
            .unwrap_or_else(|error| panic!("round {round}, cut {cut}: {error}"));
        assert_eq!(
            journal.next_seq(),
            last_kept + 1,
            "round {round}, cut {cut}"
        );
        assert!(journal.recovery_report().repair.is_none());
        assert_records(&read_all(&journal, 1), 1, last_kept);
        if round % 20 == 0 {
            // The writer continues after the cut, and what it writes reads back.
            append_range(&mut journal, last_kept + 1, last_kept + 3, 2);
            drop(journal);
            let journal = open_fs(dir.path(), config).unwrap();
            assert_eq!(journal.recovery_report(), &Default::default());
            assert_records(&read_all(&journal, 1), 1, last_kept + 3);
        }
    }
}

fn payload_len(&(offset, end, _): &(usize, usize, u64)) -> usize {
    end - offset - bourse_journal::format::RECORD_HEADER_LEN
}
