//! The callback signature scheme shared with `nivesh-onboarding` (which verifies what this signs),
//! identical to the payment gateway simulator's webhook scheme.
//!
//! ```text
//! X-Nivesh-Timestamp: <unix seconds, wall clock>
//! X-Nivesh-Signature: sha256=<lowercase hex of HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//! ```
//!
//! The timestamp is inside the signed message, so a captured webhook cannot be replayed later
//! with a fresh timestamp: the receiver rejects old timestamps, and changing one breaks the MAC.

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

/// The `X-Nivesh-Signature` value for `body` signed at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(secret, &[ts.as_bytes(), b".", body]);
    format!("sha256={}", hex::encode(mac))
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

    /// The signed message is `<timestamp>.<body>`, and both parts change the signature.
    #[test]
    fn signature_covers_timestamp_and_body() {
        let s = sign(b"k", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(
            s,
            format!(
                "sha256={}",
                hex::encode(hmac_sha256(b"k", &[b"1700000000.{\"a\":1}"]))
            )
        );
        assert_ne!(s, sign(b"k", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(s, sign(b"k", 1_700_000_000, b"{\"a\":2}"));
        assert_ne!(s, sign(b"other", 1_700_000_000, b"{\"a\":1}"));
    }
}
