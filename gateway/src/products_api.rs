//! The catalogue and market data over HTTP (public, no token): `GET /api/v1/products`,
//! `GET /products/{symbol}`, its `/candles`, `/ticks` and `/book`.
//!
//! The catalogue is the market data's ([`bourse_market_service`]): every product the feed defined
//! (or that a tick named first) and every product tradable on Bourse. A product's
//! `currentPrice` and `timestamp` are those of its newest tick (`null` before the first);
//! `histories` are the closes of its last [`crate::listing::HISTORIES`] one-minute candles, oldest first,
//! each stamped with the candle's start.
//!
//! The catalogue page is in listing order (`search.rs`: tradable products first, then the
//! feed's by partition and the order each partition defined them); `query` keeps the products
//! whose symbol or name has a word starting with each of its words, ignoring case (see
//! `bourse_marketdata::catalogue`); `cursor` is the previous page's `X-Next-Cursor`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{Engine, ProductId, ProductStatus, Side, Symbol};
use bourse_marketdata::candle::Interval;
use bourse_marketdata::{Market, fixed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::convert::{self, Target};
use crate::error::{ApiError, bad_request};
use crate::listing::{Listing, PageRates, listing_json};
use crate::openapi::ErrorBody;
use crate::query::{ApiQuery, Count, Cursor, IntervalParam, UnixMs};
use crate::render::{self, CandleView, ProductUnits, TickView};
use crate::render::{candle_view, tick_view};
use crate::schema::{
    BadRequest, BearerErrors, CurrencyCode, DecimalText, MarketUnavailable, SymbolText,
};
use crate::state::AppState;

/// `?query=&limit=&cursor=` of `GET /products`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogueQuery {
    /// Keeps the products with a word of the symbol or name starting with each word of the
    /// query, ignoring case; at most 64 bytes.
    #[param(max_length = 64)]
    query: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<Count<{ render::PAGE_MAX }>>,
    /// The `X-Next-Cursor` of the previous page.
    #[param(value_type = Option<i64>, minimum = 0)]
    cursor: Option<Cursor<{ crate::search::KEY_MAX }>>,
    /// Prices in this currency, or `own`; default: the preference of the account whose
    /// token the request carries, else each product's own. A product no rate converts keeps
    /// its own (docs/api.md, "Currencies").
    #[param(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
}

/// A product with its recent history and, when it trades on Bourse, its units and fees.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProductDetail {
    #[serde(flatten)]
    listing: Listing,
    /// The price grid (Bourse's when tradable, else the feed's).
    #[schema(value_type = DecimalText)]
    tick_size: String,
    /// Whether it trades on Bourse; the fields below are given only then.
    tradable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = CurrencyCode, required = false)]
    base_currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = DecimalText, required = false)]
    lot_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ProductStatusName, required = false)]
    status: Option<ProductStatusName>,
    /// Fee tiers by 30-day volume, lowest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<FeeTier>, required = false)]
    fees: Option<Vec<FeeTier>>,
}

/// Whether a product on Bourse accepts orders.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProductStatusName {
    Trading,
    Halted,
}

/// One fee tier: the rates from a 30-day volume on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeeTier {
    /// In the quote currency.
    #[schema(value_type = DecimalText)]
    volume_min: String,
    /// The maker rate (`0.001` is 0.1%).
    #[schema(value_type = DecimalText)]
    maker: String,
    #[schema(value_type = DecimalText)]
    taker: String,
}

/// One price level of a book.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BookLevel {
    #[schema(value_type = DecimalText)]
    price: String,
    #[schema(value_type = DecimalText)]
    quantity: String,
    /// Orders resting at the price.
    orders: u32,
}

/// An aggregated book, best first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Book {
    #[schema(value_type = SymbolText)]
    symbol: String,
    bids: Vec<BookLevel>,
    asks: Vec<BookLevel>,
    /// The engine's newest event when the book was read.
    event_seq: u64,
    /// The currency of the prices: the product's quote currency unless converted.
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// When the prices were converted: the rate, the pair's newest tick (docs/api.md,
    /// "Currencies").
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    rate: Option<crate::fx::RateView>,
}

