//! Why a command was refused. A rejected command changes nothing.

use thiserror::Error;

/// Which named maximum of [`crate::Limits`] a command hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Accounts,
    Assets,
    Products,
    OpenOrdersPerAccount,
    OrdersPerBook,
    OrdersTotal,
    Bookmarks,
    FundsRequestsPerAccount,
}

/// A typed rejection: the command was not applied and the state is exactly as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum Reject {
    #[error("unknown account")]
    UnknownAccount,
    #[error("unknown asset")]
    UnknownAsset,
    #[error("unknown product")]
    UnknownProduct,
    #[error("unknown order (or not an open order of this account)")]
    UnknownOrder,
    #[error("an asset with this code exists already")]
    DuplicateAsset,
    #[error("a product with this symbol exists already")]
    DuplicateSymbol,
    #[error(
        "the client order id is an open order's, or was used within the window for another body"
    )]
    DuplicateClientOrderId,
    #[error("this request id was used before with a different body")]
    RequestIdMismatch,
    #[error("the product is already bookmarked")]
    AlreadyBookmarked,
    #[error("the product is not bookmarked")]
    NotBookmarked,
    #[error("price must be a positive number of ticks within range")]
    InvalidPrice,
    #[error("quantity must be a positive number of lots within range")]
    InvalidQuantity,
    #[error("amount must be positive and within range")]
    InvalidAmount,
    #[error("a market order takes no price; a limit order needs one")]
    InvalidPriceForOrderType,
    #[error("this time in force is not allowed for this order type")]
    InvalidTimeInForce,
    #[error("name must be 1 to 128 bytes of text")]
    InvalidName,
    #[error("proof must be 1 to 256 bytes of text")]
    InvalidProof,
    #[error("invalid product specification (scales, tick or lot size)")]
    InvalidProductSpec,
    #[error("invalid asset specification (scale)")]
    InvalidAssetSpec,
    #[error("invalid fee schedule (tiers or rates)")]
    InvalidFeeSchedule,
    #[error("the amount would overflow")]
    Overflow,
    #[error("insufficient available funds")]
    InsufficientFunds,
    #[error("the product is halted")]
    ProductHalted,
    #[error("the product is already in that status")]
    StatusUnchanged,
    #[error("the account's profile is not verified")]
    AccountNotVerified,
    #[error("the account's profile was rejected")]
    AccountRejected,
    #[error("the fee account cannot trade")]
    FeeAccountCannotTrade,
    #[error("a post-only order would take liquidity")]
    WouldTakeLiquidity,
    #[error("a fill-or-kill order cannot be filled in full")]
    FillOrKillUnfillable,
    #[error("the amendment changes nothing")]
    NothingToAmend,
    #[error("limit reached: {0:?}")]
    LimitReached(LimitKind),
}
