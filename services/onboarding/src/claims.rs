//! PAN uniqueness: one investor per PAN per tenant.
//!
//! ```text
//! claim key = hex(HMAC-SHA256(index key, "nivesh-pan-claim-v1|<tenant length>:<tenant>|<PAN>"))
//! container `pan_claims`, partition = claim key, id `claim`:
//!   {investor_id, tenant, distributor_id, created_by, created_at}
//! ```
//!
//! The claim is created (`Create`, so exactly one request wins) before anything is sealed; its
//! investor id is the id of the investor for that PAN, so a retried or duplicated onboarding
//! lands on the same investor. The partition key is a *keyed* hash: a PAN has a few billion
//! plausible values, so a plain SHA-256 of it would be reversed by brute force from a backup.
//!
//! The index key is 32 random bytes generated once, wrapped by the service's KMS (the same
//! envelope scheme as the vault's per-investor data keys: local key file or Azure Key Vault),
//! stored in the `vault` container (partition [`INDEX_KEY_PARTITION`]) and unwrapped at
//! start-up. Losing it orphans every claim (they could no longer be found), so it is never
//! rotated in place; a rotation would re-key every claim (future work).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use nivesh_store::{Batch, DocumentStore, WriteOp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::vault::{KmsError, VAULT_CONTAINER, WrappedKey};

/// The claims container: partition = claim key (keyed hash of tenant and PAN).
pub const PAN_CLAIMS: &str = "pan_claims";
/// The claim's document id inside its partition.
pub const CLAIM_ID: &str = "claim";
/// Where the wrapped index key lives (container `vault`).
pub const INDEX_KEY_PARTITION: &str = "index-key:pan-claims";
pub const INDEX_KEY_ID: &str = "index-key";
const DOMAIN: &str = "nivesh-pan-claim-v1";

#[derive(Debug, thiserror::Error)]
pub enum IndexKeyError {
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error("store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("stored PAN index key is unreadable: {0}")]
    Corrupt(String),
}

/// The stored form of the index key (only ever wrapped).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexKeyDoc {
    pub kind: String,
    pub purpose: String,
    pub wrapped_key: WrappedKey,
    pub created_at: DateTime<Utc>,
}

/// A PAN claim as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanClaim {
    pub kind: String,
    pub investor_id: String,
    pub tenant: String,
    pub distributor_id: Option<String>,
    /// Token subject of whoever made the claim.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// The unwrapped index key. Cheap to clone; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct PanIndex {
    key: Arc<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for PanIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PanIndex(<key redacted>)")
    }
}

impl PanIndex {
    pub fn from_key(key: [u8; 32]) -> Self {
        PanIndex {
            key: Arc::new(Zeroizing::new(key)),
        }
    }

    /// Load the wrapped index key from the store and unwrap it with `kms`; on first start,
    /// generate it, wrap it and store it (a replica that loses the creation race reads the
    /// winner's key).
    pub async fn load_or_create(
        store: &dyn DocumentStore,
        kms: &dyn crate::vault::Kms,
        now: DateTime<Utc>,
    ) -> Result<Self, IndexKeyError> {
        for _ in 0..2 {
            if let Some(doc) = store
                .get(VAULT_CONTAINER, INDEX_KEY_PARTITION, INDEX_KEY_ID)
                .await?
            {
                let doc: IndexKeyDoc = serde_json::from_value(doc.body)
                    .map_err(|e| IndexKeyError::Corrupt(e.to_string()))?;
                let raw = kms.unwrap_key(&doc.wrapped_key).await?;
                let key: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                    IndexKeyError::Corrupt(format!("unwrapped key has {} bytes", raw.len()))
                })?;
                return Ok(Self::from_key(key));
            }
            let key: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
            let wrapped = kms.wrap_key(&key[..]).await?;
            let doc = IndexKeyDoc {
                kind: "index-key".into(),
                purpose: "pan-claims".into(),
                wrapped_key: wrapped,
                created_at: now,
            };
            let batch = Batch::new(VAULT_CONTAINER, INDEX_KEY_PARTITION).op(WriteOp::Create {
                id: INDEX_KEY_ID.into(),
                body: serde_json::to_value(&doc).expect("an index key doc serializes"),
                ttl: None,
            });
            match store.commit(batch).await {
                Ok(_) => {
                    tracing::info!(kek = %doc.wrapped_key.kek_id, "generated the PAN index key");
                    return Ok(Self::from_key(*key));
                }
                // Another replica stored one first: use theirs.
                Err(nivesh_store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IndexKeyError::Corrupt(
            "the index key document vanished after a creation conflict".into(),
        ))
    }

    /// The claim key (partition) of a PAN in a tenant: 64 lowercase hex characters.
    pub fn claim_key(&self, tenant: &str, pan: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .expect("HMAC takes any key length");
        mac.update(claim_message(tenant, pan).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The HMAC input: the tenant is length-prefixed so no (tenant, PAN) pair aliases another.
pub fn claim_message(tenant: &str, pan: &str) -> String {
    format!("{DOMAIN}|{}:{tenant}|{pan}", tenant.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn claim_keys_are_keyed_and_tenant_scoped() {
        let a = PanIndex::from_key([1u8; 32]);
        let b = PanIndex::from_key([2u8; 32]);
        let k = a.claim_key("nivesh", "ABCPE1234F");
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(k, a.claim_key("nivesh", "ABCPE1234F"));
        assert_ne!(k, b.claim_key("nivesh", "ABCPE1234F"));
        assert_ne!(k, a.claim_key("other", "ABCPE1234F"));
        assert_ne!(k, a.claim_key("nivesh", "ABCPE1235F"));
        assert_ne!(k, hex::encode(sha2::Sha256::digest(b"ABCPE1234F")));
        // Length prefix: ("ab", "c…") and ("a", "bc…") differ.
        assert_ne!(claim_message("ab", "CPE"), claim_message("a", "bCPE"));
    }
}
