//! Order books: price levels in bitmap pages, orders in a slab with intrusive FIFO lists.
//!
//! Each side of a book is a ladder of pages of 64 consecutive ticks. A page holds the 64
//! levels in place and a `u64` bitmap of the occupied ones; the pages present are indexed by a
//! `BTreeMap` from page number to page slot (for order), which stays small because a page
//! covers many levels, and by a hash map of the same (for lookups by price). Finding the best price is the first (asks) or last (bids) page and one bit scan;
//! adding or removing a level flips a bit and moves no memory; a page is freed when its last
//! level empties. Each level links its orders through `prev`/`next` slot indices and every
//! order knows its page, so a cancel is O(1). Any price distribution works: sparse prices
//! degrade to one page per level, i.e. a B-tree of levels.
//!
//! **Invariant:** a level's bit is set exactly while it holds at least one order, a page exists
//! exactly while its bitmap is not zero, and a level's `total` is the sum of its orders'
//! `remaining`.

use std::collections::BTreeMap;

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
    /// The page slot of its level in its side's ladder (valid while it rests).
    pub(crate) page: u32,
    /// Whether the store keeps a client order id for it (kept aside so a node is 64 bytes).
    pub(crate) has_client_order_id: bool,
}

/// All resting orders of all books, by slot, with an index by order id. The index and the
/// client order ids are hash maps because they are only looked up by id; nothing iterates them.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrderStore {
    nodes: Vec<OrderNode>,
    free: Vec<u32>,
    by_id: FxHashMap<u64, u32>,
    client_order_ids: FxHashMap<u64, ClientOrderId>,
}

