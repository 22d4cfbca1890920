//! PAN (Permanent Account Number), handled as PII.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::kind;
use crate::{DomainError, Result};

/// Who holds a PAN, encoded in its 4th character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanHolderType {
    Person,
    Company,
    Huf,
    Firm,
    Aop,
    Trust,
    Boi,
    LocalAuthority,
    ArtificialJuridical,
    Government,
}

impl PanHolderType {
    /// The type for a PAN's 4th character, if it is one the Income Tax Department issues.
    pub fn from_code(c: char) -> Option<Self> {
        Some(match c {
            'P' => Self::Person,
            'C' => Self::Company,
            'H' => Self::Huf,
            'F' => Self::Firm,
            'A' => Self::Aop,
            'T' => Self::Trust,
            'B' => Self::Boi,
            'L' => Self::LocalAuthority,
            'J' => Self::ArtificialJuridical,
            'G' => Self::Government,
            _ => return None,
        })
    }

    /// The 4th-character code (`'P'` for a person).
    pub fn code(self) -> char {
        match self {
            Self::Person => 'P',
            Self::Company => 'C',
            Self::Huf => 'H',
            Self::Firm => 'F',
            Self::Aop => 'A',
            Self::Trust => 'T',
            Self::Boi => 'B',
            Self::LocalAuthority => 'L',
            Self::ArtificialJuridical => 'J',
            Self::Government => 'G',
        }
    }

    /// Human label, as the Income Tax Department words it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Person => "Individual",
            Self::Company => "Company",
            Self::Huf => "Hindu Undivided Family",
            Self::Firm => "Firm",
            Self::Aop => "Association of Persons",
            Self::Trust => "Trust",
            Self::Boi => "Body of Individuals",
            Self::LocalAuthority => "Local Authority",
            Self::ArtificialJuridical => "Artificial Juridical Person",
            Self::Government => "Government",
        }
    }
}

impl fmt::Display for PanHolderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// A structurally valid PAN: `[A-Z]{5}[0-9]{4}[A-Z]` whose 4th character is a known holder type.
///
/// A PAN identifies a taxpayer, so the type is built to keep it out of logs: `Debug` and
/// `Display` print [`Pan::masked`], errors never contain the input (not even the offending
/// character), and the raw value needs an explicit [`Pan::expose`]. Serde does serialize the
/// raw value, because the stores and events that carry a PAN need it back intact; encrypting it
/// at rest is the store's job, not this type's. Input is not trimmed or upper-cased: PANs come
/// from forms, and normalising is the form handler's decision, not a silent one here.
///
/// The 10th character is a check character, but the Income Tax Department has never published
/// its algorithm, so it is not (and cannot honestly be) verified.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pan(String);

impl Pan {
    pub fn parse(s: &str) -> Result<Self> {
        let err = |reason: String| DomainError::redacted(kind::PAN, reason);
        if s.is_empty() {
            return Err(err("is empty".into()));
        }
        let n = s.chars().count();
        if n != 10 {
            return Err(err(format!("must be 10 characters, got {n}")));
        }
        for (i, c) in s.chars().enumerate() {
            let (ok, want) = match i {
                0..=4 | 9 => (c.is_ascii_uppercase(), "an uppercase letter A-Z"),
                _ => (c.is_ascii_digit(), "a digit 0-9"),
            };
            if !ok {
                return Err(err(format!("character {} must be {want}", i + 1)));
            }
        }
        // Checked after the shape so a lowercase 4th char gets the more useful "must be uppercase".
        let fourth = s.as_bytes()[3] as char;
        if PanHolderType::from_code(fourth).is_none() {
            return Err(err(
                "character 4 is not a holder type (expected one of P C H F A T B L J G)".into(),
            ));
        }
        Ok(Pan(s.to_owned()))
    }

    /// Who holds this PAN.
    pub fn holder_type(&self) -> PanHolderType {
        // Invariant from `parse`; the fallback is unreachable but avoids a panic path.
        PanHolderType::from_code(self.0.as_bytes()[3] as char).unwrap_or(PanHolderType::Person)
    }

