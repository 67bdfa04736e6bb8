//! Reading a client's WebSocket text message, without a session: the typed one-pass read of
//! an order (the hot path), and the general read every other message (and every mistake)
//! takes. Both are pure, so the fuzz target `ws_message` checks that the typed read agrees
//! with the general one on any text.

use bourse_engine::Side;
use serde_json::{Map, Value};

use crate::error::{ApiError, bad_request};
use crate::orders_api::OrderBody;

/// An order message in its usual form, read in one pass (see [`Session::handle_text`]).
/// The order's own fields are [`OrderBody`]'s, spelled out (serde's `flatten` would read
/// through an intermediate map, which is what this is here to avoid); an unknown field fails
/// the typed read, and the general path then reports it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OrderMessage<'a> {
    op: &'a str,
    #[serde(default)]
    id: Value,
    side: &'a str,
    symbol: String,
    quantity: String,
    #[serde(rename = "type")]
    order_type: String,
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    time_in_force: Option<String>,
    #[serde(default)]
    client_order_id: Option<String>,
}

fn side_of(text: &str) -> Option<Side> {
    match text {
        "buy" => Some(Side::Buy),
        "sell" => Some(Side::Sell),
        _ => None,
    }
}

/// An order read from a message: its `id` (`null` when absent), side and body.
#[derive(Debug, PartialEq)]
pub struct ReadOrder {
    pub id: Value,
    pub side: Side,
    pub body: OrderBody,
}

/// The typed read: `Some` only for a well-formed order message in its usual form (no unknown
/// or repeated field, strings without escapes in `op` and `side`); anything else is for
/// [`general`].
pub fn typed_order(text: &str) -> Option<ReadOrder> {
    let order = serde_json::from_str::<OrderMessage>(text).ok()?;
    if order.op != "order" {
        return None;
    }
    let side = side_of(order.side)?;
    Some(ReadOrder {
        id: order.id,
        side,
        body: OrderBody {
            symbol: order.symbol,
            quantity: order.quantity,
            order_type: order.order_type,
            price: order.price,
            time_in_force: order.time_in_force,
            client_order_id: order.client_order_id,
        },
    })
}

/// A message as the general read leaves it: its `id` (`null` when absent), its `op` and its
/// other fields.
pub type General = (Value, String, Map<String, Value>);

/// The general read: `(id, op, the other fields)`, or the id (`null` if unknown) and the
/// error to answer.
pub fn general(text: &str) -> Result<General, (Value, ApiError)> {
    let mut fields: Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        let error = bad_request(format!("invalid JSON message (an object expected): {e}"));
        (Value::Null, error)
    })?;
    let id = fields.remove("id").unwrap_or(Value::Null);
    match fields.remove("op") {
        Some(Value::String(op)) => Ok((id, op, fields)),
        _ => Err((id, bad_request("a message needs \"op\" (a string)"))),
    }
}

/// An order's side and body from the fields [`general`] left (`op` and `id` removed).
pub fn order_of_fields(mut fields: Map<String, Value>) -> Result<(Side, OrderBody), ApiError> {
    let side = match fields.remove("side") {
        Some(Value::String(side)) if let Some(side) = side_of(&side) => side,
        _ => return Err(bad_request("an order needs \"side\": \"buy\" or \"sell\"")),
    };
    let body = serde_json::from_value(Value::Object(fields))
        .map_err(|e| bad_request(format!("invalid order: {e}")))?;
    Ok((side, body))
}
