//! The local development identity provider: an ES256 key that mints tokens and publishes its
//! JWKS. `nivesh up` runs it as tools/dev-idp; tests start its router on a random port.
//!
//! Never used in production: there, Azure AD B2C (or any OIDC provider) issues the tokens and
//! only [`crate::Authenticator`] runs in our services.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use nivesh_runtime::problem::{ApiJson, Problem};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::caller::{DEFAULT_TENANT, Role};
use crate::settings::DEFAULT_AUDIENCE;

/// Longest lifetime the dev token endpoint grants.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a P-256 private key (PKCS#8 or SEC1 PEM): {0}")]
    Key(String),
}

/// What a dev token says. Build with [`DevClaims::investor`], [`DevClaims::distributor`] or
/// [`DevClaims::with_roles`] and adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClaims {
    pub sub: String,
    pub tenant: String,
    pub roles: Vec<Role>,
    pub scopes: Vec<String>,
    pub investor_id: Option<String>,
    pub distributor_id: Option<String>,
    pub audience: String,
    pub ttl: Duration,
}

impl Default for DevClaims {
    fn default() -> Self {
        DevClaims {
            sub: "dev-user".into(),
            tenant: DEFAULT_TENANT.into(),
            roles: Vec::new(),
            scopes: Vec::new(),
            investor_id: None,
            distributor_id: None,
            audience: DEFAULT_AUDIENCE.into(),
            ttl: Duration::from_secs(3600),
        }
    }
}

impl DevClaims {
    /// An investor acting on their own account.
    pub fn investor(investor_id: &str) -> Self {
        DevClaims {
            sub: format!("investor-{investor_id}"),
            roles: vec![Role::Investor],
            investor_id: Some(investor_id.into()),
            ..DevClaims::default()
        }
    }

    /// A distributor (their onboarded investors).
    pub fn distributor(distributor_id: &str) -> Self {
        DevClaims {
            sub: format!("distributor-{distributor_id}"),
            roles: vec![Role::Distributor],
            distributor_id: Some(distributor_id.into()),
            ..DevClaims::default()
        }
    }

    /// Staff with these roles (ops, compliance, admin).
    pub fn with_roles(roles: &[Role]) -> Self {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        DevClaims {
            sub: format!("staff-{}", names.join("-")),
            roles: roles.to_vec(),
            ..DevClaims::default()
        }
    }

    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = tenant.into();
        self
    }

    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = audience.into();
        self
    }

    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }
}

/// The body of `POST /v1/dev/tokens` (everything optional but `roles`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenRequest {
    pub sub: Option<String>,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub investor_id: Option<String>,
    pub distributor_id: Option<String>,
    pub audience: Option<String>,
    pub ttl_seconds: Option<u64>,
}

/// The answer of `POST /v1/dev/tokens` (OAuth 2 token response shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// The dev identity provider's key and issuer name. See the module docs.
#[derive(Clone)]
pub struct DevIssuer {
    inner: Arc<IssuerInner>,
}

struct IssuerInner {
    issuer: String,
    kid: String,
    pem: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl DevIssuer {
    /// A fresh random key.
    pub fn generate(issuer: &str) -> Self {
        let mut rng = rand::rng();
        loop {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            // Out-of-range scalars (probability ~2^-32) are simply drawn again.
            if let Ok(secret) = SecretKey::from_slice(&bytes)
                && let Ok(issuer) = Self::from_secret(&secret, issuer)
            {
                return issuer;
            }
        }
    }

    /// The key of a PEM file (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`, P-256).
    pub fn from_pem_file(path: impl AsRef<Path>, issuer: &str) -> Result<Self, DevIssuerError> {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path).map_err(|source| DevIssuerError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem, issuer)
    }

    pub fn from_pem(pem: &str, issuer: &str) -> Result<Self, DevIssuerError> {
        let secret = SecretKey::from_pkcs8_pem(pem)
            .or_else(|_| SecretKey::from_sec1_pem(pem))
            .map_err(|e| DevIssuerError::Key(e.to_string()))?;
        Self::from_secret(&secret, issuer)
    }

    /// The key at `path` if it exists, else a new one written there (mode 0600): how the dev
    /// identity provider keeps its key (and so the validity of issued tokens) across restarts.
    pub fn load_or_generate(path: impl AsRef<Path>, issuer: &str) -> Result<Self, DevIssuerError> {
        let path = path.as_ref();
        if path.exists() {
            return Self::from_pem_file(path, issuer);
        }
        let issuer = Self::generate(issuer);
        issuer.write_pem_file(path)?;
        Ok(issuer)
    }

