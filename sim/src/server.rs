//! The server in a run: the pipeline's own engine thread (`bourse_pipeline::Stepped`), its
//! event bus and the commands handed to it; the engine thread's and the sync thread's turns
//! on the simulated clock (`clock.rs`); and the checks on every answer (in order, what a
//! mirror engine made of the command, committed means answered).

use std::collections::VecDeque;
use std::sync::Arc;

use bourse_engine::{CommandKind, Event, Reject, codec};
use bourse_pipeline::{
    EventBatch, Outcome, PipelineConfig, SnapshotMode, Stepped, SubmitError, SyncMode, Ticket,
};
use tokio::sync::broadcast;

use crate::common::check_quote;
use crate::disk::SimDisk;
use crate::{Failure, Run, clock, fail};

/// The pipeline's settings in a run: the single topology stepped by the simulator, snapshots
/// on the engine thread, and the sync on the sync thread (`deferred`) or inline.
pub(crate) fn pipeline_config(deferred: bool) -> PipelineConfig {
    PipelineConfig {
        ring_size: bourse_pipeline::RING_SIZE_MIN,
        batch_max: 64,
        bus_capacity: 256,
        snapshot_mode: SnapshotMode::InThread,
        sync: if deferred {
            SyncMode::Thread
        } else {
            SyncMode::Inline
        },
        ..PipelineConfig::default()
    }
}

/// The running process: the pipeline's engine thread, stepped, its event bus, and the
/// commands handed to it and not yet answered.
pub(crate) struct Server {
    pub(crate) pipeline: Stepped<SimDisk>,
    pub(crate) bus: broadcast::Receiver<Arc<EventBatch>>,
    /// In sequence order.
    pub(crate) waiting: VecDeque<Waiting>,
}

/// A command handed to the pipeline, with what the mirror made of it.
pub(crate) struct Waiting {
    ticket: Ticket,
    seq: u64,
    timestamp_ms: i64,
    /// When it was handed over, on the simulated clock.
    arrived_ns: u64,
    bytes: Vec<u8>,
    result: Result<(), Reject>,
    events: Vec<Event>,
    answer: Option<Result<Outcome, SubmitError>>,
}

impl Run {
    /// The server starts on what the store recovered: the pipeline's engine thread, its bus
    /// subscribed before the first batch, as the server's history subscribes.
    pub(crate) fn start(
        &mut self,
        mut recovered: bourse_store::Recovered<SimDisk>,
    ) -> Result<(), Failure> {
        recovered
            .store
            .set_retention_floor(Arc::clone(&self.history.durable));
        let pipeline = Stepped::new(recovered, pipeline_config(self.deferred))
            .map_err(|e| self.fail(format!("the pipeline: {e}")))?;
        self.server = Some(Server {
            bus: pipeline.subscribe(),
            pipeline,
            waiting: VecDeque::new(),
        });
        Ok(())
    }

    pub(crate) fn server(&mut self) -> Result<&mut Server, Failure> {
        let seed = self.config.seed;
        self.server
            .as_mut()
            .ok_or_else(|| fail(seed, "the server is down".into()))
    }

    /// Deferred mode: on the simulated clock up to `until`, the sync out finishes (the sync
    /// thread's turn) and the engine thread wakes to take it (its idle turn), again while
    /// the next sync also finishes in time. `false`: the server stops, or crashes between
    /// a sync and its take.
    pub(crate) fn run_until(&mut self, until: u64) -> Result<bool, Failure> {
        while let Some(end) = self.sync_end.filter(|&end| end <= until) {
            self.clock_ns = self.clock_ns.max(end);
            self.sync_end = None;
            self.server()?.pipeline.run_sync();
            self.report.deferred_commits += 1;
            if self.rng.chance(2) {
                // Synced, and not yet taken by the engine thread.
                return Ok(false);
            }
            let wake = self.clock_ns + clock::wake_delay(&mut self.rng);
            if wake > until {
                // The batch arrives first: the engine thread takes the sync with it.
                return Ok(true);
            }
            self.clock_ns = wake;
            self.server()?.pipeline.idle();
            self.schedule_sync()?;
            if !self.collect()? {
                return Ok(false);
            }
            // Group commit: once the engine thread has taken a sync, everything applied is
            // committed or in the next sync.
            let pipeline = &self.server()?.pipeline;
            let stats = pipeline.stats();
            if stats.committed_seq < stats.applied_seq && !pipeline.sync_waiting() {
                return Err(self.fail(format!(
                    "commands {}..={} are applied, and no sync is out for them",
                    stats.committed_seq + 1,
                    stats.applied_seq
                )));
            }
        }
        Ok(true)
    }

    /// A sync handed to the sync thread gets its end on the clock.
    pub(crate) fn schedule_sync(&mut self) -> Result<(), Failure> {
        let waiting = self.server()?.pipeline.sync_waiting();
        if !waiting {
            self.sync_end = None;
        } else if self.sync_end.is_none() {
            self.sync_end = Some(self.clock_ns + clock::sync_duration(&mut self.rng));
        }
        Ok(())
    }

