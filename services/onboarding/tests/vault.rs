//! The vault over a real embedded store: round trip, crypto-shred, AAD binding; and the Azure
//! Key Vault adapter against an HTTP stub of the Key Vault keys API.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDate, Utc};
use nivesh_onboarding::config::AzureKeyVaultConfig;
use nivesh_onboarding::vault::{
    AzureKeyVaultKms, Kms, KmsError, LocalKeyFileKms, SensitiveData, Vault, VaultError,
};
use nivesh_store::{Batch, DocumentStore, EmbeddedStore, WriteOp};
use secrecy::SecretString;
use serde_json::{Value, json};

fn data(aadhaar: &str) -> SensitiveData {
    SensitiveData {
        pan: "ABCPE1234F".into(),
        aadhaar: Some(aadhaar.into()),
        date_of_birth: NaiveDate::from_ymd_opt(1990, 4, 12).unwrap(),
        bank_account_number: "001234567890".into(),
    }
}

fn store() -> Arc<dyn DocumentStore> {
    Arc::new(EmbeddedStore::in_memory().unwrap())
}

/// Seal, open, shred: after shredding the ciphertext is still stored and nothing decrypts it;
/// shredding twice is a no-op; a ciphertext moved to another investor does not decrypt.
#[tokio::test]
async fn local_vault_round_trip_and_crypto_shred() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(
        LocalKeyFileKms::open_or_create(&LocalKeyFileKms::default_path(dir.path())).unwrap(),
    );
    let store = store();
    let vault = Vault::new(store.clone(), kms);
    let token = vault
        .seal("inv-1", &data("234567890124"), Utc::now())
        .await
        .unwrap();
    assert!(token.starts_with("vlt_"));
    assert_eq!(vault.open("inv-1").await.unwrap(), data("234567890124"));
    assert!(matches!(
        vault.open("inv-2").await,
        Err(VaultError::NotFound)
    ));
    // Entries are written once.
    assert!(
        vault
            .seal("inv-1", &data("234567890124"), Utc::now())
            .await
            .is_err()
    );

    let entry = vault.entry("inv-1").await.unwrap().unwrap();
    let raw = serde_json::to_string(&entry).unwrap();
    assert!(
        !raw.contains("234567890124") && !raw.contains("ABCPE1234F"),
        "{raw}"
    );

    // The same entry copied under another investor fails authentication (AAD binding).
    let copy = Batch::new("vault", "inv-3").op(WriteOp::Create {
        id: "pii".into(),
        body: serde_json::to_value(&entry).unwrap(),
        ttl: None,
    });
    store.commit(copy).await.unwrap();
    assert!(matches!(vault.open("inv-3").await, Err(VaultError::Crypto)));

    assert!(vault.shred("inv-1", Utc::now()).await.unwrap());
    assert!(!vault.shred("inv-1", Utc::now()).await.unwrap());
    assert!(matches!(
        vault.open("inv-1").await,
        Err(VaultError::Shredded)
    ));
    let after = vault.entry("inv-1").await.unwrap().unwrap();
    assert_eq!(after.ciphertext, entry.ciphertext);
    assert!(after.wrapped_key.is_none());
}

/// The stub Entra ID token endpoint's state: forms received and the lifetime it grants.
#[derive(Clone, Default)]
struct TokenStub {
    forms: Arc<Mutex<Vec<String>>>,
    expires_in: Arc<Mutex<u64>>,
}

async fn token_op(
    State(stub): State<KeyVaultStub>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
    body: String,
) -> Response {
    stub.tokens
        .forms
        .lock()
        .unwrap()
        .push(format!("tenant={tenant}&{body}"));
    let expires_in = *stub.tokens.expires_in.lock().unwrap();
    Json(json!({"token_type": "Bearer", "access_token": TOKEN, "expires_in": expires_in}))
        .into_response()
}

/// A request the stub saw: (path, alg, Authorization header).
type Seen = (String, String, Option<String>);

/// What the stub Key Vault saw and how it behaves.
#[derive(Clone, Default)]
struct KeyVaultStub {
    seen: Arc<Mutex<Vec<Seen>>>,
    fail_with: Arc<Mutex<Option<StatusCode>>>,
    base: Arc<Mutex<String>>,
    tokens: TokenStub,
}

const TOKEN: &str = "test-bearer-token";
/// The stub's "RSA" is an XOR with this pad (the adapter must not care how the key wraps).
const PAD: u8 = 0x5a;

