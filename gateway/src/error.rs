//! The contract's error shape, `{"error": {"code", "message"}}`, and the extractors and
//! mappings that produce it.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bourse_cluster::ProposeError;
use bourse_pipeline::SubmitError;
use serde_json::json;

/// A failure in the contract's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

/// 400 `invalid_request` with `message`.
pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// 422 `rejected`: the engine refused, for a reason the endpoint has no better code for.
pub fn rejected(reject: bourse_engine::Reject) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "rejected",
        reject.to_string(),
    )
}

/// Maps a pipeline refusal to the contract's error.
pub fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the engine is busy; retry shortly",
        ),
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            other.to_string(),
        ),
    }
}

/// Maps a refusal of the way in (the local pipeline or the cluster's log) to the contract's
/// error: 503 `unavailable` with `Retry-After` when the log did not take the command or this
/// node is behind it (nothing was applied by this request; a retry with the same key is
/// applied at most once).
pub fn propose_error(error: ProposeError) -> ApiError {
    let mut error = match error {
        ProposeError::Pipeline(error) => return submit_error(error),
        ProposeError::Stale(stale) => return stale_error(&stale, false),
        ProposeError::Unavailable(why) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "{why}; the command may still be applied: retry it with the same key \
                 (clientOrderId, requestId)"
            ),
        ),
        ProposeError::ReplicaStopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this node stopped applying the command log; retry through another node",
        ),
    };
    error.retry_after = Some(1);
    error
}

/// 503 for a node that may be behind the log: `stale` for a read, `unavailable` for a
/// write; either way `Retry-After: 1`.
pub(crate) fn stale_error(stale: &bourse_cluster::Stale, read: bool) -> ApiError {
    let code = if read { "stale" } else { "unavailable" };
    let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, stale.to_string());
    error.retry_after = Some(1);
    error
}

/// Parses a JSON body into `T`, with the contract's error for anything malformed.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    // The error names the field it is about (`amount: invalid type: ...`).
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            bad_request(format!("invalid JSON body: {}", e.inner()))
        } else {
            bad_request(format!("invalid JSON body: {path}: {}", e.inner()))
        }
    })?;
    reader
        .end()
        .map_err(|e| bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

pub async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such path: {}", request.uri().path()),
    )
}

/// 503 `history_unavailable`: the history read model cannot answer (`why`).
pub fn history_unavailable(why: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "history_unavailable", why)
}

/// 500 `internal`: a state the server should never be in (`message` says which).
pub fn internal(message: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

/// 503 `market_data_unavailable`: the market data cannot answer (`why`).
pub fn market_unavailable(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "market_data_unavailable",
        why.to_string(),
    )
}
