//! Net asset value per unit, as published.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::decimal::{lex, lex_error};
use crate::error::kind;
use crate::{DomainError, Result};

/// A NAV: exact, `> 0`, at most 10 decimal places, keeping the scale it was published with.
///
/// AMFI publishes NAVs with 4 places, some AMCs with 3 or 5, and the published *text* is what
/// investors and regulators compare against, so `Nav::parse("103.9450").to_string()` is
/// `"103.9450"`, not `"103.945"`. Equality, ordering and hashing are by numeric value
/// (`103.945 == 103.9450`), because two feeds quoting the same price differently must not look
/// like a price change. Unlike [`crate::Amount`], places beyond 10 are rejected even when they
/// are zeros: the scale is part of the value we keep, and it is capped.
///
/// Surrounding whitespace is trimmed (AMFI pads fields); leading zeros are accepted and not
/// kept (`"0103.5"` displays as `"103.5"`), as they carry neither value nor precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nav(Decimal);

/// Most places any Indian AMC publishes, with room; also keeps NAV × units inside `Decimal`.
pub const NAV_MAX_PLACES: u32 = 10;

impl Nav {
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        // AMFI's marker for "no NAV today"; named so the ingestor's logs say what happened.
        if t.eq_ignore_ascii_case("N.A.") || t.eq_ignore_ascii_case("NA") {
            return Err(DomainError::invalid(
                kind::NAV,
                s,
                "is not available (the source published N.A.)",
            ));
        }
        let n = lex(t).map_err(|e| {
            lex_error(
                kind::NAV,
                s,
                e,
                "must be greater than zero, got a negative number",
            )
        })?;
        if n.frac.len() > NAV_MAX_PLACES as usize {
            return Err(DomainError::invalid(
                kind::NAV,
                s,
                format!(
                    "has {} decimal places; at most {NAV_MAX_PLACES} allowed",
                    n.frac.len()
                ),
            ));
        }
        let d = n.to_decimal().ok_or_else(|| {
            DomainError::invalid(kind::NAV, s, "is too large to represent exactly")
        })?;
        Self::new(d).map_err(|e| DomainError::invalid(kind::NAV, s, e.reason()))
    }

    /// Keeps `d`'s scale. Rejects `<= 0` and more than 10 places.
    pub fn new(d: Decimal) -> Result<Self> {
        let err = |reason: String| DomainError::invalid(kind::NAV, &d.to_string(), reason);
        if d.is_zero() {
            return Err(err("must be greater than zero".into()));
        }
        if d.is_sign_negative() {
            return Err(err(
                "must be greater than zero, got a negative number".into()
            ));
        }
        if d.scale() > NAV_MAX_PLACES {
            return Err(err(format!(
                "has {} decimal places; at most {NAV_MAX_PLACES} allowed",
                d.scale()
            )));
        }
        Ok(Nav(d))
    }

    /// The value with its source scale (`103.9450` keeps scale 4).
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// Decimal places as published.
    pub fn scale(&self) -> u32 {
        self.0.scale()
    }
}

impl fmt::Display for Nav {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

parse_via_str!(Nav);

impl TryFrom<Decimal> for Nav {
    type Error = DomainError;
    fn try_from(d: Decimal) -> Result<Self> {
        Self::new(d)
    }
}

impl From<Nav> for Decimal {
    fn from(n: Nav) -> Decimal {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Real AMFI values parse and print exactly as published.
    #[test]
    fn keeps_source_text() {
        for s in [
            "103.5311",
            "103.945",
            "1000",
            "12.34500000",
            "10.0000",
            "0.0001",
            "1.0000000001",
        ] {
            assert_eq!(Nav::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Nav::parse(" 103.5311 ").unwrap().to_string(), "103.5311");
        assert_eq!(
            Nav::new("2.50".parse().unwrap()).unwrap().to_string(),
            "2.50"
        );
    }

    /// Equality, ordering and hashing go by value, not by written scale.
    #[test]
    fn compares_by_value() {
        let a = Nav::parse("103.945").unwrap();
        let b = Nav::parse("103.9450").unwrap();
        assert_eq!(a, b);
        assert_eq!(HashSet::from([a, b]).len(), 1);
        assert!(Nav::parse("103.9449").unwrap() < a);
        assert_ne!(a.to_string(), b.to_string());
    }

    /// Zero, negatives, N.A., junk and over-precise values are rejected with reasons.
    #[test]
    fn rejections() {
        for (bad, needle) in [
            ("0", "greater than zero"),
            ("0.0000", "greater than zero"),
            ("-1", "negative"),
            ("N.A.", "not available"),
            ("n.a.", "not available"),
            ("", "empty"),
            ("abc", "character 1"),
            ("1.00000000000", "11 decimal places"),
            ("1.23.4", "more than one decimal point"),
        ] {
            let e = Nav::parse(bad).unwrap_err();
            assert_eq!(e.kind(), kind::NAV);
            assert!(e.reason().contains(needle), "{bad:?}: {e}");
            if !bad.is_empty() {
                assert!(
                    e.to_string().contains(bad),
                    "NAV errors echo the input: {e}"
                );
            }
        }
        assert!(Nav::new(Decimal::new(1, 11)).is_err());
        assert!(Nav::new(Decimal::ZERO).is_err());
    }

    /// JSON is a string that keeps the published scale.
    #[test]
    fn serde_keeps_scale() {
        let n = Nav::parse("103.9450").unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"103.9450\"");
        assert_eq!(
            serde_json::from_str::<Nav>(&json).unwrap().to_string(),
            "103.9450"
        );
        assert!(serde_json::from_str::<Nav>("103.945").is_err());
    }
}
