//! What the API tests share: a minimal HTTP/1.1 client, a JSON API [`Client`] with the
//! usual calls, and helpers to compare decimals, candles and lists.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The longest any one answer may take (a bound for a failing server, not a pace).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

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
/// and the body: a client with nothing between the test and the bytes on the wire.
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
    try_http(addr, method, path, headers, body, ANSWER_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// [`http_with_head`] that says why there is no answer (the server is down, did not answer
/// within `timeout`, closed early) instead of failing the test: for tests that kill or cut
/// off servers.
pub fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Error, Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::other(format!("no end of headers in {response:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Error::other(format!("no status in {head:?}")))?;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked bodies are not decoded here: {head}"
    );
    Ok((status, head.to_string(), body.to_string()))
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

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
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
        self.try_call_with_head(method, path, token, body, ANSWER_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {path} to {}: {e}", self.addr))
    }

    /// [`Client::call_with_head`] that says why there is no answer instead of failing the
    /// test (see [`try_http`]).
    pub fn try_call_with_head(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
        timeout: Duration,
    ) -> std::io::Result<(u16, String, Value)> {
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
        let (status, head, body) = try_http(&self.addr, method, path, &headers, &text, timeout)?;
        Ok((status, head, json(&body)))
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

    /// Two accounts, `seller` with 10 AAPL (request `s-1`) and `buyer` with 1,000.00 USD
    /// (request `b-1`): their tokens.
    pub fn seller_and_buyer(&self, seller: &str, buyer: &str) -> (String, String) {
        let seller = self.account(seller);
        let buyer = self.account(buyer);
        self.deposit(&seller, "10", "AAPL", "s-1");
        self.deposit(&buyer, "1000.00", "USD", "b-1");
        (seller, buyer)
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
        let wallet = self.expect(200, "GET", "/api/v1/funds", Some(token), Value::Null);
        wallet["balances"]
            .as_array()
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
