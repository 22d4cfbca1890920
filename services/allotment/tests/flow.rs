//! The allotment service end to end in-process: real broker (mock cluster over TCP), embedded
//! store in a temp dir, events in through the consumer group, results read back from the real
//! `transaction.*` topics, the DLQ and the HTTP API.
//!
//! "Exactly once" is checked without sleeping: a later event of the same investor on the same
//! topic (same partition, processed in order) is used as a marker, so when its result is out,
//! the duplicates before it have been processed too.

mod common;

use common::*;
use nivesh_allotment::Config;
use nivesh_allotment::model::{NAVS, NavEntry, nav_id};
use nivesh_domain::Nav;
use nivesh_events::{EventMeta, OrderPlaced, TransactionCompleted, TransactionFailed, order_kind};
use nivesh_store::{Batch, DocumentStore, EmbeddedStore, WriteOp};
use rust_decimal::{Decimal, RoundingStrategy};

const COMPLETED: &str = "transaction.completed";
const FAILED: &str = "transaction.failed";

fn oid() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn half_up(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn of_order<'a>(events: &'a [TransactionCompleted], order: &str) -> Vec<&'a TransactionCompleted> {
    events.iter().filter(|e| e.order_id == order).collect()
}

/// A purchase paid before its NAV exists waits (visible as PENDING with the applicable NAV date,
/// holidays respected), and is allotted with every figure once the NAV is broadcast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_purchase_waits_for_the_nav_and_is_allotted() {
    let svc = Service::start(Config::default(), ist(d(2025, 2, 25), 10, 0)).await;
    let (inv, scheme) = ("INV0001", "100001");
    let order = oid();
    svc.pay(&payment(
        &order,
        inv,
        scheme,
        EQUITY,
        "10000.00",
        ist(d(2025, 2, 25), 11, 0),
    ))
    .await;
    // Realised after the 15:00 cut-off on the 25th: the 26th is a holiday, so the 27th.
    let late = oid();
    svc.pay(&payment(
        &late,
        inv,
        scheme,
        EQUITY,
        "500.00",
        ist(d(2025, 2, 25), 15, 0),
    ))
    .await;

    let path = format!("/v1/allotments/{order}?investorId={inv}");
    let body = svc
        .until_http(&path, "the purchase to be pending", |b| {
            b["status"] == "PENDING"
        })
        .await;
    assert_eq!(body["pending"][0]["navDate"], "2025-02-25");
    assert_eq!(body["pending"][0]["transactionId"], format!("txn-{order}"));
    // Business-clock instants are served in IST.
    assert_eq!(
        body["pending"][0]["waitingSince"],
        "2025-02-25T10:00:00+05:30"
    );
    let late_body = svc
        .until_http(
            &format!("/v1/allotments/{late}?investorId={inv}"),
            "the late purchase to be pending",
            |b| b["status"] == "PENDING",
        )
        .await;
    assert_eq!(late_body["pending"][0]["navDate"], "2025-02-27");
    assert!(svc.read::<TransactionCompleted>(COMPLETED).await.is_empty());

    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        EQUITY,
        "103.9450",
        d(2025, 2, 25),
    ))
    .await;
    let events = svc
        .until::<TransactionCompleted>(COMPLETED, "the allotment", |e| !e.is_empty())
        .await;
    assert_eq!(events.len(), 1, "only the 25th's purchase is priced");
    let t = &events[0];
    let (duty, net, units) = expected_purchase("10000.00", "103.9450");
    assert_eq!(t.transaction_id, format!("txn-{order}"));
    assert_eq!(t.order_id, order);
    assert_eq!(t.investor_id, inv);
    assert_eq!(
        (t.leg.as_str(), t.order_kind.as_str()),
        ("PURCHASE", "PURCHASE")
    );
    assert_eq!(t.folio, expected_folio(inv, "Test AMC"));
    assert_eq!(t.nav, dec("103.9450"));
    assert_eq!(t.nav_date, d(2025, 2, 25));
    assert_eq!(t.gross_amount, dec("10000.00"));
    assert_eq!(t.stamp_duty, duty);
    assert_eq!(t.exit_load, Decimal::ZERO);
    assert_eq!(t.net_amount, net);
    assert_eq!(t.units, units);
    assert_eq!(t.balance_units, units);
    assert_eq!(t.lots.len(), 1);
    assert_eq!(t.lots[0].lot_id, t.transaction_id);
    assert_eq!(t.lots[0].units, units);
    assert_eq!(t.lots[0].cost, dec("10000.00"));
    assert_eq!(t.lots[0].days_held, 0);
    assert!(t.linked_order_leg.is_none());

    let (status, body, _) = svc.get_json(&path).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "COMPLETED");
    assert_eq!(
        body["transactions"][0]["figures"]["units"],
        units.to_string()
    );
    let (status, lots, _) = svc.get_json(&format!("/v1/investors/{inv}/lots")).await;
    assert_eq!(status, 200);
    assert_eq!(lots["schemes"][0]["schemeCode"], scheme);
    assert_eq!(lots["schemes"][0]["units"], units.to_string());
    assert_eq!(lots["schemes"][0]["folio"], t.folio);
    assert_eq!(lots["schemes"][0]["lots"][0]["lotId"], t.transaction_id);

    // The 27th's purchase is still waiting.
    let (_, late_body, _) = svc
        .get_json(&format!("/v1/allotments/{late}?investorId={inv}"))
        .await;
    assert_eq!(late_body["status"], "PENDING");

    // Bad input is a problem+json 4xx.
    let (status, _, ctype) = svc
        .get_json(&format!("/v1/allotments/{order}?investorId=bad%20id"))
        .await;
    assert_eq!((status, ctype.as_str()), (400, "application/problem+json"));
    let (status, _, ctype) = svc.get_json(&format!("/v1/allotments/{order}")).await;
    assert_eq!((status, ctype.as_str()), (400, "application/problem+json"));
    let (status, _, ctype) = svc
        .get_json(&format!("/v1/allotments/{}?investorId={inv}", oid()))
        .await;
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));
    let (status, _, _) = svc.get_json("/v1/investors/no%20such/lots").await;
    assert_eq!(status, 400);

    // Access: ops/admin any investor, the investor their own (another's is a 404 like a missing
    // one), other roles 403, no token 401.
    let idp = &svc.idp;
    let own = format!("/v1/allotments/{order}?investorId={inv}");
    let lots_path = format!("/v1/investors/{inv}/lots");
    let other = "INV0002";
    let cases: Vec<(String, Option<String>, u16, u16)> = vec![
        ("no token".into(), None, 401, 401),
        ("garbage".into(), Some("Bearer x.y.z".into()), 401, 401),
        ("the investor".into(), Some(idp.investor(inv)), 200, 200),
        (
            "another investor".into(),
            Some(idp.investor(other)),
            404,
            404,
        ),
        (
            "distributor".into(),
            Some(idp.distributor("DST001")),
            403,
            403,
        ),
        (
            "compliance".into(),
            Some(idp.role(nivesh_testkit::Role::Compliance)),
            403,
            403,
        ),
        ("ops".into(), Some(idp.ops()), 200, 200),
        ("admin".into(), Some(idp.admin()), 200, 200),
        (
            "admin of tenant acme".into(),
            Some(
                idp.bearer(
                    &nivesh_testkit::DevClaims::with_roles(&[nivesh_testkit::Role::Admin])
                        .tenant("acme"),
                ),
            ),
            403,
            403,
        ),
    ];
    for (who, auth, allotment_status, lots_status) in &cases {
        let (s, b) = svc.get_as(&own, auth.as_deref()).await;
        assert_eq!(s, *allotment_status, "allotment as {who}: {b}");
        let (s, b) = svc.get_as(&lots_path, auth.as_deref()).await;
        assert_eq!(s, *lots_status, "lots as {who}: {b}");
    }
    // Another investor's existing allotment answers exactly like a missing order.
    let (s, theirs) = svc.get_as(&own, Some(&idp.investor(other))).await;
    let missing_order = oid();
    let (s2, missing) = svc
        .get_as(
            &format!("/v1/allotments/{missing_order}?investorId={inv}"),
            Some(&idp.investor(other)),
        )
        .await;
    assert_eq!((s, s2), (404, 404));
    assert_eq!(
        theirs["detail"]
            .as_str()
            .unwrap()
            .replace(&order.to_string(), "<id>"),
        missing["detail"]
            .as_str()
            .unwrap()
            .replace(&missing_order.to_string(), "<id>")
    );

    // Both reads are in the OpenAPI document.
    let (status, doc, _) = svc.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["paths"]["/v1/allotments/{orderId}"]["get"].is_object(),
        "{doc}"
    );
    assert!(doc["paths"]["/v1/investors/{investorId}/lots"]["get"].is_object());
    assert!(doc["components"]["schemas"]["OrderAllotment"].is_object());
    svc.stop().await;
}

