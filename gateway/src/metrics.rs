//! `GET /api/v1/health` and `GET /metrics`, and the request counters behind them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Upper bounds (seconds) of the request-duration histogram's buckets (then `+Inf`).
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Request counters for `/metrics`, by status class, and their durations.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// Index: status / 100 (1xx..5xx).
    by_class: [AtomicU64; 6],
    latency_ns_total: AtomicU64,
    latency_ns_max: AtomicU64,
    /// Requests at or under each bound of [`DURATION_BUCKETS`] (not cumulative; the last
    /// counts the rest).
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
}

pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
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

/// `GET /api/v1/health`: 200 while the engine runs (recovery is done before the server
/// starts), 503 with the cause once it stopped.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "service",
    responses((status = 200, description = "{status, recovered, recoveredSeq, appliedSeq, committedSeq, uptimeMs}"), (status = "default", description = "refused, in the contract's error shape", body = crate::openapi::ErrorBody))
)]
pub async fn health(State(state): State<AppState>) -> Response {
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
pub async fn metrics(State(state): State<AppState>) -> Response {
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