impl OrderStore {
    /// An empty store with room for `n_orders` orders, `n_client_ids` of them with a client
    /// order id, so that loading a snapshot never grows (and copies) a container.
    pub(crate) fn with_capacity(n_orders: usize, n_client_ids: usize) -> OrderStore {
        let mut by_id = FxHashMap::default();
        by_id.reserve(n_orders);
        let mut client_order_ids = FxHashMap::default();
        client_order_ids.reserve(n_client_ids);
        OrderStore {
            nodes: Vec::with_capacity(n_orders),
            free: Vec::new(),
            by_id,
            client_order_ids,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    #[inline]
    pub(crate) fn slot_of(&self, id: OrderId) -> Option<u32> {
        self.by_id.get(&id.get()).copied()
    }

    #[inline]
    pub(crate) fn node(&self, slot: u32) -> &OrderNode {
        &self.nodes[slot as usize]
    }

    #[inline]
    pub(crate) fn node_mut(&mut self, slot: u32) -> &mut OrderNode {
        &mut self.nodes[slot as usize]
    }

    pub(crate) fn client_order_id(&self, node: &OrderNode) -> Option<ClientOrderId> {
        if node.has_client_order_id {
            self.client_order_ids.get(&node.id.get()).copied()
        } else {
            None
        }
    }

    pub(crate) fn insert(
        &mut self,
        node: OrderNode,
        client_order_id: Option<ClientOrderId>,
    ) -> u32 {
        debug_assert_eq!(node.has_client_order_id, client_order_id.is_some());
        if let Some(cid) = client_order_id {
            self.client_order_ids.insert(node.id.get(), cid);
        }
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

    /// Frees the slot; returns the node and its client order id.
    pub(crate) fn remove(&mut self, slot: u32) -> (OrderNode, Option<ClientOrderId>) {
        let node = self.nodes[slot as usize];
        let removed = self.by_id.remove(&node.id.get());
        assert_eq!(removed, Some(slot), "order slot index out of step");
        self.free.push(slot);
        let cid = if node.has_client_order_id {
            self.client_order_ids.remove(&node.id.get())
        } else {
            None
        };
        (node, cid)
    }
}

/// One price level: a FIFO of orders at one price (the price is the level's place). 16 bytes,
/// so a page of 64 is 1 KiB and no level straddles a cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Level {
    /// Sum of the orders' open lots.
    pub(crate) total: i64,
    /// `NIL` when the level is empty.
    pub(crate) head: u32,
    pub(crate) tail: u32,
}

impl Level {
    /// The number of orders, by walking the queue (for queries, not the hot path).
    pub(crate) fn n_orders(&self, store: &OrderStore) -> u32 {
        let mut n = 0;
        let mut slot = self.head;
        while slot != NIL {
            n += 1;
            slot = store.node(slot).next;
        }
        n
    }
}

const _: () = assert!(std::mem::size_of::<Level>() == 16);

/// Ticks per page: one bit of a `u64` each.
const PAGE_TICKS: i64 = 64;

#[derive(Clone, Debug)]
struct Page {
    occupied: u64,
    levels: [Level; PAGE_TICKS as usize],
}

#[inline]
fn page_number(price: Price) -> i64 {
    price.ticks().div_euclid(PAGE_TICKS)
}

#[inline]
fn bit(price: Price) -> usize {
    price.ticks().rem_euclid(PAGE_TICKS) as usize
}

/// One side of a book.
#[derive(Clone, Debug)]
pub(crate) struct Ladder {
    side: Side,
    /// Page number (price / 64) to page slot, in price order: for the best price and walks.
    index: BTreeMap<i64, u32>,
    /// The same map for lookups by price, which a B-tree answers several times slower; it is
    /// never iterated.
    lookup: FxHashMap<i64, u32>,
    pages: Vec<Page>,
    free_pages: Vec<u32>,
    /// The best level's page slot and price, kept up to date on every level added or removed
    /// (reading it is what nearly every order and amendment does first).
    best: Option<(u32, Price)>,
}

impl Ladder {
    fn new(side: Side) -> Ladder {
        Ladder {
            side,
            index: BTreeMap::new(),
            lookup: FxHashMap::default(),
            pages: Vec::new(),
            free_pages: Vec::new(),
            best: None,
        }
    }

    /// The best price and its page slot: the highest bid or the lowest ask.
    #[inline]
    pub(crate) fn best(&self) -> Option<(u32, Price)> {
        debug_assert_eq!(self.best, self.find_best());
        self.best
    }

    /// The best level found from the index (what `best` caches).
    fn find_best(&self) -> Option<(u32, Price)> {
        let (number, slot) = match self.side {
            Side::Buy => self.index.last_key_value()?,
            Side::Sell => self.index.first_key_value()?,
        };
        let occupied = self.pages[*slot as usize].occupied;
        debug_assert!(occupied != 0);
        let offset = match self.side {
            Side::Buy => 63 - occupied.leading_zeros() as i64,
            Side::Sell => occupied.trailing_zeros() as i64,
        };
        Some((*slot, Price::from_ticks(number * PAGE_TICKS + offset)))
    }

    #[inline]
    pub(crate) fn best_price(&self) -> Option<Price> {
        self.best().map(|(_, price)| price)
    }

    #[inline]
    pub(crate) fn level_mut(&mut self, page: u32, price: Price) -> &mut Level {
        &mut self.pages[page as usize].levels[bit(price)]
    }

    /// The levels, best first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Price, &Level)> + '_ {
        let pages: Box<dyn Iterator<Item = (&i64, &u32)>> = match self.side {
            Side::Buy => Box::new(self.index.iter().rev()),
            Side::Sell => Box::new(self.index.iter()),
        };
        let descending = self.side == Side::Buy;
        pages.flat_map(move |(number, slot)| {
            let page = &self.pages[*slot as usize];
            let offsets: Box<dyn Iterator<Item = usize>> = if descending {
                Box::new((0..PAGE_TICKS as usize).rev())
            } else {
                Box::new(0..PAGE_TICKS as usize)
            };
            offsets
                .filter(move |offset| page.occupied & (1u64 << offset) != 0)
                .map(move |offset| {
                    (
                        Price::from_ticks(number * PAGE_TICKS + offset as i64),
                        &page.levels[offset],
                    )
                })
        })
    }

    /// The page slot for `price`, creating the page if needed.
    #[inline]
    fn page_for(&mut self, price: Price) -> u32 {
        let number = page_number(price);
        if let Some(slot) = self.lookup.get(&number) {
            return *slot;
        }
        // A level is only read while its bit is set, and `push_back` writes it whole when it
        // sets the bit: a reused page needs only its bitmap cleared.
        let slot = match self.free_pages.pop() {
            Some(slot) => {
                self.pages[slot as usize].occupied = 0;
                slot
            }
            None => {
                self.pages.push(Page {
                    occupied: 0,
                    levels: [Level::default(); PAGE_TICKS as usize],
                });
                (self.pages.len() - 1) as u32
            }
        };
        self.index.insert(number, slot);
        self.lookup.insert(number, slot);
        slot
    }

    /// Forgets the level at `price` in `page` if it has no orders (and the page if it empties).
    #[inline]
    pub(crate) fn remove_if_empty(&mut self, page: u32, price: Price) {
        if self.pages[page as usize].levels[bit(price)].head == NIL {
            self.remove_level(page, price);
        }
    }

    /// Forgets the empty level at `price` (and its page if that empties too).
    #[inline(never)]
    fn remove_level(&mut self, page: u32, price: Price) {
        let p = &mut self.pages[page as usize];
        let offset = bit(price);
        debug_assert!(p.levels[offset].total == 0);
        p.occupied &= !(1u64 << offset);
        if p.occupied == 0 {
            self.lookup.remove(&page_number(price));
            let removed = self.index.remove(&page_number(price));
            debug_assert_eq!(removed, Some(page));
            self.free_pages.push(page);
        }
        if self.best.is_some_and(|(_, best)| best == price) {
            self.best = self.find_best();
        }
    }

    /// Appends the order in `slot` at the back of its price level.
    #[inline]
    fn push_back(&mut self, store: &mut OrderStore, slot: u32) {
        let (price, remaining) = {
            let node = store.node(slot);
            (node.price, node.remaining)
        };
        debug_assert!(remaining > 0);
        let page = self.page_for(price);
        let offset = bit(price);
        let p = &mut self.pages[page as usize];
        let level = &mut p.levels[offset];
        if p.occupied & (1u64 << offset) != 0 {
            let tail = level.tail;
            store.node_mut(tail).next = slot;
            let node = store.node_mut(slot);
            node.prev = tail;
            node.next = NIL;
            node.page = page;
            level.tail = slot;
            level.total += remaining;
        } else {
            p.occupied |= 1u64 << offset;
            let node = store.node_mut(slot);
            node.prev = NIL;
            node.next = NIL;
            node.page = page;
            *level = Level {
                total: remaining,
                head: slot,
                tail: slot,
            };
            let better = match (self.best, self.side) {
                (None, _) => true,
                (Some((_, best)), Side::Buy) => price > best,
                (Some((_, best)), Side::Sell) => price < best,
            };
            if better {
                self.best = Some((page, price));
            }
        }
    }
}

/// One product's book.
#[derive(Clone, Debug)]
pub(crate) struct Book {
    pub(crate) bids: Ladder,
    pub(crate) asks: Ladder,
    pub(crate) n_orders: u32,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            bids: Ladder::new(Side::Buy),
            asks: Ladder::new(Side::Sell),
            n_orders: 0,
        }
    }
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
    pub(crate) fn side(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The best price on `side`.
    #[inline]
    pub(crate) fn best(&self, side: Side) -> Option<Price> {
        self.side(side).best_price()
    }

    /// Appends the order in `slot` at the back of its price level.
    #[inline]
    pub(crate) fn push_back(&mut self, store: &mut OrderStore, slot: u32) {
        let side = store.node(slot).side;
        self.side_mut(side).push_back(store, slot);
        self.n_orders += 1;
    }

    /// Takes the order in `slot` out of its level (removing the level if it empties). The node
    /// stays in the store.
    #[inline]
    pub(crate) fn unlink(&mut self, store: &mut OrderStore, slot: u32) {
        let node = store.node(slot);
        let (side, page, price) = (node.side, node.page, node.price);
        let ladder = self.side_mut(side);
        unlink_in_level(ladder.level_mut(page, price), store, slot);
        ladder.remove_if_empty(page, price);
        self.n_orders -= 1;
    }

    /// Lowers the open quantity of a resting order in place (it keeps its priority).
    #[inline]
    pub(crate) fn reduce(&mut self, store: &mut OrderStore, slot: u32, new_remaining: i64) {
        let node = store.node_mut(slot);
        debug_assert!(0 < new_remaining && new_remaining < node.remaining);
        let delta = node.remaining - new_remaining;
        node.remaining = new_remaining;
        let (side, page, price) = (node.side, node.page, node.price);
        self.side_mut(side).level_mut(page, price).total -= delta;
    }
}

/// Unlinks `slot` from `level`'s list and totals (the caller removes an empty level).
#[inline]
pub(crate) fn unlink_in_level(level: &mut Level, store: &mut OrderStore, slot: u32) {
    let node = store.node(slot);
    let (prev, next, remaining) = (node.prev, node.next, node.remaining);
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
}

// A resting order fits one cache line.
const _: () = assert!(std::mem::size_of::<OrderNode>() <= 64);
