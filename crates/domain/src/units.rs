//! Mutual-fund units, exact to a thousandth.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::decimal::{at_scale, div_round, mantissa_u128, parse_fixed, round_at_scale};
use crate::error::kind;
use crate::{Amount, DomainError, Nav, Result, RoundingMode};

/// A holding or allotment of units: exact, `>= 0`, held at exactly 3 decimal places, the
/// precision registrars (CAMS, KFintech) allot and report in.
///
/// Like [`Amount`], written zeros beyond the third place are accepted (`"1.5000"`) and any
/// significant digit there is rejected by `parse`/`new`; a computed quotient goes through
/// [`Units::from_decimal`] (or [`Units::for_amount`]) with an explicit [`RoundingMode`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Units(Decimal);

const PLACES: u32 = 3;

impl Units {
    pub fn parse(s: &str) -> Result<Self> {
        parse_fixed(kind::UNITS, s, PLACES, "units are allotted to 3 places").map(Units)
    }

    /// Rejects negatives and values with a non-zero digit beyond the third place.
    pub fn new(d: Decimal) -> Result<Self> {
        let err = |reason: &str| DomainError::invalid(kind::UNITS, &d.to_string(), reason);
        if d.is_sign_negative() && !d.is_zero() {
            return Err(err("must not be negative"));
        }
        if d.normalize().scale() > PLACES {
            return Err(err(
                "has more than 3 decimal places (use Units::from_decimal)",
            ));
        }
        at_scale(d, PLACES)
            .map(Units)
            .ok_or_else(|| err("is too large to represent exactly"))
    }

    /// Brings any non-negative decimal to 3 places by `mode` (`Truncate` for allotments).
    pub fn from_decimal(d: Decimal, mode: RoundingMode) -> Result<Self> {
        let err = |reason: &str| DomainError::invalid(kind::UNITS, &d.to_string(), reason);
        if d.is_sign_negative() && !d.is_zero() {
            return Err(err("must not be negative"));
        }
        round_at_scale(d, PLACES, mode)
            .map(Units)
            .ok_or_else(|| err("is too large to represent exactly"))
    }

    /// The units an `amount` buys at `nav`, rounded by `mode`, computed exactly.
    ///
    /// Dividing the `Decimal`s directly was rejected: the quotient is rounded to 28 significant
    /// digits first, so a result that lies just below a thousandth can round up onto it and then
    /// truncate one thousandth too high. Here the division is one exact integer division:
    /// `milli-units = paise × 10^(nav scale + 1) / nav mantissa`.
    pub fn for_amount(amount: Amount, nav: Nav, mode: RoundingMode) -> Result<Self> {
        let n = nav.as_decimal();
        let overflow = || {
            DomainError::invalid(
                kind::UNITS,
                &format!("{amount} / {nav}"),
                "is too large to compute exactly",
            )
        };
        let num = amount
            .to_paise()
            .checked_mul(10u128.pow(n.scale() + 1))
            .ok_or_else(overflow)?;
        // `Nav` guarantees a positive mantissa, so the divisor is never zero.
        let milli = div_round(num, mantissa_u128(n), mode);
        let milli = i128::try_from(milli).map_err(|_| overflow())?;
        Decimal::try_from_i128_with_scale(milli, PLACES)
            .map(Units)
            .map_err(|_| overflow())
    }

    /// What these units are worth at `nav`, rounded to the paisa by `mode`, computed exactly
    /// (`paise = milli-units × nav mantissa / 10^(nav scale + 1)`).
    pub fn value_at(&self, nav: Nav, mode: RoundingMode) -> Result<Amount> {
        let n = nav.as_decimal();
        let overflow = || {
            DomainError::invalid(
                kind::AMOUNT,
                &format!("{self} × {nav}"),
                "is too large to compute exactly",
            )
        };
        let num = mantissa_u128(self.0)
            .checked_mul(mantissa_u128(n))
            .ok_or_else(overflow)?;
        let paise = div_round(num, 10u128.pow(n.scale() + 1), mode);
        let paise = i128::try_from(paise).map_err(|_| overflow())?;
        let d = Decimal::try_from_i128_with_scale(paise, 2).map_err(|_| overflow())?;
        Amount::new(d)
    }

    /// 0.000 units.
    pub fn zero() -> Self {
        Units(Decimal::new(0, PLACES))
    }

