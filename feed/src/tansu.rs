//! Test support: a real tansu broker (Kafka protocol, memory storage) on a free loopback port.
//!
//! Install tansu once with
//! `cargo install tansu --version 0.6.0 --features dynostore --locked`; it is found through
//! `$TANSU_BIN`, the `PATH` or `$CARGO_HOME/bin` (`~/.cargo/bin`). tansu listens on IPv4 only,
//! so the broker address is always `127.0.0.1:PORT`. Its memory storage lives in the process:
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
    port: u16,
    log_path: PathBuf,
    paused: bool,
}

impl TansuBroker {
    /// Starts a broker with memory storage on a free `127.0.0.1` port and waits (bounded) until
    /// it answers a metadata request.
    pub fn start() -> anyhow::Result<TansuBroker> {
        let binary = locate()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS_MAX {
            match start_once(&binary) {
                Ok(broker) => return Ok(broker),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("tansu did not start")))
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
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
             `cargo install tansu --version 0.6.0 --features dynostore --locked`",
        )
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn start_once(binary: &Path) -> anyhow::Result<TansuBroker> {
    let port = free_port()?;
    let url = format!("tcp://127.0.0.1:{port}");
    let log_path =
        std::env::temp_dir().join(format!("bourse-tansu-{}-{port}.log", std::process::id()));
    let log = File::create(&log_path).with_context(|| format!("create {log_path:?}"))?;
    let child = Command::new(binary)
        .arg("broker")
        .args(["--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .args(["--cluster-id", "bourse-test"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawn {binary:?}"))?;
    let mut broker = TansuBroker {
        child,
        port,
        log_path,
        paused: false,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = broker.child.try_wait()? {
            let log = std::fs::read_to_string(&broker.log_path).unwrap_or_default();
            bail!("tansu exited ({status}) before answering:\n{log}");
        }
        // Each probe waits up to PROBE_TIMEOUT for an answer: bounded polling, no bare sleep.
        if broker_answers(&broker.brokers(), PROBE_TIMEOUT)? {
            return Ok(broker);
        }
        if Instant::now() >= deadline {
            bail!("tansu on port {port} did not answer within {READY_TIMEOUT:?}");
        }
    }
}
