//! Micro-benchmarks of single operations on a book of 1,000 orders over 750 price levels, for
//! Bourse's engine and the two crates.io peers, through the same adapters as the throughput run.
//!
//! ```text
//! cargo bench -p bourse-benches --bench engine_ops [-- FILTER]
//! ```
//!
//! The book: 375 levels a side, 2 ticks apart (bids at mid-2, mid-4, ..., asks at mid+2, ...);
//! every third level holds two orders, the others one; sizes 1..=20 lots; owners spread over
//! 1,000 users. A separate user (the taker) owns nothing on the book, so no self-trade
//! prevention ever fires.
//!
//! - `place`: a GTC limit order that rests, 1..=750 ticks behind the mid on a random side (half
//!   join an existing level, half open a new one). Timed in batches of 64, each batch then
//!   cancelled untimed, so the book stays at 1,000..1,064 orders.
//! - `cancel`: the same 64 orders placed untimed, then cancelled timed.
//! - `amend`: a move of one tick away from the spread (to a new level) and back, over 250
//!   orders spread through the book; the open quantity stays the same (Bourse's `AmendOrder`
//!   with a new price; the peers' price-only amendment).
//! - `match_1_level`: an IOC of 1 lot that fills against a large order alone at the best level
//!   (the level stays); buys and sells alternate.
//! - `sweep_10_levels`: an IOC that takes exactly the ten best levels of one side (14 orders);
//!   the levels are put back untimed after each sweep; buys and sells alternate.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: a broken setup should stop the run loudly, with its message"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bourse_benches::mix::{Op, Side, SplitMix64};
use bourse_benches::venues::{BourseVenue, MatchcoreVenue, OrderbookRsVenue, Venue};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};

const MID: i64 = 100_000;
const LEVELS_PER_SIDE: i64 = 375;
/// Owns no resting order of the book.
const TAKER: u32 = 1_000;
const USERS: u32 = 1_001;
/// Ids 1..=1000 are the book's; benchmarks take theirs from here.
const FREE_ID: u32 = 1_001;
const BATCH: usize = 64;

/// The orders of the book, as `Place` ops.
fn book_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    let mut id = 0u32;
    for k in 0..LEVELS_PER_SIDE {
        for side in [Side::Buy, Side::Sell] {
            let price = match side {
                Side::Buy => MID - 2 - 2 * k,
                Side::Sell => MID + 2 + 2 * k,
            };
            let n = if k % 3 == 0 { 2 } else { 1 };
            for _ in 0..n {
                id += 1;
                let qty = 1 + i64::from(id * 7 % 20);
                ops.push(Op::Place {
                    user: (id * 13) % 1_000,
                    id,
                    side,
                    price_ticks: price,
                    qty,
                    ioc: false,
                });
            }
        }
    }
    assert_eq!(id, 1_000);
    ops
}

fn book<V: Venue>() -> V {
    let mut v = V::new(USERS);
    for op in book_ops() {
        v.apply(&op);
    }
    assert_eq!(v.errors(), [0; 4], "{}: building the book", V::NAME);
    v
}

fn check<V: Venue>(v: &V) {
    assert_eq!(v.errors(), [0; 4], "{}: an op was rejected", V::NAME);
}

/// `BATCH` resting orders 1..=750 ticks behind the mid, and their cancels.
fn resting_batch() -> (Vec<Op>, Vec<Op>) {
    let mut rng = SplitMix64::new(42);
    let mut places = Vec::new();
    let mut cancels = Vec::new();
    for i in 0..BATCH as u32 {
        let side = if rng.coin() { Side::Buy } else { Side::Sell };
        let depth = 1 + rng.below(750) as i64;
        let price = match side {
            Side::Buy => MID - depth,
            Side::Sell => MID + depth,
        };
        let (user, id) = (i * 7 % 1_000, FREE_ID + i);
        places.push(Op::Place {
            user,
            id,
            side,
            price_ticks: price,
            qty: 5,
            ioc: false,
        });
        cancels.push(Op::Cancel { user, id });
    }
    (places, cancels)
}

fn bench_place<V: Venue>(g: &mut BenchmarkGroup<WallTime>) {
    let mut v = book::<V>();
    let (places, cancels) = resting_batch();
    g.bench_function(V::ID, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                let start = Instant::now();
                for op in &places[..n] {
                    v.apply(black_box(op));
                }
                total += start.elapsed();
                for op in &cancels[..n] {
                    v.apply(op);
                }
                left -= n as u64;
            }
            total
        })
    });
    check(&v);
}

fn bench_cancel<V: Venue>(g: &mut BenchmarkGroup<WallTime>) {
    let mut v = book::<V>();
    let (places, cancels) = resting_batch();
    g.bench_function(V::ID, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                for op in &places[..n] {
                    v.apply(op);
                }
                let start = Instant::now();
                for op in &cancels[..n] {
                    v.apply(black_box(op));
                }
                total += start.elapsed();
                left -= n as u64;
            }
            total
        })
    });
    check(&v);
}

