//! Formatting shared by the binaries' reports: counts, rates, durations, percentiles, the
//! median, and the machine's CPU.

use hdrhistogram::Histogram;

/// The CPU's model name from `/proc/cpuinfo`, or "unknown CPU".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// A sorted copy of `values`.
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The median of sorted values (the mean of the middle two for an even count).
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// `1234567` as "1,234,567".
pub fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate in millions ("1.23 M"), thousands ("456 k") or units ("12").
pub fn fmt_rate(r: f64) -> String {
    if r >= 1e3 {
        fmt_rate_mk(r)
    } else {
        format!("{r:.0}")
    }
}

/// A rate in millions ("1.23 M") or else thousands ("456 k", "0 k").
pub fn fmt_rate_mk(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.0} k", r / 1e3)
    }
}

/// Nanoseconds with three or so significant digits: "850 ns", "4.2 µs", "120 µs", "3.40 ms",
/// "1.25 s".
pub fn fmt_ns(ns: u64) -> String {
    if ns < 1_000_000_000 {
        fmt_ns_ms(ns)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// As [`fmt_ns`], but in milliseconds from 1 ms up ("1250.00 ms", never seconds).
pub fn fmt_ns_ms(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 10_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

/// `h` at each of `quantiles`, then its maximum, each through `fmt`.
pub fn percentiles(
    h: &Histogram<u64>,
    quantiles: &[f64],
    fmt: impl Fn(u64) -> String,
) -> Vec<String> {
    quantiles
        .iter()
        .map(|&q| h.value_at_quantile(q))
        .chain([h.max()])
        .map(fmt)
        .collect()
}

/// The median and the 99th percentile.
pub const P50_P99: [(f64, &str); 2] = [(0.5, "p50"), (0.99, "p99")];
/// The median, the 99th and the 99.9th percentiles.
pub const P50_P99_P999: [(f64, &str); 3] = [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")];

/// "p50 850 ns p99 4.2 µs max 1.25 ms": each quantile by its name, then the maximum, each
/// value through `fmt`.
pub fn labeled_percentiles(
    h: &Histogram<u64>,
    quantiles: &[(f64, &str)],
    fmt: impl Fn(u64) -> String,
) -> String {
    let mut out = String::new();
    for &(q, name) in quantiles {
        out.push_str(name);
        out.push(' ');
        out.push_str(&fmt(h.value_at_quantile(q)));
        out.push(' ');
    }
    out.push_str("max ");
    out.push_str(&fmt(h.max()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let cases: [(String, &str); 14] = [
            (fmt_int(0), "0"),
            (fmt_int(1_234_567), "1,234,567"),
            (fmt_rate(12.4), "12"),
            (fmt_rate(4_560.0), "5 k"),
            (fmt_rate(1_234_000.0), "1.23 M"),
            (fmt_rate_mk(12.4), "0 k"),
            (fmt_ns(850), "850 ns"),
            (fmt_ns(4_210), "4.2 µs"),
            (fmt_ns(120_400), "120 µs"),
            (fmt_ns(3_400_000), "3.40 ms"),
            (fmt_ns(1_250_000_000), "1.25 s"),
            (fmt_ns_ms(1_250_000_000), "1250.00 ms"),
            (median(&sorted(&[3.0, 1.0, 2.0])).to_string(), "2"),
            (median(&[1.0, 2.0, 3.0, 4.0]).to_string(), "2.5"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn percentile_text() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        for v in 1..=1_000 {
            h.record(v).unwrap();
        }
        let text = labeled_percentiles(&h, &P50_P99, |v| format!("{v}"));
        assert_eq!(text, "p50 500 p99 990 max 1000");
        assert_eq!(percentiles(&h, &[0.5], |v| format!("{v}")), ["500", "1000"]);
    }
}
