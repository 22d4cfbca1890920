//! End to end against the real runtime: dev broker, real Redis, the KRA simulator over HTTP,
//! a dev identity provider issuing real tokens.

mod common;

use std::time::Duration;

use common::{Harness, Options, SECRET, TENANT, aadhaar_like, investor_body, pan_with};
use nivesh_events::{InvestorErased, InvestorOnboarded, KycVerified};
use nivesh_onboarding::vault::{Vault, VaultError};
use serde_json::{Value, json};

/// Registered -> callback -> VALIDATED -> kyc.verified, with investor.onboarded first, the
/// credential hook recorded, and every access rule checked on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn happy_path_end_to_end() {
    let h = Harness::start(Options::default()).await;
    let pan = pan_with("1234");
    let view = h.onboard("dist-a", &investor_body(&pan, None)).await;
    let id = view["investorId"].as_str().unwrap().to_string();
    assert_eq!(view["kyc"]["status"], "REGISTERED");
    assert_eq!(view["distributorId"], "dist-a");
    assert_eq!(view["tenant"], TENANT);
    assert_eq!(view["pan"], format!("XXXXXX{}", &pan[6..]));
    assert_eq!(view["contact"]["email"], "a***@example.com");
    assert_eq!(view["contact"]["mobile"], "+91XXXXXX3210");
    assert_eq!(view["bankAccount"]["accountNumber"], "XXXXXX7890");
    assert_eq!(view["bankAccount"]["ifsc"], "HDFC0001234");
    assert!(view["aadhaar"].is_null());
    assert!(!view.to_string().contains(&pan));
    // The KRA got exactly one registration for this investor, under our id.
    let reg = h.kra.registration(&id).expect("registered at the KRA");
    assert_eq!(reg.pan_masked, format!("XXXXXX{}", &pan[6..]));

    let verified = h
        .wait_investor(&id, |v| v["kyc"]["status"] == "VALIDATED")
        .await;
    assert_eq!(verified["kyc"]["kraReference"], reg.kra_reference.as_str());

    let id2 = id.clone();
    let kyc: Vec<KycVerified> = h
        .wait_for("kyc.verified", move |es: &[KycVerified]| {
            es.iter().any(|e| e.investor_id == id2)
        })
        .await;
    let mine: Vec<&KycVerified> = kyc.iter().filter(|e| e.investor_id == id).collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].status, "VALIDATED");
    assert_eq!(mine[0].tenant, TENANT);
    assert_eq!(mine[0].kra_reference, reg.kra_reference);
    assert_eq!(mine[0].reason, None);

    let onboarded: Vec<InvestorOnboarded> = h.read_all("investor.onboarded").await;
    let mine: Vec<&InvestorOnboarded> = onboarded.iter().filter(|e| e.investor_id == id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].pan_masked, format!("XXXXXX{}", &pan[6..]));
    assert_eq!(mine[0].distributor_id.as_deref(), Some("dist-a"));
    assert_eq!(mine[0].name, "Asha Verma");
    assert_eq!(mine[0].kyc_status, "REGISTERED");

    // The credential hook ran once KYC was VALIDATED.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let req = h
            .store
            .get("investors", &id, "credential-request")
            .await
            .unwrap();
        if let Some(doc) = req {
            assert_eq!(doc.body["status"], "REQUESTED");
            assert_eq!(doc.body["distributor_id"], "dist-a");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no credential request"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Access: the distributor, the investor and an admin see it; everyone else gets 404.
    let path = format!("/v1/investors/{id}");
    for (who, bearer, want) in [
        ("distributor", h.distributor("dist-a"), 200),
        ("investor", h.investor(&id), 200),
        ("admin", h.admin(), 200),
        ("other distributor", h.distributor("dist-b"), 404),
        ("other investor", h.investor("inv-someone-else"), 404),
        ("admin of another tenant", h.admin_of("other-tenant"), 404),
        ("compliance", h.compliance(), 404),
    ] {
        let (status, body) = h.get(&path, Some(&bearer)).await;
        assert_eq!(status, want, "{who}: {body}");
    }
    let (status, _) = h.get(&path, None).await;
    assert_eq!(status, 401);
    let (status, body) = h
        .get("/v1/investors/inv-does-not-exist", Some(&h.admin()))
        .await;
    assert_eq!(status, 404, "{body}");

    // The distributor's list has it; another distributor cannot read the list.
    let (status, list) = h
        .get(
            "/v1/distributors/dist-a/investors",
            Some(&h.distributor("dist-a")),
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["investors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["investorId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let (status, _) = h
        .get(
            "/v1/distributors/dist-a/investors",
            Some(&h.distributor("dist-b")),
        )
        .await;
    assert_eq!(status, 403);
    let (status, list) = h
        .get("/v1/distributors/dist-a/investors", Some(&h.admin()))
        .await;
    assert_eq!(
        (status, list["investors"].as_array().unwrap().len()),
        (200, 1)
    );

    // A distributor cannot onboard under someone else's id; an investor cannot onboard at all.
    let mut other = investor_body(&pan_with("1111"), None);
    other["distributorId"] = json!("dist-b");
    let (status, _, _) = h
        .post("/v1/investors", Some(&h.distributor("dist-a")), &other)
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = h
        .post(
            "/v1/investors",
            Some(&h.investor(&id)),
            &investor_body(&pan_with("1112"), None),
        )
        .await;
    assert_eq!(status, 403);

    // Leads.
    let (status, lead, _) = h
        .post(
            "/v1/leads",
            Some(&h.distributor("dist-a")),
            &json!({"name": "Kiran Rao", "mobile": "9988776655", "notes": "call after 6 pm"}),
        )
        .await;
    assert_eq!(status, 201, "{lead}");
    assert_eq!(lead["distributorId"], "dist-a");
    assert_eq!(lead["mobile"], "+919988776655");
    let (status, leads) = h
        .get(
            "/v1/distributors/dist-a/leads",
            Some(&h.distributor("dist-a")),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(leads["leads"][0]["leadId"], lead["leadId"]);
    h.stop().await;
}

/// The simulator's magic PANs: ON_HOLD then nothing more; REJECTED with the KRA's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_hold_and_rejected_verdicts() {
    let h = Harness::start(Options::default()).await;
    let hold = h
        .onboard("dist-a", &investor_body(&pan_with("8888"), None))
        .await;
    let reject = h
        .onboard("dist-a", &investor_body(&pan_with("9999"), None))
        .await;
    let (hold, reject) = (
        hold["investorId"].as_str().unwrap().to_string(),
        reject["investorId"].as_str().unwrap().to_string(),
    );
    let v = h
        .wait_investor(&hold, |v| v["kyc"]["status"] == "ON_HOLD")
        .await;
    assert_eq!(v["kyc"]["reason"], "address proof pending");
    let v = h
        .wait_investor(&reject, |v| v["kyc"]["status"] == "REJECTED")
        .await;
    assert_eq!(v["kyc"]["reason"], "PAN and name do not match");
    let (r2, h2) = (reject.clone(), hold.clone());
    let events: Vec<KycVerified> = h
        .wait_for("kyc.verified", move |es: &[KycVerified]| {
            es.iter().any(|e| e.investor_id == r2) && es.iter().any(|e| e.investor_id == h2)
        })
        .await;
    let status_of = |id: &str| {
        events
            .iter()
            .filter(|e| e.investor_id == id)
            .map(|e| e.status.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(status_of(&hold), ["ON_HOLD"]);
    assert_eq!(status_of(&reject), ["REJECTED"]);
    // No credential for a rejected investor.
    assert!(
        h.store
            .get("investors", &reject, "credential-request")
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

/// Callbacks: unsigned / badly signed / stale are 401 and change nothing; unknown references
/// are 404; a replay of a valid callback is a duplicate; a later verdict after a final one is
/// ignored; a non-verdict status is 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callback_authentication_and_idempotency() {
    let h = Harness::start(Options::default()).await;
    let view = h
        .onboard("dist-a", &investor_body(&pan_with("4321"), None))
        .await;
    let id = view["investorId"].as_str().unwrap().to_string();
    h.wait_investor(&id, |v| v["kyc"]["status"] == "VALIDATED")
        .await;
    let kra_ref = h.kra.registration(&id).unwrap().kra_reference;

    let send = |body: Value, ts: Option<i64>, secret: &'static str| {
        let url = format!("{}/v1/kyc/callback", h.base);
        let http = h.http.clone();
        async move {
            let raw = serde_json::to_vec(&body).unwrap();
            let mut req = http
                .post(url)
                .header("content-type", "application/json")
                .body(raw.clone());
            if let Some(ts) = ts {
                req = req.header("x-nivesh-timestamp", ts.to_string()).header(
                    "x-nivesh-signature",
                    nivesh_kra_sim::signature::sign(secret.as_bytes(), ts, &raw),
                );
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            (status, r.json::<Value>().await.unwrap_or(Value::Null), ct)
        }
    };
    let now = chrono::Utc::now().timestamp();
    let rejected = json!({"event": "kyc.status", "reference": id, "kra_reference": kra_ref,
                          "status": "REJECTED", "reason": "forged", "decided_at": now});
    let (s, _, ct) = send(rejected.clone(), None, SECRET).await;
    assert_eq!(s, 401);
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    assert_eq!(
        send(rejected.clone(), Some(now), "wrong-secret").await.0,
        401
    );
    assert_eq!(
        send(rejected.clone(), Some(now - 3600), SECRET).await.0,
        401
    );
    let v = h.wait_investor(&id, |_| true).await;
    assert_eq!(v["kyc"]["status"], "VALIDATED");

    // Properly signed, but VALIDATED is final: acknowledged as a duplicate, nothing changes.
    let (s, body, _) = send(rejected, Some(now), SECRET).await;
    assert_eq!((s, body["result"].as_str()), (200, Some("duplicate")));
    let replay = json!({"event": "kyc.status", "reference": id, "kra_reference": kra_ref,
                        "status": "VALIDATED", "reason": null, "decided_at": now});
    let (s, body, _) = send(replay, Some(now), SECRET).await;
    assert_eq!((s, body["result"].as_str()), (200, Some("duplicate")));
    let unknown = json!({"event": "kyc.status", "reference": "inv-unknown", "kra_reference": "K",
                         "status": "VALIDATED", "reason": null, "decided_at": now});
    assert_eq!(send(unknown, Some(now), SECRET).await.0, 404);
    let bad = json!({"event": "kyc.status", "reference": id, "kra_reference": kra_ref,
                     "status": "REGISTERED", "reason": null, "decided_at": now});
    assert_eq!(send(bad, Some(now), SECRET).await.0, 422);
    assert_eq!(
        h.wait_investor(&id, |_| true).await["kyc"]["status"],
        "VALIDATED"
    );
    // One kyc.verified for the investor in total.
    let events: Vec<KycVerified> = h.read_all("kyc.verified").await;
    assert_eq!(events.iter().filter(|e| e.investor_id == id).count(), 1);
    h.stop().await;
}

/// 422 problem+json listing every field error, for each kind of mistake.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validation_errors_list_every_field() {
    let h = Harness::start(Options::default()).await;
    let d = h.distributor("dist-a");
    let fields = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_string())
            .collect()
    };
    let check = |body: Value, want: &'static [&'static str]| {
        let h = &h;
        let d = d.clone();
        async move {
            let (status, problem, ct) = h.post("/v1/investors", Some(&d), &body).await;
            assert_eq!(status, 422, "{problem}");
            assert_eq!(ct, "application/problem+json");
            assert_eq!(problem["type"], "urn:nivesh:problem:validation");
            let mut got = fields(&problem);
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{problem}");
            problem
        }
    };
    // Everything missing at once.
    check(
        json!({}),
        &[
            "pan",
            "name",
            "dateOfBirth",
            "contact",
            "bankAccount",
            "nominees",
        ],
    )
    .await;

    // Every field wrong at once (adult with a guardian).
    let aadhaar_bad_checksum = {
        let good = aadhaar_like("23456789012");
        let last = (good.as_bytes()[11] - b'0' + 1) % 10;
        format!("{}{last}", &good[..11])
    };
    let problem = check(
        json!({
            "pan": "ABCP1234FF",
            "name": "Asha 123",
            "dateOfBirth": "12-04-1990",
            "contact": {"email": "asha@", "mobile": "12345"},
            "bankAccount": {"accountNumber": "12AB", "ifsc": "HDFC1001234", "accountType": "LOAN"},
            "nominees": [
                {"name": "", "relationship": "COUSIN", "sharePercent": "0"},
                {"name": "Meera", "relationship": "DAUGHTER"}
            ],
            "aadhaar": aadhaar_bad_checksum,
        }),
        &[
            "pan",
            "name",
            "dateOfBirth",
            "contact.email",
            "contact.mobile",
            "bankAccount.accountNumber",
            "bankAccount.ifsc",
            "bankAccount.accountType",
            "nominees[0].name",
            "nominees[0].relationship",
            "nominees[0].sharePercent",
            "nominees[1].sharePercent",
            "aadhaar",
        ],
    )
    .await;
    // No PAN or Aadhaar digits are echoed back.
    let text = problem.to_string();
    assert!(
        !text.contains("ABCP1234FF") && !text.contains(&aadhaar_bad_checksum[..8]),
        "{text}"
    );

    // Holder type: a company PAN.
    let p = check(investor_body("AAACR5055K", None), &["pan"]).await;
    assert!(
        p["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Company")
    );
    // Shares not totalling 100.
    let mut b = investor_body(&pan_with("1234"), None);
    b["nominees"] = json!([
        {"name": "Ravi Verma", "relationship": "SPOUSE", "sharePercent": "60"},
        {"name": "Meera Verma", "relationship": "DAUGHTER", "sharePercent": 30.5}
    ]);
    let p = check(b, &["nominees"]).await;
    assert!(
        p["errors"][0]["reason"].as_str().unwrap().contains("90.5"),
        "{p}"
    );
    // A minor without a guardian; an adult with one; a future date of birth.
    let mut b = investor_body(&pan_with("1234"), None);
    b["dateOfBirth"] = json!("2015-01-01");
    check(b.clone(), &["guardian"]).await;
    b["guardian"] = json!({"name": "Ravi Verma", "relationship": "UNCLE"});
    check(b.clone(), &["guardian.relationship"]).await;
    b["guardian"] = json!({"name": "Ravi Verma", "relationship": "FATHER"});
    let (status, view, _) = h.post("/v1/investors", Some(&d), &b).await;
    assert_eq!(status, 201, "a minor with a guardian is accepted: {view}");
    assert_eq!(view["minor"], true);
    let mut b = investor_body(&pan_with("1234"), None);
    b["guardian"] = json!({"name": "Ravi Verma", "relationship": "FATHER"});
    check(b, &["guardian"]).await;
    let mut b = investor_body(&pan_with("1234"), None);
    b["dateOfBirth"] = json!("2999-01-01");
    check(b, &["dateOfBirth"]).await;
    // Aadhaar: wrong length, a leading 1, letters.
    for bad in ["2345678901", &aadhaar_like("13456789012"), "2345-6789-01AB"] {
        check(investor_body(&pan_with("1234"), Some(bad)), &["aadhaar"]).await;
    }
    // Missing contact parts and bank parts are named individually.
    let mut b = investor_body(&pan_with("1234"), None);
    b["contact"] = json!({});
    b["bankAccount"] = json!({"accountNumber": "001234567890"});
    check(b, &["contact.email", "contact.mobile", "bankAccount.ifsc"]).await;
    // A body that is not JSON at all is a 400/422 problem, not a crash.
    let r = h
        .http
        .post(format!("{}/v1/investors", h.base))
        .header("authorization", &d)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Leads too.
    let (status, p, _) = h
        .post("/v1/leads", Some(&d), &json!({"name": "", "email": "x@y"}))
        .await;
    assert_eq!(status, 422);
    let mut got = fields(&p);
    got.sort();
    assert_eq!(got, ["email", "name"]);
    h.stop().await;
}

/// Vault round trip and crypto-shred through the API: before erasure the Aadhaar decrypts
/// from the vault; after, the key is gone, the ciphertext remains, the record reads as erased
/// and `investor.erased` is emitted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_crypto_shreds_the_vault() {
    let h = Harness::start(Options::default()).await;
    let aadhaar = aadhaar_like("39876543210");
    let pan = pan_with("2468");
    let view = h
        .onboard("dist-a", &investor_body(&pan, Some(&aadhaar)))
        .await;
    let id = view["investorId"].as_str().unwrap().to_string();
    assert_eq!(
        view["aadhaar"]["masked"],
        format!("XXXX-XXXX-{}", &aadhaar[8..])
    );
    let token = view["aadhaar"]["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("vlt_"));

    // The vault, opened with the service's own key file, gives the data back.
    let settings = nivesh_onboarding::Config::default();
    let kms = nivesh_onboarding::kms(&settings, &h.data_dir).unwrap();
    let vault = Vault::new(h.store.clone(), kms);
    let data = vault.open(&id).await.unwrap();
    assert_eq!(data.aadhaar.as_deref(), Some(aadhaar.as_str()));
    assert_eq!(data.pan, pan);
    assert_eq!(data.bank_account_number, "001234567890");
    let before = vault.entry(&id).await.unwrap().unwrap();
    assert_eq!(before.token, token);
    assert!(!before.ciphertext.contains(&aadhaar));

    // Only admin or compliance may erase.
    let path = format!("/v1/investors/{id}/erasure");
    let (s, _, _) = h
        .post(&path, Some(&h.distributor("dist-a")), &json!({}))
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = h.post(&path, Some(&h.investor(&id)), &json!({})).await;
    assert_eq!(s, 403);
    let (s, erased, _) = h.post(&path, Some(&h.compliance()), &json!({})).await;
    assert_eq!(s, 200, "{erased}");
    assert_eq!(erased["status"], "ERASED");
    assert!(erased["name"].is_null() && erased["pan"].is_null() && erased["contact"].is_null());
    assert!(erased["erasedAt"].is_string());

    assert!(matches!(vault.open(&id).await, Err(VaultError::Shredded)));
    let after = vault.entry(&id).await.unwrap().unwrap();
    assert!(after.wrapped_key.is_none() && after.shredded_at.is_some());
    assert_eq!(
        after.ciphertext, before.ciphertext,
        "the ciphertext stays, unreadable"
    );

    // Reads (through the cache, which was invalidated) show the erased record.
    let (s, v) = h
        .get(&format!("/v1/investors/{id}"), Some(&h.admin()))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ERASED")));
    assert!(v["name"].is_null());
    // Erasing again is idempotent; resubmitting KYC is refused.
    let (s, _, _) = h.post(&path, Some(&h.admin()), &json!({})).await;
    assert_eq!(s, 200);
    let (s, _, _) = h
        .post(
            &format!("/v1/investors/{id}/kyc"),
            Some(&h.admin()),
            &json!({}),
        )
        .await;
    assert_eq!(s, 409);

    let id2 = id.clone();
    let events: Vec<InvestorErased> = h
        .wait_for("investor.erased", move |es: &[InvestorErased]| {
            es.iter().any(|e| e.investor_id == id2)
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events: Vec<InvestorErased> = {
        let all: Vec<InvestorErased> = h.read_all("investor.erased").await;
        assert!(all.len() >= events.len());
        all
    };
    let mine: Vec<&InvestorErased> = events.iter().filter(|e| e.investor_id == id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].distributor_id.as_deref(), Some("dist-a"));
    assert_eq!(mine[0].erased_by, "staff-compliance");
    assert_eq!(mine[0].tenant, TENANT);
    h.stop().await;
}

/// A KRA outage: the investor is stored PENDING (no `investor.onboarded` yet), resubmitting
/// during the outage is a 503 problem, and once the KRA answers the resubmission registers it
/// and announces the investor. The KRA here is a test-local HTTP stub.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kra_outage_leaves_pending_until_resubmitted() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let up = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (up2, calls2) = (up.clone(), calls.clone());
    let stub = axum::Router::new().route(
        "/v1/kyc/registrations",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
            let (up, calls) = (up2.clone(), calls2.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let key = headers["idempotency-key"].to_str().unwrap().to_string();
                assert_eq!(body["reference"].as_str(), Some(key.as_str()));
                assert_eq!(body["date_of_birth"], "1990-04-12");
                if up.load(Ordering::SeqCst) {
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({"reference": key, "kra_reference": "KRA-STUB-1", "status": "REGISTERED"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"error": {"code": "MAINTENANCE", "description": "down"}})),
                    )
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kra_url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, stub).await });

    // The failed attempts open the `kra` breaker (kra_resilience.rs tests it); open 1 s here.
    let h = Harness::start(Options {
        kra_url: Some(kra_url),
        vars: vec![("NIVESH__SERVICE__KRA__BREAKER_OPEN_SECS".into(), "1".into())],
        ..Options::default()
    })
    .await;
    let view = h
        .onboard("dist-a", &investor_body(&pan_with("1234"), None))
        .await;
    let id = view["investorId"].as_str().unwrap().to_string();
    assert_eq!(view["kyc"]["status"], "PENDING");
    assert!(view["kyc"]["kraReference"].is_null());
    let path = format!("/v1/investors/{id}/kyc");
    let (s, p, ct) = h
        .post(&path, Some(&h.distributor("dist-a")), &json!({}))
        .await;
    assert_eq!((s, ct.as_str()), (503, "application/problem+json"), "{p}");
    // Another distributor cannot resubmit (or learn it exists).
    let (s, _, _) = h
        .post(&path, Some(&h.distributor("dist-b")), &json!({}))
        .await;
    assert_eq!(s, 404);

    up.store(true, Ordering::SeqCst);
    // 503 while the breaker is still open, then the resubmission is its trial and registers.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let (s, v) = loop {
        let (s, v, _) = h
            .post(&path, Some(&h.distributor("dist-a")), &json!({}))
            .await;
        if s != 503 || tokio::time::Instant::now() > deadline {
            break (s, v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["kyc"]["status"], "REGISTERED");
    assert_eq!(v["kyc"]["kraReference"], "KRA-STUB-1");
    // Resubmitting a REGISTERED investor does not call the KRA again.
    let before = calls.load(Ordering::SeqCst);
    let (s, _, _) = h
        .post(&path, Some(&h.distributor("dist-a")), &json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(calls.load(Ordering::SeqCst), before);

    let id2 = id.clone();
    let events: Vec<InvestorOnboarded> = h
        .wait_for("investor.onboarded", move |es: &[InvestorOnboarded]| {
            es.iter().any(|e| e.investor_id == id2)
        })
        .await;
    let mine: Vec<&InvestorOnboarded> = events.iter().filter(|e| e.investor_id == id).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].kyc_status, "REGISTERED");
    h.stop().await;
}
