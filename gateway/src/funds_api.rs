//! `PUT /api/v1/funds` (deposit) and `GET /api/v1/funds` (balances).
//!
//! A deposit names its method (`type`: card, upi or bank) with the method's details in
//! `additionalInformation`. Payment processing is out of scope: a deposit the engine accepts
//! is credited at once. The details are checked here and then dropped: a card number or CVV is
//! never stored, logged or journaled. The journaled command holds the account, asset, amount,
//! request id and the method: `card` with the card's last four digits, `upi` or `bank`, which
//! the funds history shows. Deposits are idempotent by `requestId` (the engine's rule: a repeat
//! with the same body changes nothing, one with a different body is a 409).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bourse_engine::{
    AssetCode, CardLast4, CommandKind, FundsMethod, FundsRequest, Reject, RequestId,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::account_api::authenticate;
use crate::error::{ApiError, bad_request, parse_json, rejected};
use crate::schema::{
    BadValue, BearerErrors, BodyErrors, CurrencyCode, DecimalText, MethodDetails, PositiveDecimal,
    Unavailable,
};
use crate::state::AppState;

/// The body of a deposit, `PUT /funds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DepositBody {
    /// Positive, at most the currency's decimals.
    #[schema(value_type = PositiveDecimal)]
    amount: String,
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// How it is paid; `additionalInformation` holds the method's details.
    #[serde(rename = "type")]
    #[schema(value_type = DepositMethod)]
    method: String,
    /// Makes the deposit idempotent: 1 to 36 printable ASCII characters without spaces.
    #[schema(pattern = "^[!-~]{1,36}$")]
    request_id: String,
    /// `card`: `{cardNumber, cvv}` (Luhn-checked; only the last four digits are kept);
    /// `upi`: `{vpa: "name@bank"}`; `bank`: `{accountNumber}` (1 to 34 characters).
    #[serde(default)]
    #[schema(value_type = Option<PaymentDetails>)]
    additional_information: Option<Value>,
}

/// How a deposit is paid.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum DepositMethod {
    Card,
    Upi,
    Bank,
}

/// The details of a deposit's method: the fields of its `type` (others are ignored).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct PaymentDetails {
    /// `card`: 12 to 19 digits (spaces allowed), passing the Luhn check.
    #[schema(pattern = "^[0-9][0-9 ]{10,}[0-9]$")]
    card_number: Option<String>,
    /// `card`: 3 or 4 digits.
    #[schema(pattern = "^[0-9]{3,4}$")]
    cvv: Option<String>,
    /// `upi`: `name@bank`, at most 100 characters.
    #[schema(pattern = "^[^@]+@.+$", max_length = 100)]
    vpa: Option<String>,
    /// `bank`: 1 to 34 characters.
    #[schema(min_length = 1, max_length = 34)]
    account_number: Option<String>,
}

/// The answer to a deposit.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Deposited {
    request_id: String,
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// At the currency's scale (`"0.1"` is answered `"0.10"`).
    #[schema(value_type = DecimalText)]
    amount: String,
    #[serde(rename = "type")]
    #[schema(value_type = DepositMethod)]
    method: &'static str,
    details: MethodDetails,
    status: CreditedStatus,
    /// The command's sequence number in the journal.
    seq: u64,
}

/// A deposit's status: credited at once (payment processing is out of scope).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum CreditedStatus {
    Credited,
}

/// The answer to a withdrawal.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Withdrawn {
    request_id: String,
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// At the currency's scale.
    #[schema(value_type = DecimalText)]
    amount: String,
    status: WithdrawnStatus,
    /// The command's sequence number in the journal.
    seq: u64,
}

/// A withdrawal's status: taken from the available balance.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum WithdrawnStatus {
    Withdrawn,
}

/// One currency of the wallet.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Balance {
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// What orders and withdrawals may use.
    #[schema(value_type = DecimalText)]
    available: String,
    /// Held by open orders.
    #[schema(value_type = DecimalText)]
    held: String,
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
    responses(
        (status = 200, description = "credited", body = Deposited),
        BadValue,
        BearerErrors,
        (status = 409, description = "`duplicate_request`: the requestId was used for another currency or amount", body = crate::openapi::ErrorBody),
        BodyErrors,
        (status = 422, description = "`rejected`: the engine refused (e.g. the balance would overflow)", body = crate::openapi::ErrorBody),
        Unavailable,
    ),
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
    Ok(axum::Json(Deposited {
        request_id: body.request_id,
        currency: body.currency,
        amount,
        method: method.name(),
        details: crate::render::method_details(method),
        status: CreditedStatus::Credited,
        seq,
    })
    .into_response())
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
    let amount = crate::render::positive_decimal("amount", amount_text)?;
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

/// The body of a withdrawal, `POST /funds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WithdrawBody {
    /// Positive, at most the currency's decimals.
    #[schema(value_type = PositiveDecimal)]
    amount: String,
    #[schema(value_type = CurrencyCode)]
    currency: String,
    /// Makes the withdrawal idempotent: 1 to 36 printable ASCII characters without spaces.
    #[schema(pattern = "^[!-~]{1,36}$")]
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
    responses(
        (status = 200, description = "withdrawn", body = Withdrawn),
        BadValue,
        BearerErrors,
        (status = 409, description = "`duplicate_request`: the requestId was used for another currency or amount", body = crate::openapi::ErrorBody),
        BodyErrors,
        (status = 422, description = "`insufficient_funds`: beyond the available balance; `rejected`: the engine refused for another reason", body = crate::openapi::ErrorBody),
        Unavailable,
    ),
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
    Ok(axum::Json(Withdrawn {
        request_id: body.request_id,
        currency: body.currency,
        amount,
        status: WithdrawnStatus::Withdrawn,
        seq,
    })
    .into_response())
}

/// `GET /funds`: the wallet, `[{currency, available, held}]`, in asset order.
#[utoipa::path(
    get,
    path = "/api/v1/funds",
    tag = "funds",
    responses(
        (status = 200, description = "the wallet, in asset order", body = Vec<Balance>),
        BearerErrors,
        Unavailable,
    ),
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
) -> Vec<Balance> {
    engine
        .balances(account)
        .iter()
        .filter_map(|&(asset, balance)| {
            let info = engine.asset_info(asset)?;
            let decimal = |minor: i64| Decimal::new(minor, u32::from(info.scale())).to_string();
            Some(Balance {
                currency: info.code().as_str().to_string(),
                available: decimal(balance.available),
                held: decimal(balance.held),
            })
        })
        .collect()
}
