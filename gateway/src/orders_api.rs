//! Trading: `POST /api/v1/product/buy` and `/product/sell`, `GET /orders`, `GET /orders/{id}`,
//! `DELETE /orders/{id}`, `GET /trades`, `GET /funds/history` and the fee quote `GET /fees`.
//!
//! An order's body is `{symbol, quantity, type: market|limit, price?, timeInForce?,
//! clientOrderId?}`; quantity and price are decimal strings in the product's units (on its lot
//! and tick grid). `timeInForce` is `GTC` (the default for limit orders), `IOC` (the default,
//! and the only choice, for market orders), `FOK` or `POST_ONLY`. The answer is the order as the
//! engine left it, with its fills: a market order is filled or expired, a limit order rests
//! (`open`), is filled, or expired.
//!
//! Placing is idempotent by `clientOrderId` within the engine's order-key window
//! (`bourse_engine::ORDER_KEY_WINDOW_MS`, 10 minutes): a repeat with the same body is answered
//! 200 with the first order as it is now (from the history, as `GET /orders/{id}` reads it) and
//! `duplicate: true`; with another body it is refused 409 `duplicate_client_order_id`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{
    AccountId, ClientOrderId, CommandKind, LimitKind, NewOrder, OrderId, OrderType, Reject,
    SelfTradePrevention, Side, Symbol, TimeInForce,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::account_api::authenticate;
use crate::convert;
use crate::error::internal;
use crate::error::{ApiError, bad_request, parse_json, rejected};
use crate::openapi::ErrorBody;
use crate::query::{ApiQuery, Count, OrdersStatus, SeqCursor, SideParam};
use crate::render::positive_decimal;
use crate::render::{self, OrderView, PAGE_MAX, PageQuery, ProductUnits, TradeView};
use crate::schema::{
    BadRequest, BadValue, BearerErrors, BodyErrors, CurrencyCode, DecimalText, HistoryUnavailable,
    NoRate, PositiveDecimal, SymbolText, Unavailable,
};
use crate::state::AppState;
use bourse_history::{Entry, History, OrderRecord, TradeRecord};

/// The body of an order.
#[derive(Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrderBody {
    #[schema(value_type = SymbolText)]
    pub(crate) symbol: String,
    /// Positive, a whole number of the product's lots.
    #[schema(value_type = PositiveDecimal)]
    pub(crate) quantity: String,
    #[serde(rename = "type")]
    #[schema(value_type = render::OrderTypeName)]
    pub(crate) order_type: String,
    /// A limit order's price, positive, on the product's tick grid; a market order has none.
    #[serde(default)]
    #[schema(value_type = Option<PositiveDecimal>)]
    pub(crate) price: Option<String>,
    /// `GTC` (the default for limit orders), `IOC` (the default, and the only choice, for
    /// market orders), `FOK` or `POST_ONLY`.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::TimeInForce>)]
    pub(crate) time_in_force: Option<String>,
    /// The client's id of the order: 1 to 36 printable ASCII characters without spaces,
    /// unique among the account's open orders. It makes the placement idempotent: a repeat
    /// with the same body within 10 minutes is answered 200 with the first order and
    /// `duplicate: true`; with another body, 409 `duplicate_client_order_id`.
    #[serde(default)]
    #[schema(pattern = "^[!-~]{1,36}$")]
    pub(crate) client_order_id: Option<String>,
}

/// The statuses an order or cancel can be answered with besides 200/201.
const ORDER_REFUSED: &str = "`insufficient_funds`, `would_take_liquidity` (a POST_ONLY order that would match), `would_not_fill` (a FOK order that cannot fill in full), `product_halted`, `too_many_open_orders`, `rejected`: the engine refused";

impl OrderBody {
    pub(crate) fn symbol(&self) -> &str {
        &self.symbol
    }
}

fn unknown_symbol(symbol: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_symbol",
        format!("no product {symbol:?}"),
    )
}

fn parse_tif(text: &str) -> Result<TimeInForce, ApiError> {
    Ok(match text.to_ascii_uppercase().as_str() {
        "GTC" => TimeInForce::Gtc,
        "IOC" => TimeInForce::Ioc,
        "FOK" => TimeInForce::Fok,
        "POST_ONLY" | "POSTONLY" => TimeInForce::PostOnly,
        _ => {
            return Err(bad_request(format!(
                "timeInForce {text:?} is not one of GTC, IOC, FOK, POST_ONLY"
            )));
        }
    })
}

