//! The portfolio service end to end in one process: events through a real Kafka-protocol broker
//! (DevBroker over TCP), the real Redis (unique key prefix) and the embedded store in a temp dir;
//! assertions through the HTTP API, the outgoing topics and the store.

mod common;

use common::*;
use nivesh_events::PortfolioUpdated;
use nivesh_portfolio::model::{PORTFOLIO, holding_id, holdings_cache_key, nav_cache_key};
use nivesh_store::{Batch, DocumentStore, WriteOp};

const INV: &str = "INV0001";
const SCHEME: &str = "119551";

/// P1 (1000 u @ 10), P2 (500 u @ 12), then a redemption of 1200 u taking lot A whole and 200 u
/// of lot B.
async fn purchases_and_partial_redemption(svc: &Service) {
    svc.publish(
        "transaction.completed",
        INV,
        &purchase(
            INV,
            "txn-A",
            SCHEME,
            "2024-01-01",
            "10",
            "1000.000",
            "10000.00",
        ),
    )
    .await;
    svc.publish(
        "transaction.completed",
        INV,
        &purchase(
            INV,
            "txn-B",
            SCHEME,
            "2024-06-01",
            "12",
            "500.000",
            "6000.00",
        ),
    )
    .await;
    svc.publish(
        "transaction.completed",
        INV,
        &redemption(
            INV,
            "txn-R",
            SCHEME,
            "2024-09-01",
            "13",
            "15600.00",
            &[("txn-A", "1000.000"), ("txn-B", "200.000")],
        ),
    )
    .await;
}

fn portfolio_path() -> String {
    format!("/v1/investors/{INV}/portfolio")
}

async fn etag_of(svc: &Service, if_none_match: Option<&str>) -> (u16, Option<String>) {
    let mut req = svc.http.get(svc.url(&portfolio_path()));
    if let Some(tag) = if_none_match {
        req = req.header("If-None-Match", tag);
    }
    let resp = req.send().await.unwrap();
    let tag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), tag)
}

