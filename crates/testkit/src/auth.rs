//! A dev identity provider for tests: a [`DevIssuer`] serving its JWKS on 127.0.0.1 (random
//! port) inside the test, the [`AuthSettings`] a service under test needs to trust it, and
//! one-liners minting bearer tokens for each kind of caller.

use nivesh_auth::{AuthSettings, DevClaims, DevIssuer, Role};

/// A running test identity provider. Dropping it stops serving the JWKS (tokens already
/// verified stay cached by the services' authenticators).
pub struct TestIdp {
    issuer: DevIssuer,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIdp {
    /// Binds 127.0.0.1:0 and serves the issuer's router on the current tokio runtime.
    pub async fn start() -> TestIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test identity provider");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let issuer = DevIssuer::generate(&url);
        let router = issuer.clone().router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        TestIdp { issuer, url, task }
    }

    /// Its base URL (= the `iss` of its tokens).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn issuer(&self) -> &DevIssuer {
        &self.issuer
    }

    /// The `[auth]` settings that trust this provider.
    pub fn settings(&self) -> AuthSettings {
        AuthSettings::for_issuer(&self.url)
    }

    /// The same as `NIVESH__AUTH__*` environment variables (for a service run as a process).
    pub fn env(&self) -> Vec<(String, String)> {
        let s = self.settings();
        vec![
            ("NIVESH__AUTH__ISSUER".into(), s.issuer),
            ("NIVESH__AUTH__JWKS_URL".into(), s.jwks_url),
            ("NIVESH__AUTH__AUDIENCE".into(), s.audience),
        ]
    }

    /// A raw token for arbitrary claims.
    pub fn token(&self, claims: &DevClaims) -> String {
        self.issuer.mint(claims)
    }

    /// `Bearer <token>`, ready for an `Authorization` header.
    pub fn bearer(&self, claims: &DevClaims) -> String {
        format!("Bearer {}", self.token(claims))
    }

    /// An investor acting on their own account (tenant `nivesh`).
    pub fn investor(&self, investor_id: &str) -> String {
        self.bearer(&DevClaims::investor(investor_id))
    }

    /// A distributor (tenant `nivesh`).
    pub fn distributor(&self, distributor_id: &str) -> String {
        self.bearer(&DevClaims::distributor(distributor_id))
    }

    /// Staff with one role (ops, compliance, admin), tenant `nivesh`.
    pub fn role(&self, role: Role) -> String {
        self.bearer(&DevClaims::with_roles(&[role]))
    }

    pub fn admin(&self) -> String {
        self.role(Role::Admin)
    }

    pub fn ops(&self) -> String {
        self.role(Role::Ops)
    }
}