async fn key_op(
    State(stub): State<KeyVaultStub>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    stub.seen.lock().unwrap().push((
        uri.path().to_string(),
        body["alg"].to_string(),
        auth.clone(),
    ));
    if let Some(code) = *stub.fail_with.lock().unwrap() {
        return (code, Json(json!({"error": {"code": "Throttled"}}))).into_response();
    }
    if auth.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "Unauthorized"}})),
        )
            .into_response();
    }
    if q.get("api-version").map(String::as_str) != Some("7.4") || body["alg"] != "RSA-OAEP-256" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "BadParameter"}})),
        )
            .into_response();
    }
    let value = URL_SAFE_NO_PAD
        .decode(body["value"].as_str().unwrap_or_default())
        .unwrap();
    let out: Vec<u8> = value.iter().map(|b| b ^ PAD).collect();
    let base = stub.base.lock().unwrap().clone();
    let kid = format!("{base}/keys/onboarding-kek/0123456789abcdef");
    Json(json!({"kid": kid, "value": URL_SAFE_NO_PAD.encode(out)})).into_response()
}

async fn start_stub() -> (String, KeyVaultStub) {
    let stub = KeyVaultStub::default();
    let app = axum::Router::new()
        .route("/keys/{name}/wrapkey", post(key_op))
        .route("/keys/{name}/{version}/unwrapkey", post(key_op))
        .route("/{tenant}/oauth2/v2.0/token", post(token_op))
        .with_state(stub.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    *stub.base.lock().unwrap() = url.clone();
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, stub)
}

fn azure_config(url: &str, token: &str) -> AzureKeyVaultConfig {
    AzureKeyVaultConfig {
        vault_url: url.into(),
        bearer_token: Some(SecretString::from(token.to_string())),
        ..AzureKeyVaultConfig::default()
    }
}

/// The adapter speaks the Key Vault REST API: wrapkey on the key, unwrapkey on the returned
/// kid, base64url values, api-version and bearer token; and the vault works through it.
#[tokio::test]
async fn azure_key_vault_adapter_against_a_stub() {
    let (url, stub) = start_stub().await;
    let kms = Arc::new(AzureKeyVaultKms::new(&azure_config(&url, TOKEN)).unwrap());
    let dek = [42u8; 32];
    let wrapped = kms.wrap_key(&dek).await.unwrap();
    assert_eq!(
        wrapped.kek_id,
        format!("{url}/keys/onboarding-kek/0123456789abcdef")
    );
    assert_eq!(wrapped.algorithm, "RSA-OAEP-256");
    assert_eq!(&kms.unwrap_key(&wrapped).await.unwrap()[..], &dek[..]);
    {
        let seen = stub.seen.lock().unwrap();
        assert_eq!(seen[0].0, "/keys/onboarding-kek/wrapkey");
        assert_eq!(seen[1].0, "/keys/onboarding-kek/0123456789abcdef/unwrapkey");
        assert!(
            seen.iter()
                .all(|s| s.2.as_deref() == Some("Bearer test-bearer-token"))
        );
    }

    // The whole vault through Key Vault.
    let vault = Vault::new(store(), kms.clone());
    vault
        .seal("inv-kv", &data("345678901236"), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        vault.open("inv-kv").await.unwrap().aadhaar.as_deref(),
        Some("345678901236")
    );
    vault.shred("inv-kv", Utc::now()).await.unwrap();
    assert!(matches!(
        vault.open("inv-kv").await,
        Err(VaultError::Shredded)
    ));

    // A wrong token is refused; throttling and outages are "unavailable".
    let wrong = AzureKeyVaultKms::new(&azure_config(&url, "nope")).unwrap();
    assert!(matches!(
        wrong.wrap_key(&dek).await,
        Err(KmsError::Refused(_))
    ));
    *stub.fail_with.lock().unwrap() = Some(StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(
        kms.wrap_key(&dek).await,
        Err(KmsError::Unavailable(_))
    ));
    *stub.fail_with.lock().unwrap() = Some(StatusCode::SERVICE_UNAVAILABLE);
    assert!(matches!(
        kms.unwrap_key(&wrapped).await,
        Err(KmsError::Unavailable(_))
    ));
    *stub.fail_with.lock().unwrap() = None;
    // A kid pointing at another host is never called (the token would leak there).
    let mut foreign = wrapped.clone();
    foreign.kek_id = "http://evil.example/keys/onboarding-kek/1".into();
    let before = stub.seen.lock().unwrap().len();
    assert!(matches!(
        kms.unwrap_key(&foreign).await,
        Err(KmsError::Refused(_))
    ));
    assert_eq!(stub.seen.lock().unwrap().len(), before);
    // Nothing listens: unavailable.
    let dead = AzureKeyVaultKms::new(&azure_config("http://127.0.0.1:9", TOKEN)).unwrap();
    assert!(matches!(
        dead.wrap_key(&dek).await,
        Err(KmsError::Unavailable(_))
    ));
    // Configuration errors are explicit.
    assert!(AzureKeyVaultKms::new(&azure_config("", TOKEN)).is_err());
    let mut no_token = azure_config(&url, TOKEN);
    no_token.bearer_token = None;
    assert!(AzureKeyVaultKms::new(&no_token).is_err());
}

