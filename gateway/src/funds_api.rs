//! `PUT /api/v1/funds` (deposit) and `GET /api/v1/funds` (balances).
//!
//! A deposit names its method (`type`: card, upi or bank) with the method's details in
//! `additionalInformation`. Payment processing is out of scope: a deposit the engine accepts
//! is credited at once. The details are checked here and then dropped: a card number or CVV is
//! never stored, logged or journaled. The journaled command holds the account, asset, amount,
//! request id and the method: `card` with the card's last four digits, `upi` or `bank`, which
//! the funds history shows. Deposits are idempotent by `requestId` (the engine's rule: a repeat
//! with the same body changes nothing, one with a different body is a 409).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{
    AssetCode, CardLast4, CommandKind, FundsMethod, FundsRequest, Reject, RequestId,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::account_api::authenticate;
use crate::error::{ApiError, bad_request, parse_json, rejected};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DepositBody {
    amount: String,
    currency: String,
    #[serde(rename = "type")]
    method: String,
    request_id: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    additional_information: Option<Value>,
}

/// The string field `key` of the details object.
fn detail<'a>(details: Option<&'a Value>, key: &str) -> Option<&'a str> {
    details?.get(key)?.as_str()
}

fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// Checks the method's details; returns what may be kept (at most a card's last four digits).
fn check_method(method: &str, details: Option<&Value>) -> Result<FundsMethod, ApiError> {
    match method {
        "card" => {
            let number = detail(details, "cardNumber").ok_or_else(|| {
                bad_request("a card deposit needs additionalInformation.cardNumber")
            })?;
            let number: String = number.chars().filter(|c| *c != ' ').collect();
            if !(12..=19).contains(&number.len())
                || !number.bytes().all(|b| b.is_ascii_digit())
                || !luhn_ok(&number)
            {
                return Err(bad_request("cardNumber is not a valid card number"));
            }
            let cvv = detail(details, "cvv")
                .ok_or_else(|| bad_request("a card deposit needs additionalInformation.cvv"))?;
            if !(3..=4).contains(&cvv.len()) || !cvv.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_request("cvv must be 3 or 4 digits"));
            }
            let last4 = CardLast4::new(&number.as_bytes()[number.len() - 4..])
                .ok_or_else(|| bad_request("cardNumber is not a valid card number"))?;
            Ok(FundsMethod::Card(last4))
        }
        "upi" => {
            let vpa = detail(details, "vpa")
                .ok_or_else(|| bad_request("a UPI deposit needs additionalInformation.vpa"))?;
            match vpa.split_once('@') {
                Some((name, bank)) if !name.is_empty() && !bank.is_empty() && vpa.len() <= 100 => {
                    Ok(FundsMethod::Upi)
                }
                _ => Err(bad_request("vpa must look like name@bank")),
            }
        }
        "bank" => {
            let account = detail(details, "accountNumber").ok_or_else(|| {
                bad_request("a bank deposit needs additionalInformation.accountNumber")
            })?;
            if account.is_empty() || account.len() > 34 {
                return Err(bad_request("accountNumber must be 1 to 34 characters"));
            }
            Ok(FundsMethod::Bank)
        }
        other => Err(bad_request(format!(
            "type {other:?} is not one of card, upi, bank"
        ))),
    }
}

