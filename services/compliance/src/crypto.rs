//! Per-investor encryption of the personal data in ledger payloads, and crypto-shredding.
//!
//! ```text
//! DEK (32 random bytes) per investor, wrapped with the service's KEK (AES-256-GCM) and stored in
//!   container `ledger_keys`, partition = investor id, document `dek`
//! a PII field value v  ->  {"$enc": "A256GCM", "n": b64(nonce), "c": b64(AES-256-GCM(DEK, nonce,
//!   canonical JSON of v, aad = "nivesh-ledger-v1|<investor>|<field>"))}
//! erasure: the wrapped DEK is removed (the document keeps only when it was shredded), so every
//!   ciphertext of that investor, in every ledger record and every backup, is unreadable. The hash
//!   chain covers the ciphertext, so it still verifies; readers see "[erased]".
//! ```
//!
//! The KEK is 32 bytes read from `kek_file` (created with fresh random bytes, mode 0600, when
//! missing: the local stand-in for a key in Azure Key Vault). The AAD binds a ciphertext to its
//! investor and field, so a ciphertext copied elsewhere fails to decrypt instead of lying.

use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use nivesh_store::{Batch, DocumentStore, Error as StoreError, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::canonical::{canonical_json, sha256_hex};

/// Container of the per-investor data keys.
pub const KEYS: &str = "ledger_keys";
const DEK_DOC: &str = "dek";
/// What a PII field reads as once its investor's key is shredded.
pub const ERASED: &str = "[erased]";
/// Marker key of an encrypted field value.
pub const ENC: &str = "$enc";
const ALG: &str = "A256GCM";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the data key of {0} cannot be unwrapped (wrong KEK or corrupt document)")]
    Unwrap(String),
}

/// The stored key document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyDoc {
    kind: String,
    investor_id: String,
    kek_id: String,
    /// base64(nonce || AES-256-GCM(KEK, DEK)); `None` once shredded.
    wrapped: Option<String>,
    created_at: DateTime<Utc>,
    shredded_at: Option<DateTime<Utc>>,
}

/// An investor's key as the ledger sees it.
pub enum InvestorKey {
    Active(Zeroizing<[u8; 32]>),
    /// Crypto-shredded: nothing of this investor can be decrypted, nothing new is encrypted.
    Shredded,
}

/// The data keys of all investors, wrapped by one KEK. Cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    store: Arc<dyn DocumentStore>,
    kek: Arc<Zeroizing<[u8; 32]>>,
    kek_id: String,
}

