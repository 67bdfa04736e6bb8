//! The running history: the thread that folds every event batch, and the handle readers share.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bourse_pipeline::EventBatch;
use tokio::sync::{broadcast, watch};

use crate::{Entry, History, HistoryLog};

/// What the history thread tells after each event batch (the API's fan-out implements it).
pub trait Observer: Send + 'static {
    /// Called right after `entries` were folded into `model`, with the model still
    /// write-locked: nothing reads it in between, so a subscription that takes a snapshot of
    /// the model under its read lock is followed by exactly what is published here.
    fn folded(&mut self, model: &History, entries: &[Entry]);
    /// Called after the lock is released and readers were told of the new progress;
    /// `newest_event_seq` is the batch's last event.
    fn released(&mut self, entries: &[Entry], newest_event_seq: u64);
}

/// An observer that does nothing (tools and tests that only need the model).
impl Observer for () {
    fn folded(&mut self, _: &History, _: &[Entry]) {}
    fn released(&mut self, _: &[Entry], _: u64) {}
}

/// The shared, running history: the model, its progress, and the thread that feeds it.
#[derive(Clone)]
pub struct HistoryHandle {
    model: Arc<RwLock<History>>,
    progress: watch::Receiver<u64>,
}

/// How long a read waits for the history to catch up with the engine before answering 503.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

impl HistoryHandle {
    /// Starts the history thread on the bus receiver `rx` (subscribed before any new command
    /// was applied). After each batch it calls `observer` (see [`Observer`]).
    pub fn spawn(
        history: History,
        mut log: HistoryLog,
        mut rx: broadcast::Receiver<Arc<EventBatch>>,
        mut observer: impl Observer,
    ) -> Result<(HistoryHandle, std::thread::JoinHandle<()>), String> {
        let (progress_tx, progress) = watch::channel(history.event_seq());
        let model = Arc::new(RwLock::new(history));
        let writer = Arc::clone(&model);
        let thread = std::thread::Builder::new()
            .name("bourse-history".into())
            .spawn(move || {
                let mut entries = Vec::new();
                loop {
                    let batch = match rx.blocking_recv() {
                        Ok(batch) => batch,
                        Err(broadcast::error::RecvError::Closed) => return,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let why = format!(
                                "the history fell {missed} event batches behind and stopped; \
                                 a restart rebuilds it"
                            );
                            tracing::error!("{why}");
                            write_model(&writer).broken = Some(why);
                            return;
                        }
                    };
                    entries.clear();
                    entries.extend(batch.events.iter().filter_map(Entry::of));
                    let newest = batch.events.last().map_or(0, |e| e.seq);
                    if let Err(why) = log.append(batch.last_seq, newest, &entries) {
                        tracing::error!("{why}; the history stopped");
                        write_model(&writer).broken = Some(why);
                        return;
                    }
                    let mut model = write_model(&writer);
                    model.fold(batch.last_seq, newest, &entries);
                    observer.folded(&model, &entries);
                    let seen = model.event_seq;
                    drop(model);
                    progress_tx.send_replace(seen);
                    observer.released(&entries, newest);
                }
            })
            .map_err(|e| format!("cannot start the history thread: {e}"))?;
        Ok((HistoryHandle { model, progress }, thread))
    }

    /// Waits (up to a few seconds) until every event up to `event_seq` is folded, then reads.
    pub async fn read<T>(
        &self,
        event_seq: u64,
        read: impl FnOnce(&History) -> T,
    ) -> Result<T, String> {
        let mut progress = self.progress.clone();
        let waited = tokio::time::timeout(CATCH_UP_WAIT, progress.wait_for(|s| *s >= event_seq));
        let caught_up = matches!(waited.await, Ok(Ok(_)));
        let model = self.model.read().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = model.broken() {
            return Err(why.to_string());
        }
        if !caught_up {
            return Err(format!(
                "the history is behind the engine (at event {}, engine at {event_seq})",
                model.event_seq()
            ));
        }
        Ok(read(&model))
    }

    /// The newest event folded.
    pub fn event_seq(&self) -> u64 {
        *self.progress.borrow()
    }

    /// Runs `f` with the model read-locked: nothing is folded (or published) meanwhile.
    pub fn with_model<T>(&self, f: impl FnOnce(&History) -> T) -> T {
        f(&self.model.read().unwrap_or_else(|p| p.into_inner()))
    }
}

fn write_model(model: &RwLock<History>) -> std::sync::RwLockWriteGuard<'_, History> {
    model.write().unwrap_or_else(|p| p.into_inner())
}
