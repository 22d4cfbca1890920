//! Independent-implementation check: tokens minted by PyJWT (Python, `cryptography` backend)
//! with the dev issuer's PEM key (ES256) and the RSA test key (RS256) are accepted, and PyJWT
//! tokens with `alg: none`, an expired `exp` or a wrong audience are refused. Requires `python3`
//! with `pyjwt` and `cryptography` (scripts/ensure-deps installs them); set
//! NIVESH_SKIP_PY_CROSSCHECK=1 to skip explicitly.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use nivesh_auth::{AuthError, AuthSettings, Authenticator, DEFAULT_AUDIENCE, DevIssuer, Role};
use serde_json::{Value, json};

const SCRIPT: &str = r#"
import json, sys, time
import jwt  # PyJWT

args = json.load(open(sys.argv[1]))
now = int(time.time())
def claims(**over):
    c = {"iss": args["iss"], "aud": args["aud"], "sub": "py-user", "tid": "nivesh",
         "roles": ["Investor"], "scp": "orders.write", "extension_InvestorId": "INV0009",
         "iat": now, "nbf": now, "exp": now + 300}
    c.update(over)
    return c
ec = open(args["ec_pem"]).read()
rsa = open(args["rsa_pem"]).read()
ec_h = {"kid": args["ec_kid"]}
out = {
    "es256": jwt.encode(claims(), ec, algorithm="ES256", headers=ec_h),
    "rs256": jwt.encode(claims(sub="py-rsa"), rsa, algorithm="RS256", headers={"kid": "rsa-test-1"}),
    "none": jwt.encode(claims(roles=["admin"]), None, algorithm="none", headers=ec_h),
    "expired": jwt.encode(claims(exp=now - 3600, nbf=now - 7200, iat=now - 7200), ec, algorithm="ES256", headers=ec_h),
    "wrong_aud": jwt.encode(claims(aud="another-api"), ec, algorithm="ES256", headers=ec_h),
}
print(json.dumps(out))
"#;

fn pyjwt_available() -> bool {
    Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn pyjwt_tokens_are_verified_like_ours() {
    if !pyjwt_available() {
        if std::env::var("NIVESH_SKIP_PY_CROSSCHECK").as_deref() == Ok("1") {
            eprintln!("PyJWT cross-check skipped (NIVESH_SKIP_PY_CROSSCHECK=1)");
            return;
        }
        panic!(
            "python3 cannot import jwt + cryptography: run scripts/ensure-deps (or set NIVESH_SKIP_PY_CROSSCHECK=1)"
        );
    }
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = DevIssuer::generate(&base);
    let rsa_jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/rsa-test-key.jwk.json")).unwrap(),
    )
    .unwrap();
    let jwks = Arc::new(json!({"keys": [issuer.public_jwk(), rsa_jwk]}));
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move { axum::Json((*jwks).clone()) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let ec_pem = dir.path().join("dev-idp.pem");
    issuer.write_pem_file(&ec_pem).unwrap();
    let args = dir.path().join("args.json");
    std::fs::write(
        &args,
        serde_json::to_vec(&json!({
            "iss": base, "aud": DEFAULT_AUDIENCE, "ec_kid": issuer.kid(),
            "ec_pem": ec_pem, "rsa_pem": format!("{fixtures}/rsa-test-key.pem"),
        }))
        .unwrap(),
    )
    .unwrap();
    let script = dir.path().join("mint.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyJWT script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    let token = |name: &str| tokens[name].as_str().unwrap().to_string();

    let auth = Authenticator::new(&AuthSettings::for_issuer(&base));
    let es = auth.authenticate(&token("es256")).await.unwrap();
    assert_eq!(es.subject, "py-user");
    assert_eq!(es.roles, vec![Role::Investor]);
    assert_eq!(es.investor_id.as_deref(), Some("INV0009"));
    assert_eq!(es.scopes, vec!["orders.write"]);
    let rs = auth.authenticate(&token("rs256")).await.unwrap();
    assert_eq!(rs.subject, "py-rsa");

    assert!(matches!(
        auth.authenticate(&token("none")).await,
        Err(AuthError::UnsupportedAlgorithm(_))
    ));
    assert_eq!(
        auth.authenticate(&token("expired")).await,
        Err(AuthError::Expired)
    );
    assert_eq!(
        auth.authenticate(&token("wrong_aud")).await,
        Err(AuthError::WrongAudience)
    );
}
