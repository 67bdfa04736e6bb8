//! Snapshots taken in a `fork()`ed child, so the engine thread pauses only for the fork.
//!
//! This is what Redis's `BGSAVE` does. [`fork_snapshot`] forks the process; the child shares
//! the parent's memory copy-on-write, so it sees the engine exactly as it was at the fork
//! whatever the parent does next. The child builds the image ([`Engine::to_image`]), encodes
//! it and writes it with [`write_encoded`] (temporary file, fsync, rename, directory fsync,
//! retention), sends one short report up a pipe and leaves with `_exit`. The parent's pause is
//! the `fork` itself (copying the page tables: tens of milliseconds for a gigabyte of touched
//! memory), not the size of the state. Afterwards every page the parent writes while the child
//! lives is copied once (a copy-on-write fault, a few microseconds), so the parent runs a little
//! slower and uses more memory until the child exits; the child's own allocations (the image
//! and the encoded payload) are the rest of the extra memory. The parent reaps the child with
//! [`SnapshotChild::try_wait`] (non-blocking) or [`SnapshotChild::wait`].
//!
//! # Why the child is safe
//!
//! After `fork` only the forking thread exists in the child; any lock another thread held at
//! that instant stays held forever there. So the child runs only code that takes no lock
//! another thread could have held:
//!
//! - Memory: glibc's `malloc` is fork-safe (it takes its arena locks around `fork` and resets
//!   them in the child), so the child may allocate. A program that installs another global
//!   allocator must use a fork-safe one.
//! - No printing: the locks of `stdout` and `stderr` may be held by another thread. The child
//!   reports only through its pipe, with raw `write(2)`. Its panic hook is replaced by a silent
//!   one before any work, and panics are caught (`catch_unwind`) and reported as errors.
//! - No other shared state: the child reads the engine (which the caller lent it, so no thread
//!   was changing it at the fork), touches no journal mapping, socket or channel it inherited,
//!   and does only file-system calls on its own new files.
//! - It never returns into the caller's code: whatever happens, it ends in `libc::_exit`, which
//!   runs no destructors, `atexit` handlers or buffered-stream flushes of the parent's state.
//!   A child that dies of a signal (including an allocation failure's abort) is reported as an
//!   error, never as a snapshot.
//! - The pipe is created close-on-exec, and its report fits in one atomic write (at most
//!   `PIPE_BUF` bytes), so the parent reads it whole after the child has exited, with a
//!   non-blocking read: a descriptor inherited by some other process cannot make it hang.
//!
//! The parent must reap every child: [`SnapshotChild::try_wait`] until it answers, or
//! [`SnapshotChild::wait`]. Dropping a [`SnapshotChild`] that has not been reaped kills the
//! child (`SIGKILL`) and reaps it, abandoning that snapshot (it leaves at most a temporary file,
//! which loading ignores). A program that sets `SIGCHLD` to `SIG_IGN` cannot reap its children;
//! `try_wait` then reports an error.
//!
//! Unix only. The in-thread path ([`Engine::to_image`] on the engine thread, then [`encode`]
//! and [`write_encoded`] anywhere) remains available.
//!
//! [`encode`]: crate::encode

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bourse_engine::Engine;

use crate::error::SnapshotError;
use crate::format::encode;
use crate::store::{snapshot_file_name, write_encoded};

/// The largest report a child sends (`PIPE_BUF` on Linux, so one write is atomic).
const REPORT_MAX: usize = 4096;
/// Status byte, five `u64`s, a `u32` length, then the text.
const REPORT_HEAD: usize = 1 + 5 * 8 + 4;

const EXIT_OK: i32 = 0;
const EXIT_ERROR: i32 = 1;
const EXIT_PANIC: i32 = 2;

/// What a successful child reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotOutcome {
    /// The engine sequence number the snapshot was taken at.
    pub seq: u64,
    /// The snapshot file written.
    pub path: PathBuf,
    /// [`Engine::to_image`] in the child.
    pub to_image: Duration,
    /// [`encode`](crate::encode) in the child.
    pub encode: Duration,
    /// [`write_encoded`] (write, fsync, rename, directory fsync, retention) in the child.
    pub write: Duration,
    /// From the `fork` call returning in the parent to the moment the parent reaped the child.
    pub elapsed: Duration,
    /// The child's peak resident set (`VmHWM`), in KiB, 0 if unknown. It counts the pages the
    /// child shares with the parent as well as its own.
    pub child_peak_rss_kib: u64,
    /// The child's private memory at the end (`Private_Clean + Private_Dirty` of
    /// `/proc/self/smaps_rollup`), in KiB, 0 if unknown: roughly what the child added.
    pub child_private_kib: u64,
}

