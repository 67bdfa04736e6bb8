//! Bourse's own products and fills in the market data.

use bourse_marketdata::fixed;
use bourse_marketdata::tick::{FeedItem, ProductDef, Source};

use crate::{Input, MarketService, ProductUnits, UnitsCache, bourse_ticks, units_of};

/// The definitions of the engine's products (tradable on Bourse), for the catalogue.
pub fn engine_products(engine: &bourse_engine::Engine) -> Vec<ProductDef> {
    (0..engine.n_products() as u32)
        .filter_map(|id| {
            let units = ProductUnits::of(engine, bourse_engine::ProductId::new(id))?;
            Some(ProductDef {
                symbol: bourse_marketdata::tick::Symbol::new(&units.symbol())?,
                name: units.product.name().to_string(),
                currency: bourse_marketdata::tick::Symbol::new(&units.quote_code())?,
                tick_size: fixed::from_decimal(units.price(1).parse().ok()?)?,
            })
        })
        .collect()
}

/// Sends Bourse's fills the market data has not taken yet (from the history read model,
/// which holds every fill), and defines the engine's products: at start-up, before the
/// history thread sends newer fills.
pub fn catch_up_bourse(
    market: &MarketService,
    history: &bourse_history::History,
    handle: &bourse_pipeline::Handle,
) -> Result<usize, String> {
    let from = market.read()?.offset(Source::Bourse, 0).unwrap_or(1).max(1) as u64;
    let fills = history.fills_from(from);
    let products: Vec<u32> = fills.iter().map(|f| f.product).collect();
    let (defs, units) = handle
        .try_query(move |engine| (engine_products(engine), units_of(engine, &products)))
        .and_then(|ticket| ticket.wait())
        .map_err(|e| format!("cannot read the engine's products: {e}"))?;
    let mut cache = UnitsCache::default();
    cache.extend(units);
    let mut items: Vec<FeedItem> = defs.into_iter().map(FeedItem::Product).collect();
    let ticks = bourse_ticks(fills, &cache);
    let n_ticks = ticks.len();
    items.extend(ticks);
    let next_event_seq = history.event_seq() + 1;
    market
        .sender()
        .send(Input::Bourse {
            next_event_seq,
            items,
        })
        .map_err(|_| "the market-data thread has stopped".to_string())?;
    Ok(n_ticks)
}
