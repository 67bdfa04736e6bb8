//! Engine images: the whole state as canonical plain data, for snapshots.
//!
//! [`Engine::to_image`] walks the state in the same defined order as the state hash (ids
//! ascending; books per product, bids then asks, best price first, then time) and copies it
//! into vectors of plain structs with raw integer fields, so the image can be archived with
//! `rkyv` and checked with `bytecheck` on load. [`Engine::from_image`] validates an image in
//! full and rebuilds the engine, pushing each side's orders back in priority order; it never
//! panics, whatever the image holds, and returns an [`ImageError`] instead.
//!
//! What is derived is not stored: the code and symbol indexes, the client-order-id map (each
//! resting order carries its client id), the products' integer factors (recomputed from the
//! listing), the books' pages and the order slots. The image depends only on the state, not on
//! how the engine's memory happens to be laid out (slots, pages, free lists): the same state
//! gives the same image, and so the same snapshot bytes.
//!
//! **Invariant:** `Engine::from_image(e.to_image())` has the state hash, the event sequence and
//! the clock of `e`, and answers every later command exactly as `e` does.

use std::collections::BTreeMap;

use smallvec::SmallVec;

use crate::account::{Account, Balance};
use crate::book::{Book, NIL, OrderNode, OrderStore};
use crate::engine::{Engine, FundsRecord};
use crate::fees::{FeeSchedule, FeeTier, VOLUME_WINDOW_DAYS, VolumeWindow};
use crate::limits::{FEE_TIERS_MAX, Limits, SCALE_MAX};
use crate::product::{Asset, Product};
use crate::types::{
    AMOUNT_MAX, AccountId, AssetCode, AssetId, ClientOrderId, OrderId, Price, ProductId,
    ProductStatus, ProfileStatus, Qty, RequestId, SelfTradePrevention, ShortStr, Side, Symbol,
    TimeInForce, TokenHash,
};

/// The largest `next_order_id` and `event_seq` an image may carry, so that neither counter can
/// overflow afterwards.
pub const IMAGE_COUNTER_MAX: u64 = i64::MAX as u64;

const MS_PER_DAY: i64 = 86_400_000;

/// The whole engine state as plain data. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EngineImage {
    pub limits: LimitsImage,
    /// By asset id.
    pub assets: Vec<AssetImage>,
    /// By product id.
    pub products: Vec<ProductImage>,
    /// By account id; account 0 is the fee account.
    pub accounts: Vec<AccountImage>,
    /// By product id, one per product.
    pub books: Vec<BookImage>,
    /// Sorted by (account, request id), no duplicates.
    pub funds_requests: Vec<FundsRequestImage>,
    pub next_order_id: u64,
    pub event_seq: u64,
    pub clock_ms: i64,
}

