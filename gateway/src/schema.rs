//! The OpenAPI shapes the handlers share: the contract's string formats (decimals, symbols,
//! currency codes) as types with a schema, the names of enumerations the history crate
//! serialises, and the error answers of each status.
//!
//! A string format is a newtype over the `String` the API sends (`#[serde(transparent)]`, so
//! the JSON is unchanged) whose schema states the pattern once; fields of that type become a
//! `$ref` to it in the document. The error sets ([`utoipa::IntoResponses`]) are one status
//! each, so an endpoint lists the statuses it can answer and none twice; statuses whose codes
//! depend on the endpoint (404, 409, 422, 503) are written at the endpoint.

use std::borrow::Cow;

use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::openapi::ErrorBody;

/// A decimal in the API: digits, optionally a point and more digits, never an exponent.
pub const DECIMAL_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";
/// A positive decimal in a request: not zero, no sign.
pub const POSITIVE_DECIMAL_PATTERN: &str =
    r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$";
/// A product's symbol: 1 to 16 printable ASCII characters without spaces.
pub const SYMBOL_PATTERN: &str = r"^[!-~]{1,16}$";
/// A currency (asset) code: 1 to 12 printable ASCII characters without spaces.
pub const CURRENCY_PATTERN: &str = r"^[!-~]{1,12}$";

macro_rules! text_type {
    ($(#[$doc:meta])* $type:ident, $name:literal, $pattern:expr, $description:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $type(pub String);

        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .description(Some($description))
                    .examples([$example])
                    .into()
            }
        }

        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

text_type!(
    /// A decimal string (money, prices, quantities, rates).
    DecimalText,
    "Decimal",
    DECIMAL_PATTERN,
    "A decimal number as a string, at the currency's or product's scale (\"1000.25\"); never a JSON number, never an exponent.",
    "150.25"
);
text_type!(
    /// A positive decimal string (an amount, quantity or price in a request).
    PositiveDecimal,
    "PositiveDecimal",
    POSITIVE_DECIMAL_PATTERN,
    "A positive decimal number as a string: digits, optionally a point and digits (\"1.5\"); no sign, exponent, separator or space.",
    "1.5"
);
text_type!(
    /// A product's symbol.
    SymbolText,
    "Symbol",
    SYMBOL_PATTERN,
    "A product's symbol: 1 to 16 printable ASCII characters without spaces (\"AAPL\").",
    "AAPL"
);
text_type!(
    /// A currency (asset) code.
    CurrencyCode,
    "CurrencyCode",
    CURRENCY_PATTERN,
    "A currency or asset code: 1 to 12 printable ASCII characters without spaces (\"USD\", or a share such as \"AAPL\").",
    "USD"
);

/// A string schema of `values` (for a parameter or field kept as text so that its check
/// can say precisely what is wrong).
pub fn string_enum(values: &[&str], description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
}

/// `Connection: Upgrade` of a WebSocket upgrade.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum ConnectionUpgrade {
    Upgrade,
}

/// `Upgrade: websocket`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum UpgradeWebsocket {
    Websocket,
}

/// `Sec-WebSocket-Version: 13`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum WebSocketVersion {
    #[serde(rename = "13")]
    V13,
}

/// Buy or sell (`bourse_history::SideName`).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Side {
    Buy,
    Sell,
}

/// Time in force (`bourse_history::Tif`).
#[derive(ToSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub enum TimeInForce {
    GTC,
    IOC,
    FOK,
    #[serde(rename = "POST_ONLY")]
    PostOnly,
}

/// Maker or taker (`bourse_history::Liquidity`).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Liquidity {
    Maker,
    Taker,
}

/// Why an order ended without filling in full (`bourse_history::EndReason`): the owner
/// cancelled it, self-trade prevention, the rest of an IOC or market order, a market buy out
/// of funds.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub enum EndReason {
    Requested,
    SelfTrade,
    Expired,
    InsufficientFunds,
}

/// What moved an account's funds (`bourse_history::FundsKind`).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum FundsKind {
    Deposit,
    Withdrawal,
    Fee,
}

/// How a deposit was paid or a withdrawal paid out (`unspecified`: withdrawals and internal
/// funding).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum FundsMethod {
    Card,
    Upi,
    Bank,
    Unspecified,
}

/// What a funds record shows of its method: a card's last four digits, nothing else (`{}`
/// for the other methods).
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9]{4}$", required = false)]
    pub card_last4: Option<String>,
}

/// 400 for a request whose body, query or path is malformed.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "`invalid_request`: malformed JSON, wrong types, missing or unknown fields or query parameters, a value out of range (the message says which)"
)]
#[allow(dead_code)]
pub struct BadRequest(ErrorBody);

