//! Ticks and the feed's message format (`docs/market-data.md` is the reference).
//!
//! A Kafka message of the ticks topic is keyed by symbol; its value is UTF-8 JSON, either one
//! item or an array of items. An item is a tick
//! `{"symbol":"AAPL","price":"189.25","size":"100","ts":1764000000000,"seq":42}` (price and
//! size decimal strings with at most 8 decimals, `ts` the exchange's time in unix ms, `seq` the
//! exchange's sequence number of the symbol's ticks) or a product definition
//! `{"type":"product","symbol":"AAPL","name":"Apple Inc.","currency":"USD","tickSize":"0.01"}`.
//! A message is taken or refused whole: one bad item refuses it.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::fixed::{self, FixedError};

/// Longest symbol, in bytes (the engine's limit too).
pub const SYMBOL_LEN_MAX: usize = 16;
/// Longest product name, in bytes.
pub const NAME_LEN_MAX: usize = 128;
/// Exchange sequence numbers stay below 2^56 (the top byte of a [`Key`] tag is the source).
pub const SEQ_MAX: u64 = (1 << 56) - 1;
/// Latest exchange timestamp accepted: year 3000, in unix ms.
pub const TS_MAX: i64 = 32_503_680_000_000;

/// A product's symbol: 1 to 16 printable ASCII characters, no space (as the engine's).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    len: u8,
    bytes: [u8; SYMBOL_LEN_MAX],
}

impl Symbol {
    /// `USD`, the default currency: `Symbol::new("USD")` built at compile time.
    pub const USD: Symbol = {
        let mut bytes = [0; SYMBOL_LEN_MAX];
        bytes[0] = b'U';
        bytes[1] = b'S';
        bytes[2] = b'D';
        Symbol { len: 3, bytes }
    };

    /// The symbol, if `text` is a valid one.
    pub fn new(text: &str) -> Option<Self> {
        let raw = text.as_bytes();
        if raw.is_empty()
            || raw.len() > SYMBOL_LEN_MAX
            || !raw.iter().all(|b| (b'!'..=b'~').contains(b))
        {
            return None;
        }
        let mut bytes = [0; SYMBOL_LEN_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Self {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The bytes, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a tick comes from. Each source numbers its ticks on its own, so duplicates are
/// recognised per product and source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Source {
    /// The central exchange's feed (Kafka, or the embedded simulator).
    Feed = 0,
    /// Trades on Bourse itself; `seq` is the engine's event sequence number.
    Bourse = 1,
}

impl Source {
    /// The source of a stored byte.
    pub fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Feed),
            1 => Some(Self::Bourse),
            _ => None,
        }
    }

    /// The name used in metrics and documents.
    pub fn name(self) -> &'static str {
        match self {
            Self::Feed => "feed",
            Self::Bourse => "bourse",
        }
    }
}

/// A tick as market data keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Price, 10^-8 units.
    pub price: i64,
    /// Size, 10^-8 units.
    pub size: i64,
    /// Exchange time, unix ms.
    pub ts: i64,
    /// The source's sequence number of this product's ticks.
    pub seq: u64,
    /// Where it comes from.
    pub source: Source,
}

impl Tick {
    /// The tick's place in time: [`Key`] orders ticks by exchange time, then source, then
    /// sequence. A candle's open is its tick with the lowest key, its close the highest.
    pub fn key(&self) -> Key {
        Key {
            ts: self.ts,
            tag: (u64::from(self.source as u8) << 56) | self.seq,
        }
    }
}

/// Orders ticks: exchange time, then source, then sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Exchange time, unix ms.
    pub ts: i64,
    /// Source (top byte) and sequence number.
    pub tag: u64,
}

/// A product as the feed or a catalogue file defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductDef {
    /// The symbol.
    pub symbol: Symbol,
    /// The display name.
    pub name: String,
    /// The quote currency's code.
    pub currency: Symbol,
    /// The price grid, 10^-8 units.
    pub tick_size: i64,
}