/// Purchases then a partial redemption give the expected units, cost basis, average cost and
/// value; each applied transaction emits `portfolio.updated` with its order and transaction ids;
/// a NAV broadcast (and then a correction) re-values the holding without rewriting it, changes
/// the ETag, and `If-None-Match` answers 304 only for the current tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_navs_value_the_portfolio() {
    let svc = Service::start().await;
    purchases_and_partial_redemption(&svc).await;

    let v = svc
        .wait_json(&portfolio_path(), "three transactions", |v| {
            v["version"] == 3
        })
        .await;
    let h = &v["holdings"][0];
    assert_eq!(v["holdings"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(h["schemeCode"], SCHEME);
    assert_eq!(h["folio"], "FOLIO1");
    assert_eq!(h["units"], "300.000");
    assert_eq!(h["invested"], "3600.00");
    assert_eq!(h["averageCost"], "12.0000");
    // No broadcast yet: valued at the latest transaction's NAV.
    assert_eq!(h["navSource"], "transaction");
    assert_eq!(h["nav"], "13");
    assert_eq!(h["currentValue"], "3900.00");
    assert_eq!(h["schemeName"], serde_json::Value::Null);
    assert_eq!(v["asOf"], "2025-02-25");

    // One portfolio.updated per transaction, keyed by investor, carrying order and txn ids.
    let msgs = svc.read_until("portfolio.updated", |m| m.len() >= 3).await;
    assert_eq!(msgs.len(), 3);
    assert!(msgs.iter().all(|m| m.key_str() == Some(INV)));
    let mut updates: Vec<PortfolioUpdated> = decode_all(&msgs).await;
    updates.sort_by_key(|u| u.version);
    type Seen<'a> = (i64, Option<&'a str>, Option<&'a str>, String, String);
    let seen: Vec<Seen<'_>> = updates
        .iter()
        .map(|u| {
            (
                u.version,
                u.order_id.as_deref(),
                u.transaction_id.as_deref(),
                u.units.to_string(),
                u.invested.to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                1,
                Some("ord-txn-A"),
                Some("txn-A"),
                "1000.000".into(),
                "10000.00".into()
            ),
            (
                2,
                Some("ord-txn-B"),
                Some("txn-B"),
                "1500.000".into(),
                "16000.00".into()
            ),
            (
                3,
                Some("ord-txn-R"),
                Some("txn-R"),
                "300.000".into(),
                "3600.00".into()
            ),
        ]
    );

    let (status, before_nav) = etag_of(&svc, None).await;
    assert_eq!(status, 200);
    let before_nav = before_nav.expect("an ETag");
    let holding_before = svc
        .store
        .get(PORTFOLIO, INV, &holding_id(SCHEME, "FOLIO1"))
        .await
        .unwrap()
        .unwrap();

    // A NAV broadcast re-values the holding.
    svc.publish(
        "nav.broadcast",
        SCHEME,
        &nav_published(SCHEME, "14.5000", "2025-02-25", "NEW"),
    )
    .await;
    let v = svc
        .wait_json(&portfolio_path(), "the broadcast NAV", |v| {
            v["holdings"][0]["nav"] == "14.5000"
        })
        .await;
    let h = &v["holdings"][0];
    assert_eq!(h["navSource"], "broadcast");
    assert_eq!(h["navDate"], "2025-02-25");
    assert_eq!(h["schemeName"], "Test Fund 119551 - Direct - Growth");
    assert_eq!(h["currentValue"], "4350.00");
    assert_eq!(h["gain"], "750.00");
    assert_eq!(h["gainPct"], "20.83");
    assert_eq!(
        v["version"], 3,
        "a NAV does not change the portfolio version"
    );
    let expected_xirr = nivesh_txn_rules::xirr(&[
        (date("2024-01-01"), d("-10000.00")),
        (date("2024-06-01"), d("-6000.00")),
        (date("2024-09-01"), d("15600.00")),
        (today(), d("4350.00")),
    ])
    .unwrap();
    assert_eq!(h["xirr"], expected_xirr.to_string());
    assert_eq!(v["totals"]["xirr"], expected_xirr.to_string());
    assert_eq!(v["totals"]["currentValue"], "4350.00");
    assert_eq!(v["totals"]["invested"], "3600.00");
    // The holding document was not rewritten by the NAV.
    let holding_after = svc
        .store
        .get(PORTFOLIO, INV, &holding_id(SCHEME, "FOLIO1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holding_after.etag, holding_before.etag);

    let (_, with_nav) = etag_of(&svc, None).await;
    let with_nav = with_nav.unwrap();
    assert_ne!(with_nav, before_nav, "the ETag follows the NAV");
    assert_eq!(etag_of(&svc, Some(&with_nav)).await.0, 304);
    assert_eq!(etag_of(&svc, Some(&before_nav)).await.0, 200);
    let not_modified = svc
        .http
        .get(svc.url(&portfolio_path()))
        .header("If-None-Match", &with_nav)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert!(not_modified.bytes().await.unwrap().is_empty());

    // A correction of the same date replaces the NAV (store and Redis) and the ETag again.
    svc.publish(
        "nav.broadcast",
        SCHEME,
        &nav_published(SCHEME, "14.0000", "2025-02-25", "CORRECTION"),
    )
    .await;
    let v = svc
        .wait_json(&portfolio_path(), "the corrected NAV", |v| {
            v["holdings"][0]["nav"] == "14.0000"
        })
        .await;
    assert_eq!(v["holdings"][0]["currentValue"], "4200.00");
    assert_eq!(v["holdings"][0]["gain"], "600.00");
    assert_eq!(etag_of(&svc, Some(&with_nav)).await.0, 200);
    let cached_nav: serde_json::Value = serde_json::from_slice(
        &svc.cache
            .get(&nav_cache_key(SCHEME))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cached_nav["nav"], "14.0000");
    let cached_holdings: serde_json::Value = serde_json::from_slice(
        &svc.cache
            .get(&holdings_cache_key(INV))
            .await
            .unwrap()
            .expect("holdings are cached in Redis"),
    )
    .unwrap();
    assert_eq!(cached_holdings["version"], 3);
    svc.stop().await;
}

/// The same event delivered twice is applied once: one version, one `portfolio.updated`, the
/// units counted once. A later event on the same partition proves the duplicate was processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_applies_once() {
    let svc = Service::start().await;
    let first = svc
        .publish(
            "transaction.completed",
            INV,
            &purchase(
                INV,
                "txn-1",
                SCHEME,
                "2024-01-01",
                "10",
                "100.000",
                "1000.00",
            ),
        )
        .await;
    svc.publish_raw("transaction.completed", INV, first).await;
    svc.publish(
        "transaction.completed",
        INV,
        &purchase(INV, "txn-2", SCHEME, "2024-02-01", "10", "50.000", "500.00"),
    )
    .await;
    let v = svc
        .wait_json(&portfolio_path(), "the sentinel purchase", |v| {
            v["version"].as_i64() >= Some(2)
        })
        .await;
    assert_eq!(v["version"], 2);
    assert_eq!(v["holdings"][0]["units"], "150.000");
    assert_eq!(v["holdings"][0]["invested"], "1500.00");
    // Outbox records publish in commit order, so a duplicate's would precede txn-2's.
    let msgs = svc.read_until("portfolio.updated", |m| m.len() >= 2).await;
    let updates: Vec<PortfolioUpdated> = decode_all(&msgs).await;
    let ids: Vec<_> = updates
        .iter()
        .map(|u| u.transaction_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["txn-1", "txn-2"]);
    // The duplicate was acknowledged quietly: not dead-lettered, not sent to a retry tier (the
    // partition is handled in order, so a forward of it would precede txn-2's commit).
    for topic in ["portfolio.dlq", "portfolio.retry.0"] {
        let parked = read_all(&svc.bootstrap, topic).await;
        assert!(parked.is_empty(), "{topic} has {} records", parked.len());
    }
    let page = svc
        .get_json(&format!("/v1/investors/{INV}/portfolio/transactions"))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    svc.stop().await;
}

/// The transactions endpoint pages through what was applied and sums to the holding; the
/// reconciliation agrees after a sequence, and reports the difference after the holding document
/// is changed behind the service's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_passes_then_detects_a_tampered_holding() {
    let svc = Service::start().await;
    purchases_and_partial_redemption(&svc).await;
    svc.wait_json(&portfolio_path(), "three transactions", |v| {
        v["version"] == 3
    })
    .await;

    let base = format!("/v1/investors/{INV}/portfolio/transactions");
    let p1 = svc.get_json(&format!("{base}?limit=2")).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["items"][0]["transactionId"], "txn-A");
    assert_eq!(p1["nextAfter"], 2);
    let p2 = svc.get_json(&format!("{base}?after=2&limit=2")).await;
    let items = p2["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(p2["nextAfter"], serde_json::Value::Null);
    let r = &items[0];
    assert_eq!(r["leg"], "REDEMPTION");
    assert_eq!(r["orderId"], "ord-txn-R");
    assert_eq!(r["unitsDelta"], "-1200.000");
    assert_eq!(r["investedDelta"], "-12400.00");
    assert_eq!(r["cashFlow"], "15600.00");
    assert_eq!(r["lots"][1]["lotId"], "txn-B");
    assert_eq!(r["lots"][1]["cost"], "2400.00");
    // What an external reconciliation tool does: holding == sum of its transactions.
    let all: Vec<serde_json::Value> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(items)
        .cloned()
        .collect();
    let units: rust_decimal::Decimal = all
        .iter()
        .map(|t| d(t["unitsDelta"].as_str().unwrap()))
        .sum();
    assert_eq!(units, d("300"));
    for bad in ["limit=0", "limit=501", "after=-1", "limit=abc"] {
        let resp = svc.get(&format!("{base}?{bad}")).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{bad}"
        );
    }

    let recon_path = format!("/v1/investors/{INV}/portfolio/reconciliation");
    let ok = svc.get_json(&recon_path).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["transactionsChecked"], 3);
    assert_eq!(ok["holdingsChecked"], 1);

    // Tamper with the holding in the store, as a bad migration or manual edit would.
    let id = holding_id(SCHEME, "FOLIO1");
    let doc = svc.store.get(PORTFOLIO, INV, &id).await.unwrap().unwrap();
    let mut body = doc.body.clone();
    body["units"] = serde_json::json!("301.000");
    svc.store
        .commit(Batch::new(PORTFOLIO, INV).op(WriteOp::Replace {
            id,
            body,
            if_match: doc.etag,
            ttl: None,
        }))
        .await
        .unwrap();
    let bad = svc.get_json(&recon_path).await;
    assert_eq!(bad["ok"], false, "{bad}");
    let m = bad["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["field"] == "units")
        .unwrap_or_else(|| panic!("a units mismatch in {bad}"));
    assert_eq!(m["schemeCode"], SCHEME);
    assert_eq!(m["folio"], "FOLIO1");
    assert_eq!(m["expected"], "300");
    assert_eq!(m["actual"], "301");
    svc.stop().await;
}

