//! Named maxima. Hitting one is a typed rejection ([`crate::Reject::LimitReached`]), except
//! `order_keys_max`, a memory whose oldest entries are forgotten.

/// Every collection the engine grows has a maximum here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Accounts, the fee account included.
    pub accounts_max: u32,
    pub assets_max: u16,
    pub products_max: u32,
    pub open_orders_per_account_max: u32,
    pub orders_per_book_max: u32,
    /// Resting orders over all books (the order store's slots).
    pub orders_total_max: u32,
    pub bookmarks_per_account_max: u32,
    /// Deposit and withdrawal request ids remembered per account (for idempotency).
    pub funds_requests_per_account_max: u32,
    /// Client order ids remembered at once for idempotency (the oldest forgotten first; see
    /// [`ORDER_KEY_WINDOW_MS`] for how long each is remembered).
    pub order_keys_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            accounts_max: 10_000_000,
            assets_max: 4_096,
            products_max: 2_000_000,
            open_orders_per_account_max: 1_000,
            orders_per_book_max: 1_000_000,
            orders_total_max: 50_000_000,
            bookmarks_per_account_max: 500,
            funds_requests_per_account_max: 100_000,
            order_keys_max: ORDER_KEYS_MAX,
        }
    }
}

/// How long a client order id is remembered, in milliseconds of engine time (10 minutes): a key
/// placed at `t` is forgotten once the engine's clock is past `t + ORDER_KEY_WINDOW_MS`.
pub const ORDER_KEY_WINDOW_MS: i64 = 10 * 60 * 1_000;
/// The default of [`Limits::order_keys_max`]: the most client order ids remembered at once.
pub const ORDER_KEYS_MAX: u32 = 1_000_000;

/// The most fee tiers a schedule may have.
pub const FEE_TIERS_MAX: usize = 8;
/// The highest fee rate in parts per million (10%).
pub const FEE_PPM_MAX: u32 = 100_000;
/// The longest account name in bytes.
pub const NAME_BYTES_MAX: usize = 128;
/// The longest identity-proof reference in bytes.
pub const PROOF_BYTES_MAX: usize = 256;
/// The largest scale (decimal places) of an asset, a price or a quantity.
pub const SCALE_MAX: u8 = 18;
