//! A product as the catalogue lists it (`GET /products`, and the head of
//! `GET /products/{symbol}`): the sketch's fields, its prices in another currency when one is
//! asked (`convert.rs`).

use bourse_marketdata::candle::{Candle, Interval};
use bourse_marketdata::tick::Tick;
use bourse_marketdata::{Market, MarketReader, fixed};
use serde::Serialize;
use utoipa::ToSchema;

use crate::convert::{self, Target};
use crate::error::{ApiError, market_unavailable as unavailable};
use crate::fx::{Pair, RateView};
use crate::schema::{CurrencyCode, DecimalText, SymbolText};

/// One-minute closes in a product's `histories`.
pub const HISTORIES: usize = 10;

/// A product of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    product_name: String,
    #[schema(value_type = SymbolText)]
    symbol: String,
    /// The newest tick's price; `null` before the first.
    #[schema(value_type = Option<DecimalText>, required = true)]
    current_price: Option<String>,
    /// The newest tick's time, unix ms; `null` before the first.
    #[schema(required = true)]
    timestamp: Option<i64>,
    /// The quote currency (the feed's code, up to 16 characters).
    #[schema(pattern = "^[!-~]{1,16}$")]
    currency: String,
    /// The closes of the last 10 one-minute candles, oldest first.
    histories: Vec<Close>,
    /// When the prices were converted (docs/api.md, "Currencies"): the product's own
    /// currency, in which it trades.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = CurrencyCode, required = false)]
    own_currency: Option<String>,
    /// When converted: the rate of `currentPrice`, the pair's tick at or before `timestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    rate: Option<RateView>,
}

/// A one-minute candle's close.
#[derive(Debug, Serialize, ToSchema)]
pub struct Close {
    #[schema(value_type = DecimalText)]
    price: String,
    /// The candle's start, unix ms.
    timestamp: i64,
    /// When converted: the rate in force at the candle's end (as for candles).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    rate: Option<RateView>,
}

/// A catalogue item: the seed's fields (`None` for an id the catalogue does not have), its
/// prices in `target` when one is asked and it is not the product's own.
pub fn listing_json(
    market: &Market,
    reader: &mut MarketReader,
    id: u32,
    target: Option<&Target>,
) -> Result<Option<Listing>, ApiError> {
    let catalogue = market.catalogue();
    let (Some(listing), Some(state)) = (catalogue.get(id), market.product(id)) else {
        return Ok(None);
    };
    let newest = &state.candles.open[0];
    let m1 = Interval::M1.index();
    let histories = reader
        .candles(
            id,
            Interval::M1,
            state.candle_heads[m1].link(),
            Some(state.candles.open[m1]),
            0,
            i64::MAX,
            HISTORIES,
        )
        .map_err(unavailable)?;
    let mut item = Listing {
        product_name: listing.name.to_string(),
        symbol: listing.symbol.as_str().to_string(),
        current_price: (!newest.is_empty()).then(|| fixed::to_decimal(newest.close).to_string()),
        timestamp: (!newest.is_empty()).then_some(newest.last.ts),
        currency: catalogue.currency(listing).as_str().to_string(),
        histories: histories
            .iter()
            .map(|c| Close {
                price: fixed::to_decimal(c.close).to_string(),
                timestamp: c.start,
                rate: None,
            })
            .collect(),
        own_currency: None,
        rate: None,
    };
    if let Some(target) = target.filter(|t| *t.currency != *item.currency) {
        let newest = (!newest.is_empty()).then_some(newest.last.ts);
        let rates = listing_rates(market, reader, &item.currency, target, newest, &histories);
        if let Some(rates) = convert::lenient(target, rates)? {
            item.convert(target, &rates)?;
        }
    }
    Ok(Some(item))
}

/// What converts a listing: the pair, its tick at the current price's time and its candles
/// for the `histories`.
struct ListingRates {
    pair: Pair,
    now: Option<Tick>,
    closes: Vec<Candle>,
}

/// The rates of a listing whose current price is at `newest` (its time) and whose
/// `histories` are those one-minute candles.
fn listing_rates(
    market: &Market,
    reader: &mut MarketReader,
    own: &str,
    target: &Target,
    newest: Option<i64>,
    histories: &[Candle],
) -> Result<ListingRates, ApiError> {
    let pair = crate::fx::pair_for(market, own, &target.currency)
        .ok_or_else(|| crate::fx::no_pair(own, &target.currency))?;
    let now = match newest {
        None => None,
        Some(ts) => {
            let ticks = crate::fx::ticks_over(market, reader, &pair, ts, ts)?;
            let at = ticks.partition_point(|t| t.ts <= ts);
            let tick = at
                .checked_sub(1)
                .and_then(|i| ticks.get(i))
                .copied()
                .ok_or_else(|| crate::fx::no_rate_at(&pair, ts))?;
            Some(tick)
        }
    };
    let closes = crate::fx::rates_for_candles(market, reader, &pair, Interval::M1, histories)?;
    Ok(ListingRates { pair, now, closes })
}

impl Listing {
    /// Its prices at the rates [`listing_rates`] found.
    fn convert(&mut self, target: &Target, rates: &ListingRates) -> Result<(), ApiError> {
        let pair = &rates.pair;
        let failed = || crate::fx::no_pair(&self.currency, &target.currency);
        if let (Some(price), Some(tick)) = (&self.current_price, &rates.now) {
            self.current_price =
                Some(convert::decimal_text(price, pair, tick.price).ok_or_else(failed)?);
            self.rate = Some(convert::rate_view(pair, tick.price, tick.ts));
        }
        for (close, rate) in self.histories.iter_mut().zip(&rates.closes) {
            close.price =
                convert::decimal_text(&close.price, pair, rate.close).ok_or_else(failed)?;
            close.rate = Some(convert::rate_view(pair, rate.close, rate.last.ts));
        }
        self.own_currency = Some(std::mem::replace(
            &mut self.currency,
            target.currency.to_string(),
        ));
        Ok(())
    }
}
