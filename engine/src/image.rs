//! Engine images: the whole state as canonical plain data, for snapshots.
//!
//! [`Engine::to_image`] walks the state in the same defined order as the state hash (ids
//! ascending; books per product, bids then asks, best price first, then time) and copies it
//! into vectors of plain structs with raw integer fields, so the image can be archived with
//! `rkyv` and checked with `bytecheck` on load. [`Engine::from_image`] validates an image in
//! full and rebuilds the engine, pushing each side's orders back in priority order; it never
//! panics, whatever the image holds, and returns an [`ImageError`] instead.
//!
//! The order-key window (`order_keys.rs`) is listed in insertion order, keys past the window
//! that are not yet forgotten included: the image is the state, and the state hash covers them.
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
use crate::order_keys::{OrderKey, OrderKeys};
use crate::product::{Asset, Product};
use crate::types::{
    AMOUNT_MAX, AccountId, AssetCode, AssetId, ClientOrderId, OrderId, OrderType, Price, ProductId,
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
    /// The order-key window in insertion order (so `at_ms` ascending), no duplicates.
    pub order_keys: Vec<OrderKeyImage>,
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
    pub order_keys_max: u32,
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

/// One remembered keyed order placement (`order_keys.rs`).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderKeyImage {
    pub account: u32,
    pub client_order_id: ShortImage<36>,
    pub order: u64,
    pub command_seq: u64,
    pub at_ms: i64,
    pub product: u32,
    /// 0 buy, 1 sell.
    pub side: u8,
    /// 0 limit, 1 market.
    pub order_type: u8,
    pub price: Option<i64>,
    pub qty: i64,
    /// 0 GTC, 1 IOC, 2 FOK, 3 post-only.
    pub time_in_force: u8,
    /// 0 cancel resting, 1 cancel incoming, 2 cancel both.
    pub self_trade: u8,
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
    #[error("order key {index}: {reason}")]
    OrderKey { index: usize, reason: &'static str },
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

fn time_in_force_from(code: u8) -> Option<TimeInForce> {
    Some(match code {
        0 => TimeInForce::Gtc,
        1 => TimeInForce::Ioc,
        2 => TimeInForce::Fok,
        3 => TimeInForce::PostOnly,
        _ => return None,
    })
}

fn side_code(s: Side) -> u8 {
    match s {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

fn side_from(code: u8) -> Option<Side> {
    Some(match code {
        0 => Side::Buy,
        1 => Side::Sell,
        _ => return None,
    })
}

fn order_type_code(t: OrderType) -> u8 {
    match t {
        OrderType::Limit => 0,
        OrderType::Market => 1,
    }
}

fn order_type_from(code: u8) -> Option<OrderType> {
    Some(match code {
        0 => OrderType::Limit,
        1 => OrderType::Market,
        _ => return None,
    })
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
                order_keys_max: l.order_keys_max,
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
            order_keys: self
                .order_keys
                .iter()
                .map(|((account, cid), k)| order_key_image(*account, cid, k))
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

fn order_key_image(account: AccountId, cid: &ClientOrderId, k: &OrderKey) -> OrderKeyImage {
    OrderKeyImage {
        account: account.get(),
        client_order_id: ShortImage::from_short(cid),
        order: k.order.get(),
        command_seq: k.command_seq,
        at_ms: k.at_ms,
        product: k.product.get(),
        side: side_code(k.side),
        order_type: order_type_code(k.order_type),
        price: k.price.map(Price::ticks),
        qty: k.qty.lots(),
        time_in_force: time_in_force_code(k.time_in_force),
        self_trade: self_trade_code(k.self_trade),
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

// ----- from_archived ------------------------------------------------------------------------

/// Images with at least this many accounts are rebuilt on two threads.
const PARALLEL_LOAD_MIN: usize = 10_000;

/// The order store, the books and the client-order-id index.
type RebuiltBooks = (
    OrderStore,
    Vec<Book>,
    BTreeMap<(AccountId, ClientOrderId), OrderId>,
);

/// Archives an image with `rkyv`, so that [`Engine::from_image`] shares the one validating
/// path of [`Engine::from_archived`].
fn archive(image: &EngineImage) -> Result<rkyv::util::AlignedVec, ImageError> {
    rkyv::to_bytes::<rkyv::rancor::Error>(image)
        .map_err(|_| ImageError::State("image cannot be archived"))
}

impl Engine {
    /// Rebuilds an engine from an image after validating it in full: ids in range, lists
    /// sorted and unique where the engine keeps them so, amounts in range, money conserved per
    /// asset, each wallet's `held` equal to what its orders hold, open-order and funds-request
    /// counts equal to what the image lists, books not crossed. Never panics.
    ///
    /// The image is archived and read back by [`Engine::from_archived`], the one validating
    /// path (snapshots load through it straight from the file's bytes).
    pub fn from_image(image: EngineImage) -> Result<Engine, ImageError> {
        let bytes = archive(&image)?;
        drop(image);
        // SAFETY: these bytes were just archived from a valid `EngineImage` by rkyv itself;
        // the archive is well-formed by construction (what `from_archived` checks is meaning).
        let archived = unsafe { rkyv::access_unchecked::<ArchivedEngineImage>(&bytes) };
        Engine::from_archived(archived)
    }

    /// [`Engine::from_image`] read straight from an archived image (as `rkyv::access` returns it
    /// after `bytecheck` validation), without building the owned [`EngineImage`] first. Every
    /// container is sized once from the image's counts. Never panics.
    pub fn from_archived(image: &ArchivedEngineImage) -> Result<Engine, ImageError> {
        let limits = limits_from(&image.limits)?;
        let mut engine = Engine::new(limits);
        engine.assets = assets_from(image, &mut engine.asset_by_code)?;
        engine.products = products_from(image, &engine.assets, &mut engine.product_by_symbol)?;
        let next_order_id = image.next_order_id.to_native();
        let event_seq = image.event_seq.to_native();
        if next_order_id == 0 || next_order_id > IMAGE_COUNTER_MAX {
            return Err(ImageError::State("next order id out of range"));
        }
        if event_seq > IMAGE_COUNTER_MAX {
            return Err(ImageError::State("event sequence out of range"));
        }
        engine.next_order_id = next_order_id;
        engine.event_seq = event_seq;
        engine.clock_ms = image.clock_ms.to_native();
        // The accounts (with the funds requests) and the books are independent halves of the
        // work, nearly all of it filling fresh memory: on two threads when a thread can be had.
        // The books read the accounts' counters from the archive; if the accounts are invalid
        // their error is reported, whatever the books found.
        let accounts_half = || -> Result<_, ImageError> {
            let (accounts, n_funds_requests) = accounts_from(
                &image.accounts,
                &image.limits,
                image.assets.len(),
                image.products.len(),
            )?;
            let funds_requests = funds_requests_from(image, &n_funds_requests)?;
            Ok((accounts, n_funds_requests, funds_requests))
        };
        let books_half = || engine.rebuild_books(&image.books, &image.accounts);
        let (accounts, books) = if image.accounts.len() >= PARALLEL_LOAD_MIN {
            std::thread::scope(
                |s| match std::thread::Builder::new().spawn_scoped(s, books_half) {
                    Ok(books) => {
                        let accounts = accounts_half();
                        let books = books
                            .join()
                            .unwrap_or(Err(ImageError::State("book rebuild panicked")));
                        (accounts, books)
                    }
                    Err(_) => (accounts_half(), books_half()),
                },
            )
        } else {
            (accounts_half(), books_half())
        };
        let (accounts, n_funds_requests, funds_requests) = accounts?;
        let (orders, books, client_order_ids) = books?;
        engine.accounts = accounts;
        engine.n_funds_requests = n_funds_requests;
        engine.funds_requests = funds_requests;
        engine.orders = orders;
        engine.books = books;
        engine.client_order_ids = client_order_ids;
        engine.check_money()?;
        engine.order_keys = order_keys_from(image, &engine)?;
        Ok(engine)
    }

    /// Pushes the orders back, side by side in priority order, and checks them against the
    /// wallets and counters (as the archive lists them: [`accounts_from`] checks those).
    fn rebuild_books(
        &self,
        books: &[ArchivedBookImage],
        accounts: &[ArchivedAccountImage],
    ) -> Result<RebuiltBooks, ImageError> {
        if books.len() != self.products.len() {
            return Err(ImageError::State("not one book per product"));
        }
        let n_orders: usize = books.iter().map(|b| b.bids.len() + b.asks.len()).sum();
        if n_orders > self.limits.orders_total_max as usize {
            return Err(ImageError::State("more orders than orders_total_max"));
        }
        let n_client_ids: usize = books
            .iter()
            .flat_map(|b| b.bids.iter().chain(b.asks.iter()))
            .filter(|o| o.client_order_id.is_some())
            .count();
        // What the orders must account for: each wallet's held amounts and open-order counts,
        // counted down as the orders arrive and checked to reach zero.
        let mut held_left = held_by_account(accounts);
        let mut open_left: Vec<u32> = accounts
            .iter()
            .map(|a| a.n_open_orders.to_native())
            .collect();
        let mut orders = OrderStore::with_capacity(n_orders, n_client_ids);
        // (account, client order id) → order, sorted and built in bulk at the end.
        let mut client_ids: Vec<((AccountId, ClientOrderId), OrderId, usize)> =
            Vec::with_capacity(n_client_ids);
        let mut new_books = Vec::with_capacity(books.len());
        for (product, image) in books.iter().enumerate() {
            let mut book = Book::default();
            let n = image.bids.len() + image.asks.len();
            if n > self.limits.orders_per_book_max as usize {
                return Err(ImageError::Order {
                    product,
                    order: 0,
                    reason: "more orders than orders_per_book_max",
                });
            }
            for (side, list) in [(Side::Buy, &image.bids), (Side::Sell, &image.asks)] {
                let hold_asset = self.hold_asset(product, side);
                let mut last_price: Option<Price> = None;
                for o in list.iter() {
                    let err = |reason| ImageError::Order {
                        product,
                        order: o.id.to_native(),
                        reason,
                    };
                    let (node, cid) = self
                        .order_node(product, side, o, accounts.len())
                        .map_err(err)?;
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
                    let account = node.account.get() as usize;
                    let left = &mut open_left[account];
                    *left = left
                        .checked_sub(1)
                        .ok_or(err("more orders than n_open_orders"))?;
                    let entry = held_left[account]
                        .iter_mut()
                        .find(|(a, _)| *a == hold_asset)
                        .ok_or(err("no balance for what the order holds"))?;
                    entry.1 -= node.held;
                    if entry.1 < 0 {
                        return Err(err("orders hold more than the wallet's held"));
                    }
                    if let Some(c) = cid {
                        client_ids.push(((node.account, c), node.id, product));
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
        check_accounted_for(&held_left, &open_left)?;
        client_ids.sort_unstable_by_key(|(key, id, _)| (*key, *id));
        if let Some(w) = client_ids.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ImageError::Order {
                product: w[1].2,
                order: w[1].1.get(),
                reason: "duplicate client order id",
            });
        }
        // Sorted and unique: the map is built in bulk.
        let client_ids = client_ids
            .into_iter()
            .map(|(key, id, _)| (key, id))
            .collect();
        Ok((orders, new_books, client_ids))
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
        o: &ArchivedOrderImage,
        n_accounts: usize,
    ) -> Result<(OrderNode, Option<ClientOrderId>), &'static str> {
        let p = &self.products[product];
        let id = o.id.to_native();
        let account = o.account.to_native();
        let held = o.held.to_native();
        if id == 0 || id >= self.next_order_id {
            return Err("order id not below next_order_id");
        }
        if account == AccountId::FEES.get() || account as usize >= n_accounts {
            return Err("account out of range");
        }
        let price = Price::new_checked(o.price.to_native()).map_err(|_| "price out of range")?;
        let qty =
            Qty::new_checked(o.remaining.to_native()).map_err(|_| "remaining out of range")?;
        let time_in_force =
            resting_time_in_force_from(o.time_in_force).ok_or("time in force that cannot rest")?;
        let self_trade = self_trade_from(o.self_trade).ok_or("unknown self-trade prevention")?;
        p.notional(price, qty).map_err(|_| "notional overflows")?;
        let hold_ok = match side {
            // Fills at better prices and lower fees leave more than the remainder needs.
            Side::Buy => p
                .buy_hold(price, qty)
                .is_ok_and(|need| need <= held && held <= AMOUNT_MAX),
            Side::Sell => p.base_amount(qty) == Ok(held),
        };
        if !hold_ok {
            return Err("held does not cover the remainder");
        }
        let cid = match o.client_order_id.as_ref() {
            Some(c) => Some(short_from(c).ok_or("invalid client order id")?),
            None => None,
        };
        let node = OrderNode {
            id: OrderId::new(id),
            account: AccountId::new(account),
            product: ProductId::new(product as u32),
            side,
            time_in_force,
            self_trade,
            price,
            remaining: qty.lots(),
            held,
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

/// `None` unless a valid [`ShortStr`] with zero padding (as [`ShortImage::to_short`]).
/// Each account's held amounts by asset, as the archive lists them.
fn held_by_account(accounts: &[ArchivedAccountImage]) -> Vec<SmallVec<[(AssetId, i64); 2]>> {
    accounts
        .iter()
        .map(|a| {
            a.balances
                .iter()
                .map(|b| (AssetId::new(b.asset.to_native()), b.held.to_native()))
                .collect()
        })
        .collect()
}

/// After every order counted down its account's held amount and open-order count, each must
/// have reached zero: the orders account for exactly what the wallets say.
fn check_accounted_for(
    held_left: &[SmallVec<[(AssetId, i64); 2]>],
    open_left: &[u32],
) -> Result<(), ImageError> {
    for (index, (held, open)) in held_left.iter().zip(open_left).enumerate() {
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
    Ok(())
}

fn short_from<const N: usize>(s: &ArchivedShortImage<N>) -> Option<ShortStr<N>> {
    let len = s.len as usize;
    if len > N || s.bytes[len..].iter().any(|b| *b != 0) {
        return None;
    }
    ShortStr::new(std::str::from_utf8(&s.bytes[..len]).ok()?)
}

fn limits_from(l: &ArchivedLimitsImage) -> Result<Limits, ImageError> {
    if l.orders_total_max.to_native() == NIL {
        return Err(ImageError::Limits(
            "orders_total_max leaves no room for NIL",
        ));
    }
    if l.accounts_max.to_native() == 0 {
        return Err(ImageError::Limits("accounts_max is 0"));
    }
    Ok(Limits {
        accounts_max: l.accounts_max.to_native(),
        assets_max: l.assets_max.to_native(),
        products_max: l.products_max.to_native(),
        open_orders_per_account_max: l.open_orders_per_account_max.to_native(),
        orders_per_book_max: l.orders_per_book_max.to_native(),
        orders_total_max: l.orders_total_max.to_native(),
        bookmarks_per_account_max: l.bookmarks_per_account_max.to_native(),
        funds_requests_per_account_max: l.funds_requests_per_account_max.to_native(),
        order_keys_max: l.order_keys_max.to_native(),
    })
}

fn assets_from(
    image: &ArchivedEngineImage,
    by_code: &mut BTreeMap<AssetCode, AssetId>,
) -> Result<Vec<Asset>, ImageError> {
    if image.assets.len() > image.limits.assets_max.to_native() as usize {
        return Err(ImageError::State("more assets than assets_max"));
    }
    let mut assets = Vec::with_capacity(image.assets.len());
    for (index, a) in image.assets.iter().enumerate() {
        let err = |reason| ImageError::Asset { index, reason };
        let code: AssetCode = short_from(&a.code).ok_or(err("invalid code"))?;
        let total_supply = a.total_supply.to_native();
        if a.scale > SCALE_MAX {
            return Err(err("scale out of range"));
        }
        if !(0..=AMOUNT_MAX).contains(&total_supply) {
            return Err(err("total supply out of range"));
        }
        if by_code.insert(code, AssetId::new(index as u16)).is_some() {
            return Err(err("duplicate code"));
        }
        assets.push(Asset {
            code,
            scale: a.scale,
            total_supply,
        });
    }
    Ok(assets)
}

fn products_from(
    image: &ArchivedEngineImage,
    assets: &[Asset],
    by_symbol: &mut BTreeMap<Symbol, ProductId>,
) -> Result<Vec<Product>, ImageError> {
    if image.products.len() > image.limits.products_max.to_native() as usize {
        return Err(ImageError::State("more products than products_max"));
    }
    let mut products = Vec::with_capacity(image.products.len());
    for (index, p) in image.products.iter().enumerate() {
        let err = |reason| ImageError::Product { index, reason };
        let symbol: Symbol = short_from(&p.symbol).ok_or(err("invalid symbol"))?;
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
                volume_min: t.volume_min.to_native(),
                maker_ppm: t.maker_ppm.to_native(),
                taker_ppm: t.taker_ppm.to_native(),
            })
            .collect();
        let fees = FeeSchedule::from_tiers_unchecked(&tiers).ok_or(err("too many fee tiers"))?;
        let mut product = Product::new(
            symbol,
            p.name.as_str().to_owned(),
            scale_of(p.base.to_native())?,
            scale_of(p.quote.to_native())?,
            (p.price_scale, p.tick_size.to_native()),
            (p.qty_scale, p.lot_size.to_native()),
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

/// The accounts, each checked, with their funds-request counts.
fn accounts_from(
    images: &[ArchivedAccountImage],
    l: &ArchivedLimitsImage,
    n_assets: usize,
    n_products: usize,
) -> Result<(Vec<Account>, Vec<u32>), ImageError> {
    if images.is_empty() || images.len() > l.accounts_max.to_native() as usize {
        return Err(ImageError::State("account count out of range"));
    }
    let bookmarks_max = l.bookmarks_per_account_max.to_native() as usize;
    let open_orders_max = l.open_orders_per_account_max.to_native();
    let funds_requests_max = l.funds_requests_per_account_max.to_native();
    let mut accounts = Vec::with_capacity(images.len());
    let mut n_funds_requests = Vec::with_capacity(images.len());
    for (index, a) in images.iter().enumerate() {
        let err = |reason| ImageError::Account { index, reason };
        let currency_preference =
            short_from(&a.currency_preference).ok_or(err("invalid currency preference"))?;
        let status = profile_status_from(a.status).ok_or(err("unknown status"))?;
        if a.bookmarks.len() > bookmarks_max
            || !a.bookmarks.windows(2).all(|w| w[0] < w[1])
            || a.bookmarks
                .iter()
                .any(|p| p.to_native() as usize >= n_products)
        {
            return Err(err(
                "bookmarks not sorted, unique, in range and within limit",
            ));
        }
        if !a.balances.windows(2).all(|w| w[0].asset < w[1].asset)
            || a.balances.iter().any(|b| {
                b.asset.to_native() as usize >= n_assets
                    || !(0..=AMOUNT_MAX).contains(&b.available.to_native())
                    || !(0..=AMOUNT_MAX).contains(&b.held.to_native())
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
        let n_open_orders = a.n_open_orders.to_native();
        let n_funds = a.n_funds_requests.to_native();
        if n_open_orders > open_orders_max || n_funds > funds_requests_max {
            return Err(err("counter beyond its limit"));
        }
        accounts.push(Account {
            status,
            n_open_orders,
            balances: a
                .balances
                .iter()
                .map(|b| {
                    (
                        AssetId::new(b.asset.to_native()),
                        Balance {
                            available: b.available.to_native(),
                            held: b.held.to_native(),
                        },
                    )
                })
                .collect(),
            name: a.name.as_str().to_owned(),
            proof: a.proof.as_str().to_owned(),
            currency_preference,
            token_hash: TokenHash(a.token_hash),
            created_at_ms: a.created_at_ms.to_native(),
            bookmarks: a
                .bookmarks
                .iter()
                .map(|p| ProductId::new(p.to_native()))
                .collect(),
            volumes,
        });
        n_funds_requests.push(n_funds);
    }
    Ok((accounts, n_funds_requests))
}

fn volume_window_from(w: &ArchivedVolumeWindowImage, n_assets: usize) -> Option<VolumeWindow> {
    let bucket_max = AMOUNT_MAX / VOLUME_WINDOW_DAYS as i64;
    let day_range = i64::MIN.div_euclid(MS_PER_DAY)..=i64::MAX.div_euclid(MS_PER_DAY);
    let buckets: [i64; VOLUME_WINDOW_DAYS] = std::array::from_fn(|i| w.buckets[i].to_native());
    let sum: i128 = buckets.iter().map(|b| *b as i128).sum();
    let (asset, day, total) = (w.asset.to_native(), w.day.to_native(), w.total.to_native());
    let ok = (asset as usize) < n_assets
        && day_range.contains(&day)
        && buckets.iter().all(|b| (0..=bucket_max).contains(b))
        && sum == total as i128;
    ok.then(|| VolumeWindow {
        asset: AssetId::new(asset),
        day,
        buckets,
        total,
    })
}

fn funds_requests_from(
    image: &ArchivedEngineImage,
    n_funds_requests: &[u32],
) -> Result<BTreeMap<(AccountId, RequestId), FundsRecord>, ImageError> {
    let mut counts = vec![0u32; n_funds_requests.len()];
    let mut records = Vec::with_capacity(image.funds_requests.len());
    let mut last: Option<(AccountId, RequestId)> = None;
    for (index, r) in image.funds_requests.iter().enumerate() {
        let err = |reason| ImageError::FundsRequest { index, reason };
        let request_id: RequestId = short_from(&r.request_id).ok_or(err("invalid id"))?;
        let account = r.account.to_native();
        let key = (AccountId::new(account), request_id);
        if last.is_some_and(|last| last >= key) {
            return Err(err("not sorted by (account, request id) or duplicate"));
        }
        last = Some(key);
        let count = counts
            .get_mut(account as usize)
            .ok_or(err("account out of range"))?;
        *count += 1;
        let asset = r.asset.to_native();
        let amount = r.amount.to_native();
        if (asset as usize) >= image.assets.len() {
            return Err(err("asset out of range"));
        }
        if !(1..=AMOUNT_MAX).contains(&amount) {
            return Err(err("amount out of range"));
        }
        let record = FundsRecord {
            is_deposit: r.is_deposit,
            asset: AssetId::new(asset),
            amount,
            command_seq: r.command_seq.to_native(),
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

/// The order-key window, checked against the engine rebuilt so far: accounts that trade,
/// products and order ids in range, times in order and not after the clock, ids unique, at most
/// `order_keys_max` keys.
fn order_keys_from(image: &ArchivedEngineImage, engine: &Engine) -> Result<OrderKeys, ImageError> {
    if image.order_keys.len() > engine.limits.order_keys_max as usize {
        return Err(ImageError::State("more order keys than order_keys_max"));
    }
    let mut keys = OrderKeys::default();
    for (index, k) in image.order_keys.iter().enumerate() {
        let err = |reason| ImageError::OrderKey { index, reason };
        let account = k.account.to_native();
        if account == AccountId::FEES.get() || account as usize >= engine.accounts.len() {
            return Err(err("account out of range"));
        }
        let cid: ClientOrderId = short_from(&k.client_order_id).ok_or(err("invalid id"))?;
        let order = k.order.to_native();
        if order == 0 || order >= engine.next_order_id {
            return Err(err("order id not below next_order_id"));
        }
        let product = k.product.to_native();
        if product as usize >= engine.products.len() {
            return Err(err("product out of range"));
        }
        let at_ms = k.at_ms.to_native();
        if at_ms > engine.clock_ms {
            return Err(err("placed after the engine clock"));
        }
        let price = match k.price.as_ref() {
            Some(p) => {
                Some(Price::new_checked(p.to_native()).map_err(|_| err("price out of range"))?)
            }
            None => None,
        };
        let key = OrderKey {
            order: OrderId::new(order),
            command_seq: k.command_seq.to_native(),
            at_ms,
            product: ProductId::new(product),
            side: side_from(k.side).ok_or(err("unknown side"))?,
            order_type: order_type_from(k.order_type).ok_or(err("unknown order type"))?,
            price,
            qty: Qty::new_checked(k.qty.to_native()).map_err(|_| err("quantity out of range"))?,
            time_in_force: time_in_force_from(k.time_in_force)
                .ok_or(err("unknown time in force"))?,
            self_trade: self_trade_from(k.self_trade)
                .ok_or(err("unknown self-trade prevention"))?,
        };
        if !keys.push_loaded((AccountId::new(account), cid), key) {
            return Err(err("not in time order, or a duplicate"));
        }
    }
    Ok(keys)
}
