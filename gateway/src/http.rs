//! The HTTP side of `bourse serve` (issue 6, first part): the server's lifecycle, the error
//! shape of the API contract, `GET /api/v1/health` and `GET /metrics`.
//!
//! The server runs on its own tokio runtime (2 worker threads: the machines here have 2
//! cores and the engine thread is the one that must not wait). It binds before the pipeline
//! takes traffic, so a port that is taken fails the start-up, and it stops accepting first at
//! shutdown (graceful: requests in flight finish), before the ring is drained.
//!
//! Every answer that is not a success has the contract's shape,
//! `{"error": {"code": "...", "message": "..."}}`, including unknown paths (404) and wrong
//! methods (405).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use bourse_pipeline::Handle;

use crate::history::HistoryHandle;
use serde_json::json;
use tokio::sync::oneshot;

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

/// The largest request body accepted (413 `payload_too_large` above it).
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// Upper bounds (seconds) of the request-duration histogram's buckets (then `+Inf`).
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Request counters for `/metrics`, by status class, and their durations.
#[derive(Debug, Default)]
struct RequestMetrics {
    /// Index: status / 100 (1xx..5xx).
    by_class: [AtomicU64; 6],
    latency_ns_total: AtomicU64,
    latency_ns_max: AtomicU64,
    /// Requests at or under each bound of [`DURATION_BUCKETS`] (not cumulative; the last
    /// counts the rest).
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub(crate) handle: Handle,
    /// New accounts are verified at once (the embedded demo) instead of `pending`.
    pub(crate) auto_verify: bool,
    /// The history read model (orders, trades, funds).
    pub(crate) history: HistoryHandle,
    /// SHA-256 of the admin token; `None`: the admin API is off.
    pub(crate) admin_token_hash: Option<[u8; 32]>,
    pub(crate) rate_limiter: Arc<crate::limits::RateLimiter>,
    /// The WebSocket connections and channels.
    pub(crate) hub: Arc<crate::hub::Hub>,
    /// Market data: the catalogue, ticks and candles.
    pub(crate) market: Arc<crate::market::MarketService>,
    /// The web terminal's built files, served on every path outside the API.
    pub(crate) web: Arc<crate::web::WebFiles>,
    /// The sequence number recovery ended at.
    recovered_seq: u64,
    started: Instant,
    requests: Arc<RequestMetrics>,
}

impl AppState {
    pub fn new(
        handle: Handle,
        history: HistoryHandle,
        hub: Arc<crate::hub::Hub>,
        market: Arc<crate::market::MarketService>,
        recovered_seq: u64,
        config: &crate::config::ServeConfig,
    ) -> Self {
        AppState {
            handle,
            market,
            auto_verify: config.auto_verify,
            history,
            admin_token_hash: config
                .admin_token
                .as_deref()
                .map(crate::account_api::sha256),
            rate_limiter: Arc::new(crate::limits::RateLimiter::new(config.rate_limit)),
            hub,
            web: Arc::new(crate::web::WebFiles::new(&config.web_dir)),
            recovered_seq,
            started: Instant::now(),
            requests: Arc::new(RequestMetrics::default()),
        }
    }
}

impl AppState {
    /// Reads engine state (see `Handle::try_query`), with the contract's errors.
    pub(crate) async fn query<T, F>(&self, read: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&bourse_engine::Engine) -> T + Send + 'static,
    {
        let ticket = self
            .handle
            .try_query(read)
            .map_err(crate::account_api::submit_error)?;
        ticket.await.map_err(crate::account_api::submit_error)
    }

    /// Submits a command and awaits its outcome, with the contract's errors.
    pub(crate) async fn submit(
        &self,
        kind: bourse_engine::CommandKind,
    ) -> Result<bourse_pipeline::Outcome, ApiError> {
        self.handle
            .clone()
            .submit(kind)
            .await
            .map_err(crate::account_api::submit_error)
    }
}

/// `Query<T>` whose refusal has the contract's shape (400 `invalid_request`, naming the
/// parameter), where axum's own answers in plain text.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| bad_request(rejection.body_text()))
    }
}

/// 400 `invalid_request` with `message`.
pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// 422 `rejected`: the engine refused, for a reason the endpoint has no better code for.
pub(crate) fn rejected(reject: bourse_engine::Reject) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "rejected",
        reject.to_string(),
    )
}

