//! The router: every documented route from its handler, the OpenAPI document, the layers,
//! and the fallbacks.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::{self, count_requests};
use crate::state::AppState;

/// The largest request body accepted (413 `payload_too_large` above it).
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// Every documented route from its handler, with the OpenAPI document they make: the one
/// chain both [`router`] (which serves it) and [`openapi_document`] (which needs no server and
/// no state) split, so the document served and the one printed cannot differ.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(metrics::health))
        .routes(routes!(metrics::metrics))
        .routes(routes!(
            crate::account_api::create,
            crate::account_api::read,
            crate::account_api::update
        ))
        .routes(routes!(crate::bookmarks_api::get))
        .routes(routes!(
            crate::bookmarks_api::put,
            crate::bookmarks_api::delete
        ))
        .routes(routes!(
            crate::funds_api::deposit,
            crate::funds_api::balances,
            crate::funds_api::withdraw
        ))
        .routes(routes!(crate::funds_api::funds_history))
        .routes(routes!(crate::products_api::catalogue))
        .routes(routes!(crate::products_api::product))
        .routes(routes!(crate::products_api::book))
        .routes(routes!(crate::products_api::candles))
        .routes(routes!(crate::products_api::ticks))
        .routes(routes!(crate::fx::fx_rates))
        .routes(routes!(crate::orders_api::buy))
        .routes(routes!(crate::orders_api::sell))
        .routes(routes!(crate::orders_api::list))
        .routes(routes!(crate::orders_api::get, crate::orders_api::cancel))
        .routes(routes!(crate::orders_api::trades))
        .routes(routes!(crate::orders_api::fee_quote))
        .routes(routes!(crate::ws::upgrade))
        .routes(routes!(crate::admin_api::status))
        .routes(routes!(crate::admin_api::set_status))
        .routes(routes!(crate::admin_api::snapshot))
        .routes(routes!(crate::cluster_api::cluster))
        .routes(routes!(crate::cluster_api::node))
        .routes(routes!(crate::search::part))
}

/// The OpenAPI document served at `/api/v1/openapi.json`, without a server (`bourse openapi`,
/// from which the web terminal's types are generated).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

/// The routes: the documented ones ([`documented`]), then the document itself and the
/// fallbacks: an unknown path under `/api/` is the contract's 404, any other path is the web
/// terminal (`web.rs`).
pub fn router(state: AppState) -> Router {
    let failed = state.clone();
    let (api_routes, api) = documented().split_for_parts();
    let document: Arc<str> = api
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        .into();
    api_routes
        .route(
            "/api/v1/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    document.to_string(),
                )
            }),
        )
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::routing::route_products,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::cluster_api::freshness_gate,
        ))
        .layer(middleware::from_fn(crate::offset::offset_header))
        .layer(middleware::from_fn(error_shape))
        .layer(CatchPanicLayer::custom(
            move |panic: Box<dyn std::any::Any + Send>| {
                failed.fail(format!(
                    "an HTTP handler panicked: {}",
                    bourse_pipeline::panic_message(&*panic)
                ));
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed and stops",
                )
                .into_response()
            },
        ))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Gives the contract's error shape to refusals that axum's extractors answer in plain text
/// (a body over the limit, a path that does not parse). A page for people (`text/html`: the
/// web terminal's "not built yet") is left as it is.
async fn error_shape(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let is_json = content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let is_page = content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_page {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), BODY_BYTES_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the body is larger than {BODY_BYTES_MAX} bytes")
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

/// Everything no route matched: the contract's 404 under `/api/`, else the web terminal.
async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    crate::web::serve(&state.web, request).await
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}
