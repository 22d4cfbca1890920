//! The PII vault: envelope encryption with one data key per investor.
//!
//! ```text
//! seal:  DEK = 32 random bytes                       (per investor, never stored in clear)
//!        ciphertext = AES-256-GCM(DEK, nonce, JSON of SensitiveData, aad = investor id + token)
//!        wrapped = KMS.wrap(DEK)                      (local key file or Azure Key Vault)
//!        store {token, kek id, wrapped, nonce, ciphertext}   container `vault`, partition = investor
//! open:  DEK = KMS.unwrap(wrapped); decrypt
//! shred: wrapped := null (and record when) -> the ciphertext stays but nothing can decrypt it
//! ```
//!
//! What goes in: PAN, Aadhaar (only ever here), date of birth, bank account number. The
//! investor record keeps only the vault's reference token and masked forms. Crypto-shredding
//! is how erasure (DPDP) reaches every copy at once: backups of the store hold the same
//! ciphertext, unreadable once the one wrapped key is gone.
//!
//! The AAD binds a ciphertext to its investor and token, so a ciphertext copied onto another
//! investor's document fails authentication instead of decrypting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, NaiveDate, Utc};
use nivesh_store::{Batch, DocumentStore, WriteOp};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::AzureKeyVaultConfig;

/// The store container of vault entries.
pub const VAULT_CONTAINER: &str = "vault";
/// The document id of an investor's entry (one per investor, in their partition).
const DOC_ID: &str = "pii";
const AAD_PREFIX: &str = "nivesh-vault-v1";

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("key management service unavailable: {0}")]
    Unavailable(String),
    #[error("key management service refused: {0}")]
    Refused(String),
    #[error("key file: {0}")]
    KeyFile(String),
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("no vault entry for the investor")]
    NotFound,
    #[error("the investor's data key was destroyed (erased)")]
    Shredded,
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error("decryption failed: the entry is corrupt or bound to another investor")]
    Crypto,
    #[error("store: {0}")]
    Store(#[from] nivesh_store::Error),
    #[error("stored vault entry is unreadable: {0}")]
    Corrupt(String),
}

/// A data key wrapped by a key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Which KEK (local: `local:<fingerprint>`; Key Vault: the key's `kid` URL with version).
    pub kek_id: String,
    pub algorithm: String,
    /// Standard base64.
    pub value: String,
}

/// A key-encryption-key provider (the KMS port).
#[async_trait]
pub trait Kms: Send + Sync + 'static {
    /// Human name for logs and readiness (`local-file`, `azure-key-vault`).
    fn kind(&self) -> &'static str;
    async fn wrap_key(&self, dek: &[u8]) -> Result<WrappedKey, KmsError>;
    async fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError>;
}

/// What the vault keeps encrypted. `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensitiveData {
    pub pan: String,
    pub aadhaar: Option<String>,
    pub date_of_birth: NaiveDate,
    pub bank_account_number: String,
}

impl std::fmt::Debug for SensitiveData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SensitiveData(<redacted>)")
    }
}

/// An investor's vault entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultEntry {
    pub kind: String,
    /// The reference token (`vlt_<32 hex>`): what the rest of the system holds.
    pub token: String,
    pub investor_id: String,
    /// `None` once crypto-shredded.
    pub wrapped_key: Option<WrappedKey>,
    pub nonce: String,
    pub ciphertext: String,
    pub created_at: DateTime<Utc>,
    pub shredded_at: Option<DateTime<Utc>>,
}

/// The vault. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn DocumentStore>,
    kms: Arc<dyn Kms>,
}

fn aad(investor_id: &str, token: &str) -> Vec<u8> {
    format!("{AAD_PREFIX}|{investor_id}|{token}").into_bytes()
}

