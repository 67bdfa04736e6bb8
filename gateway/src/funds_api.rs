//! `PUT /api/v1/funds` (deposit) and `GET /api/v1/funds` (balances).
//!
//! A deposit names its method (`type`: card, upi or bank) with the method's details in
//! `additionalInformation`. A card is written as the platform's sketch writes it, `{cc,
//! expiry, cvv}` (`cardNumber` is taken for `cc`). Payment processing is out of scope: a
//! deposit the engine accepts is credited at once. The details are checked here and then
//! dropped: a card number, expiry or CVV is never stored, logged or journaled. The journaled
//! command holds the account, asset, amount, request id and the method: `card` with the card's
//! last four digits, `upi` or `bank`, which the funds history shows. Deposits are idempotent by
//! `requestId` (the engine's rule: a repeat with the same body changes nothing, one with a
//! different body is a 409). The sketch's deposit has neither a currency nor a request id:
//! without `currency` the account's preferred currency is credited, and without `requestId`
//! the server assigns one (answered), so such a deposit sent twice is credited twice.
//! Withdrawals (`POST /funds`, the sketch's `{amount, destinationDetails}`) follow the same
//! two rules.

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
use crate::convert;
use crate::error::{ApiError, bad_request, parse_json, rejected};
use crate::orders_api::read_history;
use crate::query::ApiQuery;
use crate::render::{self, FundsMovement, PageQuery};
use crate::schema::{
    BadRequest, BadValue, BearerErrors, BodyErrors, CurrencyCode, DecimalText, HistoryUnavailable,
    MethodDetails, NoRate, PositiveDecimal, Unavailable,
};
use crate::state::AppState;

/// The body of a deposit, `PUT /funds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DepositBody {
    /// Positive, at most the currency's decimals.
    #[schema(value_type = PositiveDecimal)]
    pub(crate) amount: String,
    /// The currency credited; the account's preferred currency when absent.
    #[serde(default)]
    #[schema(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
    /// How it is paid; `additionalInformation` holds the method's details.
    #[serde(rename = "type")]
    #[schema(value_type = DepositMethod)]
    pub(crate) method: String,
    /// Makes the deposit idempotent: 1 to 36 printable ASCII characters without spaces. When
    /// absent the server assigns one (in the answer), and a repeat is a second deposit.
    #[serde(default)]
    #[schema(pattern = "^[!-~]{1,36}$")]
    request_id: Option<String>,
    /// `card`: `{cc, expiry, cvv}` (`cc` Luhn-checked, `cardNumber` taken for it; `expiry`
    /// `MM/YY` or `MM/YYYY`, not past; only the last four digits are kept);
    /// `upi`: `{vpa: "name@bank"}`; `bank`: `{accountNumber}` (1 to 34 characters).
    #[serde(default)]
    #[schema(value_type = Option<PaymentDetails>)]
    pub(crate) additional_information: Option<Value>,
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
    /// `card`: the card number, 12 to 19 digits (spaces allowed), passing the Luhn check.
    #[schema(pattern = "^[0-9][0-9 ]{10,}[0-9]$")]
    cc: Option<String>,
    /// `card`: another name for `cc` (if both are given they must be equal).
    #[schema(pattern = "^[0-9][0-9 ]{10,}[0-9]$")]
    card_number: Option<String>,
    /// `card`: the last month the card is valid, `MM/YY` or `MM/YYYY`; not before the
    /// server's current month (UTC) and at most 20 years ahead.
    #[schema(pattern = "^(0[1-9]|1[0-2])/([0-9]{2}|[0-9]{4})$")]
    expiry: Option<String>,
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

/// The string field `key` of the details object: `None` when absent, an error naming the
/// field when it is not a string.
fn detail<'a>(details: Option<&'a Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match details.and_then(|d| d.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(bad_request(format!(
            "additionalInformation.{key} must be a string"
        ))),
    }
}

/// The string field `key`, which the method needs.
fn needed<'a>(details: Option<&'a Value>, key: &str, what: &str) -> Result<&'a str, ApiError> {
    detail(details, key)?
        .ok_or_else(|| bad_request(format!("{what} needs additionalInformation.{key}")))
}

/// How far ahead a card's expiry may be.
const EXPIRY_YEARS_MAX: i32 = 20;

/// Checks a card's `expiry`, `MM/YY` (20YY) or `MM/YYYY`, against `today`'s (year, month): a
/// card is valid through the last day of its expiry month, so this month is still good.
fn check_expiry(text: &str, today: (i32, u8)) -> Result<(), ApiError> {
    let malformed = || {
        bad_request(format!(
            "additionalInformation.expiry {text:?} is not MM/YY or MM/YYYY"
        ))
    };
    let (month, year) = text.split_once('/').ok_or_else(malformed)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if month.len() != 2 || !digits(month) || !matches!(year.len(), 2 | 4) || !digits(year) {
        return Err(malformed());
    }
    let month: u8 = month.parse().map_err(|_| malformed())?;
    let year: i32 = year.parse().map_err(|_| malformed())?;
    let year = if year < 100 { 2000 + year } else { year };
    if !(1..=12).contains(&month) {
        return Err(bad_request(format!(
            "additionalInformation.expiry {text:?}: {month} is not a month (01 to 12)"
        )));
    }
    if (year, month) < today {
        return Err(bad_request(format!(
            "additionalInformation.expiry {text:?} is in the past: the card expired at the \
             end of {month:02}/{year}"
        )));
    }
    if year > today.0 + EXPIRY_YEARS_MAX {
        return Err(bad_request(format!(
            "additionalInformation.expiry {text:?} is more than {EXPIRY_YEARS_MAX} years ahead"
        )));
    }
    Ok(())
}

