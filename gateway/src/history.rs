//! The history read model: every account's orders (open and closed), trades and funds
//! movements (deposits, withdrawals, fees), derived from the engine's events. (Prices,
//! ticks and candles are the market data's: [`crate::market`].)
//!
//! - **Derived.** A history thread takes every event batch from the pipeline's bus, turns the
//!   events it needs into [`Entry`]s, appends them to its own log and folds them into the
//!   in-memory [`History`]. The same fold runs when the log is read at start-up, so what a
//!   restart shows is what was shown before it.
//! - **Its own log.** `<data-dir>/history/` is a journal (the journal crate: checksummed
//!   records in memory-mapped segments) of one JSON record per event batch,
//!   `{"through": <last command seq>, "entries": [...]}`. It is never synced: it is derived
//!   data, and whatever a crash or power loss takes from its tail is rebuilt.
//! - **Rebuildable from the command journal.** At start-up, after recovery, [`catch_up`]
//!   replays the command journal from the newest snapshot at or before the log's `through`
//!   (or from the journal's start) into a scratch engine and folds the events that the log
//!   lacks (by event sequence number, so nothing is folded twice). Deleting the directory
//!   rebuilds the whole history, as long as the journal reaches back to the first command or
//!   to a kept snapshot (`retention = keep`, the default, keeps every segment).
//! - **Read-your-writes.** [`HistoryHandle::caught_up`] waits until the model has folded
//!   every event up to a given event sequence number; the endpoints ask the engine for its
//!   newest event first, so a client sees its own order in `/orders` as soon as the order was
//!   answered.
//! - **Lag.** If the history thread falls more than the bus's capacity behind, it cannot know
//!   what it missed: it stops, the history endpoints answer 503 `history_unavailable`, and a
//!   restart rebuilds it from the journal. The thread does little per event (a JSON encoding
//!   and a fold), so this needs a starved machine.
//!
//! Everything is kept in memory (about 200 bytes per order and per trade); paging old history
//! out to the log is left for when accounts trade that much.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bourse_engine::{
    CancelReason, CardLast4, Engine, Event, EventKind, FundsMethod, Limits, OrderType, Side,
    TimeInForce,
};
use bourse_journal::{
    Durability, FsStorage, Journal, JournalConfig, PrepareNext, RecoveryMode, Storage,
};
use bourse_pipeline::{EventBatch, Handle};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::fanout::{self, UnitsCache};
use crate::hub::Hub;

/// Subdirectory of the data directory that holds the history log.
pub const HISTORY_DIR: &str = "history";
/// Commands replayed per log record while catching up.
const CATCH_UP_CHUNK: usize = 4096;

/// Buy or sell, as the API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SideName {
    Buy,
    Sell,
}

impl From<Side> for SideName {
    fn from(side: Side) -> Self {
        match side {
            Side::Buy => SideName::Buy,
            Side::Sell => SideName::Sell,
        }
    }
}

/// Time in force, as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tif {
    #[serde(rename = "GTC")]
    Gtc,
    #[serde(rename = "IOC")]
    Ioc,
    #[serde(rename = "FOK")]
    Fok,
    #[serde(rename = "POST_ONLY")]
    PostOnly,
}

impl From<TimeInForce> for Tif {
    fn from(tif: TimeInForce) -> Self {
        match tif {
            TimeInForce::Gtc => Tif::Gtc,
            TimeInForce::Ioc => Tif::Ioc,
            TimeInForce::Fok => Tif::Fok,
            TimeInForce::PostOnly => Tif::PostOnly,
        }
    }
}

/// Why an order ended without filling in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// The owner cancelled it.
    Requested,
    /// Self-trade prevention.
    SelfTrade,
    /// An IOC or market order's rest (nothing more to match at once).
    Expired,
    /// A market buy ran out of funds.
    InsufficientFunds,
}

impl From<CancelReason> for EndReason {
    fn from(reason: CancelReason) -> Self {
        match reason {
            CancelReason::Requested => EndReason::Requested,
            CancelReason::SelfTrade => EndReason::SelfTrade,
            CancelReason::Expired => EndReason::Expired,
            CancelReason::InsufficientFunds => EndReason::InsufficientFunds,
        }
    }
}

