//! ISIN (ISO 6166) with its check digit verified.

use serde::{Deserialize, Serialize};

use crate::error::kind;
use crate::{DomainError, Result};

/// An International Securities Identification Number, e.g. `INF209KA12Z1`.
///
/// Twelve characters: a two-letter country prefix, nine uppercase alphanumerics and a decimal
/// check digit, which is verified. Surrounding whitespace is trimmed (AMFI pads its fields);
/// lowercase is rejected, not folded, so a mangled feed is noticed. The country prefix is not
/// checked against ISO 3166: mutual-fund ISINs are all `IN`, and keeping a country table
/// current would buy nothing the check digit does not already catch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Isin(String);

impl Isin {
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let err = |reason: String| DomainError::invalid(kind::ISIN, s, reason);
        if t.is_empty() {
            return Err(err("is empty".into()));
        }
        let n = t.chars().count();
        if n != 12 {
            return Err(err(format!("must be 12 characters, got {n}")));
        }
        for (i, c) in t.chars().enumerate() {
            let ok = match i {
                0 | 1 => c.is_ascii_uppercase(),
                11 => c.is_ascii_digit(),
                _ => c.is_ascii_uppercase() || c.is_ascii_digit(),
            };
            if !ok {
                let want = match i {
                    0 | 1 => "the country code must be two uppercase letters",
                    11 => "the check digit must be a digit",
                    _ => "characters 3 to 11 must be uppercase letters or digits",
                };
                return Err(err(format!(
                    "character {} ({c:?}) is invalid: {want}",
                    i + 1
                )));
            }
        }
        // All 12 chars are ASCII now, so bytes and chars coincide.
        let b = t.as_bytes();
        let expected = check_digit(&b[..11]);
        let got = b[11] - b'0';
        if got != expected {
            return Err(err(format!(
                "check digit is {got} but the first 11 characters require {expected}"
            )));
        }
        Ok(Isin(t.to_owned()))
    }

    /// The ISO 3166 alpha-2 prefix (`IN` for Indian mutual funds).
    pub fn country(&self) -> &str {
        &self.0[..2]
    }
}
string_newtype!(Isin);

/// ISIN check digit of 11 validated characters (uppercase letters / digits): letters expand to
/// 10..=35, then Luhn over the resulting digit string with the check digit still to come, so
/// the rightmost payload digit is the first one doubled.
fn check_digit(payload: &[u8]) -> u8 {
    // Letters expand to two digits, so walk the expansion from the right without allocating.
    let mut sum = 0u32;
    let mut double = true;
    for &c in payload.iter().rev() {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        let digits: &[u32] = if v >= 10 { &[v % 10, v / 10] } else { &[v] };
        for &d in digits {
            let x = if double { d * 2 } else { d };
            sum += x / 10 + x % 10;
            double = !double;
        }
    }
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real ISINs from the AMFI NAV file parse and keep their text.
    #[test]
    fn real_amfi_isins_parse() {
        for s in [
            "INF209KA12Z1",
            "INF209K01YM2",
            "US0378331005",
            "INE002A01018",
        ] {
            assert_eq!(Isin::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Isin::parse(" INF209KA12Z1 ").unwrap().country(), "IN");
    }

    /// A wrong check digit is rejected and the error names the right one.
    #[test]
    fn wrong_check_digit_is_named() {
        let e = Isin::parse("INF209KA12Z2").unwrap_err();
        assert_eq!(e.kind(), kind::ISIN);
        assert!(e.reason().contains("require 1"), "{e}");
        assert!(
            e.to_string().contains("INF209KA12Z2"),
            "non-PII values are echoed: {e}"
        );
    }

    /// Structural errors (length, case, country, check position) get specific reasons.
    #[test]
    fn structural_rejections() {
        for (bad, needle) in [
            ("", "empty"),
            ("-", "12 characters"),
            ("INF209KA12Z", "12 characters"),
            ("INF209KA12Z10", "12 characters"),
            ("inf209KA12Z1", "country code"),
            ("1NF209KA12Z1", "country code"),
            ("INF209ka12Z1", "characters 3 to 11"),
            ("INF209KA12ZZ", "check digit must be a digit"),
            ("INF209KA12Zé", "check digit must be a digit"),
            ("INF209KA१2Z1", "characters 3 to 11"),
        ] {
            let e = Isin::parse(bad).unwrap_err();
            assert!(e.reason().contains(needle), "{bad:?}: {e}");
        }
    }
}