/// The same payment.success delivered twice (same event id), re-emitted under a new event id,
/// and redelivered after it was allotted, allots exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_payment_delivered_twice_allots_once() {
    let svc = Service::start(Config::default(), ist(d(2025, 2, 25), 10, 0)).await;
    let (inv, scheme) = ("INV0002", "100002");
    let at = ist(d(2025, 2, 25), 11, 0);

    // First a purchase that waits and is released, so the NAV is known to be stored.
    let first = payment(&oid(), inv, scheme, EQUITY, "1000.00", at);
    svc.pay(&first).await;
    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        EQUITY,
        "10.0000",
        d(2025, 2, 25),
    ))
    .await;
    svc.until::<TransactionCompleted>(COMPLETED, "the first allotment", |e| e.len() == 1)
        .await;

    // Now the NAV is in the table: a payment allots on arrival; deliver it three ways.
    let dup = payment(&oid(), inv, scheme, EQUITY, "2000.00", at);
    svc.pay(&dup).await;
    svc.pay(&dup).await;
    let mut reemitted = dup.clone();
    reemitted.meta = EventMeta::new::<nivesh_events::PaymentSucceeded>("test", None);
    svc.pay(&reemitted).await;
    // And the first one again, long after it was allotted.
    svc.pay(&first).await;
    // The marker: same investor, same topic, after the duplicates.
    let marker = payment(&oid(), inv, scheme, EQUITY, "3000.00", at);
    svc.pay(&marker).await;

    let events = svc
        .until::<TransactionCompleted>(COMPLETED, "the marker's allotment", |e| {
            e.iter().any(|t| t.order_id == marker.order_id)
        })
        .await;
    assert_eq!(of_order(&events, &first.order_id).len(), 1);
    assert_eq!(of_order(&events, &dup.order_id).len(), 1);
    assert_eq!(of_order(&events, &marker.order_id).len(), 1);
    assert_eq!(events.len(), 3, "{events:#?}");

    let (_, lots, _) = svc.get_json(&format!("/v1/investors/{inv}/lots")).await;
    let lots = lots["schemes"][0]["lots"].as_array().unwrap().clone();
    assert_eq!(lots.len(), 3);
    let held: Decimal = lots.iter().map(|l| dec(l["units"].as_str().unwrap())).sum();
    let expected: Decimal = ["1000.00", "2000.00", "3000.00"]
        .iter()
        .map(|a| expected_purchase(a, "10.0000").2)
        .sum();
    assert_eq!(held, expected);
    svc.stop().await;
}

