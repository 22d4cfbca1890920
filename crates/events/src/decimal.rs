//! Exact decimals on the wire: `nivesh.common.Decimal { unscaled: long, scale: int }`.
//!
//! Why not Avro's `decimal` logical type: its scale is fixed per schema, but a NAV must keep
//! exactly the decimals its source gave (AMFI NAVs carry 0 to 8); the Rust implementation stores
//! it as big-endian two's-complement bytes without the scale, does not round-trip cleanly through
//! serde derive and can overflow precision silently; fastavro hands back Python `Decimal`s subject
//! to context precision. A scaled `long` is exact, cheap and portable, and i64 (9.2e18 unscaled)
//! covers every INR amount, NAV and unit count we carry at their scales.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Largest scale `rust_decimal` can represent.
const MAX_SCALE: i32 = 28;

/// An exact decimal as it travels: `unscaled * 10^-scale`, the scale carried with the value.
///
/// The serde name is the record's (`Decimal`): apache-avro's schema-aware deserializer checks a
/// struct's name against the record it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename = "Decimal")]
pub struct WireDecimal {
    pub unscaled: i64,
    pub scale: i32,
}

impl TryFrom<Decimal> for WireDecimal {
    type Error = Error;

    /// Keeps the decimal's own scale (`10.50` travels as `1050` scale 2, not `105` scale 1), so
    /// the receiver sees exactly the digits the sender had. Fails only when the 96-bit mantissa
    /// does not fit an i64.
    fn try_from(d: Decimal) -> Result<Self, Error> {
        let unscaled = i64::try_from(d.mantissa())
            .map_err(|_| Error::DecimalRange(format!("{d}: unscaled value exceeds 64 bits")))?;
        // rust_decimal scales are 0..=28, always representable as i32.
        Ok(WireDecimal {
            unscaled,
            scale: d.scale() as i32,
        })
    }
}

impl TryFrom<WireDecimal> for Decimal {
    type Error = Error;

    /// Exact or an error, never rounded. Negative scales (other producers may write `5E+2` as
    /// `5` scale -2) are multiplied out; scales above rust_decimal's 28 are accepted only when the
    /// extra digits are trailing zeros.
    fn try_from(w: WireDecimal) -> Result<Self, Error> {
        let out_of_range = || {
            Error::DecimalRange(format!(
                "{} scale {} has no exact rust_decimal form",
                w.unscaled, w.scale
            ))
        };
        let (mut unscaled, mut scale) = (i128::from(w.unscaled), w.scale);
        if scale < 0 {
            let factor = 10i128
                .checked_pow(scale.unsigned_abs())
                .ok_or_else(out_of_range)?;
            unscaled = unscaled.checked_mul(factor).ok_or_else(out_of_range)?;
            scale = 0;
        }
        if unscaled == 0 {
            // Zero has no digits to lose; clamp instead of stripping 2^31 "trailing zeros".
            scale = scale.min(MAX_SCALE);
        }
        while scale > MAX_SCALE && unscaled % 10 == 0 {
            unscaled /= 10;
            scale -= 1;
        }
        if scale > MAX_SCALE {
            return Err(out_of_range());
        }
        Decimal::try_from_i128_with_scale(unscaled, scale as u32).map_err(|_| out_of_range())
    }
}

/// `#[serde(with = "decimal::serde_decimal")]`: a `rust_decimal::Decimal` field written as a
/// `nivesh.common.Decimal` record.
pub(crate) mod serde_decimal {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        WireDecimal::try_from(*d)
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        Decimal::try_from(WireDecimal::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Decimal>` (`["null", "nivesh.common.Decimal"]`).
    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Decimal>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => {
                    s.serialize_some(&WireDecimal::try_from(*d).map_err(serde::ser::Error::custom)?)
                }
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Decimal>, D::Error> {
            Option::<WireDecimal>::deserialize(d)?
                .map(Decimal::try_from)
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    /// The scale the source gave survives the trip (trailing zeros included).
    #[test]
    fn keeps_the_source_scale() {
        let d = Decimal::from_str("10.5000").unwrap();
        let w = WireDecimal::try_from(d).unwrap();
        assert_eq!(
            w,
            WireDecimal {
                unscaled: 105_000,
                scale: 4
            }
        );
        assert_eq!(Decimal::try_from(w).unwrap().to_string(), "10.5000");
    }

    /// Negative scales are multiplied out exactly; an overflow is an error, not a wrap.
    #[test]
    fn negative_scale_is_multiplied_out() {
        let d = Decimal::try_from(WireDecimal {
            unscaled: -5,
            scale: -2,
        })
        .unwrap();
        assert_eq!(d, Decimal::from(-500));
        assert!(
            Decimal::try_from(WireDecimal {
                unscaled: i64::MAX,
                scale: -20
            })
            .is_err()
        );
        assert!(
            Decimal::try_from(WireDecimal {
                unscaled: 1,
                scale: i32::MIN
            })
            .is_err()
        );
    }

    /// Scales beyond 28 are accepted only when the surplus digits are zeros.
    #[test]
    fn oversized_scale_only_with_trailing_zeros() {
        let d = Decimal::try_from(WireDecimal {
            unscaled: 123_000,
            scale: 30,
        })
        .unwrap();
        assert_eq!(
            d,
            Decimal::from_str("0.000000000000000000000000123").unwrap()
        );
        assert_eq!(d.scale(), 28);
        assert!(
            Decimal::try_from(WireDecimal {
                unscaled: 123,
                scale: 30
            })
            .is_err()
        );
        assert!(
            Decimal::try_from(WireDecimal {
                unscaled: 0,
                scale: i32::MAX
            })
            .unwrap()
            .is_zero()
        );
    }
}
