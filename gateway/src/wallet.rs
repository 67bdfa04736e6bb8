//! `GET /funds`: the wallet's balances, each valued in the account's preferred currency, and
//! their total: the platform's sketch answers `{amount, currency}`.
//!
//! **Valuing.** A balance (available plus held) of an asset that is the base of a Bourse
//! product (a share: AAPL) is worth its quantity times that product's newest price in the
//! market data, in the product's quote currency; a balance of any other asset (a currency:
//! USD) is worth itself. That value is converted into the preferred currency at the newest
//! price of the listed pair (`fx.rs`: divide by `PREFQUOTE`, multiply by `QUOTEPREF`). Exact
//! decimal arithmetic; the product of quantity and price is exact, the conversion rounded half
//! to even to 8 decimals. Each row says what it used (`price`, `rate`).
//!
//! **Missing prices.** A balance with no price yet or no listed rate is not valued
//! (`value: null`, and its currency in `unvalued`); then the total, `amount`, is `null` too,
//! rather than a sum that leaves it out or counts it at 1.

use std::collections::BTreeMap;

use bourse_marketdata::{Market, fixed};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use utoipa::ToSchema;

use crate::fx::{CONVERTED_DECIMALS, RateView, pair_for};
use crate::schema::{CurrencyCode, DecimalText, SymbolText};

/// One asset of the wallet as the engine holds it, with what values it.
#[derive(Clone, Debug)]
pub struct Holding {
    /// The asset's code (`USD`, `AAPL`).
    pub currency: String,
    /// Available, at the asset's scale.
    pub available: Decimal,
    /// Held by open orders.
    pub held: Decimal,
    /// For a share: the product (symbol, quote currency) whose price values it.
    pub priced_by: Option<(String, String)>,
}

/// The holdings of `account`, in asset order, with the product that prices each share.
pub fn holdings(
    engine: &bourse_engine::Engine,
    account: bourse_engine::AccountId,
) -> (Vec<Holding>, Option<String>) {
    // Each asset that is the base of a product is priced by the first such product.
    let mut priced_by: BTreeMap<u16, (String, String)> = BTreeMap::new();
    for i in 0..engine.n_products() {
        let Some(product) = u32::try_from(i)
            .ok()
            .and_then(|i| engine.product_info(bourse_engine::ProductId::new(i)))
        else {
            continue;
        };
        let Some(quote) = engine.asset_info(product.quote()) else {
            continue;
        };
        priced_by.entry(product.base().get()).or_insert_with(|| {
            (
                product.symbol().as_str().to_owned(),
                quote.code().as_str().to_owned(),
            )
        });
    }
    let rows = engine
        .balances(account)
        .iter()
        .filter_map(|&(asset, balance)| {
            let info = engine.asset_info(asset)?;
            let decimal = |minor: i64| Decimal::new(minor, u32::from(info.scale()));
            Some(Holding {
                currency: info.code().as_str().to_owned(),
                available: decimal(balance.available),
                held: decimal(balance.held),
                priced_by: priced_by.get(&asset.get()).cloned(),
            })
        })
        .collect();
    let preference = engine
        .account_profile(account)
        .map(|p| p.currency_preference.as_str().to_owned());
    (rows, preference)
}

/// The price that valued a share.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceView {
    /// The product (`AAPL`).
    #[schema(value_type = SymbolText)]
    symbol: String,
    /// Its newest price, in `currency`.
    #[schema(value_type = DecimalText)]
    price: String,
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// That tick's exchange time, unix ms.
    time: i64,
}

/// One currency of the wallet, valued.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// What orders and withdrawals may use.
    #[schema(value_type = DecimalText)]
    available: String,
    /// Held by open orders.
    #[schema(value_type = DecimalText)]
    held: String,
    /// Available plus held, in the wallet's `currency`; `null` when no price or rate values it.
    #[schema(value_type = Option<DecimalText>)]
    value: Option<String>,
    /// For a share: the product price that valued it.
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<PriceView>,
    /// When the value was converted: the rate used.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<RateView>,
}

/// The wallet, `GET /funds`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    /// The total value of every balance in `currency`; `null` when one could not be valued
    /// (see `unvalued`).
    #[schema(value_type = Option<DecimalText>)]
    amount: Option<String>,
    /// The account's preferred currency.
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// The balances no price or rate values, by currency.
    #[schema(value_type = Vec<CurrencyCode>)]
    unvalued: Vec<String>,
    /// Per asset, in asset order.
    balances: Vec<BalanceView>,
}

/// The newest price of the market-data product `symbol`: (price, exchange time).
fn newest(market: &Market, symbol: &str) -> Option<(i64, i64)> {
    let id = market
        .catalogue()
        .id(&bourse_marketdata::tick::Symbol::new(symbol)?)?;
    let open = market.product(id)?.candles.open[0];
    (!open.is_empty()).then_some((open.close, open.last.ts))
}

/// Values `holdings` in `preference` at the market's newest prices and rates.
pub fn value(market: &Market, holdings: Vec<Holding>, preference: String) -> WalletView {
    let mut total = Some(Decimal::ZERO);
    let mut unvalued = Vec::new();
    let mut balances = Vec::with_capacity(holdings.len());
    for holding in holdings {
        let quantity = holding.available + holding.held;
        // In the currency it is priced in.
        let priced = match &holding.priced_by {
            None => Some((quantity, holding.currency.clone(), None)),
            Some((symbol, quote)) => newest(market, symbol).map(|(price, time)| {
                let price_decimal = fixed::to_decimal(price);
                (
                    quantity * price_decimal,
                    quote.clone(),
                    Some(PriceView {
                        symbol: symbol.clone(),
                        price: price_decimal.to_string(),
                        currency: quote.clone(),
                        time,
                    }),
                )
            }),
        };
        let (value, price, rate) = match priced {
            None => (None, None, None),
            Some((amount, in_currency, price)) if in_currency == preference => {
                (Some(amount), price, None)
            }
            Some((amount, in_currency, price)) => {
                match pair_for(market, &in_currency, &preference)
                    .and_then(|pair| newest(market, &pair.symbol).map(|rate| (pair, rate)))
                {
                    None => (None, price, None),
                    Some((pair, (rate, time))) => {
                        let rate_decimal = fixed::to_decimal(rate);
                        let converted = if pair.divide {
                            amount.checked_div(rate_decimal)
                        } else {
                            amount.checked_mul(rate_decimal)
                        }
                        .filter(|_| rate > 0)
                        .map(|v| {
                            v.round_dp_with_strategy(
                                CONVERTED_DECIMALS,
                                RoundingStrategy::MidpointNearestEven,
                            )
                        });
                        let view = crate::convert::rate_view(&pair, rate, time);
                        (converted, price, Some(view))
                    }
                }
            }
        };
        match value {
            Some(v) => total = total.and_then(|t| t.checked_add(v)),
            None => {
                total = None;
                unvalued.push(holding.currency.clone());
            }
        }
        balances.push(BalanceView {
            currency: holding.currency,
            available: holding.available.to_string(),
            held: holding.held.to_string(),
            value: value.map(|v| v.normalize().to_string()),
            price,
            rate,
        });
    }
    WalletView {
        amount: total.map(|t| t.normalize().to_string()),
        currency: preference,
        unvalued,
        balances,
    }
}
