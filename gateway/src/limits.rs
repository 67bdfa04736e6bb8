//! Per-account rate limiting of the API, on `governor`'s keyed limiter (GCRA, equivalent to a
//! token bucket per account refilled at the configured rate and holding at most one second's
//! worth, the burst). Checked once per authenticated request (and per WebSocket message),
//! after the token was verified, so an unauthenticated caller cannot spend an account's
//! budget. `governor` replaced a hand-written `Mutex<HashMap>` of buckets: its state is one
//! atomic per account in a sharded map, so accounts do not contend on one lock.
//!
//! Like the buckets it replaced, the map keeps one entry per account that ever made a request
//! (a few bytes each, bounded by the number of accounts).

use std::num::NonZeroU32;
use std::time::Duration;

use bourse_engine::AccountId;
use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;

type Keyed<C> = governor::RateLimiter<
    AccountId,
    DashMapStateStore<AccountId>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A rate budget per account.
#[derive(Debug)]
pub struct RateLimiter<C: Clock = DefaultClock> {
    /// `None`: no limit (a rate of 0).
    keyed: Option<Keyed<C>>,
}

impl RateLimiter {
    /// `rate` requests per second per account, bursts of up to `rate`; 0: no limit.
    pub fn new(rate: u32) -> Self {
        RateLimiter::with_clock(rate, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    fn with_clock(rate: u32, clock: C) -> Self {
        RateLimiter {
            keyed: NonZeroU32::new(rate)
                .map(|rate| Keyed::dashmap_with_clock(Quota::per_second(rate), clock)),
        }
    }

    /// Takes one request from `account`'s budget, or says how long until one is there.
    pub fn take(&self, account: AccountId) -> Result<(), Duration> {
        let Some(keyed) = &self.keyed else {
            return Ok(());
        };
        keyed
            .check_key(&account)
            .map_err(|not_until| not_until.wait_time_from(keyed.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn a_burst_of_the_rate_passes_then_the_budget_refills_at_the_rate() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(10, clock.clone());
        let a = AccountId::new(1);
        for _ in 0..10 {
            assert_eq!(limiter.take(a), Ok(()));
        }
        let wait = limiter.take(a).unwrap_err();
        assert!(
            wait > Duration::from_millis(99) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another account has its own budget.
        assert_eq!(limiter.take(AccountId::new(2)), Ok(()));
        // A tenth of a second later, one more, and no second one.
        clock.advance(Duration::from_millis(100));
        assert_eq!(limiter.take(a), Ok(()));
        let wait = limiter.take(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // After a long pause the budget is one burst, not more.
        clock.advance(Duration::from_secs(60));
        assert!((0..10).all(|_| limiter.take(a).is_ok()));
        assert!(limiter.take(a).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::with_clock(0, FakeRelativeClock::default());
        assert!((0..10_000).all(|_| limiter.take(AccountId::new(1)).is_ok()));
    }
}
