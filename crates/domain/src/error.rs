//! The single error type of the crate.

/// Labels carried in [`DomainError::kind`], so callers can branch on *what* failed without
/// parsing messages (`matches!(e, DomainError::Invalid { kind: kind::NAV, .. })`).
pub mod kind {
    pub const SCHEME_CODE: &str = "scheme code";
    pub const ISIN: &str = "ISIN";
    pub const PAN: &str = "PAN";
    pub const INVESTOR_ID: &str = "investor id";
    pub const ORDER_ID: &str = "order id";
    pub const IDEMPOTENCY_KEY: &str = "idempotency key";
    pub const AMOUNT: &str = "amount";
    pub const NAV: &str = "NAV";
    pub const UNITS: &str = "units";
    pub const NAV_DATE: &str = "NAV date";
}

/// Why a value could not become a domain type.
///
/// Two variants rather than one with an `Option<String>` value: whether a kind may be echoed is
/// decided once, by the type that owns the data, and a reviewer can grep for the redacted
/// variant instead of auditing every call site for a `None`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A non-sensitive value was rejected. `value` is the input as received (cut to
    /// [`MAX_ECHO_CHARS`] so a hostile megabyte payload does not end up in a log line).
    #[error("invalid {kind} {value:?}: {reason}")]
    Invalid {
        kind: &'static str,
        value: String,
        reason: String,
    },
    /// A personally identifying value (a PAN) was rejected. The input is deliberately absent
    /// from the error, its `Display` and its `Debug`: errors get logged, PII must not.
    #[error("invalid {kind}: {reason}")]
    Redacted { kind: &'static str, reason: String },
}

/// Longest prefix of a rejected value kept in [`DomainError::Invalid`].
pub const MAX_ECHO_CHARS: usize = 64;

impl DomainError {
    /// Which domain type rejected the value (one of the [`kind`] constants).
    pub fn kind(&self) -> &'static str {
        match self {
            DomainError::Invalid { kind, .. } | DomainError::Redacted { kind, .. } => kind,
        }
    }

    /// The precise reason, without the value.
    pub fn reason(&self) -> &str {
        match self {
            DomainError::Invalid { reason, .. } | DomainError::Redacted { reason, .. } => reason,
        }
    }

    pub(crate) fn invalid(kind: &'static str, value: &str, reason: impl Into<String>) -> Self {
        let value = match value.char_indices().nth(MAX_ECHO_CHARS) {
            Some((cut, _)) => format!("{}…", &value[..cut]),
            None => value.to_owned(),
        };
        DomainError::Invalid {
            kind,
            value,
            reason: reason.into(),
        }
    }

    pub(crate) fn redacted(kind: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Redacted {
            kind,
            reason: reason.into(),
        }
    }
}

/// Crate-wide result, defaulting to [`DomainError`].
pub type Result<T, E = DomainError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A huge rejected value is cut before it is stored in the error, on a char boundary.
    #[test]
    fn echoed_value_is_truncated() {
        let long = "é".repeat(1000);
        let err = DomainError::invalid(kind::ISIN, &long, "too long");
        let DomainError::Invalid { value, .. } = &err else {
            panic!("expected Invalid, got {err:?}")
        };
        assert_eq!(value.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(value.ends_with('…'));
        assert_eq!(err.kind(), kind::ISIN);
        assert_eq!(err.reason(), "too long");
    }
}
