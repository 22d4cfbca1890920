//! The upload API needs an ops or admin token of the platform tenant: 401 without a valid
//! token, 403 for any other role, and only then is the file looked at.

use std::sync::Arc;

use nivesh_events::AvroCodec;
use nivesh_nav_ingestor::ingest::Ingestor;
use nivesh_store::DocumentStore;
use nivesh_store::embedded::EmbeddedStore;
use nivesh_testkit::{DevClaims, Role, TestIdp};

const FILE: &str = "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n \r\n\
Open Ended Schemes(Debt Scheme - Liquid Fund)\r\n \r\nTest Mutual Fund\r\n \r\n\
900001;-;-;Test Liquid Fund - Growth;1234.5678;25-Feb-2025\r\n";

#[tokio::test]
async fn uploads_and_reports_need_ops_or_admin() {
    let idp = TestIdp::start().await;
    let store: Arc<dyn DocumentStore> = Arc::new(EmbeddedStore::in_memory().unwrap());
    let ingestor = Ingestor::new(
        store,
        AvroCodec::single_object(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let app = nivesh_nav_ingestor::api::router(
        ingestor,
        nivesh_auth::Authenticator::new(&idp.settings()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let upload = |auth: Option<String>| {
        let mut req = http
            .post(format!("{base}/v1/nav/files?source=AMFI"))
            .body(FILE);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let acme_ops = idp.bearer(&DevClaims::with_roles(&[Role::Ops]).tenant("acme"));
    for (who, auth, want) in [
        ("no token", None, 401),
        ("garbage", Some("Bearer x".to_string()), 401),
        ("investor", Some(idp.investor("INV0001")), 403),
        ("distributor", Some(idp.distributor("DST001")), 403),
        ("compliance", Some(idp.role(Role::Compliance)), 403),
        ("ops of tenant acme", Some(acme_ops.clone()), 403),
    ] {
        let r = upload(auth).await.unwrap();
        assert_eq!(r.status().as_u16(), want, "upload as {who}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // Ops uploads (201), admin re-delivers the same bytes (200, duplicate).
    let r = upload(Some(idp.ops())).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let report: serde_json::Value = r.json().await.unwrap();
    let file_id = report["fileId"].as_str().unwrap().to_string();
    let r = upload(Some(idp.admin())).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let get = |auth: Option<String>| {
        let mut req = http.get(format!("{base}/v1/nav/files/{file_id}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for (who, auth, want) in [
        ("no token", None, 401),
        ("investor", Some(idp.investor("INV0001")), 403),
        ("ops of tenant acme", Some(acme_ops), 403),
        ("ops", Some(idp.ops()), 200),
        ("admin", Some(idp.admin()), 200),
    ] {
        assert_eq!(
            get(auth).await.unwrap().status().as_u16(),
            want,
            "report as {who}"
        );
    }
}
