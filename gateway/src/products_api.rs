//! The catalogue and market data over HTTP (public, no token): `GET /api/v1/products`,
//! `GET /products/{symbol}`, its `/candles`, `/ticks` and `/book`.
//!
//! The catalogue is the market data's ([`crate::market`]): every product the feed defined
//! (or that a tick named first) and every product tradable on Bourse. A product's
//! `currentPrice` and `timestamp` are those of its newest tick (`null` before the first);
//! `histories` are the closes of its last [`HISTORIES`] one-minute candles, oldest first,
//! each stamped with the candle's start.
//!
//! The catalogue page is in listing order (market-data ids); `query` keeps the products
//! whose symbol or name has a word starting with each of its words, ignoring case (see
//! `bourse_marketdata::catalogue`); `cursor` is the last id of the previous page (the
//! `X-Next-Cursor` header).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bourse_engine::{Engine, ProductId, ProductStatus, Side, Symbol};
use bourse_marketdata::candle::Interval;
use bourse_marketdata::{Market, MarketReader, fixed};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiQuery, bad_request};
use crate::render::{self, ProductUnits};
use crate::render::{candle_json, tick_json};
use crate::state::AppState;

/// `?query=&limit=&cursor=` of `GET /products`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogueQuery {
    query: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Longest search text.
const QUERY_BYTES_MAX: usize = 64;
/// Deepest book a request may ask for, and the depth when it names none.
const DEPTH_MAX: usize = 1000;
const DEPTH_DEFAULT: usize = 20;
/// One-minute closes in a product's `histories`.
pub const HISTORIES: usize = 10;
/// Most candles or ticks one request returns, and how many when it names no limit.
const SERIES_MAX: usize = 5000;
const CANDLES_DEFAULT: usize = 500;
const TICKS_DEFAULT: usize = 100;

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "market_data_unavailable",
        error.to_string(),
    )
}

/// A catalogue item: the seed's fields.
fn listing_json(market: &Market, reader: &mut MarketReader, id: u32) -> Result<Value, ApiError> {
    let catalogue = market.catalogue();
    let (Some(listing), Some(state)) = (catalogue.get(id), market.product(id)) else {
        return Ok(Value::Null);
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
    Ok(json!({
        "productName": &*listing.name,
        "symbol": listing.symbol.as_str(),
        "currentPrice": (!newest.is_empty()).then(|| fixed::to_decimal(newest.close).to_string()),
        "timestamp": (!newest.is_empty()).then_some(newest.last.ts),
        "currency": catalogue.currency(listing).as_str(),
        "histories": histories
            .iter()
            .map(|c| json!({"price": fixed::to_decimal(c.close).to_string(), "timestamp": c.start}))
            .collect::<Vec<_>>(),
    }))
}

/// What `GET /products/{symbol}` adds for a product tradable on Bourse.
fn trading_json(units: &ProductUnits) -> Value {
    let fees = units.product.fees().tiers();
    json!({
        "baseCurrency": units.base.code().as_str(),
        "tickSize": units.price(1),
        "lotSize": units.qty(1),
        "status": match units.product.status() {
            ProductStatus::Trading => "trading",
            ProductStatus::Halted => "halted",
        },
        "fees": fees
            .iter()
            .map(|t| {
                json!({
                    "volumeMin": units.quote_amount(t.volume_min),
                    "maker": rust_decimal::Decimal::new(i64::from(t.maker_ppm), 6).normalize().to_string(),
                    "taker": rust_decimal::Decimal::new(i64::from(t.taker_ppm), 6).normalize().to_string(),
                })
            })
            .collect::<Vec<_>>(),
    })
}

/// `GET /products`.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "products",
    params(CatalogueQuery),
    responses((status = 200, description = "[{productName, symbol, currentPrice, timestamp, currency, histories}]; X-Next-Cursor"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
pub(crate) async fn catalogue(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CatalogueQuery>,
) -> Result<Response, ApiError> {
    let text = query.query.unwrap_or_default();
    if text.len() > QUERY_BYTES_MAX {
        return Err(bad_request(format!(
            "query must be at most {QUERY_BYTES_MAX} bytes"
        )));
    }
    let (cursor, limit) = render::PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let cursor = match cursor {
        Some(c) => Some(u32::try_from(c).map_err(|_| bad_request("cursor is out of range"))?),
        None => None,
    };
    let market = state.market.read();
    let mut found = market
        .catalogue()
        .search(&text, cursor, limit.saturating_add(1));
    let next = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|id| u64::from(*id))
    } else {
        None
    };
    let mut reader = market.reader().map_err(unavailable)?;
    let items = found
        .iter()
        .map(|&id| listing_json(&market, &mut reader, id))
        .collect::<Result<Vec<_>, _>>()?;
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
    params(("symbol" = String, Path, description = "the product's symbol")),
    responses((status = 200, description = "the product with recent history; units and fees when tradable"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
pub(crate) async fn product(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
) -> Result<Response, ApiError> {
    let id = listed(&state, &symbol)?;
    let trading = tradable(&state, &symbol).await?;
    let mut value = {
        let market = state.market.read();
        let mut reader = market.reader().map_err(unavailable)?;
        let mut value = listing_json(&market, &mut reader, id)?;
        if let Some(listing) = market.catalogue().get(id) {
            value["tickSize"] = json!(fixed::to_decimal(listing.tick_size).to_string());
        }
        value
    };
    value["tradable"] = json!(trading.is_some());
    if let Some((_, units)) = trading
        && let (Value::Object(map), Value::Object(extra)) = (&mut value, trading_json(&units))
    {
        map.extend(extra);
    }
    Ok(axum::Json(value).into_response())
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
fn series_params(
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    limit_default: usize,
) -> Result<(i64, i64, usize), ApiError> {
    let from = time_param(from, "from", 0)?;
    let to = time_param(to, "to", i64::MAX)?;
    if from > to {
        return Err(bad_request("from must not be after to"));
    }
    Ok((from, to, limit_param(limit, limit_default)?))
}

fn time_param(value: Option<String>, name: &str, default: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|t| *t >= 0)
            .ok_or_else(|| bad_request(format!("{name} must be a unix time in ms"))),
    }
}

fn limit_param(value: Option<String>, default: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=SERIES_MAX).contains(&n) => Ok(n),
            _ => Err(bad_request(format!(
                "limit must be a whole number from 1 to {SERIES_MAX}"
            ))),
        },
    }
}

