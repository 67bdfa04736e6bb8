//! A `bourse serve` process for the tests that need a process boundary (SIGKILL, signals,
//! exit codes): its output line by line, its acknowledgement log, and a clean stop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The longest any one expected line may take (a bound for a failing server, not a pace).
pub const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// Forwards a child's output, line by line, to a channel.
pub fn lines_of(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A running `bourse serve` process (the binary at `bin`: `env!("CARGO_BIN_EXE_bourse")` in
/// the `bourse` package's tests); killed if the test fails.
pub struct Server {
    pub child: Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
    /// Every stderr line read so far (for failure messages).
    pub log: Vec<String>,
}

impl Server {
    /// `bourse serve` without market-data feed and liquidity provider, so that books and
    /// prices hold only what the test does.
    pub fn start(bin: &Path, dir: &Path, args: &[&str]) -> Server {
        let mut quiet = vec!["--feed", "off", "--liquidity", "false"];
        quiet.extend_from_slice(args);
        Server::start_with_market(bin, dir, &quiet)
    }

    /// `bourse serve` with its defaults: the embedded simulator feeds it.
    pub fn start_with_market(bin: &Path, dir: &Path, args: &[&str]) -> Server {
        Server::start_with_env(bin, dir, args, &[])
    }

    /// [`Server::start_with_market`] with variables added to its environment (FAILPOINTS).
    pub fn start_with_env(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Process::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            // Any free port: tests run in parallel. A test may override it.
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bourse serve");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Server {
            child,
            stdout,
            stderr,
            log: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reads stderr until a line contains `needle`; returns that line.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(error) => panic!(
                    "no line with {needle:?} on stderr ({error:?}); stderr so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// The next acknowledgement line, or `None` once stdout is closed.
    pub fn next_ack(&mut self) -> Option<(u64, u32)> {
        match self.stdout.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => Some(parse_ack(&line)),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                self.log.extend(self.stderr.try_iter());
                panic!(
                    "no acknowledgement for {LINE_TIMEOUT:?}; stderr:\n{}",
                    self.log.join("\n")
                )
            }
        }
    }

    /// SIGTERM, and checks the clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill takes no pointers; the pid is our own child, not yet reaped (wait
        // comes after), so the signal reaches no other process.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGTERM) }, 0);
        let status = self.child.wait().unwrap();
        let log = self.rest_of_log();
        assert!(
            status.success(),
            "bourse serve exited with {status}:\n{log}"
        );
    }

    /// The rest of stderr, once the process has ended.
    pub fn rest_of_log(&mut self) -> String {
        while let Ok(line) = self.stderr.recv_timeout(LINE_TIMEOUT) {
            self.log.push(line);
        }
        self.log.join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<seq> <crc32c>` of an acknowledgement line.
pub fn parse_ack(line: &str) -> (u64, u32) {
    let mut parts = line.split(' ');
    let parsed = (|| {
        let seq = parts.next()?.parse().ok()?;
        let crc = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some((seq, crc))
    })();
    parsed.unwrap_or_else(|| panic!("not an ack line: {line:?}"))
}

/// The address a server's log says it serves HTTP on.
pub fn http_addr(server: &mut Server) -> String {
    let line = server.wait_for_log("HTTP on http://");
    line.split("HTTP on http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim()
        .to_string()
}