/// Undecodable and self-contradicting events go to `portfolio.dlq` with the reason, and the
/// partition moves on: a valid event behind them is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dlq() {
    let svc = Service::start().await;
    svc.publish_raw("transaction.completed", INV, b"not an avro event".to_vec())
        .await;
    let mut gift = purchase(INV, "txn-G", SCHEME, "2024-01-01", "10", "1.000", "10.00");
    gift.leg = "GIFT".into();
    svc.publish("transaction.completed", INV, &gift).await;
    svc.publish_raw("nav.broadcast", SCHEME, b"\x00garbage".to_vec())
        .await;
    svc.publish(
        "transaction.completed",
        INV,
        &purchase(INV, "txn-OK", SCHEME, "2024-01-01", "10", "1.000", "10.00"),
    )
    .await;

    let dead = svc.read_until("portfolio.dlq", |m| m.len() >= 3).await;
    assert_eq!(dead.len(), 3);
    for m in &dead {
        assert_eq!(
            m.header_str("nivesh-dlq-reason"),
            Some("permanent"),
            "{m:?}"
        );
    }
    let origins: Vec<&str> = dead
        .iter()
        .map(|m| m.header_str("nivesh-original-topic").unwrap())
        .collect();
    assert_eq!(
        origins
            .iter()
            .filter(|t| **t == "transaction.completed")
            .count(),
        2
    );
    assert!(origins.contains(&"nav.broadcast"));
    assert!(
        dead.iter()
            .any(|m| m.header_str("nivesh-error").unwrap_or("").contains("GIFT")),
        "the reason names the bad leg"
    );
    let v = svc
        .wait_json(&portfolio_path(), "the valid purchase", |v| {
            v["version"] == 1
        })
        .await;
    assert_eq!(v["holdings"][0]["units"], "1.000");
    svc.stop().await;
}

