//! The Bourse engine: a deterministic, single-threaded state machine for an exchange.
//!
//! [`Engine::apply`] takes a [`Command`] (with the sequence number and timestamp assigned
//! upstream) and either applies it, pushing [`Event`]s into a caller-provided [`EventSink`], or
//! rejects it with a typed [`Reject`] and changes nothing. It does no I/O, reads no clock, uses
//! no randomness and starts no threads; the same commands always give the same state
//! ([`Engine::state_hash`]) and the same events.
//!
//! Orders are idempotent by their client order id within a window ([`ORDER_KEY_WINDOW_MS`] of
//! engine time, at most [`Limits::order_keys_max`] keys): a placement repeating one in the window
//! with the same body changes nothing and emits [`EventKind::OrderDuplicate`] naming the first
//! order; with another body it is refused ([`Reject::DuplicateClientOrderId`]).
//!
//! Money is integers inside: [`Price`] in ticks, [`Qty`] in lots, [`Amount`] in an asset's
//! minor units, notional computed in `i128` and checked. [`Product`] converts decimals at the
//! edge.
//!
//! ```
//! use bourse_engine::*;
//!
//! let mut engine = Engine::new(Limits::default());
//! let mut events: Vec<Event> = Vec::new();
//! let mut seq = 0;
//! let mut run = |engine: &mut Engine, kind: CommandKind, events: &mut Vec<Event>| {
//!     seq += 1;
//!     engine.apply(&Command { seq, timestamp_ms: 1_700_000_000_000, kind }, events)
//! };
//! run(&mut engine, CommandKind::AddAsset { code: AssetCode::new("USD").unwrap(), scale: 2 }, &mut events).unwrap();
//! run(&mut engine, CommandKind::AddAsset { code: AssetCode::new("AAPL").unwrap(), scale: 0 }, &mut events).unwrap();
//! let (usd, aapl) = (AssetId::new(0), AssetId::new(1));
//! run(&mut engine, CommandKind::add_product(AddProduct {
//!     symbol: Symbol::new("AAPL").unwrap(), name: "Apple".into(), base: aapl, quote: usd,
//!     price_scale: 2, tick_size: 1, qty_scale: 0, lot_size: 1,
//!     fees: FeeSchedule::flat(1_000, 2_000).unwrap(),
//! }), &mut events).unwrap();
//! run(&mut engine, CommandKind::create_account(CreateAccount {
//!     name: "Ada".into(), proof: "passport:123".into(), currency_preference: AssetCode::new("USD").unwrap(),
//!     token_hash: TokenHash([7; 32]), initial_status: ProfileStatus::Verified,
//! }), &mut events).unwrap();
//! let ada = AccountId::new(1);
//! run(&mut engine, CommandKind::Deposit(FundsRequest {
//!     account: ada, asset: usd, amount: Amount::from_minor(100_000), request_id: RequestId::new("d-1").unwrap(),
//!     method: FundsMethod::Upi,
//! }), &mut events).unwrap();
//! // A limit buy of 2 shares at 189.25 holds 2 * (189.25 + 0.38 highest fee, rounded up).
//! run(&mut engine, CommandKind::PlaceOrder(NewOrder {
//!     account: ada, product: ProductId::new(0), side: Side::Buy, order_type: OrderType::Limit,
//!     price: Some(Price::from_ticks(18_925)), qty: Qty::from_lots(2), time_in_force: TimeInForce::Gtc,
//!     self_trade: SelfTradePrevention::default(), client_order_id: None,
//! }), &mut events).unwrap();
//! assert_eq!(engine.balance(ada, usd), Balance { available: 100_000 - 37_926, held: 37_926 });
//! ```

mod account;
mod book;
pub mod codec;
mod command;
mod engine;
mod event;
mod fees;
mod hash;
mod image;
mod limits;
mod order_keys;
mod product;
mod reject;
mod types;

pub use account::Balance;
pub use command::{
    AddProduct, AmendOrder, Command, CommandKind, CreateAccount, FundsRequest, NewOrder,
};
pub use engine::{AccountProfile, Engine, FeeQuote, LevelView, OrderView};
pub use event::{CancelReason, CountingSink, Event, EventKind, EventSink};
pub use fees::{FeeSchedule, FeeTier, VOLUME_WINDOW_DAYS, fee_for};
pub use hash::StateHash;
pub use image::{
    AccountImage, ArchivedEngineImage, AssetImage, BalanceImage, BookImage, EngineImage,
    FeeTierImage, FundsRequestImage, IMAGE_COUNTER_MAX, ImageError, LimitsImage, OrderImage,
    OrderKeyImage, ProductImage, ShortImage, VolumeWindowImage,
};
pub use limits::{
    FEE_PPM_MAX, FEE_TIERS_MAX, Limits, NAME_BYTES_MAX, ORDER_KEY_WINDOW_MS, ORDER_KEYS_MAX,
    PROOF_BYTES_MAX, SCALE_MAX,
};
pub use product::{Asset, Product};
pub use reject::{LimitKind, Reject};
pub use types::{
    AMOUNT_MAX, AccountId, Amount, AssetCode, AssetId, CardLast4, ClientOrderId, FundsMethod,
    Liquidity, OrderId, OrderType, PRICE_TICKS_MAX, Price, ProductId, ProductStatus, ProfileStatus,
    QTY_LOTS_MAX, Qty, RequestId, SelfTradePrevention, ShortStr, Side, Symbol, TimeInForce,
    TokenHash,
};