    /// The command just handed to the pipeline (`ticket`'s) goes through the mirror too,
    /// which keeps what its answer must say. Before each limit order, a client asks for a
    /// fee quote, as the terminal does; if the order then fills whole in one fill at the
    /// quoted price, the fee it is charged must be the quote's (`Engine::quote_fee`'s
    /// promise). Returns the command's sequence number.
    pub(crate) fn hand_over(&mut self, ticket: Ticket) -> Result<u64, Failure> {
        let server = self.server()?;
        let Some(command) = server.pipeline.batch().last().cloned() else {
            return Err(self.fail("a command handed over is not in the batch".into()));
        };
        let quote = match &command.kind {
            CommandKind::PlaceOrder(order) if order.price.is_some() => self
                .mirror
                .quote_fee(
                    order.account,
                    order.product,
                    order.side,
                    order.qty,
                    order.price,
                )
                .ok()
                .map(|quote| (order.qty, quote)),
            _ => None,
        };
        let mut events = Vec::new();
        let result = self.mirror.apply(&command, &mut events);
        self.generator.observe(&events);
        if let Some((qty, quote)) = quote {
            self.report.fee_quotes += 1;
            if check_quote(&events, qty, &quote).map_err(|e| self.fail(e))? {
                self.report.fee_quotes_checked += 1;
            }
        }
        let mut bytes = Vec::new();
        codec::encode(&command, &mut bytes);
        let arrived_ns = self.clock_ns;
        self.server()?.waiting.push_back(Waiting {
            ticket,
            seq: command.seq,
            timestamp_ms: command.timestamp_ms,
            arrived_ns,
            bytes,
            result,
            events,
            answer: None,
        });
        Ok(command.seq)
    }

    /// Takes the answers that arrived; `false` when the pipeline stopped (the server fails
    /// stop).
    pub(crate) fn collect(&mut self) -> Result<bool, Failure> {
        let Some(mut server) = self.server.take() else {
            return Err(self.fail("the server is down".into()));
        };
        let stopped = server.pipeline.stopped();
        let committed = server.pipeline.stats().committed_seq;
        let mut taken = self.take_answers(&mut server.waiting, stopped.is_some());
        if let Some(w) = server.waiting.front()
            && w.seq <= committed
            && stopped.is_none()
            && taken.is_ok()
        {
            // What is committed is answered at once.
            taken = Err(self.fail(format!(
                "command {} is committed (through {committed}) and not answered",
                w.seq
            )));
        }
        self.server = Some(server);
        taken.map(|()| stopped.is_none())
    }

    /// Each answer must come in order, carry its command's sequence number and time and the
    /// mirror's outcome; an answered command is acknowledged. Only a stopped pipeline
    /// answers with an error.
    pub(crate) fn take_answers(
        &mut self,
        waiting: &mut VecDeque<Waiting>,
        stopped: bool,
    ) -> Result<(), Failure> {
        for w in waiting.iter_mut().filter(|w| w.answer.is_none()) {
            w.answer = w.ticket.try_take();
        }
        // Nothing is answered before what was handed over ahead of it.
        if let Some(early) = waiting
            .iter()
            .skip_while(|w| w.answer.is_some())
            .find(|w| matches!(w.answer, Some(Ok(_))))
        {
            return Err(self.fail(format!(
                "command {} was answered before an earlier one",
                early.seq
            )));
        }
        while let Some(w) = waiting.pop_front_if(|w| w.answer.is_some()) {
            match w.answer {
                Some(Ok(outcome)) => {
                    if (outcome.seq, outcome.timestamp_ms) != (w.seq, w.timestamp_ms)
                        || outcome.result != w.result
                        || outcome.events != w.events
                    {
                        return Err(self.fail(format!(
                            "command {}'s answer (seq {}) is not what the engine made of it",
                            w.seq, outcome.seq
                        )));
                    }
                    self.report.acknowledged += 1;
                    self.report.ack_latency.record(self.clock_ns - w.arrived_ns);
                    self.acked.push((w.seq, w.bytes));
                }
                _ if stopped => {}
                other => {
                    return Err(self.fail(format!(
                        "command {} was refused by a running pipeline: {other:?}",
                        w.seq
                    )));
                }
            }
        }
        Ok(())
    }

    /// The history thread's bus: what the pipeline published goes to the history. `false`
    /// when the pipeline stopped.
    pub(crate) fn publish(&mut self) -> Result<bool, Failure> {
        let Some(mut server) = self.server.take() else {
            return Err(self.fail("the server is down".into()));
        };
        let drained = self.drain_bus(&mut server.bus);
        let running = server.pipeline.stopped().is_none();
        self.server = Some(server);
        drained.map(|()| running)
    }

    pub(crate) fn drain_bus(
        &mut self,
        bus: &mut broadcast::Receiver<Arc<EventBatch>>,
    ) -> Result<(), Failure> {
        loop {
            match bus.try_recv() {
                Ok(batch) => {
                    let event_seq = batch.events.last().map_or(0, |e| e.seq);
                    self.history
                        .published(batch.last_seq, event_seq, &batch.events);
                }
                Err(
                    broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed,
                ) => return Ok(()),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    return Err(self.fail(format!("the history fell {n} batches behind")));
                }
            }
        }
    }

    /// The end of a run: the pipeline shuts down (everything appended committed, answered
    /// and published), its engine equal to the mirror's. A sync that failed before and that
    /// the engine thread only now takes stops it: the server is started again, and shut
    /// down again. `true` when that recovery refused a corruption (the run ends there).
    pub(crate) fn shut_down(&mut self) -> Result<bool, Failure> {
        loop {
            let Some(mut server) = self.server.take() else {
                return Err(self.fail("the server is down".into()));
            };
            let Ok(finished) = server.pipeline.finish() else {
                if self.crash_and_recover()? {
                    return Ok(true);
                }
                self.set_faults(self.no_faults());
                continue;
            };
            self.take_answers(&mut server.waiting, false)?;
            if let Some(w) = server.waiting.front() {
                return Err(self.fail(format!("command {} unanswered at shutdown", w.seq)));
            }
            self.drain_bus(&mut server.bus)?;
            if finished.state_hash != self.mirror.state_hash() {
                return Err(self.fail(format!(
                    "the pipeline's engine (to {}) and the mirror disagree",
                    finished.last_seq
                )));
            }
            return Ok(false);
        }
    }
}
