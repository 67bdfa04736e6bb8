//! Commands: what the engine is asked to do. Each carries the sequence number and the
//! timestamp assigned where it entered the pipeline; the engine never reads a clock.

use crate::fees::FeeSchedule;
use crate::types::{
    AccountId, Amount, AssetCode, AssetId, ClientOrderId, FundsMethod, OrderId, OrderType, Price,
    ProductId, ProductStatus, ProfileStatus, Qty, RequestId, SelfTradePrevention, Side, Symbol,
    TimeInForce, TokenHash,
};

/// One command with its place in the global order.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// Assigned upstream, strictly increasing; copied into every event the command causes.
    pub seq: u64,
    /// Unix milliseconds, assigned upstream; the engine's only notion of time.
    pub timestamp_ms: i64,
    pub kind: CommandKind,
}

/// What a command asks for.
///
/// The rare commands with large bodies are boxed so that the frequent ones (orders, cancels,
/// amendments) stay small to copy: a `CommandKind` is at most 96 bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandKind {
    CreateAccount(Box<CreateAccount>),
    SetProfileStatus {
        account: AccountId,
        status: ProfileStatus,
    },
    /// The currency the account's values are shown in. The gateway checks that it is a
    /// listed currency (the market data's rates are not the engine's); the engine keeps it.
    SetCurrencyPreference {
        account: AccountId,
        currency: AssetCode,
    },
    AddBookmark {
        account: AccountId,
        product: ProductId,
    },
    RemoveBookmark {
        account: AccountId,
        product: ProductId,
    },
    AddAsset {
        code: AssetCode,
        /// Decimal places of the minor unit (2 for cents).
        scale: u8,
    },
    AddProduct(Box<AddProduct>),
    SetProductStatus {
        product: ProductId,
        status: ProductStatus,
    },
    Deposit(FundsRequest),
    Withdraw(FundsRequest),
    PlaceOrder(NewOrder),
    CancelOrder {
        account: AccountId,
        order: OrderId,
    },
    AmendOrder(AmendOrder),
    /// A marker the pipeline journals where it cut a snapshot: the snapshot holds the state
    /// after every command before this one. The engine changes nothing and emits nothing.
    Snapshot,
}

impl CommandKind {
    pub fn create_account(create: CreateAccount) -> CommandKind {
        CommandKind::CreateAccount(Box::new(create))
    }

    pub fn add_product(add: AddProduct) -> CommandKind {
        CommandKind::AddProduct(Box::new(add))
    }
}

const _: () = assert!(std::mem::size_of::<CommandKind>() <= 96);

/// Open an account. The engine assigns the id.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateAccount {
    pub name: String,
    /// A reference to an identity document; verifying it is out of scope.
    pub proof: String,
    pub currency_preference: AssetCode,
    pub token_hash: TokenHash,
    /// `Pending` normally; `Verified` where a development flag verifies on creation.
    pub initial_status: ProfileStatus,
}

/// List a product. The engine assigns the id.
///
/// A price of `t` ticks means `t * tick_size * 10^-price_scale` quote units per base unit; a
/// quantity of `l` lots means `l * lot_size * 10^-qty_scale` base units.
#[derive(Clone, Debug, PartialEq)]
pub struct AddProduct {
    pub symbol: Symbol,
    pub name: String,
    pub base: AssetId,
    pub quote: AssetId,
    pub price_scale: u8,
    pub tick_size: i64,
    pub qty_scale: u8,
    pub lot_size: i64,
    pub fees: FeeSchedule,
}

/// A deposit or a withdrawal. `request_id` makes it idempotent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FundsRequest {
    pub account: AccountId,
    pub asset: AssetId,
    pub amount: Amount,
    pub request_id: RequestId,
    /// How the money came or goes; carried into the events, not checked by the engine.
    pub method: FundsMethod,
}

/// A new order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewOrder {
    pub account: AccountId,
    pub product: ProductId,
    pub side: Side,
    pub order_type: OrderType,
    /// Required for limit orders, absent for market orders.
    pub price: Option<Price>,
    pub qty: Qty,
    pub time_in_force: TimeInForce,
    pub self_trade: SelfTradePrevention,
    pub client_order_id: Option<ClientOrderId>,
}

/// Change an open order. `qty` is the new open (unfilled) quantity; `price`, when given, the
/// new limit price. Lowering the quantity at the same price keeps time priority; a new price or
/// a larger quantity moves the order to the back of its (new) level, and a new price that
/// crosses the book matches at once as a taker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AmendOrder {
    pub account: AccountId,
    pub order: OrderId,
    pub qty: Qty,
    pub price: Option<Price>,
}
