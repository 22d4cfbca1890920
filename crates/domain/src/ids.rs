//! Opaque identifiers: scheme codes, investor ids, order ids, idempotency keys.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::kind;
use crate::{DomainError, Result};

/// Shared length + alphabet check; `what` describes the alphabet for the error message.
fn check_chars(
    kind: &'static str,
    s: &str,
    len: std::ops::RangeInclusive<usize>,
    allowed: impl Fn(u8) -> bool,
    what: &str,
) -> Result<()> {
    // Length is counted in chars for the message, but every accepted char is ASCII so a
    // non-ASCII input is rejected below anyway.
    let n = s.chars().count();
    if n == 0 {
        return Err(DomainError::invalid(kind, s, "is empty"));
    }
    if !len.contains(&n) {
        return Err(DomainError::invalid(
            kind,
            s,
            format!(
                "must be {} to {} characters long, got {n}",
                len.start(),
                len.end()
            ),
        ));
    }
    if let Some((i, c)) = s
        .chars()
        .enumerate()
        .find(|&(_, c)| !c.is_ascii() || !allowed(c as u8))
    {
        return Err(DomainError::invalid(
            kind,
            s,
            format!("character {} ({c:?}) is not allowed: only {what}", i + 1),
        ));
    }
    Ok(())
}

/// An AMFI or registrar scheme code (`119551`, `B123G`).
///
/// Surrounding whitespace is trimmed, because AMFI's `;`-separated file pads fields; the rest
/// must be 1..=16 ASCII uppercase letters or digits. Lowercase is rejected rather than
/// upper-cased: registrar codes are case-sensitive keys and silently changing one would hide a
/// bad feed. Ordering is lexicographic (stable map keys), not numeric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SchemeCode(String);

impl SchemeCode {
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.is_empty() {
            return Err(DomainError::invalid(kind::SCHEME_CODE, s, "is empty"));
        }
        check_chars(
            kind::SCHEME_CODE,
            t,
            1..=16,
            |b| b.is_ascii_uppercase() || b.is_ascii_digit(),
            "uppercase letters A-Z and digits",
        )?;
        Ok(SchemeCode(t.to_owned()))
    }
}
string_newtype!(SchemeCode);

/// An opaque investor identifier: 1..=64 of `[A-Za-z0-9_-]`, so it is safe in URLs, Kafka keys
/// and Cosmos DB partition keys without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvestorId(String);

impl InvestorId {
    pub fn parse(s: &str) -> Result<Self> {
        check_chars(
            kind::INVESTOR_ID,
            s,
            1..=64,
            |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            "letters, digits, '_' and '-'",
        )?;
        Ok(InvestorId(s.to_owned()))
    }
}
string_newtype!(InvestorId);

/// A client-supplied idempotency key: 8..=128 of `[A-Za-z0-9_.:-]`.
///
/// The lower bound rejects keys too short to be unique across clients (`"1"`); the alphabet
/// keeps keys usable verbatim inside Redis keys and document ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self> {
        check_chars(
            kind::IDEMPOTENCY_KEY,
            s,
            8..=128,
            |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'),
            "letters, digits, '_', '.', ':' and '-'",
        )?;
        Ok(IdempotencyKey(s.to_owned()))
    }
}
string_newtype!(IdempotencyKey);

/// An order id: a UUID, version 7 when we mint it so ids (and their string forms, which are
/// what document stores compare) sort by creation time.
///
/// Parsing accepts any UUID version, because orders created by other systems (or older
/// code using v4) must still be addressable, but rejects the nil UUID: it only ever appears
/// when some code path forgot to set the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(Uuid);

impl OrderId {
    /// A fresh time-ordered (v7) id.
    pub fn new() -> Self {
        OrderId(Uuid::now_v7())
    }

    pub fn parse(s: &str) -> Result<Self> {
        let u = Uuid::try_parse(s)
            .map_err(|e| DomainError::invalid(kind::ORDER_ID, s, format!("is not a UUID: {e}")))?;
        Self::from_uuid(u).map_err(|e| DomainError::invalid(kind::ORDER_ID, s, e.reason()))
    }

