//! Fee schedules, trailing volume, and the fee arithmetic.
//!
//! Rates are parts per million of the notional, charged in the product's quote asset, rounded
//! up to the next minor unit (in the platform's favour), never negative. The tier is chosen by
//! the account's traded volume in that quote asset over the trailing 30 days of engine time,
//! counted in whole UTC days: the current day and the 29 before it.

use crate::limits::{FEE_PPM_MAX, FEE_TIERS_MAX};
use crate::reject::Reject;
use crate::types::{AMOUNT_MAX, AssetId, Liquidity};

/// One tier: from `volume_min` (quote minor units traded over 30 days) upwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FeeTier {
    pub volume_min: i64,
    pub maker_ppm: u32,
    pub taker_ppm: u32,
}

/// Up to [`FEE_TIERS_MAX`] tiers with strictly increasing `volume_min`, the first at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeSchedule {
    tiers: [FeeTier; FEE_TIERS_MAX],
    n_tiers: u8,
}

impl FeeSchedule {
    /// A schedule of one tier.
    pub fn flat(maker_ppm: u32, taker_ppm: u32) -> Result<Self, Reject> {
        Self::new(&[FeeTier {
            volume_min: 0,
            maker_ppm,
            taker_ppm,
        }])
    }

    pub fn new(tiers: &[FeeTier]) -> Result<Self, Reject> {
        let schedule = Self::from_tiers_unchecked(tiers).ok_or(Reject::InvalidFeeSchedule)?;
        schedule.validate()?;
        Ok(schedule)
    }

    /// Builds without checking the tiers (a command is data and may be malformed; the engine
    /// validates when it applies). `None` if there are more than [`FEE_TIERS_MAX`].
    pub fn from_tiers_unchecked(tiers: &[FeeTier]) -> Option<Self> {
        if tiers.len() > FEE_TIERS_MAX {
            return None;
        }
        let mut all = [FeeTier::default(); FEE_TIERS_MAX];
        all[..tiers.len()].copy_from_slice(tiers);
        Some(FeeSchedule {
            tiers: all,
            n_tiers: tiers.len() as u8,
        })
    }

    pub(crate) fn validate(&self) -> Result<(), Reject> {
        let tiers = self.tiers();
        let Some(first) = tiers.first() else {
            return Err(Reject::InvalidFeeSchedule);
        };
        if first.volume_min != 0 {
            return Err(Reject::InvalidFeeSchedule);
        }
        let rates_ok = tiers
            .iter()
            .all(|t| t.maker_ppm <= FEE_PPM_MAX && t.taker_ppm <= FEE_PPM_MAX);
        let increasing = tiers.windows(2).all(|w| w[0].volume_min < w[1].volume_min);
        if rates_ok && increasing {
            Ok(())
        } else {
            Err(Reject::InvalidFeeSchedule)
        }
    }

    pub fn tiers(&self) -> &[FeeTier] {
        &self.tiers[..self.n_tiers as usize]
    }

    /// The tier for a trailing volume.
    pub fn tier_for(&self, volume: i64) -> &FeeTier {
        let tiers = self.tiers();
        let mut chosen = &tiers[0];
        for tier in &tiers[1..] {
            if volume >= tier.volume_min {
                chosen = tier;
            }
        }
        chosen
    }

    pub fn rate_ppm(&self, volume: i64, liquidity: Liquidity) -> u32 {
        let tier = self.tier_for(volume);
        match liquidity {
            Liquidity::Maker => tier.maker_ppm,
            Liquidity::Taker => tier.taker_ppm,
        }
    }

    /// The highest rate any fill could be charged (what a buy order holds for).
    pub fn max_rate_ppm(&self) -> u32 {
        self.tiers()
            .iter()
            .map(|t| t.maker_ppm.max(t.taker_ppm))
            .max()
            .unwrap_or(0)
    }
}

