//! `GET /api/v1/health` and `GET /metrics`, and the request metrics behind them.
//!
//! `/metrics` is encoded by `prometheus-client` (the Prometheus project's Rust client) in the
//! Prometheus text format 0.0.4, with the same names, help texts and content type as the
//! hand-written encoder it replaced. Why `prometheus-client` rather than `metrics` with
//! `metrics-exporter-prometheus`:
//!
//! - a `Registry` is a plain value, nothing is installed globally, so several servers in one
//!   process (the tests) keep their own numbers;
//! - `bourse_http_request_seconds_total` is a counter of seconds, a float: `metrics`' counters
//!   are integers, so it would have had to become a gauge;
//! - its histogram keeps one count per bucket, while the exporter's queues every observation
//!   until a render or an upkeep task drains it (memory that grows with the request rate
//!   when nobody scrapes, or one more task to run);
//! - a `Collector` encodes what is read at scrape time (the pipeline's statistics, the market
//!   data, the WebSocket hub) with its own help text, in the order written here.
//!
//! The request metrics ([`crate::requests::RequestMetrics`]) live as long as the server; each scrape reads the
//! rest into a [`Collector`] of a fresh `Registry` and encodes both. The histogram takes a
//! short lock per observation (`prometheus-client` keeps its buckets under one mutex).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::requests::RequestMetrics;
use crate::state::AppState;

/// Counts every request by status class and times it.
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    state.requests.record(response.status(), started.elapsed());
    response
}

/// The answer to `GET /api/v1/health`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    status: HealthStatus,
    /// Recovery is done before the server starts, so always `true`.
    recovered: bool,
    /// The newest command recovered at start-up.
    recovered_seq: u64,
    applied_seq: u64,
    committed_seq: u64,
    uptime_ms: u64,
}

/// Up: the engine runs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum HealthStatus {
    Up,
}

/// `GET /api/v1/health`: 200 while the engine runs (recovery is done before the server
/// starts), 503 with the cause once it stopped.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "service",
    responses(
        (status = 200, description = "the engine runs", body = Health),
        (status = 503, description = "`engine_stopped`: the engine stopped (the message says why)", body = crate::openapi::ErrorBody),
    )
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
    axum::Json(Health {
        status: HealthStatus::Up,
        recovered: true,
        recovered_seq: state.recovered_seq,
        applied_seq: stats.applied_seq,
        committed_seq: stats.committed_seq,
        uptime_ms: u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
    .into_response()
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses(
        (status = 200, description = "the metrics in the Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
        (status = 500, description = "`internal`: the metrics could not be encoded", body = crate::openapi::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        samples: samples(&state),
        requests: Arc::clone(&state.requests),
    }));
    let mut out = String::new();
    if prometheus_text::encode(&mut out, &registry).is_err() {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the metrics could not be encoded",
        )
        .into_response();
    }
    ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], out).into_response()
}

/// A value read at scrape time.
#[derive(Debug)]
struct Sample {
    /// The full name; a counter's ends in `_total`.
    name: Cow<'static, str>,
    help: &'static str,
    kind: MetricType,
    value: u64,
}

fn gauge(name: &'static str, help: &'static str, value: u64) -> Sample {
    Sample {
        name: Cow::Borrowed(name),
        help,
        kind: MetricType::Gauge,
        value,
    }
}

fn counter(name: impl Into<Cow<'static, str>>, help: &'static str, value: u64) -> Sample {
    Sample {
        name: name.into(),
        help,
        kind: MetricType::Counter,
        value,
    }
}

/// One scrape: the values read from the server, then the request metrics.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    requests: Arc<RequestMetrics>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for sample in &self.samples {
            if let MetricType::Counter = sample.kind {
                // The encoder appends `_total` to a counter's name.
                let name = sample.name.strip_suffix("_total").unwrap_or(&sample.name);
                let metric = encoder.encode_descriptor(name, sample.help, None, sample.kind)?;
                ConstCounter::new(sample.value).encode(metric)?;
            } else {
                let metric =
                    encoder.encode_descriptor(&sample.name, sample.help, None, sample.kind)?;
                ConstGauge::new(sample.value).encode(metric)?;
            }
        }
        self.requests.encode(&mut encoder)
    }
}

