//! Investors the order service learns from the onboarding service's events (`investor.onboarded`,
//! `kyc.verified`, `investor.erased`) rather than from `config/investors.json`: who may place
//! orders (KYC VALIDATED only, never after erasure), who may act for them (their tenant and
//! onboarding distributor), and that duplicated or reordered events never move a status back.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::{EQUITY, Resp, Svc, WAIT, meta, start};
use nivesh_events::{Event, InvestorErased, InvestorOnboarded, KycVerified};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn onboarded(
    investor: &str,
    distributor: &str,
    status: &str,
    at: DateTime<Utc>,
) -> InvestorOnboarded {
    InvestorOnboarded {
        meta: meta::<InvestorOnboarded>("onboarding"),
        investor_id: investor.into(),
        tenant: "nivesh".into(),
        distributor_id: Some(distributor.into()),
        pan_masked: "XXXXXX234F".into(),
        name: "Asha Verma".into(),
        kyc_status: status.into(),
        onboarded_at: at,
    }
}

fn kyc(investor: &str, status: &str, at: DateTime<Utc>) -> KycVerified {
    KycVerified {
        meta: meta::<KycVerified>("onboarding"),
        investor_id: investor.into(),
        tenant: "nivesh".into(),
        status: status.into(),
        kra_reference: "KRA0000000042".into(),
        verified_at: at,
        reason: (status != "VALIDATED").then(|| "address proof pending".into()),
    }
}

fn purchase(investor: &str) -> Value {
    json!({"investorId": investor, "kind": "PURCHASE", "schemeCode": EQUITY,
           "amount": "2500.00", "paymentInstrument": "asha@okhdfc"})
}

fn sip(investor: &str) -> Value {
    json!({"investorId": investor, "kind": "SIP", "schemeCode": EQUITY, "amount": "500.00",
           "dayOfMonth": 5, "startDate": "2025-03-05", "paymentInstrument": "asha@okhdfc"})
}

impl Svc {
    /// Publishes `event` on `topic` (keyed by `investor`) and waits until the order group has
    /// applied it: its inbox marker is in the investor's partition.
    async fn apply<E: Event>(&self, topic: &str, investor: &str, event: &E) {
        self.produce(topic, investor, event).await;
        self.applied(investor, &event.meta().event_id.to_string())
            .await;
    }

    async fn applied(&self, investor: &str, event_id: &str) {
        let id = format!("inbox:order:{event_id}");
        let deadline = Instant::now() + WAIT;
        while self
            .store
            .get("orders", investor, &id)
            .await
            .expect("store")
            .is_none()
        {
            assert!(Instant::now() < deadline, "event {event_id} not applied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POST /v1/orders as `auth` with a fresh key.
    async fn place_as(&self, auth: &str, body: &Value) -> Resp {
        self.call_as(Method::POST, "/v1/orders", Some(auth), Some(body))
            .await
    }
}

fn problem_type(r: &Resp) -> &str {
    r.body["type"].as_str().unwrap_or_default()
}

/// An investor unknown to the file: unknown (422) → REGISTERED (KYC 422, orders and SIPs) →
/// VALIDATED (201, by the investor and by their distributor; another distributor is refused
/// like an unknown investor and gets 404 on reads) → duplicated, older and post-final events
/// change nothing → erased (422 with its own reason, history still readable).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn onboarded_investor_transacts_once_validated_until_erased() {
    let svc = start().await;
    let inv = "INVONB001";
    let (me, dst, other) = (
        svc.idp.investor(inv),
        svc.idp.distributor("DST050"),
        svc.idp.distributor("DST051"),
    );
    let t0 = svc.now() - TimeDelta::hours(2);

    let r = svc.place_as(&svc.admin, &purchase(inv)).await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_type(&r), "urn:nivesh:problem:unknown-investor");

    let registered = onboarded(inv, "DST050", "REGISTERED", t0);
    svc.apply("investor.onboarded", inv, &registered).await;
    for auth in [&me, &dst] {
        for body in [purchase(inv), sip(inv)] {
            let r = svc.place_as(auth, &body).await;
            r.problem(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                problem_type(&r),
                "urn:nivesh:problem:kyc-not-verified",
                "{:#}",
                r.body
            );
            assert!(r.body["detail"].as_str().unwrap().contains("REGISTERED"));
        }
    }
    // Another distributor: the unknown-investor answer, and 404 on the investor's orders.
    let r = svc.place_as(&other, &purchase(inv)).await;
    assert_eq!(problem_type(&r), "urn:nivesh:problem:unknown-investor");
    let path = format!("/v1/investors/{inv}/orders");
    let list = svc.call_as(Method::GET, &path, Some(&other), None).await;
    list.problem(StatusCode::NOT_FOUND);
    let list = svc.call_as(Method::GET, &path, Some(&dst), None).await;
    assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);

