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
/// prices in the target of `rates` when one is asked and it is not the product's own.
pub fn listing_json(
    market: &Market,
    reader: &mut MarketReader,
    id: u32,
    rates: Option<&mut PageRates>,
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
    if let Some(page) = rates.filter(|r| *r.target.currency != *item.currency) {
        let newest = (!newest.is_empty()).then_some(newest.last.ts);
        let found = page.listing(market, reader, &item.currency, newest, &histories);
        if let Some(found) = convert::lenient(&page.target, found)? {
            item.convert(&page.target, &found)?;
        }
    }
    Ok(Some(item))
}

/// What converts a listing: the pair, its rate at the current price's time (price, time)
/// and its candle for each of the `histories` (`None` before the pair's first).
struct ListingRates {
    pair: Pair,
    now: Option<(i64, i64)>,
    closes: Vec<Option<Candle>>,
}

/// The rates of one answer's listings (a catalogue page converts many products at one pair):
/// per currency, the pair and the ticks and one-minute candles read so far, each from a time
/// on, so that each product's rates are looked up rather than read again.
pub struct PageRates {
    target: Target,
    pairs: Vec<(String, Option<PairSpan>)>,
}

/// A pair and what was read of it: every tick from `ticks_from` on (and the latest before),
/// every one-minute candle from `candles_from` on (and the latest before).
struct PairSpan {
    pair: Pair,
    ticks_from: i64,
    ticks: Vec<Tick>,
    candles_from: i64,
    candles: Vec<Candle>,
}

impl PageRates {
    pub fn new(target: Target) -> PageRates {
        PageRates {
            target,
            pairs: Vec::new(),
        }
    }

    /// The rates of a listing in `own` whose current price is at `newest` (its time) and
    /// whose `histories` are those one-minute candles.
    fn listing(
        &mut self,
        market: &Market,
        reader: &mut MarketReader,
        own: &str,
        newest: Option<i64>,
        histories: &[Candle],
    ) -> Result<ListingRates, ApiError> {
        let target = &self.target.currency;
        let at = match self.pairs.iter().position(|(c, _)| c == own) {
            Some(at) => at,
            None => {
                let span = crate::fx::pair_for(market, own, target).map(|pair| PairSpan {
                    pair,
                    ticks_from: i64::MAX,
                    ticks: Vec::new(),
                    candles_from: i64::MAX,
                    candles: Vec::new(),
                });
                self.pairs.push((own.to_owned(), span));
                self.pairs.len() - 1
            }
        };
        let span = self.pairs[at]
            .1
            .as_mut()
            .ok_or_else(|| crate::fx::no_pair(own, target))?;
        let pair = &span.pair;
        let now = match newest {
            None => None,
            Some(ts) => {
                // Most often the pair's newest tick is at or before the product's newest.
                let open = market.product(pair.id).map(|p| p.candles.open[0]);
                match open.filter(|o| !o.is_empty() && o.last.ts <= ts) {
                    Some(open) => Some((open.close, open.last.ts)),
                    None => {
                        if ts < span.ticks_from {
                            span.ticks = crate::fx::ticks_over(market, reader, pair, ts, i64::MAX)?;
                            span.ticks_from = ts;
                        }
                        let rate = crate::fx::at_or_before(
                            &span.ticks,
                            |t| t.ts,
                            std::iter::once(ts),
                            pair,
                        )?;
                        rate.first().map(|t| (t.price, t.ts))
                    }
                }
            }
        };
        let closes = match histories.first() {
            None => Vec::new(),
            Some(first) => {
                if first.start < span.candles_from {
                    span.candles = crate::fx::candles_over(
                        market,
                        reader,
                        pair,
                        Interval::M1,
                        first.start,
                        i64::MAX,
                    )?;
                    span.candles_from = first.start;
                }
                histories
                    .iter()
                    .map(|c| {
                        crate::fx::last_at_or_before(&span.candles, |r| r.start, c.start).copied()
                    })
                    .collect()
            }
        };
        Ok(ListingRates {
            pair: pair.clone(),
            now,
            closes,
        })
    }
}

impl Listing {
    /// Its prices at the rates [`PageRates::listing`] found.
    fn convert(&mut self, target: &Target, rates: &ListingRates) -> Result<(), ApiError> {
        let pair = &rates.pair;
        let failed = || crate::fx::no_pair(&self.currency, &target.currency);
        if let (Some(price), Some((rate, time))) = (&self.current_price, rates.now) {
            self.current_price = Some(convert::decimal_text(price, pair, rate).ok_or_else(failed)?);
            self.rate = Some(convert::rate_view(pair, rate, time));
        }
        // A close before the pair's first rate is left out, never shown unconverted.
        let mut histories = Vec::with_capacity(self.histories.len());
        for (mut close, rate) in std::mem::take(&mut self.histories)
            .into_iter()
            .zip(&rates.closes)
        {
            let Some(rate) = rate else {
                continue;
            };
            close.price =
                convert::decimal_text(&close.price, pair, rate.close).ok_or_else(failed)?;
            close.rate = Some(convert::rate_view(pair, rate.close, rate.last.ts));
            histories.push(close);
        }
        self.histories = histories;
        self.own_currency = Some(std::mem::replace(
            &mut self.currency,
            target.currency.to_string(),
        ));
        Ok(())
    }
}