/// An engine event as history keeps it (only the events it needs), in a form that serialises.
/// Amounts, prices and quantities are the engine's integers (minor units, ticks, lots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Entry {
    Accepted {
        seq: u64,
        ts: i64,
        order: u64,
        account: u32,
        product: u32,
        side: SideName,
        market: bool,
        tif: Tif,
        price: Option<i64>,
        qty: i64,
        client_order_id: Option<String>,
    },
    Fill {
        seq: u64,
        ts: i64,
        product: u32,
        maker_order: u64,
        taker_order: u64,
        maker_account: u32,
        taker_account: u32,
        taker_side: SideName,
        price: i64,
        qty: i64,
        notional: i64,
        maker_fee: i64,
        taker_fee: i64,
        maker_remaining: i64,
        taker_remaining: i64,
    },
    Cancelled {
        seq: u64,
        ts: i64,
        order: u64,
        remaining: i64,
        reason: EndReason,
    },
    Rested {
        seq: u64,
        ts: i64,
        order: u64,
        price: i64,
        remaining: i64,
    },
    Funds {
        seq: u64,
        ts: i64,
        account: u32,
        asset: u16,
        amount: i64,
        withdrawal: bool,
        request_id: String,
        /// `card`, `upi`, `bank` or `unspecified` ([`FundsMethod::name`]); absent (so
        /// unspecified) in logs written before methods were recorded.
        #[serde(default)]
        method: String,
        /// A card's last four digits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card_last4: Option<String>,
    },
}

impl Entry {
    /// The entry for `event`, if history keeps it. Repeated funds requests (which changed
    /// nothing) are not kept.
    pub fn of(event: &Event) -> Option<Entry> {
        let (seq, ts) = (event.seq, event.timestamp_ms);
        Some(match event.kind {
            EventKind::OrderAccepted {
                order,
                account,
                product,
                side,
                order_type,
                time_in_force,
                price,
                qty,
                client_order_id,
            } => Entry::Accepted {
                seq,
                ts,
                order: order.get(),
                account: account.get(),
                product: product.get(),
                side: side.into(),
                market: order_type == OrderType::Market,
                tif: time_in_force.into(),
                price: price.map(|p| p.ticks()),
                qty: qty.lots(),
                client_order_id: client_order_id.map(|c| c.as_str().to_string()),
            },
            EventKind::Fill {
                product,
                maker_order,
                taker_order,
                maker_account,
                taker_account,
                taker_side,
                price,
                qty,
                notional,
                maker_fee,
                taker_fee,
                maker_remaining,
                taker_remaining,
            } => Entry::Fill {
                seq,
                ts,
                product: product.get(),
                maker_order: maker_order.get(),
                taker_order: taker_order.get(),
                maker_account: maker_account.get(),
                taker_account: taker_account.get(),
                taker_side: taker_side.into(),
                price: price.ticks(),
                qty: qty.lots(),
                notional: notional.minor(),
                maker_fee: maker_fee.minor(),
                taker_fee: taker_fee.minor(),
                maker_remaining: maker_remaining.lots(),
                taker_remaining: taker_remaining.lots(),
            },
            EventKind::OrderCancelled {
                order,
                remaining,
                reason,
                ..
            } => Entry::Cancelled {
                seq,
                ts,
                order: order.get(),
                remaining: remaining.lots(),
                reason: reason.into(),
            },
            EventKind::OrderRested {
                order,
                price,
                remaining,
                ..
            } => Entry::Rested {
                seq,
                ts,
                order: order.get(),
                price: price.ticks(),
                remaining: remaining.lots(),
            },
            EventKind::Deposited {
                account,
                asset,
                amount,
                request_id,
                method,
                duplicate: false,
                ..
            }
            | EventKind::Withdrawn {
                account,
                asset,
                amount,
                request_id,
                method,
                duplicate: false,
                ..
            } => Entry::Funds {
                seq,
                ts,
                account: account.get(),
                asset: asset.get(),
                amount: amount.minor(),
                withdrawal: matches!(event.kind, EventKind::Withdrawn { .. }),
                request_id: request_id.as_str().to_string(),
                method: method.name().to_string(),
                card_last4: match method {
                    FundsMethod::Card(last4) => Some(last4.as_str().to_string()),
                    _ => None,
                },
            },
            _ => return None,
        })
    }

    fn seq(&self) -> u64 {
        match self {
            Entry::Accepted { seq, .. }
            | Entry::Fill { seq, .. }
            | Entry::Cancelled { seq, .. }
            | Entry::Rested { seq, .. }
            | Entry::Funds { seq, .. } => *seq,
        }
    }
}

