//! Assets and products: scales, tick and lot sizes, and the integer conversions they imply.

use rust_decimal::Decimal;

use crate::fees::FeeSchedule;
use crate::limits::SCALE_MAX;
use crate::reject::Reject;
use crate::types::{AMOUNT_MAX, Amount, AssetCode, AssetId, Price, ProductStatus, Qty, Symbol};

/// An asset: a currency or the instrument a product trades.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    pub(crate) code: AssetCode,
    pub(crate) scale: u8,
    /// Sum of all balances of this asset (deposits minus withdrawals); at most [`AMOUNT_MAX`].
    pub(crate) total_supply: i64,
}

impl Asset {
    pub fn code(&self) -> AssetCode {
        self.code
    }
    pub fn scale(&self) -> u8 {
        self.scale
    }
    pub fn total_supply(&self) -> Amount {
        Amount::from_minor(self.total_supply)
    }

    /// A decimal amount in minor units: positive, at most `scale` decimals, within range.
    pub fn amount_from_decimal(&self, value: Decimal) -> Result<Amount, Reject> {
        let minor = decimal_to_units(value, self.scale, 1).ok_or(Reject::InvalidAmount)?;
        Amount::new_checked(minor)
    }

    pub fn amount_to_decimal(&self, amount: Amount) -> Decimal {
        Decimal::new(amount.minor(), self.scale as u32)
    }
}

/// A product (ticker): the base asset traded against a quote currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub(crate) symbol: Symbol,
    pub(crate) name: String,
    pub(crate) base: AssetId,
    pub(crate) quote: AssetId,
    pub(crate) price_scale: u8,
    pub(crate) tick_size: i64,
    pub(crate) qty_scale: u8,
    pub(crate) lot_size: i64,
    /// Quote minor units for one tick on one lot: notional = ticks * lots * this.
    pub(crate) quote_per_tick_lot: i64,
    /// Base minor units in one lot.
    pub(crate) base_per_lot: i64,
    pub(crate) fees: FeeSchedule,
    pub(crate) max_fee_ppm: u32,
    pub(crate) status: ProductStatus,
}

/// The largest `quote_per_tick_lot` or `base_per_lot` a product may have.
const UNIT_FACTOR_MAX: i64 = 1_000_000_000_000_000;