fn aes_encrypt(key: &[u8], nonce: &[u8; 12], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("a 32-byte key");
    cipher
        .encrypt(Nonce::from_slice(nonce), Payload { msg, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail")
}

fn aes_decrypt(key: &[u8], nonce: &[u8], ct: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if key.len() != 32 || nonce.len() != 12 {
        return None;
    }
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

impl Vault {
    pub fn new(store: Arc<dyn DocumentStore>, kms: Arc<dyn Kms>) -> Self {
        Vault { store, kms }
    }

    pub fn kms_kind(&self) -> &'static str {
        self.kms.kind()
    }

    /// Encrypt `data` under a fresh data key and store it; returns the reference token. An
    /// existing entry of the investor is refused (`Conflict`): entries are written once.
    pub async fn seal(
        &self,
        investor_id: &str,
        data: &SensitiveData,
        now: DateTime<Utc>,
    ) -> Result<String, VaultError> {
        let token = format!("vlt_{}", uuid::Uuid::new_v4().simple());
        let dek: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        let nonce: [u8; 12] = rand::random();
        let plain = Zeroizing::new(serde_json::to_vec(data).expect("sensitive data serializes"));
        let ct = aes_encrypt(&dek[..], &nonce, &plain, &aad(investor_id, &token));
        let wrapped = self.kms.wrap_key(&dek[..]).await?;
        let entry = VaultEntry {
            kind: "vault-entry".into(),
            token: token.clone(),
            investor_id: investor_id.to_string(),
            wrapped_key: Some(wrapped),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ct),
            created_at: now,
            shredded_at: None,
        };
        let batch = Batch::new(VAULT_CONTAINER, investor_id).op(WriteOp::Create {
            id: DOC_ID.into(),
            body: serde_json::to_value(&entry).expect("an entry serializes"),
            ttl: None,
        });
        self.store.commit(batch).await?;
        Ok(token)
    }

    /// The stored entry (ciphertext and all), for inspection and erasure checks.
    pub async fn entry(&self, investor_id: &str) -> Result<Option<VaultEntry>, VaultError> {
        let Some(doc) = self.store.get(VAULT_CONTAINER, investor_id, DOC_ID).await? else {
            return Ok(None);
        };
        let entry =
            serde_json::from_value(doc.body).map_err(|e| VaultError::Corrupt(e.to_string()))?;
        Ok(Some(entry))
    }

    /// Decrypt an investor's data. `Shredded` after erasure.
    pub async fn open(&self, investor_id: &str) -> Result<SensitiveData, VaultError> {
        let entry = self.entry(investor_id).await?.ok_or(VaultError::NotFound)?;
        let wrapped = entry.wrapped_key.as_ref().ok_or(VaultError::Shredded)?;
        let dek = self.kms.unwrap_key(wrapped).await?;
        let nonce = STANDARD
            .decode(&entry.nonce)
            .map_err(|_| VaultError::Crypto)?;
        let ct = STANDARD
            .decode(&entry.ciphertext)
            .map_err(|_| VaultError::Crypto)?;
        let plain = Zeroizing::new(
            aes_decrypt(&dek, &nonce, &ct, &aad(investor_id, &entry.token))
                .ok_or(VaultError::Crypto)?,
        );
        serde_json::from_slice(&plain).map_err(|_| VaultError::Crypto)
    }

    /// Destroy the investor's wrapped data key. Returns `true` when this call destroyed it,
    /// `false` when it was already gone (idempotent) or there is no entry.
    pub async fn shred(&self, investor_id: &str, now: DateTime<Utc>) -> Result<bool, VaultError> {
        for _ in 0..5 {
            let Some(doc) = self.store.get(VAULT_CONTAINER, investor_id, DOC_ID).await? else {
                return Ok(false);
            };
            let mut entry: VaultEntry =
                serde_json::from_value(doc.body).map_err(|e| VaultError::Corrupt(e.to_string()))?;
            if entry.wrapped_key.is_none() {
                return Ok(false);
            }
            entry.wrapped_key = None;
            entry.shredded_at = Some(now);
            let batch = Batch::new(VAULT_CONTAINER, investor_id).op(WriteOp::Replace {
                id: DOC_ID.into(),
                body: serde_json::to_value(&entry).expect("an entry serializes"),
                if_match: doc.etag,
                ttl: None,
            });
            match self.store.commit(batch).await {
                Ok(_) => return Ok(true),
                Err(nivesh_store::Error::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Store(nivesh_store::Error::PreconditionFailed {
            id: DOC_ID.into(),
        }))
    }
}

/// A KEK in a local file (hex, 0600), generated on first start. For local runs and tests; it
/// protects nothing against someone who can read the data directory, which is why production
/// uses Key Vault.
pub struct LocalKeyFileKms {
    kek: Zeroizing<[u8; 32]>,
    kek_id: String,
}

const LOCAL_ALG: &str = "A256GCM-KW";

impl LocalKeyFileKms {
    /// The default KEK file in a data directory.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("onboarding-kek.key")
    }

    /// Load the KEK from `path`, creating it (and its directory) with a random key if absent.
    pub fn open_or_create(path: &Path) -> Result<Self, KmsError> {
        let err = |what: &str, e: std::io::Error| {
            KmsError::KeyFile(format!("{what} {}: {e}", path.display()))
        };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err("creating the directory of", e))?;
            }
            let key: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    use std::io::Write as _;
                    let hexed = Zeroizing::new(hex::encode(&key[..]));
                    f.write_all(hexed.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| err("writing", e))?;
                    tracing::info!(path = %path.display(), "generated a new local key-encryption key");
                }
                // Another process created it first: read theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err("creating", e)),
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err("reading", e))?);
        let bytes = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| KmsError::KeyFile(format!("{} is not hex", path.display())))?,
        );
        let kek: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            KmsError::KeyFile(format!("{} must hold 32 bytes (64 hex)", path.display()))
        })?;
        Ok(Self::from_key(kek))
    }

    pub fn from_key(kek: [u8; 32]) -> Self {
        use sha2::Digest as _;
        let fp = hex::encode(&sha2::Sha256::digest(kek)[..8]);
        LocalKeyFileKms {
            kek: Zeroizing::new(kek),
            kek_id: format!("local:{fp}"),
        }
    }
}

