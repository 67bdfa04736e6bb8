//! Domain values: ids, integer money, and short inline strings.
//!
//! Every value is a newtype with no `Deref` to its raw integer. `Price`, `Qty` and `Amount`
//! can hold any raw integer (a command is data and may be malformed); the engine checks their
//! range when it applies a command, and `new_checked` gives the same check to callers.

use std::fmt;

use crate::reject::Reject;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $raw:ty) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($raw);

        impl $name {
            pub const fn new(raw: $raw) -> Self {
                Self(raw)
            }
            pub const fn get(self) -> $raw {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An account; assigned densely by the engine, 0 is the fee account.
    AccountId,
    u32
);
id_type!(
    /// An asset (currency or instrument); assigned densely by the engine.
    AssetId,
    u16
);
id_type!(
    /// A product (ticker); assigned densely by the engine.
    ProductId,
    u32
);
id_type!(
    /// An order; assigned by the engine, increasing from 1.
    OrderId,
    u64
);

impl AccountId {
    /// The account that collects every fee. It exists from `Engine::new` and cannot trade.
    pub const FEES: AccountId = AccountId(0);
}

/// The largest price in ticks the engine accepts.
pub const PRICE_TICKS_MAX: i64 = 1_000_000_000_000;
/// The largest quantity in lots the engine accepts.
pub const QTY_LOTS_MAX: i64 = 1_000_000_000_000;
/// The largest amount in minor units: also the cap on an asset's total supply, so that no
/// balance and no notional that passed the checks can overflow an `i64`.
pub const AMOUNT_MAX: i64 = 1 << 62;

/// A price in ticks of the product's tick size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(i64);

impl Price {
    /// A price as it came in; it may be out of range, and the engine rejects it if so.
    pub const fn from_ticks(ticks: i64) -> Self {
        Self(ticks)
    }
    pub fn new_checked(ticks: i64) -> Result<Self, Reject> {
        Self(ticks).checked()
    }
    pub(crate) fn checked(self) -> Result<Self, Reject> {
        if self.0 > 0 && self.0 <= PRICE_TICKS_MAX {
            Ok(self)
        } else {
            Err(Reject::InvalidPrice)
        }
    }
    pub const fn ticks(self) -> i64 {
        self.0
    }
}

/// A quantity in lots of the product's lot size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qty(i64);

impl Qty {
    pub const ZERO: Qty = Qty(0);
    /// A quantity as it came in; it may be out of range, and the engine rejects it if so.
    pub const fn from_lots(lots: i64) -> Self {
        Self(lots)
    }
    pub fn new_checked(lots: i64) -> Result<Self, Reject> {
        Self(lots).checked()
    }
    pub(crate) fn checked(self) -> Result<Self, Reject> {
        if self.0 > 0 && self.0 <= QTY_LOTS_MAX {
            Ok(self)
        } else {
            Err(Reject::InvalidQuantity)
        }
    }
    pub const fn lots(self) -> i64 {
        self.0
    }
}

/// An amount in minor units of an asset (10^-scale of one unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    pub const ZERO: Amount = Amount(0);
    /// An amount as it came in; it may be out of range, and the engine rejects it if so.
    pub const fn from_minor(minor: i64) -> Self {
        Self(minor)
    }
    /// A positive amount no larger than [`AMOUNT_MAX`].
    pub fn new_checked(minor: i64) -> Result<Self, Reject> {
        Self(minor).checked_positive()
    }
    pub(crate) fn checked_positive(self) -> Result<Self, Reject> {
        if self.0 > 0 && self.0 <= AMOUNT_MAX {
            Ok(self)
        } else {
            Err(Reject::InvalidAmount)
        }
    }
    pub const fn minor(self) -> i64 {
        self.0
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Limit (rests at its price) or market (takes what the book and the wallet allow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderType {
    Limit,
    Market,
}

/// How long an order lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    /// Good till cancelled: what does not match rests on the book.
    Gtc,
    /// Immediate or cancel: what does not match at once is cancelled.
    Ioc,
    /// Fill or kill: the whole quantity matches at once, or the order is rejected.
    Fok,
    /// Maker only: an order that would match at once is rejected instead.
    PostOnly,
}

/// What happens when an order would match another order of the same account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SelfTradePrevention {
    /// Cancel the resting order and go on matching (the default).
    #[default]
    CancelResting,
    /// Cancel what is left of the incoming order.
    CancelIncoming,
    /// Cancel both.
    CancelBoth,
}

/// Whether an order added liquidity (maker) or took it (taker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liquidity {
    Maker,
    Taker,
}

/// The state of an account's identity check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProfileStatus {
    Pending,
    Verified,
    Rejected,
}

/// Whether a product accepts new orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProductStatus {
    Trading,
    Halted,
}

/// A short string stored inline (no allocation): printable ASCII without spaces, 1..=N bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShortStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> ShortStr<N> {
    /// `None` if `s` is empty, longer than `N` bytes, or has a byte outside `!`..=`~`.
    pub fn new(s: &str) -> Option<Self> {
        let raw = s.as_bytes();
        if raw.is_empty() || raw.len() > N || !raw.iter().all(|b| (b'!'..=b'~').contains(b)) {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Self {
            len: raw.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl<const N: usize> fmt::Debug for ShortStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl<const N: usize> fmt::Display for ShortStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A product's ticker, e.g. `AAPL` or `BTC-USD`.
pub type Symbol = ShortStr<16>;
/// An asset's code, e.g. `USD`.
pub type AssetCode = ShortStr<12>;
/// A client's own id for an order, unique among the account's open orders.
pub type ClientOrderId = ShortStr<36>;
/// A client's id for a deposit or withdrawal, unique per account forever.
pub type RequestId = ShortStr<36>;

/// How a deposit was paid or where a withdrawal goes: only what may be kept. A card is
/// remembered by its last four digits; its number and CVV never reach the engine. Paying
/// and paying out are out of scope, so the engine only carries the method into its events
/// (and so into the funds history); it is not part of a request's idempotency check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FundsMethod {
    /// Not stated: the demo's and the liquidity provider's own funding, and every request
    /// journaled before methods were recorded.
    #[default]
    Unspecified,
    Card(CardLast4),
    Upi,
    Bank,
}

impl FundsMethod {
    /// The method's name in the API: `card`, `upi`, `bank`, or `unspecified`.
    pub fn name(self) -> &'static str {
        match self {
            FundsMethod::Unspecified => "unspecified",
            FundsMethod::Card(_) => "card",
            FundsMethod::Upi => "upi",
            FundsMethod::Bank => "bank",
        }
    }
}

/// The last four digits of a card number: four ASCII digits, nothing else.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CardLast4([u8; 4]);

impl CardLast4 {
    /// `None` unless `digits` is exactly four ASCII digits.
    pub fn new(digits: &[u8]) -> Option<Self> {
        let digits: [u8; 4] = digits.try_into().ok()?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then_some(CardLast4(digits))
    }

    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII digits.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    pub fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }
}

impl fmt::Debug for CardLast4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// The SHA-256 (or other 32-byte) digest of an API token; the token itself never reaches the
/// engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);
