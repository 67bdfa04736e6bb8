//! Reading the tick and candle history: [`MarketReader`] walks a product's chains in the logs
//! (newest first) for range queries, and finds the newest tick or candle before a time (what
//! converts one product's series at another's price).

use std::collections::BTreeMap;

use bourse_journal::{FsStorage, Storage};

use crate::MarketError;
use crate::candle::{Candle, Interval};
use crate::log::LogReader;
use crate::record::{self, Item, Link, SAME_RECORD};
use crate::tick::Tick;

/// Walks the per-product chains of the tick and candle logs.
#[derive(Debug)]
pub struct MarketReader<S: Storage = FsStorage> {
    pub(crate) ticks: LogReader<S>,
    pub(crate) candles: Vec<LogReader<S>>,
    pub(crate) late_ms: i64,
}

/// Longest chain walk of one query, in records.
pub const WALK_MAX: usize = 1_000_000;

impl<S: Storage> MarketReader<S> {
    /// Walks the tick chain of `product` from `head`, newest arrival first, handing each tick
    /// to `visit` until it answers `false` (or the chain or [`WALK_MAX`] ends).
    fn walk_ticks(
        &mut self,
        product: u32,
        head: Link,
        mut visit: impl FnMut(Tick) -> bool,
    ) -> Result<(), MarketError> {
        let mut link = head;
        let mut record_at = None;
        for _ in 0..WALK_MAX {
            if link.is_none() {
                break;
            }
            if link.segment != SAME_RECORD {
                record_at = Some(link.position());
            }
            let Some(position) = record_at else {
                return Err(record::RecordError("a chain starts inside a record").into());
            };
            let Some(record) = self.ticks.read(position)? else {
                break;
            };
            let (item, _) = record::item_at(record.payload, link.item as usize)?;
            let Item::Tick {
                product: p,
                tick,
                prev,
            } = item
            else {
                return Err(record::RecordError("a tick link points at a product").into());
            };
            if p != product {
                return Err(record::RecordError("tick chain crosses products").into());
            }
            if !visit(tick) {
                break;
            }
            link = prev;
        }
        Ok(())
    }

    /// Up to `limit` ticks of the product whose newest tick is `head`, with `from <= ts <= to`:
    /// the latest arrivals if there are more, sorted by exchange time (then source, seq).
    pub fn ticks(
        &mut self,
        product: u32,
        head: Link,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Tick>, MarketError> {
        let stop_before = from.saturating_sub(self.late_ms);
        let mut out = Vec::new();
        if limit > 0 {
            self.walk_ticks(product, head, |tick| {
                if tick.ts < stop_before {
                    return false;
                }
                if (from..=to).contains(&tick.ts) {
                    out.push(tick);
                }
                out.len() < limit
            })?;
        }
        out.sort_by_key(Tick::key);
        Ok(out)
    }

    /// The newest tick (by time, then source and seq) of the product whose newest tick is
    /// `head` with `ts < before`, if the tick log still has one: what a series converted at
    /// this product's price needs before its first tick.
    pub fn tick_before(
        &mut self,
        product: u32,
        head: Link,
        before: i64,
    ) -> Result<Option<Tick>, MarketError> {
        let late_ms = self.late_ms;
        let mut best: Option<Tick> = None;
        self.walk_ticks(product, head, |tick| {
            if tick.ts < before && best.is_none_or(|b| tick.key() > b.key()) {
                best = Some(tick);
            }
            // A tick is taken at most `late_ms` behind the newest, so every earlier arrival is
            // at most `late_ms` after this one: once that is before the best, none is newer.
            best.is_none_or(|b| tick.ts.saturating_add(late_ms) >= b.ts)
        })?;
        Ok(best)
    }

    /// Walks the candle chain of `interval` of `product` from `head`, newest write first,
    /// handing each candle to `visit` until it answers `false` (or the chain or [`WALK_MAX`]
    /// ends).
    fn walk_candles(
        &mut self,
        product: u32,
        interval: Interval,
        head: Link,
        mut visit: impl FnMut(Candle) -> bool,
    ) -> Result<(), MarketError> {
        let reader = &mut self.candles[interval.index()];
        let mut link = head;
        for _ in 0..WALK_MAX {
            if link.is_none() {
                break;
            }
            let Some(record) = reader.read(link.position())? else {
                break;
            };
            let (p, candle, prev) = record::read_candle(record.payload)?;
            if p != product {
                return Err(record::RecordError("candle chain crosses products").into());
            }
            if !visit(candle) {
                break;
            }
            link = prev;
        }
        Ok(())
    }

    /// The candle of `interval` with the greatest start before `before` (its newest version),
    /// if any: the open candle when it starts before `before`, else a stored one. What a
    /// series converted at this product's price needs before its first candle.
    pub fn candle_before(
        &mut self,
        product: u32,
        interval: Interval,
        head: Link,
        open: Option<Candle>,
        before: i64,
    ) -> Result<Option<Candle>, MarketError> {
        // The open candle's bucket is the newest there is.
        if let Some(open) = open.filter(|c| !c.is_empty() && c.start < before) {
            return Ok(Some(open));
        }
        let late_ms = self.late_ms;
        let mut best: Option<Candle> = None;
        self.walk_candles(product, interval, head, |candle| {
            // The first version met of a bucket is the newest: a later one of the same start
            // does not replace it.
            if candle.start < before && best.is_none_or(|b| candle.start > b.start) {
                best = Some(candle);
            }
            // A candle is written for a tick at most `late_ms` behind the newest, so every
            // earlier write starts at most an interval and `late_ms` after this one: once that
            // is before the best, none is newer.
            best.is_none_or(|b| {
                candle
                    .start
                    .saturating_add(interval.millis())
                    .saturating_add(late_ms)
                    >= b.start
            })
        })?;
        Ok(best)
    }

    /// The candles of `interval` with `from <= start <= to`, oldest first, at most `limit`
    /// (the newest if there are more): the stored ones from the chain at `head` (the newest
    /// version of each bucket), then `open`, the open candle.
    #[allow(clippy::too_many_arguments)]
    pub fn candles(
        &mut self,
        product: u32,
        interval: Interval,
        head: Link,
        open: Option<Candle>,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<Candle>, MarketError> {
        let stop_before = from.saturating_sub(self.late_ms + interval.millis());
        let mut found: BTreeMap<i64, Candle> = BTreeMap::new();
        if let Some(open) = open.filter(|c| !c.is_empty() && (from..=to).contains(&c.start)) {
            found.insert(open.start, open);
        }
        self.walk_candles(product, interval, head, |candle| {
            if candle.start < stop_before {
                return false;
            }
            if (from..=to).contains(&candle.start) {
                // The first version met is the newest.
                found.entry(candle.start).or_insert(candle);
            }
            true
        })?;
        let skip = found.len().saturating_sub(limit);
        Ok(found.into_values().skip(skip).collect())
    }
}
