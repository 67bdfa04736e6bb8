//! The liquidity provider: an account of the server's own that keeps quotes around each
//! tradable product's market price, so that a new user's market order fills (the embedded
//! demo has no other sellers).
//!
//! - **The account** is named [`NAME`] and has the all-zero token hash, which no token hashes
//!   to: nobody can sign in as it, and no user account can be taken for it. It is created
//!   (verified) the first time, and funded by deposits whenever a balance runs low.
//! - **Quotes.** Every [`PERIOD`], for each product the engine trades and the market data
//!   prices, it keeps [`LEVELS`] bids and asks, level `k` at `k * 0.05%` (at least `k` ticks)
//!   below and above the newest price, [`LOT_QTY`] lots each. When the price has moved by
//!   0.1% or more since the quotes went up, or an order of the ladder filled, it places a
//!   fresh ladder and then cancels its older orders in that product (in that order, so that
//!   the book is never empty between the two).
//! - At start it cancels whatever it left resting, then quotes afresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::access::Access;
use bourse_engine::{
    AccountId, Amount, AssetCode, CommandKind, CreateAccount, EventKind, FundsMethod, FundsRequest,
    NewOrder, OrderId, OrderType, Price, ProductId, ProfileStatus, Qty, RequestId,
    SelfTradePrevention, Side, TimeInForce, TokenHash,
};
use bourse_marketdata::fixed;
use rust_decimal::Decimal;

use bourse_history::HistoryHandle;
use bourse_market_service::MarketService;
use bourse_market_service::ProductUnits;

/// The provider's account name.
pub const NAME: &str = "Bourse liquidity provider";
/// Price levels a side.
pub const LEVELS: i64 = 5;
/// Lots per level.
pub const LOT_QTY: i64 = 50;
/// How often it looks at prices.
pub const PERIOD: Duration = Duration::from_millis(500);
/// Requote when the price moved this much, in basis points.
const REQUOTE_BPS: i64 = 10;
/// Level spacing, basis points.
const STEP_BPS: i64 = 5;
/// Quote-currency top-up: whole units deposited when available falls below a tenth of it.
const QUOTE_FUNDING: i64 = 1_000_000_000;
/// Base-asset top-up, whole units.
const BASE_FUNDING: i64 = 10_000_000;

/// One product's quotes.
#[derive(Debug, Default)]
struct Ladder {
    /// The reference price (engine ticks) the ladder was placed at.
    reference: i64,
    orders: Vec<OrderId>,
}

/// The running provider.
pub struct Liquidity {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    /// Set if the quoting thread panicked.
    failure: Arc<std::sync::OnceLock<String>>,
}

impl Liquidity {
    /// Finds or creates the account, cancels its resting orders and starts quoting.
    pub fn start(
        mut access: Access,
        market: Arc<MarketService>,
        history: &HistoryHandle,
    ) -> Result<Self, String> {
        let account = ensure_account(&mut access)?;
        let resting: Vec<u64> = history.with_model(|h| {
            h.orders(account.get(), true, None, usize::MAX)
                .items
                .iter()
                .map(|o| o.id)
                .collect()
        })?;
        for order in resting {
            cancel(&mut access, account, OrderId::new(order));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let failure = Arc::new(std::sync::OnceLock::new());
        let failed = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("liquidity".into())
            .spawn(move || {
                let quoting = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&mut access, account, &market, &flag)
                }));
                if let Err(panic) = quoting {
                    let why = format!(
                        "the liquidity provider panicked: {}",
                        bourse_pipeline::panic_message(&*panic)
                    );
                    tracing::error!("{why}");
                    let _ = failed.set(why);
                }
            })
            .map_err(|e| format!("cannot start the liquidity provider: {e}"))?;
        Ok(Self {
            stop,
            thread,
            failure,
        })
    }

    /// Why the provider stopped quoting, if it panicked.
    pub fn failure(&self) -> Option<String> {
        self.failure.get().cloned()
    }

    /// Stops quoting (the quotes stay on the book until the next start cancels them).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

fn ensure_account(access: &mut Access) -> Result<AccountId, String> {
    let found = access
        .query(|engine| {
            (0..engine.n_accounts() as u32)
                .map(AccountId::new)
                .find(|&a| {
                    engine.account_name(a) == Some(NAME)
                        && engine.account_token_hash(a) == Some(TokenHash([0; 32]))
                })
        })
        .map_err(|e| format!("cannot read the accounts: {e}"))?;
    if let Some(account) = found {
        return Ok(account);
    }
    let outcome = access
        .submit(CommandKind::create_account(CreateAccount {
            name: NAME.to_string(),
            proof: "bourse:liquidity-provider".to_string(),
            currency_preference: AssetCode::new(crate::catalogue::QUOTE)
                .ok_or("the catalogue's quote is not a valid asset code")?,
            token_hash: TokenHash([0; 32]),
            initial_status: ProfileStatus::Verified,
        }))
        .map_err(|e| format!("cannot create the liquidity provider: {e}"))?;
    outcome
        .events
        .iter()
        .find_map(|e| match e.kind {
            EventKind::AccountCreated { account, .. } => Some(account),
            _ => None,
        })
        .ok_or_else(|| "the engine created no liquidity-provider account".to_string())
}

fn cancel(access: &mut Access, account: AccountId, order: OrderId) {
    // A refusal (already filled or cancelled) is what we wanted anyway.
    let _ = access.submit(CommandKind::CancelOrder { account, order });
}