/// Resolves the symbol and converts the decimals, in one engine query.
async fn resolve_product(
    state: &AppState,
    symbol: &str,
) -> Result<(bourse_engine::ProductId, ProductUnits), ApiError> {
    let parsed = Symbol::new(symbol).ok_or_else(|| unknown_symbol(symbol))?;
    state
        .query(move |engine| {
            let product = engine.product_by_symbol(&parsed)?;
            Some((product, ProductUnits::of(engine, product)?))
        })
        .await?
        .ok_or_else(|| unknown_symbol(symbol))
}

/// Checks an order's body and builds the engine's order.
pub(crate) fn new_order(
    account: AccountId,
    side: Side,
    body: &OrderBody,
    product: bourse_engine::ProductId,
    units: &ProductUnits,
) -> Result<NewOrder, ApiError> {
    let order_type = match body.order_type.as_str() {
        "market" => OrderType::Market,
        "limit" => OrderType::Limit,
        other => {
            return Err(bad_request(format!(
                "type {other:?} is not one of market, limit"
            )));
        }
    };
    let quantity = positive_decimal("quantity", &body.quantity)?;
    let qty = units.product.qty_from_decimal(quantity).map_err(|_| {
        bad_request(format!(
            "quantity {} is not a whole number of lots of {} (lot size {}) or is too large",
            body.quantity,
            units.symbol(),
            units.qty(1)
        ))
    })?;
    let price = match (order_type, &body.price) {
        (OrderType::Market, Some(_)) => {
            return Err(bad_request("a market order takes no price"));
        }
        (OrderType::Market, None) => None,
        (OrderType::Limit, None) => return Err(bad_request("a limit order needs a price")),
        (OrderType::Limit, Some(text)) => {
            let price = positive_decimal("price", text)?;
            Some(units.product.price_from_decimal(price).map_err(|_| {
                bad_request(format!(
                    "price {text} is not on the tick grid of {} (tick size {}) or is too large",
                    units.symbol(),
                    units.price(1)
                ))
            })?)
        }
    };
    let time_in_force = match (&body.time_in_force, order_type) {
        (Some(text), _) => parse_tif(text)?,
        (None, OrderType::Market) => TimeInForce::Ioc,
        (None, OrderType::Limit) => TimeInForce::Gtc,
    };
    if order_type == OrderType::Market && time_in_force != TimeInForce::Ioc {
        return Err(bad_request("a market order's timeInForce can only be IOC"));
    }
    let client_order_id = match &body.client_order_id {
        None => None,
        Some(text) => Some(ClientOrderId::new(text).ok_or_else(|| {
            bad_request("clientOrderId must be 1 to 36 printable characters without spaces")
        })?),
    };
    Ok(NewOrder {
        account,
        product,
        side,
        order_type,
        price,
        qty,
        time_in_force,
        self_trade: SelfTradePrevention::CancelResting,
        client_order_id,
    })
}

/// The engine's refusal of an order or a cancel, in the contract's terms.
pub(crate) fn order_rejected(reject: Reject) -> ApiError {
    let (status, code) = match reject {
        Reject::InsufficientFunds => (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds"),
        Reject::AccountNotVerified | Reject::AccountRejected => {
            (StatusCode::FORBIDDEN, "account_not_verified")
        }
        Reject::ProductHalted => (StatusCode::UNPROCESSABLE_ENTITY, "product_halted"),
        Reject::WouldTakeLiquidity => (StatusCode::UNPROCESSABLE_ENTITY, "would_take_liquidity"),
        Reject::FillOrKillUnfillable => (StatusCode::UNPROCESSABLE_ENTITY, "would_not_fill"),
        Reject::DuplicateClientOrderId => (StatusCode::CONFLICT, "duplicate_client_order_id"),
        Reject::LimitReached(LimitKind::OpenOrdersPerAccount) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "too_many_open_orders")
        }
        Reject::InvalidPrice
        | Reject::InvalidQuantity
        | Reject::InvalidPriceForOrderType
        | Reject::InvalidTimeInForce
        | Reject::Overflow => (StatusCode::BAD_REQUEST, "invalid_request"),
        _ => return rejected(reject),
    };
    ApiError::new(status, code, reject.to_string())
}