/// A snapshot being written by a forked child. Reap it with [`try_wait`](Self::try_wait) or
/// [`wait`](Self::wait); dropping it unreaped kills the child.
#[derive(Debug)]
pub struct SnapshotChild {
    /// The child's process id.
    pub pid: libc::pid_t,
    /// The engine sequence number the snapshot is taken at.
    pub seq: u64,
    /// How long the parent was inside `fork_snapshot` (pipe, `fork`): the engine's pause.
    pub pause: Duration,
    path: PathBuf,
    /// The read end of the report pipe (non-blocking, close-on-exec).
    report: libc::c_int,
    forked_at: Instant,
    reaped: bool,
}

/// Forks a child that writes the snapshot of `engine`, taken after command `seq`, into `dir`
/// (keeping the newest `keep_newest`), and returns at once. See the module docs.
pub fn fork_snapshot(
    engine: &Engine,
    seq: u64,
    dir: &Path,
    keep_newest: usize,
) -> Result<SnapshotChild, SnapshotError> {
    if keep_newest == 0 {
        return Err(SnapshotError::KeepNone);
    }
    let start = Instant::now();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SnapshotError::io(dir, io::Error::last_os_error()));
    }
    let [read_end, write_end] = fds;
    // SAFETY: fork has no memory-safety preconditions of its own; the child below runs only
    // fork-safe code and always ends in `_exit` (see the module docs).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The child: never returns.
        // SAFETY: our own descriptor, not used again in the child.
        unsafe { libc::close(read_end) };
        child_main(engine, seq, dir, keep_newest, write_end);
    }
    let fork_error = (pid < 0).then(io::Error::last_os_error);
    // SAFETY: our own descriptors; the write end belongs to the child now.
    unsafe {
        libc::close(write_end);
    }
    if let Some(e) = fork_error {
        // SAFETY: our own descriptor, not used again.
        unsafe { libc::close(read_end) };
        return Err(SnapshotError::Fork(e));
    }
    // SAFETY: `read_end` is an open descriptor; F_SETFL with O_NONBLOCK changes only its mode.
    unsafe {
        let flags = libc::fcntl(read_end, libc::F_GETFL);
        libc::fcntl(read_end, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let forked_at = Instant::now();
    Ok(SnapshotChild {
        pid,
        seq,
        pause: forked_at - start,
        path: dir.join(snapshot_file_name(seq)),
        report: read_end,
        forked_at,
        reaped: false,
    })
}

impl SnapshotChild {
    /// Without blocking: `None` while the child runs; once it has exited, what it reported
    /// (`Ok(Some)`) or why it failed (`Err`: its error, a panic, a signal, no report). After an
    /// answer other than `None` the child is reaped and later calls return an error.
    pub fn try_wait(&mut self) -> Result<Option<SnapshotOutcome>, SnapshotError> {
        self.reap(libc::WNOHANG)
    }

    /// Blocks until the child exits; then as [`try_wait`](Self::try_wait).
    pub fn wait(mut self) -> Result<SnapshotOutcome, SnapshotError> {
        match self.reap(0)? {
            Some(outcome) => Ok(outcome),
            None => Err(SnapshotError::Child(format!(
                "waitpid({}) returned without the child's exit",
                self.pid
            ))),
        }
    }

    fn reap(&mut self, flags: libc::c_int) -> Result<Option<SnapshotOutcome>, SnapshotError> {
        if self.reaped {
            return Err(SnapshotError::Child(format!(
                "snapshot child {} already reaped",
                self.pid
            )));
        }
        let mut status: libc::c_int = 0;
        let r = loop {
            // SAFETY: `status` is a valid out-pointer; `pid` is our child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break r;
        };
        if r == 0 {
            return Ok(None);
        }
        let elapsed = self.forked_at.elapsed();
        self.reaped = true;
        if r < 0 {
            return Err(SnapshotError::Child(format!(
                "waitpid({}): {}",
                self.pid,
                io::Error::last_os_error()
            )));
        }
        let report = self.read_report();
        if libc::WIFSIGNALED(status) {
            return Err(SnapshotError::Child(format!(
                "snapshot child {} killed by signal {}",
                self.pid,
                libc::WTERMSIG(status)
            )));
        }
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        };
        let Some(report) = report else {
            return Err(SnapshotError::Child(format!(
                "snapshot child {} exited with status {code} and no report",
                self.pid
            )));
        };
        match (code, report.ok) {
            (EXIT_OK, true) => Ok(Some(SnapshotOutcome {
                seq: self.seq,
                path: self.path.clone(),
                to_image: Duration::from_nanos(report.numbers[0]),
                encode: Duration::from_nanos(report.numbers[1]),
                write: Duration::from_nanos(report.numbers[2]),
                elapsed,
                child_peak_rss_kib: report.numbers[3],
                child_private_kib: report.numbers[4],
            })),
            _ => Err(SnapshotError::Child(report.text)),
        }
    }

    /// The report, if the child wrote one (it wrote it whole, before exiting).
    fn read_report(&self) -> Option<Report> {
        let mut buffer = [0u8; REPORT_MAX];
        let n = loop {
            // SAFETY: reading into our own buffer of the given length.
            let n = unsafe { libc::read(self.report, buffer.as_mut_ptr().cast(), REPORT_MAX) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        Report::parse(&buffer[..usize::try_from(n).ok()?])
    }
}

impl Drop for SnapshotChild {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: `pid` is our unreaped child, so the id cannot have been reused.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                let mut status = 0;
                while libc::waitpid(self.pid, &mut status, 0) < 0
                    && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {
                }
            }
        }
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.report) };
    }
}

