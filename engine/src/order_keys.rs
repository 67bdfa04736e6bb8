//! The order-key window: orders are idempotent by their client order id.
//!
//! Every order accepted with a client order id is remembered under `(account, client order id)`
//! with its order id, the sequence number of the command that placed it, the engine time it was
//! placed at and its body (product, side, type, price, quantity, time in force, self-trade
//! prevention). Placing an order with a key still in the window answers with the first outcome
//! ([`crate::EventKind::OrderDuplicate`]) if the body is the same, and refuses it
//! ([`crate::Reject::DuplicateClientOrderId`]) if not: a client whose request went unanswered
//! (a node crashed) may retry through another node, and the retry is applied once.
//!
//! The window is [`ORDER_KEY_WINDOW_MS`] of engine time and at most
//! [`crate::Limits::order_keys_max`] keys ([`crate::ORDER_KEYS_MAX`] by default), the oldest
//! forgotten first. Keys are held in insertion order, which is time order because engine time
//! never goes back, so forgetting is popping from the front. A key older than the window counts as
//! forgotten for lookups at once; it leaves memory when the next order is accepted (a rejected
//! command changes nothing, this memory included). The state hash and the image walk the keys
//! in insertion order.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::command::NewOrder;
use crate::limits::ORDER_KEY_WINDOW_MS;
use crate::types::{
    AccountId, ClientOrderId, OrderId, OrderType, Price, ProductId, Qty, SelfTradePrevention, Side,
    TimeInForce,
};

/// `(account, client order id)`: what an order is idempotent by.
pub type OrderKeyId = (AccountId, ClientOrderId);

/// What the engine remembers of one keyed order placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderKey {
    pub order: OrderId,
    /// The command that placed the order.
    pub command_seq: u64,
    /// Engine time of the placement.
    pub at_ms: i64,
    pub product: ProductId,
    pub side: Side,
    pub order_type: OrderType,
    pub price: Option<Price>,
    pub qty: Qty,
    pub time_in_force: TimeInForce,
    pub self_trade: SelfTradePrevention,
}

impl OrderKey {
    /// The key of order `order`, placed by `o` at `at_ms` in command `command_seq`.
    pub(crate) fn new(o: &NewOrder, order: OrderId, command_seq: u64, at_ms: i64) -> OrderKey {
        OrderKey {
            order,
            command_seq,
            at_ms,
            product: o.product,
            side: o.side,
            order_type: o.order_type,
            price: o.price,
            qty: o.qty,
            time_in_force: o.time_in_force,
            self_trade: o.self_trade,
        }
    }

    /// Whether `o` asks for exactly what the remembered placement asked for.
    pub(crate) fn same_body(&self, o: &NewOrder) -> bool {
        self.product == o.product
            && self.side == o.side
            && self.order_type == o.order_type
            && self.price == o.price
            && self.qty == o.qty
            && self.time_in_force == o.time_in_force
            && self.self_trade == o.self_trade
    }
}

/// The window: the keys by id, and their ids with their times in insertion (time) order.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrderKeys {
    by_id: FxHashMap<OrderKeyId, OrderKey>,
    /// Exactly the ids of `by_id` with their `at_ms`, oldest first (so forgetting reads no
    /// map entry to decide).
    queue: VecDeque<(OrderKeyId, i64)>,
}

impl OrderKeys {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The key `id` if it is in the window at `now_ms`.
    #[inline]
    pub(crate) fn live(&self, id: &OrderKeyId, now_ms: i64) -> Option<&OrderKey> {
        self.by_id.get(id).filter(|key| !expired(key.at_ms, now_ms))
    }

    /// Forgets, oldest first, every key out of the window at `now_ms` and as many more as it
    /// takes to leave room for one under `len_max`.
    #[inline]
    pub(crate) fn forget(&mut self, now_ms: i64, len_max: u32) {
        while let Some((id, at_ms)) = self.queue.front() {
            if !expired(*at_ms, now_ms) && self.queue.len() < len_max as usize {
                break;
            }
            self.by_id.remove(id);
            self.queue.pop_front();
        }
    }

    /// Remembers a new key, after [`OrderKeys::forget`] made room. With `len_max` 0 nothing is
    /// remembered.
    pub(crate) fn insert(&mut self, id: OrderKeyId, key: OrderKey, len_max: u32) {
        if self.queue.len() >= len_max as usize {
            return;
        }
        debug_assert!(self.queue.back().is_none_or(|(_, at)| *at <= key.at_ms));
        let previous = self.by_id.insert(id, key);
        assert!(previous.is_none(), "a key in the window placed again");
        self.queue.push_back((id, key.at_ms));
    }

    /// Appends a key read from an image; `false` (and nothing changed) if the id is held
    /// already or the key is older than the newest held.
    pub(crate) fn push_loaded(&mut self, id: OrderKeyId, key: OrderKey) -> bool {
        let in_order = self.queue.back().is_none_or(|(_, at)| *at <= key.at_ms);
        if !in_order || self.by_id.contains_key(&id) {
            return false;
        }
        self.by_id.insert(id, key);
        self.queue.push_back((id, key.at_ms));
        true
    }

    /// Every key, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&OrderKeyId, &OrderKey)> {
        self.queue.iter().map(|(id, _)| (id, &self.by_id[id]))
    }
}

/// Whether a key placed at `at_ms` is out of the window at `now_ms`.
#[inline]
fn expired(at_ms: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(at_ms) > ORDER_KEY_WINDOW_MS
}
