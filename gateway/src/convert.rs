//! Which currency a request asks its values in, and the rates that convert a page of values
//! each at its own time (docs/api.md, "Currencies").
//!
//! **The target.** `?currency=CODE` asks for `CODE`; `?currency=own` for every value in its
//! own currency. Without the parameter, a request that carries a bearer token (every
//! account endpoint, and a public one when the token is sent) asks for the account's
//! `currencyPreference`; one without a token, for nothing: values in their own currency.
//!
//! **Strictness.** Asked explicitly, a single series that no rate converts is refused (422
//! `no_rate`, `fx.rs`). Asked through the preference, or for a page of many products or
//! records, a value with no rate is marked instead (its own currency kept and named, no
//! `rate`; or a record's `converted` values `null`), so that a preference never makes a
//! screen fail.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use bourse_engine::AccountId;
use bourse_marketdata::tick::Tick;
use bourse_marketdata::{Market, fixed};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::fx::{Pair, RateView};
use crate::schema::{CurrencyCode, DecimalText};
use crate::state::AppState;

/// The `?currency=` value that asks for every value in its own currency.
pub const OWN: &str = "own";

/// `?currency=` alone.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CurrencyQuery {
    /// Values in this currency, or `own` for each in its own; default: the preference of
    /// the account whose token the request carries (docs/api.md, "Currencies").
    #[param(value_type = Option<CurrencyCode>)]
    pub currency: Option<String>,
}

/// The currency a request asks its values in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub currency: Arc<str>,
    /// Named by `?currency=` (strict), not by the account's preference.
    pub explicit: bool,
}

/// What `?currency=` says: `None` for `own`, else the target (or `Err` for text that is not
/// a code); `Ok(Some(None))` when absent.
fn param(text: Option<&str>) -> Result<Option<Option<Target>>, ApiError> {
    match text {
        None => Ok(Some(None)),
        Some(OWN) => Ok(None),
        Some(text) => crate::fx::currency_param(text).map(|currency| {
            Some(Some(Target {
                currency,
                explicit: true,
            }))
        }),
    }
}

/// The account's preferred currency.
pub async fn preference(state: &AppState, account: AccountId) -> Result<Arc<str>, ApiError> {
    state
        .query(move |engine| {
            engine
                .account_profile(account)
                .map(|p| Arc::<str>::from(p.currency_preference.as_str()))
        })
        .await?
        .ok_or_else(|| crate::error::internal("the account has no profile"))
}

/// The target of an account's request: `?currency=`, else its preference.
pub async fn for_account(
    state: &AppState,
    account: AccountId,
    text: Option<&str>,
) -> Result<Option<Target>, ApiError> {
    match param(text)? {
        None => Ok(None),
        Some(Some(target)) => Ok(Some(target)),
        Some(None) => Ok(Some(Target {
            currency: preference(state, account).await?,
            explicit: false,
        })),
    }
}

/// The target of a public request: `?currency=`, else the preference of the account whose
/// bearer token it carries (a wrong token is refused, as on any endpoint), else none.
pub async fn for_public(
    state: &AppState,
    headers: &HeaderMap,
    text: Option<&str>,
) -> Result<Option<Target>, ApiError> {
    match param(text)? {
        None => Ok(None),
        Some(Some(target)) => Ok(Some(target)),
        Some(None) if headers.contains_key(header::AUTHORIZATION) => {
            let account = crate::account_api::authenticate(state, headers).await?;
            Ok(Some(Target {
                currency: preference(state, account).await?,
                explicit: false,
            }))
        }
        Some(None) => Ok(None),
    }
}

/// How one value converts.
#[derive(Clone, Copy, Debug)]
pub enum Rate<'a> {
    /// It is in the target currency already.
    Same,
    /// No listed pair, or no tick of it at or before the value's time.
    Missing,
    /// At this tick of this pair.
    At(&'a Pair, &'a Tick),
}

/// A pair and its ticks over a span of time, sorted.
type PairTicks = (Pair, Vec<Tick>);

/// The rates that convert values in several currencies, each at its own time, into one
/// target: per currency, the pair and its ticks over the times asked.
pub struct Rates {
    pub target: Arc<str>,
    by_currency: Vec<(String, Option<PairTicks>)>,
}

impl Rates {
    /// The rates for `values` (currency, unix ms) in `target`: one walk of each pair's ticks
    /// from the newest back to the earliest time asked.
    pub fn new(
        market: &Market,
        target: Arc<str>,
        values: impl IntoIterator<Item = (String, i64)>,
    ) -> Result<Rates, ApiError> {
        let mut spans: Vec<(String, i64, i64)> = Vec::new();
        for (currency, time) in values {
            if *currency == *target {
                continue;
            }
            match spans.iter_mut().find(|(c, _, _)| *c == currency) {
                Some((_, first, last)) => {
                    *first = (*first).min(time);
                    *last = (*last).max(time);
                }
                None => spans.push((currency, time, time)),
            }
        }
        let mut by_currency = Vec::with_capacity(spans.len());
        let mut reader = market.reader().map_err(crate::error::market_unavailable)?;
        for (currency, first, last) in spans {
            let ticks = match crate::fx::pair_for(market, &currency, &target) {
                None => None,
                Some(pair) => {
                    let ticks = crate::fx::ticks_over(market, &mut reader, &pair, first, last)?;
                    Some((pair, ticks))
                }
            };
            by_currency.push((currency, ticks));
        }
        Ok(Rates {
            target,
            by_currency,
        })
    }