/// The two sides of a fill entry, maker first: each side's account, its trade, and the open
/// quantity its order has left. `None` for any other entry.
pub fn fill_sides(entry: &Entry) -> Option<[(u32, TradeRecord, i64); 2]> {
    let Entry::Fill {
        seq,
        ts,
        product,
        maker_order,
        taker_order,
        maker_account,
        taker_account,
        taker_side,
        price,
        qty,
        notional,
        maker_fee,
        taker_fee,
        maker_remaining,
        taker_remaining,
    } = entry
    else {
        return None;
    };
    let trade = |order: u64, side: SideName, liquidity: Liquidity, fee: i64| TradeRecord {
        id: *seq,
        order,
        product: *product,
        side,
        liquidity,
        price: *price,
        qty: *qty,
        notional: *notional,
        fee,
        ts: *ts,
    };
    let maker_side = match taker_side {
        SideName::Buy => SideName::Sell,
        SideName::Sell => SideName::Buy,
    };
    Some([
        (
            *maker_account,
            trade(*maker_order, maker_side, Liquidity::Maker, *maker_fee),
            *maker_remaining,
        ),
        (
            *taker_account,
            trade(*taker_order, *taker_side, Liquidity::Taker, *taker_fee),
            *taker_remaining,
        ),
    ])
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OrderStatus {
    /// Accepted, not yet resting or done (only seen inside one command's events).
    New,
    /// Resting on the book with `remaining` open.
    Open,
    Filled,
    Cancelled,
    /// An IOC or market order's unmatched rest was dropped.
    Expired,
}

impl OrderStatus {
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::Open)
    }
}

/// One order as history knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    pub id: u64,
    pub account: u32,
    pub product: u32,
    pub side: SideName,
    pub market: bool,
    pub tif: Tif,
    /// Limit price in ticks (the newest, after amendments); `None` for market orders.
    pub price: Option<i64>,
    /// Ordered quantity in lots (filled + open, after amendments).
    pub qty: i64,
    pub filled: i64,
    /// Open quantity in lots (0 once closed).
    pub remaining: i64,
    /// Quote minor units exchanged so far, before fees.
    pub notional: i64,
    /// Fees paid so far, quote minor units.
    pub fees: i64,
    pub status: OrderStatus,
    pub end_reason: Option<EndReason>,
    pub client_order_id: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The trade ids (event sequence numbers of the fills) of this order.
    pub trades: Vec<u64>,
}

/// Maker or taker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    Maker,
    Taker,
}

/// One side of one trade, as the account that took part sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeRecord {
    /// The fill's event sequence number: unique, and the same for both sides.
    pub id: u64,
    pub order: u64,
    pub product: u32,
    pub side: SideName,
    pub liquidity: Liquidity,
    pub price: i64,
    pub qty: i64,
    pub notional: i64,
    pub fee: i64,
    pub ts: i64,
}

/// The method a log entry names (the inverse of [`FundsMethod::name`]); anything else,
/// such as an entry written before methods were recorded, is unspecified.
fn funds_method(name: &str, card_last4: Option<&str>) -> FundsMethod {
    match (name, card_last4.and_then(|d| CardLast4::new(d.as_bytes()))) {
        ("card", Some(last4)) => FundsMethod::Card(last4),
        ("upi", _) => FundsMethod::Upi,
        ("bank", _) => FundsMethod::Bank,
        _ => FundsMethod::Unspecified,
    }
}

/// What moved an account's funds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FundsKind {
    Deposit,
    Withdrawal,
    /// A trading fee, in the product's quote currency.
    Fee,
}

/// One funds movement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FundsRecord {
    /// The event sequence number.
    pub id: u64,
    pub kind: FundsKind,
    /// The asset for deposits and withdrawals.
    pub asset: Option<u16>,
    /// The product whose quote currency a fee was paid in.
    pub product: Option<u32>,
    /// Minor units, positive.
    pub amount: i64,
    pub request_id: Option<String>,
    /// How a deposit was paid or a withdrawal paid out; `None` for fees.
    pub method: Option<FundsMethod>,
    /// The order that paid a fee.
    pub order: Option<u64>,
    pub ts: i64,
}

#[derive(Debug, Default)]
struct AccountHistory {
    /// Order ids, oldest first.
    orders: Vec<u64>,
    trades: Vec<TradeRecord>,
    funds: Vec<FundsRecord>,
}

/// The read model.
#[derive(Debug, Default)]
pub struct History {
    /// The newest event folded (0: none).
    event_seq: u64,
    /// Every command up to this one has been folded (a lower bound: batches without events
    /// are not announced).
    through_seq: u64,
    orders: HashMap<u64, OrderRecord>,
    accounts: HashMap<u32, AccountHistory>,
    /// Set when the model missed events (see the module's "Lag").
    broken: Option<String>,
}

/// A page of a newest-first list: items with ids below `cursor`, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next (older) page, if there may be one.
    pub next: Option<u64>,
}

fn page<T: Clone>(
    newest_first: impl Iterator<Item = T>,
    id: impl Fn(&T) -> u64,
    cursor: Option<u64>,
    limit: usize,
) -> Page<T> {
    let mut items: Vec<T> = newest_first
        .skip_while(|item| cursor.is_some_and(|c| id(item) >= c))
        .take(limit.saturating_add(1))
        .collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(&id)
    } else {
        None
    };
    Page { items, next }
}

impl History {
    pub fn event_seq(&self) -> u64 {
        self.event_seq
    }

