//! Who may read whose portfolio: every role × endpoint × ownership, with exact statuses.
//! 401: no/invalid token; 403: a role that never may; 404: another investor's portfolio
//! (whether or not that investor exists).

mod common;

use common::*;
use nivesh_testkit::{DevClaims, Role};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_endpoint_ownership_matrix() {
    let svc = Service::start().await;
    // INV0003 (onboarded by DST001 in config/investors.json) has a holding; INV0001 none.
    svc.publish(
        "transaction.completed",
        "INV0003",
        &purchase(
            "INV0003",
            "txn-m1",
            "119551",
            "2024-01-01",
            "10",
            "100.000",
            "1000.00",
        ),
    )
    .await;
    svc.wait_json(
        "/v1/investors/INV0003/portfolio",
        "INV0003's holding",
        |v| v["holdings"].as_array().is_some_and(|h| !h.is_empty()),
    )
    .await;

    let idp = &svc.idp;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let wrong_aud = idp.issuer().sign(&json!({
        "iss": idp.url(), "aud": "another-api", "sub": "investor-INV0003", "tid": "nivesh",
        "roles": ["investor"], "extension_InvestorId": "INV0003", "iat": now, "exp": now + 600,
    }));
    let callers: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("Bearer nope".into())),
        ("wrong audience", Some(format!("Bearer {wrong_aud}"))),
        ("investor INV0003", Some(idp.investor("INV0003"))),
        ("investor INV0001", Some(idp.investor("INV0001"))),
        ("distributor DST001", Some(idp.distributor("DST001"))),
        ("distributor DST002", Some(idp.distributor("DST002"))),
        ("ops", Some(idp.ops())),
        ("compliance", Some(idp.role(Role::Compliance))),
        ("admin", Some(idp.admin())),
        (
            "admin of tenant acme",
            Some(idp.bearer(&DevClaims::with_roles(&[Role::Admin]).tenant("acme"))),
        ),
        (
            "investor INV0003 of tenant acme",
            Some(idp.bearer(&DevClaims::investor("INV0003").tenant("acme"))),
        ),
    ];
    // Columns in the order above.
    let own_inv3 = [401, 401, 401, 200, 404, 200, 404, 403, 403, 200, 404, 404];
    let inv1 = [401, 401, 401, 404, 200, 404, 404, 403, 403, 200, 404, 404];
    // An investor nobody has heard of: as for any other investor's (only admins get the empty 200).
    let unknown = [401, 401, 401, 404, 404, 404, 404, 403, 403, 200, 404, 404];
    let mut cases = Vec::new();
    for suffix in ["", "/transactions", "/reconciliation"] {
        cases.push((format!("/v1/investors/INV0003/portfolio{suffix}"), own_inv3));
        cases.push((format!("/v1/investors/INV0001/portfolio{suffix}"), inv1));
        cases.push((format!("/v1/investors/INV7777/portfolio{suffix}"), unknown));
    }
    let bare = reqwest::Client::new();
    let mut failures = Vec::new();
    for (path, expected) in &cases {
        for ((who, auth), want) in callers.iter().zip(expected) {
            let mut req = bare.get(svc.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let www = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string());
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            if status != *want {
                failures.push(format!(
                    "GET {path} as {who}: {status} (want {want}) {body}"
                ));
                continue;
            }
            if *want >= 400 {
                assert_eq!(
                    ctype.as_deref(),
                    Some("application/problem+json"),
                    "{path} {who}"
                );
                assert_eq!(body["status"], *want, "{path} {who}");
            }
            assert_eq!(
                www.is_some(),
                *want == 401,
                "{path} as {who}: WWW-Authenticate"
            );
            if *want == 200 && path.ends_with("INV0003/portfolio") {
                assert_eq!(
                    body["holdings"][0]["units"], "100.000",
                    "{who} sees the holding"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix mismatches:\n{}",
        failures.join("\n")
    );

    // Operational endpoints stay public.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let status = bare.get(svc.url(path)).send().await.unwrap().status();
        assert!(status.is_success(), "{path}: {status}");
    }
    svc.stop().await;
}