struct Report {
    ok: bool,
    /// to_image, encode, write (ns), peak RSS, private memory (KiB).
    numbers: [u64; 5],
    text: String,
}

impl Report {
    fn encode(&self) -> ([u8; REPORT_MAX], usize) {
        let mut out = [0u8; REPORT_MAX];
        out[0] = u8::from(self.ok);
        for (i, n) in self.numbers.iter().enumerate() {
            out[1 + 8 * i..9 + 8 * i].copy_from_slice(&n.to_le_bytes());
        }
        let mut len = self.text.len().min(REPORT_MAX - REPORT_HEAD);
        while !self.text.is_char_boundary(len) {
            len -= 1;
        }
        out[REPORT_HEAD - 4..REPORT_HEAD].copy_from_slice(&(len as u32).to_le_bytes());
        out[REPORT_HEAD..REPORT_HEAD + len].copy_from_slice(&self.text.as_bytes()[..len]);
        (out, REPORT_HEAD + len)
    }

    fn parse(bytes: &[u8]) -> Option<Report> {
        if bytes.len() < REPORT_HEAD {
            return None;
        }
        let mut numbers = [0u64; 5];
        for (i, n) in numbers.iter_mut().enumerate() {
            *n = u64::from_le_bytes(bytes[1 + 8 * i..9 + 8 * i].try_into().ok()?);
        }
        let len = u32::from_le_bytes(bytes[REPORT_HEAD - 4..REPORT_HEAD].try_into().ok()?);
        let text = bytes.get(REPORT_HEAD..REPORT_HEAD + len as usize)?;
        Some(Report {
            ok: bytes[0] == 1,
            numbers,
            text: String::from_utf8_lossy(text).into_owned(),
        })
    }
}

/// The child's whole life: write the snapshot, report, `_exit`.
fn child_main(engine: &Engine, seq: u64, dir: &Path, keep_newest: usize, fd: libc::c_int) -> ! {
    // A panic must not print (the stderr lock may be held by a thread that no longer exists).
    std::mem::forget(std::panic::take_hook());
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_in_child(engine, seq, dir, keep_newest)
    }));
    let (code, report) = match result {
        Ok(Ok((numbers, path))) => (
            EXIT_OK,
            Report {
                ok: true,
                numbers,
                text: String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned(),
            },
        ),
        Ok(Err(e)) => (
            EXIT_ERROR,
            Report {
                ok: false,
                numbers: [0; 5],
                text: e.to_string(),
            },
        ),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            std::mem::forget(panic);
            (
                EXIT_PANIC,
                Report {
                    ok: false,
                    numbers: [0; 5],
                    text: format!("snapshot child panicked: {what}"),
                },
            )
        }
    };
    let (bytes, len) = report.encode();
    std::mem::forget(report);
    // SAFETY: writing our own buffer to our own pipe, then leaving without running anything of
    // the parent's: no destructors, no atexit handlers, no stdio flush.
    unsafe {
        libc::write(fd, bytes.as_ptr().cast(), len);
        libc::_exit(code)
    }
}

type ChildResult = Result<([u64; 5], PathBuf), SnapshotError>;

fn write_in_child(engine: &Engine, seq: u64, dir: &Path, keep_newest: usize) -> ChildResult {
    let t = Instant::now();
    let image = engine.to_image();
    let to_image = t.elapsed();
    let t = Instant::now();
    let encoded = encode(seq, &image)?;
    let encode_time = t.elapsed();
    // Freeing a million strings costs more than the peak it would save; `_exit` frees all.
    std::mem::forget(image);
    let t = Instant::now();
    let path = write_encoded(dir, seq, &encoded, keep_newest)?;
    let write = t.elapsed();
    std::mem::forget(encoded);
    let (peak, private) = memory_kib();
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Ok((
        [ns(to_image), ns(encode_time), ns(write), peak, private],
        path,
    ))
}

/// This process's `VmHWM` and private memory, in KiB (0 when unknown).
fn memory_kib() -> (u64, u64) {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    (
        field(&status, "VmHWM:"),
        field(&rollup, "Private_Clean:") + field(&rollup, "Private_Dirty:"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_truncate() {
        let report = Report {
            ok: true,
            numbers: [1, 2, 3, u64::MAX, 5],
            text: "é".repeat(REPORT_MAX),
        };
        let (bytes, len) = report.encode();
        assert!(len <= REPORT_MAX);
        let back = Report::parse(&bytes[..len]).unwrap();
        assert!(back.ok);
        assert_eq!(back.numbers, report.numbers);
        assert!(report.text.starts_with(&back.text));
        assert!(Report::parse(&bytes[..REPORT_HEAD - 1]).is_none());
    }
}
