//! Portfolio access for investors onboarded through the onboarding service: the owner (tenant,
//! distributor) comes from `investor.onboarded` / `investor.erased`, not from
//! `config/investors.json`.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use nivesh_events::{EventMeta, InvestorErased, InvestorOnboarded};
use nivesh_store::DocumentStore;

async fn status_as(svc: &Service, path: &str, auth: &str) -> u16 {
    reqwest::Client::new()
        .get(svc.url(path))
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until the `portfolio` group has applied `event_id` (its inbox marker is stored).
async fn applied(svc: &Service, investor: &str, event_id: &EventMeta) {
    let id = format!("inbox:portfolio:{}", event_id.event_id);
    let deadline = Instant::now() + WAIT;
    while svc
        .store
        .get("portfolio", investor, &id)
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "{id} not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The distributor named by `investor.onboarded` reads the investor's portfolio (and sees a
/// holding bought later); another distributor, and an admin of another tenant, get 404; an
/// erasure (even redelivered, even before the onboarding event) changes nothing about who
/// may read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_onboarding_distributor_reads_the_portfolio() {
    let svc = Service::start().await;
    let inv = "INVONB101";
    let path = format!("/v1/investors/{inv}/portfolio");
    let (dst, other) = (svc.idp.distributor("DST070"), svc.idp.distributor("DST071"));
    // Unknown to the file: a distributor sees nothing yet.
    assert_eq!(status_as(&svc, &path, &dst).await, 404);

    let onboarded = InvestorOnboarded {
        meta: EventMeta::new::<InvestorOnboarded>("onboarding", None),
        investor_id: inv.into(),
        tenant: "nivesh".into(),
        distributor_id: Some("DST070".into()),
        pan_masked: "XXXXXX234F".into(),
        name: "Asha Verma".into(),
        kyc_status: "REGISTERED".into(),
        onboarded_at: Utc::now(),
    };
    svc.publish("investor.onboarded", inv, &onboarded).await;
    applied(&svc, inv, &onboarded.meta).await;
    assert_eq!(status_as(&svc, &path, &dst).await, 200);
    assert_eq!(status_as(&svc, &path, &other).await, 404);
    assert_eq!(status_as(&svc, &path, &svc.idp.investor(inv)).await, 200);
    let acme_admin = svc.idp.bearer(
        &nivesh_testkit::DevClaims::with_roles(&[nivesh_testkit::Role::Admin]).tenant("acme"),
    );
    assert_eq!(status_as(&svc, &path, &acme_admin).await, 404);

    svc.publish(
        "transaction.completed",
        inv,
        &purchase(
            inv,
            "txn-onb-1",
            "119551",
            "2025-02-24",
            "10",
            "100.000",
            "1000.00",
        ),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let r = reqwest::Client::new()
            .get(svc.url(&path))
            .header("authorization", &dst)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        if v["holdings"].as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no holding for the distributor: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for sub in ["/transactions", "/reconciliation"] {
        let p = format!("{path}{sub}");
        assert_eq!(status_as(&svc, &p, &dst).await, 200, "{p}");
        assert_eq!(status_as(&svc, &p, &other).await, 404, "{p}");
    }

    let erased = InvestorErased {
        meta: EventMeta::new::<InvestorErased>("onboarding", None),
        investor_id: inv.into(),
        tenant: "nivesh".into(),
        distributor_id: Some("DST070".into()),
        erased_by: "admin-1".into(),
        erased_at: Utc::now(),
    };
    svc.publish("investor.erased", inv, &erased).await;
    svc.publish("investor.erased", inv, &erased).await;
    applied(&svc, inv, &erased.meta).await;
    assert_eq!(status_as(&svc, &path, &dst).await, 200);
    assert_eq!(status_as(&svc, &path, &other).await, 404);

    // Erasure first (the topics are not co-ordered): it names the owner until onboarding does.
    let inv2 = "INVONB102";
    let erased2 = InvestorErased {
        meta: EventMeta::new::<InvestorErased>("onboarding", None),
        investor_id: inv2.into(),
        ..erased.clone()
    };
    svc.publish("investor.erased", inv2, &erased2).await;
    applied(&svc, inv2, &erased2.meta).await;
    let path2 = format!("/v1/investors/{inv2}/portfolio");
    assert_eq!(status_as(&svc, &path2, &dst).await, 200);
    assert_eq!(status_as(&svc, &path2, &other).await, 404);
    svc.stop().await;
}
