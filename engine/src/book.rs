//! Order books: price levels in sorted vectors, orders in a slab with intrusive FIFO lists.
//!
//! Each side keeps its levels in a `Vec` sorted so that the best price is last: bids ascending,
//! asks descending. Matching pops from the end; most new orders land near the best price, so an
//! insertion moves few elements; a lookup is a binary search over contiguous memory. Each level
//! links its orders through `prev`/`next` slot indices, so a cancel is O(1) once the level is
//! found. **Invariant:** a level exists only while it holds at least one order, and its `total`
//! is the sum of its orders' `remaining`.

use rustc_hash::FxHashMap;

use crate::types::{
    AccountId, ClientOrderId, OrderId, Price, ProductId, SelfTradePrevention, Side, TimeInForce,
};

/// The "no slot" index.
pub(crate) const NIL: u32 = u32::MAX;

/// A resting order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OrderNode {
    pub(crate) id: OrderId,
    pub(crate) account: AccountId,
    pub(crate) product: ProductId,
    pub(crate) side: Side,
    pub(crate) time_in_force: TimeInForce,
    pub(crate) self_trade: SelfTradePrevention,
    pub(crate) price: Price,
    /// Open lots.
    pub(crate) remaining: i64,
    /// Minor units held for this order: quote for a buy, base for a sell.
    pub(crate) held: i64,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) client_order_id: Option<ClientOrderId>,
}

/// All resting orders of all books, by slot, with an index by order id. The index is a hash
/// map because lookups are by id only; nothing iterates it.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrderStore {
    nodes: Vec<OrderNode>,
    free: Vec<u32>,
    by_id: FxHashMap<u64, u32>,
}

impl OrderStore {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn slot_of(&self, id: OrderId) -> Option<u32> {
        self.by_id.get(&id.get()).copied()
    }

    pub(crate) fn node(&self, slot: u32) -> &OrderNode {
        &self.nodes[slot as usize]
    }

    pub(crate) fn node_mut(&mut self, slot: u32) -> &mut OrderNode {
        &mut self.nodes[slot as usize]
    }

    pub(crate) fn insert(&mut self, node: OrderNode) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let previous = self.by_id.insert(node.id.get(), slot);
        assert!(previous.is_none(), "order id {} stored twice", node.id);
        slot
    }

    pub(crate) fn remove(&mut self, slot: u32) -> OrderNode {
        let node = self.nodes[slot as usize];
        let removed = self.by_id.remove(&node.id.get());
        assert_eq!(removed, Some(slot), "order slot index out of step");
        self.free.push(slot);
        node
    }
}

/// One price level: a FIFO of orders at one price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level {
    pub(crate) price: Price,
    /// Sum of the orders' open lots.
    pub(crate) total: i64,
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) n_orders: u32,
}

/// One product's book.
#[derive(Clone, Debug, Default)]
pub(crate) struct Book {
    /// Ascending by price: the best bid is last.
    pub(crate) bids: Vec<Level>,
    /// Descending by price: the best ask is last.
    pub(crate) asks: Vec<Level>,
    pub(crate) n_orders: u32,
}

/// Whether a taker on `side` with `limit` may trade against a maker at `maker_price`.
#[inline]
pub(crate) fn crosses(side: Side, limit: Price, maker_price: Price) -> bool {
    match side {
        Side::Buy => maker_price <= limit,
        Side::Sell => maker_price >= limit,
    }
}

impl Book {
    pub(crate) fn side(&self, side: Side) -> &Vec<Level> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    pub(crate) fn side_mut(&mut self, side: Side) -> &mut Vec<Level> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The best level on `side`.
    pub(crate) fn best(&self, side: Side) -> Option<&Level> {
        self.side(side).last()
    }

    /// `Ok(index)` of the level at `price` on `side`, or `Err(index)` where it would go.
    fn find(levels: &[Level], side: Side, price: Price) -> Result<usize, usize> {
        match side {
            Side::Buy => levels.binary_search_by(|l| l.price.cmp(&price)),
            Side::Sell => levels.binary_search_by(|l| price.cmp(&l.price)),
        }
    }

    /// Appends the order in `slot` at the back of its price level.
    pub(crate) fn push_back(&mut self, store: &mut OrderStore, slot: u32) {
        let (side, price, remaining) = {
            let node = store.node(slot);
            (node.side, node.price, node.remaining)
        };
        debug_assert!(remaining > 0);
        let levels = self.side_mut(side);
        match Self::find(levels, side, price) {
            Ok(idx) => {
                let level = &mut levels[idx];
                let tail = level.tail;
                store.node_mut(tail).next = slot;
                let node = store.node_mut(slot);
                node.prev = tail;
                node.next = NIL;
                level.tail = slot;
                level.total += remaining;
                level.n_orders += 1;
            }
            Err(idx) => {
                let node = store.node_mut(slot);
                node.prev = NIL;
                node.next = NIL;
                levels.insert(
                    idx,
                    Level {
                        price,
                        total: remaining,
                        head: slot,
                        tail: slot,
                        n_orders: 1,
                    },
                );
            }
        }
        self.n_orders += 1;
    }

    /// Takes the order in `slot` out of its level (removing the level if it empties). The node
    /// stays in the store.
    pub(crate) fn unlink(&mut self, store: &mut OrderStore, slot: u32) {
        let node = *store.node(slot);
        let levels = self.side_mut(node.side);
        let idx = Self::find(levels, node.side, node.price)
            .unwrap_or_else(|_| panic!("order {} has no level", node.id));
        let level = &mut levels[idx];
        unlink_in_level(level, store, slot);
        if level.n_orders == 0 {
            levels.remove(idx);
        }
        self.n_orders -= 1;
    }

    /// Lowers the open quantity of a resting order in place (it keeps its priority).
    pub(crate) fn reduce(&mut self, store: &mut OrderStore, slot: u32, new_remaining: i64) {
        let node = store.node_mut(slot);
        debug_assert!(0 < new_remaining && new_remaining < node.remaining);
        let delta = node.remaining - new_remaining;
        node.remaining = new_remaining;
        let (side, price) = (node.side, node.price);
        let levels = self.side_mut(side);
        let idx = Self::find(levels, side, price).expect("resting order has a level");
        levels[idx].total -= delta;
    }
}

/// Unlinks `slot` from `level`'s list and totals (the caller removes an empty level).
pub(crate) fn unlink_in_level(level: &mut Level, store: &mut OrderStore, slot: u32) {
    let OrderNode {
        prev,
        next,
        remaining,
        ..
    } = *store.node(slot);
    if prev == NIL {
        level.head = next;
    } else {
        store.node_mut(prev).next = next;
    }
    if next == NIL {
        level.tail = prev;
    } else {
        store.node_mut(next).prev = prev;
    }
    level.total -= remaining;
    level.n_orders -= 1;
}