    /// `XXXXXX234F`: only the last four characters visible, the convention on Indian
    /// statements, enough for a person to recognise their own PAN.
    pub fn masked(&self) -> String {
        format!("XXXXXX{}", &self.0[6..])
    }

    /// The raw PAN. Named to stand out in review: every call site is a place PII leaves the type.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pan").field(&self.masked()).finish()
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.masked())
    }
}

impl std::str::FromStr for Pan {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Pan {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for Pan {
    type Error = DomainError;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The raw value (what serde writes). Deliberately not `Display`-based, which masks.
impl From<Pan> for String {
    fn from(p: Pan) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid PAN parses, reports its holder type and exposes the raw value only on request.
    #[test]
    fn parses_and_reports_holder_type() {
        let p = Pan::parse("ABCPE1234F").unwrap();
        assert_eq!(p.holder_type(), PanHolderType::Person);
        assert_eq!(p.expose(), "ABCPE1234F");
        assert_eq!(
            Pan::parse("AAACR5055K").unwrap().holder_type(),
            PanHolderType::Company
        );
        assert_eq!(
            Pan::parse("AAAGG1234A").unwrap().holder_type(),
            PanHolderType::Government
        );
    }

    /// Every holder-type code maps back to itself.
    #[test]
    fn holder_codes_round_trip() {
        for c in "PCHFATBLJG".chars() {
            let t = PanHolderType::from_code(c).unwrap();
            assert_eq!(t.code(), c);
            let pan = Pan::parse(&format!("ABC{c}E1234F")).unwrap();
            assert_eq!(pan.holder_type(), t);
        }
        for c in "DEIKMNOQRSUVWXYZ".chars() {
            assert!(PanHolderType::from_code(c).is_none(), "{c}");
        }
    }

    /// Debug, Display and `{:?}` inside containers print only the masked form.
    #[test]
    fn debug_and_display_mask() {
        let p = Pan::parse("ABCPE1234F").unwrap();
        assert_eq!(p.masked(), "XXXXXX234F");
        assert_eq!(p.to_string(), "XXXXXX234F");
        assert_eq!(format!("{p:?}"), "Pan(\"XXXXXX234F\")");
        let nested = format!("{:?}", Some(vec![p.clone()]));
        assert!(!nested.contains("ABCPE"), "{nested}");
    }

    /// Serde writes and reads the raw PAN (stores need it back intact).
    #[test]
    fn serde_uses_raw_value() {
        let p = Pan::parse("ABCPE1234F").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"ABCPE1234F\"");
        assert_eq!(serde_json::from_str::<Pan>(&json).unwrap(), p);
    }

    /// Rejections give a precise reason and never echo the input, even partially.
    #[test]
    fn rejections_are_precise_and_redacted() {
        for (bad, needle) in [
            ("", "empty"),
            ("ABCPE1234", "10 characters"),
            ("ABCPE1234FG", "10 characters"),
            ("abcpe1234f", "character 1 must be an uppercase"),
            ("ABCPE12X4F", "character 8 must be a digit"),
            ("ABCPE12345", "character 10 must be an uppercase"),
            ("ABCXE1234F", "character 4 is not a holder type"),
            ("ABCpE1234F", "character 4 must be an uppercase"),
        ] {
            let e = Pan::parse(bad).unwrap_err();
            assert_eq!(e.kind(), kind::PAN);
            assert!(
                e.reason().contains(needle),
                "reason for a bad PAN: {}",
                e.reason()
            );
            assert!(matches!(e, DomainError::Redacted { .. }));
            for shown in [e.to_string(), format!("{e:?}")] {
                if bad.len() >= 4 {
                    assert!(
                        !shown.contains(&bad[..4]) && !shown.contains(&bad[bad.len() - 4..]),
                        "echoed: {shown}"
                    );
                }
            }
        }
    }

    /// Deserialising a bad PAN fails without the value in the serde error either.
    #[test]
    fn serde_error_is_redacted() {
        let e = serde_json::from_str::<Pan>("\"ABCXE9876Q\"")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("ABCXE") && !e.contains("9876"), "{e}");
    }
}