/// The orders of a command's events, folded on their own (to answer the command without
/// waiting for the history thread).
fn fold_outcome(outcome: &bourse_pipeline::Outcome) -> History {
    let entries: Vec<Entry> = outcome.events.iter().filter_map(Entry::of).collect();
    let mut history = History::default();
    history.fold(outcome.seq, 0, &entries);
    history
}

/// Places an order for `account` (the HTTP endpoints). Returns the answer and whether it
/// repeats an earlier placement.
pub(crate) async fn place(
    state: &AppState,
    account: AccountId,
    side: Side,
    body: &OrderBody,
) -> Result<(Value, bool), ApiError> {
    let (product, units) = resolve_product(state, &body.symbol).await?;
    let order = new_order(account, side, body, product, &units)?;
    let outcome = state.submit(CommandKind::PlaceOrder(order)).await?;
    let (record, fills, duplicate) = placed_or_first(state, &outcome, account).await?;
    let view = render::order_view(&units, &record, Some(&fills)).duplicate(duplicate);
    Ok((render::to_value(&view), duplicate))
}

/// What a placement's outcome says.
enum Placed {
    /// A new order as its events left it, and its fills, oldest first.
    New(OrderRecord, Vec<TradeRecord>),
    /// A repeat of the placement of this order (`EventKind::OrderDuplicate`): nothing new.
    Duplicate(u64),
}

/// Reads a placement's outcome: a refusal, a new order (folded from its own events, so the
/// answer does not wait for the history thread), or a repeat.
fn placed_order(
    outcome: &bourse_pipeline::Outcome,
    account: AccountId,
) -> Result<Placed, ApiError> {
    outcome.result.map_err(order_rejected)?;
    let mut accepted = None;
    for event in &outcome.events {
        match event.kind {
            bourse_engine::EventKind::OrderDuplicate { order, .. } => {
                return Ok(Placed::Duplicate(order.get()));
            }
            bourse_engine::EventKind::OrderAccepted { order, .. } => {
                accepted = Some(order.get());
                break;
            }
            _ => {}
        }
    }
    let id = accepted.ok_or_else(|| internal("the engine accepted the order without an id"))?;
    let folded = fold_outcome(outcome);
    let record = folded
        .order(account.get(), id)
        .ok_or_else(|| internal("the accepted order is missing from its events"))?;
    let fills = folded.trades(account.get(), None, usize::MAX).items;
    Ok(Placed::New(record, oldest_first(fills)))
}

/// The order a placement answers with, its fills and whether the placement was a repeat: the
/// new order, or the first placement's order as it is now (read from the history).
pub(crate) async fn placed_or_first(
    state: &AppState,
    outcome: &bourse_pipeline::Outcome,
    account: AccountId,
) -> Result<(OrderRecord, Vec<TradeRecord>, bool), ApiError> {
    match placed_order(outcome, account)? {
        Placed::New(record, fills) => Ok((record, fills, false)),
        Placed::Duplicate(id) => {
            let (record, fills) = order_with_fills(state, account, id)
                .await?
                .ok_or_else(|| internal("the first order of a repeat is not in the history"))?;
            Ok((record, fills, true))
        }
    }
}

fn oldest_first(mut trades: Vec<TradeRecord>) -> Vec<TradeRecord> {
    trades.reverse();
    trades
}

async fn submit_order(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    side: Side,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let body: OrderBody = parse_json(&headers, &body)?;
    let (order, duplicate) = place(&state, account, side, &body).await?;
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(order)).into_response())
}

