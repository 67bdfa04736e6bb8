//! How the API shows the engine's integers: prices, quantities and amounts as decimal
//! strings in the product's or asset's units, times in unix milliseconds, and the records of
//! the history as JSON objects. Pagination: every list is a JSON array, newest first, and the
//! cursor of the next (older) page is in the `X-Next-Cursor` header (absent on the last page).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{
    Amount, Asset, AssetCode, AssetId, Engine, FundsMethod, Qty, ShortStr, Symbol,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::convert::{ConvertedAmount, ConvertedOrder, ConvertedTrade, Rates};
use crate::error::{ApiError, bad_request};
use crate::query::{Count, Cursor, SeqCursor};
use crate::schema::{CurrencyCode, DecimalText, MethodDetails, SymbolText};
use bourse_history::{
    EndReason, FundsKind, FundsRecord, Liquidity, OrderRecord, OrderStatus, Page, SideName, Tif,
    TradeRecord,
};
pub use bourse_market_service::{ProductUnits, amount, units_of};
use bourse_marketdata::candle::Candle;
use bourse_marketdata::fixed;
use bourse_marketdata::tick::Tick;

/// Page size when a request names none, and the largest a request may ask for.
pub const PAGE_DEFAULT: usize = 50;
pub const PAGE_MAX: usize = 500;

/// `limit`, `cursor` and `currency` of a list request.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<Count<PAGE_MAX>>,
    /// The `X-Next-Cursor` of the previous page.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub cursor: Option<SeqCursor>,
    /// Adds each record's values in this currency (`converted`), or `own` for none;
    /// default: the account's preference (docs/api.md, "Currencies").
    #[param(value_type = Option<CurrencyCode>)]
    pub currency: Option<String>,
}

impl PageQuery {
    /// `(cursor, limit)`, with the defaults.
    pub fn get(&self) -> (Option<u64>, usize) {
        (
            self.cursor.map(|Cursor(c)| c),
            self.limit.map_or(PAGE_DEFAULT, |Count(n)| n),
        )
    }
}

/// A JSON array with the next page's cursor in `X-Next-Cursor`.
pub fn page_response<T: Serialize>(items: Vec<T>, next: Option<u64>) -> Response {
    let mut response = (StatusCode::OK, axum::Json(items)).into_response();
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

/// An order's status as the API names it (a new order that has not rested yet is `open`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatusName {
    Open,
    Filled,
    Cancelled,
    Expired,
}

impl From<OrderStatus> for OrderStatusName {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::New | OrderStatus::Open => OrderStatusName::Open,
            OrderStatus::Filled => OrderStatusName::Filled,
            OrderStatus::Cancelled => OrderStatusName::Cancelled,
            OrderStatus::Expired => OrderStatusName::Expired,
        }
    }
}

/// A market or a limit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderTypeName {
    Market,
    Limit,
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

/// An order as the API shows it. Typed, so that a hot path (the answer to a WebSocket order)
/// serialises it straight to text and the OpenAPI document states its fields; [`order`]
/// gives the same object as a `Value` (for the WebSocket channels).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Order)]
pub struct OrderView<'a> {
    order_id: u64,
    /// The client's id of the order, if it gave one.
    #[schema(value_type = Option<String>, pattern = "^[!-~]{1,36}$", required = true)]
    client_order_id: &'a Option<String>,
    #[serde(serialize_with = "short_str")]
    #[schema(value_type = SymbolText)]
    symbol: Symbol,
    #[schema(value_type = crate::schema::Side)]
    side: SideName,
    #[serde(rename = "type")]
    order_type: OrderTypeName,
    #[schema(value_type = crate::schema::TimeInForce)]
    time_in_force: Tif,
    /// The limit price; `null` for a market order.
    #[schema(value_type = Option<DecimalText>, required = true)]
    price: Option<String>,
    #[schema(value_type = DecimalText)]
    quantity: String,
    #[schema(value_type = DecimalText)]
    filled_quantity: String,
    #[schema(value_type = DecimalText)]
    remaining_quantity: String,
    /// `notional / filledQuantity` to the price scale plus 4 digits; `null` before a fill.
    #[schema(value_type = Option<DecimalText>, required = true)]
    average_price: Option<String>,
    /// What the fills cost or paid, in the quote currency.
    #[schema(value_type = DecimalText)]
    notional: String,
    #[schema(value_type = DecimalText)]
    fees: String,
    #[serde(serialize_with = "short_str")]
    #[schema(value_type = CurrencyCode)]
    fee_currency: AssetCode,
    status: OrderStatusName,
    /// Why it ended without filling in full; `null` otherwise.
    #[schema(value_type = Option<crate::schema::EndReason>, required = true)]
    end_reason: Option<EndReason>,
    /// Unix ms.
    created_at: i64,
    /// Unix ms.
    updated_at: i64,
    /// Its trades, oldest first: given for one order, left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<TradeView>, required = false)]
    fills: Option<Vec<TradeView>>,
    /// `true` when this answers a repeated placement (the same `clientOrderId` and body within
    /// 10 minutes): the order is the first placement's, as it is now, and nothing new was
    /// placed. Absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    duplicate: bool,
    /// With another currency asked (`?currency=`, or the account's preference): the values
    /// in it. Absent when the order is in that currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    converted: Option<ConvertedOrder>,
}

