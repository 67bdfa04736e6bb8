//! Prices and sizes inside market data: `i64` counts of 10^-8 (eight decimals), parsed from
//! and rendered to decimal strings at the edges. Eight decimals hold every price and size of a
//! stock or crypto feed exactly; the largest value is about 92 billion.

use rust_decimal::Decimal;

/// Decimals of every price and size.
pub const DECIMALS: u32 = 8;
/// The fixed-point value of 1.
pub const ONE: i64 = 100_000_000;

/// Why a decimal string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FixedError {
    /// Not of the form `digits[.digits]`.
    #[error("not a plain decimal number")]
    NotDecimal,
    /// More than [`DECIMALS`] digits after the point.
    #[error("more than 8 decimals")]
    TooManyDecimals,
    /// Zero (every price and size is positive).
    #[error("not positive")]
    NotPositive,
    /// Beyond `i64::MAX` 10^-8 units.
    #[error("too large")]
    TooLarge,
}

/// Parses a positive decimal such as `"189.25"`: ASCII digits with an optional point, no sign,
/// no exponent, at most [`DECIMALS`] decimals.
pub fn parse_positive(text: &str) -> Result<i64, FixedError> {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (text.contains('.') && frac.is_empty()) {
        return Err(FixedError::NotDecimal);
    }
    if frac.len() > DECIMALS as usize {
        return Err(FixedError::TooManyDecimals);
    }
    let mut value: i64 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(FixedError::TooLarge)?;
    }
    let value = value
        .checked_mul(10i64.pow(DECIMALS - frac.len() as u32))
        .ok_or(FixedError::TooLarge)?;
    if value == 0 {
        return Err(FixedError::NotPositive);
    }
    Ok(value)
}

/// The decimal of a fixed-point value, without trailing zeros.
pub fn to_decimal(value: i64) -> Decimal {
    Decimal::new(value, DECIMALS).normalize()
}

/// The decimal of a summed volume.
pub fn volume_to_decimal(value: u64) -> Decimal {
    Decimal::from_i128_with_scale(i128::from(value), DECIMALS).normalize()
}

/// The fixed-point value of a decimal, if it has at most [`DECIMALS`] decimals and fits.
pub fn from_decimal(value: Decimal) -> Option<i64> {
    let scaled = value.checked_mul(Decimal::from(ONE))?;
    if !scaled.fract().is_zero() {
        return None;
    }
    i64::try_from(scaled).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_exactly() {
        let table: &[(&str, Result<i64, FixedError>)] = &[
            ("189.25", Ok(18_925_000_000)),
            ("1", Ok(ONE)),
            ("0.00000001", Ok(1)),
            ("007.5", Ok(750_000_000)),
            ("92233720368.54775807", Ok(i64::MAX)),
            ("92233720368.54775808", Err(FixedError::TooLarge)),
            ("1e5", Err(FixedError::NotDecimal)),
            ("-1", Err(FixedError::NotDecimal)),
            ("+1", Err(FixedError::NotDecimal)),
            (".5", Err(FixedError::NotDecimal)),
            ("5.", Err(FixedError::NotDecimal)),
            ("", Err(FixedError::NotDecimal)),
            ("1.2.3", Err(FixedError::NotDecimal)),
            (" 1", Err(FixedError::NotDecimal)),
            ("0.000000001", Err(FixedError::TooManyDecimals)),
            ("0.00", Err(FixedError::NotPositive)),
        ];
        for (text, expected) in table {
            assert_eq!(parse_positive(text), *expected, "{text:?}");
        }
        assert_eq!(to_decimal(18_925_000_000).to_string(), "189.25");
        assert_eq!(
            volume_to_decimal(u64::MAX).to_string(),
            "184467440737.09551615"
        );
        assert_eq!(from_decimal(Decimal::new(18925, 2)), Some(18_925_000_000));
        assert_eq!(from_decimal(Decimal::new(1, 9)), None);
    }
}
