//! `PUT /api/v1/account` (create) and `GET /api/v1/account`, and bearer-token checks.
//!
//! A token is `<accountId>.<64 hex digits>` (32 random bytes from the OS). It is shown once,
//! in the answer to the creation; the engine keeps only its SHA-256 (`CreateAccount`'s
//! `token_hash`, journaled with the command), so a token survives restarts and the data
//! directory never holds one. The account id in front lets a request be checked with one
//! lookup; an unknown id and a wrong secret get the same answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bourse_engine::{
    AccountId, AssetCode, CommandKind, CreateAccount, EventKind, NAME_BYTES_MAX, PROOF_BYTES_MAX,
    ProfileStatus, TokenHash,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{constant_time_eq, sha256};
use crate::error::{ApiError, bad_request, parse_json, rejected};
use crate::openapi::ErrorBody;
use crate::schema::{BadRequest, BearerErrors, BodyErrors, CurrencyCode, Unavailable};
use crate::state::AppState;

/// The body of `PUT /account`; unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateBody {
    /// The holder's name: at most 128 bytes of UTF-8 after trimming, not blank, no control
    /// characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: String,
    /// The identity check's evidence (e.g. a document reference): at most 256 bytes of UTF-8,
    /// not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    proof: String,
    #[schema(value_type = CurrencyCode)]
    currency_preference: String,
}

/// An account's identity-check status; trading needs `verified`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProfileStatusName {
    Pending,
    Verified,
    Rejected,
}

impl From<ProfileStatus> for ProfileStatusName {
    fn from(status: ProfileStatus) -> Self {
        match status {
            ProfileStatus::Pending => ProfileStatusName::Pending,
            ProfileStatus::Verified => ProfileStatusName::Verified,
            ProfileStatus::Rejected => ProfileStatusName::Rejected,
        }
    }
}

/// The answer to `PUT /account`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountCreated {
    #[schema(pattern = "^[0-9]+$", example = "1")]
    account_id: String,
    /// `<accountId>.<64 hex digits>`, shown only here (the server keeps its SHA-256).
    #[schema(pattern = "^[0-9]+\\.[0-9a-f]{64}$")]
    token: String,
    /// `verified` with auto-verify (the default), else `pending`.
    profile_status: ProfileStatusName,
}

/// The answer to `GET /account`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountView {
    #[schema(pattern = "^[0-9]+$", example = "1")]
    account_id: String,
    name: String,
    profile_status: ProfileStatusName,
    #[schema(value_type = CurrencyCode)]
    currency_preference: String,
    /// Unix ms.
    created_at: i64,
}

fn hash_token(token: &str) -> TokenHash {
    TokenHash(sha256(token))
}

/// `PUT /account`.
#[utoipa::path(
    put,
    path = "/api/v1/account",
    tag = "account",
    request_body(content = CreateBody, content_type = "application/json"),
    responses(
        (status = 201, description = "created; the token is shown only here", body = AccountCreated),
        BadRequest,
        BodyErrors,
        (status = 422, description = "`rejected`: the engine refused (a blank proof or one with control characters, the account limit)", body = ErrorBody),
        (status = 500, description = "`internal`: the system has no randomness for a token", body = ErrorBody),
        Unavailable,
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: CreateBody = parse_json(&headers, &body)?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(bad_request(format!(
            "name must be 1 to {NAME_BYTES_MAX} bytes"
        )));
    }
    if body.proof.len() > PROOF_BYTES_MAX {
        return Err(bad_request(format!(
            "proof must be at most {PROOF_BYTES_MAX} bytes"
        )));
    }
    let currency = AssetCode::new(&body.currency_preference).ok_or_else(|| {
        bad_request(format!(
            "currencyPreference {:?} is not a currency code",
            body.currency_preference
        ))
    })?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("no randomness for a token: {e}"),
        )
    })?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let initial_status = if state.auto_verify {
        ProfileStatus::Verified
    } else {
        ProfileStatus::Pending
    };
    // The token names the account, whose id is only known once the engine created it; so the
    // hash covers the secret alone and the id is checked against the account it names.
    let token_hash = hash_token(&secret);
    let kind = CommandKind::create_account(CreateAccount {
        name: name.to_string(),
        proof: body.proof,
        currency_preference: currency,
        token_hash,
        initial_status,
    });
    let outcome = state.submit(kind).await?;
    if let Err(reject) = outcome.result {
        return Err(rejected(reject));
    }
    let (account, status) = outcome
        .events
        .iter()
        .find_map(|event| match event.kind {
            EventKind::AccountCreated { account, status } => Some((account, status)),
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the engine created no account",
            )
        })?;
    let body = AccountCreated {
        account_id: account.to_string(),
        token: format!("{account}.{secret}"),
        profile_status: status.into(),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// Checks `Authorization: Bearer <token>` and returns the account it names.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<AccountId, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
    check_token(state, token).await
}