/// 422 of a page of records asked in another currency.
#[derive(IntoResponses)]
#[response(
    status = 422,
    description = "`no_rate`: `currency` asked and no listed rate converts a record's currency into it (docs/api.md, \"Currencies\")"
)]
#[allow(dead_code)]
pub struct NoRate(ErrorBody);

/// 400, also for well-formed values the data refuses (funds and orders).
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "`invalid_request`: malformed JSON, wrong types, missing or unknown fields, a value out of range; and well-formed values that the product or currency refuses: an unknown currency, an amount with more decimals than the currency has or too large, a quantity off the product's lot grid or a price off its tick grid (the message says which)"
)]
#[allow(dead_code)]
pub struct BadValue(ErrorBody);

/// 401 and 429 of an endpoint behind an account's bearer token.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BearerErrors {
    #[response(
        status = 401,
        description = "`unauthorized`: no token, a malformed one or a wrong one"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 429,
        description = "`rate_limited`: over the account's rate limit",
        headers(("Retry-After" = u64, description = "seconds to wait before retrying"))
    )]
    RateLimited(ErrorBody),
}

/// 401 and 403 of the admin API.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    #[response(
        status = 401,
        description = "`unauthorized`: no admin token or a wrong one"
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "`admin_disabled`: the admin API is off (no admin-token setting)"
    )]
    Disabled(ErrorBody),
}

/// 413 and 415 of an endpoint with a JSON body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    #[response(status = 413, description = "`payload_too_large`: a body over 64 KiB")]
    TooLarge(ErrorBody),
    #[response(
        status = 415,
        description = "`unsupported_media_type`: a body without Content-Type: application/json"
    )]
    NotJson(ErrorBody),
}

/// 503 of an endpoint that reads or commands the engine.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "`busy`: the command ring is full (retry); `unavailable`: the engine stopped, or in a cluster the command log did not take the command or this node is behind the log (Retry-After; a retry with the same key is applied at most once); `stale`: in a cluster, this node is behind the log by more than its bound, a read (Retry-After)"
)]
#[allow(dead_code)]
pub struct Unavailable(ErrorBody);

/// 503 of an endpoint that reads the history.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "`busy`: the command ring is full (retry); `unavailable`: the engine stopped (in a cluster: see the writes' 503); `stale`: in a cluster, this node is behind the log by more than its bound (Retry-After); `history_unavailable`: the history read model is behind or stopped"
)]
#[allow(dead_code)]
pub struct HistoryUnavailable(ErrorBody);

/// 503 of an endpoint that reads the market data.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "`market_data_unavailable`: the market data's logs cannot be read; `busy`, `unavailable`: the engine is busy or stopped"
)]
#[allow(dead_code)]
pub struct MarketUnavailable(ErrorBody);

#[cfg(test)]
mod tests {
    use super::*;

    /// The enumerations documented here name the values the history crate serialises.
    #[test]
    fn the_documented_enumerations_match_what_is_serialised() {
        use bourse_history::{EndReason as E, FundsKind as K, Liquidity as L, SideName as S, Tif};
        fn names<T: ToSchema>() -> Vec<String> {
            let json = serde_json::to_value(T::schema()).unwrap_or_default();
            json["enum"]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
        fn text(value: impl Serialize) -> String {
            serde_json::to_value(value)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }
        let cases: [(Vec<String>, Vec<String>); 5] = [
            (names::<Side>(), vec![text(S::Buy), text(S::Sell)]),
            (
                names::<TimeInForce>(),
                vec![
                    text(Tif::Gtc),
                    text(Tif::Ioc),
                    text(Tif::Fok),
                    text(Tif::PostOnly),
                ],
            ),
            (names::<Liquidity>(), vec![text(L::Maker), text(L::Taker)]),
            (
                names::<EndReason>(),
                vec![
                    text(E::Requested),
                    text(E::SelfTrade),
                    text(E::Expired),
                    text(E::InsufficientFunds),
                ],
            ),
            (
                names::<FundsKind>(),
                vec![text(K::Deposit), text(K::Withdrawal), text(K::Fee)],
            ),
        ];
        for (documented, serialised) in cases {
            assert_eq!(documented, serialised);
        }
        let methods = names::<FundsMethod>();
        for method in [
            bourse_engine::FundsMethod::Upi,
            bourse_engine::FundsMethod::Bank,
            bourse_engine::FundsMethod::Unspecified,
        ] {
            assert!(methods.iter().any(|m| m == method.name()), "{methods:?}");
        }
    }

    #[test]
    fn text_types_serialise_as_plain_strings_and_state_their_pattern() {
        let json = serde_json::to_string(&DecimalText("1.50".into())).unwrap_or_default();
        assert_eq!(json, "\"1.50\"");
        let schema = serde_json::to_value(DecimalText::schema()).unwrap_or_default();
        assert_eq!(schema["pattern"], DECIMAL_PATTERN);
        assert_eq!(DecimalText::name(), "Decimal");
    }
}