impl Book {
    /// Its prices in `target` at the newest rate (see [`convert::lenient`] for a missing
    /// one).
    fn convert(mut self, state: &AppState, target: &Target) -> Result<Book, ApiError> {
        if *target.currency == *self.currency {
            return Ok(self);
        }
        let Some(rates) =
            convert::rates_for(state, Some(target), [(self.currency.clone(), i64::MAX)])?
        else {
            return Ok(self);
        };
        let rate = rates.at(&self.currency, i64::MAX);
        let Some(view) = rate.view() else {
            let missing: Result<(), _> = Err(crate::fx::no_pair(&self.currency, &target.currency));
            return convert::lenient(target, missing).map(|_| self);
        };
        for level in self.bids.iter_mut().chain(self.asks.iter_mut()) {
            level.price = rate
                .value(&level.price)
                .ok_or_else(|| crate::fx::no_pair(&self.currency, &target.currency))?;
        }
        self.currency = target.currency.to_string();
        self.rate = Some(view);
        Ok(self)
    }
}

/// The candle intervals.
#[derive(ToSchema)]
#[allow(dead_code)]
enum IntervalName {
    #[serde(rename = "1s")]
    S1,
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "4h")]
    H4,
    #[serde(rename = "1d")]
    D1,
}

/// Longest search text.
const QUERY_BYTES_MAX: usize = 64;
/// Deepest book a request may ask for, and the depth when it names none.
const DEPTH_MAX: usize = 1000;
const DEPTH_DEFAULT: usize = 20;
/// Most candles or ticks one request returns, and how many when it names no limit.
const SERIES_MAX: usize = 5000;
const CANDLES_DEFAULT: usize = 500;
const TICKS_DEFAULT: usize = 100;

use crate::error::market_unavailable as unavailable;

/// What `GET /products/{symbol}` adds for a product tradable on Bourse (its tick size
/// replaces the feed's).
fn add_trading(detail: &mut ProductDetail, units: &ProductUnits) {
    let rate = |ppm: u32| {
        rust_decimal::Decimal::new(i64::from(ppm), 6)
            .normalize()
            .to_string()
    };
    detail.tick_size = units.price(1);
    detail.base_currency = Some(units.base.code().as_str().to_string());
    detail.lot_size = Some(units.qty(1));
    detail.status = Some(match units.product.status() {
        ProductStatus::Trading => ProductStatusName::Trading,
        ProductStatus::Halted => ProductStatusName::Halted,
    });
    detail.fees = Some(
        units
            .product
            .fees()
            .tiers()
            .iter()
            .map(|t| FeeTier {
                volume_min: units.quote_amount(t.volume_min),
                maker: rate(t.maker_ppm),
                taker: rate(t.taker_ppm),
            })
            .collect(),
    );
}

/// `GET /products`.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "products",
    params(CatalogueQuery),
    responses(
        (status = 200, description = "the products, in listing order", body = Vec<Listing>,
            headers(("X-Next-Cursor" = u64, description = "the cursor of the next page; absent on the last"))),
        BadRequest,
        MarketUnavailable,
        BearerErrors,
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn catalogue(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<CatalogueQuery>,
) -> Result<Response, ApiError> {
    // A page of many products marks the ones no rate converts rather than failing.
    let target = convert::for_public(&state, &headers, query.currency.as_deref())
        .await?
        .map(|t| Target {
            explicit: false,
            ..t
        });
    let text = query.query.unwrap_or_default();
    if text.len() > QUERY_BYTES_MAX {
        return Err(bad_request(format!(
            "query must be at most {QUERY_BYTES_MAX} bytes"
        )));
    }
    let limit = query.limit.map_or(render::PAGE_DEFAULT, |Count(n)| n);
    let cursor = query.cursor.map(|Cursor(c)| c);
    let (items, next) = crate::search::page(&state, &text, cursor, limit, target).await?;
    Ok(render::page_response(items, next))
}

fn unknown_symbol(symbol: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_symbol",
        format!("no product {symbol:?}"),
    )
}

/// The market-data id of `symbol`.
fn listed(state: &AppState, symbol: &str) -> Result<u32, ApiError> {
    state
        .market
        .product_id(symbol)
        .ok_or_else(|| unknown_symbol(symbol))
}

/// The engine's product `symbol` (tradable on Bourse), if there is one.
async fn tradable(state: &AppState, symbol: &str) -> Result<Option<(u32, ProductUnits)>, ApiError> {
    let Some(parsed) = Symbol::new(symbol) else {
        return Ok(None);
    };
    state
        .query(move |engine| {
            let id = engine.product_by_symbol(&parsed)?;
            Some((id.get(), ProductUnits::of(engine, id)?))
        })
        .await
}