/// Checks a token (HTTP bearer or WebSocket `auth`) and the account's rate limit; returns
/// the account it names.
pub(crate) async fn check_token(state: &AppState, token: &str) -> Result<AccountId, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let invalid = || unauthorized("invalid token");
    let (id, secret) = token.split_once('.').ok_or_else(invalid)?;
    let id: u32 = id.parse().map_err(|_| invalid())?;
    let account = AccountId::new(id);
    // The fee account has no owner and no token.
    if account == AccountId::FEES {
        return Err(invalid());
    }
    let presented = hash_token(secret);
    let stored = state
        .query(move |engine| engine.account_token_hash(account))
        .await?;
    match stored {
        Some(stored) if constant_time_eq(&stored.0, &presented.0) => {}
        _ => return Err(invalid()),
    }
    if let Err(wait) = state.rate_limiter.take(account) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests for this account; retry in {seconds} s"),
        );
        error.retry_after = Some(seconds);
        return Err(error);
    }
    Ok(account)
}

/// `GET /account`.
#[utoipa::path(
    get,
    path = "/api/v1/account",
    tag = "account",
    responses(
        (status = 200, description = "the account", body = AccountView),
        BearerErrors,
        (status = 404, description = "`not_found`: the account is gone (never, today)", body = ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let profile = state
        .query(move |engine| engine.account_profile(account))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such account"))?;
    Ok(axum::Json(AccountView {
        account_id: account.to_string(),
        name: profile.name,
        profile_status: profile.status.into(),
        currency_preference: profile.currency_preference.as_str().to_string(),
        created_at: profile.created_at_ms,
    })
    .into_response())
}

/// The body of `PATCH /account`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct UpdateBody {
    /// A listed currency: one Bourse's products are quoted in, or one a listed exchange rate
    /// converts them into (`GET /api/v1/fx`).
    #[schema(value_type = CurrencyCode)]
    pub(crate) currency_preference: String,
}

/// `PATCH /account`: changes the currency the account's values are shown in (an engine
/// command: journaled, replicated, kept across restarts).
#[utoipa::path(
    patch,
    path = "/api/v1/account",
    tag = "account",
    request_body(content = UpdateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "the account as it is now", body = AccountView),
        BadRequest,
        BearerErrors,
        BodyErrors,
        (status = 422, description = "`unlisted_currency`: no listed rate converts Bourse's currencies into it", body = ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let body: UpdateBody = parse_json(&headers, &body)?;
    let wanted = crate::fx::currency_param(&body.currency_preference)
        .map_err(|_| bad_request("currencyPreference must be a currency code, like EUR"))?;
    let currency = AssetCode::new(&wanted)
        .ok_or_else(|| bad_request("currencyPreference must be a currency code, like EUR"))?;
    let quotes = state.query(quote_currencies).await?;
    let listed = quotes.iter().any(|quote| **quote == *wanted) || {
        let market = state
            .market
            .read()
            .map_err(crate::error::market_unavailable)?;
        quotes
            .iter()
            .any(|quote| crate::fx::pair_for(&market, quote, &wanted).is_some())
    };
    if !listed {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unlisted_currency",
            format!(
                "{wanted} is not a listed currency: Bourse quotes in {} and no listed rate \
                 converts into {wanted} (GET /api/v1/fx)",
                quotes.join(", ")
            ),
        ));
    }
    let outcome = state
        .submit(CommandKind::SetCurrencyPreference { account, currency })
        .await?;
    outcome.result.map_err(rejected)?;
    read(State(state), headers).await
}

/// The currencies Bourse's products are quoted in, by code.
fn quote_currencies(engine: &bourse_engine::Engine) -> Vec<String> {
    let mut codes: Vec<String> = (0..engine.n_products())
        .filter_map(|i| {
            let product =
                engine.product_info(bourse_engine::ProductId::new(u32::try_from(i).ok()?))?;
            Some(
                engine
                    .asset_info(product.quote())?
                    .code()
                    .as_str()
                    .to_owned(),
            )
        })
        .collect();
    codes.sort();
    codes.dedup();
    codes
}
