//! Bearer-token verification: JWT (RS256 or ES256 only) against the identity provider's JWKS.
//!
//! The key set is cached. It is refetched when older than `jwks_refresh_seconds` (on the next
//! request; one fetch at a time, the others wait for it) and when a token names a `kid` the
//! cache does not know (key rotation), at most once per `jwks_min_refetch_seconds` so forged
//! `kid`s cannot turn us into a load generator against the identity provider. A failed refetch
//! keeps the keys we had.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use nivesh_runtime::problem::Problem;
use serde::Deserialize;
use serde_json::Value;

use crate::caller::{Caller, Role};
use crate::guard::unauthorized_problem;
use crate::settings::AuthSettings;

/// The only signature algorithms accepted. Everything else (`none`, HS*, PS*, EdDSA, ES384) is
/// refused before any key is looked at, which rules out algorithm-confusion attacks.
const ACCEPTED: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("signature algorithm not accepted: {0}")]
    UnsupportedAlgorithm(String),
    #[error("token signed with an unknown key (kid {0})")]
    UnknownKey(String),
    #[error("invalid signature")]
    InvalidSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// The identity provider's keys could not be fetched and none are cached: not the
    /// caller's fault (503).
    #[error("identity provider keys unavailable: {0}")]
    JwksUnavailable(String),
}

impl AuthError {
    /// The response: 401 with `WWW-Authenticate` for a bad token, 503 when we cannot check it.
    pub fn to_problem(&self) -> Problem {
        match self {
            AuthError::JwksUnavailable(_) => {
                tracing::warn!(error = %self, "cannot verify tokens");
                Problem::service_unavailable(Duration::from_secs(5))
            }
            AuthError::MissingToken => unauthorized_problem("Authentication required."),
            other => unauthorized_problem(&format!("Invalid bearer token: {other}.")),
        }
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        e.to_problem()
    }
}

/// Verifies bearer tokens. Cheap to clone (shares the key cache).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    http: reqwest::Client,
    keys: RwLock<KeyCache>,
    /// Serialises fetches; holds when the last one was attempted.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, CachedKey>,
    fetched_at: Option<Instant>,
}

#[derive(Clone)]
struct CachedKey {
    key: Arc<DecodingKey>,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
}

