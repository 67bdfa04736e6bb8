//! Version 1 payloads: the image before the order-key window (format version 2 added
//! `EngineImage::order_keys` and `LimitsImage::order_keys_max`).
//!
//! These types have exactly the fields of version 1's `EngineImage` and `LimitsImage`, in the
//! same order, and reuse every nested type (unchanged since), so their archived layout is
//! version 1's. A version 1 snapshot loads as an engine whose window is empty, with the default
//! `order_keys_max` ([`bourse_engine::ORDER_KEYS_MAX`]).

use bourse_engine::{
    AccountImage, AssetImage, BookImage, EngineImage, FundsRequestImage, LimitsImage,
    ORDER_KEYS_MAX, ProductImage,
};

/// Version 1's `EngineImage`.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EngineImageV1 {
    pub limits: LimitsImageV1,
    pub assets: Vec<AssetImage>,
    pub products: Vec<ProductImage>,
    pub accounts: Vec<AccountImage>,
    pub books: Vec<BookImage>,
    pub funds_requests: Vec<FundsRequestImage>,
    pub next_order_id: u64,
    pub event_seq: u64,
    pub clock_ms: i64,
}

/// Version 1's `LimitsImage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LimitsImageV1 {
    pub accounts_max: u32,
    pub assets_max: u16,
    pub products_max: u32,
    pub open_orders_per_account_max: u32,
    pub orders_per_book_max: u32,
    pub orders_total_max: u32,
    pub bookmarks_per_account_max: u32,
    pub funds_requests_per_account_max: u32,
}

impl From<EngineImageV1> for EngineImage {
    fn from(v1: EngineImageV1) -> EngineImage {
        let l = v1.limits;
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
                order_keys_max: ORDER_KEYS_MAX,
            },
            assets: v1.assets,
            products: v1.products,
            accounts: v1.accounts,
            books: v1.books,
            funds_requests: v1.funds_requests,
            order_keys: Vec::new(),
            next_order_id: v1.next_order_id,
            event_seq: v1.event_seq,
            clock_ms: v1.clock_ms,
        }
    }
}
