//! The catalogue and market data over HTTP (public, no token): `GET /api/v1/products`,
//! `GET /products/{symbol}` and `GET /products/{symbol}/book`.
//!
//! The products are the engine's. Until the market-data feed lands, a product's current
//! price and `histories` are its recent trades on Bourse (from the history read model):
//! `currentPrice` is the last trade's price, `histories` the last
//! [`crate::history::RECENT_PRICES`] trades, oldest first, and both are `null`/empty before
//! the first trade.
//!
//! The catalogue page is in product id order (the order of listing); `query` keeps the
//! products whose symbol or name contains it, ignoring case; `cursor` is the last id of the
//! previous page (the `X-Next-Cursor` header).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bourse_engine::{Engine, ProductId, ProductStatus, Side, Symbol};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{ApiError, ApiQuery, AppState, bad_request};
use crate::render::{self, ProductUnits};

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

fn product_json(id: u32, units: &ProductUnits, recent: &[(i64, i64)], full: bool) -> Value {
    let last = recent.last();
    let mut value = json!({
        "productName": units.product.name(),
        "symbol": units.symbol(),
        "currentPrice": last.map(|(p, _)| units.price(*p)),
        "timestamp": last.map(|(_, t)| *t),
        "currency": units.quote_code(),
        "histories": recent
            .iter()
            .map(|(p, t)| json!({"price": units.price(*p), "timestamp": t}))
            .collect::<Vec<_>>(),
    });
    if full {
        let fees = units.product.fees().tiers();
        value["productId"] = json!(id);
        value["baseCurrency"] = json!(units.base.code().as_str());
        value["tickSize"] = json!(units.price(1));
        value["lotSize"] = json!(units.qty(1));
        value["status"] = json!(match units.product.status() {
            ProductStatus::Trading => "trading",
            ProductStatus::Halted => "halted",
        });
        value["fees"] = fees
            .iter()
            .map(|t| {
                json!({
                    "volumeMin": units.quote_amount(t.volume_min),
                    "maker": rust_decimal::Decimal::new(i64::from(t.maker_ppm), 6).normalize().to_string(),
                    "taker": rust_decimal::Decimal::new(i64::from(t.taker_ppm), 6).normalize().to_string(),
                })
            })
            .collect();
    }
    value
}

/// The products after `cursor` that match `query`, at most `limit` (+1 to tell whether more
/// follow).
fn catalogue_page(
    engine: &Engine,
    query: &str,
    cursor: Option<u32>,
    limit: usize,
) -> Vec<(u32, ProductUnits)> {
    let needle = query.to_ascii_lowercase();
    let start = cursor.map_or(0, |c| c as usize + 1);
    (start..engine.n_products())
        .filter_map(|id| {
            let id = id as u32;
            let units = ProductUnits::of(engine, ProductId::new(id))?;
            let matches = needle.is_empty()
                || units.symbol().to_ascii_lowercase().contains(&needle)
                || units.product.name().to_ascii_lowercase().contains(&needle);
            matches.then_some((id, units))
        })
        .take(limit.saturating_add(1))
        .collect()
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
    let mut found = state
        .query(move |engine| catalogue_page(engine, &text, cursor, limit))
        .await?;
    let next = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|(id, _)| u64::from(*id))
    } else {
        None
    };
    let items = state.history.read_now(|h| {
        found
            .iter()
            .map(|(id, units)| product_json(*id, units, &h.recent_prices(*id), false))
            .collect()
    });
    Ok(render::page_response(items, next))
}

async fn product_of(state: &AppState, symbol: &str) -> Result<(u32, ProductUnits), ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_symbol",
            format!("no product {symbol:?}"),
        )
    };
    let parsed = Symbol::new(symbol).ok_or_else(unknown)?;
    state
        .query(move |engine| {
            let id = engine.product_by_symbol(&parsed)?;
            Some((id.get(), ProductUnits::of(engine, id)?))
        })
        .await?
        .ok_or_else(unknown)
}

/// `GET /products/{symbol}`: the product with its units, fees and recent history.
#[utoipa::path(
    get,
    path = "/api/v1/products/{symbol}",
    tag = "products",
    params(("symbol" = String, Path, description = "the product's symbol")),
    responses((status = 200, description = "the product with units, fees and recent history"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
pub(crate) async fn product(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
) -> Result<Response, ApiError> {
    let (id, units) = product_of(&state, &symbol).await?;
    let recent = state.history.read_now(|h| h.recent_prices(id));
    Ok(axum::Json(product_json(id, &units, &recent, true)).into_response())
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
