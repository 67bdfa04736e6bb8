//! Events: what the engine did. Every event carries a global sequence number, increasing by
//! one per event, and the sequence number of the command that caused it.

use crate::types::{
    AccountId, Amount, AssetCode, AssetId, ClientOrderId, FundsMethod, OrderId, OrderType, Price,
    ProductId, ProductStatus, ProfileStatus, Qty, RequestId, Side, Symbol, TimeInForce,
};

/// Where the engine puts its events; the caller provides it so the hot path allocates nothing.
pub trait EventSink {
    fn push(&mut self, event: Event);
}

impl EventSink for Vec<Event> {
    fn push(&mut self, event: Event) {
        Vec::push(self, event);
    }
}

/// A sink that only counts (benchmarks).
#[derive(Debug, Default)]
pub struct CountingSink {
    pub n_events: u64,
}

impl EventSink for CountingSink {
    fn push(&mut self, _event: Event) {
        self.n_events += 1;
    }
}

/// One output event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    /// Global output sequence: 1, 2, 3, ... over the engine's life.
    pub seq: u64,
    pub command_seq: u64,
    pub timestamp_ms: i64,
    pub kind: EventKind,
}

/// Why an order left the book without filling in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The owner cancelled it.
    Requested,
    /// Self-trade prevention.
    SelfTrade,
    /// An IOC or market order's unmatched rest.
    Expired,
    /// A market buy ran out of available funds before its quantity.
    InsufficientFunds,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventKind {
    AccountCreated {
        account: AccountId,
        status: ProfileStatus,
    },
    ProfileStatusChanged {
        account: AccountId,
        status: ProfileStatus,
    },
    CurrencyPreferenceChanged {
        account: AccountId,
        currency: AssetCode,
    },
    BookmarkAdded {
        account: AccountId,
        product: ProductId,
    },
    BookmarkRemoved {
        account: AccountId,
        product: ProductId,
    },
    AssetAdded {
        asset: AssetId,
        code: AssetCode,
        scale: u8,
    },
    ProductAdded {
        product: ProductId,
        symbol: Symbol,
    },
    ProductStatusChanged {
        product: ProductId,
        status: ProductStatus,
    },
    /// A deposit was credited. `duplicate` is set when this repeats an earlier request; then
    /// nothing changed and `original_command_seq` names the command that did the credit.
    Deposited {
        account: AccountId,
        asset: AssetId,
        amount: Amount,
        request_id: RequestId,
        /// The method of this request (of a repeat, the repeat's own).
        method: FundsMethod,
        duplicate: bool,
        original_command_seq: u64,
    },
    /// A withdrawal was debited (same duplicate rule as `Deposited`).
    Withdrawn {
        account: AccountId,
        asset: AssetId,
        amount: Amount,
        request_id: RequestId,
        method: FundsMethod,
        duplicate: bool,
        original_command_seq: u64,
    },
    OrderAccepted {
        order: OrderId,
        account: AccountId,
        product: ProductId,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        /// The limit price; `None` for market orders.
        price: Option<Price>,
        qty: Qty,
        client_order_id: Option<ClientOrderId>,
    },
    /// A placement repeated an earlier one (same account, client order id and body) within the
    /// order-key window ([`crate::ORDER_KEY_WINDOW_MS`]): nothing changed. `order` is the first
    /// placement's order and `original_command_seq` the command that placed it.
    OrderDuplicate {
        account: AccountId,
        order: OrderId,
        client_order_id: ClientOrderId,
        original_command_seq: u64,
    },
    /// A trade. Both fees are in the product's quote asset and go to the fee account.
    Fill {
        product: ProductId,
        maker_order: OrderId,
        taker_order: OrderId,
        maker_account: AccountId,
        taker_account: AccountId,
        taker_side: Side,
        price: Price,
        qty: Qty,
        /// The quote amount exchanged before fees.
        notional: Amount,
        maker_fee: Amount,
        taker_fee: Amount,
        /// Open quantity left on each order after this fill (0: the order is done).
        maker_remaining: Qty,
        taker_remaining: Qty,
    },
    /// An order left the book (or never reached it) with `remaining` unfilled.
    OrderCancelled {
        order: OrderId,
        account: AccountId,
        product: ProductId,
        remaining: Qty,
        reason: CancelReason,
    },
    /// An order now rests at `price` with `remaining` open; `priority_kept` tells whether it kept
    /// its place in the queue. Emitted for a new order that rests and for every amendment.
    OrderRested {
        order: OrderId,
        account: AccountId,
        product: ProductId,
        side: Side,
        price: Price,
        remaining: Qty,
        priority_kept: bool,
    },
}
