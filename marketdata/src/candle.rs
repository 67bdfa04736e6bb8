//! Candles and the rules that build them from ticks.
//!
//! # Rules
//! 1. **Alignment.** A candle of interval `I` covers `[start, start + I)` where `start` is a
//!    multiple of `I` since the unix epoch, UTC: 1d candles start at 00:00 UTC, 4h candles at
//!    00:00, 04:00, … A tick belongs to a bucket by its *exchange* time (`ts`), never by when
//!    it arrived.
//! 2. **Contents.** open = the price of the bucket's tick with the lowest [`Key`] (exchange
//!    time, then source, then sequence number), close = the price of the highest, high and low
//!    the extremes, volume the sum of sizes (saturating at `u64::MAX` units of 10^-8), count
//!    the number of ticks. So ticks that arrive out of order give the same candle as in order.
//! 3. **Empty intervals** make no candle: a series has gaps where nothing traded, and a chart
//!    carries the previous close over them (as most exchanges' candle APIs do).
//! 4. **Open and closed.** Per product and interval, the *open* candle is the one of the newest
//!    bucket that has a tick. The first tick of a newer bucket closes it (it is written to
//!    the candle history) and opens the next.
//! 5. **Late ticks.** A tick whose bucket is older than the open candle's amends the stored
//!    candle of its bucket (or makes one, if that bucket was empty): a new version is written
//!    and supersedes the old. Candles therefore always equal the aggregate of the stored ticks.
//! 6. **Too late.** A tick more than the lateness bound (`late-ms`, default 60 s) older than
//!    the product's newest tick is refused (counted as `late`): neither stored nor counted.
//! 7. **Duplicates.** The exchange numbers each product's ticks (`seq`). A tick whose
//!    `(source, seq)` was already taken for the product is dropped (counted as `duplicate`).
//!    The last [`WINDOW`] sequence numbers below the highest are remembered; a tick further
//!    back cannot be told from a duplicate and is refused as `late`.

use crate::tick::{Key, Source, Tick};

/// How many sequence numbers below the highest one the duplicate check remembers.
pub const WINDOW: u64 = 64;

/// A candle interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    /// One second.
    S1,
    /// One minute.
    M1,
    /// Five minutes.
    M5,
    /// Fifteen minutes.
    M15,
    /// One hour.
    H1,
    /// Four hours.
    H4,
    /// One day (UTC).
    D1,
}

/// How many intervals there are.
pub const N_INTERVALS: usize = 7;

impl Interval {
    /// Every interval, shortest first.
    pub const ALL: [Interval; N_INTERVALS] = [
        Self::S1,
        Self::M1,
        Self::M5,
        Self::M15,
        Self::H1,
        Self::H4,
        Self::D1,
    ];

    /// Length in ms.
    pub fn millis(self) -> i64 {
        match self {
            Self::S1 => 1_000,
            Self::M1 => 60_000,
            Self::M5 => 300_000,
            Self::M15 => 900_000,
            Self::H1 => 3_600_000,
            Self::H4 => 14_400_000,
            Self::D1 => 86_400_000,
        }
    }

    /// The name used in the API (`1s`, `1m`, `5m`, `15m`, `1h`, `4h`, `1d`).
    pub fn name(self) -> &'static str {
        match self {
            Self::S1 => "1s",
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::H1 => "1h",
            Self::H4 => "4h",
            Self::D1 => "1d",
        }
    }

    /// The interval of an API name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Position in [`Interval::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The start of the bucket holding `ts` (rule 1).
    pub fn bucket(self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.millis())
    }
}

/// One candle. Prices in 10^-8 units, volume in 10^-8 units of size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candle {
    /// Start of the bucket, unix ms.
    pub start: i64,
    /// Price of the first tick (lowest key).
    pub open: i64,
    /// Highest price.
    pub high: i64,
    /// Lowest price.
    pub low: i64,
    /// Price of the last tick (highest key).
    pub close: i64,
    /// Sum of sizes, saturating.
    pub volume: u64,
    /// Number of ticks.
    pub count: u32,
    /// Key of the first tick.
    pub first: Key,
    /// Key of the last tick.
    pub last: Key,
}

impl Candle {
    /// The candle of bucket `start` holding only `tick`.
    pub fn of(start: i64, tick: &Tick) -> Self {
        Self {
            start,
            open: tick.price,
            high: tick.price,
            low: tick.price,
            close: tick.price,
            volume: tick.size.unsigned_abs(),
            count: 1,
            first: tick.key(),
            last: tick.key(),
        }
    }

