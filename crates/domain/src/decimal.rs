//! Shared machinery of the exact-decimal types: the strict numeral grammar, rounding modes,
//! fixed-scale conversion and exact integer division.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::{DomainError, Result};

/// How a value is brought to fewer decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Toward zero: the industry default for allotted units (an investor is never credited a
    /// fraction of a unit that was not paid for).
    #[default]
    Truncate,
    /// Nearest, ties away from zero (commercial rounding, e.g. stamp duty to the paisa).
    HalfUp,
    /// Nearest, ties to even (banker's rounding; unbiased over many values).
    HalfEven,
}

impl RoundingMode {
    pub(crate) fn strategy(self) -> RoundingStrategy {
        match self {
            RoundingMode::Truncate => RoundingStrategy::ToZero,
            RoundingMode::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            RoundingMode::HalfEven => RoundingStrategy::MidpointNearestEven,
        }
    }
}

/// A lexically valid non-negative numeral: `digits[.digits]`, split at the point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Numeral<'a> {
    pub(crate) int: &'a str,
    pub(crate) frac: &'a str,
}

/// Why a string is not a [`Numeral`]; each type words the message for its own rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LexError {
    Empty,
    /// A leading `-` in front of an otherwise valid numeral.
    Negative,
    Malformed(String),
}

/// Strict numeral grammar: ASCII digits, at most one `.` with digits on both sides.
///
/// `Decimal::from_str` is not used for validation because it is lenient where money must not
/// be: it accepts `1_000`, `+5` and `1e3`, and silently rounds digits beyond its precision.
/// A sign is recognised only to give negatives a better message than "unexpected '-'".
pub(crate) fn lex(s: &str) -> std::result::Result<Numeral<'_>, LexError> {
    match s.strip_prefix('-') {
        Some("") => Err(LexError::Malformed("has a sign but no digits".into())),
        Some(rest) => lex_unsigned(rest, 1).and(Err(LexError::Negative)),
        None => lex_unsigned(s, 0),
    }
}

/// `offset` is how many characters precede `s` in the caller's input, for error positions.
fn lex_unsigned(s: &str, offset: usize) -> std::result::Result<Numeral<'_>, LexError> {
    if s.is_empty() {
        return Err(LexError::Empty);
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() {
        return Err(LexError::Malformed(
            "needs a digit before the decimal point".into(),
        ));
    }
    if let Some((pos, c)) = s
        .chars()
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
    {
        return Err(LexError::Malformed(format!(
            "character {} ({c:?}) is not allowed: only digits and one decimal point",
            pos + 1 + offset
        )));
    }
    match frac {
        Some("") => Err(LexError::Malformed(
            "needs a digit after the decimal point".into(),
        )),
        Some(f) if f.contains('.') => Err(LexError::Malformed(
            "has more than one decimal point".into(),
        )),
        Some(f) => Ok(Numeral { int, frac: f }),
        None => Ok(Numeral { int, frac: "" }),
    }
}

impl Numeral<'_> {
    /// The exact decimal with the numeral's own scale (`"1.50"` has scale 2); `None` when it
    /// does not fit in a `Decimal` (28 fractional digits, 96-bit mantissa).
    pub(crate) fn to_decimal(self) -> Option<Decimal> {
        let int = self.int.trim_start_matches('0');
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(self.frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        let scale = u32::try_from(self.frac.len()).ok()?;
        Decimal::try_from_i128_with_scale(mantissa, scale).ok()
    }

    /// Drops trailing fractional zeros: they carry no value, and dropping them lets `"1.000"`
    /// be a valid 2-place amount while `"1.001"` is not.
    pub(crate) fn without_trailing_zeros(self) -> Self {
        Numeral {
            int: self.int,
            frac: self.frac.trim_end_matches('0'),
        }
    }
}

/// `d` at exactly `scale` places, or `None` when it has more significant places than that or
/// the mantissa would overflow once padded (rust_decimal's `rescale` silently settles for a
/// smaller scale in that case, so the result is checked).
pub(crate) fn at_scale(d: Decimal, scale: u32) -> Option<Decimal> {
    if d.normalize().scale() > scale {
        return None;
    }
    let mut r = if d.is_zero() { Decimal::ZERO } else { d };
    r.rescale(scale);
    (r.scale() == scale).then_some(r)
}

/// `d` rounded to `scale` places by `mode` and padded to exactly that scale.
pub(crate) fn round_at_scale(d: Decimal, scale: u32, mode: RoundingMode) -> Option<Decimal> {
    at_scale(d.round_dp_with_strategy(scale, mode.strategy()), scale)
}

