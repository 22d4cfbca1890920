//! The signature scheme of every inbound webhook or callback from an external system (the
//! payment gateway's webhooks, the KRA's KYC callbacks): HMAC-SHA256 with a shared secret, over
//! the signing time and the raw body, plus a freshness window against replays. The receivers
//! (`nivesh-payment`, `nivesh-onboarding`) verify with [`verify`]; the simulators
//! (`nivesh-pg-sim`, `nivesh-kra-sim`) sign with [`sign`]: one implementation on both sides.
//!
//! ```text
//! X-Nivesh-Timestamp: 1740475800                       (unix seconds, the sender's wall clock)
//! X-Nivesh-Signature: sha256=<hex HMAC-SHA256(secret, "1740475800." + raw body)>
//! ```
//!
//! The timestamp is inside the MAC, so an intercepted request cannot be replayed later under a
//! new timestamp; one older (or further in the future) than the tolerance is refused. A replay
//! inside the window is harmless: the receivers' processing is idempotent (state machines).
//! Several `sha256=` values may be sent comma-separated, so the secret can be rotated without
//! a gap (the sender signs with both while the receiver moves over).
//!
//! The freshness check uses the wall clock, never the business clock: it measures real time
//! between two systems, and a fleet replaying an old business date must still accept callbacks.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-nivesh-signature";
/// Header carrying the signing time in unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-nivesh-timestamp";

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Why a webhook was not authenticated.
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

/// The `X-Nivesh-Signature` value for `body` signed at `timestamp` (what the gateway sends).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("sha256={}", hex::encode(tag))
}

/// Authenticate a webhook: the timestamp is within `tolerance` of `now_unix` and one of the
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

    /// RFC 4231 test cases 1 and 2: the MAC itself is standard HMAC-SHA256.
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                b"Jefe",
                &[b"what do ya ", b"want for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    const SECRET: &[u8] = b"whsec-test";
    const BODY: &[u8] = br#"{"event":"payment.captured"}"#;
    const NOW: i64 = 1_740_475_800;
    const TOL: Duration = Duration::from_secs(300);

    fn check(ts: Option<&str>, sig: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify(SECRET, ts, sig, body, NOW, TOL)
    }

    /// The signature is standard HMAC-SHA256 over `"<timestamp>.<body>"` (expected value
    /// computed independently with Python's `hmac` module).
    #[test]
    fn sign_matches_an_independent_implementation() {
        assert_eq!(
            sign(SECRET, NOW, BODY),
            "sha256=f29e2f5ec3cdf69a8c17f5a3b86cc692b2559c35052c10b999640226fd911d4e"
        );
    }

    /// A correctly signed, fresh webhook passes; so does one within the tolerance either way.
    #[test]
    fn valid_signature_passes() {
        let sig = sign(SECRET, NOW, BODY);
        assert_eq!(check(Some(&NOW.to_string()), Some(&sig), BODY), Ok(()));
        let old = NOW - 299;
        let sig_old = sign(SECRET, old, BODY);
        assert_eq!(check(Some(&old.to_string()), Some(&sig_old), BODY), Ok(()));
        let ahead = NOW + 299;
        let sig_ahead = sign(SECRET, ahead, BODY);
        assert_eq!(
            check(Some(&ahead.to_string()), Some(&sig_ahead), BODY),
            Ok(())
        );
    }

    /// Tampering with the body, the timestamp or the secret is detected.
    #[test]
    fn tampering_is_detected() {
        let ts = NOW.to_string();
        let sig = sign(SECRET, NOW, BODY);
        assert_eq!(
            check(Some(&ts), Some(&sig), br#"{"event":"payment.failed"}"#),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some(&(NOW - 1).to_string()), Some(&sig), BODY),
            Err(SignatureError::Mismatch)
        );
        let other = sign(b"another-secret", NOW, BODY);
        assert_eq!(
            check(Some(&ts), Some(&other), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    /// Old and far-future timestamps are refused even with a valid MAC (replay protection).
    #[test]
    fn stale_timestamps_are_refused() {
        for ts in [NOW - 301, NOW + 301, 0] {
            let sig = sign(SECRET, ts, BODY);
            assert!(
                matches!(
                    check(Some(&ts.to_string()), Some(&sig), BODY),
                    Err(SignatureError::Stale { .. })
                ),
                "{ts}"
            );
        }
    }

    /// Missing or malformed headers are errors of their own.
    #[test]
    fn missing_and_malformed_headers() {
        let ts = NOW.to_string();
        let sig = sign(SECRET, NOW, BODY);
        assert_eq!(
            check(None, Some(&sig), BODY),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            check(Some("yesterday"), Some(&sig), BODY),
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
            check(Some(&ts), Some("sha256=zz"), BODY),
            Err(SignatureError::Malformed)
        );
        // The bare hex without the scheme prefix is not accepted.
        assert_eq!(
            check(Some(&ts), Some(sig.trim_start_matches("sha256=")), BODY),
            Err(SignatureError::Malformed)
        );
    }

    /// During a secret rotation either of two signatures may match.
    #[test]
    fn any_of_several_signatures_may_match() {
        let ts = NOW.to_string();
        let old = sign(b"old-secret", NOW, BODY);
        let new = sign(SECRET, NOW, BODY);
        assert_eq!(
            check(Some(&ts), Some(&format!("{old}, {new}")), BODY),
            Ok(())
        );
        assert_eq!(
            check(Some(&ts), Some(&format!("{old},{old}")), BODY),
            Err(SignatureError::Mismatch)
        );
    }
}