async fn product_of(state: &AppState, symbol: &str) -> Result<(u32, ProductUnits), ApiError> {
    tradable(state, symbol)
        .await?
        .ok_or_else(|| unknown_symbol(symbol))
}

/// `GET /products/{symbol}`: the product with its recent history and, when it trades on
/// Bourse, its units and fees.
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol"), convert::CurrencyQuery),
    responses(
        (status = 200, description = "the product with recent history; units and fees when tradable", body = ProductDetail),
        (status = 422, description = "`no_rate`: `currency` asked and no listed rate converts the product's currency into it", body = ErrorBody),
        (status = 400, description = "`invalid_request`: the path does not decode", body = ErrorBody),
        (status = 404, description = "`unknown_symbol`: no such product", body = ErrorBody),
        MarketUnavailable,
        BearerErrors,
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn product(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(symbol): Path<String>,
    ApiQuery(query): ApiQuery<convert::CurrencyQuery>,
) -> Result<Response, ApiError> {
    let id = listed(&state, &symbol)?;
    let target = convert::for_public(&state, &headers, query.currency.as_deref()).await?;
    let trading = tradable(&state, &symbol).await?;
    let mut detail = {
        let market = state.market.read().map_err(unavailable)?;
        let mut reader = market.reader().map_err(unavailable)?;
        let mut rates = target.map(PageRates::new);
        let listing = listing_json(&market, &mut reader, id, rates.as_mut())?;
        let tick_size = market.catalogue().get(id).map(|l| l.tick_size);
        match (listing, tick_size) {
            (Some(listing), Some(tick_size)) => ProductDetail {
                listing,
                tick_size: fixed::to_decimal(tick_size).to_string(),
                tradable: trading.is_some(),
                base_currency: None,
                lot_size: None,
                status: None,
                fees: None,
            },
            _ => return Err(unknown_symbol(&symbol)),
        }
    };
    if let Some((_, units)) = trading {
        add_trading(&mut detail, &units);
    }
    Ok(axum::Json(detail).into_response())
}

/// The interval of an API name, or a 400 naming the valid ones.
pub(crate) fn interval(name: &str) -> Result<Interval, ApiError> {
    Interval::parse(name).ok_or_else(|| {
        bad_request(format!(
            "unknown interval {name:?} (1s, 1m, 5m, 15m, 1h, 4h, 1d)"
        ))
    })
}

/// `from`, `to` (unix ms, default everything) and `limit` of a series request.
fn series_params<const MAX: usize>(
    from: Option<UnixMs>,
    to: Option<UnixMs>,
    limit: Option<Count<MAX>>,
    limit_default: usize,
) -> Result<(i64, i64, usize), ApiError> {
    let from = from.map_or(0, |UnixMs(t)| t);
    let to = to.map_or(i64::MAX, |UnixMs(t)| t);
    if from > to {
        return Err(bad_request("from must not be after to"));
    }
    Ok((from, to, limit.map_or(limit_default, |Count(n)| n)))
}

/// The product's own currency and the target, when it is another.
fn conversion(
    market: &Market,
    id: u32,
    symbol: &str,
    target: Option<Target>,
) -> Result<(String, Option<Target>), ApiError> {
    let own = market
        .catalogue()
        .get(id)
        .map(|listing| market.catalogue().currency(listing).as_str().to_owned())
        .ok_or_else(|| unknown_symbol(symbol))?;
    let target = target.filter(|target| *target.currency != *own);
    Ok((own, target))
}

/// `?interval=&from=&to=&limit=` of the candles.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CandlesQuery {
    /// Default `1m`.
    #[param(value_type = Option<IntervalName>, inline)]
    interval: Option<IntervalParam>,
    /// Unix ms (default 0); not after `to`.
    #[param(value_type = Option<i64>, minimum = 0)]
    from: Option<UnixMs>,
    /// Unix ms (default: no end).
    #[param(value_type = Option<i64>, minimum = 0)]
    to: Option<UnixMs>,
    /// 1 to 5000 (default 500): the newest if there are more.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    limit: Option<Count<SERIES_MAX>>,
    /// Prices in this currency, each candle at the rate in force at its end, or `own`;
    /// default: the preference of the account whose token the request carries, else the
    /// product's own (docs/api.md, "Currencies").
    #[param(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
}