    /// The value, always at scale 3.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Exact sum; `None` on overflow of the decimal range.
    pub fn checked_add(self, o: Units) -> Option<Units> {
        self.0
            .checked_add(o.0)
            .and_then(|d| at_scale(d, PLACES))
            .map(Units)
    }

    /// Exact difference; `None` when it would be negative (redeeming more than is held).
    pub fn checked_sub(self, o: Units) -> Option<Units> {
        if o.0 > self.0 {
            return None;
        }
        self.0
            .checked_sub(o.0)
            .and_then(|d| at_scale(d, PLACES))
            .map(Units)
    }
}

impl fmt::Display for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

parse_via_str!(Units);

impl TryFrom<Decimal> for Units {
    type Error = DomainError;
    fn try_from(d: Decimal) -> Result<Self> {
        Self::new(d)
    }
}

impl From<Units> for Decimal {
    fn from(u: Units) -> Decimal {
        u.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// Display always shows exactly three places.
    #[test]
    fn display_has_three_places() {
        assert_eq!(Units::parse("12.3").unwrap().to_string(), "12.300");
        assert_eq!(Units::parse("12").unwrap().to_string(), "12.000");
        assert_eq!(Units::parse("12.3000").unwrap().to_string(), "12.300");
        assert_eq!(Units::zero().to_string(), "0.000");
    }

    /// More than three significant places, negatives and junk are rejected.
    #[test]
    fn rejections() {
        for (bad, needle) in [
            ("1.2345", "4 decimal places"),
            ("-1", "negative"),
            ("", "empty"),
            ("1.2.3", "decimal point"),
        ] {
            let e = Units::parse(bad).unwrap_err();
            assert_eq!(e.kind(), kind::UNITS);
            assert!(e.reason().contains(needle), "{bad:?}: {e}");
        }
        assert!(Units::new(dec("1.2345")).is_err());
        assert!(Units::from_decimal(dec("-0.5"), RoundingMode::Truncate).is_err());
    }

    /// `from_decimal` applies each rounding mode at the third place.
    #[test]
    fn from_decimal_modes() {
        let f = |s: &str, m| Units::from_decimal(dec(s), m).unwrap().to_string();
        assert_eq!(f("9.6618357487", RoundingMode::Truncate), "9.661");
        assert_eq!(f("9.6618357487", RoundingMode::HalfUp), "9.662");
        assert_eq!(f("1.0005", RoundingMode::HalfEven), "1.000");
        assert_eq!(f("1.0015", RoundingMode::HalfEven), "1.002");
        assert_eq!(f("1.0005", RoundingMode::HalfUp), "1.001");
        assert_eq!(f("4", RoundingMode::Truncate), "4.000");
    }

    /// Allotment at a real AMFI NAV truncates to the thousandth, and values round to paise.
    #[test]
    fn allotment_and_valuation() {
        let nav = Nav::parse("103.5311").unwrap();
        let amount = Amount::parse("1000").unwrap();
        // 1000 / 103.5311 = 9.65893...
        let u = Units::for_amount(amount, nav, RoundingMode::Truncate).unwrap();
        assert_eq!(u.to_string(), "9.658");
        assert_eq!(
            Units::for_amount(amount, nav, RoundingMode::HalfUp)
                .unwrap()
                .to_string(),
            "9.659"
        );
        // 9.658 × 103.5311 = 999.9033638
        assert_eq!(
            u.value_at(nav, RoundingMode::HalfUp).unwrap().to_string(),
            "999.90"
        );
        let exact = Units::for_amount(
            Amount::parse("500").unwrap(),
            Nav::parse("12.5").unwrap(),
            RoundingMode::Truncate,
        );
        assert_eq!(exact.unwrap().to_string(), "40.000");
    }

    /// Redeeming more than held is refused; sums are exact.
    #[test]
    fn checked_arithmetic() {
        let a = Units::parse("10.5").unwrap();
        let b = Units::parse("0.001").unwrap();
        assert_eq!(a.checked_add(b).unwrap().to_string(), "10.501");
        assert_eq!(a.checked_sub(b).unwrap().to_string(), "10.499");
        assert!(b.checked_sub(a).is_none());
    }

    /// JSON is a 3-place string.
    #[test]
    fn serde_string() {
        let u = Units::parse("12.3").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"12.300\"");
        assert_eq!(serde_json::from_str::<Units>("\"12.300\"").unwrap(), u);
        assert!(serde_json::from_str::<Units>("12.3").is_err());
    }
}
