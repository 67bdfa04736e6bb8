//! The `ticks:SYMBOL` and `candles:SYMBOL:INTERVAL` channels: a subscription's snapshot from
//! the market data, and the updates the ingest thread publishes ([`MarketFanout`]).
//!
//! **Converted channels.** `ticks:SYMBOL:CUR` and `candles:SYMBOL:INTERVAL:CUR` are the same
//! series with prices in `CUR`, at the rates the REST API uses (docs/api.md, "Currencies"):
//! a tick at the pair's newest tick at or before it, a candle at the close of the pair's
//! candle of the same interval with the greatest start at or before its start; each names
//! its `currency` and `rate`. A value with no rate yet (before the pair's first tick) is left
//! out, never sent unconverted. Subscribing to one no listed rate converts is refused with
//! `no_rate`.

use std::sync::Arc;

use axum::http::StatusCode;
use bourse_market_service::{Applied, Market, MarketService, Publisher, unix_micros};
use bourse_marketdata::candle::{Candle, Interval};
use bourse_marketdata::tick::Tick;
use serde_json::Value;

use crate::error::{ApiError, bad_request};
use crate::fanout::message;
use crate::fx::Pair;
use crate::hub::{ChannelKey, Fx, Hub, HubError};
use crate::render::{candle_json, candle_view, tick_json, tick_view, to_value};

/// The key of `ticks:REST` or `candles:REST` (`kind`), where `REST` is `SYMBOL[:CUR]` or
/// `SYMBOL:INTERVAL[:CUR]`.
pub fn parse(market: &MarketService, kind: &str, rest: &str) -> Result<ChannelKey, ApiError> {
    let parts: Vec<&str> = rest.split(':').collect();
    let product = |symbol: &str| {
        market.product_id(symbol).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_symbol",
                format!("no product {symbol:?}"),
            )
        })
    };
    match (kind, parts.as_slice()) {
        ("ticks", [symbol]) => Ok(ChannelKey::Ticks(product(symbol)?)),
        ("ticks", [symbol, currency]) => {
            let id = product(symbol)?;
            Ok(ChannelKey::TicksIn(id, fx_of(market, id, currency)?))
        }
        ("candles", [symbol, interval, currency @ ..]) if currency.len() <= 1 => {
            let index = crate::products_api::interval(interval)?.index() as u8;
            let id = product(symbol)?;
            Ok(match currency {
                [currency] => ChannelKey::CandlesIn(id, index, fx_of(market, id, currency)?),
                _ => ChannelKey::Candles(id, index),
            })
        }
        ("ticks", _) => Err(bad_request(
            "a ticks channel is ticks:SYMBOL or ticks:SYMBOL:CUR",
        )),
        _ => Err(bad_request(
            "a candles channel is candles:SYMBOL:INTERVAL or candles:SYMBOL:INTERVAL:CUR",
        )),
    }
}

/// The rate converting product `id` into `currency`.
fn fx_of(market: &MarketService, id: u32, currency: &str) -> Result<Fx, ApiError> {
    let currency = crate::fx::currency_param(currency)?;
    let market = market.read().map_err(crate::error::market_unavailable)?;
    let own = market
        .catalogue()
        .get(id)
        .map(|listing| market.catalogue().currency(listing).as_str().to_owned())
        .unwrap_or_default();
    if *own == *currency {
        return Err(bad_request(format!(
            "the product is in {own} already: subscribe without the currency"
        )));
    }
    let pair = crate::fx::pair_for(&market, &own, &currency)
        .ok_or_else(|| crate::fx::no_pair(&own, &currency))?;
    Ok(Fx {
        pair: pair.id,
        divide: pair.divide,
    })
}

/// The pair of `fx` and the currency it converts into.
fn pair_of(market: &Market, fx: Fx) -> (Pair, Arc<str>) {
    let symbol = symbol_of(market, fx.pair);
    // A pair's symbol is BASEQUOTE (`fx::rate_currencies`); dividing converts into BASE.
    let currency = if fx.divide {
        symbol.get(..3)
    } else {
        symbol.get(3..)
    };
    let currency: Arc<str> = currency.unwrap_or_default().into();
    let pair = Pair {
        id: fx.pair,
        symbol: symbol.into(),
        divide: fx.divide,
    };
    (pair, currency)
}

/// The pair's rate in force at `ts`: its newest tick at or before it, `(price, time)`.
fn tick_rate(market: &Market, pair: u32, ts: i64) -> Option<(i64, i64)> {
    let state = market.product(pair)?;
    let open = state.candles.open[0];
    if !open.is_empty() && open.last.ts <= ts {
        return Some((open.close, open.last.ts));
    }
    let mut reader = market.reader().ok()?;
    let tick = reader
        .tick_before(pair, state.tick_head, ts.saturating_add(1))
        .ok()??;
    Some((tick.price, tick.ts))
}

