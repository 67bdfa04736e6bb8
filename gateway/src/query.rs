//! The typed values of query strings, and [`ApiQuery`], the extractor that reads a query
//! string into a struct of them.
//!
//! Each value deserializes from its parameter's text and refuses a wrong one with a message
//! written to follow the parameter's name; the extractor puts the name first, so a wrong
//! `?limit=0` is answered 400 `invalid_request` "limit must be a whole number from 1 to 500".
//! The OpenAPI document declares each parameter's type, range and enum (`#[param(value_type
//! = ...)]` on the query structs); these types are what the handlers receive.

use std::fmt::Display;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use bourse_engine::Side;
use bourse_marketdata::candle::Interval;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, bad_request};

/// A query string read into `T`; a wrong one is refused 400 `invalid_request` with a message
/// that names the parameter (axum's own `Query` answers in plain text).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        read(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Reads `query` (the text after `?`) into `T`.
pub fn read<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        if let Some(field) = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            return bad_request(format!("the query needs {field}"));
        }
        // serde's own refusals (an unknown, missing or repeated parameter) name the field.
        let names_itself = ["unknown field", "missing field", "duplicate field"]
            .iter()
            .any(|prefix| inner.starts_with(prefix));
        if names_itself || path.is_empty() || path == "." {
            bad_request(format!("the query string: {inner}"))
        } else {
            bad_request(format!("{path} {inner}"))
        }
    })
}

/// Deserializes a parameter's text through `parse`; `refusal` says what is wrong with it.
fn from_text<'de, D, T, M>(
    deserializer: D,
    parse: impl FnOnce(&str) -> Option<T>,
    refusal: impl FnOnce(&str) -> M,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    M: Display,
{
    let text = String::deserialize(deserializer)?;
    parse(&text).ok_or_else(|| D::Error::custom(refusal(&text)))
}

/// A count from 1 to `MAX` (page sizes, series limits, book depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count<const MAX: usize>(pub usize);

impl<'de, const MAX: usize> Deserialize<'de> for Count<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            |text| {
                text.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX).contains(n))
                    .map(Count)
            },
            |_| format!("must be a whole number from 1 to {MAX}"),
        )
    }
}

/// The `X-Next-Cursor` of a previous page: a whole number up to `MAX` (event sequence
/// numbers are below 2^63, the document's int64; catalogue ids fit a u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor<const MAX: u64>(pub u64);

/// A cursor that is an event sequence number.
pub type SeqCursor = Cursor<{ i64::MAX as u64 }>;

impl<'de, const MAX: u64> Deserialize<'de> for Cursor<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            |text| text.parse::<u64>().ok().filter(|c| *c <= MAX).map(Cursor),
            |text| format!("{text:?} is not a cursor"),
        )
    }
}

/// A time in unix milliseconds, not negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixMs(pub i64);

impl<'de> Deserialize<'de> for UnixMs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            |text| text.parse::<i64>().ok().filter(|t| *t >= 0).map(UnixMs),
            |_| "must be a unix time in ms",
        )
    }
}

/// `buy` or `sell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideParam(pub Side);

impl<'de> Deserialize<'de> for SideParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            |text| match text {
                "buy" => Some(SideParam(Side::Buy)),
                "sell" => Some(SideParam(Side::Sell)),
                _ => None,
            },
            |text| format!("{text:?} is not buy or sell"),
        )
    }
}

/// A candle interval by its name (`1s`, `1m`, `5m`, `15m`, `1h`, `4h`, `1d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntervalParam(pub Interval);

impl<'de> Deserialize<'de> for IntervalParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            |text| Interval::parse(text).map(IntervalParam),
            |text| format!("{text:?} is not one of 1s, 1m, 5m, 15m, 1h, 4h, 1d"),
        )
    }
}

/// Which orders `GET /orders` lists: `open` or `closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrdersStatus {
    Open,
    Closed,
}

impl<'de> Deserialize<'de> for OrdersStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            |text| match text {
                "open" => Some(OrdersStatus::Open),
                "closed" => Some(OrdersStatus::Closed),
                _ => None,
            },
            |text| format!("{text:?} is not one of open, closed"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        limit: Option<Count<500>>,
        cursor: Option<SeqCursor>,
        from: Option<UnixMs>,
        side: Option<SideParam>,
        interval: Option<IntervalParam>,
        status: Option<OrdersStatus>,
    }

    fn message(query: &str) -> String {
        match read::<Sample>(query) {
            Ok(sample) => panic!("{query} was accepted as {sample:?}"),
            Err(error) => error.message,
        }
    }

    #[test]
    fn reads_every_value() {
        let sample: Sample =
            read("limit=500&cursor=9223372036854775807&from=0&side=sell&interval=4h&status=closed")
                .unwrap();
        assert_eq!(sample.limit, Some(Count(500)));
        assert_eq!(sample.cursor, Some(Cursor(i64::MAX as u64)));
        assert_eq!(sample.from, Some(UnixMs(0)));
        assert_eq!(sample.side, Some(SideParam(Side::Sell)));
        assert_eq!(sample.interval, Some(IntervalParam(Interval::H4)));
        assert_eq!(sample.status, Some(OrdersStatus::Closed));
        let empty: Sample = read("").unwrap();
        assert_eq!(empty.limit, None);
    }

    #[test]
    fn names_the_parameter_it_refuses() {
        assert_eq!(
            message("limit=0"),
            "limit must be a whole number from 1 to 500"
        );
        assert_eq!(
            message("limit=501"),
            "limit must be a whole number from 1 to 500"
        );
        assert_eq!(
            message("limit=x"),
            "limit must be a whole number from 1 to 500"
        );
        assert_eq!(
            message("cursor=9223372036854775808"),
            "cursor \"9223372036854775808\" is not a cursor"
        );
        assert_eq!(message("from=-1"), "from must be a unix time in ms");
        assert_eq!(message("side=hold"), "side \"hold\" is not buy or sell");
        assert_eq!(
            message("interval=2m"),
            "interval \"2m\" is not one of 1s, 1m, 5m, 15m, 1h, 4h, 1d"
        );
        assert_eq!(
            message("status=all"),
            "status \"all\" is not one of open, closed"
        );
        assert!(
            message("colour=red").starts_with("the query string: unknown field `colour`"),
            "{}",
            message("colour=red")
        );
        #[derive(Debug, Deserialize)]
        struct Needs {
            #[allow(dead_code)]
            side: SideParam,
        }
        assert_eq!(
            read::<Needs>("").map(|_| ()).unwrap_err().message,
            "the query needs side"
        );
        assert!(
            message("limit=1&limit=2").starts_with("the query string: duplicate field `limit`"),
            "{}",
            message("limit=1&limit=2")
        );
    }
}