    pub fn through_seq(&self) -> u64 {
        self.through_seq
    }

    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Folds the entries of the commands up to `through`, whose newest event (kept or not)
    /// is `event_seq`. Entries already folded (by event sequence number) are skipped.
    pub fn fold(&mut self, through: u64, event_seq: u64, entries: &[Entry]) {
        for entry in entries {
            if entry.seq() <= self.event_seq {
                continue;
            }
            self.event_seq = entry.seq();
            self.fold_one(entry);
        }
        self.event_seq = self.event_seq.max(event_seq);
        self.through_seq = self.through_seq.max(through);
    }

    fn fold_one(&mut self, entry: &Entry) {
        match entry {
            Entry::Accepted {
                ts,
                order,
                account,
                product,
                side,
                market,
                tif,
                price,
                qty,
                client_order_id,
                ..
            } => {
                self.orders.insert(
                    *order,
                    OrderRecord {
                        id: *order,
                        account: *account,
                        product: *product,
                        side: *side,
                        market: *market,
                        tif: *tif,
                        price: *price,
                        qty: *qty,
                        filled: 0,
                        remaining: *qty,
                        notional: 0,
                        fees: 0,
                        status: OrderStatus::New,
                        end_reason: None,
                        client_order_id: client_order_id.clone(),
                        created_ms: *ts,
                        updated_ms: *ts,
                        trades: Vec::new(),
                    },
                );
                self.accounts
                    .entry(*account)
                    .or_default()
                    .orders
                    .push(*order);
            }
            Entry::Fill {
                seq, ts, product, ..
            } => {
                for (account, trade, remaining) in fill_sides(entry).into_iter().flatten() {
                    let (order, fee) = (trade.order, trade.fee);
                    if let Some(record) = self.orders.get_mut(&order) {
                        record.filled += trade.qty;
                        record.remaining = remaining;
                        record.notional += trade.notional;
                        record.fees += fee;
                        record.updated_ms = *ts;
                        record.trades.push(*seq);
                        if remaining == 0 {
                            record.status = OrderStatus::Filled;
                        }
                    }
                    let account = self.accounts.entry(account).or_default();
                    account.trades.push(trade);
                    if fee > 0 {
                        account.funds.push(FundsRecord {
                            id: *seq,
                            kind: FundsKind::Fee,
                            asset: None,
                            product: Some(*product),
                            amount: fee,
                            request_id: None,
                            method: None,
                            order: Some(order),
                            ts: *ts,
                        });
                    }
                }
            }
            Entry::Cancelled {
                ts, order, reason, ..
            } => {
                if let Some(record) = self.orders.get_mut(order) {
                    record.remaining = 0;
                    record.status = if *reason == EndReason::Expired {
                        OrderStatus::Expired
                    } else {
                        OrderStatus::Cancelled
                    };
                    record.end_reason = Some(*reason);
                    record.updated_ms = *ts;
                }
            }
            Entry::Rested {
                ts,
                order,
                price,
                remaining,
                ..
            } => {
                if let Some(record) = self.orders.get_mut(order) {
                    record.price = Some(*price);
                    record.remaining = *remaining;
                    record.qty = record.filled + remaining;
                    record.status = OrderStatus::Open;
                    record.updated_ms = *ts;
                }
            }
            Entry::Funds {
                seq,
                ts,
                account,
                asset,
                amount,
                withdrawal,
                request_id,
                method,
                card_last4,
            } => {
                self.accounts
                    .entry(*account)
                    .or_default()
                    .funds
                    .push(FundsRecord {
                        id: *seq,
                        kind: if *withdrawal {
                            FundsKind::Withdrawal
                        } else {
                            FundsKind::Deposit
                        },
                        asset: Some(*asset),
                        product: None,
                        amount: *amount,
                        request_id: Some(request_id.clone()),
                        method: Some(funds_method(method, card_last4.as_deref())),
                        order: None,
                        ts: *ts,
                    });
            }
        }
    }

    /// The product an entry is about.
    pub fn product_of(&self, entry: &Entry) -> Option<u32> {
        match entry {
            Entry::Accepted { product, .. } | Entry::Fill { product, .. } => Some(*product),
            Entry::Rested { order, .. } | Entry::Cancelled { order, .. } => {
                self.orders.get(order).map(|o| o.product)
            }
            Entry::Funds { .. } => None,
        }
    }

    /// One order, whoever's it is (for publishing).
    pub fn order_any(&self, order: u64) -> Option<OrderRecord> {
        self.orders.get(&order).cloned()
    }

    /// One order, if it exists and belongs to `account`.
    pub fn order(&self, account: u32, order: u64) -> Option<OrderRecord> {
        self.orders
            .get(&order)
            .filter(|record| record.account == account)
            .cloned()
    }