/// The pair's candle of `interval` that converts a candle starting at `start`: the one with
/// the greatest start at or before it.
fn candle_rate(market: &Market, pair: u32, interval: Interval, start: i64) -> Option<Candle> {
    let state = market.product(pair)?;
    let open = state.candles.open[interval.index()];
    if !open.is_empty() && open.start <= start {
        return Some(open);
    }
    let mut reader = market.reader().ok()?;
    reader
        .candle_before(
            pair,
            interval,
            state.candle_heads[interval.index()].link(),
            Some(open),
            start.saturating_add(1),
        )
        .ok()?
}

/// A tick of `symbol` in the currency of `fx`; `None` without a rate.
fn tick_in(
    market: &Market,
    fx: Fx,
    symbol: &str,
    tick: &Tick,
    published: Option<u64>,
) -> Option<Value> {
    let rate = tick_rate(market, fx.pair, tick.ts)?;
    tick_at(market, fx, symbol, tick, published, rate)
}

/// A tick of `symbol` in the currency of `fx` at `rate` (price, time).
fn tick_at(
    market: &Market,
    fx: Fx,
    symbol: &str,
    tick: &Tick,
    published: Option<u64>,
    rate: (i64, i64),
) -> Option<Value> {
    let (pair, currency) = pair_of(market, fx);
    let view = tick_view(symbol, tick, published).converted(tick, &currency, &pair, rate)?;
    Some(to_value(&view))
}

/// A candle of `interval` in the currency of `fx`; `None` without a rate.
fn candle_in(
    market: &Market,
    fx: Fx,
    interval: Interval,
    candle: &Candle,
    closed: bool,
) -> Option<Value> {
    let rate = candle_rate(market, fx.pair, interval, candle.start)?;
    candle_at(market, fx, candle, closed, &rate)
}

/// A candle in the currency of `fx` at the pair's candle `rate`.
fn candle_at(
    market: &Market,
    fx: Fx,
    candle: &Candle,
    closed: bool,
    rate: &Candle,
) -> Option<Value> {
    let (pair, currency) = pair_of(market, fx);
    let view = candle_view(candle, closed).converted(candle, &currency, &pair, rate)?;
    Some(to_value(&view))
}

/// A snapshot's ticks in the currency of `fx`: the pair's ticks over their span read once.
fn ticks_in(market: &Market, fx: Fx, symbol: &str, ticks: &[Tick]) -> Result<Vec<Value>, String> {
    let (Some(first), Some(last)) = (
        ticks.iter().map(|t| t.ts).min(),
        ticks.iter().map(|t| t.ts).max(),
    ) else {
        return Ok(Vec::new());
    };
    let mut reader = market.reader().map_err(|e| e.to_string())?;
    let (pair, _) = pair_of(market, fx);
    let rates =
        crate::fx::ticks_over(market, &mut reader, &pair, first, last).map_err(|e| e.message)?;
    Ok(ticks
        .iter()
        .filter_map(|t| {
            let rate = crate::fx::last_at_or_before(&rates, |r| r.ts, t.ts)?;
            tick_at(market, fx, symbol, t, None, (rate.price, rate.ts))
        })
        .collect())
}

/// A snapshot's candles in the currency of `fx`: the pair's candles over their span read
/// once.
fn candles_in(
    market: &Market,
    fx: Fx,
    interval: Interval,
    candles: &[Candle],
    open_start: i64,
) -> Result<Vec<Value>, String> {
    let (Some(first), Some(last)) = (candles.first(), candles.last()) else {
        return Ok(Vec::new());
    };
    let mut reader = market.reader().map_err(|e| e.to_string())?;
    let (pair, _) = pair_of(market, fx);
    let rates = crate::fx::candles_over(
        market,
        &mut reader,
        &pair,
        interval,
        first.start,
        last.start,
    )
    .map_err(|e| e.message)?;
    Ok(candles
        .iter()
        .filter_map(|c| {
            let rate = crate::fx::last_at_or_before(&rates, |r| r.start, c.start)?;
            candle_at(market, fx, c, c.start != open_start, rate)
        })
        .collect())
}

/// Ticks in a `ticks:` snapshot.
pub const TICKS_SNAPSHOT: usize = 50;
/// Candles in a `candles:` snapshot.
pub const CANDLES_SNAPSHOT: usize = 100;