impl Product {
    /// Derives the integer factors; `InvalidProductSpec` unless one tick on one lot is a whole
    /// number of quote minor units and one lot a whole number of base minor units.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        symbol: Symbol,
        name: String,
        (base, base_scale): (AssetId, u8),
        (quote, quote_scale): (AssetId, u8),
        (price_scale, tick_size): (u8, i64),
        (qty_scale, lot_size): (u8, i64),
        fees: FeeSchedule,
    ) -> Result<Product, Reject> {
        if price_scale > SCALE_MAX || qty_scale > SCALE_MAX || tick_size <= 0 || lot_size <= 0 {
            return Err(Reject::InvalidProductSpec);
        }
        if base == quote || qty_scale > base_scale {
            return Err(Reject::InvalidProductSpec);
        }
        let base_per_lot = scaled(lot_size as i128, base_scale as i32 - qty_scale as i32)
            .ok_or(Reject::InvalidProductSpec)?;
        let exponent = quote_scale as i32 - price_scale as i32 - qty_scale as i32;
        let quote_per_tick_lot = scaled(tick_size as i128 * lot_size as i128, exponent)
            .ok_or(Reject::InvalidProductSpec)?;
        fees.validate()?;
        Ok(Product {
            symbol,
            name,
            base,
            quote,
            price_scale,
            tick_size,
            qty_scale,
            lot_size,
            quote_per_tick_lot,
            base_per_lot,
            max_fee_ppm: fees.max_rate_ppm(),
            fees,
            status: ProductStatus::Trading,
        })
    }

    pub fn symbol(&self) -> Symbol {
        self.symbol
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn base(&self) -> AssetId {
        self.base
    }
    pub fn quote(&self) -> AssetId {
        self.quote
    }
    pub fn status(&self) -> ProductStatus {
        self.status
    }
    pub fn fees(&self) -> &FeeSchedule {
        &self.fees
    }
    pub fn price_scale(&self) -> u8 {
        self.price_scale
    }
    pub fn tick_size(&self) -> i64 {
        self.tick_size
    }
    pub fn qty_scale(&self) -> u8 {
        self.qty_scale
    }
    pub fn lot_size(&self) -> i64 {
        self.lot_size
    }
    pub fn quote_per_tick_lot(&self) -> i64 {
        self.quote_per_tick_lot
    }
    pub fn base_per_lot(&self) -> i64 {
        self.base_per_lot
    }

    /// The quote notional of `qty` at `price`, or `Overflow` past [`AMOUNT_MAX`].
    #[inline]
    pub fn notional(&self, price: Price, qty: Qty) -> Result<i64, Reject> {
        mul_fits(
            mul_fits(price.ticks(), self.quote_per_tick_lot)?,
            qty.lots(),
        )
    }

    /// Base minor units in `qty`.
    #[inline]
    pub fn base_amount(&self, qty: Qty) -> Result<i64, Reject> {
        mul_fits(qty.lots(), self.base_per_lot)
    }

    /// What a buy of `qty` at limit `price` holds: the notional plus the highest fee any
    /// sequence of fills could charge. Fees are rounded up per fill, so the worst case is one
    /// fill per lot at the highest rate: `qty * (n1 + ceil(n1 * max_rate))`, `n1` the notional
    /// of one lot. Because it is linear in `qty`, what a fill consumes never exceeds what it
    /// frees, and the rest is released exactly when the order ends.
    #[inline]
    pub fn buy_hold(&self, price: Price, qty: Qty) -> Result<i64, Reject> {
        let n1 = mul_fits(price.ticks(), self.quote_per_tick_lot)?;
        // n1 and its fee are at most AMOUNT_MAX (2^62) each: the sum cannot overflow.
        let per_lot = n1 + crate::fees::fee_for(n1, self.max_fee_ppm);
        mul_fits(per_lot, qty.lots())
    }

    /// A decimal price in ticks: positive, aligned to the tick size, within range.
    pub fn price_from_decimal(&self, value: Decimal) -> Result<Price, Reject> {
        let ticks = decimal_to_units(value, self.price_scale, self.tick_size)
            .ok_or(Reject::InvalidPrice)?;
        Price::new_checked(ticks)
    }

    pub fn price_to_decimal(&self, price: Price) -> Decimal {
        units_to_decimal(price.ticks(), self.tick_size, self.price_scale)
    }

    /// A decimal quantity in lots: positive, aligned to the lot size, within range.
    pub fn qty_from_decimal(&self, value: Decimal) -> Result<Qty, Reject> {
        let lots = decimal_to_units(value, self.qty_scale, self.lot_size)
            .ok_or(Reject::InvalidQuantity)?;
        Qty::new_checked(lots)
    }

    pub fn qty_to_decimal(&self, qty: Qty) -> Decimal {
        units_to_decimal(qty.lots(), self.lot_size, self.qty_scale)
    }
}

/// `a * b` if it is in `0..=AMOUNT_MAX`. The factors here are at least 1 once checked, so an
/// overflowing product is past `AMOUNT_MAX` whatever it is multiplied by next.
#[inline]
fn mul_fits(a: i64, b: i64) -> Result<i64, Reject> {
    match a.checked_mul(b) {
        Some(v) if (0..=AMOUNT_MAX).contains(&v) => Ok(v),
        _ => Err(Reject::Overflow),
    }
}

/// `value * 10^exponent` if it is a whole number in `1..=UNIT_FACTOR_MAX`.
fn scaled(value: i128, exponent: i32) -> Option<i64> {
    let result = if exponent >= 0 {
        value.checked_mul(10i128.checked_pow(exponent as u32)?)?
    } else {
        let divisor = 10i128.checked_pow(exponent.unsigned_abs())?;
        if value % divisor != 0 {
            return None;
        }
        value / divisor
    };
    (1..=UNIT_FACTOR_MAX as i128)
        .contains(&result)
        .then_some(result as i64)
}

/// `value` as a whole number of `step`s of `10^-scale`; `None` if negative, misaligned or huge.
fn decimal_to_units(value: Decimal, scale: u8, step: i64) -> Option<i64> {
    if value.is_sign_negative() {
        return None;
    }
    let normalized = value.normalize();
    let extra_digits = (scale as u32).checked_sub(normalized.scale())?;
    let minor = normalized
        .mantissa()
        .checked_mul(10i128.checked_pow(extra_digits)?)?;
    if minor % step as i128 != 0 {
        return None;
    }
    i64::try_from(minor / step as i128).ok()
}