/// The routes: the documented ones from their handlers (so the OpenAPI document and the
/// router cannot drift apart), then the document itself and the fallbacks: an unknown path
/// under `/api/` is the contract's 404, any other path is the web terminal (`web.rs`).
pub fn router(state: AppState) -> Router {
    use utoipa::OpenApi;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    let (documented, api) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(
            crate::account_api::create,
            crate::account_api::read
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
        .routes(routes!(crate::orders_api::funds_history))
        .routes(routes!(crate::products_api::catalogue))
        .routes(routes!(crate::products_api::product))
        .routes(routes!(crate::products_api::book))
        .routes(routes!(crate::products_api::candles))
        .routes(routes!(crate::products_api::ticks))
        .routes(routes!(crate::orders_api::buy))
        .routes(routes!(crate::orders_api::sell))
        .routes(routes!(crate::orders_api::list))
        .routes(routes!(crate::orders_api::get, crate::orders_api::cancel))
        .routes(routes!(crate::orders_api::trades))
        .routes(routes!(crate::orders_api::fee_quote))
        .routes(routes!(crate::ws::upgrade))
        .routes(routes!(crate::admin_api::status))
        .routes(routes!(crate::admin_api::set_status))
        .split_for_parts();
    let document: Arc<str> = api
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        .into();
    documented
        .route(
            "/api/v1/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    document.to_string(),
                )
            }),
        )
        .fallback(crate::web::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(error_shape))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    let took = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
    let class = (response.status().as_u16() / 100).min(5) as usize;
    let metrics = &state.requests;
    metrics.by_class[class].fetch_add(1, Ordering::Relaxed);
    metrics.latency_ns_total.fetch_add(took, Ordering::Relaxed);
    metrics.latency_ns_max.fetch_max(took, Ordering::Relaxed);
    let seconds = took as f64 / 1e9;
    let bucket = DURATION_BUCKETS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(DURATION_BUCKETS.len());
    metrics.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    response
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

pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such path: {}", request.uri().path()),
    )
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

