//! What the process tests share: the `bourse` binary of this workspace (see `serve.rs` for
//! how it is found and built), a running server with its output, and a minimal HTTP/1.1
//! client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The longest any one expected line may take (a bound for a failing server, not a pace).
pub const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `bourse` binary built from this workspace (see the module docs).
pub fn bourse_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("BOURSE_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("the test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in target/<profile>/deps");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => panic!("no profile directory above {}", exe.display()),
        };
        let status = Process::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "bourse", "--bin", "bourse"])
            .args(["--profile", profile])
            .arg("--target-dir")
            .arg(profile_dir.parent().expect("the target directory"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the bourse binary failed");
        let bin = profile_dir.join("bourse");
        assert!(
            bin.exists(),
            "{} is missing after the build (set BOURSE_BIN to the binary)",
            bin.display()
        );
        bin
    })
}

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

/// A running `bourse serve`; killed if the test fails.
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
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        let mut quiet = vec!["--feed", "off", "--liquidity", "false"];
        quiet.extend_from_slice(args);
        Server::start_with_market(dir, &quiet)
    }

    /// `bourse serve` with its defaults: the embedded simulator feeds it.
    pub fn start_with_market(dir: &Path, args: &[&str]) -> Server {
        let mut child = Process::new(bourse_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            // Any free port: tests run in parallel. A test may override it.
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
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

/// A decimal string of the API as a number.
pub fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap()
}

/// A candle as the tests compare them: start, open, high, low, close, volume, count.
pub type CandleRow = (
    i64,
    rust_decimal::Decimal,
    rust_decimal::Decimal,
    rust_decimal::Decimal,
    rust_decimal::Decimal,
    rust_decimal::Decimal,
    u64,
);

/// Candles of `interval_ms` as the aggregate of `ticks` (JSON ticks with `price`, `size` and
/// the time in `ts_key`, sorted by exchange time, then seq): the reference the candle rules
/// must agree with.
pub fn aggregate(ticks: &[Value], ts_key: &str, interval_ms: i64) -> Vec<CandleRow> {
    let mut buckets: std::collections::BTreeMap<i64, CandleRow> = Default::default();
    for t in ticks {
        let ts = t[ts_key].as_i64().unwrap();
        let (price, size) = (dec(&t["price"]), dec(&t["size"]));
        let start = ts - ts.rem_euclid(interval_ms);
        let c = buckets.entry(start).or_insert((
            start,
            price,
            price,
            price,
            price,
            rust_decimal::Decimal::ZERO,
            0,
        ));
        c.2 = c.2.max(price);
        c.3 = c.3.min(price);
        c.4 = price;
        c.5 += size;
        c.6 += 1;
    }
    buckets.into_values().collect()
}

/// The candles of a `GET /products/{symbol}/candles` answer.
pub fn candle_rows(candles: &Value) -> Vec<CandleRow> {
    candles
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["start"].as_i64().unwrap(),
                dec(&c["open"]),
                dec(&c["high"]),
                dec(&c["low"]),
                dec(&c["close"]),
                dec(&c["volume"]),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Polls `condition` (a read of a server's state) until it gives something, for at most 90 s.
pub fn eventually<T>(what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(found) = condition() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); returns the status code
/// and the body. Enough for these tests; the API tests of issue 6 bring a real client.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = http_with_head(addr, method, path, headers, body);
    (status, body)
}

/// [`http`], with the response's head (status line and headers) too.
pub fn http_with_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the HTTP server");
    stream
        .set_read_timeout(Some(LINE_TIMEOUT))
        .expect("read timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked bodies are not decoded here: {head}"
    );
    (status, head.to_string(), body.to_string())
}

/// The value of header `name` in a response head.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, &[], "")
}

pub fn http_addr(server: &mut Server) -> String {
    let line = server.wait_for_log("HTTP on http://");
    line.split("HTTP on http://")
        .nth(1)
        .unwrap()
        .trim()
        .to_string()
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

pub fn parse_ack(line: &str) -> (u64, u32) {
    let mut parts = line.split(' ');
    let parsed = (|| {
        let seq = parts.next()?.parse().ok()?;
        let crc = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some((seq, crc))
    })();
    parsed.unwrap_or_else(|| panic!("not an ack line: {line:?}"))
}

pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// An HTTP API client of a test server.
pub struct Client {
    pub addr: String,
}

impl Client {
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let (status, _, body) = self.call_with_head(method, path, token, body);
        (status, body)
    }

    pub fn call_with_head(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, String, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![JSON];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, head, body) = http_with_head(&self.addr, method, path, &headers, &text);
        (status, head, json(&body))
    }

    /// A call that must answer `status`; returns the body.
    pub fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        let (got, answer) = self.call(method, path, token, &body);
        assert_eq!(got, status, "{method} {path} {body} answered {answer}");
        answer
    }

    pub fn account(&self, name: &str) -> String {
        let created = self.expect(
            201,
            "PUT",
            "/api/v1/account",
            None,
            json!({"name": name, "proof": "passport", "currencyPreference": "USD"}),
        );
        created["token"].as_str().unwrap().to_string()
    }

    pub fn deposit(&self, token: &str, amount: &str, currency: &str, request_id: &str) {
        self.expect(
            200,
            "PUT",
            "/api/v1/funds",
            Some(token),
            json!({"amount": amount, "currency": currency, "type": "bank",
                   "requestId": request_id,
                   "additionalInformation": {"accountNumber": "DE89370400440532013000"}}),
        );
    }

    /// `{currency: (available, held)}`.
    pub fn balances(&self, token: &str) -> Vec<(String, String, String)> {
        let rows = self.expect(200, "GET", "/api/v1/funds", Some(token), Value::Null);
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["currency"].as_str().unwrap().to_string(),
                    r["available"].as_str().unwrap().to_string(),
                    r["held"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

pub fn row(currency: &str, available: &str, held: &str) -> (String, String, String) {
    (currency.into(), available.into(), held.into())
}

/// The fields of a list of objects, for compact assertions.
pub fn pluck(list: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| {
            fields
                .iter()
                .map(|f| match &item[*f] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}