/// One trade of the account, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Trade)]
pub struct TradeView {
    /// The fill's event sequence number: the same for both sides.
    trade_id: u64,
    order_id: u64,
    #[serde(serialize_with = "short_str")]
    #[schema(value_type = SymbolText)]
    symbol: Symbol,
    #[schema(value_type = crate::schema::Side)]
    side: SideName,
    #[schema(value_type = crate::schema::Liquidity)]
    liquidity: Liquidity,
    #[schema(value_type = DecimalText)]
    price: String,
    #[schema(value_type = DecimalText)]
    quantity: String,
    #[schema(value_type = DecimalText)]
    notional: String,
    #[schema(value_type = DecimalText)]
    fee: String,
    #[serde(serialize_with = "short_str")]
    #[schema(value_type = CurrencyCode)]
    fee_currency: AssetCode,
    /// Unix ms.
    timestamp: i64,
    /// With another currency asked: the values in it. Absent when the trade is in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    converted: Option<ConvertedTrade>,
}

impl TradeView {
    /// Adds `converted`, at the rate in force at the trade's time.
    pub fn convert(mut self, rates: Option<&Rates>) -> Self {
        let Some(rates) = rates else {
            return self;
        };
        let rate = rates.at(self.fee_currency.as_str(), self.timestamp);
        if rate.applies() {
            self.converted = Some(ConvertedTrade {
                currency: Arc::clone(&rates.target),
                price: rate.value(&self.price),
                notional: rate.value(&self.notional),
                fee: rate.value(&self.fee),
                rate: rate.view(),
            });
        }
        self
    }
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
        order_type: if order.market {
            OrderTypeName::Market
        } else {
            OrderTypeName::Limit
        },
        time_in_force: order.tif,
        price: order.price.map(|p| units.price(p)),
        quantity: units.qty(order.qty),
        filled_quantity: units.qty(order.filled),
        remaining_quantity: units.qty(order.remaining),
        average_price: average_price(units, order),
        notional: units.quote_amount(order.notional),
        fees: units.quote_amount(order.fees),
        fee_currency: units.quote.code(),
        status: order.status.into(),
        end_reason: order.end_reason,
        created_at: order.created_ms,
        updated_at: order.updated_ms,
        fills: fills.map(|fills| fills.iter().map(|t| trade_view(units, t)).collect()),
        duplicate: false,
        converted: None,
    }
}

impl OrderView<'_> {
    /// Marks the answer to a repeated placement (see the `duplicate` field).
    pub fn duplicate(mut self, duplicate: bool) -> Self {
        self.duplicate = duplicate;
        self
    }

    /// Adds `converted`, at the rate in force at `updatedAt`, and to each fill at its time.
    pub fn convert(mut self, rates: Option<&Rates>) -> Self {
        let Some(rates) = rates else {
            return self;
        };
        let rate = rates.at(self.fee_currency.as_str(), self.updated_at);
        if rate.applies() {
            self.converted = Some(ConvertedOrder {
                currency: Arc::clone(&rates.target),
                price: self.price.as_deref().and_then(|p| rate.value(p)),
                average_price: self.average_price.as_deref().and_then(|p| rate.value(p)),
                notional: rate.value(&self.notional),
                fees: rate.value(&self.fees),
                rate: rate.view(),
            });
        }
        if let Some(fills) = self.fills.take() {
            self.fills = Some(fills.into_iter().map(|t| t.convert(Some(rates))).collect());
        }
        self
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
        converted: None,
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
pub(crate) fn to_value(view: &impl Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// One funds movement of the account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FundsMovement {
    /// The event sequence number.
    id: u64,
    #[schema(value_type = crate::schema::FundsKind)]
    kind: FundsKind,
    #[schema(value_type = Option<CurrencyCode>, required = true)]
    currency: Option<String>,
    /// Positive, at the currency's scale.
    #[schema(value_type = Option<DecimalText>, required = true)]
    amount: Option<String>,
    /// The deposit's or withdrawal's `requestId`; `null` for fees and internal funding.
    #[schema(required = true)]
    request_id: Option<String>,
    /// How a deposit was paid or a withdrawal paid out; `null` for fees.
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::schema::FundsMethod>, required = true)]
    method: Option<&'static str>,
    /// `{cardLast4}` for a card, `{}` otherwise; `null` for fees.
    #[schema(required = true)]
    details: Option<MethodDetails>,
    /// The order that paid a fee.
    #[schema(required = true)]
    order_id: Option<u64>,
    /// The product of the order that paid a fee.
    #[schema(value_type = Option<SymbolText>, required = true)]
    symbol: Option<String>,
    /// Unix ms.
    timestamp: i64,
    /// With another currency asked: the amount in it. Absent when the movement is in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    converted: Option<ConvertedAmount>,
}