/// A redemption spanning two lots pays the 1 % equity load only on the units of the lot held
/// under 365 days; lots, costs and days held are reported per lot, FIFO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redemption_with_exit_load_over_two_lots() {
    let svc = Service::start(Config::default(), ist(d(2025, 6, 30), 9, 0)).await;
    let (inv, scheme) = ("INV0003", "100003");
    let (old, new) = (oid(), oid());
    svc.pay(&payment(
        &old,
        inv,
        scheme,
        EQUITY,
        "1000.00",
        ist(d(2024, 1, 10), 10, 0),
    ))
    .await;
    svc.pay(&payment(
        &new,
        inv,
        scheme,
        EQUITY,
        "1000.00",
        ist(d(2025, 1, 10), 10, 0),
    ))
    .await;
    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        EQUITY,
        "10.0000",
        d(2024, 1, 10),
    ))
    .await;
    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        EQUITY,
        "20.0000",
        d(2025, 1, 10),
    ))
    .await;
    svc.until::<TransactionCompleted>(COMPLETED, "both purchases", |e| e.len() == 2)
        .await;

    let units_old = expected_purchase("1000.00", "10.0000").2;
    let units_new = expected_purchase("1000.00", "20.0000").2;
    let redeem_units = units_old + dec("20.000");
    let order = oid();
    svc.place(&redemption(
        &order,
        inv,
        scheme,
        Some(&redeem_units.to_string()),
        ist(d(2025, 6, 30), 10, 0),
    ))
    .await;
    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        EQUITY,
        "25.5000",
        d(2025, 6, 30),
    ))
    .await;
    let events = svc
        .until::<TransactionCompleted>(COMPLETED, "the redemption", |e| e.len() == 3)
        .await;
    let r = of_order(&events, &order)[0];

    let nav = dec("25.5000");
    let gross = half_up(redeem_units * nav);
    let load = half_up(dec("20.000") * nav / dec("100"));
    assert_eq!(r.leg, "REDEMPTION");
    assert_eq!(r.order_kind, "REDEMPTION");
    assert_eq!(r.transaction_id, format!("txn-{order}"));
    assert_eq!(r.nav_date, d(2025, 6, 30));
    assert_eq!(r.units, redeem_units);
    assert_eq!(r.gross_amount, gross);
    assert_eq!(r.exit_load, load);
    assert_eq!(r.net_amount, gross - load);
    assert_eq!(r.stamp_duty, Decimal::ZERO);
    assert_eq!(r.balance_units, units_new - dec("20.000"));
    assert_eq!(r.folio, expected_folio(inv, "Test AMC"));
    assert_eq!(r.lots.len(), 2);
    assert_eq!(r.lots[0].lot_id, format!("txn-{old}"));
    assert_eq!(r.lots[0].units, units_old);
    assert_eq!(r.lots[0].days_held, 537);
    assert_eq!(r.lots[0].exit_load, Decimal::ZERO);
    assert_eq!(r.lots[0].cost, dec("1000.00"));
    assert_eq!(r.lots[0].lot_nav, dec("10.0000"));
    assert_eq!(r.lots[1].lot_id, format!("txn-{new}"));
    assert_eq!(r.lots[1].units, dec("20.000"));
    assert_eq!(r.lots[1].days_held, 171);
    assert_eq!(r.lots[1].exit_load, load);
    assert_eq!(
        r.lots[1].cost,
        half_up(dec("1000.00") * dec("20.000") / units_new)
    );

    let (_, lots, _) = svc.get_json(&format!("/v1/investors/{inv}/lots")).await;
    let left = &lots["schemes"][0]["lots"];
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["lotId"], format!("txn-{new}"));
    assert_eq!(
        dec(left[0]["units"].as_str().unwrap()),
        units_new - dec("20.000")
    );
    svc.stop().await;
}

