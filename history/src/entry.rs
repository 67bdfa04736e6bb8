//! What the history takes of the engine's events: [`Entry`], one per event it keeps, and
//! the API's names for sides, time in force and end reasons.

use serde::{Deserialize, Serialize};

use crate::{Liquidity, TradeRecord};
use bourse_engine::{CancelReason, Event, EventKind, FundsMethod, OrderType, Side, TimeInForce};

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
    #[allow(
        clippy::too_many_lines,
        reason = "a dispatch: one arm per event kind, each mapping its fields to the entry"
    )]
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
            // A repeated placement changed nothing: the first placement's entries are its
            // history.
            EventKind::OrderDuplicate { .. } => return None,
            _ => return None,
        })
    }

    /// The sequence number of the event this entry comes from.
    pub fn seq(&self) -> u64 {
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