    /// The account's open (`open = true`) or closed orders, newest first.
    pub fn orders(
        &self,
        account: u32,
        open: bool,
        cursor: Option<u64>,
        limit: usize,
    ) -> Page<OrderRecord> {
        let ids = self
            .accounts
            .get(&account)
            .map_or(&[][..], |a| &a.orders[..]);
        let records = ids
            .iter()
            .rev()
            .filter_map(|id| self.orders.get(id))
            .filter(|record| record.status.is_open() == open)
            .cloned();
        page(records, |r| r.id, cursor, limit)
    }

    /// The account's trades, newest first.
    pub fn trades(&self, account: u32, cursor: Option<u64>, limit: usize) -> Page<TradeRecord> {
        let trades = self
            .accounts
            .get(&account)
            .map_or(&[][..], |a| &a.trades[..]);
        page(trades.iter().rev().cloned(), |t| t.id, cursor, limit)
    }

    /// The account's trades of one order, oldest first (walking back from the newest trade
    /// only as far as the order's first).
    pub fn order_trades(&self, account: u32, order: &OrderRecord) -> Vec<TradeRecord> {
        let (Some(&oldest), Some(history)) = (order.trades.first(), self.accounts.get(&account))
        else {
            return Vec::new();
        };
        let mut fills: Vec<TradeRecord> = history
            .trades
            .iter()
            .rev()
            .take_while(|t| t.id >= oldest)
            .filter(|t| t.order == order.id)
            .cloned()
            .collect();
        fills.reverse();
        fills
    }

    /// The account's funds movements, newest first.
    pub fn funds(&self, account: u32, cursor: Option<u64>, limit: usize) -> Page<FundsRecord> {
        let funds = self
            .accounts
            .get(&account)
            .map_or(&[][..], |a| &a.funds[..]);
        page(funds.iter().rev().cloned(), |f| f.id, cursor, limit)
    }

    /// Every fill with an event sequence number of at least `from`, oldest first.
    pub fn fills_from(&self, from: u64) -> Vec<FillTick> {
        let mut fills: BTreeMap<u64, FillTick> = BTreeMap::new();
        for account in self.accounts.values() {
            let start = account.trades.partition_point(|t| t.id < from);
            for t in &account.trades[start..] {
                fills.entry(t.id).or_insert(FillTick {
                    seq: t.id,
                    ts: t.ts,
                    product: t.product,
                    price: t.price,
                    qty: t.qty,
                });
            }
        }
        fills.into_values().collect()
    }
}

/// What the market data takes of a fill (engine integers: price ticks, quantity lots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillTick {
    /// The fill's event sequence number.
    pub seq: u64,
    pub ts: i64,
    pub product: u32,
    pub price: i64,
    pub qty: i64,
}

impl FillTick {
    /// The fill an entry records, if it is one.
    pub fn of(entry: &Entry) -> Option<FillTick> {
        match *entry {
            Entry::Fill {
                seq,
                ts,
                product,
                price,
                qty,
                ..
            } => Some(FillTick {
                seq,
                ts,
                product,
                price,
                qty,
            }),
            _ => None,
        }
    }
}

/// One log record: the entries of a run of commands up to `through`, whose newest event
/// (kept or not) is `event_seq`. Written with the entries borrowed, read owned.
#[derive(Debug, Serialize, Deserialize)]
struct LogRecord<'a> {
    through: u64,
    event_seq: u64,
    entries: Cow<'a, [Entry]>,
}

/// The history's own log.
pub struct HistoryLog {
    journal: Journal<FsStorage>,
    buf: Vec<u8>,
}

impl HistoryLog {
    /// Opens (or creates) the log in `dir` and folds it into a new [`History`].
    pub fn open(dir: &Path) -> Result<(HistoryLog, History), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let storage = FsStorage::new(dir)
            .map_err(|e| format!("cannot open the history log {}: {e}", dir.display()))?;
        let config = JournalConfig {
            segment_size_bytes: 16 << 20,
            durability: Durability::None,
            first_seq: 1,
            recovery: RecoveryMode::Repair,
            prepare_next: PrepareNext::Background,
        };
        let journal = Journal::open(storage, config)
            .map_err(|e| format!("cannot open the history log {}: {e}", dir.display()))?;
        let mut history = History::default();
        let mut reader = journal
            .read_from(journal.first_seq())
            .map_err(|e| format!("cannot read the history log: {e}"))?;
        while let Some(record) = reader.next_ref() {
            let record = record.map_err(|e| format!("cannot read the history log: {e}"))?;
            let decoded: LogRecord = serde_json::from_slice(record.payload)
                .map_err(|e| format!("history log record {} does not decode: {e}", record.seq))?;
            history.fold(decoded.through, decoded.event_seq, &decoded.entries);
        }
        drop(reader);
        Ok((
            HistoryLog {
                journal,
                buf: Vec::with_capacity(4096),
            },
            history,
        ))
    }

    /// Appends the entries of the commands up to `through` (see [`History::fold`]).
    pub fn append(
        &mut self,
        through: u64,
        event_seq: u64,
        entries: &[Entry],
    ) -> Result<(), String> {
        self.buf.clear();
        serde_json::to_writer(
            &mut self.buf,
            &LogRecord {
                through,
                event_seq,
                entries: Cow::Borrowed(entries),
            },
        )
        .map_err(|e| format!("cannot encode a history record: {e}"))?;
        let seq = self.journal.next_seq();
        self.journal
            .append(seq, &self.buf)
            .and_then(|_| self.journal.commit().map(|_| ()))
            .map_err(|e| format!("cannot append to the history log: {e}"))
    }
}

