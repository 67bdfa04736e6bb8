//! What the fuzz targets reach inside the gateway (`fuzz/`, through the crate `fuzz-checks`):
//! the body of every write endpoint, read and checked as its handler does before it asks the
//! engine anything. (The WebSocket messages are read by `ws_message.rs`, pure already.)

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use bourse_engine::{
    AccountId, AddProduct, AssetCode, AssetId, Command, CommandKind, Engine, FeeSchedule, Limits,
    ProductId, Side, Symbol,
};

use crate::error::{ApiError, bad_request, parse_json};
use crate::render::{ProductUnits, positive_decimal};

/// The write endpoints whose bodies [`write_body`] reads, by index.
pub const WRITE_BODIES: &[&str] = &[
    "PUT /api/v1/account",
    "PATCH /api/v1/account",
    "PUT /api/v1/funds",
    "POST /api/v1/funds",
    "POST /api/v1/product/buy",
    "PUT /api/v1/admin/accounts/{id}/status",
];

/// Reads `bytes` as the body of endpoint `which` (modulo [`WRITE_BODIES`]) and checks it as
/// the handler does before the engine: the JSON and its fields, a deposit's method and card,
/// an amount, an order's type, quantity and price against AAPL's grid (0.01 tick, 1 share).
pub fn write_body(which: u8, bytes: &[u8]) -> Result<(), ApiError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match usize::from(which) % WRITE_BODIES.len() {
        0 => parse_json::<crate::account_api::CreateBody>(&headers, bytes).map(drop),
        1 => {
            let body: crate::account_api::UpdateBody = parse_json(&headers, bytes)?;
            crate::fx::currency_param(&body.currency_preference).map(drop)
        }
        2 => {
            let body: crate::funds_api::DepositBody = parse_json(&headers, bytes)?;
            crate::funds_api::check_method(&body.method, body.additional_information.as_ref())?;
            positive_decimal("amount", &body.amount).map(drop)
        }
        3 => {
            let body: crate::funds_api::WithdrawBody = parse_json(&headers, bytes)?;
            if body
                .destination_details
                .as_ref()
                .is_some_and(|d| !d.is_object())
            {
                return Err(bad_request("destinationDetails must be an object"));
            }
            positive_decimal("amount", &body.amount).map(drop)
        }
        4 => {
            let body: crate::orders_api::OrderBody = parse_json(&headers, bytes)?;
            let units = aapl().ok_or_else(|| crate::error::internal("no AAPL"))?;
            crate::orders_api::new_order(
                AccountId::new(1),
                Side::Buy,
                &body,
                ProductId::new(0),
                units,
            )
            .map(drop)
        }
        _ => parse_json::<crate::admin_api::StatusBody>(&headers, bytes).map(drop),
    }
}

/// AAPL as the default catalogue lists it: USD (2 decimals), whole shares, a 0.01 tick.
fn aapl() -> Option<&'static ProductUnits> {
    static UNITS: OnceLock<Option<ProductUnits>> = OnceLock::new();
    UNITS
        .get_or_init(|| {
            let mut engine = Engine::new(Limits::default());
            let commands = [
                CommandKind::AddAsset {
                    code: AssetCode::new("USD")?,
                    scale: 2,
                },
                CommandKind::AddAsset {
                    code: AssetCode::new("AAPL")?,
                    scale: 0,
                },
                CommandKind::add_product(AddProduct {
                    symbol: Symbol::new("AAPL")?,
                    name: "Apple Inc.".into(),
                    base: AssetId::new(1),
                    quote: AssetId::new(0),
                    price_scale: 2,
                    tick_size: 1,
                    qty_scale: 0,
                    lot_size: 1,
                    fees: FeeSchedule::flat(1_000, 2_000).ok()?,
                }),
            ];
            for (seq, kind) in (1..).zip(commands) {
                let command = Command {
                    seq,
                    timestamp_ms: 0,
                    kind,
                };
                engine.apply(&command, &mut Vec::new()).ok()?;
            }
            ProductUnits::of(&engine, ProductId::new(0))
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_body_is_read_and_checked() {
        assert!(aapl().is_some());
        let ok = [
            r#"{"name": "Ada", "proof": "passport:1", "currencyPreference": "USD"}"#,
            r#"{"currencyPreference": "EUR"}"#,
            r#"{"amount": "10.50", "type": "card", "additionalInformation": {"cc": "4111111111111111", "expiry": "12/40", "cvv": "123"}}"#,
            r#"{"amount": "1", "destinationDetails": {}}"#,
            r#"{"symbol": "AAPL", "quantity": "3", "type": "limit", "price": "150.25"}"#,
            r#"{"status": "verified"}"#,
        ];
        for (which, body) in ok.iter().enumerate() {
            let result = write_body(u8::try_from(which).unwrap_or(0), body.as_bytes());
            assert!(result.is_ok(), "{}: {result:?}", WRITE_BODIES[which]);
        }
        let order = r#"{"symbol": "AAPL", "quantity": "3", "type": "limit", "price": "150.255"}"#;
        assert!(
            write_body(4, order.as_bytes()).is_err(),
            "off the tick grid"
        );
        assert!(write_body(2, b"{\"amount\": 10}").is_err());
    }
}
