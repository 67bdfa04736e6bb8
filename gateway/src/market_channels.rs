//! The `ticks:SYMBOL` and `candles:SYMBOL:INTERVAL` channels: a subscription's snapshot from
//! the market data, and the updates the ingest thread publishes ([`MarketFanout`]).

use std::sync::Arc;

use bourse_market_service::{Applied, Market, MarketService, Publisher, unix_micros};
use bourse_marketdata::candle::Interval;
use serde_json::Value;

use crate::fanout::message;
use crate::hub::{ChannelKey, Hub, HubError};
use crate::render::{candle_json, tick_json};

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
        ChannelKey::Ticks(id) => {
            let state = market.product(id).ok_or("unknown product")?;
            let symbol = symbol_of(&market, id);
            let ticks = reader
                .ticks(id, state.tick_head, 0, i64::MAX, TICKS_SNAPSHOT)
                .map_err(|e| e.to_string())?;
            Value::Array(ticks.iter().map(|t| tick_json(&symbol, t, None)).collect())
        }
        ChannelKey::Candles(id, index) => {
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
            Value::Array(
                candles
                    .iter()
                    .map(|c| candle_json(c, c.start != open_start))
                    .collect(),
            )
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
        let key = ChannelKey::Candles(*id, interval.index() as u8);
        if hub.has_subscribers(key) {
            let data = candle_json(candle, true);
            let name = candles_channel(&symbol_of(market, *id), *interval);
            hub.publish(key, |n| message(&name, false, n, &data));
        }
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