/// `?interval=&from=&to=&limit=` of the candles.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CandlesQuery {
    interval: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

/// `GET /products/{symbol}/candles?interval=1m&from=&to=&limit=`: OHLCV candles whose start
/// is in `[from, to]` (unix ms), oldest first, the newest `limit` (default 500, at most 5000)
/// if there are more. Intervals without ticks have no candle.
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}/candles",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol"), CandlesQuery),
    responses((status = 200, description = "[{start, open, high, low, close, volume, count, closed}]"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
pub(crate) async fn candles(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    ApiQuery(query): ApiQuery<CandlesQuery>,
) -> Result<Response, ApiError> {
    let interval = interval(query.interval.as_deref().unwrap_or("1m"))?;
    let (from, to, limit) = series_params(query.from, query.to, query.limit, CANDLES_DEFAULT)?;
    let id = listed(&state, &symbol)?;
    let market = state.market.read();
    let state_of = market.product(id).ok_or_else(|| unknown_symbol(&symbol))?;
    let open = state_of.candles.open[interval.index()];
    let head = state_of.candle_heads[interval.index()].link();
    let mut reader = market.reader().map_err(unavailable)?;
    let candles = reader
        .candles(id, interval, head, Some(open), from, to, limit)
        .map_err(unavailable)?;
    let items: Vec<Value> = candles
        .iter()
        .map(|c| candle_json(c, c.start != open.start))
        .collect();
    Ok(axum::Json(items).into_response())
}

/// `?from=&to=&limit=` of the ticks.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TicksQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

/// `GET /products/{symbol}/ticks?from=&to=&limit=`: the stored ticks with `from <= ts <= to`,
/// by exchange time, at most `limit` (default 100, at most 5000; the latest arrivals if
/// there are more).
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}/ticks",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol"), TicksQuery),
    responses((status = 200, description = "[{symbol, price, size, timestamp, seq, source}]"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
pub(crate) async fn ticks(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    ApiQuery(query): ApiQuery<TicksQuery>,
) -> Result<Response, ApiError> {
    let (from, to, limit) = series_params(query.from, query.to, query.limit, TICKS_DEFAULT)?;
    let id = listed(&state, &symbol)?;
    let market = state.market.read();
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
    let items: Vec<Value> = ticks.iter().map(|t| tick_json(&symbol, t, None)).collect();
    Ok(axum::Json(items).into_response())
}

/// `?depth=` of the book.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookQuery {
    depth: Option<String>,
}

/// `GET /products/{symbol}/book?depth=`: aggregated levels, best first, with the engine's
/// event sequence number the book was read at.
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}/book",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol"), BookQuery),
    responses((status = 200, description = "{symbol, bids, asks, eventSeq}"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
pub(crate) async fn book(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    ApiQuery(query): ApiQuery<BookQuery>,
) -> Result<Response, ApiError> {
    let depth = match query.depth {
        None => DEPTH_DEFAULT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=DEPTH_MAX).contains(&n) => n,
            _ => {
                return Err(bad_request(format!(
                    "depth must be a whole number from 1 to {DEPTH_MAX}"
                )));
            }
        },
    };
    let (id, units) = product_of(&state, &symbol).await?;
    let book = state
        .query(move |engine| book_json(engine, &units, id, depth))
        .await?;
    Ok(axum::Json(book).into_response())
}

/// The aggregated book of `product`, `depth` levels a side, best first, with the engine's
/// newest event sequence number (`eventSeq`) it was read at.
pub(crate) fn book_json(
    engine: &Engine,
    units: &ProductUnits,
    product: u32,
    depth: usize,
) -> Value {
    let product = ProductId::new(product);
    let side = |side| {
        engine
            .book_levels(product, side)
            .take(depth)
            .map(|l| {
                json!({
                    "price": units.price(l.price.ticks()),
                    "quantity": units.qty(l.qty.lots()),
                    "orders": l.n_orders,
                })
            })
            .collect::<Vec<_>>()
    };
    json!({
        "symbol": units.symbol(),
        "bids": side(Side::Buy),
        "asks": side(Side::Sell),
        "eventSeq": engine.event_seq(),
    })
}
