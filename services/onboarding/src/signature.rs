//! KRA callback authentication: the same scheme as the payment gateway's webhooks
//! (services/payment): HMAC-SHA256 with a shared secret over the signing time and the raw body,
//! plus a freshness window against replays.
//!
//! ```text
//! X-Nivesh-Timestamp: 1740475800                       (unix seconds, the KRA's wall clock)
//! X-Nivesh-Signature: sha256=<hex HMAC-SHA256(secret, "1740475800." + raw body)>
//! ```
//!
//! Several `sha256=` values may be sent comma-separated (secret rotation). The freshness check
//! uses the wall clock, never the business clock. A replay inside the window is harmless: a
//! callback only moves KYC forward once (see `flow`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-nivesh-signature";
/// Header carrying the signing time in unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-nivesh-timestamp";

/// Why a callback was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {TIMESTAMP_HEADER} header")]
    MissingTimestamp,
    #[error("{TIMESTAMP_HEADER} is not unix seconds")]
    BadTimestamp,
    #[error("timestamp is {age_secs} s away from now, outside the {tolerance_secs} s tolerance")]
    Stale { age_secs: i64, tolerance_secs: u64 },
    #[error("missing {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("{SIGNATURE_HEADER} is not sha256=<64 hex digits>")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Nivesh-Signature` value for `body` signed at `timestamp` (what the KRA sends).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("sha256={}", hex::encode(tag))
}

/// Authenticate a callback: the timestamp is within `tolerance` of `now_unix` and one of the
/// signatures is the HMAC of `"<timestamp>.<body>"`. The comparison is constant-time.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let ts_text = timestamp
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(SignatureError::MissingTimestamp)?;
    let ts: i64 = ts_text.parse().map_err(|_| SignatureError::BadTimestamp)?;
    let age = now_unix.saturating_sub(ts);
    let tolerance_secs = tolerance.as_secs();
    if age.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::Stale {
            age_secs: age,
            tolerance_secs,
        });
    }
    let header = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::MissingSignature)?;
    let mut any_well_formed = false;
    for candidate in header.split(',').map(str::trim) {
        let Some(hex_tag) = candidate.strip_prefix("sha256=") else {
            continue;
        };
        let Ok(tag) = hex::decode(hex_tag) else {
            continue;
        };
        if tag.len() != 32 {
            continue;
        }
        any_well_formed = true;
        if mac(secret, ts_text, body).verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(if any_well_formed {
        SignatureError::Mismatch
    } else {
        SignatureError::Malformed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"kra-test";
    const BODY: &[u8] = br#"{"status":"VALIDATED"}"#;
    const NOW: i64 = 1_740_475_800;
    const TOL: Duration = Duration::from_secs(300);

    fn check(ts: Option<&str>, sig: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify(SECRET, ts, sig, body, NOW, TOL)
    }

    /// A fresh, correct signature passes; the simulator's signer and ours agree.
    #[test]
    fn valid_signature_passes() {
        let sig = sign(SECRET, NOW, BODY);
        assert_eq!(sig, nivesh_kra_sim::signature::sign(SECRET, NOW, BODY));
        assert_eq!(check(Some(&NOW.to_string()), Some(&sig), BODY), Ok(()));
        let rotated = format!("sha256={}, {sig}", "00".repeat(32));
        assert_eq!(check(Some(&NOW.to_string()), Some(&rotated), BODY), Ok(()));
    }

    /// Missing, stale, malformed and mismatching signatures are refused with their reason.
    #[test]
    fn refusals() {
        let sig = sign(SECRET, NOW, BODY);
        let ts = NOW.to_string();
        assert_eq!(
            check(None, Some(&sig), BODY),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            check(Some("x"), Some(&sig), BODY),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            check(Some(&ts), None, BODY),
            Err(SignatureError::MissingSignature)
        );
        assert_eq!(
            check(Some(&ts), Some("md5=abc"), BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(Some(&ts), Some(&sig), br#"{"status":"REJECTED"}"#),
            Err(SignatureError::Mismatch)
        );
        let old = (NOW - 301).to_string();
        let old_sig = sign(SECRET, NOW - 301, BODY);
        assert!(matches!(
            check(Some(&old), Some(&old_sig), BODY),
            Err(SignatureError::Stale { .. })
        ));
    }
}