/// What the provider needs of a product, read from the engine once.
struct Tradable {
    units: ProductUnits,
    market_id: u32,
}

fn run(access: &mut Access, account: AccountId, market: &MarketService, stop: &AtomicBool) {
    let mut ladders: HashMap<u32, Ladder> = HashMap::new();
    let mut products: Vec<(u32, Tradable)> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        if let Ok(found) = access.query(|engine| {
            (0..engine.n_products() as u32)
                .filter_map(|id| Some((id, ProductUnits::of(engine, ProductId::new(id))?)))
                .collect::<Vec<_>>()
        }) {
            products = found
                .into_iter()
                .filter_map(|(id, units)| {
                    let market_id = market.product_id(&units.symbol())?;
                    Some((id, Tradable { units, market_id }))
                })
                .collect();
        }
        fund(access, account, &products);
        for (id, product) in &products {
            let Some(reference) = reference_ticks(market, product) else {
                continue;
            };
            let ladder = ladders.entry(*id).or_default();
            if needs_requote(access, ladder, reference) {
                // The new ladder goes up before the old one comes down, so the book is never
                // empty in between (a market order then would find no liquidity). Where a new
                // quote crosses an old one, self-trade prevention cancels the old one.
                let old = std::mem::take(&mut ladder.orders);
                ladder.reference = reference;
                ladder.orders = place_ladder(access, account, ProductId::new(*id), reference);
                for order in old {
                    cancel(access, account, order);
                }
            }
        }
        // Pacing: the provider looks at prices twice a second.
        std::thread::sleep(PERIOD);
    }
}

/// The newest market price in engine ticks, if it is on the product's grid range.
fn reference_ticks(market: &MarketService, product: &Tradable) -> Option<i64> {
    let close = {
        let m = market.read().ok()?;
        let state = m.product(product.market_id)?;
        let newest = state.candles.open[0];
        (!newest.is_empty()).then_some(newest.close)?
    };
    let price: Decimal = fixed::to_decimal(close);
    let tick: Decimal = product.units.price(1).parse().ok()?;
    let ticks = (price / tick).round();
    i64::try_from(ticks).ok().filter(|t| *t > LEVELS * 2)
}

fn needs_requote(access: &Access, ladder: &Ladder, reference: i64) -> bool {
    if ladder.orders.len() < (2 * LEVELS) as usize {
        return true;
    }
    if (reference - ladder.reference).abs() * 10_000 >= ladder.reference * REQUOTE_BPS {
        return true;
    }
    // A filled level: one of the ladder's orders is no longer open.
    let orders = ladder.orders.clone();
    access
        .query(move |engine| orders.iter().any(|o| engine.order(*o).is_none()))
        .unwrap_or(true)
}

fn place_ladder(
    access: &mut Access,
    account: AccountId,
    product: ProductId,
    reference: i64,
) -> Vec<OrderId> {
    let mut placed = Vec::new();
    for k in 1..=LEVELS {
        let step = ((reference * STEP_BPS * k + 9_999) / 10_000).max(k);
        for (side, price) in [
            (Side::Buy, reference - step),
            (Side::Sell, reference + step),
        ] {
            if price <= 0 {
                continue;
            }
            let order = NewOrder {
                account,
                product,
                side,
                order_type: OrderType::Limit,
                price: Some(Price::from_ticks(price)),
                qty: Qty::from_lots(LOT_QTY),
                time_in_force: TimeInForce::Gtc,
                self_trade: SelfTradePrevention::CancelResting,
                client_order_id: None,
            };
            let Ok(outcome) = access.submit(CommandKind::PlaceOrder(order)) else {
                continue;
            };
            placed.extend(outcome.events.iter().find_map(|e| match e.kind {
                EventKind::OrderAccepted { order, .. } => Some(order),
                _ => None,
            }));
        }
    }
    placed
}

/// Tops up every balance the ladders draw on that ran below a tenth of its funding.
fn fund(access: &mut Access, account: AccountId, products: &[(u32, Tradable)]) {
    let mut assets: Vec<(bourse_engine::AssetId, i64)> = Vec::new();
    for (_, p) in products {
        let quote = p.units.product.quote();
        let base = p.units.product.base();
        let scale = |a: &bourse_engine::Asset| 10i64.pow(u32::from(a.scale()));
        for (asset, units, whole) in [
            (quote, &p.units.quote, QUOTE_FUNDING),
            (base, &p.units.base, BASE_FUNDING),
        ] {
            if !assets.iter().any(|(a, _)| *a == asset) {
                assets.push((asset, whole.saturating_mul(scale(units))));
            }
        }
    }
    let Ok((balances, event_seq)) = access.query({
        let assets = assets.clone();
        move |engine| {
            let balances: Vec<i64> = assets
                .iter()
                .map(|(a, _)| engine.balance(account, *a).available)
                .collect();
            (balances, engine.event_seq())
        }
    }) else {
        return;
    };
    for ((asset, funding), available) in assets.into_iter().zip(balances) {
        if available >= funding / 10 {
            continue;
        }
        let (Ok(amount), Some(request_id)) = (
            Amount::new_checked(funding),
            RequestId::new(&format!("lp-{}-{event_seq}", asset.get())),
        ) else {
            continue;
        };
        let _ = access.submit(CommandKind::Deposit(FundsRequest {
            account,
            asset,
            amount,
            request_id,
            method: FundsMethod::Unspecified,
        }));
    }
}