    /// The rate in force at `time` for a value in `currency`: the pair's newest tick at or
    /// before it.
    pub fn at(&self, currency: &str, time: i64) -> Rate<'_> {
        if currency == &*self.target {
            return Rate::Same;
        }
        let Some((pair, ticks)) = self
            .by_currency
            .iter()
            .find(|(c, _)| c == currency)
            .and_then(|(_, found)| found.as_ref())
        else {
            return Rate::Missing;
        };
        match crate::fx::last_at_or_before(ticks, |t| t.ts, time) {
            Some(tick) => Rate::At(pair, tick),
            None => Rate::Missing,
        }
    }
}

impl Rate<'_> {
    /// Whether a value at this rate is shown converted (`converted` given): it is in another
    /// currency than the target.
    pub fn applies(&self) -> bool {
        !matches!(self, Rate::Same)
    }

    /// `text` (a decimal as the API writes it) at this rate; `None` without one.
    pub fn value(&self, text: &str) -> Option<String> {
        match self {
            Rate::At(pair, tick) => decimal_text(text, pair, tick.price),
            Rate::Same | Rate::Missing => None,
        }
    }

    /// What the converted values name of the rate; `None` without one.
    pub fn view(&self) -> Option<RateView> {
        match self {
            Rate::At(pair, tick) => Some(rate_view(pair, tick.price, tick.ts)),
            Rate::Same | Rate::Missing => None,
        }
    }
}

/// An order's values in the asked currency, at the rate in force at its `updatedAt`; every
/// value and `rate` are `null` when no rate was (docs/api.md, "Currencies").
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConvertedOrder {
    #[schema(value_type = CurrencyCode)]
    pub currency: Arc<str>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub price: Option<String>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub average_price: Option<String>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub notional: Option<String>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub fees: Option<String>,
    #[schema(required = true)]
    pub rate: Option<RateView>,
}

/// A trade's values in the asked currency, at the rate in force at its `timestamp`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConvertedTrade {
    #[schema(value_type = CurrencyCode)]
    pub currency: Arc<str>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub price: Option<String>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub notional: Option<String>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub fee: Option<String>,
    #[schema(required = true)]
    pub rate: Option<RateView>,
}

/// A funds movement's amount in the asked currency, at the rate in force at its `timestamp`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConvertedAmount {
    #[schema(value_type = CurrencyCode)]
    pub currency: Arc<str>,
    #[schema(value_type = Option<DecimalText>, required = true)]
    pub amount: Option<String>,
    #[schema(required = true)]
    pub rate: Option<RateView>,
}

/// The rates for `values` (currency, unix ms) in `target`, when one is asked.
pub fn rates_for(
    state: &AppState,
    target: Option<&Target>,
    values: impl IntoIterator<Item = (String, i64)>,
) -> Result<Option<Rates>, ApiError> {
    let Some(target) = target else {
        return Ok(None);
    };
    let market = state
        .market
        .read()
        .map_err(crate::error::market_unavailable)?;
    let rates = Rates::new(&market, Arc::clone(&target.currency), values)?;
    if target.explicit
        && let Some((currency, _)) = rates.by_currency.iter().find(|(_, r)| r.is_none())
    {
        return Err(crate::fx::no_pair(currency, &target.currency));
    }
    Ok(Some(rates))
}

/// A conversion's outcome under the strictness rule (module docs): `Ok(None)`, values in
/// their own currency, when the preference asked and no rate converts; the 422 when
/// `?currency=` asked.
pub fn lenient<T>(target: &Target, converted: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match converted {
        Ok(value) => Ok(Some(value)),
        Err(e) if !target.explicit && e.code == "no_rate" => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a converted value names of its rate.
pub fn rate_view(pair: &Pair, price: i64, time: i64) -> RateView {
    RateView {
        pair: Arc::clone(&pair.symbol),
        price: fixed::to_decimal(price).to_string(),
        time,
        operation: if pair.divide { "divide" } else { "multiply" },
    }
}

/// A decimal value as the API writes it (`"187.25"`), converted at `price` of `pair`: exact,
/// rounded half to even to 8 decimals (`fx::convert`). `None` for text that is not a
/// decimal of at most 8 places, or a result out of range.
pub fn decimal_text(text: &str, pair: &Pair, price: i64) -> Option<String> {
    let value: Decimal = text.parse().ok()?;
    if value.scale() > fixed::DECIMALS {
        return None;
    }
    let units = value
        .mantissa()
        .checked_mul(10_i128.pow(fixed::DECIMALS - value.scale()))?;
    let converted = crate::fx::convert(i64::try_from(units).ok()?, price, pair.divide)?;
    Some(fixed::to_decimal(converted).normalize().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decimal_text_converts_exactly_at_its_scale() {
        let pair = Pair {
            id: 0,
            symbol: "EURUSD".into(),
            divide: true,
        };
        // 187.25 USD at EURUSD 1.08 is 173.37962962962... EUR.
        assert_eq!(
            decimal_text("187.25", &pair, 108_000_000).as_deref(),
            Some("173.37962963")
        );
        assert_eq!(decimal_text("0", &pair, 108_000_000).as_deref(), Some("0"));
        assert_eq!(decimal_text("1.123456789", &pair, 108_000_000), None);
        assert_eq!(decimal_text("x", &pair, 108_000_000), None);
        assert_eq!(decimal_text("1", &pair, 0), None);
        let multiply = Pair {
            divide: false,
            ..pair
        };
        assert_eq!(
            decimal_text("2.5", &multiply, 15_123_500_000).as_deref(),
            Some("378.0875")
        );
    }
}