/// `GET /products/{symbol}/candles?interval=1m&from=&to=&limit=`: OHLCV candles whose start
/// is in `[from, to]` (unix ms), oldest first, the newest `limit` (default 500, at most 5000)
/// if there are more. Intervals without ticks have no candle.
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}/candles",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol"), CandlesQuery),
    responses(
        (status = 200, description = "the candles, oldest first", body = Vec<CandleView>),
        (status = 400, description = "`invalid_request`: an unknown interval, a time or limit out of range, `from` after `to`, an unknown parameter, a currency that is not a code", body = ErrorBody),
        (status = 404, description = "`unknown_symbol`: no such product", body = ErrorBody),
        (status = 422, description = "`no_rate`: no listed rate converts the product's currency into `currency`, or none at or before a candle", body = ErrorBody),
        MarketUnavailable,
        BearerErrors,
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn candles(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(symbol): Path<String>,
    ApiQuery(query): ApiQuery<CandlesQuery>,
) -> Result<Response, ApiError> {
    let interval = query.interval.map_or(Interval::M1, |IntervalParam(i)| i);
    let (from, to, limit) = series_params(query.from, query.to, query.limit, CANDLES_DEFAULT)?;
    let id = listed(&state, &symbol)?;
    let target = convert::for_public(&state, &headers, query.currency.as_deref()).await?;
    let market = state.market.read().map_err(unavailable)?;
    let state_of = market.product(id).ok_or_else(|| unknown_symbol(&symbol))?;
    let open = state_of.candles.open[interval.index()];
    let head = state_of.candle_heads[interval.index()].link();
    let mut reader = market.reader().map_err(unavailable)?;
    let candles = reader
        .candles(id, interval, head, Some(open), from, to, limit)
        .map_err(unavailable)?;
    let (own, target) = conversion(&market, id, &symbol, target)?;
    let plain = || {
        candles
            .iter()
            .map(|c| candle_view(c, c.start != open.start))
            .collect()
    };
    let items: Vec<CandleView> = match target {
        None => plain(),
        Some(target) => {
            let converted = crate::fx::pair_for(&market, &own, &target.currency)
                .ok_or_else(|| crate::fx::no_pair(&own, &target.currency))
                .and_then(|pair| {
                    let rates = crate::fx::rates_for_candles(
                        &market,
                        &mut reader,
                        &pair,
                        interval,
                        &candles,
                    )?;
                    candles
                        .iter()
                        .zip(&rates)
                        .map(|(c, rate)| {
                            candle_view(c, c.start != open.start)
                                .converted(c, &target.currency, &pair, rate)
                                .ok_or_else(|| crate::fx::no_pair(&own, &target.currency))
                        })
                        .collect::<Result<_, _>>()
                });
            convert::lenient(&target, converted)?.unwrap_or_else(plain)
        }
    };
    Ok(axum::Json(items).into_response())
}

/// `?from=&to=&limit=` of the ticks.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicksQuery {
    /// Unix ms (default 0); not after `to`.
    #[param(value_type = Option<i64>, minimum = 0)]
    from: Option<UnixMs>,
    /// Unix ms (default: no end).
    #[param(value_type = Option<i64>, minimum = 0)]
    to: Option<UnixMs>,
    /// 1 to 5000 (default 100): the latest arrivals if there are more.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    limit: Option<Count<SERIES_MAX>>,
    /// Prices in this currency, each at the pair's tick at or before it, or `own`; default:
    /// the preference of the account whose token the request carries, else the product's
    /// own (docs/api.md, "Currencies").
    #[param(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
}