    /// Wraps an existing UUID (e.g. from an Avro `uuid` field); rejects nil.
    pub fn from_uuid(u: Uuid) -> Result<Self> {
        if u.is_nil() {
            return Err(DomainError::invalid(
                kind::ORDER_ID,
                &u.to_string(),
                "is the nil UUID",
            ));
        }
        Ok(OrderId(u))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hyphenated lowercase: the form `parse` produces and Avro's `uuid` logical type uses.
        f.pad(self.0.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
    }
}

impl std::str::FromStr for OrderId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for OrderId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for OrderId {
    type Error = DomainError;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<Uuid> for OrderId {
    type Error = DomainError;
    fn try_from(u: Uuid) -> Result<Self> {
        Self::from_uuid(u)
    }
}

impl From<OrderId> for String {
    fn from(v: OrderId) -> String {
        v.to_string()
    }
}

impl From<OrderId> for Uuid {
    fn from(v: OrderId) -> Uuid {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scheme codes are trimmed (AMFI pads fields) and keep their digits verbatim.
    #[test]
    fn scheme_code_trims_and_accepts_amfi_codes() {
        assert_eq!(SchemeCode::parse(" 119551 ").unwrap().as_str(), "119551");
        assert_eq!(SchemeCode::parse("B123G").unwrap().as_str(), "B123G");
        assert_eq!(
            SchemeCode::parse("ABCDEFGHIJ123456")
                .unwrap()
                .as_str()
                .len(),
            16
        );
    }

    /// Scheme codes reject empty, too long, lowercase and punctuation, naming the problem.
    #[test]
    fn scheme_code_rejections() {
        for (bad, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("ABCDEFGHIJ1234567", "1 to 16"),
            ("b123g", "character 1"),
            ("12-34", "character 3"),
            ("१२३", "character 1"),
        ] {
            let e = SchemeCode::parse(bad).unwrap_err();
            assert_eq!(e.kind(), kind::SCHEME_CODE);
            assert!(e.reason().contains(needle), "{bad:?}: {e}");
        }
    }

    /// Investor ids accept their full alphabet and reject anything else or too long.
    #[test]
    fn investor_id_rules() {
        assert!(InvestorId::parse("inv_AB-09").is_ok());
        assert!(InvestorId::parse(&"a".repeat(64)).is_ok());
        assert!(InvestorId::parse(&"a".repeat(65)).is_err());
        assert!(InvestorId::parse("").is_err());
        assert!(InvestorId::parse("a b").is_err());
        assert!(InvestorId::parse("a/b").is_err());
    }

    /// Idempotency keys are bounded to 8..=128 and to a key-safe alphabet.
    #[test]
    fn idempotency_key_rules() {
        assert!(IdempotencyKey::parse("order:2025.02-25_x").is_ok());
        assert!(IdempotencyKey::parse("1234567").is_err());
        assert!(IdempotencyKey::parse("12345678").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("abcdefgh/").is_err());
    }

    /// Generated order ids are v7 and increase over successive calls (time order).
    #[test]
    fn order_id_is_v7_and_time_ordered() {
        let a = OrderId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = OrderId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert!(
            a.to_string() < b.to_string(),
            "string forms must sort like the ids"
        );
    }

    /// Order ids parse any UUID form, print hyphenated lowercase, and reject nil and junk.
    #[test]
    fn order_id_parse_rules() {
        let id = OrderId::parse("0195E0A4-8F7B-7C3D-9A1B-2C3D4E5F6A7B").unwrap();
        assert_eq!(id.to_string(), "0195e0a4-8f7b-7c3d-9a1b-2c3d4e5f6a7b");
        let e = OrderId::parse("00000000-0000-0000-0000-000000000000").unwrap_err();
        assert!(e.reason().contains("nil"), "{e}");
        assert!(OrderId::parse("not-a-uuid").is_err());
        assert!(OrderId::from_uuid(Uuid::nil()).is_err());
    }

    /// Serde goes through the string form and validates on the way in.
    #[test]
    fn serde_is_string_and_validating() {
        let code = SchemeCode::parse("119551").unwrap();
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"119551\"");
        assert!(serde_json::from_str::<SchemeCode>("\"ab\"").is_err());
        let id = OrderId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<IdempotencyKey>("\"short\"").is_err());
    }
}
