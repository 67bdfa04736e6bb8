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

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bourse_marketdata::candle::{Candle, Interval};
use bourse_marketdata::{Market, MarketReader, fixed};
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
    pub symbol: Arc<str>,
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
            return Some(Pair {
                id,
                symbol: symbol.into(),
                divide,
            });
        }
    }
    None
}

/// `value` converted at `price` (the pair's, see [`Pair::divide`]), both in market data's
/// fixed point (10^-8 units), rounded half to even to [`CONVERTED_DECIMALS`]: exact integer
/// arithmetic, the same result as dividing or multiplying the decimals and rounding. `None`
/// for a price that is not positive or a result beyond the fixed point's range.
pub fn convert(value: i64, price: i64, divide: bool) -> Option<i64> {
    if price <= 0 {
        return None;
    }
    let one = i128::from(fixed::ONE);
    let (numerator, denominator) = if divide {
        (i128::from(value) * one, i128::from(price))
    } else {
        (i128::from(value) * i128::from(price), one)
    };
    let quotient = numerator.div_euclid(denominator);
    let remainder = numerator.rem_euclid(denominator);
    // Half to even: up when more than half remains, or exactly half and the quotient is odd.
    let up = match (2 * remainder).cmp(&denominator) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => quotient % 2 != 0,
        std::cmp::Ordering::Less => false,
    };
    i64::try_from(quotient + i128::from(up)).ok()
}

/// The currency a request asks values in: a currency code as the API writes them (1 to 12
/// printable ASCII characters, no spaces). Whether a rate converts into it is the caller's
/// question (422 when none does), so that a well-formed code is never a 400.
pub fn currency_param(text: &str) -> Result<Arc<str>, ApiError> {
    if (1..=12).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.into())
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
    pub pair: Arc<str>,
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
    let rates = candles_over(market, reader, pair, interval, first.start, last.start)?;
    at_or_before(&rates, |r| r.start, candles.iter().map(|c| c.start), pair)
}

/// The pair's candles of `interval` that can convert candles starting from `first` to
/// `last` (unix ms), oldest first: those starting in `[first, last]` and the latest before.
pub fn candles_over(
    market: &Market,
    reader: &mut MarketReader,
    pair: &Pair,
    interval: Interval,
    first: i64,
    last: i64,
) -> Result<Vec<Candle>, ApiError> {
    let Some(state) = market.product(pair.id) else {
        return Ok(Vec::new());
    };
    let open = state.candles.open[interval.index()];
    let head = state.candle_heads[interval.index()].link();
    let mut rates = reader
        .candles(pair.id, interval, head, Some(open), first, last, usize::MAX)
        .map_err(crate::error::market_unavailable)?;
    if rates.first().is_none_or(|r| r.start > first)
        && let Some(before) = reader
            .candle_before(pair.id, interval, head, Some(open), first)
            .map_err(crate::error::market_unavailable)?
    {
        rates.insert(0, before);
    }
    Ok(rates)
}

/// The pair's ticks that convert `ticks` (sorted by time): for each, the pair's newest tick
/// (by time, then source and seq) at or before its time. Refused with 422 `no_rate` if one
/// has none.
pub fn rates_for_ticks(
    market: &Market,
    reader: &mut MarketReader,
    pair: &Pair,
    ticks: &[bourse_marketdata::tick::Tick],
) -> Result<Vec<bourse_marketdata::tick::Tick>, ApiError> {
    let (Some(first), Some(last)) = (
        ticks.iter().map(|t| t.ts).min(),
        ticks.iter().map(|t| t.ts).max(),
    ) else {
        return Ok(Vec::new());
    };
    let rates = ticks_over(market, reader, pair, first, last)?;
    at_or_before(&rates, |r| r.ts, ticks.iter().map(|t| t.ts), pair)
}