/// Everything `/metrics` reads at scrape time, in the order it is shown.
fn samples(state: &AppState) -> Vec<Sample> {
    let mut samples = engine_samples(state);
    samples.extend(market_samples(state));
    samples.extend(cluster_samples(state));
    let (connections, authenticated, subscriptions) = state.hub.sizes();
    samples.extend([
        gauge(
            "bourse_ws_connections",
            "open WebSocket connections",
            connections as u64,
        ),
        gauge(
            "bourse_ws_authenticated",
            "WebSocket connections authenticated as an account",
            authenticated as u64,
        ),
        gauge(
            "bourse_ws_subscriptions",
            "channel subscriptions over all WebSocket connections",
            subscriptions as u64,
        ),
        counter(
            "bourse_ws_messages_total",
            "messages queued to WebSocket clients",
            state.hub.counters.messages.load(Ordering::Relaxed),
        ),
        counter(
            "bourse_ws_slow_consumers_total",
            "WebSocket clients dropped because their queue overflowed",
            state.hub.counters.overflows.load(Ordering::Relaxed),
        ),
    ]);
    samples
}

/// A cluster node's way through the log (nothing on a single node): how many commands it
/// proposed were answered, and the time they took to each stage, summed, so that a rate of
/// one over the other is the mean.
fn cluster_samples(state: &AppState) -> Vec<Sample> {
    let Some(path) = state.sequencer.log_path() else {
        return Vec::new();
    };
    let times = path.times();
    let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
    vec![
        counter(
            "bourse_cluster_answered_total",
            "commands this node appended to the log and answered with their outcome",
            load(&times.answered),
        ),
        counter(
            "bourse_cluster_appended_microseconds_total",
            "summed time from a command's send to the broker's acknowledgement of its append",
            load(&times.appended_us),
        ),
        counter(
            "bourse_cluster_read_microseconds_total",
            "summed time from a command's send until this node's replica read it back",
            load(&times.read_us),
        ),
        counter(
            "bourse_cluster_answered_microseconds_total",
            "summed time from a command's send to its outcome (applied and durable here)",
            load(&times.done_us),
        ),
    ]
}

/// The pipeline's statistics and the history read model's progress.
fn engine_samples(state: &AppState) -> Vec<Sample> {
    let stats = state.handle.stats();
    vec![
        gauge(
            "bourse_engine_up",
            "1 while the engine runs, 0 once it stopped",
            u64::from(state.handle.stopped().is_none()),
        ),
        gauge(
            "bourse_applied_seq",
            "the highest sequence number applied by the engine",
            stats.applied_seq,
        ),
        gauge(
            "bourse_committed_seq",
            "the highest sequence number durable in the journal",
            stats.committed_seq,
        ),
        gauge(
            "bourse_journal_lag",
            "commands applied but not yet durable (their answers wait)",
            stats.applied_seq.saturating_sub(stats.committed_seq),
        ),
        gauge(
            "bourse_ring_size",
            "entries in the command ring",
            stats.ring_size as u64,
        ),
        gauge(
            "bourse_ring_occupancy",
            "commands published to the ring and not yet taken by the engine",
            stats.published.saturating_sub(stats.consumed),
        ),
        counter(
            "bourse_commands_consumed_total",
            "commands taken from the ring by the engine",
            stats.consumed,
        ),
        counter(
            "bourse_batches_total",
            "batches (group commits) processed",
            stats.batches,
        ),
        counter(
            "bourse_ring_busy_total",
            "submissions refused because the ring was full",
            stats.busy,
        ),
        gauge(
            "bourse_event_subscribers",
            "receivers of the engine's event bus",
            stats.bus_subscribers as u64,
        ),
        gauge(
            "bourse_history_event_seq",
            "the newest engine event folded into the history read model",
            state.history.event_seq(),
        ),
    ]
}