/// `POST /product/buy`.
#[utoipa::path(
    post,
    path = "/api/v1/product/buy",
    tag = "trading",
    request_body(content = OrderBody, content_type = "application/json"),
    responses(
        (status = 200, description = "a repeat (the same clientOrderId and body within 10 minutes): the first order as it is now, with its fills and `duplicate: true`; nothing new was placed", body = OrderView),
        (status = 201, description = "the order as the engine left it, with its fills", body = OrderView),
        BadValue,
        BearerErrors,
        (status = 403, description = "`account_not_verified`: trading needs a verified profile", body = ErrorBody),
        (status = 404, description = "`unknown_symbol`: no such product on Bourse", body = ErrorBody),
        (status = 409, description = "`duplicate_client_order_id`: the clientOrderId of an open order, or of an order placed within 10 minutes with another body", body = ErrorBody),
        BodyErrors,
        (status = 422, description = ORDER_REFUSED, body = ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn buy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    submit_order(state, headers, body, Side::Buy).await
}

/// `POST /product/sell`.
#[utoipa::path(
    post,
    path = "/api/v1/product/sell",
    tag = "trading",
    request_body(content = OrderBody, content_type = "application/json"),
    responses(
        (status = 200, description = "a repeat (the same clientOrderId and body within 10 minutes): the first order as it is now, with its fills and `duplicate: true`; nothing new was placed", body = OrderView),
        (status = 201, description = "the order as the engine left it, with its fills", body = OrderView),
        BadValue,
        BearerErrors,
        (status = 403, description = "`account_not_verified`: trading needs a verified profile", body = ErrorBody),
        (status = 404, description = "`unknown_symbol`: no such product on Bourse", body = ErrorBody),
        (status = 409, description = "`duplicate_client_order_id`: the clientOrderId of an open order, or of an order placed within 10 minutes with another body", body = ErrorBody),
        BodyErrors,
        (status = 422, description = ORDER_REFUSED, body = ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn sell(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    submit_order(state, headers, body, Side::Sell).await
}

/// Reads the history once it holds every event the engine had emitted when asked (so a
/// client sees what it was answered before).
pub(crate) async fn read_history<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&History) -> T,
) -> Result<T, ApiError> {
    let engine_event_seq = state.query(|engine| engine.event_seq()).await?;
    state
        .history
        .read(engine_event_seq, read)
        .await
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "history_unavailable", why))
}

/// `?status=open|closed&limit=&cursor=` of `GET /orders`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    /// `open` (the default) or `closed`.
    #[param(value_type = Option<OrdersStatus>, inline)]
    status: Option<OrdersStatus>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<Count<PAGE_MAX>>,
    /// The `X-Next-Cursor` of the previous page.
    #[param(value_type = Option<i64>, minimum = 0)]
    cursor: Option<SeqCursor>,
    /// Adds each order's values in this currency (`converted`), or `own` for none; default:
    /// the account's preference (docs/api.md, "Currencies").
    #[param(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
}

/// `GET /orders`: the account's open (default) or closed orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "trading",
    params(OrdersQuery),
    responses(
        (status = 200, description = "the orders, newest first (without fills)", body = Vec<OrderView>,
            headers(("X-Next-Cursor" = u64, description = "the cursor of the next page; absent on the last"))),
        BadRequest,
        BearerErrors,
        HistoryUnavailable,
        NoRate,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<OrdersQuery>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let open = query.status != Some(OrdersStatus::Closed);
    let (cursor, limit) = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
        currency: None,
    }
    .get();
    let target = convert::for_account(&state, account, query.currency.as_deref()).await?;
    let page = read_history(&state, move |h| {
        h.orders(account.get(), open, cursor, limit)
    })
    .await?;
    let ids = render::products_in(&page.items, |o| Some(o.product));
    let units = state.query(move |e| render::units_of(e, &ids)).await?;
    let rates = convert::rates_for(
        &state,
        target.as_ref(),
        page.items
            .iter()
            .filter_map(|o| Some((units.get(&o.product)?.quote_code(), o.updated_ms))),
    )?;
    Ok(render::page_of(
        &page,
        &units,
        |o| o.product,
        |u, o| render::order_view(u, o, None).convert(rates.as_ref()),
    ))
}

fn parse_order_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad_request(format!("{text:?} is not an order id")))
}

fn unknown_order(id: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_order",
        format!("the account has no order {id}"),
    )
}

/// One order of the account with its fills, oldest first, from the history (`None` if the
/// account has no such order).
async fn order_with_fills(
    state: &AppState,
    account: AccountId,
    id: u64,
) -> Result<Option<(OrderRecord, Vec<TradeRecord>)>, ApiError> {
    read_history(state, move |h| {
        let order = h.order(account.get(), id)?;
        let fills: Vec<TradeRecord> = h.order_trades(account.get(), &order);
        Some((order, fills))
    })
    .await
}