/// One parsed item of a feed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedItem {
    /// A tick of the product `symbol`.
    Tick {
        /// The product.
        symbol: Symbol,
        /// The tick (its source is [`Source::Feed`]).
        tick: Tick,
    },
    /// A product definition: adds the product, or updates its name, currency and tick size.
    Product(ProductDef),
}

/// Why a feed message was refused. Counted and logged once per kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not JSON, not an object or array of objects, a field of the wrong type, or an unknown
    /// field.
    #[error("not a feed message: {0}")]
    Json(String),
    /// An empty array.
    #[error("an empty batch")]
    Empty,
    /// `type` other than `tick` or `product`.
    #[error("unknown item type {0:?}")]
    UnknownType(String),
    /// A field the item's type needs is missing.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A symbol or currency code that is empty, too long or not printable ASCII.
    #[error("invalid symbol {0:?}")]
    Symbol(String),
    /// A price, size or tick size that is not a positive decimal with at most 8 decimals.
    #[error("invalid {field}: {error}")]
    Number {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        error: FixedError,
    },
    /// A timestamp not in `1..=TS_MAX`.
    #[error("timestamp {0} out of range")]
    Timestamp(i64),
    /// A sequence number of 0 or above [`SEQ_MAX`].
    #[error("sequence number {0} out of range")]
    Sequence(u64),
    /// An empty or over-long product name.
    #[error("product name must be 1 to 128 bytes")]
    Name,
}

impl Malformed {
    /// A short name of the kind, for counters and the log-once rule.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Json(_) => "json",
            Self::Empty => "empty",
            Self::UnknownType(_) => "type",
            Self::Missing(_) => "missing",
            Self::Symbol(_) => "symbol",
            Self::Number { .. } => "number",
            Self::Timestamp(_) => "timestamp",
            Self::Sequence(_) => "sequence",
            Self::Name => "name",
        }
    }

    /// Every kind, for metrics.
    pub const KINDS: [&'static str; 9] = [
        "json",
        "empty",
        "type",
        "missing",
        "symbol",
        "number",
        "timestamp",
        "sequence",
        "name",
    ];
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WireItem<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow)]
    price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    size: Option<Cow<'a, str>>,
    ts: Option<i64>,
    seq: Option<u64>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
    #[serde(rename = "tickSize", borrow)]
    tick_size: Option<Cow<'a, str>>,
}

fn symbol(text: &str) -> Result<Symbol, Malformed> {
    Symbol::new(text).ok_or_else(|| Malformed::Symbol(text.chars().take(40).collect()))
}

fn number(text: Option<&Cow<'_, str>>, field: &'static str) -> Result<i64, Malformed> {
    let text = text.ok_or(Malformed::Missing(field))?;
    fixed::parse_positive(text).map_err(|error| Malformed::Number { field, error })
}

fn item(wire: WireItem<'_>) -> Result<FeedItem, Malformed> {
    let symbol = symbol(&wire.symbol)?;
    match wire.kind.as_deref() {
        None | Some("tick") => {
            let price = number(wire.price.as_ref(), "price")?;
            let size = number(wire.size.as_ref(), "size")?;
            let ts = wire.ts.ok_or(Malformed::Missing("ts"))?;
            if !(1..=TS_MAX).contains(&ts) {
                return Err(Malformed::Timestamp(ts));
            }
            let seq = wire.seq.ok_or(Malformed::Missing("seq"))?;
            if !(1..=SEQ_MAX).contains(&seq) {
                return Err(Malformed::Sequence(seq));
            }
            Ok(FeedItem::Tick {
                symbol,
                tick: Tick {
                    price,
                    size,
                    ts,
                    seq,
                    source: Source::Feed,
                },
            })
        }
        Some("product") => {
            let name = wire.name.ok_or(Malformed::Missing("name"))?;
            if name.is_empty() || name.len() > NAME_LEN_MAX {
                return Err(Malformed::Name);
            }
            let currency = symbol_field(wire.currency.as_deref(), "currency")?;
            let tick_size = number(wire.tick_size.as_ref(), "tickSize")?;
            Ok(FeedItem::Product(ProductDef {
                symbol,
                name: name.into_owned(),
                currency,
                tick_size,
            }))
        }
        Some(other) => Err(Malformed::UnknownType(other.chars().take(40).collect())),
    }
}

