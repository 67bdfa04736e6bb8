//! The running history: the thread that folds every event batch, and the handle readers share.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use bourse_journal::Storage;
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
    /// Set once when the history thread failed (its log, a panic): the server stops.
    failure: Arc<OnceLock<String>>,
    /// Set once when the thread fell behind the bus: the history is unavailable until a
    /// restart rebuilds it, and trading goes on.
    lagged: Arc<OnceLock<String>>,
}

/// How often the history thread syncs its log (at the first batch after this long).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How long a read waits for the history to catch up with the engine before answering 503.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

impl HistoryHandle {
    /// Starts the history thread on the bus receiver `rx` (subscribed before any new command
    /// was applied). After each batch it calls `observer` (see [`Observer`]). About once a
    /// second ([`SYNC_EVERY`]), and when the bus closes, it syncs the log and stores in
    /// `durable` the command the log holds durably through: the command journal's retention
    /// floor (`bourse_store::Store::set_retention_floor`).
    pub fn spawn<S: Storage>(
        history: History,
        mut log: HistoryLog<S>,
        mut rx: broadcast::Receiver<Arc<EventBatch>>,
        mut observer: impl Observer,
        durable: Arc<AtomicU64>,
    ) -> Result<(HistoryHandle, std::thread::JoinHandle<()>), String> {
        let (progress_tx, progress) = watch::channel(history.event_seq());
        let model = Arc::new(RwLock::new(history));
        let failure = Arc::new(OnceLock::new());
        let lagged = Arc::new(OnceLock::new());
        let thread = {
            let model = Arc::clone(&model);
            let failure = Arc::clone(&failure);
            let lagged = Arc::clone(&lagged);
            std::thread::Builder::new()
                .name("bourse-history".into())
                .spawn(move || {
                    let folding = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        fold_batches(
                            &model,
                            &mut log,
                            &mut rx,
                            &mut observer,
                            &progress_tx,
                            &durable,
                        )
                    }));
                    let why = match folding {
                        Ok(Ok(())) => return,
                        Ok(Err(Stop::Lagged(why))) => {
                            // Not the server's failure: trading goes on, the history
                            // answers 503 until a restart rebuilds it.
                            tracing::error!("{why}");
                            let _ = lagged.set(why);
                            return;
                        }
                        Ok(Err(Stop::Failed(why))) => why,
                        Err(panic) => format!(
                            "the history thread panicked: {}",
                            bourse_pipeline::panic_message(&*panic)
                        ),
                    };
                    tracing::error!("{why}");
                    let _ = failure.set(why);
                })
                .map_err(|e| format!("cannot start the history thread: {e}"))?
        };
        Ok((
            HistoryHandle {
                model,
                progress,
                failure,
                lagged,
            },
            thread,
        ))
    }

    /// Why the history failed (its log failed, a panic while folding): the server stops
    /// then, and a restart rebuilds the history from the journal. Falling behind the bus is
    /// not a failure of the server: the history is then unavailable (reads answer an error)
    /// until a restart, and trading goes on.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// The model, read-locked; an error once the history failed (a panic while folding
    /// poisons the lock: a half-folded model is never read).
    fn read_model(&self) -> Result<RwLockReadGuard<'_, History>, String> {
        if let Some(why) = self.failure().or(self.lagged.get().map(String::as_str)) {
            return Err(why.to_string());
        }
        self.model
            .read()
            .map_err(|_| "the history failed while folding a batch".to_string())
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
        let model = self.read_model()?;
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

    /// Runs `f` with the model read-locked: nothing is folded (or published) meanwhile. An
    /// error once the history failed.
    pub fn with_model<T>(&self, f: impl FnOnce(&History) -> T) -> Result<T, String> {
        Ok(f(&*self.read_model()?))
    }
}

/// Why the history thread stopped before the bus closed.
enum Stop {
    /// It fell behind the bus and missed batches.
    Lagged(String),
    /// Its log or its lock failed.
    Failed(String),
}

/// The history log's syncs, on a thread of their own so that the history thread (and the
/// fills it hands the market data) never waits on the disk.
struct Syncer {
    to_sync: std::sync::mpsc::SyncSender<(bourse_journal::PendingCommit, u64)>,
    synced: std::sync::mpsc::Receiver<(bourse_journal::SyncedCommit, u64)>,
    /// A sync is out.
    out: bool,
    /// When the last one started.
    started: Instant,
}

