//! The state hash: a stable 128-bit digest (XXH3) of the whole business state.
//!
//! It walks every collection in a defined order (ids ascending, books best price first then by
//! time) and writes fixed-width little-endian fields, so it is the same on every platform and
//! every run. Two counters are left out on purpose: the output event sequence and the newest
//! command timestamp. They describe the stream, not the state, and a rejected command, which
//! must leave the hash unchanged, still advances the clock. The determinism tests compare the
//! event streams (with their sequence numbers) separately.

use std::fmt;

use xxhash_rust::xxh3::Xxh3;

use crate::book::NIL;
use crate::engine::Engine;
use crate::types::ShortStr;

/// A digest of the engine state; equal states give equal hashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateHash(pub u128);

impl fmt::Debug for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

struct Writer(Xxh3);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.update(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.update(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.update(b);
    }
    fn short<const N: usize>(&mut self, s: &ShortStr<N>) {
        self.bytes(s.as_bytes());
    }
    fn opt_short<const N: usize>(&mut self, s: &Option<ShortStr<N>>) {
        match s {
            Some(s) => self.short(s),
            None => self.u64(u64::MAX),
        }
    }
    /// A small enum by its discriminant's debug name (stable: it is the source text).
    fn tag(&mut self, v: impl fmt::Debug) {
        self.bytes(format!("{v:?}").as_bytes());
    }
}

impl Engine {
    /// The digest of everything that defines the engine's behaviour from here on.
    pub fn state_hash(&self) -> StateHash {
        let mut w = Writer(Xxh3::new());
        w.u64(self.next_order_id);
        w.u64(self.assets.len() as u64);
        for asset in &self.assets {
            w.short(&asset.code);
            w.u64(asset.scale as u64);
            w.i64(asset.total_supply);
        }
        w.u64(self.products.len() as u64);
        for p in &self.products {
            w.short(&p.symbol);
            w.bytes(p.name.as_bytes());
            w.u64(p.base.get() as u64);
            w.u64(p.quote.get() as u64);
            w.u64(p.price_scale as u64);
            w.i64(p.tick_size);
            w.u64(p.qty_scale as u64);
            w.i64(p.lot_size);
            for tier in p.fees.tiers() {
                w.i64(tier.volume_min);
                w.u64(tier.maker_ppm as u64);
                w.u64(tier.taker_ppm as u64);
            }
            w.tag(p.status);
        }
        self.hash_accounts(&mut w);
        self.hash_books(&mut w);
        w.u64(self.client_order_ids.len() as u64);
        for ((account, cid), order) in &self.client_order_ids {
            w.u64(account.get() as u64);
            w.short(cid);
            w.u64(order.get());
        }
        w.u64(self.funds_requests.len() as u64);
        for ((account, request), record) in &self.funds_requests {
            w.u64(account.get() as u64);
            w.short(request);
            w.u64(record.is_deposit as u64);
            w.u64(record.asset.get() as u64);
            w.i64(record.amount);
            w.u64(record.command_seq);
        }
        // The order-key window, oldest first (insertion order is part of the state: it decides
        // which key is forgotten next).
        w.u64(self.order_keys.len() as u64);
        for ((account, cid), key) in self.order_keys.iter() {
            w.u64(account.get() as u64);
            w.short(cid);
            w.u64(key.order.get());
            w.u64(key.command_seq);
            w.i64(key.at_ms);
            w.u64(key.product.get() as u64);
            w.tag(key.side);
            w.tag(key.order_type);
            w.i64(key.price.map_or(i64::MIN, |p| p.ticks()));
            w.i64(key.qty.lots());
            w.tag(key.time_in_force);
            w.tag(key.self_trade);
        }
        StateHash(w.0.digest128())
    }

    fn hash_accounts(&self, w: &mut Writer) {
        w.u64(self.accounts.len() as u64);
        for (acct, n_requests) in self.accounts.iter().zip(&self.n_funds_requests) {
            w.bytes(acct.name.as_bytes());
            w.bytes(acct.proof.as_bytes());
            w.short(&acct.currency_preference);
            w.bytes(&acct.token_hash.0);
            w.tag(acct.status);
            w.i64(acct.created_at_ms);
            w.u64(acct.bookmarks.len() as u64);
            for product in &acct.bookmarks {
                w.u64(product.get() as u64);
            }
            // An all-zero balance is the same as no entry.
            for (asset, balance) in acct
                .balances
                .iter()
                .filter(|(_, b)| b.available != 0 || b.held != 0)
            {
                w.u64(asset.get() as u64);
                w.i64(balance.available);
                w.i64(balance.held);
            }
            w.u64(u64::MAX);
            for window in &acct.volumes {
                w.u64(window.asset.get() as u64);
                w.i64(window.day);
                w.i64(window.total);
                for bucket in window.buckets {
                    w.i64(bucket);
                }
            }
            w.u64(acct.n_open_orders as u64);
            w.u64(*n_requests as u64);
        }
    }

    fn hash_books(&self, w: &mut Writer) {
        for book in &self.books {
            w.u64(book.n_orders as u64);
            for ladder in [&book.bids, &book.asks] {
                for (price, level) in ladder.iter() {
                    w.i64(price.ticks());
                    w.i64(level.total);
                    w.u64(level.n_orders(&self.orders) as u64);
                    let mut slot = level.head;
                    while slot != NIL {
                        let node = self.orders.node(slot);
                        w.u64(node.id.get());
                        w.u64(node.account.get() as u64);
                        w.tag(node.side);
                        w.tag(node.time_in_force);
                        w.tag(node.self_trade);
                        w.i64(node.price.ticks());
                        w.i64(node.remaining);
                        w.i64(node.held);
                        w.opt_short(&self.orders.client_order_id(node));
                        slot = node.next;
                    }
                }
                w.u64(u64::MAX);
            }
        }
    }
}
