//! The admin API, behind the `admin-token` setting (off by default: every admin path answers
//! 403 `admin_disabled`): `GET /api/v1/admin/status` (the engine's counters and state hash)
//! and `PUT /api/v1/admin/accounts/{id}/status` `{status: pending|verified|rejected}`, the
//! identity check's verdict (trading needs `verified`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bourse_engine::{AccountId, CommandKind, ProfileStatus, Reject};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::account_api::ProfileStatusName;
use crate::auth::{constant_time_eq, sha256};
use crate::error::{ApiError, bad_request, parse_json, rejected};
use crate::openapi::ErrorBody;
use crate::schema::{AdminErrors, BadRequest, BodyErrors, Unavailable};
use crate::state::AppState;

/// The answer to `GET /admin/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AdminStatus {
    /// The newest command applied by the engine.
    applied_seq: u64,
    /// The newest command durable in the journal.
    committed_seq: u64,
    /// The engine's newest event.
    event_seq: u64,
    /// The newest event the history read model has folded.
    history_event_seq: u64,
    /// The XXH3-128 digest of the whole business state, 32 hex digits.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    state_hash: String,
    /// Accounts, without the fee account.
    accounts: u64,
    products: u64,
    open_orders: u64,
}

/// The answer to `PUT /admin/accounts/{id}/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountStatus {
    #[schema(pattern = "^[0-9]+$", example = "1")]
    account_id: String,
    profile_status: ProfileStatusName,
}

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
    responses(
        (status = 200, description = "the engine's counters and state hash", body = AdminStatus),
        AdminErrors,
        Unavailable,
    ),
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
    Ok(axum::Json(AdminStatus {
        applied_seq: stats.applied_seq,
        committed_seq: stats.committed_seq,
        event_seq,
        history_event_seq: state.history.event_seq(),
        state_hash: hash.to_string(),
        // Without the fee account.
        accounts: (accounts as u64).saturating_sub(1),
        products: products as u64,
        open_orders: open_orders as u64,
    })
    .into_response())
}

/// The body of `PUT /admin/accounts/{id}/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusBody {
    /// Kept as text so that a wrong value is named in the answer.
    #[schema(value_type = ProfileStatusName)]
    status: String,
}

/// `PUT /admin/accounts/{id}/status`.
#[utoipa::path(
    put,
    path = "/api/v1/admin/accounts/{id}/status",
    tag = "admin",
    request_body(content = StatusBody, content_type = "application/json"),
    params(("id" = u32, Path, description = "the account id")),
    responses(
        (status = 200, description = "the account's new status", body = AccountStatus),
        BadRequest,
        AdminErrors,
        (status = 404, description = "`unknown_account`: no such account (or the id is not a number)", body = ErrorBody),
        BodyErrors,
        (status = 422, description = "`rejected`: the engine refused", body = ErrorBody),
        Unavailable,
    ),
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
    Ok(axum::Json(AccountStatus {
        account_id: account.to_string(),
        profile_status: status.into(),
    })
    .into_response())
}

/// `GET /admin/snapshot`: the newest snapshot file, for a node that joins the cluster with
/// an empty data directory. `X-Snapshot-Seq` says the command it was taken after (the joiner
/// resumes the log at that offset) and `X-State-Hash` the state it holds, which the joiner
/// checks after decoding (the file's own CRC covers the bytes).
#[utoipa::path(
    get,
    path = "/api/v1/admin/snapshot",
    tag = "admin",
    responses(
        (status = 200, description = "the newest snapshot file", content_type = "application/octet-stream", body = Vec<u8>,
            headers(
                ("X-Snapshot-Seq" = u64, description = "the sequence number (log offset + 1) it was taken after"),
                ("X-State-Hash" = String, description = "the state hash of the engine it holds"),
            )),
        AdminErrors,
        (status = 404, description = "`no_snapshot`: this node has no snapshot yet", body = ErrorBody),
        Unavailable,
    ),
    security(("admin" = []))
)]
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let dir = state.snapshots_dir.clone();
    let (seq, bytes, hash) = tokio::task::spawn_blocking(move || newest_snapshot(&dir))
        .await
        .map_err(|e| unavailable(format!("reading the snapshot failed: {e}")))??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::HeaderName::from_static("x-snapshot-seq"),
                seq.to_string(),
            ),
            (
                header::HeaderName::from_static("x-state-hash"),
                hash.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The newest snapshot in `dir`, checked: its sequence number, bytes and state hash.
fn newest_snapshot(
    dir: &std::path::Path,
) -> Result<(u64, Vec<u8>, bourse_engine::StateHash), ApiError> {
    let list = bourse_snapshots::list_snapshots(dir).map_err(|e| unavailable(e.to_string()))?;
    let Some((_, path)) = list.last() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_snapshot",
            "this node has no snapshot yet",
        ));
    };
    // Retention may remove it meanwhile: the caller retries.
    let bytes = bourse_snapshots::open_snapshot(path)
        .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
    let (seq, engine) = bourse_snapshots::decode(&bytes).map_err(|e| unavailable(e.to_string()))?;
    Ok((seq, bytes.to_vec(), engine.state_hash()))
}

fn unavailable(message: String) -> ApiError {
    let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    error.retry_after = Some(1);
    error
}
