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
//!   ([`crate::market`]); Bourse's own fills reach them as ticks through [`bourse_ticks`].

use std::collections::{BTreeSet, HashMap};

use bourse_engine::{AccountId, ProductId};
use bourse_pipeline::Handle;
use serde_json::{Value, json};

use bourse_marketdata::fixed;
use bourse_marketdata::tick::{FeedItem, Source, Tick};

use crate::history::{Entry, FillTick, History, fill_sides};
use crate::hub::{ChannelKey, Hub};
use crate::render::{self, ProductUnits};

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
        ChannelKey::Ticks(_) => format!("ticks:{}", symbol()),
        ChannelKey::Candles(..) => format!("candles:{}", symbol()),
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
        | ChannelKey::Candles(..) => Value::Null,
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
        ChannelKey::Balances(_) | ChannelKey::Ticks(_) | ChannelKey::Candles(..) => Vec::new(),
    }
}

/// Product units, read from the engine once per product (they never change).
#[derive(Default)]
pub struct UnitsCache {
    units: HashMap<u32, ProductUnits>,
}

impl UnitsCache {
    /// Makes sure `products` are known (one engine query for the missing ones).
    pub fn load(&mut self, handle: &Handle, products: &[u32]) {
        let missing: Vec<u32> = products
            .iter()
            .copied()
            .filter(|p| !self.units.contains_key(p))
            .collect();
        if missing.is_empty() {
            return;
        }
        if let Ok(found) = handle
            .try_query(move |engine| render::units_of(engine, &missing))
            .and_then(|ticket| ticket.wait())
        {
            self.units.extend(found);
        }
    }

    /// Adds units read elsewhere.
    pub fn extend(&mut self, units: HashMap<u32, ProductUnits>) {
        self.units.extend(units);
    }

    pub fn get(&self, product: u32) -> Option<&ProductUnits> {
        self.units.get(&product)
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
    crate::products_api::book_json(engine, units, product, BOOK_DEPTH)
}

/// The id of a product by symbol, with its units.
pub fn resolve(engine: &bourse_engine::Engine, symbol: &str) -> Option<(u32, ProductUnits)> {
    let symbol = bourse_engine::Symbol::new(symbol)?;
    let product: ProductId = engine.product_by_symbol(&symbol)?;
    Some((product.get(), ProductUnits::of(engine, product)?))
}

/// Bourse's fills as ticks for the market data (source Bourse, sequence number = the fill's
/// event sequence number), for the products whose units are known.
pub fn bourse_ticks(
    fills: impl IntoIterator<Item = FillTick>,
    units: &UnitsCache,
) -> Vec<FeedItem> {
    fills
        .into_iter()
        .filter_map(|fill| {
            let u = units.get(fill.product)?;
            let symbol = bourse_marketdata::tick::Symbol::new(&u.symbol())?;
            let price = fixed::from_decimal(u.price(fill.price).parse().ok()?)?;
            let size = fixed::from_decimal(u.qty(fill.qty).parse().ok()?)?;
            (price > 0 && size > 0).then_some(FeedItem::Tick {
                symbol,
                tick: Tick {
                    price,
                    size,
                    ts: fill.ts,
                    seq: fill.seq,
                    source: Source::Bourse,
                },
            })
        })
        .collect()
}
