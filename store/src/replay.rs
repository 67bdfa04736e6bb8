//! Replay: journal records decoded and applied to an engine, in order.
//!
//! Two ways give the same result: [`ReplayMode::Serial`] reads, checks, decodes and applies
//! each record in turn on the calling thread; [`ReplayMode::Pipelined`] gives reading and
//! decoding to a second thread, which hands the calling thread batches of decoded commands
//! through a bounded channel (buffers are recycled), so that the engine thread only applies.
//! The engine sees the same commands in the same order either way, and a bad record stops
//! replay after exactly the records before it, so the final state is the same.
//! [`replay`] picks the pipeline for long replays on a machine with more than one CPU.

use std::num::NonZeroUsize;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bourse_engine::codec::decode;
use bourse_engine::{Command, Engine, Event, EventSink};
use bourse_journal::{Journal, Reader, RecordRef, Storage};

use crate::error::StoreError;

/// An event sink that drops everything: replay rebuilds state, and the events of a replayed
/// command were already published before the crash.
#[derive(Debug, Default)]
pub struct DiscardEvents;

impl EventSink for DiscardEvents {
    #[inline]
    fn push(&mut self, _event: Event) {}
}

/// How often (in records) replay reports progress.
pub const PROGRESS_EVERY: u64 = 1 << 16;

/// [`ReplayMode::Auto`] pipelines a replay of at least this many records (below it, starting
/// a thread costs more than it saves).
pub const PIPELINE_MIN_RECORDS: u64 = 1 << 14;

/// Commands per batch handed from the decoding thread to the engine thread. Larger batches
/// mean fewer hand-offs (and fewer wake-ups of a parked thread); 256 to 4,096 were tried on
/// the replay benchmark, and the larger ones were faster.
const BATCH_LEN: usize = 2_048;

/// Full batches waiting for the engine thread at most (the channel's bound): the decoder may
/// run this far ahead, so a hiccup on either thread does not stall the other. With
/// [`BATCH_LEN`] and commands of at most 112 bytes, all buffers together stay under 2.5 MB.
const BATCHES_IN_FLIGHT: usize = 8;

/// Name of the thread that reads and decodes in a pipelined replay.
const DECODER_THREAD_NAME: &str = "bourse-replay-decode";

/// How [`replay_with`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayMode {
    /// [`ReplayMode::Pipelined`] for at least [`PIPELINE_MIN_RECORDS`] records when the
    /// machine has more than one CPU, [`ReplayMode::Serial`] otherwise.
    #[default]
    Auto,
    /// Everything on the calling thread.
    Serial,
    /// A second thread reads and decodes, the calling thread applies. Falls back to
    /// [`ReplayMode::Serial`] if the thread cannot be started.
    Pipelined,
}

/// Applies every journal record from `from_seq` to the last appended one to `engine`, calling
/// `progress` with the number of records applied so far every [`PROGRESS_EVERY`] records and
/// once at the end. Returns the number of records applied. Runs as [`ReplayMode::Auto`].
///
/// A record that does not decode, or whose command carries another sequence number than the
/// record, is [`StoreError::BadRecord`]: the journal's checksums passed, so this is a bug or a
/// format mismatch, never something to skip. A command the engine rejects is fine: it was
/// rejected the first time too, and rejecting changes nothing. On an error, the records before
/// the bad one have been applied and no later one has.
pub fn replay<S: Storage>(
    journal: &Journal<S>,
    from_seq: u64,
    engine: &mut Engine,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StoreError> {
    replay_with(journal, from_seq, engine, progress, ReplayMode::Auto)
}

/// [`replay`], run as `mode` says. Every mode gives the same engine state, the same progress
/// calls and the same result.
pub fn replay_with<S: Storage>(
    journal: &Journal<S>,
    from_seq: u64,
    engine: &mut Engine,
    progress: &mut dyn FnMut(u64),
    mode: ReplayMode,
) -> Result<u64, StoreError> {
    let reader = journal.read_from(from_seq)?;
    let pipelined = match mode {
        ReplayMode::Serial => false,
        ReplayMode::Pipelined => true,
        ReplayMode::Auto => {
            reader.end_seq() - reader.next_seq() >= PIPELINE_MIN_RECORDS
                && std::thread::available_parallelism().map_or(1, NonZeroUsize::get) > 1
        }
    };
    if pipelined {
        // `Err(NotStarted)`: the decoding thread did not start, nothing was read or applied.
        if let Ok(result) = replay_pipelined(reader, engine, progress) {
            return result;
        }
    }
    replay_serial(journal.read_from(from_seq)?, engine, progress)
}

/// The command in `record`, checked to carry the record's sequence number.
#[inline]
fn decode_record(record: RecordRef<'_>) -> Result<Command, StoreError> {
    let command = decode(record.payload).map_err(|error| StoreError::BadRecord {
        seq: record.seq,
        reason: error.to_string(),
    })?;
    if command.seq != record.seq {
        return Err(StoreError::BadRecord {
            seq: record.seq,
            reason: format!("the command inside carries seq {}", command.seq),
        });
    }
    Ok(command)
}

/// Counts applied records and reports progress as [`replay`] documents.
struct Progress<'p> {
    applied: u64,
    report: &'p mut dyn FnMut(u64),
}