fn seal(key: &[u8; 32], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = rand::random();
    let cipher = Aes256Gcm::new_from_slice(key).expect("a 32-byte key");
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .expect("AES-GCM over an in-memory buffer cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(12);
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

fn field_aad(investor: &str, field: &str) -> Vec<u8> {
    format!("nivesh-ledger-v1|{investor}|{field}").into_bytes()
}

impl KeyRing {
    /// A key ring whose KEK is read from `kek_file`, created (random, 0600) when missing.
    pub fn open_file(store: Arc<dyn DocumentStore>, kek_file: &Path) -> Result<Self, CryptoError> {
        let err = |reason: String| CryptoError::KeyFile {
            path: kek_file.display().to_string(),
            reason,
        };
        let kek: [u8; 32] = match std::fs::read_to_string(kek_file) {
            Ok(text) => {
                let bytes = STANDARD
                    .decode(text.trim())
                    .map_err(|e| err(format!("not base64: {e}")))?;
                bytes
                    .try_into()
                    .map_err(|_| err("a KEK is exactly 32 bytes".into()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kek: [u8; 32] = rand::random();
                if let Some(dir) = kek_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                write_private(kek_file, STANDARD.encode(kek).as_bytes())
                    .map_err(|e| err(e.to_string()))?;
                tracing::warn!(path = %kek_file.display(), "created a new ledger key-encryption key");
                kek
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Self::with_kek(store, kek))
    }

    /// A key ring with the given KEK.
    pub fn with_kek(store: Arc<dyn DocumentStore>, kek: [u8; 32]) -> Self {
        let kek_id = format!("local:{}", &sha256_hex(&kek)[..16]);
        KeyRing {
            store,
            kek: Arc::new(Zeroizing::new(kek)),
            kek_id,
        }
    }

    async fn load(&self, investor: &str) -> Result<Option<KeyDoc>, CryptoError> {
        let Some(doc) = self.store.get(KEYS, investor, DEK_DOC).await? else {
            return Ok(None);
        };
        serde_json::from_value(doc.body)
            .map(Some)
            .map_err(|_| CryptoError::Unwrap(investor.to_string()))
    }

    fn unwrap_doc(&self, investor: &str, doc: &KeyDoc) -> Result<InvestorKey, CryptoError> {
        let Some(wrapped) = &doc.wrapped else {
            return Ok(InvestorKey::Shredded);
        };
        let sealed = STANDARD
            .decode(wrapped)
            .map_err(|_| CryptoError::Unwrap(investor.to_string()))?;
        let dek = open(&self.kek, &sealed, investor.as_bytes())
            .ok_or_else(|| CryptoError::Unwrap(investor.to_string()))?;
        let dek: [u8; 32] = dek
            .try_into()
            .map_err(|_| CryptoError::Unwrap(investor.to_string()))?;
        Ok(InvestorKey::Active(Zeroizing::new(dek)))
    }

    /// The investor's key for reading; `None` when none was ever created (nothing encrypted).
    pub async fn key_for_read(&self, investor: &str) -> Result<Option<InvestorKey>, CryptoError> {
        match self.load(investor).await? {
            Some(doc) => self.unwrap_doc(investor, &doc).map(Some),
            None => Ok(None),
        }
    }

    /// The investor's key for writing, created on first use.
    pub async fn key_for_write(&self, investor: &str) -> Result<InvestorKey, CryptoError> {
        if let Some(doc) = self.load(investor).await? {
            return self.unwrap_doc(investor, &doc);
        }
        let dek: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        let doc = KeyDoc {
            kind: "ledger-key".into(),
            investor_id: investor.to_string(),
            kek_id: self.kek_id.clone(),
            wrapped: Some(STANDARD.encode(seal(&self.kek, &dek[..], investor.as_bytes()))),
            created_at: Utc::now(),
            shredded_at: None,
        };
        let batch = Batch::new(KEYS, investor).op(WriteOp::Create {
            id: DEK_DOC.into(),
            body: serde_json::to_value(&doc).expect("a key document serializes"),
            ttl: None,
        });
        match self.store.commit(batch).await {
            Ok(_) => Ok(InvestorKey::Active(dek)),
            // Someone created (or shredded) it concurrently: use theirs.
            Err(StoreError::Conflict { .. }) => {
                let doc = self.load(investor).await?.ok_or_else(|| {
                    CryptoError::Store(StoreError::Backend("key vanished after conflict".into()))
                })?;
                self.unwrap_doc(investor, &doc)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Crypto-shred the investor's key. Idempotent; returns true when a usable key was destroyed
    /// now. An investor without a key gets a tombstone so nothing is encrypted for them later.
    pub async fn shred(&self, investor: &str, at: DateTime<Utc>) -> Result<bool, CryptoError> {
        for _ in 0..8 {
            let existing = self.store.get(KEYS, investor, DEK_DOC).await?;
            let tombstone = KeyDoc {
                kind: "ledger-key".into(),
                investor_id: investor.to_string(),
                kek_id: self.kek_id.clone(),
                wrapped: None,
                created_at: at,
                shredded_at: Some(at),
            };
            let (op, destroyed) = match existing {
                None => (
                    WriteOp::Create {
                        id: DEK_DOC.into(),
                        body: serde_json::to_value(&tombstone).expect("serializes"),
                        ttl: None,
                    },
                    false,
                ),
                Some(doc) => {
                    let mut current: KeyDoc = serde_json::from_value(doc.body)
                        .map_err(|_| CryptoError::Unwrap(investor.to_string()))?;
                    if current.wrapped.is_none() {
                        return Ok(false);
                    }
                    current.wrapped = None;
                    current.shredded_at = Some(at);
                    (
                        WriteOp::Replace {
                            id: DEK_DOC.into(),
                            body: serde_json::to_value(&current).expect("serializes"),
                            if_match: doc.etag,
                            ttl: None,
                        },
                        true,
                    )
                }
            };
            match self.store.commit(Batch::new(KEYS, investor).op(op)).await {
                Ok(_) => return Ok(destroyed),
                Err(StoreError::Conflict { .. } | StoreError::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(CryptoError::Store(StoreError::Unavailable(
            "the key document kept changing while shredding".into(),
        )))
    }
}

/// Encrypts (or, for a shredded key, replaces by [`ERASED`]) every value of `payload` whose key
/// is in `pii_fields`, at any depth. The field name is bound into the ciphertext.
pub fn protect(payload: &mut Value, investor: &str, key: &InvestorKey, pii_fields: &[String]) {
    match payload {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if pii_fields.iter().any(|f| f == k) && !v.is_null() {
                    *v = match key {
                        InvestorKey::Active(dek) => {
                            let sealed =
                                seal(dek, canonical_json(v).as_bytes(), &field_aad(investor, k));
                            json!({ ENC: ALG, "c": STANDARD.encode(sealed) })
                        }
                        InvestorKey::Shredded => Value::String(ERASED.into()),
                    };
                } else {
                    protect(v, investor, key, pii_fields);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                protect(item, investor, key, pii_fields);
            }
        }
        _ => {}
    }
}

/// The readable form of a stored payload: encrypted fields decrypted, or [`ERASED`] when the
/// key is gone (or the ciphertext does not authenticate).
pub fn reveal(payload: &Value, investor: &str, key: Option<&InvestorKey>) -> Value {
    match payload {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let shown = match v.get(ENC).and_then(Value::as_str) {
                    Some(_) => decrypt_field(v, investor, k, key),
                    None => reveal(v, investor, key),
                };
                out.insert(k.clone(), shown);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| reveal(i, investor, key)).collect())
        }
        other => other.clone(),
    }
}

fn decrypt_field(v: &Value, investor: &str, field: &str, key: Option<&InvestorKey>) -> Value {
    let erased = || Value::String(ERASED.into());
    let Some(InvestorKey::Active(dek)) = key else {
        return erased();
    };
    let Some(sealed) = v
        .get("c")
        .and_then(Value::as_str)
        .and_then(|c| STANDARD.decode(c).ok())
    else {
        return erased();
    };
    open(dek, &sealed, &field_aad(investor, field))
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .unwrap_or_else(erased)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<String> {
        vec!["name".into(), "payment_instrument".into()]
    }

    /// PII fields round-trip through protect/reveal; other fields are untouched; a shredded key
    /// reads as "[erased]"; a ciphertext moved to another investor does not decrypt.
    #[test]
    fn protect_and_reveal() {
        let dek = InvestorKey::Active(Zeroizing::new([7u8; 32]));
        let original = json!({"investor_id": "INV1", "name": "Asha Rao",
                              "nested": {"payment_instrument": "asha@okbank"}, "amount": "10.00"});
        let mut stored = original.clone();
        protect(&mut stored, "INV1", &dek, &fields());
        assert_ne!(stored["name"], original["name"]);
        assert!(stored["name"][ENC].is_string());
        assert!(!stored.to_string().contains("Asha"));
        assert_eq!(stored["amount"], "10.00");
        assert_eq!(reveal(&stored, "INV1", Some(&dek)), original);
        assert_eq!(
            reveal(&stored, "INV1", Some(&InvestorKey::Shredded))["name"],
            ERASED
        );
        assert_eq!(
            reveal(&stored, "INV1", None)["nested"]["payment_instrument"],
            ERASED
        );
        assert_eq!(reveal(&stored, "INV2", Some(&dek))["name"], ERASED);
    }
}
