//! How the API shows the engine's integers: prices, quantities and amounts as decimal
//! strings in the product's or asset's units, times in unix milliseconds, and the records of
//! the history as JSON objects. Pagination: every list is a JSON array, newest first, and the
//! cursor of the next (older) page is in the `X-Next-Cursor` header (absent on the last page).

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{
    Amount, Asset, AssetCode, AssetId, Engine, FundsMethod, Qty, ShortStr, Symbol,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, bad_request};
use bourse_history::{
    EndReason, FundsRecord, Liquidity, OrderRecord, OrderStatus, Page, SideName, Tif, TradeRecord,
};
pub use bourse_market_service::{ProductUnits, amount, units_of};
use bourse_marketdata::candle::Candle;
use bourse_marketdata::fixed;
use bourse_marketdata::tick::Tick;

/// Page size when a request names none, and the largest a request may ask for.
pub const PAGE_DEFAULT: usize = 50;
pub const PAGE_MAX: usize = 500;

/// `limit` and `cursor` of a list request.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl PageQuery {
    /// `(cursor, limit)`, checked.
    pub fn parse(&self) -> Result<(Option<u64>, usize), ApiError> {
        let limit = match &self.limit {
            None => PAGE_DEFAULT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
                _ => {
                    return Err(bad_request(format!(
                        "limit must be a whole number from 1 to {PAGE_MAX}"
                    )));
                }
            },
        };
        let cursor = match &self.cursor {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .map_err(|_| bad_request(format!("cursor {text:?} is not a cursor")))?,
            ),
        };
        Ok((cursor, limit))
    }
}

/// A JSON array with the next page's cursor in `X-Next-Cursor`.
pub fn page_response(items: Vec<Value>, next: Option<u64>) -> Response {
    let mut response = (StatusCode::OK, axum::Json(Value::Array(items))).into_response();
    if let Some(next) = next
        && let Ok(value) = HeaderValue::from_str(&next.to_string())
    {
        response.headers_mut().insert("x-next-cursor", value);
    }
    response
}

/// The assets of `ids` (for funds records).
pub fn assets_of(engine: &Engine, ids: &[u16]) -> HashMap<u16, Asset> {
    ids.iter()
        .filter_map(|&id| Some((id, engine.asset_info(AssetId::new(id))?.clone())))
        .collect()
}

fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::New | OrderStatus::Open => "open",
        OrderStatus::Filled => "filled",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Expired => "expired",
    }
}

/// The average fill price, `notional / filled`, in quote units per base unit, to the
/// product's price scale plus 4 digits (it need not be on the tick grid).
fn average_price(units: &ProductUnits, order: &OrderRecord) -> Option<String> {
    if order.filled == 0 {
        return None;
    }
    let notional = units
        .quote
        .amount_to_decimal(Amount::from_minor(order.notional));
    let qty = units.product.qty_to_decimal(Qty::from_lots(order.filled));
    let digits = u32::from(units.product.price_scale()) + 4;
    notional
        .checked_div(qty)
        .map(|p| p.round_dp(digits).normalize().to_string())
}

/// An order as the API shows it. Typed rather than built as a `Value`, so that a hot path
/// (the answer to a WebSocket order) serialises it straight to text; [`order`] gives the
/// same object as a `Value`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView<'a> {
    order_id: u64,
    client_order_id: &'a Option<String>,
    #[serde(serialize_with = "short_str")]
    symbol: Symbol,
    side: SideName,
    #[serde(rename = "type")]
    order_type: &'static str,
    time_in_force: Tif,
    price: Option<String>,
    quantity: String,
    filled_quantity: String,
    remaining_quantity: String,
    average_price: Option<String>,
    notional: String,
    fees: String,
    #[serde(serialize_with = "short_str")]
    fee_currency: AssetCode,
    status: &'static str,
    end_reason: Option<EndReason>,
    created_at: i64,
    updated_at: i64,
    /// Given for one order, left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    fills: Option<Vec<TradeView>>,
}

/// One trade of the account, as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TradeView {
    trade_id: u64,
    order_id: u64,
    #[serde(serialize_with = "short_str")]
    symbol: Symbol,
    side: SideName,
    liquidity: Liquidity,
    price: String,
    quantity: String,
    notional: String,
    fee: String,
    #[serde(serialize_with = "short_str")]
    fee_currency: AssetCode,
    timestamp: i64,
}

