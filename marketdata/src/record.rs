//! The byte layout of market-data records (all little-endian; `docs/market-data.md` has the
//! diagrams). Offsets come from the constants here, for writing and reading alike.
//!
//! **Tick record** (one per feed message or batch of Bourse trades, in the tick log):
//! a 24-byte header, then items, each 8-byte aligned:
//!
//! | bytes | header field |
//! |---|---|
//! | 0 | kind = 1 |
//! | 1 | source (0 feed, 1 Bourse) |
//! | 4..8 | partition, i32 |
//! | 8..16 | next offset of that partition after this message, i64 |
//! | 16..20 | number of items, u32 |
//!
//! Tick item, 56 bytes: tag = 1 (0), source (1), product id u32 (4), price i64 (8), size
//! i64 (16), ts i64 (24), seq u64 (32), and the [`Link`] to the product's previous tick:
//! segment u64 (40), record offset u32 (48), item offset u32 (52).
//!
//! Product item: tag = 2 (0), symbol length u8 (1), currency length u8 (2), name length u16
//! (4), tick size i64 (8), then symbol, currency and name bytes from 16, padded to 8.
//!
//! **Candle record** (one per stored candle version, in the log of its interval), 104 bytes:
//! product u32 (0), count u32 (4), start (8), open (16), high (24), low (32), close (40),
//! volume u64 (48), first key ts (56) and tag (64), last key ts (72) and tag (80), and the
//! [`Link`] to the product's previous candle of the interval: segment (88), offset u32 (96).

use bourse_journal::Position;

use crate::candle::Candle;
use crate::tick::{Key, ProductDef, Source, Symbol, Tick};

/// Where an earlier record (and item in it) lies: the chain link of per-product lists.
/// `segment == 0` is "none" (segments are named by their first sequence number, at least 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Link {
    /// First sequence number of the segment, [`SAME_RECORD`] for an item of the same record.
    pub segment: u64,
    /// Byte offset of the record in the segment.
    pub offset: u32,
    /// Byte offset of the item in the record's payload.
    pub item: u32,
}

/// A [`Link`] to a candle record (no item): 12 bytes, for the seven per product in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C, packed(4))]
pub struct CandleLink {
    segment: u64,
    offset: u32,
}

impl CandleLink {
    /// The link as a [`Link`].
    pub fn link(self) -> Link {
        Link {
            segment: self.segment,
            offset: self.offset,
            item: 0,
        }
    }
}

impl From<Link> for CandleLink {
    fn from(link: Link) -> Self {
        Self {
            segment: link.segment,
            offset: link.offset,
        }
    }
}

/// [`Link::segment`] of a link to an item of the same record.
pub const SAME_RECORD: u64 = u64::MAX;

impl Link {
    /// The link to `item` of the record at `position`.
    pub fn at(position: Position, item: u32) -> Self {
        Self {
            segment: position.segment,
            offset: position.offset as u32,
            item,
        }
    }

    /// Whether it points nowhere.
    pub fn is_none(&self) -> bool {
        self.segment == 0
    }

    /// The record's position.
    pub fn position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: u64::from(self.offset),
        }
    }
}

