//! What the single-node run and the cluster share: snapshots as a crash or a flipped bit leave
//! them, the journal read back and replayed, and the fee quote's check.

use bourse_engine::{Engine, Event, EventKind, FeeQuote, Liquidity, Qty, codec};
use bourse_history::{Entry, History};
use bourse_journal::Journal;
use bourse_tests::workload::SplitMix64;

use crate::SNAPSHOTS_KEPT;
use crate::disk::SimDisk;

/// What became of a snapshot being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SnapshotFate {
    Whole,
    /// One bit flipped (one in ten, with faults on): the load must refuse it.
    Damaged,
    /// The process crashed while writing it (3 in 100, with faults on): a prefix is left,
    /// which the load must refuse.
    Torn,
}

/// The engine's snapshot at `seq`, as it reaches the disk: whole, or (with faults on, by the
/// seed) damaged or cut short by a crash. `None` when it cannot be encoded.
pub(crate) fn write_snapshot(
    rng: &mut SplitMix64,
    faults: bool,
    seq: u64,
    engine: &Engine,
) -> Option<(Vec<u8>, SnapshotFate)> {
    let mut bytes = bourse_snapshots::encode(seq, &engine.to_image())
        .ok()?
        .to_bytes();
    if bytes.is_empty() {
        return Some((bytes, SnapshotFate::Whole));
    }
    if faults && rng.chance(3) {
        bytes.truncate(rng.below(bytes.len() as u64) as usize);
        return Some((bytes, SnapshotFate::Torn));
    }
    if faults && rng.chance(10) {
        let at = rng.below(bytes.len() as u64) as usize;
        bytes[at] ^= 1 << rng.below(8);
        return Some((bytes, SnapshotFate::Damaged));
    }
    Some((bytes, SnapshotFate::Whole))
}

/// What becomes of a snapshot the pipeline is asked for: whole, or (with faults on, by the
/// seed) cut short by a crash or damaged afterwards, as often as [`write_snapshot`]'s.
pub(crate) fn snapshot_fate(rng: &mut SplitMix64, faults: bool) -> SnapshotFate {
    if faults && rng.chance(3) {
        SnapshotFate::Torn
    } else if faults && rng.chance(10) {
        SnapshotFate::Damaged
    } else {
        SnapshotFate::Whole
    }
}

/// Flips one bit of the file at `path`, at a seeded place; `false` if there is no such file
/// (the snapshot was not written).
pub(crate) fn flip_bit(rng: &mut SplitMix64, path: &std::path::Path) -> bool {
    let Ok(mut bytes) = std::fs::read(path) else {
        return false;
    };
    if bytes.is_empty() {
        return false;
    }
    let at = rng.below(bytes.len() as u64) as usize;
    bytes[at] ^= 1 << rng.below(8);
    std::fs::write(path, bytes).is_ok()
}

/// Keeps a snapshot with the others, the newest [`SNAPSHOTS_KEPT`].
pub(crate) fn keep_snapshot(snapshots: &mut Vec<(u64, Vec<u8>)>, seq: u64, bytes: Vec<u8>) {
    snapshots.push((seq, bytes));
    if snapshots.len() > SNAPSHOTS_KEPT {
        snapshots.remove(0);
    }
}

/// Whether a snapshot in `dir` at a sequence number in `range` fails to load (a flipped
/// bit).
pub(crate) fn damaged_snapshot_in(
    dir: &std::path::Path,
    range: std::ops::RangeInclusive<u64>,
) -> bool {
    bourse_snapshots::list_snapshots(dir).is_ok_and(|listed| {
        listed.iter().any(|(at, path)| {
            range.contains(at)
                && std::fs::read(path)
                    .map_err(drop)
                    .and_then(|bytes| bourse_snapshots::decode_unaligned(&bytes).map_err(drop))
                    .is_err()
        })
    })
}

/// The newest snapshot at a sequence number in `from..=last` that loads (its checks
/// passed), as the server picks one at start-up, and how many newer ones were refused.
pub(crate) fn load_newest_snapshot(
    snapshots: &[(u64, Vec<u8>)],
    from: u64,
    last: u64,
) -> (Option<(u64, Engine)>, u64) {
    let mut refused = 0;
    for (seq, bytes) in snapshots.iter().rev() {
        if *seq > last || *seq < from {
            continue;
        }
        match bourse_snapshots::decode_unaligned(bytes) {
            Ok((at, loaded)) if at == *seq => return (Some((at, loaded)), refused),
            _ => refused += 1,
        }
    }
    (None, refused)
}

/// A placement's events against the fee quoted just before it: one fill of the whole
/// quantity at the quoted price, as taker, charges the quoted fee. `Ok(true)` when the order
/// filled so and was checked.
pub(crate) fn check_quote(events: &[Event], qty: Qty, quote: &FeeQuote) -> Result<bool, String> {
    let Some(order) = events.iter().find_map(|e| match e.kind {
        EventKind::OrderAccepted { order, .. } => Some(order),
        _ => None,
    }) else {
        return Ok(false);
    };
    let fills: Vec<_> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Fill {
                taker_order,
                price,
                qty,
                taker_fee,
                ..
            } if taker_order == order => Some((price, qty, taker_fee)),
            _ => None,
        })
        .collect();
    match fills[..] {
        [(price, filled, fee)] if filled == qty && price == quote.price => {
            if quote.liquidity != Liquidity::Taker || fee != quote.fee {
                return Err(format!(
                    "order {order} filled whole at the quoted price and paid {fee:?} as taker; \
                     the quote said {:?} as {:?}",
                    quote.fee, quote.liquidity
                ));
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Every record of the journal.
pub(crate) fn read_all(journal: &Journal<SimDisk>) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let reader = journal
        .read_from(journal.first_seq())
        .map_err(|e| format!("reading the journal: {e}"))?;
    reader
        .map(|r| {
            r.map(|r| (r.seq, r.payload))
                .map_err(|e| format!("reading the journal: {e}"))
        })
        .collect()
}

/// Applies the journal's commands, folding their events into `history` if given, but for the
/// events in its gaps (`(after, through)`: the events after the one and up to the other).
pub(crate) fn replay(
    engine: &mut Engine,
    records: &[(u64, Vec<u8>)],
    mut history: Option<(&mut History, &[(u64, u64)])>,
) -> Result<(), String> {
    let mut events = Vec::new();
    for (seq, bytes) in records {
        let command = codec::decode(bytes).map_err(|e| format!("record {seq} decodes: {e}"))?;
        events.clear();
        let _ = engine.apply(&command, &mut events);
        if let Some((history, gaps)) = history.as_mut() {
            let entries: Vec<Entry> = events
                .iter()
                .filter(|e| !gaps.iter().any(|&(a, b)| e.seq > a && e.seq <= b))
                .filter_map(Entry::of)
                .collect();
            history.fold(*seq, engine.event_seq(), &entries);
        }
    }
    Ok(())
}