/// One order of the account with its fills, from the history, with their values in
/// `target` when one is asked.
async fn one_order(
    state: &AppState,
    account: AccountId,
    id: u64,
    target: Option<&convert::Target>,
) -> Result<Value, ApiError> {
    let found = order_with_fills(state, account, id).await?;
    let (order, fills) = found.ok_or_else(|| unknown_order(id))?;
    let product = order.product;
    let units = state
        .query(move |e| ProductUnits::of(e, bourse_engine::ProductId::new(product)))
        .await?
        .ok_or_else(|| internal("the order's product is missing"))?;
    let times = std::iter::once(order.updated_ms).chain(fills.iter().map(|t| t.ts));
    let rates = convert::rates_for(state, target, times.map(|t| (units.quote_code(), t)))?;
    Ok(render::to_value(
        &render::order_view(&units, &order, Some(&fills)).convert(rates.as_ref()),
    ))
}

/// `GET /orders/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "trading",
    operation_id = "order",
    params(("id" = u64, Path, minimum = 1, description = "the order id"), convert::CurrencyQuery),
    responses(
        (status = 200, description = "the order with its fills", body = OrderView),
        (status = 400, description = "`invalid_request`: the id is not a positive whole number", body = ErrorBody),
        BearerErrors,
        (status = 404, description = "`unknown_order`: the account has no such order", body = ErrorBody),
        HistoryUnavailable,
        NoRate,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<convert::CurrencyQuery>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let id = parse_order_id(&id)?;
    let target = convert::for_account(&state, account, query.currency.as_deref()).await?;
    Ok(axum::Json(one_order(&state, account, id, target.as_ref()).await?).into_response())
}

/// Cancels an open order of `account` (the HTTP endpoint and the WebSocket `cancel` op).
pub(crate) async fn cancel_order(
    state: &AppState,
    account: AccountId,
    id: u64,
) -> Result<Value, ApiError> {
    let outcome = state
        .submit(CommandKind::CancelOrder {
            account,
            order: OrderId::new(id),
        })
        .await?;
    match outcome.result {
        Ok(()) => one_order(state, account, id, None).await,
        Err(Reject::UnknownOrder) => {
            // Closed already, or not the account's (which looks the same as not existing).
            let known = read_history(state, move |h| h.order(account.get(), id)).await?;
            match known {
                Some(order) => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "order_closed",
                    format!("order {id} is no longer open ({:?})", order.status).to_lowercase(),
                )),
                None => Err(unknown_order(id)),
            }
        }
        Err(reject) => Err(order_rejected(reject)),
    }
}

/// `DELETE /orders/{id}`.
#[utoipa::path(
    delete,
    path = "/api/v1/orders/{id}",
    tag = "trading",
    params(("id" = u64, Path, minimum = 1, description = "the order id")),
    responses(
        (status = 200, description = "the cancelled order with its fills", body = OrderView),
        (status = 400, description = "`invalid_request`: the id is not a positive whole number", body = ErrorBody),
        BearerErrors,
        (status = 404, description = "`unknown_order`: the account has no such order", body = ErrorBody),
        (status = 409, description = "`order_closed`: the order is no longer open", body = ErrorBody),
        (status = 422, description = "`rejected`: the engine refused", body = ErrorBody),
        HistoryUnavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let id = parse_order_id(&id)?;
    Ok(axum::Json(cancel_order(&state, account, id).await?).into_response())
}

/// `GET /trades`: the account's trades, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/trades",
    tag = "trading",
    params(PageQuery),
    responses(
        (status = 200, description = "the trades, newest first", body = Vec<TradeView>,
            headers(("X-Next-Cursor" = u64, description = "the cursor of the next page; absent on the last"))),
        BadRequest,
        BearerErrors,
        HistoryUnavailable,
        NoRate,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn trades(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let (cursor, limit) = query.get();
    let target = convert::for_account(&state, account, query.currency.as_deref()).await?;
    let page = read_history(&state, move |h| h.trades(account.get(), cursor, limit)).await?;
    let ids = render::products_in(&page.items, |t| Some(t.product));
    let units = state.query(move |e| render::units_of(e, &ids)).await?;
    let rates = convert::rates_for(
        &state,
        target.as_ref(),
        page.items
            .iter()
            .filter_map(|t| Some((units.get(&t.product)?.quote_code(), t.ts))),
    )?;
    Ok(render::page_of(
        &page,
        &units,
        |t| t.product,
        |u, t| render::trade_view(u, t).convert(rates.as_ref()),
    ))
}

/// `?symbol=&side=&quantity=&price=` of `GET /fees`. The decimals stay text here: they are
/// checked as an order's are, against the product's lot and tick.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeeQuery {
    #[param(value_type = SymbolText)]
    symbol: String,
    #[param(value_type = crate::schema::Side, inline)]
    side: SideParam,
    /// Positive, a whole number of the product's lots.
    #[param(value_type = PositiveDecimal)]
    quantity: String,
    /// A limit price on the product's tick grid; without one, a market order's first fill.
    #[param(value_type = Option<PositiveDecimal>)]
    price: Option<String>,
}