    /// Writes the private key as PKCS#8 PEM (owner read/write only).
    pub fn write_pem_file(&self, path: impl AsRef<Path>) -> Result<(), DevIssuerError> {
        let path = path.as_ref();
        let io = |source| DevIssuerError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp).map_err(io)?;
            f.write_all(self.inner.pem.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    fn from_secret(secret: &SecretKey, issuer: &str) -> Result<Self, DevIssuerError> {
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| DevIssuerError::Key(e.to_string()))?
            .to_string();
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| DevIssuerError::Key(e.to_string()))?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(DevIssuerError::Key(
                "public key has no affine coordinates".into(),
            ));
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // RFC 7638 thumbprint: members in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "kid": kid, "use": "sig", "alg": "ES256",
        });
        Ok(DevIssuer {
            inner: Arc::new(IssuerInner {
                issuer: issuer.trim_end_matches('/').to_string(),
                kid,
                pem,
                encoding,
                jwk,
            }),
        })
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The `kid` of its key (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The private key, PKCS#8 PEM (for tools that sign with it, e.g. the PyJWT cross-check).
    pub fn private_key_pem(&self) -> &str {
        &self.inner.pem
    }

    /// A signed token for `claims`, valid from now for `claims.ttl`.
    pub fn mint(&self, claims: &DevClaims) -> String {
        let now = unix_now();
        let mut payload = json!({
            "iss": self.inner.issuer,
            "aud": claims.audience,
            "sub": claims.sub,
            "tid": claims.tenant,
            "roles": claims.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "iat": now,
            "nbf": now,
            "exp": now + claims.ttl.as_secs(),
        });
        if !claims.scopes.is_empty() {
            payload["scp"] = claims.scopes.join(" ").into();
        }
        if let Some(id) = &claims.investor_id {
            payload["extension_InvestorId"] = id.as_str().into();
        }
        if let Some(id) = &claims.distributor_id {
            payload["extension_DistributorId"] = id.as_str().into();
        }
        self.sign(&payload)
    }

    /// Signs an arbitrary payload (ES256, with this key's `kid`): for tests that need claims
    /// [`DevIssuer::mint`] would never produce (expired, future `nbf`, other issuers).
    pub fn sign(&self, payload: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.inner.kid.clone());
        // ES256 with a key validated at construction over a JSON value cannot fail.
        encode(&header, payload, &self.inner.encoding).expect("ES256 signing with a valid key")
    }

    /// The public JWKS document (`{"keys": [..]}`).
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.inner.jwk.clone()] })
    }

    /// The public JWK alone.
    pub fn public_jwk(&self) -> Value {
        self.inner.jwk.clone()
    }

    /// `GET /.well-known/openid-configuration`, `GET /.well-known/jwks.json`,
    /// `POST /v1/dev/tokens` (body [`TokenRequest`], answer [`TokenResponse`]), `GET /healthz`.
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(openid_configuration),
            )
            .route("/.well-known/jwks.json", get(jwks))
            .route("/v1/dev/tokens", post(issue_token))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(self)
    }

    /// Mints the token a [`TokenRequest`] asks for (what `POST /v1/dev/tokens` does).
    pub fn issue(&self, req: &TokenRequest) -> Result<TokenResponse, Problem> {
        let mut roles = Vec::new();
        for name in &req.roles {
            let role: Role = name.parse().map_err(|e: String| {
                Problem::unprocessable(format!(
                    "{e}; known roles: investor, distributor, ops, compliance, admin"
                ))
            })?;
            roles.push(role);
        }
        if roles.is_empty() {
            return Err(Problem::unprocessable(
                "`roles` must name at least one role.",
            ));
        }
        if roles.contains(&Role::Investor) && req.investor_id.is_none() {
            return Err(Problem::unprocessable(
                "The investor role needs `investor_id`.",
            ));
        }
        if roles.contains(&Role::Distributor) && req.distributor_id.is_none() {
            return Err(Problem::unprocessable(
                "The distributor role needs `distributor_id`.",
            ));
        }
        let ttl = Duration::from_secs(req.ttl_seconds.unwrap_or(3600));
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(Problem::unprocessable(
                "`ttl_seconds` must be between 1 and 86400.",
            ));
        }
        let default_sub = match (&req.investor_id, &req.distributor_id) {
            (Some(i), _) => format!("investor-{i}"),
            (None, Some(d)) => format!("distributor-{d}"),
            (None, None) => DevClaims::with_roles(&roles).sub,
        };
        let claims = DevClaims {
            sub: req.sub.clone().unwrap_or(default_sub),
            tenant: req.tenant.clone().unwrap_or_else(|| DEFAULT_TENANT.into()),
            roles,
            scopes: req.scopes.clone(),
            investor_id: req.investor_id.clone(),
            distributor_id: req.distributor_id.clone(),
            audience: req
                .audience
                .clone()
                .unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
            ttl,
        };
        Ok(TokenResponse {
            access_token: self.mint(&claims),
            token_type: "Bearer".into(),
            expires_in: ttl.as_secs(),
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn openid_configuration(State(issuer): State<DevIssuer>) -> axum::Json<Value> {
    let base = issuer.issuer();
    axum::Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/v1/dev/tokens"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["token"],
    }))
}

async fn jwks(State(issuer): State<DevIssuer>) -> axum::Json<Value> {
    axum::Json(issuer.jwks())
}

async fn issue_token(
    State(issuer): State<DevIssuer>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<axum::Json<TokenResponse>, Problem> {
    issuer.issue(&req).map(axum::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key() {
        let a = DevIssuer::generate("http://idp");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/dev.pem");
        a.write_pem_file(&path).unwrap();
        let b = DevIssuer::load_or_generate(&path, "http://idp").unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.jwks(), b.jwks());
        let c = DevIssuer::generate("http://idp");
        assert_ne!(a.kid(), c.kid());
        assert!(
            DevIssuer::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "x"
            )
            .is_err()
        );
    }

    #[test]
    fn token_requests_are_validated() {
        let i = DevIssuer::generate("http://idp");
        let ok = |r: TokenRequest| i.issue(&r);
        assert!(
            ok(TokenRequest {
                roles: vec!["Ops".into()],
                ..Default::default()
            })
            .is_ok()
        );
        assert!(
            ok(TokenRequest {
                roles: vec!["root".into()],
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            ok(TokenRequest {
                roles: vec![],
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            ok(TokenRequest {
                roles: vec!["investor".into()],
                ..Default::default()
            })
            .is_err()
        );
        let r = ok(TokenRequest {
            roles: vec!["investor".into()],
            investor_id: Some("INV0001".into()),
            ttl_seconds: Some(60),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.expires_in, 60);
        assert_eq!(r.access_token.split('.').count(), 3);
    }
}
