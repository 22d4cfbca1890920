//! Who may do what on the order API: every role × endpoint × ownership, with exact statuses.
//! 401: no/invalid/expired token; 403: a role that never may; 404 (or, for placing an order,
//! the unknown-investor 422): another investor's resources, indistinguishable from missing ones.

mod common;

use common::{EQUITY, Svc, start};
use nivesh_testkit::{DevClaims, Role};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NONE: &str = "-";

/// `(what, method, path, body, expected status per caller)`.
type Case = (String, Method, String, Option<Value>, [u16; 12]);

/// The callers, as `(name, Authorization header or NONE)`.
fn callers(svc: &Svc) -> Vec<(&'static str, String)> {
    let idp = &svc.idp;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = idp.issuer().sign(&json!({
        "iss": idp.url(), "aud": "nivesh-api", "sub": "investor-INV0001", "tid": "nivesh",
        "roles": ["investor"], "extension_InvestorId": "INV0001",
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
    }));
    vec![
        ("no token", NONE.to_string()),
        ("garbage", "Bearer abc.def.ghi".to_string()),
        ("expired", format!("Bearer {expired}")),
        ("investor INV0001", idp.investor("INV0001")),
        ("investor INV0002", idp.investor("INV0002")),
        ("distributor DST001", idp.distributor("DST001")),
        ("distributor DST002", idp.distributor("DST002")),
        ("ops", idp.role(Role::Ops)),
        ("compliance", idp.role(Role::Compliance)),
        ("admin", idp.admin()),
        (
            "admin of tenant acme",
            idp.bearer(&DevClaims::with_roles(&[Role::Admin]).tenant("acme")),
        ),
        (
            "investor INV0001 of tenant acme",
            idp.bearer(&DevClaims::investor("INV0001").tenant("acme")),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_endpoint_ownership_matrix() {
    let svc = start().await;
    // INV0001 has no distributor; INV0003 was onboarded by DST001 (config/investors.json).
    let purchase = |investor: &str| {
        json!({"investorId": investor, "kind": "PURCHASE", "schemeCode": EQUITY,
               "amount": "1000.00", "paymentInstrument": "someone@okicici"})
    };
    let order_a = svc.post(Some("matrix-order-a"), &purchase("INV0001")).await;
    assert_eq!(order_a.status, StatusCode::CREATED, "{:#}", order_a.body);
    let order_a = order_a.body["orderId"].as_str().unwrap().to_string();
    let order_b = svc.post(Some("matrix-order-b"), &purchase("INV0003")).await;
    assert_eq!(order_b.status, StatusCode::CREATED, "{:#}", order_b.body);
    let order_b = order_b.body["orderId"].as_str().unwrap().to_string();
    let sip = json!({"investorId": "INV0003", "kind": "SIP", "schemeCode": EQUITY, "amount": "500.00",
                     "dayOfMonth": 1, "startDate": "2025-03-01", "paymentInstrument": "inv3@okaxis"});
    let sip = svc.post(Some("matrix-sip-b"), &sip).await;
    assert_eq!(sip.status, StatusCode::CREATED, "{:#}", sip.body);
    let sip_b = sip.body["sipId"].as_str().unwrap().to_string();

    let (u, f, n, ok, c, un) = (401u16, 403u16, 404u16, 200u16, 201u16, 422u16);
    // Columns: no token, garbage, expired, inv1, inv2, dst1, dst2, ops, compliance, admin,
    // acme admin, acme inv1.
    let endpoints: Vec<Case> = vec![
        (
            "GET order of INV0001".into(),
            Method::GET,
            format!("/v1/orders/{order_a}"),
            None,
            [u, u, u, ok, n, n, n, f, f, ok, n, n],
        ),
        (
            "GET order of INV0003 (onboarded by DST001)".into(),
            Method::GET,
            format!("/v1/orders/{order_b}"),
            None,
            [u, u, u, n, n, ok, n, f, f, ok, n, n],
        ),
        (
            "GET a non-existent order".into(),
            Method::GET,
            "/v1/orders/0194f4a2-0000-7000-8000-000000000000".into(),
            None,
            [u, u, u, n, n, n, n, f, f, n, n, n],
        ),
        (
            "list INV0001's orders".into(),
            Method::GET,
            "/v1/investors/INV0001/orders".into(),
            None,
            [u, u, u, ok, n, n, n, f, f, ok, n, n],
        ),
        (
            "list INV0003's orders".into(),
            Method::GET,
            "/v1/investors/INV0003/orders".into(),
            None,
            [u, u, u, n, n, ok, n, f, f, ok, n, n],
        ),
        (
            "GET SIP of INV0003".into(),
            Method::GET,
            format!("/v1/sips/{sip_b}"),
            None,
            [u, u, u, n, n, ok, n, f, f, ok, n, n],
        ),
        (
            "place an order for INV0001".into(),
            Method::POST,
            "/v1/orders".into(),
            Some(purchase("INV0001")),
            [u, u, u, c, un, un, un, f, f, c, un, un],
        ),
        (
            "place an order for INV0003".into(),
            Method::POST,
            "/v1/orders".into(),
            Some(purchase("INV0003")),
            [u, u, u, un, un, c, un, f, f, c, un, un],
        ),
        (
            "run SIPs".into(),
            Method::POST,
            "/v1/sips/run".into(),
            None,
            [u, u, u, f, f, f, f, ok, f, ok, f, f],
        ),
        (
            // Public: the scheme view is NAV-derived public data.
            "scheme view".into(),
            Method::GET,
            format!("/v1/orders/schemes/{EQUITY}"),
            None,
            [ok; 12],
        ),
    ];
    let callers = callers(&svc);
    let mut failures = Vec::new();
    for (what, method, path, body, expected) in &endpoints {
        for ((who, auth), want) in callers.iter().zip(expected) {
            let auth = (auth != NONE).then_some(auth.as_str());
            let r = svc.call_as(method.clone(), path, auth, body.as_ref()).await;
            if r.status.as_u16() != *want {
                failures.push(format!(
                    "{what} as {who}: {} (want {want}) {}",
                    r.status, r.body
                ));
                continue;
            }
            if *want >= 400 {
                r.problem(r.status);
            }
            if *want == 401 {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some("Bearer error=\"invalid_token\""),
                    "{what} as {who}"
                );
            }
            if *want == 422 {
                // Exactly the unknown-investor problem, never a hint that the investor exists.
                assert_eq!(
                    r.body["type"], "urn:nivesh:problem:unknown-investor",
                    "{what} as {who}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix mismatches:\n{}",
        failures.join("\n")
    );

    // Another investor's order answers exactly like a missing one (only the id differs).
    let inv2 = svc.idp.investor("INV0002");
    let theirs = svc
        .call_as(
            Method::GET,
            &format!("/v1/orders/{order_a}"),
            Some(&inv2),
            None,
        )
        .await;
    let missing_id = "0194f4a2-0000-7000-8000-000000000001";
    let missing = svc
        .call_as(
            Method::GET,
            &format!("/v1/orders/{missing_id}"),
            Some(&inv2),
            None,
        )
        .await;
    let strip = |v: &Value, id: &str| {
        let mut v = v.clone();
        let o = v.as_object_mut().unwrap();
        o.remove("request_id");
        serde_json::to_string(&v).unwrap().replace(id, "<id>")
    };
    assert_eq!(
        strip(&theirs.body, &order_a),
        strip(&missing.body, missing_id)
    );

    // An unregistered investor id posted by an admin gets the very same 422 as someone else's.
    let unknown = svc
        .call_as(
            Method::POST,
            "/v1/orders",
            Some(&svc.admin),
            Some(&purchase("INV9999")),
        )
        .await;
    let foreign = svc
        .call_as(
            Method::POST,
            "/v1/orders",
            Some(&inv2),
            Some(&purchase("INV0001")),
        )
        .await;
    assert_eq!(
        strip(&unknown.body, "INV9999"),
        strip(&foreign.body, "INV0001")
    );
    svc.stop().await;
}