/// `num / den` rounded by `mode`, exactly (no intermediate rounding). `den` must be > 0.
pub(crate) fn div_round(num: u128, den: u128, mode: RoundingMode) -> u128 {
    let q = num / den;
    let r = num % den;
    // `r` vs `den - r` instead of `2 * r` vs `den`: the doubled form can overflow.
    let round_up = match mode {
        RoundingMode::Truncate => false,
        RoundingMode::HalfUp => r >= den - r && r != 0,
        RoundingMode::HalfEven => r > den - r || (r == den - r && q % 2 == 1),
    };
    q + u128::from(round_up)
}

/// The non-negative mantissa of a non-negative decimal.
pub(crate) fn mantissa_u128(d: Decimal) -> u128 {
    u128::try_from(d.mantissa()).unwrap_or(0)
}

/// Builds the standard "not a plain decimal" / "empty" errors for a lexing failure; the caller
/// supplies the wording for negatives because it differs (`>= 0` vs `> 0`).
pub(crate) fn lex_error(kind: &'static str, s: &str, e: LexError, negative: &str) -> DomainError {
    match e {
        LexError::Empty => DomainError::invalid(kind, s, "is empty"),
        LexError::Negative => DomainError::invalid(kind, s, negative),
        LexError::Malformed(why) => {
            DomainError::invalid(kind, s, format!("is not a plain decimal number: {why}"))
        }
    }
}

/// Parses `s` as a non-negative decimal with at most `places` significant fractional digits,
/// returned at exactly `places` scale. Used by the fixed-scale types (amount, units).
pub(crate) fn parse_fixed(kind: &'static str, s: &str, places: u32, unit: &str) -> Result<Decimal> {
    let n = lex(s)
        .map_err(|e| lex_error(kind, s, e, "must not be negative"))?
        .without_trailing_zeros();
    if n.frac.len() > places as usize {
        return Err(DomainError::invalid(
            kind,
            s,
            format!(
                "has {} decimal places; at most {places} allowed ({unit})",
                n.frac.len()
            ),
        ));
    }
    n.to_decimal()
        .and_then(|d| at_scale(d, places))
        .ok_or_else(|| DomainError::invalid(kind, s, "is too large to represent exactly"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grammar accepts plain numerals and rejects every lenient form Decimal would take.
    #[test]
    fn lexer_is_strict() {
        let n = lex("0103.50").unwrap();
        assert_eq!((n.int, n.frac), ("0103", "50"));
        assert!(matches!(lex(""), Err(LexError::Empty)));
        assert!(matches!(lex("-1.5"), Err(LexError::Negative)));
        for bad in [
            "1_000", "+5", "1e3", ".5", "5.", "1.2.3", "N.A.", " 1", "1,000", "--1", "-",
        ] {
            assert!(matches!(lex(bad), Err(LexError::Malformed(_))), "{bad:?}");
        }
    }

    /// Numerals convert exactly, keep their scale, and report overflow instead of rounding.
    #[test]
    fn numeral_to_decimal_is_exact() {
        let d = lex("000123.4500").unwrap().to_decimal().unwrap();
        assert_eq!(d.to_string(), "123.4500");
        assert!(
            lex("1.00000000000000000000000000001")
                .unwrap()
                .to_decimal()
                .is_none()
        );
        assert!(
            lex("99999999999999999999999999999999")
                .unwrap()
                .to_decimal()
                .is_none()
        );
    }

    /// Integer rounding division handles ties per mode, including the overflow-prone edge.
    #[test]
    fn div_round_modes() {
        use RoundingMode::*;
        assert_eq!(div_round(25, 10, Truncate), 2);
        assert_eq!(div_round(25, 10, HalfUp), 3);
        assert_eq!(div_round(25, 10, HalfEven), 2);
        assert_eq!(div_round(35, 10, HalfEven), 4);
        assert_eq!(div_round(24, 10, HalfUp), 2);
        assert_eq!(div_round(26, 10, HalfEven), 3);
        assert_eq!(div_round(20, 10, HalfUp), 2);
        assert_eq!(div_round(u128::MAX, u128::MAX - 1, HalfUp), 1);
    }

    /// `at_scale` pads, refuses to drop significant digits, and normalises negative zero.
    #[test]
    fn at_scale_rules() {
        assert_eq!(
            at_scale(Decimal::new(15, 1), 2).unwrap().to_string(),
            "1.50"
        );
        assert_eq!(
            at_scale(Decimal::new(1500, 3), 2).unwrap().to_string(),
            "1.50"
        );
        assert!(at_scale(Decimal::new(1501, 3), 2).is_none());
        assert_eq!(at_scale(-Decimal::ZERO, 2).unwrap().to_string(), "0.00");
        assert!(at_scale(Decimal::MAX, 2).is_none());
    }
}
