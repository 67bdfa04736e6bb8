//! `PUT /api/v1/funds` (deposit) and `GET /api/v1/funds` (balances).
//!
//! A deposit names its method (`type`: card, upi or bank) with the method's details in
//! `additionalInformation`. Payment processing is out of scope: a deposit the engine accepts
//! is credited at once. The details are checked here and then dropped: a card number or CVV is
//! never stored, logged or journaled (the journaled command holds the account, asset, amount
//! and request id only). Deposits are idempotent by `requestId` (the engine's rule: a repeat
//! with the same body changes nothing, one with a different body is a 409).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{AssetCode, CommandKind, FundsRequest, Reject, RequestId};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::account_api::{authenticate, parse_json, submit_error};
use crate::http::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DepositBody {
    amount: String,
    currency: String,
    #[serde(rename = "type")]
    method: String,
    request_id: String,
    #[serde(default)]
    additional_information: Option<Value>,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
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
fn check_method(method: &str, details: Option<&Value>) -> Result<Value, ApiError> {
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
            Ok(json!({"cardLast4": &number[number.len() - 4..]}))
        }
        "upi" => {
            let vpa = detail(details, "vpa")
                .ok_or_else(|| bad_request("a UPI deposit needs additionalInformation.vpa"))?;
            match vpa.split_once('@') {
                Some((name, bank)) if !name.is_empty() && !bank.is_empty() && vpa.len() <= 100 => {
                    Ok(json!({}))
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
            Ok(json!({}))
        }
        other => Err(bad_request(format!(
            "type {other:?} is not one of card, upi, bank"
        ))),
    }
}

/// `PUT /funds`: a deposit.
pub(crate) async fn deposit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let body: DepositBody = parse_json(&headers, &body)?;
    let kept = check_method(&body.method, body.additional_information.as_ref())?;
    let amount = Decimal::from_str(body.amount.trim())
        .map_err(|_| bad_request(format!("amount {:?} is not a decimal number", body.amount)))?;
    if amount <= Decimal::ZERO {
        return Err(bad_request("amount must be positive"));
    }
    let code = AssetCode::new(&body.currency)
        .ok_or_else(|| bad_request(format!("{:?} is not a currency code", body.currency)))?;
    let request_id = RequestId::new(&body.request_id)
        .filter(|_| !body.request_id.is_empty())
        .ok_or_else(|| bad_request("requestId must be 1 to 36 characters"))?;
    // Resolve the currency and the amount's units on the engine thread (a short read).
    let resolved = state
        .handle
        .try_query(move |engine| {
            let asset = engine.asset_by_code(&code).ok_or(Reject::UnknownAsset)?;
            let info = engine.asset_info(asset).ok_or(Reject::UnknownAsset)?;
            Ok::<_, Reject>((asset, info.amount_from_decimal(amount)?))
        })
        .map_err(submit_error)?
        .await
        .map_err(submit_error)?;
    let (asset, units) = resolved.map_err(|reject| match reject {
        Reject::UnknownAsset => bad_request(format!("unknown currency {:?}", body.currency)),
        _ => bad_request(format!(
            "amount {} is not a valid amount of {} (too many decimals or too large)",
            body.amount, body.currency
        )),
    })?;
    let kind = CommandKind::Deposit(FundsRequest {
        account,
        asset,
        amount: units,
        request_id,
    });
    let outcome = state
        .handle
        .clone()
        .submit(kind)
        .await
        .map_err(submit_error)?;
    match outcome.result {
        Ok(()) => {}
        Err(Reject::RequestIdMismatch) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "duplicate_request",
                "requestId was used before for a different request",
            ));
        }
        Err(reject) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected",
                reject.to_string(),
            ));
        }
    }
    Ok(axum::Json(json!({
        "requestId": body.request_id,
        "currency": body.currency,
        "amount": amount.normalize().to_string(),
        "type": body.method,
        "details": kept,
        "status": "credited",
        "seq": outcome.seq,
    }))
    .into_response())
}

/// `GET /funds`: the wallet, `[{currency, available, held}]`, in asset order.
pub(crate) async fn balances(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let rows = state
        .handle
        .try_query(move |engine| {
            engine
                .balances(account)
                .iter()
                .filter_map(|&(asset, balance)| {
                    let info = engine.asset_info(asset)?;
                    let decimal =
                        |minor: i64| Decimal::new(minor, u32::from(info.scale())).to_string();
                    Some(json!({
                        "currency": info.code().as_str(),
                        "available": decimal(balance.available),
                        "held": decimal(balance.held),
                    }))
                })
                .collect::<Vec<_>>()
        })
        .map_err(submit_error)?
        .await
        .map_err(submit_error)?;
    Ok(axum::Json(Value::Array(rows)).into_response())
}
