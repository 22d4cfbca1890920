//! End-to-end: after a purchase through the whole fleet, the investor asks the GenAI gateway
//! "What is my portfolio worth and which fund gained most this month?" with their own token and
//! gets a grounded answer with sources from the local extractive provider (offline), built from
//! the gateway's own read model of the events the fleet published.

mod common;

use std::time::{Duration, Instant};

use common::txn::*;
use nivesh_fleet::fleet::GatewaySim;
use rust_decimal::RoundingStrategy;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

/// `9999.37` -> `9,999.37` (amounts below one lakh).
fn inr_below_lakh(v: rust_decimal::Decimal) -> String {
    let s = format!("{:.2}", v);
    let (int, frac) = s.split_once('.').unwrap();
    if int.len() > 3 {
        format!("{},{}.{frac}", &int[..int.len() - 3], &int[int.len() - 3..])
    } else {
        s
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn investor_gets_a_grounded_answer_about_their_portfolio() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((fleet, order)) = fleet_with_navs(&tmp, GatewaySim::default()).await else {
        return;
    };
    let admin = fleet.staff_client(&["admin"]).await.expect("admin client");
    let placed = place(
        &admin,
        &order,
        &json!({"investorId": "INV0003", "kind": "PURCHASE", "schemeCode": EQUITY,
                "amount": "10000.00", "paymentInstrument": "vihaan@okaxis"}),
    )
    .await;
    let id = placed["orderId"].as_str().unwrap().to_string();
    let done = wait_terminal(&admin, &order, &id, WAIT).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    // Independent arithmetic: duty on ₹10,000 is ₹0.50, units truncated to 3 decimals.
    let duty = (dec("10000.00") * dec("0.005") / dec("100.005"))
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let units = ((dec("10000.00") - duty) / dec(EQUITY_NAV))
        .round_dp_with_strategy(3, RoundingStrategy::ToZero);
    let worth = format!(
        "your portfolio is worth INR {}",
        inr_below_lakh((units * dec(EQUITY_NAV)).round_dp(2))
    );

    let token = fleet.investor_token("INV0003").await.unwrap();
    let genai = fleet.url("genai-gateway").unwrap();
    let http = reqwest::Client::new();
    let question = "What is my portfolio worth and which fund gained most this month?";
    let deadline = Instant::now() + WAIT;
    let answer: Value = loop {
        let resp = http
            .post(format!("{genai}/v1/genai/ask"))
            .bearer_auth(&token)
            .json(&json!({ "question": question }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        // The gateway's read model catches up with portfolio.updated and nav.broadcast.
        if v["answer"].as_str().unwrap_or_default().contains(&worth) {
            break v;
        }
        assert!(Instant::now() < deadline, "no grounded answer in time: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(answer["outcome"], "ANSWERED", "{answer}");
    assert_eq!(answer["grounding"]["score"], "1.00", "{answer}");
    let text = answer["answer"].as_str().unwrap();
    assert!(text.contains("gained most this month"), "{text}");
    assert!(text.contains("[S1]"), "{text}");
    let sources = answer["sources"].as_array().unwrap();
    assert!(sources.iter().any(|s| s["id"] == "portfolio"), "{answer}");
    // Another investor's data is not in it.
    assert!(!answer.to_string().contains("INV0002"));

    // Without a token: 401.
    let resp = http
        .post(format!("{genai}/v1/genai/ask"))
        .json(&json!({ "question": question }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    fleet.stop().await.expect("fleet stops cleanly");
}