/// `ceil(notional * rate_ppm / 1e6)`: the fee on a notional, rounded up.
/// `notional` is non-negative and at most [`AMOUNT_MAX`], so the result is at most the notional.
#[inline]
pub fn fee_for(notional: i64, rate_ppm: u32) -> i64 {
    debug_assert!((0..=AMOUNT_MAX).contains(&notional));
    // 64-bit division when the product fits (it does below ~92 trillion minor units); a 128-bit
    // division is several times slower and this runs twice per fill.
    const FAST_MAX: i64 = (u64::MAX / FEE_PPM_MAX as u64 / 2) as i64;
    if notional <= FAST_MAX && rate_ppm <= FEE_PPM_MAX {
        let product = notional as u64 * rate_ppm as u64;
        return product.div_ceil(1_000_000) as i64;
    }
    let product = notional as i128 * rate_ppm as i128;
    let fee = (product + 999_999) / 1_000_000;
    fee as i64
}

/// Days in the trailing window.
pub const VOLUME_WINDOW_DAYS: usize = 30;
const MS_PER_DAY: i64 = 86_400_000;

/// An account's traded volume in one quote asset, in daily buckets over 30 days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VolumeWindow {
    pub(crate) asset: AssetId,
    /// The newest day (unix day number) the buckets describe.
    pub(crate) day: i64,
    pub(crate) buckets: [i64; VOLUME_WINDOW_DAYS],
    pub(crate) total: i64,
}

impl VolumeWindow {
    pub(crate) fn new(asset: AssetId) -> Self {
        VolumeWindow {
            asset,
            day: i64::MIN,
            buckets: [0; VOLUME_WINDOW_DAYS],
            total: 0,
        }
    }

    /// The trailing volume as of `timestamp_ms`, without changing the window.
    pub(crate) fn volume_at(&self, timestamp_ms: i64) -> i64 {
        let day = timestamp_ms.div_euclid(MS_PER_DAY);
        if day <= self.day {
            return self.total;
        }
        let gap = day.saturating_sub(self.day);
        if gap >= VOLUME_WINDOW_DAYS as i64 {
            return 0;
        }
        // Buckets for days self.day-29 .. day-30 fall out.
        let mut total = self.total;
        for k in 1..=gap {
            total -= self.buckets[((self.day + k).rem_euclid(VOLUME_WINDOW_DAYS as i64)) as usize];
        }
        total
    }