/// Market data: the store's counters, the feed's, and the Kafka consumer's when there is one.
fn market_samples(state: &AppState) -> Vec<Sample> {
    let mut samples = match state.market.read() {
        // Failed: only `bourse_market_up` (0) says so below.
        Err(_) => Vec::new(),
        Ok(market) => {
            let counters = market.counters();
            vec![
                counter(
                    "bourse_market_ticks_total",
                    "ticks taken into history and candles",
                    counters.ticks,
                ),
                counter(
                    "bourse_market_duplicates_total",
                    "ticks dropped as duplicates (same source and seq)",
                    counters.duplicates,
                ),
                counter(
                    "bourse_market_late_total",
                    "ticks refused as too late",
                    counters.late,
                ),
                counter(
                    "bourse_market_candles_amended_total",
                    "stored candles amended by late ticks",
                    counters.amended,
                ),
                counter(
                    "bourse_market_records_total",
                    "tick-log records written",
                    counters.records,
                ),
                gauge(
                    "bourse_market_products",
                    "products in the market-data catalogue",
                    market.catalogue().len() as u64,
                ),
            ]
        }
    };
    let stats = &state.market.stats;
    samples.push(counter(
        "bourse_market_messages_total",
        "feed messages received",
        stats.messages.load(Ordering::Relaxed),
    ));
    for (kind, count) in bourse_marketdata::tick::Malformed::KINDS
        .iter()
        .zip(&stats.malformed)
    {
        samples.push(counter(
            format!("bourse_market_malformed_{kind}_total"),
            "feed messages skipped as malformed, by kind",
            count.load(Ordering::Relaxed),
        ));
    }
    let running = state.market.failure().is_none();
    samples.push(gauge(
        "bourse_market_up",
        "1 while market data is taken in, 0 after it stopped on an error",
        u64::from(running),
    ));
    let kafka = state
        .market
        .kafka_stats
        .lock()
        .ok()
        .and_then(|stats| stats.clone());
    if let Some(kafka) = kafka {
        samples.extend([
            gauge(
                "bourse_kafka_lag",
                "messages of the ticks topic not yet read, over all partitions",
                kafka.total_lag().max(0) as u64,
            ),
            gauge(
                "bourse_kafka_broker_reachable",
                "1 while the Kafka broker answers",
                u64::from(kafka.broker_reachable()),
            ),
            counter(
                "bourse_kafka_errors_total",
                "errors the Kafka consumer reported (it reconnects by itself)",
                kafka.errors(),
            ),
        ]);
    }
    samples
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn render(scrape: Scrape) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn names_types_and_values_are_those_of_the_prometheus_text_format() {
        let requests = Arc::new(RequestMetrics::default());
        requests.record(StatusCode::OK, Duration::from_micros(300));
        requests.record(StatusCode::NOT_FOUND, Duration::from_millis(3));
        requests.record(StatusCode::OK, Duration::from_secs(5));
        let text = render(Scrape {
            samples: vec![
                gauge("bourse_ring_size", "entries in the command ring", 65_536),
                counter(
                    "bourse_batches_total",
                    "batches (group commits) processed",
                    7,
                ),
            ],
            requests,
        });
        for line in [
            "# HELP bourse_ring_size entries in the command ring\n",
            "# TYPE bourse_ring_size gauge\nbourse_ring_size 65536\n",
            "# HELP bourse_batches_total batches (group commits) processed\n",
            "# TYPE bourse_batches_total counter\nbourse_batches_total 7\n",
            "# TYPE bourse_http_requests_total counter\n",
            "bourse_http_requests_total{class=\"1xx\"} 0\n",
            "bourse_http_requests_total{class=\"2xx\"} 2\n",
            "bourse_http_requests_total{class=\"4xx\"} 1\n",
            "bourse_http_requests_total{class=\"5xx\"} 0\n",
            "# TYPE bourse_http_request_duration_seconds histogram\n",
            "bourse_http_request_duration_seconds_bucket{le=\"0.0005\"} 1\n",
            "bourse_http_request_duration_seconds_bucket{le=\"0.0025\"} 1\n",
            "bourse_http_request_duration_seconds_bucket{le=\"0.005\"} 2\n",
            "bourse_http_request_duration_seconds_bucket{le=\"2.5\"} 2\n",
            "bourse_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n",
            "bourse_http_request_duration_seconds_count 3\n",
            "# TYPE bourse_http_request_seconds_total counter\n",
            "bourse_http_request_seconds_total 5.0033\n",
            "# TYPE bourse_http_request_seconds_max gauge\nbourse_http_request_seconds_max 5.0\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
        // Nothing is named twice (a counter's `_total` is not appended again).
        assert!(!text.contains("_total_total"), "{text}");
    }
}
