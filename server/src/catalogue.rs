//! The default catalogue: the quote currency (USD, cents) and a set of products that every
//! `bourse serve` lists, so that a new data directory can be traded at once.
//!
//! At every start, whatever of it the recovered state lacks is added through the pipeline
//! (journaled like any command, so replay gives the same ids); what exists is left alone.
//! Products are whole units (lot 1) priced in cents (tick 0.01 USD), with fees tiered by the
//! account's 30-day volume in USD: 0.10% maker / 0.20% taker, from 100,000 USD 0.08% / 0.15%,
//! from 1,000,000 USD 0.05% / 0.10%. The feed's other products are in the market data's
//! catalogue (`GET /products`) without being tradable on Bourse.

use crate::access::Access;
use bourse_engine::{
    AddProduct, AssetCode, AssetId, CommandKind, EventKind, FeeSchedule, FeeTier, Symbol,
};

/// The quote currency of every default product.
pub const QUOTE: &str = "USD";

/// `(symbol, name)` of the default products.
pub const PRODUCTS: &[(&str, &str)] = &[
    ("AAPL", "Apple Inc."),
    ("MSFT", "Microsoft Corporation"),
    ("GOOGL", "Alphabet Inc."),
    ("AMZN", "Amazon.com, Inc."),
    ("NVDA", "NVIDIA Corporation"),
    ("TSLA", "Tesla, Inc."),
    ("META", "Meta Platforms, Inc."),
    ("NFLX", "Netflix, Inc."),
];

/// Where the embedded simulator starts each default product, in cents.
pub const START_PRICES_CENTS: &[i64] = &[
    18_900, 41_500, 16_500, 18_500, 12_000, 24_000, 50_000, 65_000,
];

/// The exchange rates the embedded simulator publishes beside the products, as market data
/// (`GET /api/v1/fx`, gateway/src/fx.rs): `(symbol, name, quote currency, decimals of the
/// price, starting price in those decimals)`. Not tradable on Bourse.
pub const RATES: &[(&str, &str, &str, u32, i64)] = &[
    ("EURUSD", "Euro in US dollars", "USD", 5, 108_000),
    ("GBPUSD", "Pound sterling in US dollars", "USD", 5, 127_000),
    ("USDJPY", "US dollar in yen", "JPY", 3, 151_000),
    ("USDINR", "US dollar in rupees", "INR", 4, 832_000),
];

/// The default products as the embedded simulator lists them, with their starting prices,
/// then the exchange rates of [`RATES`].
#[allow(
    clippy::expect_used,
    reason = "PRODUCTS and QUOTE are constants of valid symbols; ensure parses the same ones \
              and names a bad one"
)]
pub fn simulated() -> Vec<(bourse_marketdata::tick::ProductDef, i64)> {
    use bourse_marketdata::fixed::ONE;
    use bourse_marketdata::tick::{ProductDef, Symbol};
    let usd = Symbol::new(QUOTE).expect("valid");
    PRODUCTS
        .iter()
        .zip(START_PRICES_CENTS)
        .map(|((symbol, name), cents)| {
            let def = ProductDef {
                symbol: Symbol::new(symbol).expect("valid"),
                name: (*name).to_string(),
                currency: usd,
                tick_size: ONE / 100,
            };
            (def, cents * (ONE / 100))
        })
        .chain(RATES.iter().map(|(symbol, name, quote, decimals, price)| {
            let tick = ONE / 10_i64.pow(*decimals);
            let def = ProductDef {
                symbol: Symbol::new(symbol).expect("valid"),
                name: (*name).to_string(),
                currency: Symbol::new(quote).expect("valid"),
                tick_size: tick,
            };
            (def, price * tick)
        }))
        .collect()
}

/// The fee schedule of the default products.
#[allow(
    clippy::expect_used,
    reason = "constant tiers that FeeSchedule::new accepts: ascending volumes from 0, rates in range"
)]
pub fn fees() -> FeeSchedule {
    FeeSchedule::new(&[
        FeeTier {
            volume_min: 0,
            maker_ppm: 1_000,
            taker_ppm: 2_000,
        },
        FeeTier {
            volume_min: 10_000_000,
            maker_ppm: 800,
            taker_ppm: 1_500,
        },
        FeeTier {
            volume_min: 100_000_000,
            maker_ppm: 500,
            taker_ppm: 1_000,
        },
    ])
    .expect("the default fee schedule is valid")
}

/// Adds what the engine lacks of the default catalogue; returns how many commands that took.
pub fn ensure(access: &mut Access) -> Result<usize, String> {
    let mut added = 0;
    let quote = ensure_asset(access, QUOTE, 2, &mut added)?;
    for (symbol, name) in PRODUCTS {
        let parsed = Symbol::new(symbol).ok_or_else(|| format!("invalid symbol {symbol}"))?;
        let exists = access
            .query(move |engine| engine.product_by_symbol(&parsed).is_some())
            .map_err(|e| format!("cannot read the catalogue: {e}"))?;
        if exists {
            continue;
        }
        let base = ensure_asset(access, symbol, 0, &mut added)?;
        let kind = CommandKind::add_product(AddProduct {
            symbol: parsed,
            name: (*name).to_string(),
            base,
            quote,
            price_scale: 2,
            tick_size: 1,
            qty_scale: 0,
            lot_size: 1,
            fees: fees(),
        });
        submit(access, kind, &mut added)?;
    }
    Ok(added)
}

fn ensure_asset(
    access: &mut Access,
    code: &str,
    scale: u8,
    added: &mut usize,
) -> Result<AssetId, String> {
    let parsed = AssetCode::new(code).ok_or_else(|| format!("invalid asset code {code}"))?;
    let existing = access
        .query(move |engine| engine.asset_by_code(&parsed))
        .map_err(|e| format!("cannot read the assets: {e}"))?;
    if let Some(asset) = existing {
        return Ok(asset);
    }
    let events = submit(
        access,
        CommandKind::AddAsset {
            code: parsed,
            scale,
        },
        added,
    )?;
    events
        .iter()
        .find_map(|event| match event.kind {
            EventKind::AssetAdded { asset, .. } => Some(asset),
            _ => None,
        })
        .ok_or_else(|| format!("adding the asset {code} gave no asset"))
}

fn submit(
    access: &mut Access,
    kind: CommandKind,
    added: &mut usize,
) -> Result<Vec<bourse_engine::Event>, String> {
    let outcome = access
        .submit(kind)
        .map_err(|e| format!("cannot add to the catalogue: {e}"))?;
    outcome
        .result
        .map_err(|reject| format!("the engine refused a catalogue entry: {reject}"))?;
    *added += 1;
    Ok(outcome.events)
}