/// `PUT /funds`: a deposit.
#[utoipa::path(
    put,
    path = "/api/v1/funds",
    tag = "funds",
    request_body(content = DepositBody, content_type = "application/json"),
    responses((status = 200, description = "{requestId, currency, amount, type, details, status, seq}"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn deposit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let body: DepositBody = parse_json(&headers, &body)?;
    let method = check_method(&body.method, body.additional_information.as_ref())?;
    let request = funds_request(
        &state,
        account,
        &body.amount,
        &body.currency,
        &body.request_id,
        method,
    )
    .await?;
    let (request, amount) = request;
    let kind = CommandKind::Deposit(request);
    let seq = submit_funds(&state, kind).await?;
    Ok(axum::Json(json!({
        "requestId": body.request_id,
        "currency": body.currency,
        "amount": amount,
        "type": method.name(),
        "details": method_details(method),
        "status": "credited",
        "seq": seq,
    }))
    .into_response())
}

/// What a funds record may show of its method: a card's last four digits, nothing else.
pub(crate) fn method_details(method: FundsMethod) -> Value {
    match method {
        FundsMethod::Card(last4) => json!({"cardLast4": last4.as_str()}),
        FundsMethod::Unspecified | FundsMethod::Upi | FundsMethod::Bank => json!({}),
    }
}

/// Checks a funds request's amount, currency and request id, and resolves the currency and
/// the amount's units with one engine query.
async fn funds_request(
    state: &AppState,
    account: bourse_engine::AccountId,
    amount_text: &str,
    currency: &str,
    request_id_text: &str,
    method: FundsMethod,
) -> Result<(FundsRequest, String), ApiError> {
    let amount = Decimal::from_str(amount_text.trim())
        .map_err(|_| bad_request(format!("amount {amount_text:?} is not a decimal number")))?;
    if amount <= Decimal::ZERO {
        return Err(bad_request("amount must be positive"));
    }
    let code = AssetCode::new(currency)
        .ok_or_else(|| bad_request(format!("{currency:?} is not a currency code")))?;
    let request_id = RequestId::new(request_id_text)
        .filter(|_| !request_id_text.is_empty())
        .ok_or_else(|| bad_request("requestId must be 1 to 36 characters"))?;
    let resolved = state
        .query(move |engine| {
            let asset = engine.asset_by_code(&code).ok_or(Reject::UnknownAsset)?;
            let info = engine.asset_info(asset).ok_or(Reject::UnknownAsset)?;
            let units = info.amount_from_decimal(amount)?;
            // At the currency's scale ("10000.00"), as balances and the funds history show it.
            let text = info.amount_to_decimal(units).to_string();
            Ok::<_, Reject>((asset, units, text))
        })
        .await?;
    let (asset, units, text) = resolved.map_err(|reject| match reject {
        Reject::UnknownAsset => bad_request(format!("unknown currency {currency:?}")),
        _ => bad_request(format!(
            "amount {amount_text} is not a valid amount of {currency} (too many decimals or too large)"
        )),
    })?;
    let request = FundsRequest {
        account,
        asset,
        amount: units,
        request_id,
        method,
    };
    Ok((request, text))
}

/// Submits a deposit or withdrawal; maps the engine's refusals. Returns the command's seq.
async fn submit_funds(state: &AppState, kind: CommandKind) -> Result<u64, ApiError> {
    let outcome = state.submit(kind).await?;
    match outcome.result {
        Ok(()) => Ok(outcome.seq),
        Err(Reject::RequestIdMismatch) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_request",
            "requestId was used before for a different request",
        )),
        Err(Reject::InsufficientFunds) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
            "the available balance is smaller than the amount",
        )),
        Err(reject) => Err(rejected(reject)),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WithdrawBody {
    amount: String,
    currency: String,
    request_id: String,
    /// Where the money goes (free-form; paying it out is out of scope).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    destination_details: Option<Value>,
}

/// `POST /funds`: a withdrawal from the available balance.
#[utoipa::path(
    post,
    path = "/api/v1/funds",
    tag = "funds",
    request_body(content = WithdrawBody, content_type = "application/json"),
    responses((status = 200, description = "{requestId, currency, amount, status, seq}"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let body: WithdrawBody = parse_json(&headers, &body)?;
    if body
        .destination_details
        .as_ref()
        .is_some_and(|d| !d.is_object())
    {
        return Err(bad_request("destinationDetails must be an object"));
    }
    let (request, amount) = funds_request(
        &state,
        account,
        &body.amount,
        &body.currency,
        &body.request_id,
        FundsMethod::Unspecified,
    )
    .await?;
    let seq = submit_funds(&state, CommandKind::Withdraw(request)).await?;
    Ok(axum::Json(json!({
        "requestId": body.request_id,
        "currency": body.currency,
        "amount": amount,
        "status": "withdrawn",
        "seq": seq,
    }))
    .into_response())
}

/// `GET /funds`: the wallet, `[{currency, available, held}]`, in asset order.
#[utoipa::path(
    get,
    path = "/api/v1/funds",
    tag = "funds",
    responses((status = 200, description = "[{currency, available, held}]"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn balances(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let rows = state
        .query(move |engine| balances_json(engine, account))
        .await?;
    Ok(axum::Json(rows).into_response())
}

/// The account's wallet, `[{currency, available, held}]`, in asset order.
pub(crate) fn balances_json(
    engine: &bourse_engine::Engine,
    account: bourse_engine::AccountId,
) -> Value {
    engine
        .balances(account)
        .iter()
        .filter_map(|&(asset, balance)| {
            let info = engine.asset_info(asset)?;
            let decimal = |minor: i64| Decimal::new(minor, u32::from(info.scale())).to_string();
            Some(json!({
                "currency": info.code().as_str(),
                "available": decimal(balance.available),
                "held": decimal(balance.held),
            }))
        })
        .collect()
}
