//! The exchange simulator: random walks of prices for a set of products, as the embedded feed
//! of `bourse serve` (no broker configured) and `bourse feed-sim` (publishing to Kafka) make
//! them. Each step moves a price by up to 0.1% (on the product's tick grid, at least one
//! tick), with a size of 1 to 100 units; sequence numbers count each product's ticks.

use crate::fixed::ONE;
use crate::tick::{ProductDef, Source, Symbol, Tick};

/// One simulated product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimProduct {
    /// Its definition.
    pub def: ProductDef,
    /// The current price, 10^-8 units.
    pub price: i64,
    /// The last sequence number used.
    pub seq: u64,
    /// The last timestamp used.
    pub ts: i64,
}

/// Random walks over products.
#[derive(Clone, Debug)]
pub struct Simulator {
    products: Vec<SimProduct>,
    rng: u64,
}

impl Simulator {
    /// Products with their starting prices; `seed` fixes the walk.
    pub fn new(products: Vec<(ProductDef, i64)>, seed: u64) -> Self {
        Self {
            products: products
                .into_iter()
                .map(|(def, price)| SimProduct {
                    def,
                    price,
                    seq: 0,
                    ts: 0,
                })
                .collect(),
            rng: seed,
        }
    }

    /// `n` synthetic products `SIM0000001`, … ("Simulated 1", …) in USD with a 0.01 tick,
    /// priced 10.00 to 509.99. It stops where the symbol would pass [`SYMBOL_LEN_MAX`](crate::tick::SYMBOL_LEN_MAX)
    /// (after `SIM9999999999999`).
    pub fn synthetic(n: usize) -> Vec<(ProductDef, i64)> {
        (1..=n)
            .map_while(|i| {
                let def = ProductDef {
                    symbol: Symbol::new(&format!("SIM{i:07}"))?,
                    name: format!("Simulated {i}"),
                    currency: Symbol::USD,
                    tick_size: ONE / 100,
                };
                let price = (1_000 + (i as i64 * 7_919) % 50_000) * (ONE / 100);
                Some((def, price))
            })
            .collect()
    }

    /// Continues a product after a restart: from its last price and sequence number.
    pub fn resume(&mut self, symbol: &Symbol, price: i64, seq: u64, ts: i64) {
        if let Some(p) = self.products.iter_mut().find(|p| p.def.symbol == *symbol) {
            p.price = price;
            p.seq = seq;
            p.ts = ts;
        }
    }

    /// The products.
    pub fn products(&self) -> &[SimProduct] {
        &self.products
    }

    /// How many products.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next tick of product `index` at time `now_ms` (never before its previous tick).
    pub fn step(&mut self, index: usize, now_ms: i64) -> Tick {
        let r = self.next_u64();
        let p = &mut self.products[index];
        let tick_size = p.def.tick_size.max(1);
        // Up to 0.1% either way, in whole ticks, at least one tick.
        let span = (p.price / 1_000 / tick_size).max(1);
        let steps = (r % (2 * span as u64 + 1)) as i64 - span;
        p.price = (p.price + steps * tick_size).max(tick_size);
        p.seq += 1;
        p.ts = p.ts.max(now_ms);
        Tick {
            price: p.price,
            size: (1 + ((r >> 32) % 100) as i64) * ONE,
            ts: p.ts,
            seq: p.seq,
            source: Source::Feed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_stay_on_the_grid_and_number_their_ticks() {
        let mut sim = Simulator::new(Simulator::synthetic(3), 42);
        let mut last = [0i64; 3];
        for n in 0..3_000 {
            let i = n % 3;
            let t = sim.step(i, 1_000 + n as i64);
            assert_eq!(t.price % (ONE / 100), 0);
            assert!(t.price > 0 && t.size >= ONE && t.size <= 100 * ONE);
            assert_eq!(t.seq, n as u64 / 3 + 1);
            assert!(t.ts >= last[i]);
            last[i] = t.ts;
        }
        // Deterministic for a seed.
        let mut again = Simulator::new(Simulator::synthetic(3), 42);
        let mut first = Simulator::new(Simulator::synthetic(3), 42);
        assert_eq!(again.step(0, 5), first.step(0, 5));
        assert_eq!(sim.products()[0].def.symbol.as_str(), "SIM0000001");
    }
}
