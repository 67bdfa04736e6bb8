//! Exchange rates, and values converted at the rate of their time.
//!
//! **Rates are market data.** A product is an exchange rate when its symbol is two currency
//! codes, BASE then QUOTE (three letters each), and it is quoted in QUOTE: `EURUSD` at 1.08 is
//! 1.08 US dollars for one euro. Rates arrive on the tick feed like any product (the embedded
//! simulator publishes EURUSD, GBPUSD, USDJPY and USDINR), and are stored as ticks and candles
//! like any product. `GET /api/v1/fx` lists them.
//!
//! **Converting.** A value in currency P asked in currency T uses the pair `TP` (divide by its
//! price) or `PT` (multiply); there are no cross rates through a third currency yet. The
//! result is rounded half to even to 8 decimals, the precision of market-data prices.
//!
//! **Which rate.** A candle of interval I starting at `s` is converted at the rate in force at
//! its end: the last tick of the pair before `s + I`, which is the close of the pair's candle
//! of interval I with the greatest start at or before `s`. Every converted candle names the
//! pair, its price and that tick's time. A candle with no rate at or before it is not
//! converted: the request is refused with 422 `no_rate`, naming the pair and the time.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bourse_marketdata::candle::{Candle, Interval};
use bourse_marketdata::{Market, MarketReader, fixed};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, bad_request};
use crate::schema::{CurrencyCode, DecimalText, MarketUnavailable, SymbolText};
use crate::state::AppState;

/// Decimals of a converted value.
pub const CONVERTED_DECIMALS: u32 = 8;

/// The rate that converts one currency into another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Its market-data product.
    pub id: u32,
    /// `EURUSD`.
    pub symbol: String,
    /// `true` when the pair is quoted in the currency converted from (divide by its price).
    pub divide: bool,
}

/// `(base, quote)` when the product `id` is an exchange rate (see the module docs).
pub fn rate_currencies(market: &Market, id: u32) -> Option<(String, String)> {
    let catalogue = market.catalogue();
    let listing = catalogue.get(id)?;
    let symbol = listing.symbol.as_str();
    if symbol.len() != 6 || !symbol.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let (base, quote) = symbol.split_at(3);
    (base != quote && catalogue.currency(listing).as_str() == quote)
        .then(|| (base.to_owned(), quote.to_owned()))
}

/// The pair converting `from` into `to`, if the market lists one.
pub fn pair_for(market: &Market, from: &str, to: &str) -> Option<Pair> {
    for (symbol, divide) in [
        (format!("{to}{from}"), true),
        (format!("{from}{to}"), false),
    ] {
        if let Some(id) = bourse_marketdata::tick::Symbol::new(&symbol)
            .and_then(|parsed| market.catalogue().id(&parsed))
            && rate_currencies(market, id).is_some()
        {
            return Some(Pair { id, symbol, divide });
        }
    }
    None
}

/// `value` converted at `price` (the pair's, see [`Pair::divide`]), rounded half to even to
/// [`CONVERTED_DECIMALS`]. `None` for a price that is not positive.
pub fn convert(value: Decimal, price: Decimal, divide: bool) -> Option<Decimal> {
    if price <= Decimal::ZERO {
        return None;
    }
    let converted = if divide {
        value.checked_div(price)?
    } else {
        value.checked_mul(price)?
    };
    Some(
        converted
            .round_dp_with_strategy(CONVERTED_DECIMALS, RoundingStrategy::MidpointNearestEven)
            .normalize(),
    )
}

/// The currency a request asks values in: three to twelve upper-case letters or digits.
pub fn currency_param(text: &str) -> Result<String, ApiError> {
    if (3..=12).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        Ok(text.to_owned())
    } else {
        Err(bad_request(format!(
            "currency {text:?} is not a currency code (like EUR)"
        )))
    }
}

/// 422 `no_rate`: nothing converts `from` into `to`.
pub fn no_pair(from: &str, to: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_rate",
        format!(
            "no exchange rate between {from} and {to} (neither {to}{from} nor {from}{to} is \
             listed; GET /api/v1/fx lists the rates)"
        ),
    )
}

/// The rate a converted value used.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateView {
    /// The pair's symbol (`EURUSD`).
    #[schema(value_type = SymbolText)]
    pub pair: String,
    /// Its price used.
    #[schema(value_type = DecimalText)]
    pub price: String,
    /// The exchange time of the pair's tick with that price, unix ms (for a candle: the last
    /// tick of the pair's candle whose close it is).
    pub time: i64,
    /// `divide` when the value was divided by the price (the pair is quoted in the value's
    /// currency), `multiply` otherwise.
    pub operation: &'static str,
}