/// `GET /products/{symbol}/ticks?from=&to=&limit=`: the stored ticks with `from <= ts <= to`,
/// by exchange time, at most `limit` (default 100, at most 5000; the latest arrivals if
/// there are more).
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}/ticks",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol"), TicksQuery),
    responses(
        (status = 200, description = "the ticks, by exchange time", body = Vec<TickView>),
        (status = 400, description = "`invalid_request`: a time or limit out of range, `from` after `to`, an unknown parameter, a currency that is not a code", body = ErrorBody),
        (status = 404, description = "`unknown_symbol`: no such product", body = ErrorBody),
        (status = 422, description = "`no_rate`: no listed rate converts the product's currency into `currency`, or none at or before a tick", body = ErrorBody),
        MarketUnavailable,
        BearerErrors,
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn ticks(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(symbol): Path<String>,
    ApiQuery(query): ApiQuery<TicksQuery>,
) -> Result<Response, ApiError> {
    let (from, to, limit) = series_params(query.from, query.to, query.limit, TICKS_DEFAULT)?;
    let id = listed(&state, &symbol)?;
    let target = convert::for_public(&state, &headers, query.currency.as_deref()).await?;
    let market = state.market.read().map_err(unavailable)?;
    let head = market
        .product(id)
        .ok_or_else(|| unknown_symbol(&symbol))?
        .tick_head;
    let mut reader = market.reader().map_err(unavailable)?;
    let ticks = reader
        .ticks(id, head, from, to, limit)
        .map_err(unavailable)?;
    let symbol = market
        .catalogue()
        .get(id)
        .map(|l| l.symbol.to_string())
        .unwrap_or(symbol);
    let (own, target) = conversion(&market, id, &symbol, target)?;
    let plain = || ticks.iter().map(|t| tick_view(&symbol, t, None)).collect();
    let items: Vec<TickView> = match target {
        None => plain(),
        Some(target) => {
            let converted = crate::fx::pair_for(&market, &own, &target.currency)
                .ok_or_else(|| crate::fx::no_pair(&own, &target.currency))
                .and_then(|pair| {
                    let rates = crate::fx::rates_for_ticks(&market, &mut reader, &pair, &ticks)?;
                    ticks
                        .iter()
                        .zip(&rates)
                        .map(|(t, rate)| {
                            tick_view(&symbol, t, None)
                                .converted(t, &target.currency, &pair, (rate.price, rate.ts))
                                .ok_or_else(|| crate::fx::no_pair(&own, &target.currency))
                        })
                        .collect::<Result<_, _>>()
                });
            convert::lenient(&target, converted)?.unwrap_or_else(plain)
        }
    };
    Ok(axum::Json(items).into_response())
}

/// `?depth=` of the book.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookQuery {
    /// Levels a side, 1 to 1000 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    depth: Option<Count<DEPTH_MAX>>,
    /// Prices in this currency at the newest rate, or `own`; default: the preference of the
    /// account whose token the request carries, else the product's own (docs/api.md,
    /// "Currencies").
    #[param(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
}

/// `GET /products/{symbol}/book?depth=`: aggregated levels, best first, with the engine's
/// event sequence number the book was read at.
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}/book",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol"), BookQuery),
    responses(
        (status = 200, description = "the book, best first", body = Book),
        BadRequest,
        (status = 404, description = "`unknown_symbol`: no such product on Bourse", body = ErrorBody),
        (status = 422, description = "`no_rate`: `currency` asked and no listed rate converts the product's currency into it", body = ErrorBody),
        (status = 503, description = "`busy`: the command ring is full (retry); `unavailable`: the engine stopped", body = ErrorBody),
        BearerErrors,
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn book(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(symbol): Path<String>,
    ApiQuery(query): ApiQuery<BookQuery>,
) -> Result<Response, ApiError> {
    let depth = query.depth.map_or(DEPTH_DEFAULT, |Count(n)| n);
    let target = convert::for_public(&state, &headers, query.currency.as_deref()).await?;
    let (id, units) = product_of(&state, &symbol).await?;
    let mut book = state
        .query(move |engine| book_json(engine, &units, id, depth))
        .await?;
    if let Some(target) = target {
        book = book.convert(&state, &target)?;
    }
    Ok(axum::Json(book).into_response())
}

/// The aggregated book of `product`, `depth` levels a side, best first, with the engine's
/// newest event sequence number (`eventSeq`) it was read at.
pub(crate) fn book_json(engine: &Engine, units: &ProductUnits, product: u32, depth: usize) -> Book {
    let product = ProductId::new(product);
    let side = |side| {
        engine
            .book_levels(product, side)
            .take(depth)
            .map(|l| BookLevel {
                price: units.price(l.price.ticks()),
                quantity: units.qty(l.qty.lots()),
                orders: l.n_orders,
            })
            .collect::<Vec<_>>()
    };
    Book {
        symbol: units.symbol(),
        bids: side(Side::Buy),
        asks: side(Side::Sell),
        event_seq: engine.event_seq(),
        currency: units.quote_code(),
        rate: None,
    }
}
