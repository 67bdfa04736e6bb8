//! What it takes to show a product's engine integers (ticks, lots, minor units) as decimals,
//! read from the engine once per product, and Bourse's fills turned into market-data ticks.

use std::collections::HashMap;

use bourse_engine::{Amount, Asset, Engine, Price, Product, ProductId, Qty};
use bourse_history::FillTick;
use bourse_marketdata::fixed;
use bourse_marketdata::tick::{FeedItem, Source, Tick};
use bourse_pipeline::Handle;

/// What it takes to show one product's numbers.
#[derive(Debug, Clone)]
pub struct ProductUnits {
    pub product: Product,
    pub base: Asset,
    pub quote: Asset,
}

impl ProductUnits {
    pub fn of(engine: &Engine, product: ProductId) -> Option<ProductUnits> {
        let info = engine.product_info(product)?;
        Some(ProductUnits {
            base: engine.asset_info(info.base())?.clone(),
            quote: engine.asset_info(info.quote())?.clone(),
            product: info.clone(),
        })
    }

    pub fn symbol(&self) -> String {
        self.product.symbol().as_str().to_string()
    }

    pub fn price(&self, ticks: i64) -> String {
        self.product
            .price_to_decimal(Price::from_ticks(ticks))
            .normalize()
            .to_string()
    }

    pub fn qty(&self, lots: i64) -> String {
        self.product
            .qty_to_decimal(Qty::from_lots(lots))
            .normalize()
            .to_string()
    }

    /// Quote minor units, at the quote currency's scale (`"12.30"` for USD).
    pub fn quote_amount(&self, minor: i64) -> String {
        amount(&self.quote, minor)
    }

    pub fn quote_code(&self) -> String {
        self.quote.code().as_str().to_string()
    }
}

/// Minor units at the asset's scale (`"12.30"` for USD).
pub fn amount(asset: &Asset, minor: i64) -> String {
    asset
        .amount_to_decimal(Amount::from_minor(minor))
        .to_string()
}

/// The units of every product in `products`, read in one engine query.
pub fn units_of(engine: &Engine, products: &[u32]) -> HashMap<u32, ProductUnits> {
    products
        .iter()
        .filter_map(|&id| Some((id, ProductUnits::of(engine, ProductId::new(id))?)))
        .collect()
}

/// Product units, read from the engine once per product (they never change).
#[derive(Default)]
pub struct UnitsCache {
    units: HashMap<u32, ProductUnits>,
}

impl UnitsCache {
    /// Makes sure `products` are known (one engine query for the missing ones).
    pub fn load(&mut self, handle: &Handle, products: &[u32]) {
        let missing: Vec<u32> = products
            .iter()
            .copied()
            .filter(|p| !self.units.contains_key(p))
            .collect();
        if missing.is_empty() {
            return;
        }
        if let Ok(found) = handle
            .try_query(move |engine| units_of(engine, &missing))
            .and_then(|ticket| ticket.wait())
        {
            self.units.extend(found);
        }
    }

    /// Adds units read elsewhere.
    pub fn extend(&mut self, units: HashMap<u32, ProductUnits>) {
        self.units.extend(units);
    }

    pub fn get(&self, product: u32) -> Option<&ProductUnits> {
        self.units.get(&product)
    }
}

/// Bourse's fills as ticks for the market data (source Bourse, sequence number = the fill's
/// event sequence number), for the products whose units are known.
pub fn bourse_ticks(
    fills: impl IntoIterator<Item = FillTick>,
    units: &UnitsCache,
) -> Vec<FeedItem> {
    fills
        .into_iter()
        .filter_map(|fill| {
            let u = units.get(fill.product)?;
            let symbol = bourse_marketdata::tick::Symbol::new(&u.symbol())?;
            let price = fixed::from_decimal(u.price(fill.price).parse().ok()?)?;
            let size = fixed::from_decimal(u.qty(fill.qty).parse().ok()?)?;
            (price > 0 && size > 0).then_some(FeedItem::Tick {
                symbol,
                tick: Tick {
                    price,
                    size,
                    ts: fill.ts,
                    seq: fill.seq,
                    source: Source::Bourse,
                },
            })
        })
        .collect()
}