impl Syncer {
    fn start() -> Result<Syncer, Stop> {
        let (to_sync, jobs) =
            std::sync::mpsc::sync_channel::<(bourse_journal::PendingCommit, u64)>(1);
        let (done, synced) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("bourse-history-sync".into())
            .spawn(move || {
                for (pending, through) in jobs {
                    if done.send((pending.sync(), through)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Stop::Failed(format!("cannot start the history's sync thread: {e}")))?;
        Ok(Syncer {
            to_sync,
            synced,
            out: false,
            started: Instant::now(),
        })
    }

    /// Takes a finished sync (raising `durable` to what it covers) and starts the next one
    /// once [`SYNC_EVERY`] has passed since the last.
    fn pump<S: Storage>(
        &mut self,
        log: &mut HistoryLog<S>,
        durable: &AtomicU64,
    ) -> Result<(), Stop> {
        if self.out
            && let Ok(done) = self.synced.try_recv()
        {
            self.land(log, durable, done)?;
        }
        if !self.out && self.started.elapsed() >= SYNC_EVERY {
            let job = log.start_sync().map_err(failed)?;
            self.to_sync
                .send(job)
                .map_err(|_| Stop::Failed("the history's sync thread stopped".into()))?;
            self.out = true;
            self.started = Instant::now();
        }
        Ok(())
    }

    /// A finished sync handed back to the log; `durable` raised to what it covers.
    fn land<S: Storage>(
        &mut self,
        log: &mut HistoryLog<S>,
        durable: &AtomicU64,
        (synced, through): (bourse_journal::SyncedCommit, u64),
    ) -> Result<(), Stop> {
        self.out = false;
        log.finish_sync(synced).map_err(failed)?;
        durable.fetch_max(through, Ordering::AcqRel);
        Ok(())
    }

    /// The bus closed: the sync out finished, then everything synced.
    fn finish<S: Storage>(
        mut self,
        log: &mut HistoryLog<S>,
        durable: &AtomicU64,
    ) -> Result<(), Stop> {
        if self.out {
            let done = self
                .synced
                .recv()
                .map_err(|_| Stop::Failed("the history's sync thread stopped".into()))?;
            self.land(log, durable, done)?;
        }
        let through = log.sync().map_err(failed)?;
        durable.fetch_max(through, Ordering::AcqRel);
        Ok(())
    }
}

fn failed(why: String) -> Stop {
    Stop::Failed(format!("the history log failed: {why}"))
}

/// The history thread's work: folds every batch of the bus until it closes. An error says
/// why the history cannot go on.
fn fold_batches<S: Storage>(
    model: &RwLock<History>,
    log: &mut HistoryLog<S>,
    rx: &mut broadcast::Receiver<Arc<EventBatch>>,
    observer: &mut impl Observer,
    progress: &watch::Sender<u64>,
    durable: &AtomicU64,
) -> Result<(), Stop> {
    let mut entries = Vec::new();
    let mut syncer = Syncer::start()?;
    loop {
        let batch = match rx.blocking_recv() {
            Ok(batch) => batch,
            Err(broadcast::error::RecvError::Closed) => return syncer.finish(log, durable),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                return Err(Stop::Lagged(format!(
                    "the history fell {missed} event batches behind; a restart rebuilds it"
                )));
            }
        };
        entries.clear();
        entries.extend(batch.events.iter().filter_map(Entry::of));
        let newest = batch.events.last().map_or(0, |e| e.seq);
        log.append(batch.last_seq, newest, &entries)
            .map_err(failed)?;
        syncer.pump(log, durable)?;
        let mut guard = model
            .write()
            .map_err(|_| Stop::Failed("the history's lock is poisoned".to_string()))?;
        guard.fold(batch.last_seq, newest, &entries);
        fail::fail_point!("history::fold");
        observer.folded(&guard, &entries);
        let seen = guard.event_seq;
        drop(guard);
        progress.send_replace(seen);
        observer.released(&entries, newest);
    }
}