/// The claims we read (B2C-compatible names).
#[derive(Deserialize)]
struct TokenClaims {
    sub: String,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    roles: Option<Value>,
    #[serde(default)]
    scp: Option<Value>,
    #[serde(default, rename = "extension_InvestorId")]
    investor_id: Option<String>,
    #[serde(default, rename = "extension_DistributorId")]
    distributor_id: Option<String>,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.jwks_timeout_seconds.max(1)))
            .build()
            .unwrap_or_default();
        Authenticator {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                http,
                keys: RwLock::new(KeyCache::default()),
                fetch: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// Verifies `bearer_token` (the token itself, without `Bearer `) and returns its caller.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<Caller, AuthError> {
        let token = bearer_token.trim();
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        // The algorithm is checked on the raw header first: jsonwebtoken does not even parse
        // `none`, and the reason for the refusal should say what was refused.
        let alg = header_alg(token)?;
        if !ACCEPTED.iter().any(|a| format!("{a:?}") == alg) {
            return Err(AuthError::UnsupportedAlgorithm(alg));
        }
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Malformed("the header has no kid".into()))?;
        let key = self.key_for(&kid).await?;
        if key.alg.is_some_and(|a| a != header.alg) {
            return Err(AuthError::UnsupportedAlgorithm(format!(
                "{:?} with a key meant for {:?}",
                header.alg, key.alg
            )));
        }
        let s = &self.inner.settings;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&s.issuer]);
        validation.set_audience(&[&s.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = s.leeway_seconds;
        let data = decode::<TokenClaims>(token, &key.key, &validation).map_err(map_jwt_error)?;
        caller_from(data.claims)
    }

    /// Fetches the key set now (e.g. at start-up, to fail early). Returns how many usable keys
    /// it holds.
    pub async fn refresh(&self) -> Result<usize, AuthError> {
        let mut last = self.inner.fetch.lock().await;
        self.fetch_locked(&mut last).await
    }

    async fn key_for(&self, kid: &str) -> Result<CachedKey, AuthError> {
        let s = &self.inner.settings;
        let max_age = Duration::from_secs(s.jwks_refresh_seconds);
        let min_gap = Duration::from_secs(s.jwks_min_refetch_seconds);
        let (found, stale) = {
            let cache = self.read_cache();
            (
                cache.keys.get(kid).cloned(),
                cache.fetched_at.is_none_or(|t| t.elapsed() >= max_age),
            )
        };
        if let (Some(key), false) = (&found, stale) {
            return Ok(key.clone());
        }
        let mut last = self.inner.fetch.lock().await;
        // Someone else may have fetched while we waited.
        {
            let cache = self.read_cache();
            let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < max_age);
            if let (Some(key), true) = (cache.keys.get(kid), fresh) {
                return Ok(key.clone());
            }
        }
        let may_fetch = last.is_none_or(|t| t.elapsed() >= min_gap);
        if may_fetch {
            if let Err(e) = self.fetch_locked(&mut last).await {
                // Stale keys beat no keys: keep serving with what we have.
                if self.read_cache().keys.is_empty() {
                    return Err(e);
                }
                tracing::warn!(error = %e, "JWKS refetch failed; using the cached keys");
            }
        }
        self.read_cache()
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::UnknownKey(kid.to_string()))
    }

    async fn fetch_locked(&self, last: &mut Option<Instant>) -> Result<usize, AuthError> {
        *last = Some(Instant::now());
        let url = &self.inner.settings.jwks_url;
        let unavailable =
            |e: &dyn std::fmt::Display| AuthError::JwksUnavailable(format!("{url}: {e}"));
        let response = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            return Err(unavailable(&response.status()));
        }
        let doc: Value = response.json().await.map_err(|e| unavailable(&e))?;
        let keys = parse_jwks(&doc).map_err(|e| unavailable(&e))?;
        let n = keys.len();
        tracing::debug!(url = %url, keys = n, "JWKS fetched");
        let mut cache = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        Ok(n)
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        self.inner.keys.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The usable signing keys of a JWKS document, by `kid`. Keys we cannot use (no kid, not for
/// signatures, other key types or curves) are skipped, not fatal: real identity providers
/// publish such keys next to the ones that matter.
fn parse_jwks(doc: &Value) -> Result<HashMap<String, CachedKey>, String> {
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWKS document (no `keys` array)")?;
    let mut keys = HashMap::new();
    for raw in list {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            tracing::debug!(key = %raw, "JWKS entry skipped: not a JWK we understand");
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let usable = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => true,
            AlgorithmParameters::EllipticCurve(ec) => ec.curve == EllipticCurve::P256,
            _ => false,
        };
        if !usable {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
            Some(_) => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(
            kid,
            CachedKey {
                key: Arc::new(key),
                alg,
            },
        );
    }
    Ok(keys)
}

/// The `alg` the (unverified) header names.
fn header_alg(token: &str) -> Result<String, AuthError> {
    use base64::Engine as _;
    let malformed = |what: &str| AuthError::Malformed(what.to_string());
    let (header, _) = token
        .split_once('.')
        .ok_or_else(|| malformed("not a JWS compact serialization"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| malformed("header is not base64url"))?;
    let header: Value =
        serde_json::from_slice(&bytes).map_err(|_| malformed("header is not JSON"))?;
    header
        .get("alg")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| malformed("header has no alg"))
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidIssuer => AuthError::WrongIssuer,
        K::InvalidAudience => AuthError::WrongAudience,
        K::InvalidSignature => AuthError::InvalidSignature,
        K::InvalidAlgorithm => AuthError::UnsupportedAlgorithm("does not match the key".into()),
        K::MissingRequiredClaim(c) => AuthError::InvalidClaims(format!("missing `{c}`")),
        K::Json(_) => AuthError::InvalidClaims(e.to_string()),
        _ => AuthError::Malformed(e.to_string()),
    }
}

fn caller_from(c: TokenClaims) -> Result<Caller, AuthError> {
    let tenant = c
        .tid
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| AuthError::InvalidClaims("missing `tid`".into()))?;
    let mut roles: Vec<Role> = strings(c.roles.as_ref(), ',')
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    roles.sort();
    roles.dedup();
    Ok(Caller {
        subject: c.sub,
        tenant,
        roles,
        scopes: strings(c.scp.as_ref(), ' '),
        investor_id: c.investor_id.filter(|s| !s.is_empty()),
        distributor_id: c.distributor_id.filter(|s| !s.is_empty()),
    })
}

/// A claim that is an array of strings or one string of `sep`-separated values.
fn strings(v: Option<&Value>, sep: char) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(sep)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> TokenClaims {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn b2c_claims_map_to_a_caller() {
        let c = caller_from(claims(json!({
            "sub": "u-1", "tid": "nivesh", "roles": ["Investor", "bogus", "INVESTOR", "admin"],
            "scp": "orders.write  portfolio.read", "extension_InvestorId": "INV0001",
        })))
        .unwrap();
        assert_eq!(c.roles, vec![Role::Investor, Role::Admin]);
        assert_eq!(c.scopes, vec!["orders.write", "portfolio.read"]);
        assert_eq!(c.investor_id.as_deref(), Some("INV0001"));
        assert_eq!(c.distributor_id, None);
    }

    #[test]
    fn a_token_without_tenant_is_refused() {
        let e = caller_from(claims(json!({"sub": "u", "roles": ["admin"]}))).unwrap_err();
        assert!(matches!(e, AuthError::InvalidClaims(_)), "{e}");
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        let doc = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird", "kid": "w"}
        ]});
        let keys = parse_jwks(&doc).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["sig"]);
        assert!(parse_jwks(&json!({"nokeys": []})).is_err());
    }
}