fn symbol_field(text: Option<&str>, field: &'static str) -> Result<Symbol, Malformed> {
    symbol(text.ok_or(Malformed::Missing(field))?)
}

/// A hand-written scanner for the usual shape of feed messages (objects of plain strings and
/// integers): several times faster than serde. It gives up (`None`) on anything else, and
/// serde then parses the message and says precisely what is wrong; so both paths accept and
/// refuse exactly the same messages (a property test checks it).
mod fast {
    use std::borrow::Cow;

    use super::WireItem;

    struct Scan<'a> {
        b: &'a [u8],
        i: usize,
    }

    enum Value<'a> {
        Str(&'a str),
        Int(&'a [u8]),
    }

    impl<'a> Scan<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        fn eat(&mut self, byte: u8) -> Option<()> {
            (self.b.get(self.i) == Some(&byte)).then(|| self.i += 1)
        }

        /// A string without escapes or control characters.
        fn string(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match *self.b.get(self.i)? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
            let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
            self.i += 1;
            Some(text)
        }

        /// A non-negative integer as JSON writes it: `0|[1-9][0-9]*`, then a delimiter.
        /// (Negative numbers are left to serde, which also reads `-0` as a float.)
        fn int(&mut self) -> Option<&'a [u8]> {
            let start = self.i;
            let digits = self.i;
            while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let n = self.i - digits;
            if n == 0 || (n > 1 && self.b[digits] == b'0') {
                return None;
            }
            matches!(
                self.b.get(self.i),
                Some(b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}')
            )
            .then(|| &self.b[start..self.i])
        }

        fn value(&mut self) -> Option<Value<'a>> {
            match self.b.get(self.i)? {
                b'"' => self.string().map(Value::Str),
                b'0'..=b'9' => self.int().map(Value::Int),
                _ => None,
            }
        }

        fn object(&mut self) -> Option<WireItem<'a>> {
            self.eat(b'{')?;
            let mut item = WireItem::default();
            let mut symbol = None;
            loop {
                self.ws();
                let key = self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                let value = self.value()?;
                let text = |v: &Value<'a>| match v {
                    Value::Str(s) => Some(Some(Cow::Borrowed(*s))),
                    Value::Int(_) => None,
                };
                let int = |v: &Value<'a>| match v {
                    Value::Int(digits) => std::str::from_utf8(digits).ok(),
                    Value::Str(_) => None,
                };
                fn set<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
                    slot.is_none().then_some(())?;
                    *slot = Some(value?);
                    Some(())
                }
                match key {
                    "symbol" => set(&mut symbol, text(&value)?)?,
                    "type" => set(&mut item.kind, text(&value)?)?,
                    "price" => set(&mut item.price, text(&value)?)?,
                    "size" => set(&mut item.size, text(&value)?)?,
                    "name" => set(&mut item.name, text(&value)?)?,
                    "currency" => set(&mut item.currency, text(&value)?)?,
                    "tickSize" => set(&mut item.tick_size, text(&value)?)?,
                    "ts" => set(&mut item.ts, int(&value)?.parse().ok())?,
                    "seq" => set(&mut item.seq, int(&value)?.parse().ok())?,
                    _ => return None,
                }
                self.ws();
                if self.eat(b'}').is_some() {
                    break;
                }
                self.eat(b',')?;
            }
            item.symbol = symbol?;
            Some(item)
        }
    }

    /// The items of a message of the usual shape, or `None` for serde to decide.
    pub(super) fn scan(payload: &[u8]) -> Option<Vec<WireItem<'_>>> {
        let mut s = Scan { b: payload, i: 0 };
        s.ws();
        let batch = s.eat(b'[').is_some();
        let mut items = Vec::new();
        loop {
            s.ws();
            items.push(s.object()?);
            s.ws();
            if !batch || s.eat(b']').is_some() {
                break;
            }
            s.eat(b',')?;
        }
        s.ws();
        (s.i == s.b.len()).then_some(items)
    }
}

