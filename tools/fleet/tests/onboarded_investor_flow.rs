//! End-to-end, every service a process: a distributor onboards a new investor through the
//! onboarding API, the KRA simulator validates their KYC (any PAN whose digits are not
//! 9999/8888), the order service learns the investor from `investor.onboarded` and
//! `kyc.verified`, the investor's own token places a purchase that reaches COMPLETED, and the
//! distributor (named by `investor.onboarded`, not by `config/investors.json`) sees it in the
//! portfolio; another distributor sees neither.

mod common;

use std::time::{Duration, Instant};

use common::txn::*;
use nivesh_auth::TokenRequest;
use nivesh_fleet::fleet::{Fleet, GatewaySim, bearer_client};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

async fn distributor(fleet: &Fleet, id: &str) -> reqwest::Client {
    let token = fleet
        .token(&TokenRequest {
            roles: vec!["distributor".into()],
            distributor_id: Some(id.into()),
            ..TokenRequest::default()
        })
        .await
        .expect("distributor token");
    bearer_client(&token, Duration::from_secs(30)).unwrap()
}

/// A PAN of an individual (4th letter P) unique to this run; digits 4321 → VALIDATED.
fn fresh_pan() -> String {
    let l: Vec<char> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(4)
        .map(|b| (b'A' + b % 26) as char)
        .collect();
    format!("{}{}{}P{}4321Z", l[0], l[1], l[2], l[3])
}

/// A decimal sent as a JSON string or number.
fn units(v: &Value) -> rust_decimal::Decimal {
    dec(v
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
        .as_str())
}

/// One onboarded investor from onboarding's API to a COMPLETED purchase in their distributor's
/// view of the portfolio.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributor_onboards_an_investor_who_buys_and_sees_it_in_the_portfolio() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((fleet, order)) = fleet_with_navs(&tmp, GatewaySim::default()).await else {
        return;
    };
    let (onboarding, portfolio) = (
        fleet.url("onboarding").unwrap(),
        fleet.url("portfolio").unwrap(),
    );
    let dst = distributor(&fleet, "DST090").await;
    let other = distributor(&fleet, "DST091").await;

    let body = json!({
        "pan": fresh_pan(),
        "name": "Asha Verma",
        "dateOfBirth": "1990-04-12",
        "contact": {"email": "asha.verma@example.com", "mobile": "+91 98765 43210"},
        "bankAccount": {"accountNumber": "001234567890", "ifsc": "HDFC0001234", "accountType": "SAVINGS"},
        "nominees": [{"name": "Ravi Verma", "relationship": "SPOUSE", "sharePercent": "100"}]
    });
    let r = dst
        .post(format!("{onboarding}/v1/investors"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let view: Value = r.json().await.unwrap();
    let investor = view["investorId"].as_str().unwrap().to_string();
    assert_eq!(view["distributorId"], "DST090", "{view}");

    // The KRA simulator's callback arrives after its latency.
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, v) = get_json(&dst, &format!("{onboarding}/v1/investors/{investor}")).await;
        assert_eq!(status, 200, "{v}");
        if v["kyc"]["status"] == "VALIDATED" {
            break;
        }
        assert!(Instant::now() < deadline, "KYC not validated: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The investor's own token. Until order has applied kyc.verified (and the NAV day is
    // published) placing is refused as unknown/KYC/scheme: retried, anything else fails.
    let me = bearer_client(
        &fleet.investor_token(&investor).await.unwrap(),
        Duration::from_secs(30),
    )
    .unwrap();
    let purchase = json!({"investorId": investor, "kind": "PURCHASE", "schemeCode": EQUITY,
                          "amount": "10000.00", "paymentInstrument": "asha@okhdfc"});
    let deadline = Instant::now() + Duration::from_secs(120);
    let placed = loop {
        let (status, v) = post_order(&me, &order, &nivesh_testkit::unique("onb"), &purchase).await;
        if status == 201 {
            break v;
        }
        let waiting = status == 422
            && ["unknown-investor", "kyc-not-verified", "validation"]
                .iter()
                .any(|t| v["type"].as_str().unwrap_or_default().ends_with(t));
        assert!(
            waiting && Instant::now() < deadline,
            "order refused ({status}): {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let id = placed["orderId"].as_str().unwrap().to_string();
    let done = wait_terminal(&me, &order, &id, Duration::from_secs(90)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    // The onboarding distributor sees the order and the holding; another distributor 404s.
    let (status, v) = get_json(&dst, &format!("{order}/v1/orders/{id}")).await;
    assert_eq!(status, 200, "{v}");
    let path = format!("{portfolio}/v1/investors/{investor}/portfolio");
    let deadline = Instant::now() + WAIT;
    let held = loop {
        let (status, v) = get_json(&dst, &path).await;
        assert_eq!(status, 200, "{v}");
        if let Some(h) = v["holdings"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["schemeCode"] == EQUITY))
        {
            break h.clone();
        }
        assert!(Instant::now() < deadline, "no holding yet: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        units(&held["units"]),
        units(&done["allotments"][0]["units"]),
        "{held} vs {done}"
    );
    assert_eq!(get_json(&other, &path).await.0, 404);
    assert_eq!(
        get_json(&other, &format!("{order}/v1/orders/{id}")).await.0,
        404
    );
    fleet.stop().await.expect("fleet stops cleanly");
}