/// Tick record header length.
pub const HEADER_LEN: usize = 24;
/// Tick item length.
pub const TICK_ITEM_LEN: usize = 56;
/// Candle record length.
pub const CANDLE_LEN: usize = 104;
const KIND_TICKS: u8 = 1;
const TAG_TICK: u8 = 1;
const TAG_PRODUCT: u8 = 2;

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn put_i64(buf: &mut [u8], at: usize, v: i64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}
fn i64_at(buf: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// Starts a tick record in `buf` (cleared first).
pub fn begin_ticks(buf: &mut Vec<u8>, source: Source, partition: i32, next_offset: i64) {
    buf.clear();
    buf.resize(HEADER_LEN, 0);
    buf[0] = KIND_TICKS;
    buf[1] = source as u8;
    put_u32(buf, 4, partition as u32);
    put_i64(buf, 8, next_offset);
}

fn count_item(buf: &mut [u8]) {
    let n = u32_at(buf, 16).unwrap_or(0) + 1;
    put_u32(buf, 16, n);
}

/// Appends a tick item; returns its offset in the payload.
pub fn push_tick(buf: &mut Vec<u8>, product: u32, tick: &Tick, prev: Link) -> u32 {
    let at = buf.len();
    buf.resize(at + TICK_ITEM_LEN, 0);
    let item = &mut buf[at..];
    item[0] = TAG_TICK;
    item[1] = tick.source as u8;
    put_u32(item, 4, product);
    put_i64(item, 8, tick.price);
    put_i64(item, 16, tick.size);
    put_i64(item, 24, tick.ts);
    put_u64(item, 32, tick.seq);
    put_u64(item, 40, prev.segment);
    put_u32(item, 48, prev.offset);
    put_u32(item, 52, prev.item);
    count_item(buf);
    at as u32
}

/// Appends a product item.
pub fn push_product(buf: &mut Vec<u8>, def: &ProductDef) {
    let at = buf.len();
    let (symbol, currency, name) = (
        def.symbol.as_bytes(),
        def.currency.as_bytes(),
        def.name.as_bytes(),
    );
    let len = 16 + symbol.len() + currency.len() + name.len();
    buf.resize(at + len.next_multiple_of(8), 0);
    let item = &mut buf[at..];
    item[0] = TAG_PRODUCT;
    item[1] = symbol.len() as u8;
    item[2] = currency.len() as u8;
    item[4..6].copy_from_slice(&(name.len() as u16).to_le_bytes());
    put_i64(item, 8, def.tick_size);
    let mut p = 16;
    for part in [symbol, currency, name] {
        item[p..p + part.len()].copy_from_slice(part);
        p += part.len();
    }
    count_item(buf);
}

/// The header of a tick record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicksHeader {
    /// Whose offsets.
    pub source: Source,
    /// The partition.
    pub partition: i32,
    /// The partition's next offset after this record.
    pub next_offset: i64,
    /// Number of items.
    pub n_items: u32,
}

/// An item of a tick record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A tick.
    Tick {
        /// Product id.
        product: u32,
        /// The tick.
        tick: Tick,
        /// The product's previous tick.
        prev: Link,
    },
    /// A product definition.
    Product(ProductDef),
}

