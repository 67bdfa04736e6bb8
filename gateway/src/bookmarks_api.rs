//! `GET /api/v1/bookmarks`, `PUT /api/v1/bookmarks/{symbol}`, `DELETE /api/v1/bookmarks/{symbol}`.
//!
//! Bookmarks are engine state (a sorted, bounded set per account), so they survive restarts
//! with the journal. Adding one that is there, or removing one that is not, is answered as
//! success with the current list (the request's intent holds), not as an error.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{AccountId, CommandKind, LimitKind, Reject, Symbol};
use serde::Serialize;
use utoipa::ToSchema;

use crate::account_api::authenticate;
use crate::error::{ApiError, rejected};
use crate::openapi::ErrorBody;
use crate::schema::{BadRequest, BearerErrors, SymbolText, Unavailable};
use crate::state::AppState;

/// The account's bookmarks.
#[derive(Debug, Serialize, ToSchema)]
struct Bookmarks {
    /// Symbols, in the engine's order.
    #[schema(value_type = Vec<SymbolText>)]
    symbols: Vec<String>,
}

/// The account's bookmarks as symbols, in the engine's order.
async fn list(state: &AppState, account: AccountId) -> Result<Bookmarks, ApiError> {
    let symbols = state
        .query(move |engine| {
            engine
                .bookmarks(account)
                .iter()
                .filter_map(|&product| engine.product_info(product))
                .map(|info| info.symbol().as_str().to_string())
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Bookmarks { symbols })
}

/// `GET /bookmarks`.
#[utoipa::path(
    get,
    path = "/api/v1/bookmarks",
    tag = "bookmarks",
    operation_id = "bookmarks",
    responses(
        (status = 200, description = "the bookmarks", body = Bookmarks),
        BearerErrors,
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    Ok(axum::Json(list(&state, account).await?).into_response())
}

/// `PUT /bookmarks/{symbol}` and `DELETE /bookmarks/{symbol}`.
async fn change(
    state: AppState,
    headers: HeaderMap,
    symbol: String,
    add: bool,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_symbol",
            format!("no product {symbol:?}"),
        )
    };
    let parsed = Symbol::new(&symbol).ok_or_else(unknown)?;
    let product = state
        .query(move |engine| engine.product_by_symbol(&parsed))
        .await?
        .ok_or_else(unknown)?;
    let kind = if add {
        CommandKind::AddBookmark { account, product }
    } else {
        CommandKind::RemoveBookmark { account, product }
    };
    let outcome = state.submit(kind).await?;
    match outcome.result {
        Ok(()) | Err(Reject::AlreadyBookmarked | Reject::NotBookmarked) => {}
        Err(Reject::LimitReached(LimitKind::Bookmarks)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_reached",
                "the account has as many bookmarks as it may have",
            ));
        }
        Err(reject) => {
            return Err(rejected(reject));
        }
    }
    Ok(axum::Json(list(&state, account).await?).into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/bookmarks/{symbol}",
    tag = "bookmarks",
    params(("symbol" = String, Path, description = "the product's symbol")),
    responses(
        (status = 200, description = "the bookmarks after adding (adding one that is there is no error)", body = Bookmarks),
        BadRequest,
        BearerErrors,
        (status = 404, description = "`unknown_symbol`: no such product on Bourse", body = ErrorBody),
        (status = 422, description = "`limit_reached`: past the account's bookmark limit; `rejected`: the engine refused", body = ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(symbol): Path<String>,
) -> Result<Response, ApiError> {
    change(state, headers, symbol, true).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/bookmarks/{symbol}",
    tag = "bookmarks",
    params(("symbol" = String, Path, description = "the product's symbol")),
    responses(
        (status = 200, description = "the bookmarks after removing (removing one that is not there is no error)", body = Bookmarks),
        BadRequest,
        BearerErrors,
        (status = 404, description = "`unknown_symbol`: no such product on Bourse", body = ErrorBody),
        (status = 422, description = "`rejected`: the engine refused", body = ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(symbol): Path<String>,
) -> Result<Response, ApiError> {
    change(state, headers, symbol, false).await
}