fn bench_amend<V: Venue>(g: &mut BenchmarkGroup<WallTime>) {
    let mut v = book::<V>();
    // Every fourth order of the book: one tick away from the spread, then back.
    let mut away = Vec::new();
    let mut back = Vec::new();
    for op in book_ops().iter().step_by(4) {
        let Op::Place {
            user,
            id,
            side,
            price_ticks,
            qty,
            ..
        } = *op
        else {
            unreachable!()
        };
        let out = if side == Side::Buy {
            price_ticks - 1
        } else {
            price_ticks + 1
        };
        away.push(Op::Move {
            user,
            id,
            new_price: out,
            remaining: qty,
        });
        back.push(Op::Move {
            user,
            id,
            new_price: price_ticks,
            remaining: qty,
        });
    }
    let m = away.len();
    let mut k = 0usize;
    g.bench_function(V::ID, |b| {
        b.iter(|| {
            let j = k % m;
            let op = if (k / m).is_multiple_of(2) {
                &away[j]
            } else {
                &back[j]
            };
            v.apply(black_box(op));
            k += 1;
        })
    });
    check(&v);
}

fn bench_match_1_level<V: Venue>(g: &mut BenchmarkGroup<WallTime>) {
    let mut v = book::<V>();
    // A large order alone at each best level, inside the book's 4-tick spread.
    const BIG: i64 = 50_000_000;
    v.apply(&Op::Place {
        user: 998,
        id: FREE_ID,
        side: Side::Sell,
        price_ticks: MID + 1,
        qty: BIG,
        ioc: false,
    });
    v.apply(&Op::Place {
        user: 997,
        id: FREE_ID + 1,
        side: Side::Buy,
        price_ticks: MID - 1,
        qty: BIG,
        ioc: false,
    });
    let takers = [
        Op::Place {
            user: TAKER,
            id: FREE_ID + 2,
            side: Side::Buy,
            price_ticks: MID + 1,
            qty: 1,
            ioc: true,
        },
        Op::Place {
            user: TAKER,
            id: FREE_ID + 3,
            side: Side::Sell,
            price_ticks: MID - 1,
            qty: 1,
            ioc: true,
        },
    ];
    let mut k = 0usize;
    g.bench_function(V::ID, |b| {
        b.iter(|| {
            v.apply(black_box(&takers[k & 1]));
            k += 1;
        })
    });
    assert!((k as i64) < BIG, "the large orders ran out");
    check(&v);
}

fn bench_sweep_10_levels<V: Venue>(g: &mut BenchmarkGroup<WallTime>) {
    let mut v = book::<V>();
    // The ten best levels of each side, to put back after each sweep (with fresh ids).
    let mut next_id = FREE_ID;
    let mut refill = |side: Side| -> (Op, Vec<Op>) {
        let mut orders = Vec::new();
        let mut total = 0;
        let mut limit = 0;
        for op in book_ops() {
            let Op::Place {
                user,
                side: s,
                price_ticks,
                qty,
                ..
            } = op
            else {
                unreachable!()
            };
            let depth = (price_ticks - MID).abs();
            if s == side && depth <= 2 + 2 * 9 {
                orders.push(Op::Place {
                    user,
                    id: next_id,
                    side,
                    price_ticks,
                    qty,
                    ioc: false,
                });
                next_id += 1;
                total += qty;
                limit = price_ticks;
            }
        }
        let taker = Op::Place {
            user: TAKER,
            id: next_id,
            side: side.opposite(),
            price_ticks: limit,
            qty: total,
            ioc: true,
        };
        next_id += 1;
        (taker, orders)
    };
    let sweeps = [refill(Side::Sell), refill(Side::Buy)];
    let mut k = 0usize;
    g.bench_function(V::ID, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (taker, orders) = &sweeps[k & 1];
                let start = Instant::now();
                v.apply(black_box(taker));
                total += start.elapsed();
                for op in orders {
                    v.apply(op);
                }
                k += 1;
            }
            total
        })
    });
    check(&v);
}

fn all_venues(c: &mut Criterion, name: &str, f: [fn(&mut BenchmarkGroup<WallTime>); 3]) {
    let mut g = c.benchmark_group(name);
    for bench in f {
        bench(&mut g);
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    all_venues(
        c,
        "place",
        [
            bench_place::<BourseVenue>,
            bench_place::<MatchcoreVenue>,
            bench_place::<OrderbookRsVenue>,
        ],
    );
    all_venues(
        c,
        "cancel",
        [
            bench_cancel::<BourseVenue>,
            bench_cancel::<MatchcoreVenue>,
            bench_cancel::<OrderbookRsVenue>,
        ],
    );
    all_venues(
        c,
        "amend",
        [
            bench_amend::<BourseVenue>,
            bench_amend::<MatchcoreVenue>,
            bench_amend::<OrderbookRsVenue>,
        ],
    );
    all_venues(
        c,
        "match_1_level",
        [
            bench_match_1_level::<BourseVenue>,
            bench_match_1_level::<MatchcoreVenue>,
            bench_match_1_level::<OrderbookRsVenue>,
        ],
    );
    all_venues(
        c,
        "sweep_10_levels",
        [
            bench_sweep_10_levels::<BourseVenue>,
            bench_sweep_10_levels::<MatchcoreVenue>,
            bench_sweep_10_levels::<OrderbookRsVenue>,
        ],
    );
}

criterion_group! {
    name = engine_ops;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = benches
}
criterion_main!(engine_ops);