/// Why a stored record could not be read (damage the journal's checksum did not catch, or a
/// link that points at the wrong place).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("market-data record is malformed: {0}")]
pub struct RecordError(pub &'static str);

/// Reads a tick record's header.
pub fn ticks_header(payload: &[u8]) -> Result<TicksHeader, RecordError> {
    if payload.first() != Some(&KIND_TICKS) || payload.len() < HEADER_LEN {
        return Err(RecordError("not a tick record"));
    }
    Ok(TicksHeader {
        source: Source::from_u8(payload[1]).ok_or(RecordError("unknown source"))?,
        partition: u32_at(payload, 4).ok_or(RecordError("header"))? as i32,
        next_offset: i64_at(payload, 8).ok_or(RecordError("header"))?,
        n_items: u32_at(payload, 16).ok_or(RecordError("header"))?,
    })
}

/// The item at byte offset `at` of a tick record and the offset of the next one.
pub fn item_at(payload: &[u8], at: usize) -> Result<(Item, usize), RecordError> {
    let item = payload.get(at..).ok_or(RecordError("item offset"))?;
    match item.first() {
        Some(&TAG_TICK) => {
            let bad = RecordError("tick item");
            if item.len() < TICK_ITEM_LEN {
                return Err(bad);
            }
            let tick = Tick {
                source: Source::from_u8(item[1]).ok_or(RecordError("unknown source"))?,
                price: i64_at(item, 8).ok_or(bad.clone())?,
                size: i64_at(item, 16).ok_or(bad.clone())?,
                ts: i64_at(item, 24).ok_or(bad.clone())?,
                seq: u64_at(item, 32).ok_or(bad.clone())?,
            };
            let prev = Link {
                segment: u64_at(item, 40).ok_or(bad.clone())?,
                offset: u32_at(item, 48).ok_or(bad.clone())?,
                item: u32_at(item, 52).ok_or(bad.clone())?,
            };
            let product = u32_at(item, 4).ok_or(bad)?;
            Ok((
                Item::Tick {
                    product,
                    tick,
                    prev,
                },
                at + TICK_ITEM_LEN,
            ))
        }
        Some(&TAG_PRODUCT) => {
            let bad = RecordError("product item");
            let (ls, lc) = (
                usize::from(*item.get(1).ok_or(bad.clone())?),
                usize::from(*item.get(2).ok_or(bad.clone())?),
            );
            let ln = usize::from(u16::from_le_bytes(
                item.get(4..6)
                    .ok_or(bad.clone())?
                    .try_into()
                    .map_err(|_| bad.clone())?,
            ));
            let tick_size = i64_at(item, 8).ok_or(bad.clone())?;
            let text = |from: usize, len: usize| -> Result<&str, RecordError> {
                let bytes = item.get(from..from + len).ok_or(bad.clone())?;
                std::str::from_utf8(bytes).map_err(|_| bad.clone())
            };
            let symbol = Symbol::new(text(16, ls)?).ok_or(bad.clone())?;
            let currency = Symbol::new(text(16 + ls, lc)?).ok_or(bad.clone())?;
            let name = text(16 + ls + lc, ln)?.to_string();
            let len = (16 + ls + lc + ln).next_multiple_of(8);
            Ok((
                Item::Product(ProductDef {
                    symbol,
                    name,
                    currency,
                    tick_size,
                }),
                at + len,
            ))
        }
        _ => Err(RecordError("unknown item tag")),
    }
}

/// Every item of a tick record with its offset.
pub fn items(payload: &[u8]) -> Result<Vec<(u32, Item)>, RecordError> {
    let header = ticks_header(payload)?;
    let mut at = HEADER_LEN;
    let mut out = Vec::with_capacity(header.n_items as usize);
    for _ in 0..header.n_items {
        let (item, next) = item_at(payload, at)?;
        out.push((at as u32, item));
        at = next;
    }
    Ok(out)
}

/// Writes a candle record.
pub fn write_candle(buf: &mut [u8; CANDLE_LEN], product: u32, candle: &Candle, prev: Link) {
    put_u32(buf, 0, product);
    put_u32(buf, 4, candle.count);
    for (at, v) in [
        (8, candle.start),
        (16, candle.open),
        (24, candle.high),
        (32, candle.low),
        (40, candle.close),
        (56, candle.first.ts),
        (72, candle.last.ts),
    ] {
        put_i64(buf, at, v);
    }
    put_u64(buf, 48, candle.volume);
    put_u64(buf, 64, candle.first.tag);
    put_u64(buf, 80, candle.last.tag);
    put_u64(buf, 88, prev.segment);
    put_u32(buf, 96, prev.offset);
    put_u32(buf, 100, 0);
}

/// Reads a candle record: the product, the candle and the link to the previous one.
pub fn read_candle(payload: &[u8]) -> Result<(u32, Candle, Link), RecordError> {
    let bad = || RecordError("candle record");
    if payload.len() != CANDLE_LEN {
        return Err(bad());
    }
    let i = |at| i64_at(payload, at).ok_or_else(bad);
    let u = |at| u64_at(payload, at).ok_or_else(bad);
    let candle = Candle {
        start: i(8)?,
        open: i(16)?,
        high: i(24)?,
        low: i(32)?,
        close: i(40)?,
        volume: u(48)?,
        count: u32_at(payload, 4).ok_or_else(bad)?,
        first: Key {
            ts: i(56)?,
            tag: u(64)?,
        },
        last: Key {
            ts: i(72)?,
            tag: u(80)?,
        },
    };
    let prev = Link {
        segment: u(88)?,
        offset: u32_at(payload, 96).ok_or_else(bad)?,
        item: 0,
    };
    Ok((u32_at(payload, 0).ok_or_else(bad)?, candle, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let tick = Tick {
            price: 5,
            size: 7,
            ts: 1_000,
            seq: 9,
            source: Source::Bourse,
        };
        let def = ProductDef {
            symbol: Symbol::new("BRK.B").unwrap(),
            name: "Berkshire — B".into(),
            currency: Symbol::new("USD").unwrap(),
            tick_size: 1_000_000,
        };
        let prev = Link {
            segment: 3,
            offset: 64,
            item: 24,
        };
        let mut buf = Vec::new();
        begin_ticks(&mut buf, Source::Feed, 2, 41);
        push_product(&mut buf, &def);
        let at = push_tick(&mut buf, 7, &tick, prev);
        assert_eq!(
            ticks_header(&buf).unwrap(),
            TicksHeader {
                source: Source::Feed,
                partition: 2,
                next_offset: 41,
                n_items: 2
            }
        );
        let items = items(&buf).unwrap();
        assert_eq!(items[0], (HEADER_LEN as u32, Item::Product(def)));
        assert_eq!(
            items[1],
            (
                at,
                Item::Tick {
                    product: 7,
                    tick,
                    prev
                }
            )
        );
        // Damage is an error, never a panic.
        for cut in 0..buf.len() {
            let _ = super::items(&buf[..cut]);
        }
        let candle = Candle::of(60_000, &tick);
        let mut rec = [0u8; CANDLE_LEN];
        write_candle(&mut rec, 7, &candle, prev);
        assert_eq!(
            read_candle(&rec).unwrap(),
            (7, candle, Link { item: 0, ..prev })
        );
    }
}