/// An order; `fills` are its trades (given for one order, left out of lists).
pub fn order_view<'a>(
    units: &'a ProductUnits,
    order: &'a OrderRecord,
    fills: Option<&[TradeRecord]>,
) -> OrderView<'a> {
    OrderView {
        order_id: order.id,
        client_order_id: &order.client_order_id,
        symbol: units.product.symbol(),
        side: order.side,
        order_type: if order.market { "market" } else { "limit" },
        time_in_force: order.tif,
        price: order.price.map(|p| units.price(p)),
        quantity: units.qty(order.qty),
        filled_quantity: units.qty(order.filled),
        remaining_quantity: units.qty(order.remaining),
        average_price: average_price(units, order),
        notional: units.quote_amount(order.notional),
        fees: units.quote_amount(order.fees),
        fee_currency: units.quote.code(),
        status: status_name(order.status),
        end_reason: order.end_reason,
        created_at: order.created_ms,
        updated_at: order.updated_ms,
        fills: fills.map(|fills| fills.iter().map(|t| trade_view(units, t)).collect()),
    }
}

/// [`order_view`] as a `Value`.
pub fn order(units: &ProductUnits, order: &OrderRecord, fills: Option<&[TradeRecord]>) -> Value {
    to_value(&order_view(units, order, fills))
}

/// One trade of the account.
pub fn trade_view(units: &ProductUnits, trade: &TradeRecord) -> TradeView {
    TradeView {
        trade_id: trade.id,
        order_id: trade.order,
        symbol: units.product.symbol(),
        side: trade.side,
        liquidity: trade.liquidity,
        price: units.price(trade.price),
        quantity: units.qty(trade.qty),
        notional: units.quote_amount(trade.notional),
        fee: units.quote_amount(trade.fee),
        fee_currency: units.quote.code(),
        timestamp: trade.ts,
    }
}

/// [`trade_view`] as a `Value`.
pub fn trade(units: &ProductUnits, trade: &TradeRecord) -> Value {
    to_value(&trade_view(units, trade))
}

fn short_str<S: serde::Serializer, const N: usize>(
    s: &ShortStr<N>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(s.as_str())
}

/// A view as a `Value` (the views hold only strings, numbers and options, which cannot fail
/// to serialise).
fn to_value(view: &impl Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// One funds movement.
pub fn funds(
    record: &FundsRecord,
    assets: &HashMap<u16, Asset>,
    units: &HashMap<u32, ProductUnits>,
) -> Value {
    let asset = match (record.asset, record.product) {
        (Some(asset), _) => assets.get(&asset),
        (None, Some(product)) => units.get(&product).map(|u| &u.quote),
        (None, None) => None,
    };
    json!({
        "id": record.id,
        "kind": record.kind,
        "currency": asset.map(|a| a.code().as_str().to_string()),
        "amount": asset.map(|a| amount(a, record.amount)),
        "requestId": record.request_id,
        "type": record.method.map(FundsMethod::name),
        "details": record.method.map(crate::funds_api::method_details),
        "orderId": record.order,
        "symbol": record.product.and_then(|p| units.get(&p)).map(ProductUnits::symbol),
        "timestamp": record.ts,
    })
}

/// The products a page of records refers to, each once.
pub fn products_in<T>(items: &[T], product: impl Fn(&T) -> Option<u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = items.iter().filter_map(product).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A page rendered with `show`, skipping records whose product is gone (never, today).
pub fn page_of<T>(
    page: &Page<T>,
    units: &HashMap<u32, ProductUnits>,
    product: impl Fn(&T) -> u32,
    show: impl Fn(&ProductUnits, &T) -> Value,
) -> Response {
    let items = page
        .items
        .iter()
        .filter_map(|item| Some(show(units.get(&product(item))?, item)))
        .collect();
    page_response(items, page.next)
}

/// A decimal from a request's text field, positive.
pub fn positive_decimal(field: &str, text: &str) -> Result<Decimal, ApiError> {
    let value: Decimal = text.trim().parse().map_err(|_| {
        bad_request(format!(
            "{field} {text:?} is not a decimal number (give it as a string, e.g. \"1.5\")"
        ))
    })?;
    if value <= Decimal::ZERO {
        return Err(bad_request(format!("{field} must be positive")));
    }
    Ok(value)
}

/// A tick as the API shows it.
pub fn tick_json(symbol: &str, tick: &Tick, published_us: Option<u64>) -> Value {
    let mut value = json!({
        "symbol": symbol,
        "price": fixed::to_decimal(tick.price).to_string(),
        "size": fixed::to_decimal(tick.size).to_string(),
        "timestamp": tick.ts,
        "seq": tick.seq,
        "source": tick.source.name(),
    });
    if let Some(us) = published_us {
        value["publishedUs"] = json!(us);
    }
    value
}

/// A candle as the API shows it (`closed`: it will not change again unless a late tick
/// amends it).
pub fn candle_json(candle: &Candle, closed: bool) -> Value {
    json!({
        "start": candle.start,
        "open": fixed::to_decimal(candle.open).to_string(),
        "high": fixed::to_decimal(candle.high).to_string(),
        "low": fixed::to_decimal(candle.low).to_string(),
        "close": fixed::to_decimal(candle.close).to_string(),
        "volume": fixed::volume_to_decimal(candle.volume).to_string(),
        "count": candle.count,
        "closed": closed,
    })
}