    /// Adds a tick of the same bucket (rule 2).
    pub fn add(&mut self, tick: &Tick) {
        self.high = self.high.max(tick.price);
        self.low = self.low.min(tick.price);
        self.volume = self.volume.saturating_add(tick.size.unsigned_abs());
        self.count = self.count.saturating_add(1);
        let key = tick.key();
        if key < self.first {
            self.first = key;
            self.open = tick.price;
        }
        if key > self.last {
            self.last = key;
            self.close = tick.price;
        }
    }

    /// Whether it holds no tick (an interval that has not started).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What a tick did to one interval's open candle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It went into the open candle (or opened the first one).
    Updated,
    /// It opened a new candle; the previous open one is closed and must be stored.
    Rolled(Candle),
    /// Its bucket (this start) is older than the open candle's: the stored candle of that
    /// bucket must be amended (rule 5).
    Late(i64),
}

/// The duplicate check of one source (rule 7): the highest sequence number taken and which of
/// the [`WINDOW`] below it were taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqWindow {
    /// Highest sequence number taken (0: none).
    pub max: u64,
    /// Bit `i` set: `max - 1 - i` was taken.
    pub below: u64,
}

/// Why a tick was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its `(source, seq)` was taken already.
    Duplicate,
    /// Too far behind (rules 6 and 7).
    Late,
}

impl SeqWindow {
    /// Takes `seq` if it is new; refuses a duplicate or one too far back.
    pub fn take(&mut self, seq: u64) -> Result<(), Refusal> {
        if seq > self.max {
            let shift = seq - self.max;
            self.below = if shift > WINDOW {
                0
            } else {
                // The old max becomes bit shift-1.
                let moved = if shift == WINDOW {
                    0
                } else {
                    self.below << shift
                };
                moved | (u64::from(self.max > 0) << (shift - 1))
            };
            self.max = seq;
            return Ok(());
        }
        if seq == self.max {
            return Err(Refusal::Duplicate);
        }
        let back = self.max - seq; // 1..
        if back > WINDOW {
            return Err(Refusal::Late);
        }
        let bit = 1u64 << (back - 1);
        if self.below & bit != 0 {
            return Err(Refusal::Duplicate);
        }
        self.below |= bit;
        Ok(())
    }

    /// Whether `seq` would be taken, without taking it.
    pub fn check(&self, seq: u64) -> Result<(), Refusal> {
        let mut copy = *self;
        copy.take(seq)
    }
}

/// The candle state of one product: the open candle of every interval, the duplicate
/// windows, and the newest exchange time seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProductCandles {
    /// The open candle of each interval, in [`Interval::ALL`] order (empty before the first
    /// tick).
    pub open: [Candle; N_INTERVALS],
    /// Duplicate check of feed ticks.
    pub feed: SeqWindow,
    /// Duplicate check of Bourse's own trades.
    pub bourse: SeqWindow,
    /// Newest exchange time taken, unix ms (0: none).
    pub newest_ts: i64,
}

impl ProductCandles {
    /// Rules 6 and 7: whether the tick is taken. A refused tick changes nothing.
    pub fn admit(&mut self, tick: &Tick, late_ms: i64) -> Result<(), Refusal> {
        let window = match tick.source {
            Source::Feed => &mut self.feed,
            Source::Bourse => &mut self.bourse,
        };
        window.check(tick.seq)?;
        if self.newest_ts > 0 && tick.ts < self.newest_ts.saturating_sub(late_ms) {
            return Err(Refusal::Late);
        }
        window.take(tick.seq)?;
        self.newest_ts = self.newest_ts.max(tick.ts);
        Ok(())
    }