impl FundsMovement {
    /// Adds `converted`, at the rate in force at the movement's time.
    pub fn convert(mut self, rates: Option<&Rates>) -> Self {
        let Some(rates) = rates else {
            return self;
        };
        if let (Some(currency), Some(amount)) = (&self.currency, &self.amount) {
            let rate = rates.at(currency, self.timestamp);
            if rate.applies() {
                self.converted = Some(ConvertedAmount {
                    currency: Arc::clone(&rates.target),
                    amount: rate.value(amount),
                    rate: rate.view(),
                });
            }
        }
        self
    }

    /// Its currency and time, when it has an amount (what converting it needs).
    pub fn valued_at(&self) -> Option<(String, i64)> {
        self.currency.clone().map(|c| (c, self.timestamp))
    }
}

/// One funds movement.
pub fn funds(
    record: &FundsRecord,
    assets: &HashMap<u16, Asset>,
    units: &HashMap<u32, ProductUnits>,
) -> FundsMovement {
    let asset = match (record.asset, record.product) {
        (Some(asset), _) => assets.get(&asset),
        (None, Some(product)) => units.get(&product).map(|u| &u.quote),
        (None, None) => None,
    };
    FundsMovement {
        id: record.id,
        kind: record.kind,
        currency: asset.map(|a| a.code().as_str().to_string()),
        amount: asset.map(|a| amount(a, record.amount)),
        request_id: record.request_id.clone(),
        method: record.method.map(FundsMethod::name),
        details: record.method.map(method_details),
        order_id: record.order,
        symbol: record
            .product
            .and_then(|p| units.get(&p))
            .map(ProductUnits::symbol),
        timestamp: record.ts,
        converted: None,
    }
}

/// The products a page of records refers to, each once.
pub fn products_in<T>(items: &[T], product: impl Fn(&T) -> Option<u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = items.iter().filter_map(product).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A page rendered with `show`, skipping records whose product is gone (never, today).
pub fn page_of<'a, T, V: Serialize>(
    page: &'a Page<T>,
    units: &'a HashMap<u32, ProductUnits>,
    product: impl Fn(&T) -> u32,
    show: impl Fn(&'a ProductUnits, &'a T) -> V,
) -> Response {
    let items: Vec<V> = page
        .items
        .iter()
        .filter_map(|item| Some(show(units.get(&product(item))?, item)))
        .collect();
    page_response(items, page.next)
}

/// A decimal from a request's text field, positive, written as the document's
/// [`crate::schema::PositiveDecimal`] says: digits, optionally a point and digits (no sign,
/// exponent, separator or space).
pub fn positive_decimal(field: &str, text: &str) -> Result<Decimal, ApiError> {
    let not_decimal = || {
        bad_request(format!(
            "{field} {text:?} is not a decimal number (give it as a string, e.g. \"1.5\")"
        ))
    };
    let value: Decimal = text.trim().parse().map_err(|_| not_decimal())?;
    if value <= Decimal::ZERO {
        return Err(bad_request(format!("{field} must be positive")));
    }
    if !is_plain_decimal(text) {
        return Err(not_decimal());
    }
    Ok(value)
}

/// Whether `text` is digits, optionally followed by a point and digits.
fn is_plain_decimal(text: &str) -> bool {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

/// Where a tick comes from: the feed, or a trade on Bourse.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum TickSource {
    Feed,
    Bourse,
}

/// A tick as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Tick)]
pub struct TickView {
    #[schema(value_type = SymbolText)]
    symbol: String,
    #[schema(value_type = DecimalText)]
    price: String,
    #[schema(value_type = DecimalText)]
    size: String,
    /// Exchange time, unix ms.
    timestamp: i64,
    /// The source's sequence number of this product's ticks.
    seq: u64,
    #[schema(value_type = TickSource)]
    source: &'static str,
    /// When the server published it (unix µs): WebSocket updates only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64, required = false)]
    published_us: Option<u64>,
    /// With `?currency=`: the currency of `price`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CurrencyCode>)]
    currency: Option<std::sync::Arc<str>>,
    /// With `?currency=`: the rate `price` was converted at, the pair's tick at or before
    /// this one (docs/api.md, "Currencies").
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<crate::fx::RateView>,
}