/// Subscribes connection `conn` to a `ticks:` or `candles:` channel: the snapshot is
/// taken under the read lock, so the updates published after it follow it exactly.
pub fn subscribe(
    market: &MarketService,
    hub: &Hub,
    conn: u64,
    key: ChannelKey,
    name: &str,
) -> Result<Result<(), HubError>, String> {
    let market = market.read()?;
    let mut reader = market.reader().map_err(|e| e.to_string())?;
    let data = match key {
        ChannelKey::Ticks(id) | ChannelKey::TicksIn(id, _) => {
            let state = market.product(id).ok_or("unknown product")?;
            let symbol = symbol_of(&market, id);
            let ticks = reader
                .ticks(id, state.tick_head, 0, i64::MAX, TICKS_SNAPSHOT)
                .map_err(|e| e.to_string())?;
            Value::Array(match key {
                ChannelKey::TicksIn(_, fx) => ticks_in(&market, fx, &symbol, &ticks)?,
                _ => ticks.iter().map(|t| tick_json(&symbol, t, None)).collect(),
            })
        }
        ChannelKey::Candles(id, index) | ChannelKey::CandlesIn(id, index, _) => {
            let state = market.product(id).ok_or("unknown product")?;
            let interval = Interval::ALL[usize::from(index)];
            let candles = reader
                .candles(
                    id,
                    interval,
                    state.candle_heads[interval.index()].link(),
                    Some(state.candles.open[interval.index()]),
                    0,
                    i64::MAX,
                    CANDLES_SNAPSHOT,
                )
                .map_err(|e| e.to_string())?;
            let open_start = state.candles.open[interval.index()].start;
            Value::Array(match key {
                ChannelKey::CandlesIn(.., fx) => {
                    candles_in(&market, fx, interval, &candles, open_start)?
                }
                _ => candles
                    .iter()
                    .map(|c| candle_json(c, c.start != open_start))
                    .collect(),
            })
        }
        _ => Value::Null,
    };
    Ok(hub.subscribe(conn, key, |seq| message(name, true, seq, &data)))
}

/// Publishes what each market-data message changed to the `ticks:` and `candles:` channels
/// (called by the ingest thread under the market's write lock).
pub struct MarketFanout {
    pub hub: Arc<Hub>,
}

impl Publisher for MarketFanout {
    fn applied(&mut self, market: &Market, applied: &Applied) {
        publish(&self.hub, market, applied);
    }
}

fn publish(hub: &Hub, market: &Market, applied: &Applied) {
    let mut last_product = None;
    for (id, tick) in &applied.ticks {
        let converted = hub.converted_channels(*id);
        for &key in &converted {
            if matches!(key, ChannelKey::TicksIn(..)) {
                publish_converted(hub, market, key, Some(tick), None);
            }
        }
        let key = ChannelKey::Ticks(*id);
        if hub.has_subscribers(key) {
            let symbol = symbol_of(market, *id);
            let data = tick_json(&symbol, tick, Some(unix_micros()));
            hub.publish(key, |n| {
                message(&format!("ticks:{symbol}"), false, n, &data)
            });
        }
        if last_product == Some(*id) {
            continue;
        }
        last_product = Some(*id);
        for &key in &converted {
            if matches!(key, ChannelKey::CandlesIn(..)) {
                publish_converted(hub, market, key, None, None);
            }
        }
        let Some(state) = market.product(*id) else {
            continue;
        };
        for interval in Interval::ALL {
            let key = ChannelKey::Candles(*id, interval.index() as u8);
            if hub.has_subscribers(key) {
                let data = candle_json(&state.candles.open[interval.index()], false);
                let name = candles_channel(&symbol_of(market, *id), interval);
                hub.publish(key, |n| message(&name, false, n, &data));
            }
        }
    }
    for (id, interval, candle) in &applied.amended {
        for key in hub.converted_channels(*id) {
            if matches!(key, ChannelKey::CandlesIn(_, index, _) if usize::from(index) == interval.index())
            {
                publish_converted(hub, market, key, None, Some(candle));
            }
        }
        let key = ChannelKey::Candles(*id, interval.index() as u8);
        if hub.has_subscribers(key) {
            let data = candle_json(candle, true);
            let name = candles_channel(&symbol_of(market, *id), *interval);
            hub.publish(key, |n| message(&name, false, n, &data));
        }
    }
}

/// An update of converted channel `key`: the `tick` (ticks), the open candle after it
/// (candles), or an `amended` closed candle.
fn publish_converted(
    hub: &Hub,
    market: &Market,
    key: ChannelKey,
    tick: Option<&Tick>,
    amended: Option<&Candle>,
) {
    let (data, name) = match (key, tick, amended) {
        (ChannelKey::TicksIn(id, fx), Some(tick), _) => {
            let symbol = symbol_of(market, id);
            let data = tick_in(market, fx, &symbol, tick, Some(unix_micros()));
            let (_, currency) = pair_of(market, fx);
            (data, format!("ticks:{symbol}:{currency}"))
        }
        (ChannelKey::CandlesIn(id, index, fx), _, _) => {
            let interval = Interval::ALL[usize::from(index)];
            let (candle, closed) = match amended {
                Some(candle) => (*candle, true),
                None => match market.product(id) {
                    Some(state) => (state.candles.open[interval.index()], false),
                    None => return,
                },
            };
            let data = candle_in(market, fx, interval, &candle, closed);
            let (_, currency) = pair_of(market, fx);
            let name = format!(
                "{}:{currency}",
                candles_channel(&symbol_of(market, id), interval)
            );
            (data, name)
        }
        _ => return,
    };
    if let Some(data) = data {
        hub.publish(key, |n| message(&name, false, n, &data));
    }
}

fn symbol_of(market: &Market, id: u32) -> String {
    market
        .catalogue()
        .get(id)
        .map(|l| l.symbol.to_string())
        .unwrap_or_default()
}

/// The channel name of a product's candles.
pub fn candles_channel(symbol: &str, interval: Interval) -> String {
    format!("candles:{symbol}:{}", interval.name())
}