/// [`Limits`], field for field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LimitsImage {
    pub accounts_max: u32,
    pub assets_max: u16,
    pub products_max: u32,
    pub open_orders_per_account_max: u32,
    pub orders_per_book_max: u32,
    pub orders_total_max: u32,
    pub bookmarks_per_account_max: u32,
    pub funds_requests_per_account_max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AssetImage {
    pub code: ShortImage<12>,
    pub scale: u8,
    pub total_supply: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ProductImage {
    pub symbol: ShortImage<16>,
    pub name: String,
    pub base: u16,
    pub quote: u16,
    pub price_scale: u8,
    pub tick_size: i64,
    pub qty_scale: u8,
    pub lot_size: i64,
    pub fee_tiers: Vec<FeeTierImage>,
    /// 0 trading, 1 halted.
    pub status: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FeeTierImage {
    pub volume_min: i64,
    pub maker_ppm: u32,
    pub taker_ppm: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AccountImage {
    pub name: String,
    pub proof: String,
    pub currency_preference: ShortImage<12>,
    pub token_hash: [u8; 32],
    /// 0 pending, 1 verified, 2 rejected.
    pub status: u8,
    pub created_at_ms: i64,
    /// Sorted, no duplicates.
    pub bookmarks: Vec<u32>,
    /// Sorted by asset, no duplicates; all-zero entries are kept as they are.
    pub balances: Vec<BalanceImage>,
    /// In order of first trade, one per quote asset.
    pub volumes: Vec<VolumeWindowImage>,
    pub n_open_orders: u32,
    pub n_funds_requests: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BalanceImage {
    pub asset: u16,
    pub available: i64,
    pub held: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct VolumeWindowImage {
    pub asset: u16,
    pub day: i64,
    pub buckets: [i64; VOLUME_WINDOW_DAYS],
    pub total: i64,
}

/// One product's resting orders, each side in priority order (best price first, then time).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct BookImage {
    pub bids: Vec<OrderImage>,
    pub asks: Vec<OrderImage>,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderImage {
    pub id: u64,
    pub account: u32,
    pub price: i64,
    /// Open lots.
    pub remaining: i64,
    /// Minor units held: quote for a buy, base for a sell.
    pub held: i64,
    /// 0 GTC, 1 IOC, 2 FOK, 3 post-only (only 0 and 3 rest).
    pub time_in_force: u8,
    /// 0 cancel resting, 1 cancel incoming, 2 cancel both.
    pub self_trade: u8,
    pub client_order_id: Option<ShortImage<36>>,
}

#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FundsRequestImage {
    pub account: u32,
    pub request_id: ShortImage<36>,
    pub is_deposit: bool,
    pub asset: u16,
    pub amount: i64,
    pub command_seq: u64,
}

/// A short code stored inline (no allocation): the first `len` bytes of `bytes`, the rest zero.
/// On load it must be a valid [`ShortStr`] (printable ASCII without spaces, 1..=N bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ShortImage<const N: usize> {
    pub len: u8,
    pub bytes: [u8; N],
}

impl<const N: usize> ShortImage<N> {
    pub fn from_short(s: &ShortStr<N>) -> Self {
        let raw = s.as_bytes();
        let mut bytes = [0u8; N];
        bytes[..raw.len()].copy_from_slice(raw);
        ShortImage {
            len: raw.len() as u8,
            bytes,
        }
    }

    /// `None` unless a valid [`ShortStr`] with zero padding.
    pub fn to_short(&self) -> Option<ShortStr<N>> {
        let len = self.len as usize;
        if len > N || self.bytes[len..].iter().any(|b| *b != 0) {
            return None;
        }
        ShortStr::new(std::str::from_utf8(&self.bytes[..len]).ok()?)
    }
}

/// Why an image was refused. `index` is the position in the image's list it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error("limits: {0}")]
    Limits(&'static str),
    #[error("asset {index}: {reason}")]
    Asset { index: usize, reason: &'static str },
    #[error("product {index}: {reason}")]
    Product { index: usize, reason: &'static str },
    #[error("account {index}: {reason}")]
    Account { index: usize, reason: &'static str },
    #[error("book {product}, order id {order}: {reason}")]
    Order {
        product: usize,
        order: u64,
        reason: &'static str,
    },
    #[error("funds request {index}: {reason}")]
    FundsRequest { index: usize, reason: &'static str },
    #[error("{0}")]
    State(&'static str),
}

// ----- raw codes of the small enums ---------------------------------------------------------

fn profile_status_code(s: ProfileStatus) -> u8 {
    match s {
        ProfileStatus::Pending => 0,
        ProfileStatus::Verified => 1,
        ProfileStatus::Rejected => 2,
    }
}

fn profile_status_from(code: u8) -> Option<ProfileStatus> {
    Some(match code {
        0 => ProfileStatus::Pending,
        1 => ProfileStatus::Verified,
        2 => ProfileStatus::Rejected,
        _ => return None,
    })
}

fn product_status_code(s: ProductStatus) -> u8 {
    match s {
        ProductStatus::Trading => 0,
        ProductStatus::Halted => 1,
    }
}

fn product_status_from(code: u8) -> Option<ProductStatus> {
    Some(match code {
        0 => ProductStatus::Trading,
        1 => ProductStatus::Halted,
        _ => return None,
    })
}

fn time_in_force_code(t: TimeInForce) -> u8 {
    match t {
        TimeInForce::Gtc => 0,
        TimeInForce::Ioc => 1,
        TimeInForce::Fok => 2,
        TimeInForce::PostOnly => 3,
    }
}

/// Only the kinds that rest.
fn resting_time_in_force_from(code: u8) -> Option<TimeInForce> {
    Some(match code {
        0 => TimeInForce::Gtc,
        3 => TimeInForce::PostOnly,
        _ => return None,
    })
}

fn self_trade_code(s: SelfTradePrevention) -> u8 {
    match s {
        SelfTradePrevention::CancelResting => 0,
        SelfTradePrevention::CancelIncoming => 1,
        SelfTradePrevention::CancelBoth => 2,
    }
}

fn self_trade_from(code: u8) -> Option<SelfTradePrevention> {
    Some(match code {
        0 => SelfTradePrevention::CancelResting,
        1 => SelfTradePrevention::CancelIncoming,
        2 => SelfTradePrevention::CancelBoth,
        _ => return None,
    })
}

// ----- to_image -----------------------------------------------------------------------------

impl Engine {
    /// The state as a canonical image (see the module docs). Reads only; the engine is
    /// unchanged.
    pub fn to_image(&self) -> EngineImage {
        let l = &self.limits;
        EngineImage {
            limits: LimitsImage {
                accounts_max: l.accounts_max,
                assets_max: l.assets_max,
                products_max: l.products_max,
                open_orders_per_account_max: l.open_orders_per_account_max,
                orders_per_book_max: l.orders_per_book_max,
                orders_total_max: l.orders_total_max,
                bookmarks_per_account_max: l.bookmarks_per_account_max,
                funds_requests_per_account_max: l.funds_requests_per_account_max,
            },
            assets: self.assets.iter().map(asset_image).collect(),
            products: self.products.iter().map(product_image).collect(),
            accounts: self
                .accounts
                .iter()
                .zip(&self.n_funds_requests)
                .map(|(a, n)| account_image(a, *n))
                .collect(),
            books: self
                .books
                .iter()
                .map(|book| BookImage {
                    bids: self.side_image(book, Side::Buy),
                    asks: self.side_image(book, Side::Sell),
                })
                .collect(),
            funds_requests: self
                .funds_requests
                .iter()
                .map(|((account, request_id), r)| FundsRequestImage {
                    account: account.get(),
                    request_id: ShortImage::from_short(request_id),
                    is_deposit: r.is_deposit,
                    asset: r.asset.get(),
                    amount: r.amount,
                    command_seq: r.command_seq,
                })
                .collect(),
            next_order_id: self.next_order_id,
            event_seq: self.event_seq,
            clock_ms: self.clock_ms,
        }
    }

    fn side_image(&self, book: &Book, side: Side) -> Vec<OrderImage> {
        let mut orders = Vec::with_capacity(book.n_orders as usize);
        for (_, level) in book.side(side).iter() {
            let mut slot = level.head;
            while slot != NIL {
                let node = self.orders.node(slot);
                orders.push(OrderImage {
                    id: node.id.get(),
                    account: node.account.get(),
                    price: node.price.ticks(),
                    remaining: node.remaining,
                    held: node.held,
                    time_in_force: time_in_force_code(node.time_in_force),
                    self_trade: self_trade_code(node.self_trade),
                    client_order_id: self
                        .orders
                        .client_order_id(node)
                        .map(|c| ShortImage::from_short(&c)),
                });
                slot = node.next;
            }
        }
        orders
    }
}

fn asset_image(a: &Asset) -> AssetImage {
    AssetImage {
        code: ShortImage::from_short(&a.code),
        scale: a.scale,
        total_supply: a.total_supply,
    }
}

fn product_image(p: &Product) -> ProductImage {
    ProductImage {
        symbol: ShortImage::from_short(&p.symbol),
        name: p.name.clone(),
        base: p.base.get(),
        quote: p.quote.get(),
        price_scale: p.price_scale,
        tick_size: p.tick_size,
        qty_scale: p.qty_scale,
        lot_size: p.lot_size,
        fee_tiers: p
            .fees
            .tiers()
            .iter()
            .map(|t| FeeTierImage {
                volume_min: t.volume_min,
                maker_ppm: t.maker_ppm,
                taker_ppm: t.taker_ppm,
            })
            .collect(),
        status: product_status_code(p.status),
    }
}

fn account_image(a: &Account, n_funds_requests: u32) -> AccountImage {
    AccountImage {
        name: a.name.clone(),
        proof: a.proof.clone(),
        currency_preference: ShortImage::from_short(&a.currency_preference),
        token_hash: a.token_hash.0,
        status: profile_status_code(a.status),
        created_at_ms: a.created_at_ms,
        bookmarks: a.bookmarks.iter().map(|p| p.get()).collect(),
        balances: a
            .balances
            .iter()
            .map(|(asset, b)| BalanceImage {
                asset: asset.get(),
                available: b.available,
                held: b.held,
            })
            .collect(),
        volumes: a
            .volumes
            .iter()
            .map(|w| VolumeWindowImage {
                asset: w.asset.get(),
                day: w.day,
                buckets: w.buckets,
                total: w.total,
            })
            .collect(),
        n_open_orders: a.n_open_orders,
        n_funds_requests,
    }
}

// ----- from_image ---------------------------------------------------------------------------

impl Engine {
    /// Rebuilds an engine from an image after validating it in full: ids in range, lists
    /// sorted and unique where the engine keeps them so, amounts in range, money conserved per
    /// asset, each wallet's `held` equal to what its orders hold, open-order and funds-request
    /// counts equal to what the image lists, books not crossed. Never panics.
    pub fn from_image(mut image: EngineImage) -> Result<Engine, ImageError> {
        let limits = limits_from(&image.limits)?;
        let mut engine = Engine::new(limits);
        engine.assets = assets_from(&image, &mut engine.asset_by_code)?;
        engine.products = products_from(&image, &engine.assets, &mut engine.product_by_symbol)?;
        let (accounts, n_funds_requests) = accounts_from(
            std::mem::take(&mut image.accounts),
            &image.limits,
            image.assets.len(),
            image.products.len(),
        )?;
        engine.accounts = accounts;
        engine.n_funds_requests = n_funds_requests;
        engine.funds_requests = funds_requests_from(&image, &engine.n_funds_requests)?;
        if image.next_order_id == 0 || image.next_order_id > IMAGE_COUNTER_MAX {
            return Err(ImageError::State("next order id out of range"));
        }
        if image.event_seq > IMAGE_COUNTER_MAX {
            return Err(ImageError::State("event sequence out of range"));
        }
        engine.next_order_id = image.next_order_id;
        engine.event_seq = image.event_seq;
        engine.clock_ms = image.clock_ms;
        engine.rebuild_books(image.books)?;
        engine.check_money()?;
        Ok(engine)
    }

    /// Pushes the orders back, side by side in priority order, and checks them against the
    /// wallets and counters.
    fn rebuild_books(&mut self, books: Vec<BookImage>) -> Result<(), ImageError> {
        if books.len() != self.products.len() {
            return Err(ImageError::State("not one book per product"));
        }
        let n_orders: usize = books.iter().map(|b| b.bids.len() + b.asks.len()).sum();
        if n_orders > self.limits.orders_total_max as usize {
            return Err(ImageError::State("more orders than orders_total_max"));
        }
        // What the orders must account for: each wallet's held amounts and open-order counts,
        // counted down as the orders arrive and checked to reach zero.
        let mut held_left: Vec<SmallVec<[(AssetId, i64); 2]>> = self
            .accounts
            .iter()
            .map(|a| {
                a.balances
                    .iter()
                    .map(|(asset, b)| (*asset, b.held))
                    .collect()
            })
            .collect();
        let mut open_left: Vec<u32> = self.accounts.iter().map(|a| a.n_open_orders).collect();
        let mut orders = OrderStore::default();
        let mut new_books = Vec::with_capacity(books.len());
        for (product, image) in books.into_iter().enumerate() {
            let mut book = Book::default();
            let n = image.bids.len() + image.asks.len();
            if n > self.limits.orders_per_book_max as usize {
                return Err(ImageError::Order {
                    product,
                    order: 0,
                    reason: "more orders than orders_per_book_max",
                });
            }
            for (side, list) in [(Side::Buy, image.bids), (Side::Sell, image.asks)] {
                let mut last_price: Option<Price> = None;
                for o in list {
                    let err = |reason| ImageError::Order {
                        product,
                        order: o.id,
                        reason,
                    };
                    let (node, cid) = self.order_node(product, side, &o).map_err(err)?;
                    let behind = |last: Price| match side {
                        Side::Buy => node.price > last,
                        Side::Sell => node.price < last,
                    };
                    if last_price.is_some_and(behind) {
                        return Err(err("not in priority order"));
                    }
                    last_price = Some(node.price);
                    if orders.slot_of(node.id).is_some() {
                        return Err(err("duplicate order id"));
                    }
                    let account = o.account as usize;
                    let left = &mut open_left[account];
                    *left = left
                        .checked_sub(1)
                        .ok_or(err("more orders than n_open_orders"))?;
                    let hold_asset = self.hold_asset(product, side);
                    let entry = held_left[account]
                        .iter_mut()
                        .find(|(a, _)| *a == hold_asset)
                        .ok_or(err("no balance for what the order holds"))?;
                    entry.1 -= o.held;
                    if entry.1 < 0 {
                        return Err(err("orders hold more than the wallet's held"));
                    }
                    if let Some(c) = cid
                        && self
                            .client_order_ids
                            .insert((node.account, c), node.id)
                            .is_some()
                    {
                        return Err(err("duplicate client order id"));
                    }
                    let slot = orders.insert(node, cid);
                    book.push_back(&mut orders, slot);
                }
            }
            if let (Some(bid), Some(ask)) = (book.best(Side::Buy), book.best(Side::Sell))
                && bid >= ask
            {
                return Err(ImageError::Order {
                    product,
                    order: 0,
                    reason: "crossed book",
                });
            }
            new_books.push(book);
        }
        for (index, (held, open)) in held_left.iter().zip(&open_left).enumerate() {
            if *open != 0 {
                return Err(ImageError::Account {
                    index,
                    reason: "n_open_orders differs from its resting orders",
                });
            }
            if held.iter().any(|(_, h)| *h != 0) {
                return Err(ImageError::Account {
                    index,
                    reason: "held differs from what its orders hold",
                });
            }
        }
        self.orders = orders;
        self.books = new_books;
        Ok(())
    }

    fn hold_asset(&self, product: usize, side: Side) -> AssetId {
        let p = &self.products[product];
        match side {
            Side::Buy => p.quote,
            Side::Sell => p.base,
        }
    }

    /// One order checked against the product, the account and the counters.
    fn order_node(
        &self,
        product: usize,
        side: Side,
        o: &OrderImage,
    ) -> Result<(OrderNode, Option<ClientOrderId>), &'static str> {
        let p = &self.products[product];
        if o.id == 0 || o.id >= self.next_order_id {
            return Err("order id not below next_order_id");
        }
        if o.account == AccountId::FEES.get() || o.account as usize >= self.accounts.len() {
            return Err("account out of range");
        }
        let price = Price::new_checked(o.price).map_err(|_| "price out of range")?;
        let qty = Qty::new_checked(o.remaining).map_err(|_| "remaining out of range")?;
        let time_in_force =
            resting_time_in_force_from(o.time_in_force).ok_or("time in force that cannot rest")?;
        let self_trade = self_trade_from(o.self_trade).ok_or("unknown self-trade prevention")?;
        p.notional(price, qty).map_err(|_| "notional overflows")?;
        let hold_ok = match side {
            // Fills at better prices and lower fees leave more than the remainder needs.
            Side::Buy => p
                .buy_hold(price, qty)
                .is_ok_and(|need| need <= o.held && o.held <= AMOUNT_MAX),
            Side::Sell => p.base_amount(qty) == Ok(o.held),
        };
        if !hold_ok {
            return Err("held does not cover the remainder");
        }
        let cid = match &o.client_order_id {
            Some(c) => Some(c.to_short().ok_or("invalid client order id")?),
            None => None,
        };
        let node = OrderNode {
            id: OrderId::new(o.id),
            account: AccountId::new(o.account),
            product: ProductId::new(product as u32),
            side,
            time_in_force,
            self_trade,
            price,
            remaining: qty.lots(),
            held: o.held,
            prev: NIL,
            next: NIL,
            page: NIL,
            has_client_order_id: cid.is_some(),
        };
        Ok((node, cid))
    }

    /// Per asset, the total supply equals the sum of all balances.
    fn check_money(&self) -> Result<(), ImageError> {
        let mut sums = vec![0i128; self.assets.len()];
        for acct in &self.accounts {
            for (asset, b) in &acct.balances {
                sums[asset.get() as usize] += b.available as i128 + b.held as i128;
            }
        }
        for (index, (asset, sum)) in self.assets.iter().zip(sums).enumerate() {
            if asset.total_supply as i128 != sum {
                return Err(ImageError::Asset {
                    index,
                    reason: "total supply differs from the sum of balances",
                });
            }
        }
        Ok(())
    }
}

fn limits_from(l: &LimitsImage) -> Result<Limits, ImageError> {
    if l.orders_total_max == NIL {
        return Err(ImageError::Limits(
            "orders_total_max leaves no room for NIL",
        ));
    }
    if l.accounts_max == 0 {
        return Err(ImageError::Limits("accounts_max is 0"));
    }
    Ok(Limits {
        accounts_max: l.accounts_max,
        assets_max: l.assets_max,
        products_max: l.products_max,
        open_orders_per_account_max: l.open_orders_per_account_max,
        orders_per_book_max: l.orders_per_book_max,
        orders_total_max: l.orders_total_max,
        bookmarks_per_account_max: l.bookmarks_per_account_max,
        funds_requests_per_account_max: l.funds_requests_per_account_max,
    })
}

fn assets_from(
    image: &EngineImage,
    by_code: &mut BTreeMap<AssetCode, AssetId>,
) -> Result<Vec<Asset>, ImageError> {
    if image.assets.len() > image.limits.assets_max as usize {
        return Err(ImageError::State("more assets than assets_max"));
    }
    let mut assets = Vec::with_capacity(image.assets.len());
    for (index, a) in image.assets.iter().enumerate() {
        let err = |reason| ImageError::Asset { index, reason };
        let code: AssetCode = a.code.to_short().ok_or(err("invalid code"))?;
        if a.scale > SCALE_MAX {
            return Err(err("scale out of range"));
        }
        if !(0..=AMOUNT_MAX).contains(&a.total_supply) {
            return Err(err("total supply out of range"));
        }
        if by_code.insert(code, AssetId::new(index as u16)).is_some() {
            return Err(err("duplicate code"));
        }
        assets.push(Asset {
            code,
            scale: a.scale,
            total_supply: a.total_supply,
        });
    }
    Ok(assets)
}

fn products_from(
    image: &EngineImage,
    assets: &[Asset],
    by_symbol: &mut BTreeMap<Symbol, ProductId>,
) -> Result<Vec<Product>, ImageError> {
    if image.products.len() > image.limits.products_max as usize {
        return Err(ImageError::State("more products than products_max"));
    }
    let mut products = Vec::with_capacity(image.products.len());
    for (index, p) in image.products.iter().enumerate() {
        let err = |reason| ImageError::Product { index, reason };
        let symbol: Symbol = p.symbol.to_short().ok_or(err("invalid symbol"))?;
        let scale_of = |asset: u16| {
            assets
                .get(asset as usize)
                .map(|a| (AssetId::new(asset), a.scale))
                .ok_or(err("asset out of range"))
        };
        if p.fee_tiers.len() > FEE_TIERS_MAX {
            return Err(err("too many fee tiers"));
        }
        let tiers: Vec<FeeTier> = p
            .fee_tiers
            .iter()
            .map(|t| FeeTier {
                volume_min: t.volume_min,
                maker_ppm: t.maker_ppm,
                taker_ppm: t.taker_ppm,
            })
            .collect();
        let fees = FeeSchedule::from_tiers_unchecked(&tiers).ok_or(err("too many fee tiers"))?;
        let mut product = Product::new(
            symbol,
            p.name.clone(),
            scale_of(p.base)?,
            scale_of(p.quote)?,
            (p.price_scale, p.tick_size),
            (p.qty_scale, p.lot_size),
            fees,
        )
        .map_err(|_| err("invalid listing or fee schedule"))?;
        product.status = product_status_from(p.status).ok_or(err("unknown status"))?;
        if by_symbol
            .insert(symbol, ProductId::new(index as u32))
            .is_some()
        {
            return Err(err("duplicate symbol"));
        }
        products.push(product);
    }
    Ok(products)
}

/// The accounts, their strings moved rather than copied (a million of them is most of an
/// image's allocations).
fn accounts_from(
    images: Vec<AccountImage>,
    l: &LimitsImage,
    n_assets: usize,
    n_products: usize,
) -> Result<(Vec<Account>, Vec<u32>), ImageError> {
    if images.is_empty() || images.len() > l.accounts_max as usize {
        return Err(ImageError::State("account count out of range"));
    }
    let mut accounts = Vec::with_capacity(images.len());
    let mut n_funds_requests = Vec::with_capacity(images.len());
    for (index, a) in images.into_iter().enumerate() {
        let err = |reason| ImageError::Account { index, reason };
        let currency_preference = a
            .currency_preference
            .to_short()
            .ok_or(err("invalid currency preference"))?;
        let status = profile_status_from(a.status).ok_or(err("unknown status"))?;
        if a.bookmarks.len() > l.bookmarks_per_account_max as usize
            || !a.bookmarks.windows(2).all(|w| w[0] < w[1])
            || a.bookmarks.iter().any(|p| *p as usize >= n_products)
        {
            return Err(err(
                "bookmarks not sorted, unique, in range and within limit",
            ));
        }
        if !a.balances.windows(2).all(|w| w[0].asset < w[1].asset)
            || a.balances.iter().any(|b| {
                b.asset as usize >= n_assets
                    || !(0..=AMOUNT_MAX).contains(&b.available)
                    || !(0..=AMOUNT_MAX).contains(&b.held)
            })
        {
            return Err(err("balances not sorted, unique and in range"));
        }
        let mut volumes = Vec::with_capacity(a.volumes.len());
        for (k, w) in a.volumes.iter().enumerate() {
            volumes.push(volume_window_from(w, n_assets).ok_or(err("invalid volume window"))?);
            if a.volumes[..k].iter().any(|v| v.asset == w.asset) {
                return Err(err("two volume windows for one asset"));
            }
        }
        if a.n_open_orders > l.open_orders_per_account_max
            || a.n_funds_requests > l.funds_requests_per_account_max
        {
            return Err(err("counter beyond its limit"));
        }
        accounts.push(Account {
            status,
            n_open_orders: a.n_open_orders,
            balances: a
                .balances
                .iter()
                .map(|b| {
                    (
                        AssetId::new(b.asset),
                        Balance {
                            available: b.available,
                            held: b.held,
                        },
                    )
                })
                .collect(),
            name: a.name,
            proof: a.proof,
            currency_preference,
            token_hash: TokenHash(a.token_hash),
            created_at_ms: a.created_at_ms,
            bookmarks: a.bookmarks.iter().map(|p| ProductId::new(*p)).collect(),
            volumes,
        });
        n_funds_requests.push(a.n_funds_requests);
    }
    Ok((accounts, n_funds_requests))
}

fn volume_window_from(w: &VolumeWindowImage, n_assets: usize) -> Option<VolumeWindow> {
    let bucket_max = AMOUNT_MAX / VOLUME_WINDOW_DAYS as i64;
    let day_range = i64::MIN.div_euclid(MS_PER_DAY)..=i64::MAX.div_euclid(MS_PER_DAY);
    let sum: i128 = w.buckets.iter().map(|b| *b as i128).sum();
    let ok = (w.asset as usize) < n_assets
        && day_range.contains(&w.day)
        && w.buckets.iter().all(|b| (0..=bucket_max).contains(b))
        && sum == w.total as i128;
    ok.then(|| VolumeWindow {
        asset: AssetId::new(w.asset),
        day: w.day,
        buckets: w.buckets,
        total: w.total,
    })
}

fn funds_requests_from(
    image: &EngineImage,
    n_funds_requests: &[u32],
) -> Result<BTreeMap<(AccountId, RequestId), FundsRecord>, ImageError> {
    let mut counts = vec![0u32; n_funds_requests.len()];
    let mut records = Vec::with_capacity(image.funds_requests.len());
    let mut last: Option<(AccountId, RequestId)> = None;
    for (index, r) in image.funds_requests.iter().enumerate() {
        let err = |reason| ImageError::FundsRequest { index, reason };
        let request_id: RequestId = r.request_id.to_short().ok_or(err("invalid id"))?;
        let key = (AccountId::new(r.account), request_id);
        if last.is_some_and(|last| last >= key) {
            return Err(err("not sorted by (account, request id) or duplicate"));
        }
        last = Some(key);
        let count = counts
            .get_mut(r.account as usize)
            .ok_or(err("account out of range"))?;
        *count += 1;
        if (r.asset as usize) >= image.assets.len() {
            return Err(err("asset out of range"));
        }
        if !(1..=AMOUNT_MAX).contains(&r.amount) {
            return Err(err("amount out of range"));
        }
        let record = FundsRecord {
            is_deposit: r.is_deposit,
            asset: AssetId::new(r.asset),
            amount: r.amount,
            command_seq: r.command_seq,
        };
        records.push((key, record));
    }
    if let Some(index) = (0..counts.len()).find(|i| counts[*i] != n_funds_requests[*i]) {
        return Err(ImageError::Account {
            index,
            reason: "n_funds_requests differs from its remembered requests",
        });
    }
    // Sorted and unique (checked above): the map is built in bulk.
    Ok(records.into_iter().collect())
}