/// The pair's candles that convert `candles` (of `interval`, oldest first): for each, the
/// pair's candle with the greatest start at or before its start. Refused with 422
/// `no_rate` if one has none.
pub fn rates_for_candles(
    market: &Market,
    reader: &mut MarketReader,
    pair: &Pair,
    interval: Interval,
    candles: &[Candle],
) -> Result<Vec<Candle>, ApiError> {
    let (Some(first), Some(last)) = (candles.first(), candles.last()) else {
        return Ok(Vec::new());
    };
    let Some(state) = market.product(pair.id) else {
        return Err(no_rate_at(pair, first.start));
    };
    let open = state.candles.open[interval.index()];
    let head = state.candle_heads[interval.index()].link();
    let unavailable = |e: bourse_marketdata::MarketError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "market_data_unavailable",
            e.to_string(),
        )
    };
    let mut rates = reader
        .candles(
            pair.id,
            interval,
            head,
            Some(open),
            first.start,
            last.start,
            usize::MAX,
        )
        .map_err(unavailable)?;
    if rates.first().is_none_or(|r| r.start > first.start)
        && let Some(before) = reader
            .candle_before(pair.id, interval, head, Some(open), first.start)
            .map_err(unavailable)?
    {
        rates.insert(0, before);
    }
    candles
        .iter()
        .map(|candle| {
            let at = rates.partition_point(|r| r.start <= candle.start);
            at.checked_sub(1)
                .and_then(|i| rates.get(i))
                .copied()
                .ok_or_else(|| no_rate_at(pair, candle.start))
        })
        .collect()
}

fn no_rate_at(pair: &Pair, time: i64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_rate",
        format!(
            "no {} rate at or before {time} (unix ms): ask from a later time",
            pair.symbol
        ),
    )
}

/// The price of a rate candle as a decimal.
pub fn rate_price(rate: &Candle) -> Decimal {
    fixed::to_decimal(rate.close)
}

/// One exchange rate as `GET /fx` lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FxView {
    /// `EURUSD`.
    #[schema(value_type = SymbolText)]
    symbol: String,
    /// The currency priced (`EUR`).
    #[schema(value_type = CurrencyCode)]
    base: String,
    /// The currency it is priced in (`USD`).
    #[schema(value_type = CurrencyCode)]
    quote: String,
    /// The newest price, `null` before the first tick.
    #[schema(value_type = Option<DecimalText>)]
    rate: Option<String>,
    /// Its exchange time, unix ms; `null` before the first tick.
    timestamp: Option<i64>,
}

/// `GET /fx`: the exchange rates the market data has, by symbol.
#[utoipa::path(
    get,
    path = "/api/v1/fx",
    tag = "products",
    responses(
        (status = 200, description = "the exchange rates, by symbol: market-data products named BASEQUOTE and quoted in QUOTE", body = Vec<FxView>),
        MarketUnavailable,
    )
)]
pub(crate) async fn fx_rates(State(state): State<AppState>) -> Result<Response, ApiError> {
    let market = state.market.read().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "market_data_unavailable",
            e.to_string(),
        )
    })?;
    let mut rates = Vec::new();
    for id in 0..u32::try_from(market.catalogue().len()).unwrap_or(u32::MAX) {
        let Some((base, quote)) = rate_currencies(&market, id) else {
            continue;
        };
        let symbol = format!("{base}{quote}");
        let newest = market
            .product(id)
            .map(|p| p.candles.open[0])
            .filter(|c| !c.is_empty());
        rates.push(FxView {
            symbol,
            base,
            quote,
            rate: newest.map(|c| fixed::to_decimal(c.close).to_string()),
            timestamp: newest.map(|c| c.last.ts),
        });
    }
    rates.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    Ok(axum::Json(rates).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_divided_by_a_pair_quoted_in_its_currency_and_rounded_half_to_even() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        // 100 USD in EUR at EURUSD 1.08: 92.592592592...
        assert_eq!(convert(d("100"), d("1.08"), true), Some(d("92.59259259")));
        // 100 USD in JPY at USDJPY 151.235.
        assert_eq!(convert(d("100"), d("151.235"), false), Some(d("15123.5")));
        // Half to even at the 8th decimal.
        assert_eq!(
            convert(d("0.000000125"), d("1"), false),
            Some(d("0.00000012"))
        );
        assert_eq!(
            convert(d("0.000000135"), d("1"), false),
            Some(d("0.00000014"))
        );
        assert_eq!(convert(d("1"), d("0"), true), None);
        assert_eq!(convert(d("1"), d("-1"), false), None);
    }

    #[test]
    fn a_currency_is_a_code() {
        assert!(currency_param("EUR").is_ok());
        for bad in ["eur", "E", "EURO-1", "", "ABCDEFGHIJKLM"] {
            assert!(currency_param(bad).is_err(), "{bad}");
        }
    }
}
