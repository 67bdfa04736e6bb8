//! Test support: a real tansu broker (Kafka protocol, memory storage) on a free loopback port.
//!
//! Install tansu once with
//! `cargo install tansu --version 0.6.0 --features dynostore,libsql --locked` (`libsql` for
//! the persistent storage of [`TansuBroker::start_persistent`]); it is found through
//! `$TANSU_BIN`, the `PATH` or `$CARGO_HOME/bin` (`~/.cargo/bin`). tansu listens on IPv4 only,
//! so the broker address is `127.0.0.1:PORT` (or another IPv4 address of this machine, with
//! [`TansuBroker::start_persistent_on`]). Its memory storage lives in the process:
//! [`TansuBroker::pause`] (SIGSTOP) makes the broker go away without losing it, and
//! [`TansuBroker::resume`] (SIGCONT) brings it back.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::admin::broker_answers;

/// How long a started broker may take to answer its first metadata request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one readiness probe waits.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Attempts with a fresh port, should another process take the port between our probe and the
/// broker's bind.
const START_ATTEMPTS_MAX: usize = 3;

/// A tansu broker child process, killed on drop.
#[derive(Debug)]
pub struct TansuBroker {
    child: Child,
    /// The address it listens on and advertises (127.0.0.1 unless started with
    /// [`TansuBroker::start_persistent_on`]).
    host: String,
    port: u16,
    log_path: PathBuf,
    paused: bool,
    binary: PathBuf,
    storage: Storage,
}

/// Where a broker keeps its records.
#[derive(Clone, Debug)]
enum Storage {
    /// In the process (`memory://`): gone when it exits.
    Memory,
    /// An SQLite database `tansu.db` in this directory (`sqlite://`, tansu's `libsql`
    /// feature): kept across a kill and restart.
    Sqlite(PathBuf),
}

impl TansuBroker {
    /// Starts a broker with memory storage on a free `127.0.0.1` port and waits (bounded) until
    /// it answers a metadata request.
    pub fn start() -> anyhow::Result<TansuBroker> {
        start(Storage::Memory, "127.0.0.1")
    }

    /// Starts a broker that keeps its records in `dir` (an SQLite database; tansu must be
    /// installed with its `libsql` feature), so that [`TansuBroker::kill_and_restart`] finds
    /// them again.
    pub fn start_persistent(dir: &Path) -> anyhow::Result<TansuBroker> {
        start(Storage::Sqlite(dir.to_path_buf()), "127.0.0.1")
    }

    /// [`TansuBroker::start_persistent`] listening on and advertising `host` (an address of
    /// this machine, e.g. one end of a veth pair that a network namespace reaches).
    pub fn start_persistent_on(dir: &Path, host: &str) -> anyhow::Result<TansuBroker> {
        start(Storage::Sqlite(dir.to_path_buf()), host)
    }

    /// SIGKILLs the broker and starts it again on the same port and storage, waiting until it
    /// answers. With memory storage everything is gone; with persistent storage what it had
    /// written is back.
    pub fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        // SIGKILL ends a stopped process too; an error means it is already gone.
        let _ = self.child.kill();
        self.child.wait().context("wait for the killed tansu")?;
        let _ = std::fs::remove_file(&self.log_path);
        let (child, log_path) = spawn(&self.binary, &self.storage, &self.host, self.port)?;
        self.child = child;
        self.log_path = log_path;
        self.paused = false;
        self.wait_ready()
    }

    /// The bootstrap address, `HOST:PORT`.
    pub fn brokers(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The port the broker listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id (to read its CPU time, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file holding the broker's standard output and error.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the broker is stopped by [`TansuBroker::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Stops the broker process (SIGSTOP): connections stay open but nothing answers, as with
    /// a broker that hangs or a network that drops packets. Its memory storage is kept.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// Lets a paused broker run again (SIGCONT).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    fn signal(&mut self, signal: libc::c_int) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("tansu already exited ({status})");
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) only reads its two integer arguments. The pid is our own child, which
        // has not been reaped (try_wait above found it running and we hold the `Child`), so it
        // cannot have been reused by another process.
        let result = unsafe { libc::kill(pid, signal) };
        if result != 0 {
            return Err(std::io::Error::last_os_error()).context("kill(tansu)");
        }
        Ok(())
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; errors mean it is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// Finds the `tansu` binary: `$TANSU_BIN`, then the `PATH`, then `$CARGO_HOME/bin` or
/// `~/.cargo/bin`.
pub fn locate() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return Ok(PathBuf::from(path));
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let cargo_bin = cargo_home.map(|home| home.join("bin"));
    path_dirs
        .into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join("tansu"))
        .find(|candidate| candidate.is_file())
        .context(
            "tansu not found in $TANSU_BIN, PATH or ~/.cargo/bin; install it with \
             `cargo install tansu --version 0.6.0 --features dynostore,libsql --locked`",
        )
}

fn free_port(host: &str) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((host, 0)).with_context(|| format!("bind {host}:0"))?;
    Ok(listener.local_addr()?.port())
}

fn start(storage: Storage, host: &str) -> anyhow::Result<TansuBroker> {
    let binary = locate()?;
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS_MAX {
        match start_once(&binary, &storage, host) {
            Ok(broker) => return Ok(broker),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("tansu did not start")))
}

fn start_once(binary: &Path, storage: &Storage, host: &str) -> anyhow::Result<TansuBroker> {
    let port = free_port(host)?;
    let (child, log_path) = spawn(binary, storage, host, port)?;
    let mut broker = TansuBroker {
        child,
        host: host.to_owned(),
        port,
        log_path,
        paused: false,
        binary: binary.to_path_buf(),
        storage: storage.clone(),
    };
    broker.wait_ready()?;
    Ok(broker)
}

/// Runs `tansu broker` on `port` with `storage`, its output in a log file.
fn spawn(
    binary: &Path,
    storage: &Storage,
    host: &str,
    port: u16,
) -> anyhow::Result<(Child, PathBuf)> {
    let url = format!("tcp://{host}:{port}");
    let log_path =
        std::env::temp_dir().join(format!("bourse-tansu-{}-{port}.log", std::process::id()));
    let log = File::create(&log_path).with_context(|| format!("create {log_path:?}"))?;
    let mut command = Command::new(binary);
    command
        .arg("broker")
        .args(["--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--cluster-id", "bourse-test"]);
    match storage {
        Storage::Memory => {
            command.args(["--storage-engine", "memory://tansu/"]);
        }
        Storage::Sqlite(dir) => {
            // tansu opens `sqlite://NAME` relative to its working directory.
            command
                .current_dir(dir)
                .args(["--storage-engine", "sqlite://tansu.db"]);
        }
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawn {binary:?}"))?;
    Ok((child, log_path))
}

impl TansuBroker {
    /// Waits (bounded) until the broker answers a metadata request.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let port = self.port;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                bail!("tansu exited ({status}) before answering:\n{log}");
            }
            // Each probe waits up to PROBE_TIMEOUT for an answer: bounded polling, no bare sleep.
            if broker_answers(&self.brokers(), PROBE_TIMEOUT)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("tansu on port {port} did not answer within {READY_TIMEOUT:?}");
            }
        }
    }
}