    /// Adds traded notional at `timestamp_ms`. A timestamp older than the newest day counts in
    /// the newest day (engine time does not go back; a skewed clock must not corrupt the sums).
    pub(crate) fn add(&mut self, timestamp_ms: i64, notional: i64) {
        let day = timestamp_ms.div_euclid(MS_PER_DAY);
        if day > self.day {
            let gap = day.saturating_sub(self.day);
            if gap >= VOLUME_WINDOW_DAYS as i64 {
                self.buckets = [0; VOLUME_WINDOW_DAYS];
                self.total = 0;
            } else {
                for k in 1..=gap {
                    let idx = ((self.day + k).rem_euclid(VOLUME_WINDOW_DAYS as i64)) as usize;
                    self.total -= self.buckets[idx];
                    self.buckets[idx] = 0;
                }
            }
            self.day = day;
        }
        let idx = self.day.rem_euclid(VOLUME_WINDOW_DAYS as i64) as usize;
        // Beyond any tier's threshold volume only needs to stay large: each day saturates at
        // a thirtieth of AMOUNT_MAX so that the total is exact and never overflows.
        let old = self.buckets[idx];
        let new = old
            .saturating_add(notional)
            .min(AMOUNT_MAX / VOLUME_WINDOW_DAYS as i64);
        self.buckets[idx] = new;
        self.total += new - old;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rounds_up_and_is_never_negative() {
        assert_eq!(fee_for(0, 1_000), 0);
        assert_eq!(fee_for(1, 1), 1);
        assert_eq!(fee_for(1_000_000, 1), 1);
        assert_eq!(fee_for(1_000_001, 1), 2);
        assert_eq!(fee_for(18_925, 1_000), 19);
        assert_eq!(fee_for(12_345, 0), 0);
        assert!(fee_for(AMOUNT_MAX, FEE_PPM_MAX) <= AMOUNT_MAX);
    }

    #[test]
    fn the_64_bit_path_agrees_with_the_128_bit_formula() {
        let reference = |n: i64, r: u32| ((n as i128 * r as i128 + 999_999) / 1_000_000) as i64;
        let edge = (u64::MAX / FEE_PPM_MAX as u64 / 2) as i64;
        for n in [
            0,
            1,
            999_999,
            1_000_001,
            edge - 1,
            edge,
            edge + 1,
            AMOUNT_MAX - 1,
            AMOUNT_MAX,
        ] {
            for r in [0, 1, 7, 999, 2_500, FEE_PPM_MAX] {
                assert_eq!(fee_for(n, r), reference(n, r), "notional {n} rate {r}");
            }
        }
    }

    #[test]
    fn schedule_validation() {
        assert!(FeeSchedule::flat(1_000, 2_000).is_ok());
        assert_eq!(
            FeeSchedule::flat(FEE_PPM_MAX + 1, 0),
            Err(Reject::InvalidFeeSchedule)
        );
        assert_eq!(FeeSchedule::new(&[]), Err(Reject::InvalidFeeSchedule));
        let starts_late = [FeeTier {
            volume_min: 5,
            maker_ppm: 1,
            taker_ppm: 1,
        }];
        assert_eq!(
            FeeSchedule::new(&starts_late),
            Err(Reject::InvalidFeeSchedule)
        );
        let not_increasing = [
            FeeTier {
                volume_min: 0,
                maker_ppm: 1,
                taker_ppm: 1,
            },
            FeeTier {
                volume_min: 0,
                maker_ppm: 1,
                taker_ppm: 1,
            },
        ];
        assert_eq!(
            FeeSchedule::new(&not_increasing),
            Err(Reject::InvalidFeeSchedule)
        );
    }

    #[test]
    fn tiers_choose_by_volume_and_max_rate_covers_all() {
        let schedule = FeeSchedule::new(&[
            FeeTier {
                volume_min: 0,
                maker_ppm: 1_000,
                taker_ppm: 2_000,
            },
            FeeTier {
                volume_min: 100,
                maker_ppm: 500,
                taker_ppm: 1_500,
            },
            FeeTier {
                volume_min: 1_000,
                maker_ppm: 0,
                taker_ppm: 2_500,
            },
        ])
        .unwrap();
        assert_eq!(schedule.rate_ppm(99, Liquidity::Taker), 2_000);
        assert_eq!(schedule.rate_ppm(100, Liquidity::Maker), 500);
        assert_eq!(schedule.rate_ppm(5_000, Liquidity::Maker), 0);
        assert_eq!(schedule.max_rate_ppm(), 2_500);
    }

    #[test]
    fn volume_window_rolls_over_thirty_days() {
        let day = MS_PER_DAY;
        let mut window = VolumeWindow::new(AssetId::new(1));
        window.add(0, 100);
        window.add(day * 10, 50);
        assert_eq!(window.volume_at(day * 10), 150);
        assert_eq!(window.volume_at(day * 29 + 1), 150);
        // Day 30: day 0 falls out of the window.
        assert_eq!(window.volume_at(day * 30), 50);
        assert_eq!(window.volume_at(day * 40), 0);
        window.add(day * 30, 7);
        assert_eq!(window.total, 57);
        // An older timestamp counts in the newest day.
        window.add(day * 5, 3);
        assert_eq!(window.volume_at(day * 30), 60);
        window.add(day * 100, 1);
        assert_eq!(window.total, 1);
    }
}
