//! The authenticator against a JWKS served over real HTTP (an axum server on 127.0.0.1:0 in the
//! test), with tokens from our own DevIssuer, a fixed RSA test key, hand-crafted attacks, and an
//! independent implementation (PyJWT).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use nivesh_auth::{
    AuthError, AuthSettings, Authenticator, Caller, DEFAULT_AUDIENCE, DevClaims, DevIssuer, Role,
    require_auth,
};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A JWKS endpoint whose document (and health) the test switches, counting fetches.
#[derive(Clone)]
struct JwksServer {
    doc: Arc<Mutex<Value>>,
    failing: Arc<Mutex<bool>>,
    fetches: Arc<AtomicUsize>,
    base: String,
}

impl JwksServer {
    async fn start(doc: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = JwksServer {
            doc: Arc::new(Mutex::new(doc)),
            failing: Arc::new(Mutex::new(false)),
            fetches: Arc::new(AtomicUsize::new(0)),
            base,
        };
        let app = Router::new()
            .route("/.well-known/jwks.json", get(serve_jwks))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    fn set(&self, doc: Value) {
        *self.doc.lock().unwrap() = doc;
    }

    fn fail(&self, failing: bool) {
        *self.failing.lock().unwrap() = failing;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Settings for tokens issued as `self.base` (the issuer is the JWKS host, as with a real
    /// OIDC provider).
    fn settings(&self) -> AuthSettings {
        AuthSettings {
            jwks_min_refetch_seconds: 0,
            ..AuthSettings::for_issuer(&self.base)
        }
    }
}

async fn serve_jwks(State(s): State<JwksServer>) -> Result<axum::Json<Value>, StatusCode> {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    if *s.failing.lock().unwrap() {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Ok(axum::Json(s.doc.lock().unwrap().clone()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A valid payload for `issuer`, to be spoiled by the individual tests.
fn payload(issuer: &str) -> Value {
    let t = now();
    json!({
        "iss": issuer, "aud": DEFAULT_AUDIENCE, "sub": "u-42", "tid": "nivesh",
        "roles": ["investor"], "extension_InvestorId": "INV0001",
        "iat": t, "nbf": t, "exp": t + 600,
    })
}

fn jwks_of(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

/// Issuer + JWKS server + authenticator wired together.
async fn setup() -> (JwksServer, DevIssuer, Authenticator) {
    let server = JwksServer::start(json!({"keys": []})).await;
    let issuer = DevIssuer::generate(&server.base);
    server.set(issuer.jwks());
    let auth = Authenticator::new(&server.settings());
    (server, issuer, auth)
}

fn rsa_jwk() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/rsa-test-key.jwk.json")).unwrap(),
    )
    .unwrap()
}

fn rsa_sign(payload: &Value) -> String {
    let pem = std::fs::read(format!("{FIXTURES}/rsa-test-key.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-test-1".into());
    encode(&header, payload, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn accepts_a_valid_es256_token_and_maps_its_claims() {
    let (_server, issuer, auth) = setup().await;
    let mut claims = DevClaims::distributor("DST07");
    claims.scopes = vec!["orders.write".into(), "portfolio.read".into()];
    let caller = auth.authenticate(&issuer.mint(&claims)).await.unwrap();
    assert_eq!(
        caller,
        Caller {
            subject: "distributor-DST07".into(),
            tenant: "nivesh".into(),
            roles: vec![Role::Distributor],
            scopes: vec!["orders.write".into(), "portfolio.read".into()],
            investor_id: None,
            distributor_id: Some("DST07".into()),
        }
    );
}

#[tokio::test]
async fn accepts_a_valid_rs256_token() {
    let (server, issuer, auth) = setup().await;
    server.set(jwks_of(&[issuer.public_jwk(), rsa_jwk()]));
    let caller = auth
        .authenticate(&rsa_sign(&payload(&server.base)))
        .await
        .unwrap();
    assert_eq!(caller.investor_id.as_deref(), Some("INV0001"));
    assert_eq!(caller.roles, vec![Role::Investor]);
}

#[tokio::test]
async fn rejects_expired_tokens_beyond_the_leeway_only() {
    let (server, issuer, auth) = setup().await;
    let mut p = payload(&server.base);
    p["exp"] = json!(now() - 120);
    p["nbf"] = json!(now() - 600);
    assert_eq!(
        auth.authenticate(&issuer.sign(&p)).await,
        Err(AuthError::Expired)
    );
    // 5 s past exp is within the default 30 s leeway (clock skew).
    p["exp"] = json!(now() - 5);
    assert!(auth.authenticate(&issuer.sign(&p)).await.is_ok());
}

#[tokio::test]
async fn rejects_not_yet_valid_tokens() {
    let (server, issuer, auth) = setup().await;
    let mut p = payload(&server.base);
    p["nbf"] = json!(now() + 300);
    assert_eq!(
        auth.authenticate(&issuer.sign(&p)).await,
        Err(AuthError::NotYetValid)
    );
}

#[tokio::test]
async fn rejects_wrong_audience_and_wrong_issuer() {
    let (server, issuer, auth) = setup().await;
    let mut p = payload(&server.base);
    p["aud"] = json!("some-other-api");
    assert_eq!(
        auth.authenticate(&issuer.sign(&p)).await,
        Err(AuthError::WrongAudience)
    );
    let mut p = payload(&server.base);
    p["iss"] = json!("https://evil.example");
    assert_eq!(
        auth.authenticate(&issuer.sign(&p)).await,
        Err(AuthError::WrongIssuer)
    );
    // Missing exp is refused too (exp is required).
    let mut p = payload(&server.base);
    p.as_object_mut().unwrap().remove("exp");
    assert!(matches!(
        auth.authenticate(&issuer.sign(&p)).await,
        Err(AuthError::InvalidClaims(_))
    ));
}

#[tokio::test]
async fn rejects_unsigned_alg_none_tokens() {
    let (server, issuer, auth) = setup().await;
    let p = b64(&payload(&server.base));
    for alg in ["none", "None", "NONE"] {
        let h = b64(&json!({"alg": alg, "typ": "JWT", "kid": issuer.kid()}));
        for token in [format!("{h}.{p}."), format!("{h}.{p}")] {
            let e = auth.authenticate(&token).await.unwrap_err();
            assert!(
                matches!(e, AuthError::UnsupportedAlgorithm(ref a) if a == alg),
                "{alg}: {e:?}"
            );
        }
    }
    // A valid ES256 token with its signature stripped is no better.
    let valid = issuer.mint(&DevClaims::investor("INV0001"));
    let stripped = valid.rsplit_once('.').unwrap().0.to_string() + ".";
    assert!(auth.authenticate(&stripped).await.is_err());
}

#[tokio::test]
async fn rejects_hs256_signed_with_the_public_key_algorithm_confusion() {
    let (server, issuer, auth) = setup().await;
    server.set(jwks_of(&[issuer.public_jwk(), rsa_jwk()]));
    let rsa_public_pem = std::fs::read(format!("{FIXTURES}/rsa-test-key.pub.pem")).unwrap();
    let ec_public_jwk = serde_json::to_vec(&issuer.public_jwk()).unwrap();
    for (kid, secret) in [
        ("rsa-test-1", rsa_public_pem),
        (issuer.kid(), ec_public_jwk),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(kid.to_string());
            let token = encode(
                &header,
                &payload(&server.base),
                &EncodingKey::from_secret(&secret),
            )
            .unwrap();
            assert!(
                matches!(
                    auth.authenticate(&token).await,
                    Err(AuthError::UnsupportedAlgorithm(_))
                ),
                "{alg:?} with kid {kid}"
            );
        }
    }
}

#[tokio::test]
async fn rejects_a_tampered_payload() {
    let (server, issuer, auth) = setup().await;
    let token = issuer.mint(&DevClaims::investor("INV0001"));
    let parts: Vec<&str> = token.split('.').collect();
    let mut p = payload(&server.base);
    p["roles"] = json!(["admin"]);
    let forged = format!("{}.{}.{}", parts[0], b64(&p), parts[2]);
    assert_eq!(
        auth.authenticate(&forged).await,
        Err(AuthError::InvalidSignature)
    );
    // And a flipped signature byte.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        auth.authenticate(&flipped).await,
        Err(AuthError::InvalidSignature)
    );
    assert!(auth.authenticate(&token).await.is_ok());
}

#[tokio::test]
async fn rejects_an_unknown_kid_and_a_key_the_jwks_does_not_publish() {
    let (server, _issuer, auth) = setup().await;
    // Same issuer name, different key: its kid is not in the JWKS.
    let impostor = DevIssuer::generate(&server.base);
    let e = auth
        .authenticate(&impostor.mint(&DevClaims::investor("INV0001")))
        .await;
    assert_eq!(e, Err(AuthError::UnknownKey(impostor.kid().to_string())));
    // The impostor's signature under the real kid does not verify.
    let token = impostor.mint(&DevClaims::investor("INV0001"));
    let (h, rest) = token.split_once('.').unwrap();
    let mut header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    header["kid"] = json!(_issuer.kid());
    let relabelled = format!("{}.{rest}", b64(&header));
    assert_eq!(
        auth.authenticate(&relabelled).await,
        Err(AuthError::InvalidSignature)
    );
}

#[tokio::test]
async fn key_rotation_is_picked_up_on_an_unknown_kid() {
    let (server, old, auth) = setup().await;
    assert!(
        auth.authenticate(&old.mint(&DevClaims::investor("INV0001")))
            .await
            .is_ok()
    );
    assert_eq!(server.fetches(), 1);
    // The provider rotates: the JWKS now publishes only the new key.
    let new = DevIssuer::generate(&server.base);
    server.set(new.jwks());
    // Still cached: tokens of the old key keep working until the next refetch.
    assert!(
        auth.authenticate(&old.mint(&DevClaims::investor("INV0001")))
            .await
            .is_ok()
    );
    assert_eq!(server.fetches(), 1);
    // A token with the new kid makes the authenticator refetch and is accepted.
    let caller = auth
        .authenticate(&new.mint(&DevClaims::investor("INV0002")))
        .await
        .unwrap();
    assert_eq!(caller.investor_id.as_deref(), Some("INV0002"));
    assert_eq!(server.fetches(), 2);
    // The old key is gone with that refetch.
    assert!(matches!(
        auth.authenticate(&old.mint(&DevClaims::investor("INV0001")))
            .await,
        Err(AuthError::UnknownKey(_))
    ));
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let (server, issuer, _) = setup().await;
    let auth = Authenticator::new(&AuthSettings {
        jwks_min_refetch_seconds: 3600,
        ..server.settings()
    });
    assert!(
        auth.authenticate(&issuer.mint(&DevClaims::investor("INV0001")))
            .await
            .is_ok()
    );
    assert_eq!(server.fetches(), 1);
    let new = DevIssuer::generate(&server.base);
    server.set(jwks_of(&[issuer.public_jwk(), new.public_jwk()]));
    for _ in 0..20 {
        let forged = DevIssuer::generate(&server.base).mint(&DevClaims::investor("INV0001"));
        assert!(matches!(
            auth.authenticate(&forged).await,
            Err(AuthError::UnknownKey(_))
        ));
    }
    // Within the interval, not even the legitimately rotated key causes a fetch.
    assert!(
        auth.authenticate(&new.mint(&DevClaims::investor("INV0001")))
            .await
            .is_err()
    );
    assert_eq!(
        server.fetches(),
        1,
        "unknown kids must not trigger a fetch per request"
    );
}

#[tokio::test]
async fn keys_are_refreshed_periodically_and_kept_when_the_provider_is_down() {
    let (server, issuer, _) = setup().await;
    let auth = Authenticator::new(&AuthSettings {
        jwks_refresh_seconds: 1,
        ..server.settings()
    });
    let token = issuer.mint(&DevClaims::investor("INV0001"));
    assert!(auth.authenticate(&token).await.is_ok());
    assert!(auth.authenticate(&token).await.is_ok());
    assert_eq!(server.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(auth.authenticate(&token).await.is_ok());
    assert_eq!(server.fetches(), 2, "a stale key set is refetched");
    // The provider fails: stale keys keep verifying.
    server.fail(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(auth.authenticate(&token).await.is_ok());
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn an_unreachable_provider_without_cached_keys_is_a_503_not_a_401() {
    let (server, issuer, auth) = setup().await;
    server.fail(true);
    let e = auth
        .authenticate(&issuer.mint(&DevClaims::investor("INV0001")))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::JwksUnavailable(_)), "{e:?}");
    assert_eq!(e.to_problem().status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(auth.refresh().await.map_err(|_| ()), Err(()));
    server.fail(false);
    assert_eq!(auth.refresh().await, Ok(1));
}

/// The guard: 401 problem+json with WWW-Authenticate, Caller in the handler, 403 from
/// require_role.
#[tokio::test]
async fn the_guard_answers_401_and_hands_the_caller_to_handlers() {
    let (server, issuer, auth) = setup().await;
    async fn whoami(caller: Caller) -> Result<String, nivesh_runtime::problem::Problem> {
        caller.require_any_role(&[Role::Investor, Role::Admin])?;
        Ok(caller.subject)
    }
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route_layer(require_auth(auth))
        .route("/unguarded", get(whoami));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<String>| {
        let mut req = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        req.send()
    };
    for header in [
        None,
        Some("Bearer".to_string()),
        Some("Basic dXNlcjpwdw==".into()),
        Some("Bearer not.a.jwt".into()),
    ] {
        let r = get("/whoami", header.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{header:?}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 401);
    }
    let token = issuer.mint(&DevClaims::investor("INV0001"));
    let r = get("/whoami", Some(format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "investor-INV0001");
    // Lower-case scheme is fine (RFC 7235: case-insensitive).
    let r = get("/whoami", Some(format!("bearer {token}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ops = issuer.mint(&DevClaims::with_roles(&[Role::Ops]));
    let r = get("/whoami", Some(format!("Bearer {ops}"))).await.unwrap();
    assert_eq!(r.status(), 403);
    // The extractor without the guard: no caller, 401 (never an anonymous pass).
    let r = get("/unguarded", Some(format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    drop(server);
}

/// The dev identity provider's own router: discovery → JWKS → token endpoint → accepted.
#[tokio::test]
async fn dev_issuer_router_issues_tokens_the_authenticator_accepts() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = DevIssuer::generate(&base);
    tokio::spawn(async move { axum::serve(listener, issuer.router()).await.unwrap() });
    let http = reqwest::Client::new();
    let config: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["issuer"], base.as_str());
    let settings = AuthSettings {
        issuer: base.clone(),
        jwks_url: config["jwks_uri"].as_str().unwrap().to_string(),
        ..AuthSettings::default()
    };
    let r = http
        .post(format!("{base}/v1/dev/tokens"))
        .json(&json!({"roles": ["distributor"], "distributor_id": "DST01", "tenant": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let caller = Authenticator::new(&settings)
        .authenticate(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(caller.tenant, "acme");
    assert_eq!(caller.distributor_id.as_deref(), Some("DST01"));
    let r = http
        .post(format!("{base}/v1/dev/tokens"))
        .json(&json!({"roles": ["root"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}
