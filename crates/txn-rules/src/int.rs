//! Exact integer views of the domain decimals and rounding division on them.
//!
//! Money maths here is done on integers (paise, milli-units, NAV mantissas) rather than on
//! `Decimal` products: a `Decimal` multiplication that exceeds 28 significant digits rounds
//! silently, whereas a `u128` overflow is detected by `checked_*` and reported.
//! (`nivesh_domain` has the same `div_round` but keeps it crate-private.)

use nivesh_domain::{Amount, Decimal, Nav, RoundingMode, Units};

use crate::{Error, Result};

/// `num / den` rounded by `mode`, exactly. `den` must be > 0 (callers pass NAV mantissas and
/// powers of ten, both positive).
pub(crate) fn div_round(num: u128, den: u128, mode: RoundingMode) -> u128 {
    let q = num / den;
    let r = num % den;
    // Compare `r` with `den - r` rather than `2r` with `den`: doubling can overflow.
    let up = match mode {
        RoundingMode::Truncate => false,
        RoundingMode::HalfUp => r != 0 && r >= den - r,
        RoundingMode::HalfEven => r != 0 && (r > den - r || (r == den - r && q % 2 == 1)),
    };
    q + u128::from(up)
}

/// `num / den` rounded toward +infinity. `den` must be > 0.
pub(crate) fn div_ceil(num: u128, den: u128) -> u128 {
    num / den + u128::from(num % den != 0)
}

/// `10^n`, or an overflow error naming `what`.
pub(crate) fn pow10(n: u32, what: &'static str) -> Result<u128> {
    10u128.checked_pow(n).ok_or(Error::Overflow(what))
}

/// The non-negative mantissa of a decimal that the domain types guarantee is `>= 0`.
fn mantissa(d: Decimal) -> u128 {
    u128::try_from(d.mantissa()).unwrap_or(0)
}

/// Units as an integer count of thousandths (`Units` is always at scale 3).
pub(crate) fn milli(u: Units) -> u128 {
    mantissa(u.as_decimal())
}

/// A NAV as `(mantissa, scale)`: `nav = mantissa / 10^scale`, mantissa > 0.
pub(crate) fn nav_parts(n: Nav) -> (u128, u32) {
    let d = n.as_decimal();
    (mantissa(d), d.scale())
}

pub(crate) fn units_from_milli(m: u128) -> Result<Units> {
    let m = i128::try_from(m).map_err(|_| Error::Overflow("units"))?;
    let d = Decimal::try_from_i128_with_scale(m, 3).map_err(|_| Error::Overflow("units"))?;
    Ok(Units::new(d)?)
}

pub(crate) fn amount_from_paise(p: u128) -> Result<Amount> {
    let p = i128::try_from(p).map_err(|_| Error::Overflow("amount"))?;
    let d = Decimal::try_from_i128_with_scale(p, 2).map_err(|_| Error::Overflow("amount"))?;
    Ok(Amount::new(d)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounding division honours each mode at and around the tie, without overflowing.
    #[test]
    fn div_round_modes() {
        use RoundingMode::*;
        let cases = [
            (25, 10, Truncate, 2),
            (25, 10, HalfUp, 3),
            (25, 10, HalfEven, 2),
            (35, 10, HalfEven, 4),
            (24, 10, HalfUp, 2),
            (26, 10, HalfEven, 3),
            (20, 10, HalfUp, 2),
            (0, 7, HalfUp, 0),
            (u128::MAX, u128::MAX - 1, HalfUp, 1),
        ];
        for (n, d, m, want) in cases {
            assert_eq!(div_round(n, d, m), want, "{n}/{d} {m:?}");
        }
    }

    /// Ceiling division rounds any remainder up and leaves exact quotients alone.
    #[test]
    fn div_ceil_rounds_up() {
        assert_eq!(div_ceil(20, 10), 2);
        assert_eq!(div_ceil(21, 10), 3);
        assert_eq!(div_ceil(0, 10), 0);
        assert_eq!(div_ceil(u128::MAX, u128::MAX), 1);
    }

    /// The integer views round-trip the domain values exactly.
    #[test]
    fn integer_views_round_trip() {
        let u = Units::parse("12.345").unwrap();
        assert_eq!(milli(u), 12_345);
        assert_eq!(units_from_milli(12_345).unwrap(), u);
        assert_eq!(
            amount_from_paise(100_050).unwrap(),
            Amount::parse("1000.50").unwrap()
        );
        assert_eq!(nav_parts(Nav::parse("103.9450").unwrap()), (1_039_450, 4));
        assert!(matches!(
            units_from_milli(u128::MAX),
            Err(Error::Overflow("units"))
        ));
        assert!(pow10(39, "x").is_err());
        assert_eq!(pow10(3, "x").unwrap(), 1000);
    }
}
