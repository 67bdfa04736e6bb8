//! The history read model in the simulation, as the server runs it (`bourse_history`): a
//! thread that takes each acknowledged batch's events off the bus some time after the engine
//! applied them, appends them to its own log (never synced, on a second simulated disk) and
//! folds them; at start-up the log is read back (damage cut, as its `Repair` mode does) and
//! `catch_up` replays the command journal for whatever the log lost. Checked after every
//! recovery and at the end of a run: the model holds exactly the records of a fold of every
//! event of the journal's commands, replayed from nothing.

use std::collections::VecDeque;
use std::path::Path;

use bourse_engine::{Engine, Event, Limits};
use bourse_history::{Entry, History, HistoryLog, catch_up};
use bourse_journal::{Journal, PrepareNext};
use bourse_tests::workload::SplitMix64;

use crate::disk::{Faults, SimDisk};

/// Segments of the history log: small, so that logs roll and older segments exist to damage.
const SEGMENT_BYTES: u64 = 64 << 10;

/// The history thread and its log.
pub(crate) struct SimHistory {
    pub(crate) disk: SimDisk,
    log: Option<HistoryLog<SimDisk>>,
    model: History,
    /// Acknowledged batches the thread has not taken yet: `(through, event_seq, entries)`.
    behind: VecDeque<(u64, u64, Vec<Entry>)>,
}

impl SimHistory {
    /// A new log on a sound disk of its own.
    pub(crate) fn new(seed: u64, faults: Faults) -> Result<SimHistory, String> {
        let disk = SimDisk::new(seed ^ 0x4157_0000, faults);
        let (log, model) = open(&disk)?;
        Ok(SimHistory {
            disk,
            log: Some(log),
            model,
            behind: VecDeque::new(),
        })
    }

    /// A batch was acknowledged: its events go on the bus, for the thread to take.
    pub(crate) fn published(&mut self, through: u64, event_seq: u64, events: &[Event]) {
        let entries = events.iter().filter_map(Entry::of).collect();
        self.behind.push_back((through, event_seq, entries));
    }

    /// The thread takes what is on the bus, or (by the seed) falls behind for now. An append
    /// that fails (a full disk) stops the server: `Err`.
    pub(crate) fn run(&mut self, rng: &mut SplitMix64) -> Result<(), String> {
        if rng.chance(30) {
            return Ok(());
        }
        self.drain()
    }

    /// The process is gone: the bus and the model with it; the disk keeps what it keeps.
    pub(crate) fn crash(&mut self) {
        self.log = None;
        self.behind.clear();
        self.model = History::default();
        self.disk.crash();
    }

    /// Start-up after the engine recovered: the log read back, then caught up from the
    /// journal with `snapshots` (the newest that decodes at or before what the log covers).
    /// Returns the commands `catch_up` replayed.
    pub(crate) fn recover(
        &mut self,
        journal: &Journal<SimDisk>,
        snapshots: &[(u64, Vec<u8>)],
        engine_event_seq: u64,
    ) -> Result<u64, String> {
        let (mut log, mut model) = open(&self.disk)?;
        if model.event_seq() > engine_event_seq {
            return Err(format!(
                "the history log (to event {}) is ahead of the recovered engine (event \
                 {engine_event_seq}): it logged events of commands never acknowledged",
                model.event_seq()
            ));
        }
        let newest_at_most = |covered: u64| -> Result<Option<(u64, Engine)>, String> {
            Ok(snapshots.iter().rev().find_map(|(seq, bytes)| {
                if *seq > covered {
                    return None;
                }
                bourse_snapshots::decode_unaligned(bytes)
                    .ok()
                    .filter(|(at, _)| at == seq)
            }))
        };
        let replayed = catch_up(
            &mut model,
            &mut log,
            journal,
            newest_at_most,
            Limits::default(),
            engine_event_seq,
        )?;
        self.log = Some(log);
        self.model = model;
        Ok(replayed)
    }

    /// The thread takes everything on the bus (the end of a run).
    pub(crate) fn drain(&mut self) -> Result<(), String> {
        let log = self.log.as_mut().ok_or("the history log is not open")?;
        while let Some((through, event_seq, entries)) = self.behind.pop_front() {
            log.append(through, event_seq, &entries)?;
            self.model.fold(through, event_seq, &entries);
        }
        Ok(())
    }

    /// The model against `reference` (a fold of every event of the journal, from nothing),
    /// with nothing left on the bus.
    pub(crate) fn check(&self, reference: &History) -> Result<(), String> {
        if !self.behind.is_empty() {
            return Err("the history is checked with batches still on the bus".into());
        }
        compare(&self.model, reference)
    }
}

fn compare(model: &History, reference: &History) -> Result<(), String> {
    match model.records_difference(reference) {
        None => Ok(()),
        Some(difference) => Err(format!(
            "the history read model differs from a fold of the journal's events: {difference}"
        )),
    }
}

fn open(disk: &SimDisk) -> Result<(HistoryLog<SimDisk>, History), String> {
    HistoryLog::open_with_storage(
        Path::new("sim-history"),
        disk.clone(),
        SEGMENT_BYTES,
        PrepareNext::Manual,
    )
}