/// What an order would pay now (`GET /fees`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FeeQuote {
    #[schema(value_type = SymbolText)]
    symbol: String,
    #[schema(value_type = crate::schema::Side)]
    side: &'static str,
    #[schema(value_type = DecimalText)]
    quantity: String,
    /// The limit price, or the best opposite price for a market order.
    #[schema(value_type = DecimalText)]
    price: String,
    /// `taker` if the price would cross the book.
    #[schema(value_type = crate::schema::Liquidity)]
    liquidity: &'static str,
    /// The fee rate at the account's tier (`0.002` is 0.2%).
    #[schema(value_type = DecimalText)]
    rate: String,
    #[schema(value_type = DecimalText)]
    notional: String,
    /// Rounded up to the minor unit.
    #[schema(value_type = DecimalText)]
    fee: String,
    #[schema(value_type = CurrencyCode)]
    fee_currency: String,
    /// What the order would hold: notional and fee of a buy, the quantity of a sell.
    #[schema(value_type = DecimalText)]
    hold: String,
    #[schema(value_type = CurrencyCode)]
    hold_currency: String,
}

/// `GET /fees`: what an order would pay now, as maker or taker (the account's tier applies).
/// Without a price, the quote is for a market order's first fill at the best opposite price.
#[utoipa::path(
    get,
    path = "/api/v1/fees",
    tag = "trading",
    params(FeeQuery),
    responses(
        (status = 200, description = "what a fill of that size would pay now", body = FeeQuote),
        BadValue,
        BearerErrors,
        (status = 403, description = "`account_not_verified`: trading needs a verified profile", body = ErrorBody),
        (status = 404, description = "`unknown_symbol`: no such product on Bourse", body = ErrorBody),
        (status = 422, description = "`no_liquidity`: no price and no opposite side to quote a market order against; `rejected`: the engine refused", body = ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn fee_quote(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<FeeQuery>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let FeeQuery {
        symbol,
        side: SideParam(side),
        quantity,
        price,
    } = query;
    let (product, units) = resolve_product(&state, &symbol).await?;
    let body = OrderBody {
        symbol: symbol.clone(),
        quantity,
        order_type: if price.is_some() {
            "limit".into()
        } else {
            "market".into()
        },
        price,
        time_in_force: None,
        client_order_id: None,
    };
    let order = new_order(account, side, &body, product, &units)?;
    let quote = state
        .query(move |engine| engine.quote_fee(account, product, side, order.qty, order.price))
        .await?;
    let quote = quote.map_err(|reject| match reject {
        Reject::InvalidPriceForOrderType => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_liquidity",
            "the book has no opposite side to quote a market order against; give a price",
        ),
        other => order_rejected(other),
    })?;
    let rate = Decimal::new(i64::from(quote.rate_ppm), 6).normalize();
    Ok(axum::Json(FeeQuote {
        symbol,
        side: if side == Side::Buy { "buy" } else { "sell" },
        quantity: units.qty(order.qty.lots()),
        price: units.price(quote.price.ticks()),
        liquidity: match quote.liquidity {
            bourse_engine::Liquidity::Maker => "maker",
            bourse_engine::Liquidity::Taker => "taker",
        },
        rate: rate.to_string(),
        notional: units.quote_amount(quote.notional.minor()),
        fee: units.quote_amount(quote.fee.minor()),
        fee_currency: units.quote_code(),
        hold: if side == Side::Buy {
            units.quote_amount(quote.hold.minor())
        } else {
            render::amount(&units.base, quote.hold.minor())
        },
        hold_currency: if side == Side::Buy {
            units.quote_code()
        } else {
            units.base.code().as_str().to_string()
        },
    })
    .into_response())
}