/// `GET /api/v1/health`: 200 while the engine runs (recovery is done before the server
/// starts), 503 with the cause once it stopped.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "service",
    responses((status = 200, description = "{status, recovered, recoveredSeq, appliedSeq, committedSeq, uptimeMs}"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
async fn health(State(state): State<AppState>) -> Response {
    if let Some(cause) = state.handle.stopped() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_stopped",
            format!("the engine stopped: {cause}"),
        )
        .into_response();
    }
    let stats = state.handle.stats();
    axum::Json(json!({
        "status": "up",
        "recovered": true,
        "recoveredSeq": state.recovered_seq,
        "appliedSeq": stats.applied_seq,
        "committedSeq": stats.committed_seq,
        "uptimeMs": state.started.elapsed().as_millis() as u64,
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses((status = 200, description = "Prometheus text"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.handle.stats();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    gauge(
        "bourse_engine_up",
        "1 while the engine runs, 0 once it stopped",
        "gauge",
        u64::from(state.handle.stopped().is_none()),
    );
    gauge(
        "bourse_applied_seq",
        "the highest sequence number applied by the engine",
        "gauge",
        stats.applied_seq,
    );
    gauge(
        "bourse_committed_seq",
        "the highest sequence number durable in the journal",
        "gauge",
        stats.committed_seq,
    );
    gauge(
        "bourse_journal_lag",
        "commands applied but not yet durable (their answers wait)",
        "gauge",
        stats.applied_seq.saturating_sub(stats.committed_seq),
    );
    gauge(
        "bourse_ring_size",
        "entries in the command ring",
        "gauge",
        stats.ring_size as u64,
    );
    gauge(
        "bourse_ring_occupancy",
        "commands published to the ring and not yet taken by the engine",
        "gauge",
        stats.published.saturating_sub(stats.consumed),
    );
    gauge(
        "bourse_commands_consumed_total",
        "commands taken from the ring by the engine",
        "counter",
        stats.consumed,
    );
    gauge(
        "bourse_batches_total",
        "batches (group commits) processed",
        "counter",
        stats.batches,
    );
    gauge(
        "bourse_ring_busy_total",
        "submissions refused because the ring was full",
        "counter",
        stats.busy,
    );
    gauge(
        "bourse_event_subscribers",
        "receivers of the engine's event bus",
        "gauge",
        stats.bus_subscribers as u64,
    );
    gauge(
        "bourse_history_event_seq",
        "the newest engine event folded into the history read model",
        "gauge",
        state.history.event_seq(),
    );
    {
        let market = state.market.read();
        let counters = market.counters();
        for (name, help, value) in [
            (
                "bourse_market_ticks_total",
                "ticks taken into history and candles",
                counters.ticks,
            ),
            (
                "bourse_market_duplicates_total",
                "ticks dropped as duplicates (same source and seq)",
                counters.duplicates,
            ),
            (
                "bourse_market_late_total",
                "ticks refused as too late",
                counters.late,
            ),
            (
                "bourse_market_candles_amended_total",
                "stored candles amended by late ticks",
                counters.amended,
            ),
            (
                "bourse_market_records_total",
                "tick-log records written",
                counters.records,
            ),
        ] {
            gauge(name, help, "counter", value);
        }
        gauge(
            "bourse_market_products",
            "products in the market-data catalogue",
            "gauge",
            market.catalogue().len() as u64,
        );
    }
    gauge(
        "bourse_market_messages_total",
        "feed messages received",
        "counter",
        state.market.stats.messages.load(Ordering::Relaxed),
    );
    for (kind, counter) in bourse_marketdata::tick::Malformed::KINDS
        .iter()
        .zip(&state.market.stats.malformed)
    {
        gauge(
            &format!("bourse_market_malformed_{kind}_total"),
            "feed messages skipped as malformed, by kind",
            "counter",
            counter.load(Ordering::Relaxed),
        );
    }
    gauge(
        "bourse_market_up",
        "1 while market data is taken in, 0 after it stopped on an error",
        "gauge",
        u64::from(
            state
                .market
                .stats
                .failed
                .lock()
                .map(|f| f.is_none())
                .unwrap_or(false),
        ),
    );
    let kafka = state
        .market
        .kafka_stats
        .lock()
        .ok()
        .and_then(|stats| stats.clone());
    if let Some(kafka) = kafka {
        gauge(
            "bourse_kafka_lag",
            "messages of the ticks topic not yet read, over all partitions",
            "gauge",
            kafka.total_lag().max(0) as u64,
        );
        gauge(
            "bourse_kafka_broker_reachable",
            "1 while the Kafka broker answers",
            "gauge",
            u64::from(kafka.broker_reachable()),
        );
        gauge(
            "bourse_kafka_errors_total",
            "errors the Kafka consumer reported (it reconnects by itself)",
            "counter",
            kafka.errors(),
        );
    }
    let (connections, authenticated, subscriptions) = state.hub.sizes();
    gauge(
        "bourse_ws_connections",
        "open WebSocket connections",
        "gauge",
        connections as u64,
    );
    gauge(
        "bourse_ws_authenticated",
        "WebSocket connections authenticated as an account",
        "gauge",
        authenticated as u64,
    );
    gauge(
        "bourse_ws_subscriptions",
        "channel subscriptions over all WebSocket connections",
        "gauge",
        subscriptions as u64,
    );
    gauge(
        "bourse_ws_messages_total",
        "messages queued to WebSocket clients",
        "counter",
        state.hub.counters.messages.load(Ordering::Relaxed),
    );
    gauge(
        "bourse_ws_slow_consumers_total",
        "WebSocket clients dropped because their queue overflowed",
        "counter",
        state.hub.counters.overflows.load(Ordering::Relaxed),
    );
    let requests = &state.requests;
    let _ = writeln!(
        out,
        "# HELP bourse_http_requests_total HTTP requests answered, by status class\n\
         # TYPE bourse_http_requests_total counter"
    );
    for (class, count) in requests.by_class.iter().enumerate().skip(1) {
        let _ = writeln!(
            out,
            "bourse_http_requests_total{{class=\"{class}xx\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP bourse_http_request_duration_seconds time to answer an HTTP request\n\
         # TYPE bourse_http_request_duration_seconds histogram"
    );
    let mut cumulative = 0;
    for (i, count) in requests.buckets.iter().enumerate() {
        cumulative += count.load(Ordering::Relaxed);
        let le = DURATION_BUCKETS
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "bourse_http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "bourse_http_request_duration_seconds_sum {:.9}\nbourse_http_request_duration_seconds_count {cumulative}",
        requests.latency_ns_total.load(Ordering::Relaxed) as f64 / 1e9,
    );
    let _ = writeln!(
        out,
        "# HELP bourse_http_request_seconds_total time spent answering HTTP requests\n\
         # TYPE bourse_http_request_seconds_total counter\n\
         bourse_http_request_seconds_total {:.9}\n\
         # HELP bourse_http_request_seconds_max the slowest HTTP request so far\n\
         # TYPE bourse_http_request_seconds_max gauge\n\
         bourse_http_request_seconds_max {:.9}",
        requests.latency_ns_total.load(Ordering::Relaxed) as f64 / 1e9,
        requests.latency_ns_max.load(Ordering::Relaxed) as f64 / 1e9,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// The kernel's send buffer per connection (`SO_SNDBUF`). Linux grows it up to
/// `net.ipv4.tcp_wmem`'s maximum (4 MiB by default) for a peer that does not read; with 10,000
/// WebSocket clients that is 40 GiB the server does not have. Bounded, a client that stops
/// reading fills its own queue soon and is dropped as a slow consumer.
pub const SEND_BUFFER_BYTES: libc::c_int = 256 * 1024;

fn bound_send_buffer(tcp: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let size = SEND_BUFFER_BYTES;
    // SAFETY: a valid socket and a pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A running HTTP server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free one) and serves on a runtime of its own.
    pub fn start(addr: SocketAddr, state: AppState) -> Result<Server, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bourse-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state);
        let thread = std::thread::Builder::new()
            .name("bourse-http-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // No Nagle: WebSocket answers and channel messages are small and must
                    // not wait for the peer's delayed ACK (40 ms otherwise).
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                        bound_send_buffer(tcp);
                    });
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                        .map_err(|e| format!("the HTTP server failed: {e}"))
                })
            })
            .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets requests in flight finish, and returns once it has.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the HTTP thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
