//! Per-account rate limiting of the API: a token bucket per account, refilled at the
//! configured rate, holding at most one second's worth (the burst). Checked once per
//! authenticated request (and per WebSocket message), after the token was verified, so an
//! unauthenticated caller cannot spend an account's budget.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bourse_engine::AccountId;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Token buckets per account.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens per second, and the bucket's size; 0: no limit.
    rate: u32,
    buckets: Mutex<HashMap<AccountId, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate: u32) -> Self {
        RateLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `account`'s bucket, or says how long until one is there.
    pub fn take(&self, account: AccountId) -> Result<(), Duration> {
        self.take_at(account, Instant::now())
    }

    fn take_at(&self, account: AccountId, now: Instant) -> Result<(), Duration> {
        if self.rate == 0 {
            return Ok(());
        }
        let rate = f64::from(self.rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(account).or_insert(Bucket {
            tokens: rate,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_passes_then_the_bucket_refills_at_the_rate() {
        let limiter = RateLimiter::new(10);
        let a = AccountId::new(1);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(limiter.take_at(a, t0).is_ok());
        }
        let wait = limiter.take_at(a, t0).unwrap_err();
        assert!(wait > Duration::from_millis(99) && wait <= Duration::from_millis(100));
        // Another account has its own bucket.
        assert!(limiter.take_at(AccountId::new(2), t0).is_ok());
        // A tenth of a second later, one more.
        let later = t0 + Duration::from_millis(100);
        assert!(limiter.take_at(a, later).is_ok());
        assert!(limiter.take_at(a, later).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.take_at(AccountId::new(1), t0).is_ok()));
    }
}