/// The server's current (year, month), UTC.
fn this_month() -> (i32, u8) {
    let now = time::OffsetDateTime::now_utc();
    (now.year(), u8::from(now.month()))
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
pub(crate) fn check_method(method: &str, details: Option<&Value>) -> Result<FundsMethod, ApiError> {
    match method {
        "card" => {
            let number = match (detail(details, "cc")?, detail(details, "cardNumber")?) {
                (Some(cc), Some(other)) if cc != other => {
                    return Err(bad_request(
                        "additionalInformation has both cc and cardNumber, and they differ",
                    ));
                }
                (Some(number), _) | (None, Some(number)) => number,
                (None, None) => {
                    return Err(bad_request(
                        "a card deposit needs additionalInformation.cc (the card number)",
                    ));
                }
            };
            let invalid = || bad_request("additionalInformation.cc is not a valid card number");
            let number: String = number.chars().filter(|c| *c != ' ').collect();
            if !(12..=19).contains(&number.len())
                || !number.bytes().all(|b| b.is_ascii_digit())
                || !luhn_ok(&number)
            {
                return Err(invalid());
            }
            check_expiry(needed(details, "expiry", "a card deposit")?, this_month())?;
            let cvv = needed(details, "cvv", "a card deposit")?;
            if !(3..=4).contains(&cvv.len()) || !cvv.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_request(
                    "additionalInformation.cvv must be 3 or 4 digits",
                ));
            }
            let last4 =
                CardLast4::new(&number.as_bytes()[number.len() - 4..]).ok_or_else(invalid)?;
            Ok(FundsMethod::Card(last4))
        }
        "upi" => {
            let vpa = needed(details, "vpa", "a UPI deposit")?;
            match vpa.split_once('@') {
                Some((name, bank)) if !name.is_empty() && !bank.is_empty() && vpa.len() <= 100 => {
                    Ok(FundsMethod::Upi)
                }
                _ => Err(bad_request("vpa must look like name@bank")),
            }
        }
        "bank" => {
            let account = needed(details, "accountNumber", "a bank deposit")?;
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
    let request_id = match body.request_id {
        Some(id) => id,
        None => assigned_request_id()?,
    };
    let (request, amount, currency) = funds_request(
        &state,
        account,
        &body.amount,
        body.currency.as_deref(),
        &request_id,
        method,
    )
    .await?;
    let kind = CommandKind::Deposit(request);
    let seq = submit_funds(&state, kind).await?;
    Ok(axum::Json(Deposited {
        request_id,
        currency,
        amount,
        method: method.name(),
        details: crate::render::method_details(method),
        status: CreditedStatus::Credited,
        seq,
    })
    .into_response())
}

/// Checks a funds request's amount, currency (the account's preferred one when `None`) and
/// request id, and resolves the currency and the amount's units with one engine query.
/// Returns the request, the amount at the currency's scale and the currency's code.
async fn funds_request(
    state: &AppState,
    account: bourse_engine::AccountId,
    amount_text: &str,
    currency: Option<&str>,
    request_id_text: &str,
    method: FundsMethod,
) -> Result<(FundsRequest, String, String), ApiError> {
    let amount = crate::render::positive_decimal("amount", amount_text)?;
    let defaulted = currency.is_none();
    let currency = match currency {
        Some(currency) => currency.to_owned(),
        None => state
            .query(move |engine| {
                engine
                    .account_profile(account)
                    .map(|profile| profile.currency_preference.as_str().to_owned())
            })
            .await?
            .ok_or_else(|| rejected(Reject::UnknownAccount))?,
    };
    let code = AssetCode::new(&currency)
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
        Reject::UnknownAsset if defaulted => bad_request(format!(
            "the account's preferred currency {currency} is not one wallets hold: name the \
             currency (\"currency\": \"USD\")"
        )),
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
    Ok((request, text, currency))
}

/// A request id for a deposit sent without one: `srv-` and 32 random hex digits.
fn assigned_request_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("no randomness for a request id: {e}"),
        )
    })?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("srv-{hex}"))
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
pub(crate) struct WithdrawBody {
    /// Positive, at most the currency's decimals.
    #[schema(value_type = PositiveDecimal)]
    pub(crate) amount: String,
    /// The currency withdrawn; the account's preferred currency when absent.
    #[serde(default)]
    #[schema(value_type = Option<CurrencyCode>)]
    currency: Option<String>,
    /// Makes the withdrawal idempotent: 1 to 36 printable ASCII characters without spaces.
    /// When absent the server assigns one (in the answer), and a repeat is a second withdrawal.
    #[serde(default)]
    #[schema(pattern = "^[!-~]{1,36}$")]
    request_id: Option<String>,
    /// Where the money goes (free-form; paying it out is out of scope).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub(crate) destination_details: Option<Value>,
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
    let request_id = match body.request_id {
        Some(id) => id,
        None => assigned_request_id()?,
    };
    let (request, amount, currency) = funds_request(
        &state,
        account,
        &body.amount,
        body.currency.as_deref(),
        &request_id,
        FundsMethod::Unspecified,
    )
    .await?;
    let seq = submit_funds(&state, CommandKind::Withdraw(request)).await?;
    Ok(axum::Json(Withdrawn {
        request_id,
        currency,
        amount,
        status: WithdrawnStatus::Withdrawn,
        seq,
    })
    .into_response())
}

