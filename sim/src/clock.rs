//! The single-node run's simulated clock: batches arrive on it, the pipeline's syncs take
//! time on it, and each acknowledgement's latency is measured on it. The commands themselves
//! carry the workload's timestamps (business time, up to 1.5 s apart, so that the engine's
//! time-based rules fire); the clock is the durable path's.

use bourse_tests::workload::SplitMix64;

/// How long until the next batch arrives, ns: 0 to 2 ms, and one time in 50 an idle spell of
/// 20 to 200 ms.
pub(crate) fn arrival_gap(rng: &mut SplitMix64) -> u64 {
    if rng.chance(20) {
        rng.range(20_000_000, 200_000_000) as u64
    } else {
        rng.range(0, 2_000_000) as u64
    }
}

/// How long one sync takes, ns: 0.1 to 0.4 ms at rest (this machine's 0.2 ms), 1 to 20 ms
/// one time in 20 (under heavy writes), 50 to 300 ms one time in 100 (a slow disk).
pub(crate) fn sync_duration(rng: &mut SplitMix64) -> u64 {
    let p = rng.below(1000);
    if p < 10 {
        rng.range(50_000_000, 300_000_000) as u64
    } else if p < 60 {
        rng.range(1_000_000, 20_000_000) as u64
    } else {
        rng.range(100_000, 400_000) as u64
    }
}

/// How long the engine thread takes to wake once the sync thread is done, ns (5 to 50 µs).
pub(crate) fn wake_delay(rng: &mut SplitMix64) -> u64 {
    rng.range(5_000, 50_000) as u64
}

/// Acknowledgement latencies on the simulated clock, ns.
#[derive(Clone, Debug)]
pub struct Latencies(pub hdrhistogram::Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        #[allow(
            clippy::expect_used,
            reason = "constant bounds that hdrhistogram accepts (1 ns to 1,000 s, 3 digits)"
        )]
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, 1_000_000_000_000, 3)
            .expect("valid histogram bounds");
        Latencies(histogram)
    }
}

impl PartialEq for Latencies {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Latencies {}

impl Latencies {
    pub(crate) fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.max(1));
    }

    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides: the addition cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// The `q` quantile in ms.
    pub fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1e6
    }
}