impl TickView {
    /// This tick's price converted into `currency` at `rate` (the pair's tick at or before
    /// it); `None` if the rate is not positive.
    pub fn converted(
        mut self,
        tick: &Tick,
        currency: &std::sync::Arc<str>,
        pair: &crate::fx::Pair,
        (rate, time): (i64, i64),
    ) -> Option<TickView> {
        let price = crate::fx::convert(tick.price, rate, pair.divide)?;
        self.price = fixed::to_decimal(price).to_string();
        self.currency = Some(std::sync::Arc::clone(currency));
        self.rate = Some(crate::convert::rate_view(pair, rate, time));
        Some(self)
    }
}

/// A tick as the API shows it.
pub fn tick_view(symbol: &str, tick: &Tick, published_us: Option<u64>) -> TickView {
    TickView {
        symbol: symbol.to_string(),
        price: fixed::to_decimal(tick.price).to_string(),
        size: fixed::to_decimal(tick.size).to_string(),
        timestamp: tick.ts,
        seq: tick.seq,
        source: tick.source.name(),
        published_us,
        currency: None,
        rate: None,
    }
}

/// [`tick_view`] as a `Value` (the WebSocket channels).
pub fn tick_json(symbol: &str, tick: &Tick, published_us: Option<u64>) -> Value {
    to_value(&tick_view(symbol, tick, published_us))
}

/// A candle as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Candle)]
pub struct CandleView {
    /// The start of its interval, unix ms.
    start: i64,
    #[schema(value_type = DecimalText)]
    open: String,
    #[schema(value_type = DecimalText)]
    high: String,
    #[schema(value_type = DecimalText)]
    low: String,
    #[schema(value_type = DecimalText)]
    close: String,
    #[schema(value_type = DecimalText)]
    volume: String,
    /// Ticks in it.
    count: u32,
    /// `false` for the open candle; a closed one changes only if a late tick amends it.
    closed: bool,
    /// With `?currency=`: the currency of `open`, `high`, `low` and `close`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CurrencyCode>)]
    currency: Option<std::sync::Arc<str>>,
    /// With `?currency=`: the rate they were converted at (docs/api.md, "Currencies").
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<crate::fx::RateView>,
}

impl CandleView {
    /// This candle's prices converted into `currency` at `rate` (the close of the candle of
    /// `pair` that [`crate::fx::rates_for_candles`] chose); `None` if the rate is not positive.
    pub fn converted(
        mut self,
        candle: &Candle,
        currency: &std::sync::Arc<str>,
        pair: &crate::fx::Pair,
        rate: &Candle,
    ) -> Option<CandleView> {
        let at = |value: i64| {
            crate::fx::convert(value, rate.close, pair.divide)
                .map(|units| fixed::to_decimal(units).to_string())
        };
        self.open = at(candle.open)?;
        self.high = at(candle.high)?;
        self.low = at(candle.low)?;
        self.close = at(candle.close)?;
        self.currency = Some(std::sync::Arc::clone(currency));
        self.rate = Some(crate::convert::rate_view(pair, rate.close, rate.last.ts));
        Some(self)
    }
}

/// A candle as the API shows it (`closed`: it will not change again unless a late tick
/// amends it).
pub fn candle_view(candle: &Candle, closed: bool) -> CandleView {
    CandleView {
        start: candle.start,
        open: fixed::to_decimal(candle.open).to_string(),
        high: fixed::to_decimal(candle.high).to_string(),
        low: fixed::to_decimal(candle.low).to_string(),
        close: fixed::to_decimal(candle.close).to_string(),
        volume: fixed::volume_to_decimal(candle.volume).to_string(),
        count: candle.count,
        closed,
        currency: None,
        rate: None,
    }
}

/// [`candle_view`] as a `Value` (the WebSocket channels).
pub fn candle_json(candle: &Candle, closed: bool) -> Value {
    to_value(&candle_view(candle, closed))
}

/// What a funds record may show of its method: a card's last four digits, nothing else.
pub fn method_details(method: FundsMethod) -> MethodDetails {
    match method {
        FundsMethod::Card(last4) => MethodDetails {
            card_last4: Some(last4.as_str().to_string()),
        },
        FundsMethod::Unspecified | FundsMethod::Upi | FundsMethod::Bank => MethodDetails::default(),
    }
}
