//! Spin-then-park: how a pipeline thread waits for work without burning a core.
//!
//! A waiting thread spins for a short budget (work that arrives within it is picked up in
//! well under a microsecond), then announces that it sleeps and parks. Whoever hands it work
//! calls [`Waker::wake`] after publishing, which unparks it only if it announced sleep.
//!
//! The handshake is Dekker's: the sleeper stores `sleeping = true`, issues a SeqCst fence,
//! and checks for work once more before parking; the publisher makes its work visible,
//! issues a SeqCst fence, and then reads `sleeping`. At least one of the two sees the other's
//! write, so work is never left waiting for a sleeper that nobody wakes. `park` may also
//! return spuriously; the loop simply checks again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The waking side of a thread that waits with [`Sleeper::wait_until`].
#[derive(Debug, Clone)]
pub struct Waker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    thread: Thread,
    sleeping: AtomicBool,
    /// How often the thread parked (idle CPU evidence for tests and metrics).
    parks: AtomicU64,
}

impl Waker {
    /// Wakes the thread if it sleeps. Call after the work is visible (published).
    #[inline]
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.inner.sleeping.load(Ordering::Relaxed) {
            self.inner.thread.unpark();
        }
    }

    /// The thread it wakes.
    pub fn thread(&self) -> &Thread {
        &self.inner.thread
    }

    /// How many times the thread has parked so far.
    pub fn parks(&self) -> u64 {
        self.inner.parks.load(Ordering::Relaxed)
    }
}

/// The waiting side; owned by the thread that waits.
#[derive(Debug)]
pub struct Sleeper {
    inner: Arc<Inner>,
    spin: Duration,
    /// Longest park before the thread looks around by itself (housekeeping such as reaping a
    /// snapshot child); correctness never depends on it.
    park_max: Duration,
}

impl Sleeper {
    /// A sleeper for the current thread, spinning for `spin` before it parks.
    pub fn for_current_thread(spin: Duration, park_max: Duration) -> (Sleeper, Waker) {
        let inner = Arc::new(Inner {
            thread: std::thread::current(),
            sleeping: AtomicBool::new(false),
            parks: AtomicU64::new(0),
        });
        (
            Sleeper {
                inner: Arc::clone(&inner),
                spin,
                park_max,
            },
            Waker { inner },
        )
    }

    /// The waking side of this sleeper.
    pub fn waker(&self) -> Waker {
        Waker {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Returns once `ready()` is true, or after at most about `park_max` (the caller's loop
    /// checks again either way).
    pub fn wait_until(&self, ready: impl FnMut() -> bool) {
        self.wait_until_spinning(self.spin, ready)
    }

    /// As [`Sleeper::wait_until`], spinning for `spin` instead of the configured budget.
    pub fn wait_until_spinning(&self, spin: Duration, mut ready: impl FnMut() -> bool) {
        let started = Instant::now();
        let mut spins = 0u32;
        while !ready() {
            spins = spins.wrapping_add(1);
            // Reading the clock every spin costs more than the spin; every 64th is plenty.
            if spins.is_multiple_of(64) && started.elapsed() >= spin {
                self.inner.sleeping.store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if !ready() {
                    self.inner.parks.fetch_add(1, Ordering::Relaxed);
                    std::thread::park_timeout(self.park_max);
                }
                self.inner.sleeping.store(false, Ordering::Relaxed);
                return;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_published_flag_is_never_missed() {
        // Many rounds of: the waiter parks (no spin budget), the other thread sets the flag
        // and wakes it. A missed wake-up would show as a round that lasts the whole
        // ten-second park.
        for _ in 0..2_000 {
            let started = Instant::now();
            let flag = Arc::new(AtomicBool::new(false));
            let (tx, rx) = std::sync::mpsc::channel();
            let waiter = {
                let flag = Arc::clone(&flag);
                std::thread::spawn(move || {
                    let (sleeper, waker) =
                        Sleeper::for_current_thread(Duration::ZERO, Duration::from_secs(10));
                    tx.send(waker).unwrap();
                    while !flag.load(Ordering::Acquire) {
                        sleeper.wait_until(|| flag.load(Ordering::Acquire));
                    }
                })
            };
            let waker = rx.recv().unwrap();
            flag.store(true, Ordering::Release);
            waker.wake();
            waiter.join().unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "a wake-up was missed"
            );
        }
    }
}