/// Replays the command journal into a scratch engine from the newest snapshot at or before
/// what `history` covers, and folds (and logs) every event it lacks. Returns the number of
/// commands replayed.
///
/// `recovered_event_seq` is the recovered engine's newest event: the scratch engine must end
/// there too, or the history would disagree with the engine (an error).
pub fn catch_up<S: Storage>(
    history: &mut History,
    log: &mut HistoryLog,
    journal: &Journal<S>,
    snapshots_dir: &Path,
    limits: Limits,
    recovered_event_seq: u64,
) -> Result<u64, String> {
    if history.event_seq() >= recovered_event_seq {
        return Ok(0);
    }
    let covered = history.through_seq();
    let loaded = bourse_snapshots::load_newest_at_most(snapshots_dir, covered)
        .map_err(|e| format!("cannot read the snapshots: {e}"))?;
    let (from_seq, mut engine) = match loaded.newest {
        Some((seq, engine)) => (seq + 1, engine),
        None => (1, Engine::new(limits)),
    };
    if engine.event_seq() > history.event_seq() {
        return Err(format!(
            "the history (to event {}) cannot be rebuilt: no snapshot before it is kept",
            history.event_seq()
        ));
    }
    if journal.first_seq() > from_seq {
        return Err(format!(
            "the history cannot be rebuilt: the journal starts at seq {} but the replay must \
             start at {from_seq} (journal segments were removed by the retention setting)",
            journal.first_seq()
        ));
    }
    let mut reader = journal
        .read_from(from_seq)
        .map_err(|e| format!("cannot read the journal: {e}"))?;
    let mut events: Vec<Event> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut replayed = 0u64;
    let mut last_seq = 0;
    let mut in_chunk = 0;
    while let Some(record) = reader.next_ref() {
        let record = record.map_err(|e| format!("cannot read the journal: {e}"))?;
        let command = bourse_engine::codec::decode(record.payload)
            .map_err(|e| format!("journal record {} does not decode: {e}", record.seq))?;
        events.clear();
        // A rejection changed nothing, the first time too.
        let _ = engine.apply(&command, &mut events);
        replayed += 1;
        last_seq = command.seq;
        entries.extend(
            events
                .iter()
                .filter(|e| e.seq > history.event_seq())
                .filter_map(Entry::of),
        );
        in_chunk += 1;
        if in_chunk == CATCH_UP_CHUNK {
            log.append(last_seq, engine.event_seq(), &entries)?;
            history.fold(last_seq, engine.event_seq(), &entries);
            entries.clear();
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        log.append(last_seq, engine.event_seq(), &entries)?;
        history.fold(last_seq, engine.event_seq(), &entries);
    }
    if engine.event_seq() != recovered_event_seq {
        return Err(format!(
            "replaying the journal for the history ended at event {} but the engine is at {}",
            engine.event_seq(),
            recovered_event_seq
        ));
    }
    Ok(replayed)
}

/// The shared, running history: the model, its progress, and the thread that feeds it.
#[derive(Clone)]
pub struct HistoryHandle {
    model: Arc<RwLock<History>>,
    progress: watch::Receiver<u64>,
}

/// How long a read waits for the history to catch up with the engine before answering 503.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

impl HistoryHandle {
    /// Starts the history thread on the bus receiver `rx` (subscribed before any new command
    /// was applied).
    /// After each batch it also publishes to the WebSocket channels of `hub` (see
    /// [`crate::fanout`]); `handle` serves the engine reads that takes.
    pub fn spawn(
        history: History,
        mut log: HistoryLog,
        mut rx: broadcast::Receiver<Arc<EventBatch>>,
        hub: Arc<Hub>,
        handle: Handle,
        market: Option<std::sync::mpsc::SyncSender<crate::market::Input>>,
    ) -> Result<(HistoryHandle, std::thread::JoinHandle<()>), String> {
        let (progress_tx, progress) = watch::channel(history.event_seq());
        let model = Arc::new(RwLock::new(history));
        let writer = Arc::clone(&model);
        let thread = std::thread::Builder::new()
            .name("bourse-history".into())
            .spawn(move || {
                let mut entries = Vec::new();
                let mut units = UnitsCache::default();
                loop {
                    let batch = match rx.blocking_recv() {
                        Ok(batch) => batch,
                        Err(broadcast::error::RecvError::Closed) => return,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let why = format!(
                                "the history fell {missed} event batches behind and stopped; \
                                 a restart rebuilds it"
                            );
                            eprintln!("bourse: {why}");
                            write_model(&writer).broken = Some(why);
                            return;
                        }
                    };
                    entries.clear();
                    entries.extend(batch.events.iter().filter_map(Entry::of));
                    let newest = batch.events.last().map_or(0, |e| e.seq);
                    if let Err(why) = log.append(batch.last_seq, newest, &entries) {
                        eprintln!("bourse: {why}; the history stopped");
                        write_model(&writer).broken = Some(why);
                        return;
                    }
                    let mut model = write_model(&writer);
                    model.fold(batch.last_seq, newest, &entries);
                    // Units of every product the entries touch (engine reads only for
                    // products not seen before).
                    let products: Vec<u32> =
                        entries.iter().filter_map(|e| model.product_of(e)).collect();
                    units.load(&handle, &products);
                    let dirty = fanout::publish_entries(&hub, &model, &entries, &units);
                    let seen = model.event_seq;
                    drop(model);
                    if let Some(market) = &market {
                        let fills = entries.iter().filter_map(FillTick::of);
                        let items = fanout::bourse_ticks(fills, &units);
                        if !items.is_empty() {
                            let next_event_seq = newest + 1;
                            let _ = market.send(crate::market::Input::Bourse {
                                next_event_seq,
                                items,
                            });
                        }
                    }
                    progress_tx.send_replace(seen);
                    fanout::publish_states(&hub, &handle, dirty, &units);
                }
            })
            .map_err(|e| format!("cannot start the history thread: {e}"))?;
        Ok((HistoryHandle { model, progress }, thread))
    }

    /// Waits (up to a few seconds) until every event up to `event_seq` is folded, then reads.
    pub async fn read<T>(
        &self,
        event_seq: u64,
        read: impl FnOnce(&History) -> T,
    ) -> Result<T, String> {
        let mut progress = self.progress.clone();
        let waited = tokio::time::timeout(CATCH_UP_WAIT, progress.wait_for(|s| *s >= event_seq));
        let caught_up = matches!(waited.await, Ok(Ok(_)));
        let model = self.model.read().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = model.broken() {
            return Err(why.to_string());
        }
        if !caught_up {
            return Err(format!(
                "the history is behind the engine (at event {}, engine at {event_seq})",
                model.event_seq()
            ));
        }
        Ok(read(&model))
    }

    /// The newest event folded.
    pub fn event_seq(&self) -> u64 {
        *self.progress.borrow()
    }

    /// Runs `f` with the model read-locked: nothing is folded (or published) meanwhile.
    pub fn with_model<T>(&self, f: impl FnOnce(&History) -> T) -> T {
        f(&self.model.read().unwrap_or_else(|p| p.into_inner()))
    }
}