/// A switch: the SWITCH_OUT leg is priced at the source's NAV; its net proceeds wait for the
/// target's NAV and buy in as SWITCH_IN (stamp duty applies); the legs point at each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_redeems_then_buys_the_target_with_the_proceeds() {
    let svc = Service::start(Config::default(), ist(d(2025, 3, 4), 9, 0)).await;
    let (inv, from, to) = ("INV0004", "100004", "100005");
    let buy = oid();
    svc.pay(&payment(
        &buy,
        inv,
        from,
        EQUITY,
        "5000.00",
        ist(d(2025, 3, 3), 10, 0),
    ))
    .await;
    svc.publish_nav(&nav_published(
        from,
        "Alpha AMC",
        EQUITY,
        "50.0000",
        d(2025, 3, 3),
    ))
    .await;
    svc.until::<TransactionCompleted>(COMPLETED, "the purchase", |e| e.len() == 1)
        .await;
    let held = expected_purchase("5000.00", "50.0000").2;

    let order = oid();
    svc.place(&OrderPlaced {
        meta: EventMeta::new::<OrderPlaced>("test", Some(order.clone())),
        order_id: order.clone(),
        investor_id: inv.into(),
        kind: order_kind::SWITCH.into(),
        scheme_code: from.into(),
        scheme_name: None,
        scheme_category: Some(EQUITY.into()),
        target_scheme_code: Some(to.into()),
        target_scheme_category: Some(GILT.into()),
        amount: None,
        units: None,
        all_units: true,
        placed_at: ist(d(2025, 3, 4), 11, 0),
        sip_id: None,
        instalment_no: None,
        payment_instrument: None,
    })
    .await;
    svc.publish_nav(&nav_published(
        from,
        "Alpha AMC",
        EQUITY,
        "52.0000",
        d(2025, 3, 4),
    ))
    .await;
    let events = svc
        .until::<TransactionCompleted>(COMPLETED, "the switch-out", |e| e.len() == 2)
        .await;
    let out = of_order(&events, &order)[0].clone();
    let gross = half_up(held * dec("52.0000"));
    // One day held: inside the equity 1 % window.
    let load = half_up(held * dec("52.0000") / dec("100"));
    assert_eq!(out.leg, "SWITCH_OUT");
    assert_eq!(out.order_kind, "SWITCH");
    assert_eq!(out.transaction_id, format!("txn-{order}-out"));
    assert_eq!(
        out.linked_order_leg.as_deref(),
        Some(format!("txn-{order}-in").as_str())
    );
    assert_eq!(out.units, held);
    assert_eq!(out.gross_amount, gross);
    assert_eq!(out.exit_load, load);
    assert_eq!(out.net_amount, gross - load);
    assert_eq!(out.balance_units, Decimal::ZERO);
    assert_eq!(out.lots[0].days_held, 1);

    // The switch-in waits for the target's NAV.
    let path = format!("/v1/allotments/{order}?investorId={inv}");
    let body = svc
        .until_http(&path, "the pending switch-in", |b| b["status"] == "PENDING")
        .await;
    assert_eq!(body["pending"][0]["leg"], "SWITCH_IN");
    assert_eq!(body["pending"][0]["navDate"], "2025-03-04");
    assert_eq!(body["transactions"][0]["leg"], "SWITCH_OUT");

    svc.publish_nav(&nav_published(
        to,
        "Beta AMC",
        GILT,
        "12.3456",
        d(2025, 3, 4),
    ))
    .await;
    let events = svc
        .until::<TransactionCompleted>(COMPLETED, "the switch-in", |e| e.len() == 3)
        .await;
    let inn = of_order(&events, &order)
        .into_iter()
        .find(|t| t.leg == "SWITCH_IN")
        .expect("switch-in")
        .clone();
    let proceeds = (gross - load).to_string();
    let (duty, net, units) = expected_purchase(&proceeds, "12.3456");
    assert_eq!(inn.transaction_id, format!("txn-{order}-in"));
    assert_eq!(
        inn.linked_order_leg.as_deref(),
        Some(out.transaction_id.as_str())
    );
    assert_eq!(inn.order_kind, "SWITCH");
    assert_eq!(inn.scheme_code, to);
    assert_eq!(inn.nav_date, d(2025, 3, 4));
    assert_eq!(inn.gross_amount, out.net_amount);
    assert_eq!(inn.stamp_duty, duty);
    assert_eq!(inn.net_amount, net);
    assert_eq!(inn.units, units);
    assert_eq!(inn.balance_units, units);
    assert_eq!(inn.folio, expected_folio(inv, "Beta AMC"));
    assert_ne!(inn.folio, out.folio);

    let (_, body, _) = svc.get_json(&path).await;
    assert_eq!(body["status"], "COMPLETED");
    assert_eq!(body["transactions"].as_array().unwrap().len(), 2);
    svc.stop().await;
}