    /// Rules 1 to 5 for an admitted tick: what it did to each interval, in
    /// [`Interval::ALL`] order.
    pub fn apply(&mut self, tick: &Tick) -> [Step; N_INTERVALS] {
        let mut steps = [Step::Updated; N_INTERVALS];
        for (i, interval) in Interval::ALL.into_iter().enumerate() {
            let open = &mut self.open[i];
            // Most ticks fall in the open candle's bucket: no division then.
            let bucket = if !open.is_empty()
                && tick.ts >= open.start
                && tick.ts - open.start < interval.millis()
            {
                open.start
            } else {
                interval.bucket(tick.ts)
            };
            steps[i] = if open.is_empty() {
                *open = Candle::of(bucket, tick);
                Step::Updated
            } else if bucket == open.start {
                open.add(tick);
                Step::Updated
            } else if bucket > open.start {
                Step::Rolled(std::mem::replace(open, Candle::of(bucket, tick)))
            } else {
                Step::Late(bucket)
            };
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::fixed::ONE;

    fn tick(ts: i64, seq: u64, price: i64, size: i64) -> Tick {
        Tick {
            price: price * ONE,
            size: size * ONE,
            ts,
            seq,
            source: Source::Feed,
        }
    }

    /// Feeds ticks through `admit` and `apply`, storing closed and amended candles in a map
    /// as the market's candle history does; returns every candle of `interval` (stored and
    /// open, by start) and the refusals.
    /// A candle as the table writes it: start, [open, high, low, close], volume, count.
    type Row = (i64, [i64; 4], u64, u32);

    fn run(ticks: &[Tick], interval: Interval) -> (Vec<Row>, Vec<Refusal>) {
        let mut state = ProductCandles::default();
        let mut stored: BTreeMap<(usize, i64), Candle> = BTreeMap::new();
        let mut refused = vec![];
        for t in ticks {
            if let Err(r) = state.admit(t, 60_000) {
                refused.push(r);
                continue;
            }
            for (i, step) in state.apply(t).into_iter().enumerate() {
                match step {
                    Step::Updated => {}
                    Step::Rolled(closed) => {
                        assert!(stored.insert((i, closed.start), closed).is_none());
                    }
                    Step::Late(bucket) => {
                        stored
                            .entry((i, bucket))
                            .and_modify(|c| c.add(t))
                            .or_insert_with(|| Candle::of(bucket, t));
                    }
                }
            }
        }
        let i = interval.index();
        let mut all: Vec<Candle> = stored
            .range((i, i64::MIN)..=(i, i64::MAX))
            .map(|(_, c)| *c)
            .collect();
        if !state.open[i].is_empty() {
            all.push(state.open[i]);
        }
        let all = all
            .iter()
            .map(|c| {
                (
                    c.start,
                    [c.open / ONE, c.high / ONE, c.low / ONE, c.close / ONE],
                    c.volume / ONE as u64,
                    c.count,
                )
            })
            .collect();
        (all, refused)
    }

    type Expected = (&'static str, Vec<Tick>, Interval, Vec<Row>, Vec<Refusal>);

    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "a table: one row per candle rule, read side by side with docs/market-data.md"
    )]
    fn candle_rules() {
        use Interval::*;
        use Refusal::*;
        let table: Vec<Expected> = vec![
            (
                "one bucket: open first, close last, high, low, volume, count",
                vec![
                    tick(60_000, 1, 10, 1),
                    tick(60_500, 2, 12, 2),
                    tick(61_000, 3, 9, 3),
                    tick(119_999, 4, 11, 4),
                ],
                M1,
                vec![(60_000, [10, 12, 9, 11], 10, 4)],
                vec![],
            ),
            (
                "alignment: buckets start at multiples of the interval, end exclusive",
                vec![
                    tick(59_999, 1, 10, 1),
                    tick(60_000, 2, 11, 1),
                    tick(179_999, 3, 12, 1),
                ],
                M1,
                vec![
                    (0, [10, 10, 10, 10], 1, 1),
                    (60_000, [11, 11, 11, 11], 1, 1),
                    (120_000, [12, 12, 12, 12], 1, 1),
                ],
                vec![],
            ),
            (
                "empty intervals make no candle",
                vec![tick(1_000, 1, 10, 1), tick(5_500, 2, 11, 1)],
                S1,
                vec![
                    (1_000, [10, 10, 10, 10], 1, 1),
                    (5_000, [11, 11, 11, 11], 1, 1),
                ],
                vec![],
            ),
            (
                "1d candles start at 00:00 UTC and 4h at 00, 04, ...",
                vec![
                    tick(86_400_000 + 3_600_000, 1, 10, 1),
                    tick(2 * 86_400_000 - 1, 2, 11, 1),
                    tick(2 * 86_400_000, 3, 12, 1),
                ],
                D1,
                vec![
                    (86_400_000, [10, 11, 10, 11], 2, 2),
                    (172_800_000, [12, 12, 12, 12], 1, 1),
                ],
                vec![],
            ),
            (
                "4h alignment",
                vec![tick(14_400_000 - 1, 1, 10, 1), tick(14_400_000, 2, 11, 1)],
                H4,
                vec![
                    (0, [10, 10, 10, 10], 1, 1),
                    (14_400_000, [11, 11, 11, 11], 1, 1),
                ],
                vec![],
            ),
            (
                "out of order within a bucket: open and close follow exchange time, not arrival",
                vec![
                    tick(30_000, 2, 12, 1),
                    tick(10_000, 1, 10, 1),
                    tick(50_000, 4, 14, 1),
                    tick(40_000, 3, 13, 1),
                ],
                M1,
                vec![(0, [10, 14, 10, 14], 4, 4)],
                vec![],
            ),
            (
                "same timestamp: the sequence number orders",
                vec![
                    tick(1_000, 7, 20, 1),
                    tick(1_000, 5, 10, 1),
                    tick(1_000, 6, 30, 1),
                ],
                S1,
                vec![(1_000, [10, 30, 10, 20], 3, 3)],
                vec![],
            ),
            (
                "a late tick amends the closed candle of its bucket",
                vec![
                    tick(1_000, 1, 10, 1),
                    tick(2_000, 2, 11, 1),
                    tick(1_500, 3, 15, 2),
                ],
                S1,
                vec![
                    (1_000, [10, 15, 10, 15], 3, 2),
                    (2_000, [11, 11, 11, 11], 1, 1),
                ],
                vec![],
            ),
            (
                "a late tick into a bucket that was empty makes its candle",
                vec![
                    tick(1_000, 1, 10, 1),
                    tick(3_000, 3, 11, 1),
                    tick(2_000, 2, 9, 1),
                ],
                S1,
                vec![
                    (1_000, [10, 10, 10, 10], 1, 1),
                    (2_000, [9, 9, 9, 9], 1, 1),
                    (3_000, [11, 11, 11, 11], 1, 1),
                ],
                vec![],
            ),
            (
                "a late tick with an earlier key becomes the amended candle's open",
                vec![
                    tick(1_500, 2, 10, 1),
                    tick(2_000, 3, 11, 1),
                    tick(1_100, 1, 8, 1),
                ],
                S1,
                vec![
                    (1_000, [8, 10, 8, 10], 2, 2),
                    (2_000, [11, 11, 11, 11], 1, 1),
                ],
                vec![],
            ),
            (
                "a tick beyond the lateness bound is refused and counts nowhere",
                vec![
                    tick(100_000, 1, 10, 1),
                    tick(39_999, 2, 99, 1),
                    tick(40_000, 3, 9, 1),
                ],
                M1,
                vec![(0, [9, 9, 9, 9], 1, 1), (60_000, [10, 10, 10, 10], 1, 1)],
                vec![Late],
            ),
            (
                "duplicates (same source and seq) are dropped, even with another price",
                vec![
                    tick(1_000, 1, 10, 1),
                    tick(1_000, 1, 10, 1),
                    tick(1_200, 2, 11, 1),
                    tick(1_300, 1, 50, 5),
                ],
                S1,
                vec![(1_000, [10, 11, 10, 11], 2, 2)],
                vec![Duplicate, Duplicate],
            ),
            (
                "a gap in sequence numbers filled later is not a duplicate",
                vec![
                    tick(1_000, 1, 10, 1),
                    tick(1_300, 3, 12, 1),
                    tick(1_200, 2, 11, 1),
                ],
                S1,
                vec![(1_000, [10, 12, 10, 12], 3, 3)],
                vec![],
            ),
            (
                "a sequence number beyond the window is refused as late",
                vec![
                    tick(1_000, 100, 10, 1),
                    tick(1_000, 36, 11, 1),
                    tick(1_000, 35, 12, 1),
                ],
                S1,
                // Same time: the lower sequence number (36) is the open.
                vec![(1_000, [11, 11, 10, 10], 2, 2)],
                vec![Late],
            ),
        ];
        for (name, ticks, interval, candles, refusals) in table {
            let (got, refused) = run(&ticks, interval);
            assert_eq!(got, candles, "{name}");
            assert_eq!(refused, refusals, "{name}");
        }
    }

    #[test]
    fn bourse_trades_and_feed_ticks_are_numbered_apart() {
        let mut state = ProductCandles::default();
        let feed = tick(1_000, 1, 10, 1);
        let bourse = Tick {
            source: Source::Bourse,
            price: 11 * ONE,
            ..feed
        };
        assert_eq!(state.admit(&feed, 60_000), Ok(()));
        assert_eq!(state.admit(&bourse, 60_000), Ok(()));
        assert_eq!(state.admit(&bourse, 60_000), Err(Refusal::Duplicate));
        state.apply(&feed);
        state.apply(&bourse);
        // Same time and seq: the source orders (feed before Bourse), so Bourse's trade closes.
        assert_eq!(state.open[0].close, 11 * ONE);
        assert_eq!(state.open[0].open, 10 * ONE);
    }

    #[test]
    fn the_window_matches_a_set_of_taken_numbers() {
        use proptest::prelude::*;
        proptest!(|(seqs in proptest::collection::vec(1u64..300, 1..200))| {
            let mut window = SeqWindow::default();
            let mut taken = std::collections::BTreeSet::new();
            for seq in seqs {
                let max = taken.last().copied().unwrap_or(0);
                let expected = if taken.contains(&seq) && seq + WINDOW >= max {
                    Err(Refusal::Duplicate)
                } else if seq + WINDOW < max {
                    Err(Refusal::Late)
                } else {
                    Ok(())
                };
                prop_assert_eq!(window.take(seq), expected, "seq {}", seq);
                if expected.is_ok() {
                    taken.insert(seq);
                }
            }
        });
    }
}