#[async_trait]
impl Kms for LocalKeyFileKms {
    fn kind(&self) -> &'static str {
        "local-file"
    }

    async fn wrap_key(&self, dek: &[u8]) -> Result<WrappedKey, KmsError> {
        let nonce: [u8; 12] = rand::random();
        let ct = aes_encrypt(&self.kek[..], &nonce, dek, self.kek_id.as_bytes());
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(WrappedKey {
            kek_id: self.kek_id.clone(),
            algorithm: LOCAL_ALG.into(),
            value: STANDARD.encode(out),
        })
    }

    async fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if wrapped.kek_id != self.kek_id {
            return Err(KmsError::Refused(format!(
                "data key wrapped by {}, this key file is {}",
                wrapped.kek_id, self.kek_id
            )));
        }
        let raw = STANDARD
            .decode(&wrapped.value)
            .map_err(|_| KmsError::Refused("wrapped key is not base64".into()))?;
        if raw.len() < 12 {
            return Err(KmsError::Refused("wrapped key too short".into()));
        }
        let (nonce, ct) = raw.split_at(12);
        aes_decrypt(&self.kek[..], nonce, ct, self.kek_id.as_bytes())
            .map(Zeroizing::new)
            .ok_or_else(|| KmsError::Refused("wrapped key does not authenticate".into()))
    }
}

/// Where the Key Vault bearer token comes from.
enum TokenSource {
    Static(SecretString),
    /// AKS workload identity: the pod's federated token (a file the kubelet refreshes) is
    /// exchanged at Entra ID for an access token (client credentials with a client assertion).
    WorkloadIdentity {
        token_url: String,
        client_id: String,
        token_file: PathBuf,
        cached: tokio::sync::Mutex<Option<(SecretString, std::time::Instant)>>,
    },
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// The scope of Key Vault data-plane tokens.
const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
/// A cached token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Azure Key Vault keys REST API: `POST {vault}/keys/{name}[/{version}]/wrapkey` and
/// `POST {kid}/unwrapkey` (`?api-version=7.4`), body `{"alg", "value": base64url}`, with a
/// bearer token for `https://vault.azure.net`. The unwrap uses the `kid` Key Vault returned at
/// wrap time, so rotating the key's current version never strands old data keys.
pub struct AzureKeyVaultKms {
    http: reqwest::Client,
    vault_url: String,
    key_name: String,
    key_version: String,
    algorithm: String,
    api_version: String,
    token: TokenSource,
}

#[derive(Serialize)]
struct KeyOperation<'a> {
    alg: &'a str,
    value: String,
}

