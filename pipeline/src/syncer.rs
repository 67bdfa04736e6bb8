//! The sync thread of the single topology in durable mode.
//!
//! Group commit with the sync taken off the engine thread: the engine appends a batch to the
//! journal, hands the journal's [`PendingCommit`] here, and goes on applying that batch and
//! appending the next ones while this thread waits for the disk (`fdatasync` blocks in the
//! kernel; it costs no CPU). The engine holds every answer and event until the commit that
//! covers it is finished, so nothing is acknowledged before it is durable. One commit is out
//! at a time; whatever is appended meanwhile goes into the next one, so batches grow with
//! the load and the disk sees one sync per round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use bourse_journal::{PendingCommit, SyncedCommit};

use crate::shared::Shared;
use crate::wake::Waker;

pub(crate) const SYNCER_NAME: &str = "bourse-sync";

#[derive(Default)]
struct State {
    job: Option<PendingCommit>,
    done: Option<SyncedCommit>,
    quit: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes the sync thread (a job or quit) and a blocking waiter (done).
    changed: Condvar,
    /// Set with `done`, for the engine thread's lock-free check.
    done_flag: AtomicBool,
    engine: Waker,
    /// Where each sync's duration is recorded.
    shared: Arc<Shared>,
}

/// The engine thread's side of the sync thread.
pub(crate) struct Syncer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    /// A job is out (handed over and not yet taken back).
    busy: bool,
}

impl Syncer {
    /// Starts the thread; it wakes `engine` whenever a sync is done.
    pub(crate) fn start(engine: Waker, shared: Arc<Shared>) -> std::io::Result<Syncer> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            done_flag: AtomicBool::new(false),
            engine,
            shared,
        });
        let thread = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name(SYNCER_NAME.into())
                .spawn(move || run(&inner))?
        };
        Ok(Syncer {
            inner,
            thread: Some(thread),
            busy: false,
        })
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }

    /// Whether the job out is done (one atomic load).
    pub(crate) fn is_done(&self) -> bool {
        self.inner.done_flag.load(Ordering::Acquire)
    }

    /// Hands a commit to the thread. Only when not busy.
    pub(crate) fn submit(&mut self, job: PendingCommit) {
        debug_assert!(!self.busy, "one commit out at a time");
        let mut state = lock(&self.inner.state);
        state.job = Some(job);
        drop(state);
        self.inner.changed.notify_all();
        self.busy = true;
    }

    /// The finished sync, if the job out is done.
    pub(crate) fn try_take(&mut self) -> Option<SyncedCommit> {
        if !self.busy || !self.is_done() {
            return None;
        }
        self.take_done()
    }

    /// Waits for the job out, if there is one.
    pub(crate) fn wait(&mut self) -> Option<SyncedCommit> {
        if !self.busy {
            return None;
        }
        let mut state = lock(&self.inner.state);
        while state.done.is_none() {
            state = self
                .inner
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(state);
        self.take_done()
    }

    fn take_done(&mut self) -> Option<SyncedCommit> {
        let done = lock(&self.inner.state).done.take();
        if done.is_some() {
            self.inner.done_flag.store(false, Ordering::Release);
            self.busy = false;
        }
        done
    }
}

impl Drop for Syncer {
    /// Stops the thread after the job out (a sync cannot be interrupted).
    fn drop(&mut self) {
        lock(&self.inner.state).quit = true;
        self.inner.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(inner: &Inner) {
    loop {
        let job = {
            let mut state = lock(&inner.state);
            loop {
                if let Some(job) = state.job.take() {
                    break job;
                }
                if state.quit {
                    return;
                }
                state = inner.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let started = Instant::now();
        let synced = job.sync();
        let took = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        inner
            .shared
            .sync_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(took.max(1));
        lock(&inner.state).done = Some(synced);
        inner.done_flag.store(true, Ordering::Release);
        inner.changed.notify_all();
        inner.engine.wake();
    }
}

/// Where the engine thread's durable syncs run: on the sync thread, or (a simulation,
/// [`crate::Stepped`]) when the caller steps the sync thread.
pub(crate) enum SyncDriver {
    Thread(Syncer),
    Stepped(SteppedSync),
}

/// The sync thread's work without the thread: the commit handed over waits until
/// [`SteppedSync::run`].
#[derive(Default)]
pub(crate) struct SteppedSync {
    job: Option<PendingCommit>,
    done: Option<SyncedCommit>,
}

impl SteppedSync {
    /// Syncs the commit handed over, if one waits; `true` if one did.
    pub(crate) fn run(&mut self) -> bool {
        match self.job.take() {
            Some(job) => {
                self.done = Some(job.sync());
                true
            }
            None => false,
        }
    }

    /// A commit waits for [`SteppedSync::run`].
    pub(crate) fn waiting(&self) -> bool {
        self.job.is_some()
    }
}

impl SyncDriver {
    /// A commit is out (handed over and not yet taken back).
    pub(crate) fn is_busy(&self) -> bool {
        match self {
            SyncDriver::Thread(syncer) => syncer.is_busy(),
            SyncDriver::Stepped(stepped) => stepped.job.is_some() || stepped.done.is_some(),
        }
    }

    /// The commit out is synced.
    pub(crate) fn is_done(&self) -> bool {
        match self {
            SyncDriver::Thread(syncer) => syncer.is_done(),
            SyncDriver::Stepped(stepped) => stepped.done.is_some(),
        }
    }

    /// Hands a commit over. Only when not busy.
    pub(crate) fn submit(&mut self, job: PendingCommit) {
        match self {
            SyncDriver::Thread(syncer) => syncer.submit(job),
            SyncDriver::Stepped(stepped) => {
                debug_assert!(stepped.job.is_none() && stepped.done.is_none());
                stepped.job = Some(job);
            }
        }
    }

    /// The finished sync, if the commit out is done.
    pub(crate) fn try_take(&mut self) -> Option<SyncedCommit> {
        match self {
            SyncDriver::Thread(syncer) => syncer.try_take(),
            SyncDriver::Stepped(stepped) => stepped.done.take(),
        }
    }

    /// Waits for the commit out, if there is one (a stepped one is synced now, as the
    /// engine thread waiting for the sync thread would see it finish).
    pub(crate) fn wait(&mut self) -> Option<SyncedCommit> {
        match self {
            SyncDriver::Thread(syncer) => syncer.wait(),
            SyncDriver::Stepped(stepped) => {
                stepped.run();
                stepped.done.take()
            }
        }
    }
}
