//! Money in rupees, exact to the paisa.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::decimal::{at_scale, parse_fixed, round_at_scale};
use crate::error::kind;
use crate::{DomainError, Result, RoundingMode};

/// An INR amount: exact, `>= 0`, held at exactly 2 decimal places (paise).
///
/// Always stored at scale 2 so `as_decimal` and `Display` agree (`"1000.50"`) whatever the
/// input looked like. Construction accepts more written places only when they are zeros
/// (`"1.500"`), because that loses nothing; anything finer than a paisa must go through
/// [`Amount::round_to_paise`] so the rounding decision is visible at the call site.
/// Serialises as a JSON string: a JSON number would pass through `f64` in many clients.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Amount(Decimal);

const PLACES: u32 = 2;

impl Amount {
    pub fn parse(s: &str) -> Result<Self> {
        parse_fixed(kind::AMOUNT, s, PLACES, "rupees and paise").map(Amount)
    }

    /// Rejects negatives and values with a non-zero digit beyond the paisa.
    pub fn new(d: Decimal) -> Result<Self> {
        let err = |reason: &str| DomainError::invalid(kind::AMOUNT, &d.to_string(), reason);
        if d.is_sign_negative() && !d.is_zero() {
            return Err(err("must not be negative"));
        }
        if d.normalize().scale() > PLACES {
            return Err(err(
                "has more than 2 decimal places (use Amount::round_to_paise)",
            ));
        }
        at_scale(d, PLACES)
            .map(Amount)
            .ok_or_else(|| err("is too large to represent exactly"))
    }

    /// ₹0.00.
    pub fn zero() -> Self {
        Amount(Decimal::new(0, PLACES))
    }

    /// Exactly `paise / 100` rupees. Cannot fail: a `u64` of paise always fits.
    pub fn from_paise(paise: u64) -> Self {
        Amount(Decimal::from_i128_with_scale(i128::from(paise), PLACES))
    }

    /// The amount in paise (payment gateways speak integers).
    pub fn to_paise(&self) -> u128 {
        crate::decimal::mantissa_u128(self.0)
    }

    /// The value, always at scale 2.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// Rounds a computed value (fees, NAV × units) to the paisa. Negative input is an error
    /// rather than being clamped: a negative amount is always a bug upstream.
    pub fn round_to_paise(d: Decimal, mode: RoundingMode) -> Result<Self> {
        let err = |reason: &str| DomainError::invalid(kind::AMOUNT, &d.to_string(), reason);
        if d.is_sign_negative() && !d.is_zero() {
            return Err(err("must not be negative"));
        }
        round_at_scale(d, PLACES, mode)
            .map(Amount)
            .ok_or_else(|| err("is too large to represent exactly"))
    }

    /// Exact sum; `None` on overflow of the decimal range.
    pub fn checked_add(self, o: Amount) -> Option<Amount> {
        self.0
            .checked_add(o.0)
            .and_then(|d| at_scale(d, PLACES))
            .map(Amount)
    }

    /// Exact difference; `None` when it would be negative.
    pub fn checked_sub(self, o: Amount) -> Option<Amount> {
        if o.0 > self.0 {
            return None;
        }
        self.0
            .checked_sub(o.0)
            .and_then(|d| at_scale(d, PLACES))
            .map(Amount)
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

parse_via_str!(Amount);

impl TryFrom<Decimal> for Amount {
    type Error = DomainError;
    fn try_from(d: Decimal) -> Result<Self> {
        Self::new(d)
    }
}

impl From<Amount> for Decimal {
    fn from(a: Amount) -> Decimal {
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// Display always shows two places, whatever the input scale.
    #[test]
    fn display_has_two_places() {
        assert_eq!(Amount::parse("1000.5").unwrap().to_string(), "1000.50");
        assert_eq!(Amount::parse("1000").unwrap().to_string(), "1000.00");
        assert_eq!(Amount::parse("1.500").unwrap().to_string(), "1.50");
        assert_eq!(Amount::parse("0").unwrap().to_string(), "0.00");
        assert_eq!(Amount::zero().to_string(), "0.00");
        assert_eq!(Amount::new(dec("12")).unwrap().as_decimal().scale(), 2);
    }

    /// Sub-paisa, negative, malformed and oversized inputs are rejected with reasons.
    #[test]
    fn rejections() {
        for (bad, needle) in [
            ("1.001", "3 decimal places"),
            ("-1", "negative"),
            ("-0.01", "negative"),
            ("", "empty"),
            ("1,000", "character 2"),
            ("1e3", "character 2"),
            ("₹100", "character 1"),
            ("99999999999999999999999999999", "too large"),
        ] {
            let e = Amount::parse(bad).unwrap_err();
            assert_eq!(e.kind(), kind::AMOUNT);
            assert!(e.reason().contains(needle), "{bad:?}: {e}");
        }
        assert!(Amount::new(dec("-0.01")).is_err());
        assert!(Amount::new(dec("0.001")).is_err());
        assert!(Amount::new(Decimal::MAX).is_err());
    }

    /// Rounding to paise follows the requested mode at the half-paisa tie.
    #[test]
    fn round_to_paise_modes() {
        let r = |s: &str, m| Amount::round_to_paise(dec(s), m).unwrap().to_string();
        assert_eq!(r("10.125", RoundingMode::Truncate), "10.12");
        assert_eq!(r("10.125", RoundingMode::HalfUp), "10.13");
        assert_eq!(r("10.125", RoundingMode::HalfEven), "10.12");
        assert_eq!(r("10.135", RoundingMode::HalfEven), "10.14");
        assert_eq!(r("10.1299999", RoundingMode::Truncate), "10.12");
        assert_eq!(r("7", RoundingMode::HalfUp), "7.00");
        assert!(Amount::round_to_paise(dec("-0.001"), RoundingMode::HalfUp).is_err());
    }

    /// Subtraction refuses to go negative; addition reports overflow instead of panicking.
    #[test]
    fn checked_arithmetic() {
        let a = Amount::parse("100.25").unwrap();
        let b = Amount::parse("0.75").unwrap();
        assert_eq!(a.checked_add(b).unwrap().to_string(), "101.00");
        assert_eq!(a.checked_sub(b).unwrap().to_string(), "99.50");
        assert!(b.checked_sub(a).is_none());
        assert!(a.checked_sub(a).unwrap().is_zero());
        assert_eq!(a.checked_sub(a).unwrap().to_string(), "0.00");
        let big = Amount::new(dec("792281625142643375935439503.35")).unwrap();
        assert!(big.checked_add(big).is_none());
    }

    /// Paise conversions are exact inverses.
    #[test]
    fn paise_conversions() {
        assert_eq!(Amount::from_paise(100050).to_string(), "1000.50");
        assert_eq!(Amount::parse("1000.5").unwrap().to_paise(), 100050);
        assert_eq!(
            Amount::from_paise(u64::MAX).to_paise(),
            u128::from(u64::MAX)
        );
    }

    /// JSON form is a string, never a number, and numbers are refused on input.
    #[test]
    fn serde_string_only() {
        let a = Amount::parse("1000.5").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"1000.50\"");
        assert_eq!(serde_json::from_str::<Amount>("\"1000.50\"").unwrap(), a);
        assert!(serde_json::from_str::<Amount>("1000.5").is_err());
        assert!(serde_json::from_str::<Amount>("\"-5\"").is_err());
    }
}
