//! What the WebSocket channels carry, and the publishing of each event batch to them.
//!
//! The history thread publishes right after it folded a batch, still holding the model's
//! write lock; a subscription takes the model's read lock before the hub's, so a snapshot of
//! `orders`, `trades` or `ticks` taken from the model is followed by exactly the updates of
//! the events after it. `balances` and `book` are whole states read from the engine (after
//! the batch, in one query for every account and product that changed); each carries the
//! engine's `eventSeq`, and a client keeps the one with the highest.
//!
//! Every message is `{"channel", "type": "snapshot"|"update", "seq", "data"}`:
//! - `orders`: snapshot = the open orders (newest first); update = one order as it now is.
//! - `trades`: snapshot = the newest 50 trades; update = one trade.
//! - `balances`: `{eventSeq, balances: [{currency, available, held}]}`.
//! - `book:SYMBOL`: `{symbol, bids, asks, eventSeq}`, [`BOOK_DEPTH`] levels a side.
//! - `ticks:SYMBOL` and `candles:SYMBOL:INTERVAL` are published by the market data
//!   ([`crate::market_channels`]); Bourse's own fills reach them as ticks, handed to the
//!   market data by [`HistoryFanout`].

use std::collections::{BTreeSet, HashMap};

use bourse_engine::{AccountId, ProductId};
use bourse_pipeline::Handle;
use serde_json::{Value, json};

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use bourse_history::{Entry, FillTick, History, Observer, fill_sides};
use bourse_market_service::{Input, ProductUnits, UnitsCache, bourse_ticks};

use crate::hub::{ChannelKey, Hub};
use crate::render;

/// Levels per side on `book:` channels.
pub const BOOK_DEPTH: usize = 20;
/// Trades in a `trades` snapshot.
pub const TRADES_SNAPSHOT: usize = 50;
/// Open orders in an `orders` snapshot.
pub const ORDERS_SNAPSHOT: usize = 500;

/// A channel message.
pub fn message(channel: &str, snapshot: bool, seq: u64, data: &Value) -> String {
    json!({
        "channel": channel,
        "type": if snapshot { "snapshot" } else { "update" },
        "seq": seq,
        "data": data,
    })
    .to_string()
}

/// The channel's name as clients write it.
pub fn channel_name(key: ChannelKey, units: Option<&ProductUnits>) -> String {
    let symbol = || units.map(ProductUnits::symbol).unwrap_or_default();
    match key {
        ChannelKey::Orders(_) => "orders".into(),
        ChannelKey::Trades(_) => "trades".into(),
        ChannelKey::Balances(_) => "balances".into(),
        ChannelKey::Book(_) => format!("book:{}", symbol()),
        ChannelKey::Ticks(_) | ChannelKey::TicksIn(..) => format!("ticks:{}", symbol()),
        ChannelKey::Candles(..) | ChannelKey::CandlesIn(..) => format!("candles:{}", symbol()),
    }
}

/// The snapshot of a channel served from the history model (`orders`, `trades`, `ticks`).
pub fn model_snapshot(
    model: &History,
    key: ChannelKey,
    units: &HashMap<u32, ProductUnits>,
) -> Value {
    match key {
        ChannelKey::Orders(account) => Value::Array(
            model
                .orders(account, true, None, ORDERS_SNAPSHOT)
                .items
                .iter()
                .filter_map(|o| Some(render::order(units.get(&o.product)?, o, None)))
                .collect(),
        ),
        ChannelKey::Trades(account) => Value::Array(
            model
                .trades(account, None, TRADES_SNAPSHOT)
                .items
                .iter()
                .filter_map(|t| Some(render::trade(units.get(&t.product)?, t)))
                .collect(),
        ),
        ChannelKey::Balances(_)
        | ChannelKey::Book(_)
        | ChannelKey::Ticks(_)
        | ChannelKey::Candles(..)
        | ChannelKey::TicksIn(..)
        | ChannelKey::CandlesIn(..) => Value::Null,
    }
}

/// The products a snapshot of the model for `account` may show.
pub fn model_products(model: &History, key: ChannelKey) -> Vec<u32> {
    match key {
        ChannelKey::Orders(account) => render::products_in(
            &model.orders(account, true, None, ORDERS_SNAPSHOT).items,
            |o| Some(o.product),
        ),
        ChannelKey::Trades(account) => {
            render::products_in(&model.trades(account, None, TRADES_SNAPSHOT).items, |t| {
                Some(t.product)
            })
        }
        ChannelKey::Book(product) => vec![product],
        ChannelKey::Balances(_)
        | ChannelKey::Ticks(_)
        | ChannelKey::Candles(..)
        | ChannelKey::TicksIn(..)
        | ChannelKey::CandlesIn(..) => Vec::new(),
    }
}

/// The history thread's observer: publishes each batch to the WebSocket channels and hands
/// Bourse's fills to the market data.
pub struct HistoryFanout {
    hub: Arc<Hub>,
    /// Serves the engine reads (product units, balances, books).
    handle: Handle,
    /// Where Bourse's fills go as ticks (`None`: no market data).
    market: Option<SyncSender<Input>>,
    units: UnitsCache,
    /// What the last batch changed, published once the model's lock is released.
    dirty: Dirty,
}

impl HistoryFanout {
    pub fn new(hub: Arc<Hub>, handle: Handle, market: Option<SyncSender<Input>>) -> Self {
        HistoryFanout {
            hub,
            handle,
            market,
            units: UnitsCache::default(),
            dirty: Dirty::default(),
        }
    }
}