/// `GET /funds`: the wallet, `{amount, currency, unvalued, balances}`: each balance valued in
/// the account's preferred currency and their total (`wallet.rs`).
#[utoipa::path(
    get,
    path = "/api/v1/funds",
    tag = "funds",
    params(crate::convert::CurrencyQuery),
    responses(
        (status = 200, description = "the wallet: its total in the preferred (or asked) currency and the balances, in asset order", body = crate::wallet::WalletView),
        BadRequest,
        BearerErrors,
        (status = 422, description = "`one_currency`: `currency=own` (a total needs one currency)", body = crate::openapi::ErrorBody),
        Unavailable,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn balances(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<convert::CurrencyQuery>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let target = crate::convert::for_account(&state, account, query.currency.as_deref())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "one_currency",
                "the wallet's total is in one currency: ask for one (or none, for the preference)",
            )
        })?;
    let (holdings, _) = state
        .query(move |engine| crate::wallet::holdings(engine, account))
        .await?;
    let preference = target.currency.to_string();
    let market = state
        .market
        .read()
        .map_err(crate::error::market_unavailable)?;
    Ok(axum::Json(crate::wallet::value(&market, holdings, preference)).into_response())
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

#[cfg(test)]
mod tests {
    use super::check_expiry;

    #[test]
    fn an_expiry_is_a_real_month_from_this_one_to_twenty_years_ahead() {
        let today = (2026, 12);
        for good in ["12/26", "12/2026", "01/27", "06/2046", "12/46"] {
            assert!(check_expiry(good, today).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("11/26", "in the past"),
            ("12/2025", "in the past"),
            ("01/2047", "more than 20 years"),
            ("13/27", "not a month"),
            ("00/27", "not a month"),
            ("1/27", "not MM/YY"),
            ("12/027", "not MM/YY"),
            ("12-27", "not MM/YY"),
            ("ab/cd", "not MM/YY"),
            ("+1/27", "not MM/YY"),
            ("", "not MM/YY"),
        ] {
            let error = check_expiry(bad, today).expect_err(bad);
            assert!(error.message.contains(says), "{bad}: {}", error.message);
            assert!(error.message.contains("additionalInformation.expiry"));
        }
        // A card is good through the end of its month, whichever year turns.
        assert!(check_expiry("01/27", (2027, 1)).is_ok());
        assert!(check_expiry("12/26", (2027, 1)).is_err());
    }
}

/// `GET /funds/history`: deposits, withdrawals and fees, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/funds/history",
    tag = "funds",
    params(PageQuery),
    responses(
        (status = 200, description = "deposits, withdrawals and fees, newest first", body = Vec<FundsMovement>,
            headers(("X-Next-Cursor" = u64, description = "the cursor of the next page; absent on the last"))),
        BadRequest,
        BearerErrors,
        HistoryUnavailable,
        NoRate,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn funds_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &headers).await?;
    let (cursor, limit) = query.get();
    let target = convert::for_account(&state, account, query.currency.as_deref()).await?;
    let page = read_history(&state, move |h| h.funds(account.get(), cursor, limit)).await?;
    let products = render::products_in(&page.items, |f| f.product);
    let mut assets: Vec<u16> = page.items.iter().filter_map(|f| f.asset).collect();
    assets.sort_unstable();
    assets.dedup();
    let (units, assets) = state
        .query(move |e| {
            (
                render::units_of(e, &products),
                render::assets_of(e, &assets),
            )
        })
        .await?;
    let items: Vec<FundsMovement> = page
        .items
        .iter()
        .map(|f| render::funds(f, &assets, &units))
        .collect();
    let rates = convert::rates_for(
        &state,
        target.as_ref(),
        items.iter().filter_map(FundsMovement::valued_at),
    )?;
    let items: Vec<FundsMovement> = items
        .into_iter()
        .map(|f| f.convert(rates.as_ref()))
        .collect();
    Ok(render::page_response(items, page.next))
}