/// A malformed investor id is a 400 problem; an investor with nothing is 200 with no holdings;
/// the OpenAPI document lists every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn investor_ids_empty_portfolios_and_openapi() {
    let svc = Service::start().await;
    let long = "x".repeat(65);
    for bad in ["bad%20id", "inv!1", long.as_str()] {
        for suffix in ["", "/transactions", "/reconciliation"] {
            let resp = svc
                .get(&format!("/v1/investors/{bad}/portfolio{suffix}"))
                .await;
            assert_eq!(resp.status(), 400, "{bad}{suffix}");
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
            let p: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(p["status"], 400);
        }
    }
    let resp = svc.get("/v1/investors/INV9999/portfolio").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("etag"));
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["version"], 0);
    assert_eq!(v["holdings"], serde_json::json!([]));
    assert_eq!(v["totals"]["invested"], "0.00");
    assert_eq!(v["totals"]["xirr"], serde_json::Value::Null);
    let recon = svc
        .get_json("/v1/investors/INV9999/portfolio/reconciliation")
        .await;
    assert_eq!(recon["ok"], true);

    let doc = svc.get_json("/openapi.json").await;
    for path in [
        "/v1/investors/{investor_id}/portfolio",
        "/v1/investors/{investor_id}/portfolio/transactions",
        "/v1/investors/{investor_id}/portfolio/reconciliation",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} in OpenAPI");
    }
    assert!(doc["components"]["schemas"].get("PortfolioView").is_some());
    svc.stop().await;
}
