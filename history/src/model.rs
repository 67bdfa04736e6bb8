//! The in-memory model: every account's orders, trades and funds movements, folded from
//! [`Entry`]s, with the paged reads the API serves.

use std::collections::{BTreeMap, HashMap};

use bourse_engine::{CardLast4, FundsMethod};
use serde::{Deserialize, Serialize};

use crate::{EndReason, Entry, FillTick, SideName, Tif, fill_sides};

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

#[derive(Debug, Default, PartialEq, Eq)]
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
    pub(crate) event_seq: u64,
    /// Every command up to this one has been folded (a lower bound: batches without events
    /// are not announced).
    through_seq: u64,
    orders: HashMap<u64, OrderRecord>,
    accounts: HashMap<u32, AccountHistory>,
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

    /// The first difference between the records of this model and `other`'s (every order,
    /// trade and funds movement of every account, and the newest event folded); `None` if
    /// they hold the same. What they say they cover (`through_seq`) may differ: it is a lower
    /// bound.
    pub fn records_difference(&self, other: &History) -> Option<String> {
        if self.event_seq != other.event_seq {
            return Some(format!(
                "folded to event {} and {}",
                self.event_seq, other.event_seq
            ));
        }
        let ids: std::collections::BTreeSet<u64> = self
            .orders
            .keys()
            .chain(other.orders.keys())
            .copied()
            .collect();
        for id in ids {
            let (mine, theirs) = (self.orders.get(&id), other.orders.get(&id));
            if mine != theirs {
                return Some(format!("order {id}: {mine:?} and {theirs:?}"));
            }
        }
        let accounts: std::collections::BTreeSet<u32> = self
            .accounts
            .keys()
            .chain(other.accounts.keys())
            .copied()
            .collect();
        let empty = AccountHistory::default();
        for account in accounts {
            let mine = self.accounts.get(&account).unwrap_or(&empty);
            let theirs = other.accounts.get(&account).unwrap_or(&empty);
            if mine != theirs {
                return Some(format!("account {account}: {mine:?} and {theirs:?}"));
            }
        }
        None
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

    #[allow(
        clippy::too_many_lines,
        reason = "a dispatch: one arm per entry kind, each folding it into the read model"
    )]
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
