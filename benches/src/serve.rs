//! A `bourse serve` process as the WebSocket benchmarks (`ws`, `cluster_ws`) start it: the
//! address it serves HTTP on, its CPU time from `/proc`, the end of its log for an error
//! message, and the set-up requests they make of it over plain HTTP/1.1 (accounts, deposits,
//! status). This process's own CPU time is here too, to be read beside the servers'.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// How many lines of a server's log are kept for an error message.
const LOG_TAIL: usize = 40;
/// How long a set-up request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings every benchmark server gets: no rate limit, and a deep per-client queue, so
/// that a bench client that falls behind on this shared machine is measured as late, not
/// dropped as a slow consumer.
pub const BENCH_SETTINGS: [&str; 4] = ["--rate-limit", "0", "--ws-queue", "1000000"];

/// A `bourse serve` child process, killed when dropped (with its temporary directory, if it
/// has one).
pub struct Serve {
    child: Child,
    /// Where its HTTP API listens, `HOST:PORT`.
    pub addr: String,
    log: Arc<Mutex<VecDeque<String>>>,
    /// The thread draining stderr: it ends once the process has exited and its pipe closed.
    log_thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Serve {
    /// Starts `bourse serve --data-dir DATA_DIR ARGS...` and waits until it says where it
    /// serves HTTP.
    pub fn start(bourse: &Path, data_dir: &Path, args: &[String]) -> Result<Serve, String> {
        let mut child = Command::new(bourse)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} ({e}); build it first: cargo build --release -p bourse",
                    bourse.display()
                )
            })?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let keep = |log: &Mutex<VecDeque<String>>, line: String| {
            let mut log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if log.len() == LOG_TAIL {
                log.pop_front();
            }
            log.push_back(line);
        };
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                let tail: Vec<String> = log.lock().map(|l| l.clone().into()).unwrap_or_default();
                return Err(format!(
                    "bourse serve ended before it listened:\n{}",
                    tail.join("\n")
                ));
            };
            let addr = line
                .split("HTTP on http://")
                .nth(1)
                .map(|rest| rest.trim().to_string());
            keep(&log, line);
            if let Some(addr) = addr {
                break addr;
            }
        };
        // Keep draining stderr, so the server never blocks on it, and keep its end.
        let tail = Arc::clone(&log);
        let log_thread = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep(&tail, line);
            }
        });
        Ok(Serve {
            child,
            addr,
            log,
            log_thread: Some(log_thread),
            _dir: None,
        })
    }

    /// [`Serve::start`] in a fresh temporary directory, removed when the server is dropped.
    pub fn start_in_temp(bourse: &Path, args: &[String]) -> Result<Serve, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut serve = Serve::start(bourse, dir.path(), args)?;
        serve._dir = Some(dir);
        Ok(serve)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds the server process has used so far (user and system, all threads).
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.child.id())
    }

    /// How the process ended, with the end of its log; `None` while it runs.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        // The process has ended: its log thread reads what it wrote last, then ends.
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
        Some(format!(
            "bourse serve exited ({status}):\n{}",
            self.log_tail()
        ))
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds process `pid` has used so far (user and system, all threads), from
/// `/proc/PID/stat`; 0 if it cannot be read.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the
    // 13th, in clock ticks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

/// The kernel's clock ticks per second (`/proc`'s unit of CPU time).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU seconds this benchmark process has used so far (user and system).
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: `rusage` is plain integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given, a valid, writable `rusage`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// One HTTP/1.1 request on a fresh connection: the status and the body as text.
pub fn http_text(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<(u16, String), String> {
    http_with_head(addr, method, path, token, body).map(|(status, _, body)| (status, body))
}

/// [`http_text`] with the answer's head (status line and headers) too.
pub fn http_with_head(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<(u16, String, String), String> {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let fail = |e: std::io::Error| format!("{method} {path} on {addr}: {e}");
    let mut stream = TcpStream::connect(addr).map_err(fail)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(fail)?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .map_err(fail)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(fail)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} {path} on {addr}: no HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path} on {addr}: no status in {head:?}"))?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// [`http_text`] with the body read as JSON (`null` when it is not).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<(u16, Value), String> {
    let (status, text) = http_text(addr, method, path, token, body)?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A new account on the server at `addr`, funded with a billion USD and a hundred million
/// AAPL: its token. Stops the run if the server refuses any of it.
pub fn account(addr: &str, name: &str) -> String {
    let ok = |what: &str, answer: Result<(u16, Value), String>| -> Value {
        match answer {
            Ok((200 | 201, body)) => body,
            Ok((status, body)) => panic!("{what} for {name} on {addr}: {status} {body}"),
            Err(e) => panic!("{what} for {name}: {e}"),
        }
    };
    let created = ok(
        "PUT /api/v1/account",
        http(
            addr,
            "PUT",
            "/api/v1/account",
            None,
            &json!({"name": name, "proof": "bench", "currencyPreference": "USD"}),
        ),
    );
    let token = created["token"].as_str().expect("a token").to_string();
    for (currency, amount) in [("USD", "1000000000.00"), ("AAPL", "100000000")] {
        ok(
            "PUT /api/v1/funds",
            http(
                addr,
                "PUT",
                "/api/v1/funds",
                Some(&token),
                &json!({"amount": amount, "currency": currency, "type": "upi",
                        "requestId": format!("{name}-{currency}"),
                        "additionalInformation": {"vpa": "bench@bank"}}),
            ),
        );
    }
    token
}