impl Progress<'_> {
    #[inline]
    fn one_more(&mut self) {
        self.applied += 1;
        if self.applied.is_multiple_of(PROGRESS_EVERY) {
            (self.report)(self.applied);
        }
    }

    fn finish(self) -> u64 {
        (self.report)(self.applied);
        self.applied
    }
}

fn replay_serial<S: Storage>(
    mut reader: Reader<'_, S>,
    engine: &mut Engine,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StoreError> {
    let mut progress = Progress {
        applied: 0,
        report: progress,
    };
    let mut sink = DiscardEvents;
    while let Some(record) = reader.next_ref() {
        let command = decode_record(record?)?;
        // A rejection is part of the history being replayed.
        let _ = engine.apply(&command, &mut sink);
        progress.one_more();
    }
    Ok(progress.finish())
}

/// The decoding thread of a pipelined replay could not be started.
struct NotStarted;

fn replay_pipelined<S: Storage>(
    reader: Reader<'_, S>,
    engine: &mut Engine,
    progress: &mut dyn FnMut(u64),
) -> Result<Result<u64, StoreError>, NotStarted> {
    std::thread::scope(|scope| {
        // Made inside the scope, so that if the engine thread panics, the receiver is dropped
        // while unwinding and a decoder blocked in `send` wakes up and stops before the scope
        // joins it.
        let (full_tx, full_rx) = sync_channel::<Vec<Command>>(BATCHES_IN_FLIGHT);
        // Every buffer ever made fits in here, so recycling never blocks.
        let (empty_tx, empty_rx) = sync_channel::<Vec<Command>>(BATCHES_IN_FLIGHT + 3);
        let decoder = std::thread::Builder::new()
            .name(DECODER_THREAD_NAME.into())
            .spawn_scoped(scope, move || decode_batches(reader, &full_tx, &empty_rx))
            .map_err(|_| NotStarted)?;

        let mut progress = Progress {
            applied: 0,
            report: progress,
        };
        let mut sink = DiscardEvents;
        // Ends when the decoder has sent its last batch and dropped its sender.
        for mut batch in full_rx.iter() {
            for command in &batch {
                // A rejection is part of the history being replayed.
                let _ = engine.apply(command, &mut sink);
                progress.one_more();
            }
            batch.clear();
            // Only fails if the decoder has finished; then the buffer just goes.
            let _ = empty_tx.try_send(batch);
        }
        let decoded = match decoder.join() {
            Ok(decoded) => decoded,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Ok(decoded.map(|()| progress.finish()))
    })
}

/// The decoding thread: fills batches of commands in journal order and sends each full one
/// (and the last, partial one). On a bad record it sends the commands before it, then returns
/// the error. Stops early if the engine thread has gone.
fn decode_batches<S: Storage>(
    mut reader: Reader<'_, S>,
    full_tx: &SyncSender<Vec<Command>>,
    empty_rx: &Receiver<Vec<Command>>,
) -> Result<(), StoreError> {
    let mut batch = Vec::with_capacity(BATCH_LEN);
    let mut outcome = Ok(());
    while let Some(record) = reader.next_ref() {
        match record.map_err(StoreError::from).and_then(decode_record) {
            Ok(command) => batch.push(command),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
        if batch.len() == BATCH_LEN {
            let next = empty_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH_LEN));
            if full_tx.send(std::mem::replace(&mut batch, next)).is_err() {
                // The engine thread is gone (it panicked); nobody wants the rest.
                return outcome;
            }
        }
    }
    if !batch.is_empty() {
        let _ = full_tx.send(batch);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::codec::encode;
    use bourse_engine::{
        AccountId, AssetCode, CommandKind, CreateAccount, Limits, ProductId, ProfileStatus,
        TokenHash,
    };
    use bourse_journal::{FsStorage, JournalConfig};

    /// A journal of `n` commands (three assets, then accounts and rejected bookmarks), with a
    /// trailing byte after the command at `bad_at`.
    fn journal_of(dir: &std::path::Path, n: u64, bad_at: Option<u64>) -> Journal<FsStorage> {
        let config = JournalConfig {
            segment_size_bytes: 64 << 10,
            ..JournalConfig::default()
        };
        let mut journal = Journal::open(FsStorage::new(dir).unwrap(), config).unwrap();
        let mut buf = Vec::new();
        for seq in 1..=n {
            let kind = if seq <= 3 {
                CommandKind::AddAsset {
                    code: AssetCode::new(["AAA", "BBB", "CCC"][seq as usize - 1]).unwrap(),
                    scale: 2,
                }
            } else if seq % 10 == 0 {
                CommandKind::create_account(CreateAccount {
                    name: format!("user {seq}"),
                    proof: "passport".into(),
                    currency_preference: AssetCode::new("AAA").unwrap(),
                    token_hash: TokenHash([seq as u8; 32]),
                    initial_status: ProfileStatus::Verified,
                })
            } else {
                // Rejected: there is no product 0.
                CommandKind::AddBookmark {
                    account: AccountId::new(seq as u32 / 10),
                    product: ProductId::new(0),
                }
            };
            buf.clear();
            encode(
                &Command {
                    seq,
                    timestamp_ms: 1_000 + seq as i64,
                    kind,
                },
                &mut buf,
            );
            if bad_at == Some(seq) {
                buf.push(0); // a trailing byte: not a canonical command
            }
            journal.append(seq, &buf).unwrap();
        }
        journal.commit().unwrap();
        journal
    }

    fn run(
        journal: &Journal<FsStorage>,
        from: u64,
        mode: ReplayMode,
    ) -> (Result<u64, StoreError>, Engine, Vec<u64>) {
        let mut engine = Engine::new(Limits::default());
        let mut calls = Vec::new();
        let result = replay_with(journal, from, &mut engine, &mut |n| calls.push(n), mode);
        (result, engine, calls)
    }

    const MODES: [ReplayMode; 3] = [ReplayMode::Serial, ReplayMode::Pipelined, ReplayMode::Auto];

    #[test]
    fn every_mode_applies_the_same_records_and_reports_the_same_progress() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * PROGRESS_EVERY + 5 * BATCH_LEN as u64 + 7;
        let journal = journal_of(dir.path(), n, None);
        assert!(journal.segment_first_seqs().len() > 1, "spans segments");
        for from in [1, 2, 3 + BATCH_LEN as u64, n, n + 1] {
            let (serial, serial_engine, serial_calls) = run(&journal, from, ReplayMode::Serial);
            let serial = serial.unwrap();
            assert_eq!(serial, n + 1 - from);
            for mode in MODES {
                let (result, engine, calls) = run(&journal, from, mode);
                assert_eq!(result.unwrap(), serial, "{mode:?} from {from}");
                assert_eq!(engine.state_hash(), serial_engine.state_hash(), "{mode:?}");
                assert_eq!(engine.event_seq(), serial_engine.event_seq(), "{mode:?}");
                assert_eq!(calls, serial_calls, "{mode:?} from {from}");
            }
        }
    }

    #[test]
    fn a_bad_record_stops_every_mode_after_the_records_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3 * BATCH_LEN as u64 + 100;
        // Bad inside a batch; the first three records add the assets.
        for bad in [2, BATCH_LEN as u64 + 1, 2 * BATCH_LEN as u64 + 17, n] {
            let sub = dir.path().join(bad.to_string());
            std::fs::create_dir(&sub).unwrap();
            let journal = journal_of(&sub, n, Some(bad));
            let mut hashes = Vec::new();
            for mode in MODES {
                let (result, engine, calls) = run(&journal, 1, mode);
                match result {
                    Err(StoreError::BadRecord { seq, .. }) => assert_eq!(seq, bad, "{mode:?}"),
                    other => panic!("{mode:?}: {other:?}"),
                }
                assert!(calls.iter().all(|&c| c < bad), "{mode:?}: {calls:?}");
                hashes.push((engine.state_hash(), engine.event_seq()));
            }
            // The engine holds exactly the records before the bad one.
            let (good, reference, _) =
                run(&journal_of_prefix(&sub, bad - 1), 1, ReplayMode::Serial);
            assert_eq!(good.unwrap(), bad - 1);
            for hash in hashes {
                assert_eq!(hash, (reference.state_hash(), reference.event_seq()));
            }
        }
    }

    fn journal_of_prefix(parent: &std::path::Path, n: u64) -> Journal<FsStorage> {
        let dir = parent.join("prefix");
        std::fs::create_dir(&dir).unwrap();
        journal_of(&dir, n, None)
    }
}