    svc.apply(
        "kyc.verified",
        inv,
        &kyc(inv, "VALIDATED", t0 + TimeDelta::minutes(10)),
    )
    .await;
    let mine = svc.place_as(&me, &purchase(inv)).await;
    assert_eq!(mine.status, StatusCode::CREATED, "{:#}", mine.body);
    let by_dst = svc.place_as(&dst, &purchase(inv)).await;
    assert_eq!(by_dst.status, StatusCode::CREATED, "{:#}", by_dst.body);
    let s = svc.place_as(&dst, &sip(inv)).await;
    assert_eq!(s.status, StatusCode::CREATED, "{:#}", s.body);
    let r = svc.place_as(&other, &purchase(inv)).await;
    assert_eq!(problem_type(&r), "urn:nivesh:problem:unknown-investor");

    // Redelivered (same event id), republished (new id), older and post-final events: the
    // entry stays VALIDATED. The redelivery precedes the republished one on the same
    // partition, so once the latter is applied the former was handled too.
    svc.produce("investor.onboarded", inv, &registered).await;
    svc.apply(
        "investor.onboarded",
        inv,
        &onboarded(inv, "DST050", "REGISTERED", t0),
    )
    .await;
    svc.apply(
        "kyc.verified",
        inv,
        &kyc(inv, "ON_HOLD", t0 + TimeDelta::minutes(5)),
    )
    .await;
    // ON_HOLD after VALIDATED: onboarding never emits a verdict after a final one, so this can
    // only be an older verdict arriving late (its clock notwithstanding): ignored.
    svc.apply(
        "kyc.verified",
        inv,
        &kyc(inv, "ON_HOLD", t0 + TimeDelta::minutes(30)),
    )
    .await;
    let r = svc.place_as(&me, &purchase(inv)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    let order_id = mine.body["orderId"].as_str().unwrap();
    let order_path = format!("/v1/orders/{order_id}");
    let got = svc
        .call_as(Method::GET, &order_path, Some(&dst), None)
        .await;
    assert_eq!(got.status, StatusCode::OK, "{:#}", got.body);
    svc.call_as(Method::GET, &order_path, Some(&other), None)
        .await
        .problem(StatusCode::NOT_FOUND);

    let erased = InvestorErased {
        meta: meta::<InvestorErased>("onboarding"),
        investor_id: inv.into(),
        tenant: "nivesh".into(),
        distributor_id: Some("DST050".into()),
        erased_by: "admin-1".into(),
        erased_at: t0 + TimeDelta::minutes(60),
    };
    svc.apply("investor.erased", inv, &erased).await;
    for auth in [&me, &dst, &svc.admin] {
        let r = svc.place_as(auth, &purchase(inv)).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            problem_type(&r),
            "urn:nivesh:problem:investor-erased",
            "{:#}",
            r.body
        );
        assert!(r.body["detail"].as_str().unwrap().contains("erased"));
    }
    // A late onboarding event does not bring the investor back.
    svc.apply(
        "investor.onboarded",
        inv,
        &onboarded(inv, "DST050", "VALIDATED", t0),
    )
    .await;
    let r = svc.place_as(&me, &purchase(inv)).await;
    assert_eq!(problem_type(&r), "urn:nivesh:problem:investor-erased");
    // Their order history stays readable by their distributor.
    let list = svc.call_as(Method::GET, &path, Some(&dst), None).await;
    assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);
    assert!(
        list.body["items"].as_array().unwrap().len() >= 3,
        "{:#}",
        list.body
    );
    svc.stop().await;
}

/// The topics are not co-ordered: a verdict before the onboarding event creates the entry
/// (VALIDATED: the investor may transact at once; the distributor is known only once
/// `investor.onboarded` names them), and REJECTED is final like VALIDATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verdict_first_and_rejected_is_final() {
    let svc = start().await;
    let t0 = svc.now() - TimeDelta::hours(1);

    let inv = "INVONB002";
    let (me, dst) = (svc.idp.investor(inv), svc.idp.distributor("DST060"));
    svc.apply(
        "kyc.verified",
        inv,
        &kyc(inv, "VALIDATED", t0 + TimeDelta::minutes(3)),
    )
    .await;
    let r = svc.place_as(&me, &purchase(inv)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    let path = format!("/v1/investors/{inv}/orders");
    svc.call_as(Method::GET, &path, Some(&dst), None)
        .await
        .problem(StatusCode::NOT_FOUND);
    svc.apply(
        "investor.onboarded",
        inv,
        &onboarded(inv, "DST060", "REGISTERED", t0),
    )
    .await;
    let list = svc.call_as(Method::GET, &path, Some(&dst), None).await;
    assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);
    let r = svc.place_as(&dst, &purchase(inv)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);

    let inv = "INVONB003";
    let me = svc.idp.investor(inv);
    svc.apply(
        "kyc.verified",
        inv,
        &kyc(inv, "REJECTED", t0 + TimeDelta::minutes(5)),
    )
    .await;
    svc.apply(
        "investor.onboarded",
        inv,
        &onboarded(inv, "DST060", "REGISTERED", t0),
    )
    .await;
    svc.apply(
        "kyc.verified",
        inv,
        &kyc(inv, "ON_HOLD", t0 + TimeDelta::minutes(9)),
    )
    .await;
    let r = svc.place_as(&me, &purchase(inv)).await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_type(&r), "urn:nivesh:problem:kyc-not-verified");
    assert!(
        r.body["detail"].as_str().unwrap().contains("REJECTED"),
        "{:#}",
        r.body
    );
    svc.stop().await;
}