/// No NAV within the limit: the sweeper fails the purchase with NAV_NOT_AVAILABLE and the refund
/// fields; a NAV arriving afterwards does not allot it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nav_never_arrives_fails_with_refund() {
    let config = Config {
        nav_wait_limit_secs: 3600,
        sweep_interval_ms: 100,
        ..Config::default()
    };
    let svc = Service::start(config, ist(d(2025, 2, 25), 11, 0)).await;
    let scheme = "100006";
    let p = payment(
        &oid(),
        "INV0005",
        scheme,
        EQUITY,
        "2500.00",
        ist(d(2025, 2, 25), 11, 0),
    );
    svc.pay(&p).await;
    let path = format!("/v1/allotments/{}?investorId={}", p.order_id, p.investor_id);
    svc.until_http(&path, "the pending purchase", |b| b["status"] == "PENDING")
        .await;
    // Still inside the limit: nothing fails.
    assert!(svc.read::<TransactionFailed>(FAILED).await.is_empty());

    svc.clock.advance(chrono::TimeDelta::hours(2));
    let failed = svc
        .until::<TransactionFailed>(FAILED, "NAV_NOT_AVAILABLE", |e| !e.is_empty())
        .await;
    assert_eq!(failed.len(), 1);
    let f = &failed[0];
    assert_eq!(f.order_id, p.order_id);
    assert_eq!(f.investor_id, p.investor_id);
    assert_eq!(f.order_kind, "PURCHASE");
    assert_eq!(f.scheme_code, scheme);
    assert_eq!(f.reason_code, "NAV_NOT_AVAILABLE");
    assert_eq!(f.payment_id.as_deref(), Some(p.payment_id.as_str()));
    assert_eq!(f.refund_amount, Some(dec("2500.00")));
    let (_, body, _) = svc.get_json(&path).await;
    assert_eq!(body["status"], "FAILED");
    assert_eq!(
        body["transactions"][0]["failure"]["refundAmount"],
        "2500.00"
    );

    // The NAV comes late; another investor's purchase waiting for it is allotted, the failed
    // one is not.
    let other = payment(
        &oid(),
        "INV0006",
        scheme,
        EQUITY,
        "100.00",
        ist(d(2025, 2, 25), 12, 0),
    );
    svc.pay(&other).await;
    svc.until_http(
        &format!(
            "/v1/allotments/{}?investorId={}",
            other.order_id, other.investor_id
        ),
        "the second pending purchase",
        |b| b["status"] == "PENDING",
    )
    .await;
    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        EQUITY,
        "10.0000",
        d(2025, 2, 25),
    ))
    .await;
    let done = svc
        .until::<TransactionCompleted>(COMPLETED, "the second purchase", |e| !e.is_empty())
        .await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].order_id, other.order_id);
    let (_, body, _) = svc.get_json(&path).await;
    assert_eq!(body["status"], "FAILED");
    svc.stop().await;
}

