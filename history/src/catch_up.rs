//! Bringing the history up to the recovered engine by replaying the command journal.

use bourse_engine::{Engine, Event, Limits};
use bourse_journal::{Journal, Storage};

use crate::{Entry, History, HistoryLog};

/// Commands replayed per log record while catching up.
const CATCH_UP_CHUNK: usize = 4096;

/// Replays the command journal into a scratch engine from the newest snapshot at or before
/// what `history` covers, and folds (and logs) every event it lacks. Returns the number of
/// commands replayed.
///
/// `newest_snapshot_at_most(seq)` loads the newest good snapshot taken at or before `seq`,
/// with the sequence number it was taken at (`bourse_snapshots::load_newest_at_most` over the
/// snapshot directory in the server, the simulator's own in `bourse-sim`).
///
/// `recovered_event_seq` is the recovered engine's newest event: the scratch engine must end
/// there too, or the history would disagree with the engine (an error).
pub fn catch_up<S: Storage, L: Storage>(
    history: &mut History,
    log: &mut HistoryLog<L>,
    journal: &Journal<S>,
    newest_snapshot_at_most: impl FnOnce(u64) -> Result<Option<(u64, Engine)>, String>,
    limits: Limits,
    recovered_event_seq: u64,
) -> Result<u64, String> {
    if history.event_seq() >= recovered_event_seq {
        return Ok(0);
    }
    let covered = history.through_seq();
    let (from_seq, mut engine) = match newest_snapshot_at_most(covered)? {
        Some((seq, engine)) => (seq + 1, engine),
        None => (1, Engine::new(limits)),
    };
    if engine.event_seq() > history.event_seq() {
        return Err(format!(
            "the history (to event {}) cannot be rebuilt: no snapshot before it is kept",
            history.event_seq()
        ));
    }
    if journal.first_seq() > from_seq {
        return Err(format!(
            "the history cannot be rebuilt: the journal starts at seq {} but the replay must \
             start at {from_seq} (journal segments were removed by the retention setting)",
            journal.first_seq()
        ));
    }
    let mut reader = journal
        .read_from(from_seq)
        .map_err(|e| format!("cannot read the journal: {e}"))?;
    let mut events: Vec<Event> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut replayed = 0u64;
    let mut last_seq = 0;
    let mut in_chunk = 0;
    while let Some(record) = reader.next_ref() {
        let record = record.map_err(|e| format!("cannot read the journal: {e}"))?;
        let command = bourse_engine::codec::decode(record.payload)
            .map_err(|e| format!("journal record {} does not decode: {e}", record.seq))?;
        events.clear();
        // A rejection changed nothing, the first time too.
        let _ = engine.apply(&command, &mut events);
        replayed += 1;
        last_seq = command.seq;
        entries.extend(
            events
                .iter()
                .filter(|e| e.seq > history.event_seq())
                .filter_map(Entry::of),
        );
        in_chunk += 1;
        if in_chunk == CATCH_UP_CHUNK {
            log.append(last_seq, engine.event_seq(), &entries)?;
            history.fold(last_seq, engine.event_seq(), &entries);
            entries.clear();
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        log.append(last_seq, engine.event_seq(), &entries)?;
        history.fold(last_seq, engine.event_seq(), &entries);
    }
    if engine.event_seq() != recovered_event_seq {
        return Err(format!(
            "replaying the journal for the history ended at event {} but the engine is at {}",
            engine.event_seq(),
            recovered_event_seq
        ));
    }
    Ok(replayed)
}