impl Observer for HistoryFanout {
    fn folded(&mut self, model: &History, entries: &[Entry]) {
        // Units of every product the entries touch (engine reads only for products not seen
        // before).
        let products: Vec<u32> = entries.iter().filter_map(|e| model.product_of(e)).collect();
        self.units.load(&self.handle, &products);
        self.dirty = publish_entries(&self.hub, model, entries, &self.units);
    }

    fn released(&mut self, entries: &[Entry], newest_event_seq: u64) {
        if let Some(market) = &self.market {
            let items = bourse_ticks(entries.iter().filter_map(FillTick::of), &self.units);
            if !items.is_empty() {
                let _ = market.send(Input::Bourse {
                    next_event_seq: newest_event_seq + 1,
                    items,
                });
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        publish_states(&self.hub, &self.handle, dirty, &self.units);
    }
}

/// What a batch changed that is published after the locks are released.
#[derive(Default)]
pub struct Dirty {
    accounts: BTreeSet<u32>,
    products: BTreeSet<u32>,
}

/// Publishes the updates of a batch's `entries`, just folded into `model`.
pub fn publish_entries(hub: &Hub, model: &History, entries: &[Entry], units: &UnitsCache) -> Dirty {
    let mut dirty = Dirty::default();
    let mut orders: BTreeSet<u64> = BTreeSet::new();
    for entry in entries {
        match entry {
            Entry::Accepted { order, account, .. } => {
                orders.insert(*order);
                dirty.accounts.insert(*account);
            }
            Entry::Rested { order, .. } | Entry::Cancelled { order, .. } => {
                orders.insert(*order);
                if let Some(record) = model.order_any(*order) {
                    dirty.accounts.insert(record.account);
                    dirty.products.insert(record.product);
                }
            }
            Entry::Fill {
                product,
                maker_order,
                taker_order,
                maker_account,
                taker_account,
                ..
            } => {
                orders.insert(*maker_order);
                orders.insert(*taker_order);
                dirty.accounts.extend([*maker_account, *taker_account]);
                dirty.products.insert(*product);
                let Some(u) = units.get(*product) else {
                    continue;
                };
                for (account, trade, _) in fill_sides(entry).into_iter().flatten() {
                    hub.publish(ChannelKey::Trades(account), |n| {
                        message("trades", false, n, &render::trade(u, &trade))
                    });
                }
            }
            Entry::Funds { account, .. } => {
                dirty.accounts.insert(*account);
            }
        }
    }
    for order in orders {
        let Some(record) = model.order_any(order) else {
            continue;
        };
        let key = ChannelKey::Orders(record.account);
        if !hub.has_subscribers(key) {
            continue;
        }
        if let Some(u) = units.get(record.product) {
            let data = render::order(u, &record, None);
            hub.publish(key, |n| message("orders", false, n, &data));
        }
    }
    dirty
}

/// Publishes the new balances and books of what a batch changed, read in one engine query.
pub fn publish_states(hub: &Hub, handle: &Handle, dirty: Dirty, units: &UnitsCache) {
    let accounts: Vec<u32> = dirty
        .accounts
        .into_iter()
        .filter(|a| hub.has_subscribers(ChannelKey::Balances(*a)))
        .collect();
    let books: Vec<(u32, ProductUnits)> = dirty
        .products
        .into_iter()
        .filter(|p| hub.has_subscribers(ChannelKey::Book(*p)))
        .filter_map(|p| Some((p, units.get(p)?.clone())))
        .collect();
    if accounts.is_empty() && books.is_empty() {
        return;
    }
    let read = handle
        .try_query(move |engine| {
            let balances: Vec<(u32, Value)> = accounts
                .iter()
                .map(|&a| (a, balances_data(engine, a)))
                .collect();
            let books: Vec<(u32, String, Value)> = books
                .iter()
                .map(|(p, u)| {
                    let name = channel_name(ChannelKey::Book(*p), Some(u));
                    (*p, name, book_data(engine, u, *p))
                })
                .collect();
            (balances, books)
        })
        .and_then(|ticket| ticket.wait());
    let Ok((balances, books)) = read else {
        return;
    };
    for (account, data) in balances {
        hub.publish(ChannelKey::Balances(account), |n| {
            message("balances", false, n, &data)
        });
    }
    for (product, name, data) in books {
        hub.publish(ChannelKey::Book(product), |n| {
            message(&name, false, n, &data)
        });
    }
}

/// The balances snapshot of `account` (engine state).
pub fn balances_data(engine: &bourse_engine::Engine, account: u32) -> Value {
    json!({
        "eventSeq": engine.event_seq(),
        "balances": crate::funds_api::balances_json(engine, AccountId::new(account)),
    })
}

/// The book snapshot of `product` (engine state).
pub fn book_data(engine: &bourse_engine::Engine, units: &ProductUnits, product: u32) -> Value {
    crate::render::to_value(&crate::products_api::book_json(
        engine, units, product, BOOK_DEPTH,
    ))
}

/// The id of a product by symbol, with its units.
pub fn resolve(engine: &bourse_engine::Engine, symbol: &str) -> Option<(u32, ProductUnits)> {
    let symbol = bourse_engine::Symbol::new(symbol)?;
    let product: ProductId = engine.product_by_symbol(&symbol)?;
    Some((product.get(), ProductUnits::of(engine, product)?))
}