/// The sweeper releases a waiting purchase whose NAV got into the table without the NAV
/// handler's release (the missed-wakeup case: here the NAV is written behind its back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_releases_a_missed_wakeup() {
    let config = Config {
        sweep_interval_ms: 100,
        ..Config::default()
    };
    let svc = Service::start(config, ist(d(2025, 2, 25), 11, 0)).await;
    let scheme = "100007";
    let p = payment(
        &oid(),
        "INV0007",
        scheme,
        GILT,
        "1000.00",
        ist(d(2025, 2, 25), 11, 0),
    );
    svc.pay(&p).await;
    let path = format!("/v1/allotments/{}?investorId={}", p.order_id, p.investor_id);
    svc.until_http(&path, "the pending purchase", |b| b["status"] == "PENDING")
        .await;

    // A second handle on the service's own store file, as a crashed NAV handler would leave it.
    let store = EmbeddedStore::open(svc.store_path()).expect("store");
    let entry = NavEntry {
        scheme_code: scheme.into(),
        nav_date: d(2025, 2, 25),
        nav: Nav::parse("20.0000").unwrap(),
        change_kind: "NEW".into(),
        event_id: "written-directly".into(),
    };
    store
        .commit(Batch::new(NAVS, scheme).op(WriteOp::Upsert {
            id: nav_id(d(2025, 2, 25)),
            body: serde_json::to_value(&entry).unwrap(),
            ttl: None,
        }))
        .await
        .expect("write NAV");

    let done = svc
        .until::<TransactionCompleted>(COMPLETED, "the sweeper's release", |e| !e.is_empty())
        .await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].order_id, p.order_id);
    assert_eq!(done[0].units, expected_purchase("1000.00", "20.0000").2);
    drop(store);
    svc.stop().await;
}