fn write_model(model: &RwLock<History>) -> std::sync::RwLockWriteGuard<'_, History> {
    model.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(seq: u64, order: u64, account: u32, qty: i64) -> Entry {
        Entry::Accepted {
            seq,
            ts: 1000 + seq as i64,
            order,
            account,
            product: 1,
            side: SideName::Sell,
            market: false,
            tif: Tif::Gtc,
            price: Some(100),
            qty,
            client_order_id: None,
        }
    }

    fn fill(
        seq: u64,
        maker: (u64, u32),
        taker: (u64, u32),
        qty: i64,
        remaining: (i64, i64),
    ) -> Entry {
        Entry::Fill {
            seq,
            ts: 1000 + seq as i64,
            product: 1,
            maker_order: maker.0,
            taker_order: taker.0,
            maker_account: maker.1,
            taker_account: taker.1,
            taker_side: SideName::Buy,
            price: 100,
            qty,
            notional: 100 * qty,
            maker_fee: qty,
            taker_fee: 2 * qty,
            maker_remaining: remaining.0,
            taker_remaining: remaining.1,
        }
    }

    #[test]
    fn fills_move_orders_to_filled_and_record_both_sides() {
        let mut h = History::default();
        let entries = vec![
            accepted(1, 10, 7, 5),
            Entry::Rested {
                seq: 2,
                ts: 1002,
                order: 10,
                price: 100,
                remaining: 5,
            },
            accepted(3, 11, 8, 3),
            fill(4, (10, 7), (11, 8), 3, (2, 0)),
        ];
        h.fold(3, 4, &entries);
        let maker = h.order(7, 10).unwrap();
        assert_eq!(
            (maker.filled, maker.remaining, maker.status),
            (3, 2, OrderStatus::Open)
        );
        assert_eq!((maker.notional, maker.fees), (300, 3));
        let taker = h.order(8, 11).unwrap();
        assert_eq!(taker.status, OrderStatus::Filled);
        assert_eq!(taker.trades, vec![4]);
        assert!(
            h.order(7, 11).is_none(),
            "another account's order is not visible"
        );
        assert_eq!(h.trades(7, None, 10).items[0].liquidity, Liquidity::Maker);
        assert_eq!(h.trades(8, None, 10).items[0].fee, 6);
        assert_eq!(h.funds(8, None, 10).items[0].kind, FundsKind::Fee);
        assert_eq!(h.orders(7, true, None, 10).items.len(), 1);
        assert_eq!(h.orders(8, false, None, 10).items.len(), 1);
        // Folding the same entries again changes nothing.
        h.fold(3, 4, &entries);
        assert_eq!(h.trades(7, None, 10).items.len(), 1);
        assert_eq!(h.event_seq(), 4);
    }

    #[test]
    fn cancels_and_expiries_close_orders() {
        let mut h = History::default();
        h.fold(
            2,
            4,
            &[
                accepted(1, 1, 7, 5),
                Entry::Cancelled {
                    seq: 2,
                    ts: 5,
                    order: 1,
                    remaining: 5,
                    reason: EndReason::Expired,
                },
                accepted(3, 2, 7, 5),
                Entry::Cancelled {
                    seq: 4,
                    ts: 6,
                    order: 2,
                    remaining: 5,
                    reason: EndReason::Requested,
                },
            ],
        );
        let closed = h.orders(7, false, None, 10).items;
        assert_eq!(
            closed.iter().map(|o| (o.id, o.status)).collect::<Vec<_>>(),
            vec![(2, OrderStatus::Cancelled), (1, OrderStatus::Expired)]
        );
        assert!(h.orders(7, true, None, 10).items.is_empty());
    }

    #[test]
    fn funds_entries_keep_their_method_and_old_entries_read_as_unspecified() {
        let card = Entry::Funds {
            seq: 1,
            ts: 1,
            account: 3,
            asset: 1,
            amount: 100,
            withdrawal: false,
            request_id: "r1".into(),
            method: "card".into(),
            card_last4: Some("1111".into()),
        };
        let text = serde_json::to_string(&card).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), card);
        // As the log had it before methods were recorded.
        let old: Entry = serde_json::from_str(
            r#"{"k":"funds","seq":2,"ts":2,"account":3,"asset":1,"amount":5,"withdrawal":true,"requestId":"r2"}"#,
        )
        .unwrap();
        let mut h = History::default();
        h.fold(2, 2, &[card, old]);
        let methods: Vec<_> = h
            .funds(3, None, 10)
            .items
            .iter()
            .map(|f| f.method)
            .collect();
        assert_eq!(
            methods,
            vec![
                Some(FundsMethod::Unspecified),
                Some(FundsMethod::Card(CardLast4::new(b"1111").unwrap()))
            ]
        );
    }

    #[test]
    fn pages_are_newest_first_with_a_cursor() {
        let mut h = History::default();
        let entries: Vec<Entry> = (1..=5)
            .map(|i| Entry::Funds {
                seq: i,
                ts: i as i64,
                account: 3,
                asset: 1,
                amount: 100 * i as i64,
                withdrawal: false,
                request_id: format!("r{i}"),
                method: "bank".into(),
                card_last4: None,
            })
            .collect();
        h.fold(5, 5, &entries);
        let first = h.funds(3, None, 2);
        assert_eq!(
            first.items.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![5, 4]
        );
        assert_eq!(first.next, Some(4));
        let second = h.funds(3, first.next, 2);
        assert_eq!(
            second.items.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![3, 2]
        );
        let last = h.funds(3, second.next, 2);
        assert_eq!(last.items.iter().map(|f| f.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(last.next, None);
    }

    #[test]
    fn the_log_folds_back_to_the_same_history() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            accepted(1, 10, 7, 5),
            accepted(2, 11, 8, 3),
            fill(3, (10, 7), (11, 8), 3, (2, 0)),
        ];
        {
            let (mut log, mut h) = HistoryLog::open(dir.path()).unwrap();
            log.append(2, 2, &entries[..2]).unwrap();
            log.append(3, 4, &entries[2..]).unwrap();
            h.fold(3, 4, &entries);
        }
        let (_, h) = HistoryLog::open(dir.path()).unwrap();
        // Event 4 was not kept, but seen.
        assert_eq!((h.event_seq(), h.through_seq()), (4, 3));
        assert_eq!(h.order(7, 10).unwrap().filled, 3);
        assert_eq!(h.trades(8, None, 10).items.len(), 1);
    }
}