/// Parses one feed message into `out` (appending). On error `out` is left as it was.
pub fn parse_message(payload: &[u8], out: &mut Vec<FeedItem>) -> Result<(), Malformed> {
    if let Some(items) = fast::scan(payload) {
        let start = out.len();
        let result = items
            .into_iter()
            .try_for_each(|wire| item(wire).map(|i| out.push(i)));
        if result.is_err() {
            out.truncate(start);
        }
        return result;
    }
    parse_with_serde(payload, out)
}

/// [`parse_message`] by serde alone: the reference the fast path is checked against.
pub fn parse_with_serde(payload: &[u8], out: &mut Vec<FeedItem>) -> Result<(), Malformed> {
    let json = |e: serde_json::Error| {
        let mut text = e.to_string();
        // At most 120 bytes, cut at a character's start: serde's message quotes the input,
        // which may put a multi-byte character across byte 120 (a fuzzer found that the
        // plain `truncate(120)` panicked there).
        let mut end = text.len().min(120);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        Malformed::Json(text)
    };
    let start = out.len();
    let is_batch = payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let result = if is_batch {
        let items: Vec<WireItem<'_>> = serde_json::from_slice(payload).map_err(json)?;
        if items.is_empty() {
            return Err(Malformed::Empty);
        }
        items
            .into_iter()
            .try_for_each(|wire| item(wire).map(|i| out.push(i)))
    } else {
        let one: WireItem<'_> = serde_json::from_slice(payload).map_err(json)?;
        item(one).map(|i| out.push(i))
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Writes `ticks` of `symbol` as one feed message (a JSON array), as the simulator and
/// `feed-sim` publish them.
pub fn write_message(symbol: Symbol, ticks: &[Tick], out: &mut Vec<u8>) {
    use std::io::Write;
    out.push(b'[');
    for (i, tick) in ticks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"symbol":"{}","price":"{}","size":"{}","ts":{},"seq":{}}}"#,
            symbol.as_str().replace('\\', "\\\\").replace('"', "\\\""),
            fixed::to_decimal(tick.price),
            fixed::to_decimal(tick.size),
            tick.ts,
            tick.seq
        );
    }
    out.push(b']');
}

