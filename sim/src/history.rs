//! The history read model in the simulation, as the server runs it (`bourse_history`): a
//! thread that takes the event batches the pipeline publishes some time after the engine
//! applied them, appends them to its own log (on a second simulated disk) and folds them,
//! and now and then (by the seed, as the server's thread does about once a second) starts a
//! sync of the log on its sync thread, which lands some steps later and raises the journal's
//! retention floor to what it covered. At start-up the log is read back (damage cut, as its
//! `Repair` mode does) and `catch_up` replays the command journal for whatever the log lost.
//! Checked after every recovery and at the end of a run: the model holds exactly the records
//! of a fold of every event of the journal's commands, replayed from nothing.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bourse_engine::{Engine, Event, Limits};
use bourse_history::{Entry, History, HistoryLog, catch_up};
use bourse_journal::{Journal, PendingCommit, PrepareNext};
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
    /// The command through which the log is durable: the store's retention floor.
    pub(crate) durable: Arc<AtomicU64>,
    /// The history's sync thread: a sync started (`HistoryLog::start_sync`) and not yet
    /// landed, with the command it covers through.
    sync_out: Option<(PendingCommit, u64)>,
    /// Syncs started on the sync thread and landed.
    pub(crate) syncs_landed: u64,
    /// Events the history lost for good: `(after, through)`. A bit flipped in the log cuts
    /// it at the damage; when the journal no longer reaches back that far (retention), the
    /// history starts over at the engine's event, as the server does, and says so.
    pub(crate) gaps: Vec<(u64, u64)>,
    /// Times the history started over so.
    pub(crate) started_over: u64,
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
            durable: Arc::default(),
            sync_out: None,
            syncs_landed: 0,
            gaps: Vec::new(),
            started_over: 0,
        })
    }

    /// A batch was acknowledged: its events go on the bus, for the thread to take.
    pub(crate) fn published(&mut self, through: u64, event_seq: u64, events: &[Event]) {
        let entries = events.iter().filter_map(Entry::of).collect();
        self.behind.push_back((through, event_seq, entries));
    }

    /// The thread takes what is on the bus, or (by the seed) falls behind for now; then, as
    /// the server's history thread does about once a second, it starts a sync on its sync
    /// thread, or lands the one out (raising the retention floor to what it covered). An
    /// append or a sync that fails (a full disk, EIO) stops the server: `Err`.
    pub(crate) fn run(&mut self, rng: &mut SplitMix64) -> Result<(), String> {
        if rng.chance(30) {
            return Ok(());
        }
        self.drain()?;
        let log = self.log.as_mut().ok_or("the history log is not open")?;
        match self.sync_out.take() {
            Some((pending, through)) if rng.chance(50) => {
                log.finish_sync(pending.sync())?;
                self.durable.fetch_max(through, Ordering::AcqRel);
                self.syncs_landed += 1;
            }
            Some(out) => self.sync_out = Some(out),
            None if rng.chance(20) => self.sync_out = Some(log.start_sync()?),
            None => {}
        }
        Ok(())
    }

    /// The log synced; the retention floor raised to what it holds. A failed sync stops the
    /// server: `Err`.
    fn sync(&mut self) -> Result<(), String> {
        let log = self.log.as_mut().ok_or("the history log is not open")?;
        let through = log.sync()?;
        self.durable.fetch_max(through, Ordering::AcqRel);
        Ok(())
    }

    /// The process is gone: the bus and the model with it; the disk keeps what it keeps.
    pub(crate) fn crash(&mut self) {
        self.log = None;
        self.sync_out = None;
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
        snapshots_dir: &std::path::Path,
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
        // The server's snapshot source: the newest good snapshot at or before `covered`.
        let newest_at_most = |covered: u64| -> Result<Option<(u64, Engine)>, String> {
            bourse_snapshots::load_newest_at_most(snapshots_dir, covered)
                .map(|loaded| loaded.newest)
                .map_err(|e| e.to_string())
        };
        let covered = model.through_seq();
        let replayed = match catch_up(
            &mut model,
            &mut log,
            journal,
            newest_at_most,
            Limits::default(),
            engine_event_seq,
        ) {
            Ok(replayed) => replayed,
            // Only damage loses what the retired journal no longer holds: a bit flipped in
            // the log (which cut it), or in the snapshot at or before what the log holds
            // that the catch-up would start from.
            Err(why)
                if self.disk.flipped().is_some()
                    || crate::common::damaged_snapshot_in(snapshots_dir, 0..=covered) =>
            {
                // The server's start-over (`open_history`): an empty record at the engine's
                // point, the events in between gone.
                let last_seq = journal.last_seq().unwrap_or(0);
                self.gaps.push((model.event_seq(), engine_event_seq));
                self.started_over += 1;
                let _ = why;
                log.append(last_seq, engine_event_seq, &[])?;
                model.fold(last_seq, engine_event_seq, &[]);
                0
            }
            Err(why) => return Err(why),
        };
        self.log = Some(log);
        self.model = model;
        // As the server does before it starts the thread.
        self.sync()?;
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
