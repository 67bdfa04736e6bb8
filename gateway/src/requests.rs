//! The HTTP request metrics: counts by status class and a duration histogram, kept for the
//! server's life and encoded by `/metrics` ([`crate::metrics`]).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

/// Upper bounds (seconds) of the request-duration histogram's buckets (then `+Inf`).
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// The status classes counted, `1xx` to `5xx`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The HTTP request metrics of `/metrics`: counts by status class and durations.
#[derive(Debug)]
pub struct RequestMetrics {
    /// Index: status / 100 - 1 (1xx..5xx).
    by_class: [Counter; CLASSES.len()],
    duration: Histogram,
    seconds_total: Counter<f64, AtomicU64>,
    /// The slowest request so far (a gauge has no atomic maximum, so it is kept here).
    latency_ns_max: AtomicU64,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            by_class: Default::default(),
            duration: Histogram::new(DURATION_BUCKETS),
            seconds_total: Counter::default(),
            latency_ns_max: AtomicU64::new(0),
        }
    }
}

impl RequestMetrics {
    pub(crate) fn record(&self, status: StatusCode, took: std::time::Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, CLASSES.len()) - 1;
        self.by_class[class].inc();
        let seconds = took.as_secs_f64();
        self.duration.observe(seconds);
        self.seconds_total.inc_by(seconds);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns_max.fetch_max(nanos, Ordering::Relaxed);
    }

    pub(crate) fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "bourse_http_requests",
            "HTTP requests answered, by status class",
            None,
            MetricType::Counter,
        )?;
        for (class, counter) in CLASSES.iter().zip(&self.by_class) {
            counter.encode(family.encode_family(&[("class", *class)])?)?;
        }
        self.duration.encode(encoder.encode_descriptor(
            "bourse_http_request_duration_seconds",
            "time to answer an HTTP request",
            None,
            self.duration.metric_type(),
        )?)?;
        self.seconds_total.encode(encoder.encode_descriptor(
            "bourse_http_request_seconds",
            "time spent answering HTTP requests",
            None,
            MetricType::Counter,
        )?)?;
        let max = self.latency_ns_max.load(Ordering::Relaxed) as f64 / 1e9;
        ConstGauge::new(max).encode(encoder.encode_descriptor(
            "bourse_http_request_seconds_max",
            "the slowest HTTP request so far",
            None,
            MetricType::Gauge,
        )?)
    }
}
