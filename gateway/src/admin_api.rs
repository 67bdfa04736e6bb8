//! The admin API, behind the `admin-token` setting (off by default: every admin path answers
//! 403 `admin_disabled`): `GET /api/v1/admin/status` (the engine's counters and state hash)
//! and `PUT /api/v1/admin/accounts/{id}/status` `{status: pending|verified|rejected}`, the
//! identity check's verdict (trading needs `verified`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bourse_engine::{AccountId, CommandKind, ProfileStatus, Reject};
use serde::Deserialize;
use serde_json::json;

use crate::account_api::status_name;
use crate::auth::{constant_time_eq, sha256};
use crate::error::{ApiError, bad_request, parse_json, rejected};
use crate::state::AppState;

/// Checks the admin bearer token.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token_hash else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off (set admin-token to enable it)",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(sha256);
    match presented {
        Some(presented) if constant_time_eq(&presented, expected) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs Authorization: Bearer <admin token>",
        )),
    }
}

/// `GET /admin/status`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/status",
    tag = "admin",
    responses((status = 200, description = "{appliedSeq, committedSeq, eventSeq, historyEventSeq, stateHash, accounts, products, openOrders}"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody)),
    security(("admin" = []))
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let (event_seq, hash, accounts, products, open_orders) = state
        .query(|engine| {
            (
                engine.event_seq(),
                engine.state_hash(),
                engine.n_accounts(),
                engine.n_products(),
                engine.n_open_orders(),
            )
        })
        .await?;
    let stats = state.handle.stats();
    Ok(axum::Json(json!({
        "appliedSeq": stats.applied_seq,
        "committedSeq": stats.committed_seq,
        "eventSeq": event_seq,
        "historyEventSeq": state.history.event_seq(),
        "stateHash": hash.to_string(),
        // Without the fee account.
        "accounts": accounts.saturating_sub(1),
        "products": products,
        "openOrders": open_orders,
    }))
    .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
}

/// `PUT /admin/accounts/{id}/status`.
#[utoipa::path(
    put,
    path = "/api/v1/admin/accounts/{id}/status",
    tag = "admin",
    request_body(content = StatusBody, content_type = "application/json"),
    params(("id" = u32, Path, description = "the account id")),
    responses((status = 200, description = "{accountId, profileStatus}"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody)),
    security(("admin" = []))
)]
pub(crate) async fn set_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let body: StatusBody = parse_json(&headers, &body)?;
    let status = match body.status.as_str() {
        "pending" => ProfileStatus::Pending,
        "verified" => ProfileStatus::Verified,
        "rejected" => ProfileStatus::Rejected,
        other => {
            return Err(bad_request(format!(
                "status {other:?} is not one of pending, verified, rejected"
            )));
        }
    };
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account {id:?}"),
        )
    };
    let account = id
        .parse::<u32>()
        .ok()
        .map(AccountId::new)
        .filter(|a| *a != AccountId::FEES)
        .ok_or_else(unknown)?;
    let outcome = state
        .submit(CommandKind::SetProfileStatus { account, status })
        .await?;
    match outcome.result {
        Ok(()) | Err(Reject::StatusUnchanged) => {}
        Err(Reject::UnknownAccount) => return Err(unknown()),
        Err(reject) => return Err(rejected(reject)),
    }
    Ok(axum::Json(json!({
        "accountId": account.to_string(),
        "profileStatus": status_name(status),
    }))
    .into_response())
}
