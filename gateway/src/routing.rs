//! The router of market data across nodes (`market-tier = partitioned`, `tier.rs`): a
//! product's `GET /api/v1/products/{symbol}`, `candles` and `ticks` are answered here when
//! this node holds the product's partition caught up, and otherwise forwarded to its holders
//! in turn (owner first) and their answer relayed as it is. A forwarded request carries
//! [`FORWARDED`]; the node it reaches serves it or answers 503, never forwards it again.
//! The engine's book (`/book`) is every node's and is not routed.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bourse_cluster::Member;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tier::{FORWARDED, MarketTier, Route};

/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of a forwarded answer relayed.
const FORWARD_BODY_MAX: usize = 64 << 20;

/// The symbol of a routed path: `/api/v1/products/{symbol}`, `.../candles`, `.../ticks`.
fn routed_symbol(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api/v1/products/")?;
    let (symbol, tail) = rest.split_once('/').unwrap_or((rest, ""));
    (!symbol.is_empty() && matches!(tail, "" | "candles" | "ticks")).then_some(symbol)
}

/// The middleware of the module docs.
pub(crate) async fn route_products(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(tier) = state.cluster.as_ref().and_then(|c| c.market_tier.clone()) else {
        return next.run(request).await;
    };
    let routed = (request.method() == Method::GET || request.method() == Method::HEAD)
        .then(|| routed_symbol(request.uri().path()))
        .flatten()
        .map(|symbol| {
            percent_encoding::percent_decode_str(symbol)
                .decode_utf8_lossy()
                .into_owned()
        });
    let Some(symbol) = routed else {
        return next.run(request).await;
    };
    let forwarded = request.headers().contains_key(FORWARDED);
    match tier.route(&symbol) {
        Route::Local => next.run(request).await,
        _ if forwarded => unavailable(&tier, &symbol),
        Route::Unavailable => unavailable(&tier, &symbol),
        Route::Forward(holders) => forward(&holders, request).await,
    }
}

fn unavailable(tier: &MarketTier, symbol: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!(
            "no live node holds partition {} (of {symbol}) ready; try again shortly",
            tier.partition(symbol)
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Asks the holders the same request in turn and relays the first answer that is not a
/// failure to answer (a holder that just died, or is not ready, passes to the next one).
async fn forward(holders: &[Member], request: Request) -> Response {
    let path_and_query = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut failed = None;
    for member in holders {
        let asked = tokio::time::timeout(
            FORWARD_TIMEOUT,
            crate::peer::get_with(
                &member.addr,
                &path_and_query,
                bearer.as_deref(),
                &[(FORWARDED, "1")],
                FORWARD_BODY_MAX,
            ),
        )
        .await;
        match asked {
            Ok(Ok(answer)) if answer.status != StatusCode::SERVICE_UNAVAILABLE => {
                return relay(answer);
            }
            Ok(Ok(_)) => failed = Some(peer_failed(member, "not ready")),
            Ok(Err(why)) => failed = Some(peer_failed(member, &why)),
            Err(_) => failed = Some(peer_failed(member, "no answer in time")),
        }
    }
    failed.unwrap_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no node holds this product",
        )
        .into_response()
    })
}

/// A holder's answer, as this node's.
fn relay(answer: crate::peer::PeerAnswer) -> Response {
    let mut response = Response::new(axum::body::Body::from(answer.body));
    *response.status_mut() = answer.status;
    for name in [
        header::CONTENT_TYPE,
        header::RETRY_AFTER,
        header::CACHE_CONTROL,
    ] {
        if let Some(value) = answer.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    for (name, value) in answer.headers.iter() {
        if name.as_str().starts_with("x-") {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

fn peer_failed(member: &Member, why: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!(
            "node {} ({}), which holds this product, did not answer: {why}",
            member.node, member.addr
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routed_paths_are_a_products_market_data() {
        assert_eq!(routed_symbol("/api/v1/products/AAPL"), Some("AAPL"));
        assert_eq!(routed_symbol("/api/v1/products/AAPL/candles"), Some("AAPL"));
        assert_eq!(routed_symbol("/api/v1/products/AAPL/ticks"), Some("AAPL"));
        assert_eq!(routed_symbol("/api/v1/products/AAPL/book"), None);
        assert_eq!(routed_symbol("/api/v1/products"), None);
        assert_eq!(routed_symbol("/api/v1/products/"), None);
        assert_eq!(routed_symbol("/api/v1/products/AAPL/candles/x"), None);
    }
}