/// Redeeming more units than held fails with INSUFFICIENT_UNITS and leaves the lots untouched;
/// a redemption within the holding then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_units_fails_the_redemption() {
    let svc = Service::start(Config::default(), ist(d(2025, 2, 25), 10, 0)).await;
    let (inv, scheme) = ("INV0008", "100008");
    svc.pay(&payment(
        &oid(),
        inv,
        scheme,
        GILT,
        "1000.00",
        ist(d(2025, 2, 25), 10, 0),
    ))
    .await;
    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        GILT,
        "10.0000",
        d(2025, 2, 25),
    ))
    .await;
    svc.until::<TransactionCompleted>(COMPLETED, "the purchase", |e| e.len() == 1)
        .await;
    let held = expected_purchase("1000.00", "10.0000").2;

    let too_much = oid();
    svc.place(&redemption(
        &too_much,
        inv,
        scheme,
        Some(&(held + dec("0.001")).to_string()),
        ist(d(2025, 2, 25), 12, 0),
    ))
    .await;
    let failed = svc
        .until::<TransactionFailed>(FAILED, "INSUFFICIENT_UNITS", |e| !e.is_empty())
        .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].order_id, too_much);
    assert_eq!(failed[0].order_kind, "REDEMPTION");
    assert_eq!(failed[0].reason_code, "INSUFFICIENT_UNITS");
    assert_eq!(failed[0].payment_id, None);
    assert_eq!(failed[0].refund_amount, None);

    let ok = oid();
    svc.place(&redemption(
        &ok,
        inv,
        scheme,
        Some("50"),
        ist(d(2025, 2, 25), 12, 0),
    ))
    .await;
    let events = svc
        .until::<TransactionCompleted>(COMPLETED, "the redemption", |e| e.len() == 2)
        .await;
    let r = of_order(&events, &ok)[0];
    assert_eq!(r.units, dec("50.000"));
    assert_eq!(r.balance_units, held - dec("50.000"));
    // Gilt: nil exit load.
    assert_eq!(r.exit_load, Decimal::ZERO);
    assert_eq!(r.net_amount, dec("500.00"));
    svc.stop().await;
}

/// An undecodable record and a contract violation go to allotment.dlq as permanent failures,
/// and the consumer carries on with the next record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dlq() {
    let svc = Service::start(Config::default(), ist(d(2025, 2, 25), 10, 0)).await;
    let (inv, scheme) = ("INV0009", "100009");
    svc.send_raw("payment.success", inv, b"definitely not avro".to_vec())
        .await;
    let mut not_a_purchase = payment(
        &oid(),
        inv,
        scheme,
        EQUITY,
        "100.00",
        ist(d(2025, 2, 25), 10, 0),
    );
    not_a_purchase.order_kind = order_kind::REDEMPTION.into();
    svc.pay(&not_a_purchase).await;
    let good = payment(
        &oid(),
        inv,
        scheme,
        EQUITY,
        "100.00",
        ist(d(2025, 2, 25), 10, 0),
    );
    svc.pay(&good).await;
    svc.publish_nav(&nav_published(
        scheme,
        "Test AMC",
        EQUITY,
        "10.0000",
        d(2025, 2, 25),
    ))
    .await;

    let done = svc
        .until::<TransactionCompleted>(COMPLETED, "the good purchase", |e| !e.is_empty())
        .await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].order_id, good.order_id);

    let deadline = std::time::Instant::now() + WAIT;
    let dlq = loop {
        let dlq = read_all(&svc.bootstrap, "allotment.dlq").await;
        if dlq.len() >= 2 {
            break dlq;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the DLQ"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(dlq.len(), 2);
    assert!(dlq.iter().any(|r| r.payload == b"definitely not avro"));
    for r in &dlq {
        assert_eq!(r.header_str("nivesh-dlq-reason"), Some("permanent"));
        assert_eq!(
            r.header_str("nivesh-original-topic"),
            Some("payment.success")
        );
        assert_eq!(r.key_str(), Some(inv));
    }
    assert!(svc.read::<TransactionFailed>(FAILED).await.is_empty());
    svc.stop().await;
}