fn units_to_decimal(units: i64, step: i64, scale: u8) -> Decimal {
    Decimal::from_i128_with_scale(units as i128 * step as i128, scale as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn stock() -> Product {
        Product::new(
            Symbol::new("AAPL").unwrap(),
            "Apple".into(),
            (AssetId::new(1), 0),
            (AssetId::new(0), 2),
            (2, 1),
            (0, 1),
            FeeSchedule::flat(1_000, 2_000).unwrap(),
        )
        .unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn spec_derives_integer_factors() {
        let p = stock();
        assert_eq!(p.quote_per_tick_lot(), 1);
        assert_eq!(p.base_per_lot(), 1);
        // BTC-USD: price 0.01, lot 0.0001 BTC (BTC scale 8), USD scale 6.
        let btc = Product::new(
            Symbol::new("BTC-USD").unwrap(),
            "Bitcoin".into(),
            (AssetId::new(1), 8),
            (AssetId::new(0), 6),
            (2, 1),
            (4, 1),
            FeeSchedule::flat(0, 0).unwrap(),
        )
        .unwrap();
        assert_eq!(btc.quote_per_tick_lot(), 1);
        assert_eq!(btc.base_per_lot(), 10_000);
        // With USD at 2 decimals a tick on a lot is a fraction of a cent: refused.
        let bad = Product::new(
            Symbol::new("BTC-USD").unwrap(),
            "Bitcoin".into(),
            (AssetId::new(1), 8),
            (AssetId::new(0), 2),
            (2, 1),
            (4, 1),
            FeeSchedule::flat(0, 0).unwrap(),
        );
        assert_eq!(bad, Err(Reject::InvalidProductSpec));
    }

    #[test]
    fn decimal_prices_must_align_to_the_tick() {
        let mut p = stock();
        assert_eq!(
            p.price_from_decimal(d("189.25")),
            Ok(Price::from_ticks(18_925))
        );
        assert_eq!(
            p.price_from_decimal(d("189.250")),
            Ok(Price::from_ticks(18_925))
        );
        assert_eq!(
            p.price_from_decimal(d("189.255")),
            Err(Reject::InvalidPrice)
        );
        assert_eq!(p.price_from_decimal(d("0")), Err(Reject::InvalidPrice));
        assert_eq!(p.price_from_decimal(d("-1")), Err(Reject::InvalidPrice));
        assert_eq!(
            p.price_from_decimal(d("79228162514264337593543950335")),
            Err(Reject::InvalidPrice)
        );
        p.tick_size = 5;
        assert_eq!(
            p.price_from_decimal(d("189.25")),
            Ok(Price::from_ticks(3_785))
        );
        assert_eq!(p.price_from_decimal(d("189.26")), Err(Reject::InvalidPrice));
        assert_eq!(p.price_to_decimal(Price::from_ticks(3_785)), d("189.25"));
    }

    #[test]
    fn decimal_quantities_must_align_to_the_lot() {
        let p = stock();
        assert_eq!(p.qty_from_decimal(d("10")), Ok(Qty::from_lots(10)));
        assert_eq!(p.qty_from_decimal(d("10.0")), Ok(Qty::from_lots(10)));
        assert_eq!(p.qty_from_decimal(d("10.5")), Err(Reject::InvalidQuantity));
        assert_eq!(p.qty_to_decimal(Qty::from_lots(7)), d("7"));
    }

    #[test]
    fn buy_hold_covers_the_worst_fee_per_lot() {
        let p = stock();
        // 189.25 a share, 0.2% at most: 37.85 cents rounds to 38 per share.
        assert_eq!(
            p.buy_hold(Price::from_ticks(18_925), Qty::from_lots(1)),
            Ok(18_925 + 38)
        );
        assert_eq!(
            p.buy_hold(Price::from_ticks(18_925), Qty::from_lots(3)),
            Ok(3 * 18_963)
        );
        let huge = Qty::from_lots(crate::types::QTY_LOTS_MAX);
        assert_eq!(
            p.buy_hold(Price::from_ticks(crate::types::PRICE_TICKS_MAX), huge),
            Err(Reject::Overflow)
        );
    }

    #[test]
    fn asset_amounts_from_decimals() {
        let usd = Asset {
            code: AssetCode::new("USD").unwrap(),
            scale: 2,
            total_supply: 0,
        };
        assert_eq!(
            usd.amount_from_decimal(d("10.25")),
            Ok(Amount::from_minor(1_025))
        );
        assert_eq!(
            usd.amount_from_decimal(d("10.255")),
            Err(Reject::InvalidAmount)
        );
        assert_eq!(usd.amount_from_decimal(d("0")), Err(Reject::InvalidAmount));
        assert_eq!(usd.amount_to_decimal(Amount::from_minor(1_025)), d("10.25"));
    }
}