/// Writes a product definition as one feed message.
pub fn write_product(def: &ProductDef, out: &mut Vec<u8>) {
    let value = serde_json::json!({
        "type": "product",
        "symbol": def.symbol.as_str(),
        "name": def.name,
        "currency": def.currency.as_str(),
        "tickSize": fixed::to_decimal(def.tick_size).to_string(),
    });
    // Serialising a json! value into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_quoting_a_multi_byte_character_across_its_length_bound_is_cut_before_it() {
        // An unknown field whose name puts "é" (2 bytes) across byte 120 of serde's message.
        for pad in 80..100 {
            let message = format!("{{\"{}é\": 1}}", "a".repeat(pad));
            let mut out = Vec::new();
            match parse_message(message.as_bytes(), &mut out) {
                Err(Malformed::Json(text)) => assert!(text.len() <= 120, "{text}"),
                other => panic!("{other:?}"),
            }
            assert!(out.is_empty());
        }
    }

    #[test]
    fn usd_constant_is_the_parsed_symbol() {
        assert_eq!(Some(Symbol::USD), Symbol::new("USD"));
        assert_eq!(Symbol::USD.as_str(), "USD");
    }

    fn parse(text: &str) -> Result<Vec<FeedItem>, Malformed> {
        let mut out = Vec::new();
        parse_message(text.as_bytes(), &mut out).map(|()| out)
    }

    #[test]
    fn ticks_and_products_parse_and_round_trip() {
        let aapl = Symbol::new("AAPL").unwrap();
        let tick = Tick {
            price: 18_925_000_000,
            size: 100 * fixed::ONE,
            ts: 1_764_000_000_000,
            seq: 42,
            source: Source::Feed,
        };
        let one = r#"{"symbol":"AAPL","price":"189.25","size":"100","ts":1764000000000,"seq":42}"#;
        assert_eq!(
            parse(one).unwrap(),
            vec![FeedItem::Tick { symbol: aapl, tick }]
        );
        let mut written = Vec::new();
        write_message(aapl, &[tick, Tick { seq: 43, ..tick }], &mut written);
        let items = parse(std::str::from_utf8(&written).unwrap()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1],
            FeedItem::Tick {
                symbol: aapl,
                tick: Tick { seq: 43, ..tick }
            }
        );
        let def = ProductDef {
            symbol: aapl,
            name: "Apple \"Inc.\"".into(),
            currency: Symbol::new("USD").unwrap(),
            tick_size: fixed::ONE / 100,
        };
        let mut written = Vec::new();
        write_product(&def, &mut written);
        assert_eq!(
            parse(std::str::from_utf8(&written).unwrap()).unwrap(),
            vec![FeedItem::Product(def)]
        );
    }

    /// Parses with the fast path and with serde alone: the same verdict and items.
    fn agree(bytes: &[u8]) {
        let (mut fast, mut slow) = (vec![], vec![]);
        let a = parse_message(bytes, &mut fast);
        let b = parse_with_serde(bytes, &mut slow);
        assert_eq!(
            a.as_ref().map_err(Malformed::kind),
            b.as_ref().map_err(Malformed::kind),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(fast, slow);
    }

    #[test]
    fn the_fast_path_agrees_with_serde() {
        let edges = [
            r#"{"symbol":"A","price":"1","size":"2","ts":03,"seq":4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":-0,"seq":4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":3,"seq":-4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":3.0,"seq":4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":3e2,"seq":4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":"3","seq":4}"#,
            r#"{"symbol":"A","price":1,"size":"2","ts":3,"seq":4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":3,"seq":4,"seq":5}"#,
            r#"{"symbol":"A","type":null,"price":"1","size":"2","ts":3,"seq":4}"#,
            r#"{"symbol":"AB","price":"1","size":"2","ts":3,"seq":4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":99999999999999999999,"seq":4}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":3,"seq":18446744073709551616}"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":3,"seq":4}x"#,
            r#"{"symbol":"A","price":"1","size":"2","ts":3,"seq":4},"#,
            r#"[{"symbol":"A","price":"1","size":"2","ts":3,"seq":4},]"#,
            r#"[{"symbol":"A","price":"1","size":"2","ts":3,"seq":4}"#,
            r#"{"price":"1","size":"2","ts":3,"seq":4}"#,
            r#"{}"#,
            r#"[]"#,
            "{\"symbol\":\"A\tB\",\"price\":\"1\",\"size\":\"2\",\"ts\":3,\"seq\":4}",
            r#"{"symbol":"A","price":"1","size":"2","ts":3,"seq":4,"extra":1}"#,
            r#"{"symbol":"AAPL","price":"189.25","size":"100","ts":1764000000000,"seq":42}"#,
            r#" [ {"symbol":"A","price":"1.5","size":"2","ts":-3,"seq":0} ] "#,
        ];
        for edge in edges {
            agree(edge.as_bytes());
        }
        agree(b"{\"symbol\":\"\xff\",\"price\":\"1\",\"size\":\"2\",\"ts\":3,\"seq\":4}");
    }

    #[test]
    fn the_fast_path_agrees_with_serde_on_mutated_messages() {
        use proptest::prelude::*;
        let seeds = [
            r#"{"symbol":"AAPL","price":"189.25","size":"100","ts":1764000000000,"seq":42}"#,
            r#"[{"symbol":"A","price":"1","size":"2","ts":3,"seq":4}, {"seq":5,"ts":6,"size":"7","price":"8","symbol":"B","type":"tick"}]"#,
            r#"{"type":"product","symbol":"AAPL","name":"Apple \"Inc.\"","currency":"USD","tickSize":"0.01"}"#,
        ];
        proptest!(|(seed in 0..seeds.len(), edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..4))| {
            let mut bytes = seeds[seed].as_bytes().to_vec();
            let alphabet = b"{}[]\",: -0123456789.eaz\\";
            for (at, byte, op) in edits {
                let at = at % (bytes.len() + 1);
                let byte = alphabet[byte as usize % alphabet.len()];
                match op {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => { bytes.remove(at); }
                    _ => {}
                }
            }
            agree(&bytes);
        });
    }

    #[test]
    fn malformed_messages_are_refused_whole_with_their_kind() {
        let good = r#"{"symbol":"A","price":"1","size":"1","ts":1,"seq":1}"#;
        let table: &[(&str, &str)] = &[
            ("not json", "json"),
            ("[]", "empty"),
            ("42", "json"),
            (
                r#"{"symbol":"A","price":1,"size":"1","ts":1,"seq":1}"#,
                "json",
            ),
            (
                r#"{"symbol":"A","price":"1","size":"1","ts":1,"seq":1,"x":1}"#,
                "json",
            ),
            (r#"{"type":"trade","symbol":"A"}"#, "type"),
            (r#"{"symbol":"A","size":"1","ts":1,"seq":1}"#, "missing"),
            (
                r#"{"symbol":"A","price":"1","size":"1","seq":1}"#,
                "missing",
            ),
            (
                r#"{"symbol":"A B","price":"1","size":"1","ts":1,"seq":1}"#,
                "symbol",
            ),
            (
                r#"{"symbol":"","price":"1","size":"1","ts":1,"seq":1}"#,
                "symbol",
            ),
            (
                r#"{"symbol":"A","price":"-1","size":"1","ts":1,"seq":1}"#,
                "number",
            ),
            (
                r#"{"symbol":"A","price":"1","size":"0","ts":1,"seq":1}"#,
                "number",
            ),
            (
                r#"{"symbol":"A","price":"1.000000001","size":"1","ts":1,"seq":1}"#,
                "number",
            ),
            (
                r#"{"symbol":"A","price":"1","size":"1","ts":0,"seq":1}"#,
                "timestamp",
            ),
            (
                r#"{"symbol":"A","price":"1","size":"1","ts":1,"seq":0}"#,
                "sequence",
            ),
            (
                r#"{"symbol":"A","price":"1","size":"1","ts":1,"seq":72057594037927936}"#,
                "sequence",
            ),
            (
                r#"{"type":"product","symbol":"A","name":"","currency":"USD","tickSize":"0.01"}"#,
                "name",
            ),
            (
                r#"{"type":"product","symbol":"A","name":"a","tickSize":"0.01"}"#,
                "missing",
            ),
        ];
        for (text, kind) in table {
            assert_eq!(parse(text).map_err(|e| e.kind()), Err(*kind), "{text}");
            // One bad item refuses the whole batch, and `out` is left as it was.
            let batch = format!("[{good},{text}]");
            let mut out = vec![];
            parse_message(good.as_bytes(), &mut out).unwrap();
            assert!(
                parse_message(batch.as_bytes(), &mut out).is_err(),
                "{batch}"
            );
            assert_eq!(out.len(), 1);
        }
    }
}