/// Without a fixed token the adapter uses AKS workload identity: the federated token file is
/// exchanged at the token endpoint (client assertion, Key Vault scope), the access token is
/// cached, and renewed once it is within five minutes of expiry.
#[tokio::test]
async fn azure_key_vault_with_workload_identity_tokens() {
    let (url, stub) = start_stub().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, "federated-jwt-1\n").unwrap();
    *stub.tokens.expires_in.lock().unwrap() = 3600;
    let config = AzureKeyVaultConfig {
        vault_url: url.clone(),
        bearer_token: None,
        authority_host: format!("{url}/"),
        tenant_id: "tenant-1".into(),
        client_id: "client-1".into(),
        federated_token_file: token_file.display().to_string(),
        ..AzureKeyVaultConfig::default()
    };
    let kms = AzureKeyVaultKms::new(&config).unwrap();
    let dek = [3u8; 32];
    let wrapped = kms.wrap_key(&dek).await.unwrap();
    assert_eq!(&kms.unwrap_key(&wrapped).await.unwrap()[..], &dek[..]);
    {
        let forms = stub.tokens.forms.lock().unwrap();
        assert_eq!(forms.len(), 1, "the token is cached: {forms:?}");
        let f = &forms[0];
        for part in [
            "tenant=tenant-1",
            "client_id=client-1",
            "scope=https%3A%2F%2Fvault.azure.net%2F.default",
            "grant_type=client_credentials",
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
            "client_assertion=federated-jwt-1",
        ] {
            assert!(f.contains(part), "{part} missing from {f}");
        }
        assert!(
            stub.seen
                .lock()
                .unwrap()
                .iter()
                .all(|s| s.2.as_deref() == Some("Bearer test-bearer-token"))
        );
    }
    // A short-lived token is renewed on the next call, with the rotated federated token.
    *stub.tokens.expires_in.lock().unwrap() = 60;
    let kms = AzureKeyVaultKms::new(&config).unwrap();
    kms.wrap_key(&dek).await.unwrap();
    std::fs::write(&token_file, "federated-jwt-2").unwrap();
    kms.wrap_key(&dek).await.unwrap();
    let forms = stub.tokens.forms.lock().unwrap();
    assert_eq!(forms.len(), 3);
    assert!(
        forms[2].contains("client_assertion=federated-jwt-2"),
        "{}",
        forms[2]
    );
}

/// The PAN index key through Key Vault: generated and wrapped (wrapkey) on the first start,
/// unwrapped (unwrapkey on the returned kid) by every later start, which derives the same
/// claim keys; the stored document holds only the wrapped form. A start whose KMS cannot
/// unwrap it fails instead of hashing with another key.
#[tokio::test]
async fn pan_index_key_is_wrapped_by_key_vault() {
    use nivesh_onboarding::claims::{INDEX_KEY_ID, INDEX_KEY_PARTITION, PanIndex};
    let (url, stub) = start_stub().await;
    let kms = AzureKeyVaultKms::new(&azure_config(&url, TOKEN)).unwrap();
    let store = store();
    let first = PanIndex::load_or_create(store.as_ref(), &kms, Utc::now())
        .await
        .unwrap();
    let paths: Vec<String> = stub
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect();
    assert_eq!(paths, ["/keys/onboarding-kek/wrapkey"]);
    let doc = store
        .get("vault", INDEX_KEY_PARTITION, INDEX_KEY_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        doc.body["wrapped_key"]["kek_id"],
        format!("{url}/keys/onboarding-kek/0123456789abcdef")
    );

    let again = PanIndex::load_or_create(store.as_ref(), &kms, Utc::now())
        .await
        .unwrap();
    let paths: Vec<String> = stub
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/keys/onboarding-kek/wrapkey",
            "/keys/onboarding-kek/0123456789abcdef/unwrapkey"
        ]
    );
    let k = first.claim_key("nivesh", "ABCPE1234F");
    assert_eq!(k, again.claim_key("nivesh", "ABCPE1234F"));
    // The stub's wrap is an XOR pad: the stored value is not the key itself.
    let stored = base64::engine::general_purpose::STANDARD
        .decode(doc.body["wrapped_key"]["value"].as_str().unwrap())
        .unwrap();
    let unwrapped: Vec<u8> = stored.iter().map(|b| b ^ PAD).collect();
    assert_eq!(
        PanIndex::from_key(unwrapped.clone().try_into().unwrap()).claim_key("nivesh", "ABCPE1234F"),
        k
    );
    assert_ne!(stored, unwrapped);

    // Another KMS (a local key file) cannot unwrap it: start-up fails, no new key is made.
    let dir = tempfile::tempdir().unwrap();
    let local =
        LocalKeyFileKms::open_or_create(&LocalKeyFileKms::default_path(dir.path())).unwrap();
    assert!(
        PanIndex::load_or_create(store.as_ref(), &local, Utc::now())
            .await
            .is_err()
    );
    let still = store
        .get("vault", INDEX_KEY_PARTITION, INDEX_KEY_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.body, doc.body);
}