#[derive(Deserialize)]
struct KeyOperationResult {
    kid: String,
    value: String,
}

impl AzureKeyVaultKms {
    pub fn new(config: &AzureKeyVaultConfig) -> Result<Self, String> {
        let vault_url = config.vault_url.trim_end_matches('/').to_string();
        if vault_url.is_empty() {
            return Err(
                "service.vault.azure.vault_url is required with kms = azure-key-vault".into(),
            );
        }
        let pick = |configured: &str, var: &str| {
            Some(configured.trim().to_string())
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        };
        let token = match config.bearer_token.clone() {
            Some(t) => TokenSource::Static(t),
            None => {
                let missing = |what: &str, var: &str| {
                    format!(
                        "Key Vault needs a token: set service.vault.azure.bearer_token, or run with \
                         workload identity ({what}: service.vault.azure.{what} or {var})"
                    )
                };
                let authority = pick(&config.authority_host, "AZURE_AUTHORITY_HOST")
                    .unwrap_or_else(|| "https://login.microsoftonline.com/".into());
                let tenant = pick(&config.tenant_id, "AZURE_TENANT_ID")
                    .ok_or_else(|| missing("tenant_id", "AZURE_TENANT_ID"))?;
                let client_id = pick(&config.client_id, "AZURE_CLIENT_ID")
                    .ok_or_else(|| missing("client_id", "AZURE_CLIENT_ID"))?;
                let token_file = pick(&config.federated_token_file, "AZURE_FEDERATED_TOKEN_FILE")
                    .ok_or_else(|| {
                    missing("federated_token_file", "AZURE_FEDERATED_TOKEN_FILE")
                })?;
                TokenSource::WorkloadIdentity {
                    token_url: format!(
                        "{}/{tenant}/oauth2/v2.0/token",
                        authority.trim_end_matches('/')
                    ),
                    client_id,
                    token_file: PathBuf::from(token_file),
                    cached: tokio::sync::Mutex::new(None),
                }
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms.max(1)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(AzureKeyVaultKms {
            http,
            vault_url,
            key_name: config.key_name.clone(),
            key_version: config.key_version.clone(),
            algorithm: config.algorithm.clone(),
            api_version: config.api_version.clone(),
            token,
        })
    }

    /// The bearer token: the static one, or a cached / freshly exchanged workload-identity one.
    async fn bearer(&self) -> Result<SecretString, KmsError> {
        let (token_url, client_id, token_file, cached) = match &self.token {
            TokenSource::Static(t) => return Ok(t.clone()),
            TokenSource::WorkloadIdentity {
                token_url,
                client_id,
                token_file,
                cached,
            } => (token_url, client_id, token_file, cached),
        };
        let mut slot = cached.lock().await;
        if let Some((token, renew_at)) = slot.as_ref()
            && std::time::Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        // Re-read every time: the kubelet rotates the projected token file.
        let assertion = tokio::fs::read_to_string(token_file).await.map_err(|e| {
            KmsError::Unavailable(format!(
                "reading the federated token {}: {e}",
                token_file.display()
            ))
        })?;
        let form = [
            ("client_id", client_id.as_str()),
            ("scope", VAULT_SCOPE),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.trim()),
        ];
        let resp = self
            .http
            .post(token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| KmsError::Unavailable(format!("token endpoint: {}", e.without_url())))?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(KmsError::Unavailable(format!(
                "token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(KmsError::Refused(format!(
                "token endpoint answered {status}"
            )));
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|e| KmsError::Refused(format!("token answer unreadable: {e}")))?;
        let lifetime = Duration::from_secs(answer.expires_in).saturating_sub(TOKEN_MARGIN);
        let token = SecretString::from(answer.access_token);
        *slot = Some((token.clone(), std::time::Instant::now() + lifetime));
        Ok(token)
    }