/// The pair's ticks that can be in force from `first` to `last` (unix ms), sorted by time:
/// those in `[first, last]` and the newest before `first`.
pub fn ticks_over(
    market: &Market,
    reader: &mut MarketReader,
    pair: &Pair,
    first: i64,
    last: i64,
) -> Result<Vec<bourse_marketdata::tick::Tick>, ApiError> {
    let Some(state) = market.product(pair.id) else {
        return Ok(Vec::new());
    };
    let mut rates = reader
        .ticks(pair.id, state.tick_head, first, last, usize::MAX)
        .map_err(crate::error::market_unavailable)?;
    if let Some(before) = reader
        .tick_before(pair.id, state.tick_head, first)
        .map_err(crate::error::market_unavailable)?
    {
        rates.insert(0, before);
    }
    Ok(rates)
}

/// For each of `times`, the last of `rates` (sorted by `time`) at or before it; 422
/// `no_rate` for a time before them all.
pub fn at_or_before<R: Copy>(
    rates: &[R],
    time: impl Fn(&R) -> i64,
    times: impl Iterator<Item = i64>,
    pair: &Pair,
) -> Result<Vec<R>, ApiError> {
    times
        .map(|t| {
            last_at_or_before(rates, &time, t)
                .copied()
                .ok_or_else(|| no_rate_at(pair, t))
        })
        .collect()
}

/// The last of `rates` (sorted by `time`) at or before `t`: the rate in force then.
pub fn last_at_or_before<R>(rates: &[R], time: impl Fn(&R) -> i64, t: i64) -> Option<&R> {
    let at = rates.partition_point(|r| time(r) <= t);
    at.checked_sub(1).and_then(|i| rates.get(i))
}

/// 422 `no_rate`: the pair has no tick at or before `time`.
pub fn no_rate_at(pair: &Pair, time: i64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_rate",
        format!(
            "no {} rate at or before {time} (unix ms): ask from a later time",
            pair.symbol
        ),
    )
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
    let market = state
        .market
        .read()
        .map_err(crate::error::market_unavailable)?;
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
    use rust_decimal::Decimal;

    #[test]
    fn a_value_is_divided_by_a_pair_quoted_in_its_currency_and_rounded_half_to_even() {
        let units = |s: &str| {
            let d: Decimal = s.parse().unwrap();
            i64::try_from((d * Decimal::from(fixed::ONE)).normalize().mantissa()).unwrap()
        };
        // 100 USD in EUR at EURUSD 1.08: 92.592592592...
        assert_eq!(
            convert(units("100"), units("1.08"), true),
            Some(units("92.59259259"))
        );
        // 100 USD in JPY at USDJPY 151.235.
        assert_eq!(
            convert(units("100"), units("151.235"), false),
            Some(units("15123.5"))
        );
        // Half to even at the 8th decimal: 0.00000025 / 2 and 0.00000075 / 2 are ties.
        assert_eq!(convert(25, units("2"), true), Some(12));
        assert_eq!(convert(75, units("2"), true), Some(38));
        assert_eq!(convert(25, units("0.5"), false), Some(12));
        // Just above and below a tie.
        assert_eq!(convert(25, units("1.99999999"), true), Some(13));
        assert_eq!(convert(25, units("2.00000001"), true), Some(12));
        assert_eq!(convert(1, 0, true), None);
        assert_eq!(convert(1, -1, false), None);
        assert_eq!(convert(i64::MAX, units("0.5"), true), None);
        // Against the decimals, over a spread of values and prices.
        for (value, price) in [(18_924, 108_227), (123_456_789, 14_988_400_000), (7, 3)] {
            for divide in [true, false] {
                let (v, p) = (
                    Decimal::new(value, fixed::DECIMALS),
                    Decimal::new(price, fixed::DECIMALS),
                );
                let exact = if divide { v / p } else { v * p };
                let expected = exact.round_dp_with_strategy(
                    CONVERTED_DECIMALS,
                    rust_decimal::RoundingStrategy::MidpointNearestEven,
                );
                assert_eq!(
                    convert(value, price, divide).map(fixed::to_decimal),
                    Some(expected.normalize()),
                    "{value} {price} {divide}"
                );
            }
        }
    }

    #[test]
    fn a_currency_is_a_code() {
        for good in ["EUR", "eur", "0", "ABCDEFGHIJKL"] {
            assert!(currency_param(good).is_ok(), "{good}");
        }
        for bad in ["", "E R", "ABCDEFGHIJKLM", "EUR\u{e9}"] {
            assert!(currency_param(bad).is_err(), "{bad}");
        }
    }
}