    async fn call(&self, url: &str, value: &[u8]) -> Result<KeyOperationResult, KmsError> {
        let token = self.bearer().await?;
        let body = KeyOperation {
            alg: &self.algorithm,
            value: URL_SAFE_NO_PAD.encode(value),
        };
        let resp = self
            .http
            .post(url)
            .query(&[("api-version", self.api_version.as_str())])
            .bearer_auth(token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| KmsError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(KmsError::Unavailable(format!(
                "Key Vault answered {status}"
            )));
        }
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let short: String = text.chars().take(200).collect();
            return Err(KmsError::Refused(format!(
                "Key Vault answered {status}: {short}"
            )));
        }
        resp.json()
            .await
            .map_err(|e| KmsError::Refused(format!("Key Vault answer unreadable: {e}")))
    }
}

#[async_trait]
impl Kms for AzureKeyVaultKms {
    fn kind(&self) -> &'static str {
        "azure-key-vault"
    }

    async fn wrap_key(&self, dek: &[u8]) -> Result<WrappedKey, KmsError> {
        let url = if self.key_version.is_empty() {
            format!("{}/keys/{}/wrapkey", self.vault_url, self.key_name)
        } else {
            format!(
                "{}/keys/{}/{}/wrapkey",
                self.vault_url, self.key_name, self.key_version
            )
        };
        let r = self.call(&url, dek).await?;
        let wrapped = URL_SAFE_NO_PAD
            .decode(r.value.trim_end_matches('='))
            .map_err(|_| KmsError::Refused("wrapped value is not base64url".into()))?;
        Ok(WrappedKey {
            kek_id: r.kid,
            algorithm: self.algorithm.clone(),
            value: STANDARD.encode(wrapped),
        })
    }

    async fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        // Only ever our own vault: a kid pointing elsewhere would send the token there.
        if !wrapped
            .kek_id
            .starts_with(&format!("{}/keys/", self.vault_url))
        {
            return Err(KmsError::Refused(format!(
                "data key wrapped by {}, not a key of {}",
                wrapped.kek_id, self.vault_url
            )));
        }
        let raw = STANDARD
            .decode(&wrapped.value)
            .map_err(|_| KmsError::Refused("wrapped key is not base64".into()))?;
        let url = format!("{}/unwrapkey", wrapped.kek_id.trim_end_matches('/'));
        let r = self.call(&url, &raw).await?;
        URL_SAFE_NO_PAD
            .decode(r.value.trim_end_matches('='))
            .map(Zeroizing::new)
            .map_err(|_| KmsError::Refused("unwrapped value is not base64url".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Local wrap/unwrap round-trips; another key file, or a tampered wrap, is refused.
    #[tokio::test]
    async fn local_kms_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = LocalKeyFileKms::default_path(dir.path());
        let kms = LocalKeyFileKms::open_or_create(&path).unwrap();
        // Reopening reads the same key.
        let again = LocalKeyFileKms::open_or_create(&path).unwrap();
        assert_eq!(kms.kek_id, again.kek_id);
        let dek = [7u8; 32];
        let w = kms.wrap_key(&dek).await.unwrap();
        assert_ne!(STANDARD.decode(&w.value).unwrap()[12..44], dek[..]);
        assert_eq!(&again.unwrap_key(&w).await.unwrap()[..], &dek[..]);

        let other = LocalKeyFileKms::from_key([9u8; 32]);
        assert!(matches!(
            other.unwrap_key(&w).await,
            Err(KmsError::Refused(_))
        ));
        let mut tampered = w.clone();
        let mut raw = STANDARD.decode(&w.value).unwrap();
        raw[20] ^= 1;
        tampered.value = STANDARD.encode(raw);
        assert!(kms.unwrap_key(&tampered).await.is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
