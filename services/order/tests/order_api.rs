//! The order service end to end over its real dependencies: HTTP on a random port, the
//! embedded store in a temp dir, and a Kafka-protocol broker over TCP (the dev broker) that the
//! test produces payment/transaction/portfolio events to and reads `order.placed` /
//! `order.failed` from.

mod common;

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use common::{CLOSED, EQUITY, EQUITY2, Svc, date, meta, start, start_with};
use nivesh_domain::time::ist_datetime;
use nivesh_events::{
    OrderFailed, OrderPlaced, PaymentFailed, PaymentInitiated, PaymentRefunded, PaymentSucceeded,
    PortfolioUpdated, TransactionCompleted, TransactionFailed,
};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn ist(h: u32, m: u32) -> DateTime<Utc> {
    ist_datetime(date(2025, 2, 25), NaiveTime::from_hms_opt(h, m, 0).unwrap()).with_timezone(&Utc)
}

fn purchase(investor: &str, amount: &str) -> Value {
    json!({"investorId": investor, "kind": "PURCHASE", "schemeCode": EQUITY,
           "amount": amount, "paymentInstrument": "investor.one@okicici"})
}

fn redemption(investor: &str, qty: Value) -> Value {
    let mut v = json!({"investorId": investor, "kind": "REDEMPTION", "schemeCode": EQUITY});
    for (k, x) in qty.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn statuses(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect()
}

/// `n` POSTs released at the same instant, each on its own warmed-up connection, so they
/// really overlap inside the service (a shared client would queue them on a few connections).
async fn concurrently(
    svc: &Svc,
    n: usize,
    request: impl Fn(usize) -> (String, Value),
) -> Vec<common::Resp> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (key, body) = request(i);
        let (barrier, base, admin) = (barrier.clone(), svc.base.clone(), svc.admin.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .expect("warm-up");
            barrier.wait().await;
            let r = client
                .post(format!("{base}/v1/orders"))
                .header("authorization", admin)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .expect("POST");
            common::Resp::from(r).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

async fn place(svc: &Svc, key: &str, body: &Value) -> String {
    let r = svc.post(Some(key), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    r.body["orderId"].as_str().unwrap().to_string()
}

fn completed(
    investor: &str,
    order_id: &str,
    leg: &str,
    kind: &str,
    units: &str,
    balance: &str,
    at: DateTime<Utc>,
) -> TransactionCompleted {
    TransactionCompleted {
        meta: meta::<TransactionCompleted>("allotment"),
        transaction_id: format!("txn-{order_id}"),
        order_id: order_id.into(),
        investor_id: investor.into(),
        folio: "F-0001".into(),
        leg: leg.into(),
        order_kind: kind.into(),
        scheme_code: EQUITY.into(),
        nav: dec("101.2345"),
        nav_date: date(2025, 2, 25),
        gross_amount: dec("5000.00"),
        stamp_duty: dec("0.25"),
        exit_load: dec("0.00"),
        net_amount: dec("4999.75"),
        units: dec(units),
        balance_units: dec(balance),
        lots: vec![],
        allotted_at: at,
        sip_id: None,
        instalment_no: None,
        linked_order_leg: None,
    }
}

fn initiated(investor: &str, order_id: &str, amount: &str) -> PaymentInitiated {
    PaymentInitiated {
        meta: meta::<PaymentInitiated>("payment"),
        payment_id: order_id.into(),
        order_id: order_id.into(),
        investor_id: investor.into(),
        amount: dec(amount),
        gateway: "stub-upi".into(),
        gateway_ref: Some("gw-1".into()),
        initiated_at: ist(10, 1),
    }
}

fn succeeded(investor: &str, order_id: &str, amount: &str, at: DateTime<Utc>) -> PaymentSucceeded {
    PaymentSucceeded {
        meta: meta::<PaymentSucceeded>("payment"),
        payment_id: order_id.into(),
        order_id: order_id.into(),
        investor_id: investor.into(),
        amount: dec(amount),
        gateway_ref: "gw-1".into(),
        realised_at: at,
        order_kind: "PURCHASE".into(),
        scheme_code: EQUITY.into(),
        scheme_category: Some("Equity Scheme - Large Cap Fund".into()),
        sip_id: None,
        instalment_no: None,
    }
}

fn in_portfolio(investor: &str, order_id: &str, units: &str) -> PortfolioUpdated {
    PortfolioUpdated {
        meta: meta::<PortfolioUpdated>("portfolio"),
        investor_id: investor.into(),
        order_id: Some(order_id.into()),
        transaction_id: Some(format!("txn-{order_id}")),
        scheme_code: EQUITY.into(),
        units: dec(units),
        invested: dec("5000.00"),
        version: 1,
    }
}

/// POST purchase → 201 + Location + exactly one `order.placed`; the same key and body replays
/// the first response with `Idempotent-Replayed: true`; the same key with another body is a 422;
/// 20 concurrent duplicates make one order and one event; the listing pages newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchase_is_placed_once_replayed_and_listed() {
    let svc = start().await;
    let body = purchase("INV0001", "5000.00");
    let first = svc.post(Some("purchase-key-0001"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:#}", first.body);
    assert!(first.header("idempotent-replayed").is_none());
    let order_id = first.body["orderId"].as_str().unwrap().to_string();
    assert_eq!(
        first.header("location"),
        Some(format!("/v1/orders/{order_id}").as_str())
    );
    let o = &first.body;
    assert_eq!(o["status"], "PLACED");
    assert_eq!(o["kind"], "PURCHASE");
    assert_eq!(o["amount"], "5000.00");
    assert_eq!(o["investorId"], "INV0001");
    assert_eq!(o["schemeCode"], EQUITY);
    assert_eq!(o["placedAt"], "2025-02-25T10:00:00.000+05:30");
    assert_eq!(statuses(o), ["PLACED"]);
    assert!(
        o.get("applicableNavDate").is_none(),
        "not known before payment: {o:#}"
    );
    assert_eq!(
        svc.order(&order_id).await,
        first.body,
        "GET shows what POST answered"
    );

    let placed = svc
        .events_at_least::<OrderPlaced>("order.placed", 1, |e| e.investor_id == "INV0001")
        .await;
    assert_eq!(placed.len(), 1);
    let e = &placed[0];
    assert_eq!(e.order_id, order_id);
    assert_eq!(e.kind, "PURCHASE");
    assert_eq!(e.amount, Some(dec("5000.00")));
    assert_eq!(
        e.scheme_name.as_deref(),
        Some("Alpha Large Cap Fund - Direct Growth")
    );
    assert_eq!(
        e.payment_instrument.as_deref(),
        Some("investor.one@okicici")
    );
    assert_eq!(e.placed_at, ist(10, 0));
    assert_eq!(e.meta.causation_key.as_deref(), Some("purchase-key-0001"));
    let keys: Vec<_> = svc
        .read("order.placed")
        .await
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, [Some(b"INV0001".to_vec())], "keyed by investor id");

    // Same key, same body (even with the keys in another order): the stored first response.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{"paymentInstrument":"investor.one@okicici","amount":"5000.00","schemeCode":"{EQUITY}","kind":"PURCHASE","investorId":"INV0001"}}"#
    ))
    .unwrap();
    svc.advance(TimeDelta::minutes(5));
    for b in [&body, &reordered] {
        let again = svc.post(Some("purchase-key-0001"), b).await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.header("location"), first.header("location"));
        assert_eq!(again.body, first.body);
    }
    // Same key, different body.
    let reused = svc
        .post(Some("purchase-key-0001"), &purchase("INV0001", "6000.00"))
        .await;
    let p = reused.problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p["detail"].as_str().unwrap().contains("different request"),
        "{p:#}"
    );
    // Keys are scoped per investor: the same key for another investor is a new order.
    let other = place(&svc, "purchase-key-0001", &purchase("INV0002", "700.00")).await;
    assert_ne!(other, order_id);

    // 20 concurrent duplicates → one order, one event.
    svc.advance(TimeDelta::minutes(5));
    let dup_body = purchase("INV0001", "2500.00");
    let replies = concurrently(&svc, 20, |_| {
        ("purchase-key-concurrent".to_string(), dup_body.clone())
    })
    .await;
    let ids: std::collections::BTreeSet<_> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
            r.body["orderId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one order id for all duplicates: {ids:?}");
    let fresh = replies
        .iter()
        .filter(|r| r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request created the order");
    let dup_id = ids.into_iter().next().unwrap();
    assert_ne!(dup_id, order_id);

    // Barrier: an order committed after the duplicates is published after them.
    let barrier = place(&svc, "barrier-key-0001", &purchase("INV0003", "100.00")).await;
    svc.events_at_least::<OrderPlaced>("order.placed", 1, |e| e.order_id == barrier)
        .await;
    let mine = svc
        .events::<OrderPlaced>("order.placed", |e| e.investor_id == "INV0001")
        .await;
    let per_order = |id: &str| mine.iter().filter(|e| e.order_id == id).count();
    assert_eq!(
        (mine.len(), per_order(&order_id), per_order(&dup_id)),
        (2, 1, 1)
    );

    // Listing: newest first, one per page.
    let page1 = svc.get("/v1/investors/INV0001/orders?limit=1").await;
    assert_eq!(page1.status, StatusCode::OK, "{:#}", page1.body);
    assert_eq!(page1.body["items"][0]["orderId"], dup_id.as_str());
    let cursor = page1.body["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let page2 = svc
        .get(&format!(
            "/v1/investors/INV0001/orders?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(page2.body["items"][0]["orderId"], order_id.as_str());
    assert!(page2.body.get("nextCursor").is_none(), "{:#}", page2.body);
    let all = svc.get("/v1/investors/INV0001/orders").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    svc.get("/v1/investors/INV0001/orders?limit=0")
        .await
        .problem(StatusCode::BAD_REQUEST);
    svc.get("/v1/investors/INV0001/orders?cursor=zzz")
        .await
        .problem(StatusCode::BAD_REQUEST);
    svc.get("/v1/investors/NOBODY/orders")
        .await
        .problem(StatusCode::NOT_FOUND);

    // Reads of unknown or malformed ids.
    svc.get(&format!("/v1/orders/{}", nivesh_domain::OrderId::new()))
        .await
        .problem(StatusCode::NOT_FOUND);
    svc.get("/v1/orders/not-a-uuid")
        .await
        .problem(StatusCode::BAD_REQUEST);

    // The OpenAPI document lists the order endpoints.
    let doc = svc.get("/openapi.json").await.body;
    for path in [
        "/v1/orders",
        "/v1/orders/{orderId}",
        "/v1/investors/{investorId}/orders",
        "/v1/sips/{sipId}",
        "/v1/sips/run",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} in OpenAPI");
    }
    svc.stop().await;
}

/// Bad requests are 4xx problem+json, store nothing and publish nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_are_problems_and_publish_nothing() {
    let svc = start().await;
    let good = purchase("INV0002", "1000.00");

    svc.post(None, &good).await.problem(StatusCode::BAD_REQUEST);
    svc.post(Some("short"), &good)
        .await
        .problem(StatusCode::BAD_REQUEST);
    svc.post(Some("has spaces in it"), &good)
        .await
        .problem(StatusCode::BAD_REQUEST);
    let raw = svc
        .http
        .post(svc.url("/v1/orders"))
        .header("Idempotency-Key", "malformed-json-1")
        .header("content-type", "application/json")
        .body("{\"investorId\": \"INV0002\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");

    let mut n = 0;
    let mut expect_422 = |body: Value, field: &str| {
        n += 1;
        let key = format!("bad-request-{n:04}");
        (key, body, field.to_string())
    };
    let cases = vec![
        expect_422(
            json!({"investorId": "INV0002", "kind": "BUY", "schemeCode": EQUITY}),
            "kind",
        ),
        expect_422(purchase("INV0002", "0.00"), "amount"),
        expect_422(purchase("INV0002", "-100.00"), "amount"),
        expect_422(purchase("INV0002", "100.001"), "amount"),
        expect_422(purchase("INV0002", "99.99"), "amount"),
        expect_422(
            json!({"investorId": "INV0002", "kind": "PURCHASE", "schemeCode": EQUITY,
                   "amount": 5000, "paymentInstrument": "a@okicici"}),
            "amount",
        ),
        expect_422(
            json!({"investorId": "INV0002", "kind": "PURCHASE", "schemeCode": "999999",
                   "amount": "1000.00", "paymentInstrument": "a@okicici"}),
            "schemeCode",
        ),
        expect_422(
            json!({"investorId": "INV0002", "kind": "PURCHASE", "schemeCode": CLOSED,
                   "amount": "1000.00", "paymentInstrument": "a@okicici"}),
            "schemeCode",
        ),
        expect_422(purchase("INV0099", "1000.00"), "investorId"),
        expect_422(purchase("INV0098", "1000.00"), "investorId"),
        expect_422(purchase("INV7777", "1000.00"), "investorId"),
        expect_422(redemption("INV0002", json!({"units": "1.000"})), "units"),
        expect_422(redemption("INV0002", json!({"allUnits": true})), "allUnits"),
        expect_422(redemption("INV0002", json!({"amount": "500.00"})), "amount"),
        expect_422(
            json!({"investorId": "INV0002", "kind": "SWITCH", "schemeCode": EQUITY,
                   "targetSchemeCode": CLOSED, "units": "1.000"}),
            "targetSchemeCode",
        ),
        expect_422(
            json!({"investorId": "INV0002", "kind": "SIP", "schemeCode": EQUITY, "amount": "1000.00",
                   "dayOfMonth": 31, "startDate": "2025-03-01", "paymentInstrument": "a@okicici"}),
            "dayOfMonth",
        ),
    ];
    for (key, body, field) in cases {
        let r = svc.post(Some(&key), &body).await;
        let p = r.problem(StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("field errors for {body}: {p:#}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field.as_str()),
            "{field} in {fields:?} for {body}"
        );
    }
    let kyc = svc
        .post(Some("kyc-pending-0001"), &purchase("INV0099", "1000.00"))
        .await;
    assert_eq!(kyc.body["type"], "urn:nivesh:problem:kyc-not-verified");

    // A rejected request stores no idempotency record: the same investor and key with a valid
    // body is a fresh order (not a replay, not a "key reused").
    let ok = svc.post(Some("bad-request-0002"), &good).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:#}", ok.body);
    assert!(ok.header("idempotent-replayed").is_none());
    let barrier = ok.body["orderId"].as_str().unwrap().to_string();
    // The outbox publishes in commit order: once the barrier is out, anything before it is too.
    svc.events_at_least::<OrderPlaced>("order.placed", 1, |e| e.order_id == barrier)
        .await;
    let placed = svc.events::<OrderPlaced>("order.placed", |_| true).await;
    assert_eq!(
        placed.len(),
        1,
        "only the valid order was published: {placed:?}"
    );
    assert!(svc.read("order.failed").await.is_empty());
    let listed = svc.get("/v1/investors/INV0002/orders").await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [barrier.as_str()], "nothing else stored for INV0002");
    let pending = svc.get("/v1/investors/INV0099/orders").await;
    assert_eq!(pending.body["items"], json!([]));
    svc.stop().await;
}

/// Payment, transaction and portfolio events produced onto their topics move the timeline
/// forward only (out of order tolerated, duplicates ignored); failures emit `order.failed`;
/// redemptions are bounded by the units held minus locks, also under concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeline_follows_the_flow_events() {
    let svc = start().await;
    let inv = "INV0004";

    // A: PLACED → PAYMENT_PENDING → PAID → ALLOTTED → COMPLETED.
    let a = place(&svc, "flow-a-000001", &purchase(inv, "5000.00")).await;
    svc.produce("payment.initiated", inv, &initiated(inv, &a, "5000.00"))
        .await;
    svc.order_until(&a, "PAYMENT_PENDING", |o| o["status"] == "PAYMENT_PENDING")
        .await;
    svc.produce(
        "payment.success",
        inv,
        &succeeded(inv, &a, "5000.00", ist(11, 0)),
    )
    .await;
    let o = svc.order_until(&a, "PAID", |o| o["status"] == "PAID").await;
    assert_eq!(
        o["applicableNavDate"], "2025-02-25",
        "realised before 15:00 on a business day"
    );
    assert_eq!(o["paymentId"], a.as_str());
    svc.produce(
        "transaction.completed",
        inv,
        &completed(
            inv,
            &a,
            "PURCHASE",
            "PURCHASE",
            "49.385",
            "49.385",
            ist(21, 0),
        ),
    )
    .await;
    let o = svc
        .order_until(&a, "ALLOTTED", |o| o["status"] == "ALLOTTED")
        .await;
    let al = &o["allotments"][0];
    assert_eq!(
        (
            al["nav"].as_str(),
            al["units"].as_str(),
            al["navDate"].as_str()
        ),
        (Some("101.2345"), Some("49.385"), Some("2025-02-25"))
    );
    assert_eq!(al["netAmount"], "4999.75");
    let portfolio_a = in_portfolio(inv, &a, "49.385");
    svc.produce("portfolio.updated", inv, &portfolio_a).await;
    let o = svc
        .order_until(&a, "COMPLETED", |o| o["status"] == "COMPLETED")
        .await;
    assert_eq!(
        statuses(&o),
        ["PLACED", "PAYMENT_PENDING", "PAID", "ALLOTTED", "COMPLETED"]
    );
    assert_eq!(o["timeline"][2]["at"], "2025-02-25T11:00:00.000+05:30");

    // B: realised after the cut-off; portfolio.updated seen BEFORE transaction.completed, and
    // delivered twice (same event id): COMPLETED stays, ALLOTTED only adds an entry and figures.
    let b = place(&svc, "flow-b-000001", &purchase(inv, "1000.00")).await;
    svc.produce(
        "payment.success",
        inv,
        &succeeded(inv, &b, "1000.00", ist(15, 30)),
    )
    .await;
    let o = svc.order_until(&b, "PAID", |o| o["status"] == "PAID").await;
    assert_eq!(
        o["applicableNavDate"], "2025-02-26",
        "after 15:00: next business day"
    );
    let portfolio_b = in_portfolio(inv, &b, "59.263");
    svc.produce("portfolio.updated", inv, &portfolio_b).await;
    svc.produce("portfolio.updated", inv, &portfolio_b).await;
    svc.order_until(&b, "COMPLETED", |o| o["status"] == "COMPLETED")
        .await;
    let late = completed(
        inv,
        &b,
        "PURCHASE",
        "PURCHASE",
        "9.878",
        "59.263",
        ist(21, 5),
    );
    svc.produce("transaction.completed", inv, &late).await;
    let o = svc
        .order_until(&b, "late ALLOTTED entry", |o| {
            statuses(o).contains(&"ALLOTTED".to_string())
        })
        .await;
    assert_eq!(o["status"], "COMPLETED", "never backwards");
    assert_eq!(
        statuses(&o),
        ["PLACED", "PAID", "COMPLETED", "ALLOTTED"],
        "the duplicate added nothing"
    );
    assert!(
        o["timeline"][3]["detail"]
            .as_str()
            .unwrap()
            .contains("late")
    );
    assert_eq!(o["allotments"][0]["units"], "9.878");
    // A late PAID for the completed order A: entry only.
    svc.produce("payment.initiated", inv, &initiated(inv, &a, "5000.00"))
        .await;
    let o = svc
        .order_until(&a, "late entry", |o| statuses(o).len() == 6)
        .await;
    assert_eq!(o["status"], "COMPLETED");

    // Redemptions: 59.263 units held (B's balance). Five concurrent 40-unit redemptions: one wins.
    let replies = concurrently(&svc, 5, |i| {
        (
            format!("redeem-40-{i:04}"),
            redemption(inv, json!({"units": "40.000"})),
        )
    })
    .await;
    let won: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(won.len(), 1, "{replies:#?}");
    for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        r.problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let r1 = won[0].body["orderId"].as_str().unwrap().to_string();
    assert_eq!(won[0].body["lockedUnits"], "40.000");
    assert_eq!(
        won[0].body["applicableNavDate"], "2025-02-25",
        "redemption at 10:00: today"
    );
    // 19.263 free: ₹2000 at NAV 101.2345 needs 19.757 units.
    svc.post(
        Some("redeem-amt-0001"),
        &redemption(inv, json!({"amount": "2000.00"})),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    let r2 = place(
        &svc,
        "redeem-rest-0001",
        &redemption(inv, json!({"units": "19.263"})),
    )
    .await;
    svc.post(
        Some("redeem-all-0001"),
        &redemption(inv, json!({"allUnits": true})),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);

    // Allotment fails R1: FAILED, order.failed (ALLOTMENT, no refund), its 40 units are free again.
    let failed = TransactionFailed {
        meta: meta::<TransactionFailed>("allotment"),
        order_id: r1.clone(),
        investor_id: inv.into(),
        order_kind: "REDEMPTION".into(),
        scheme_code: EQUITY.into(),
        reason_code: "NAV_UNAVAILABLE".into(),
        reason: "no NAV within the allotment window".into(),
        payment_id: None,
        refund_amount: None,
    };
    svc.produce("transaction.failed", inv, &failed).await;
    let o = svc
        .order_until(&r1, "FAILED", |o| o["status"] == "FAILED")
        .await;
    assert_eq!(
        o["failure"],
        json!({"stage": "ALLOTMENT", "code": "NAV_UNAVAILABLE", "reason": "no NAV within the allotment window"})
    );
    assert!(o.get("lockedUnits").is_none());
    let of = svc
        .events_at_least::<OrderFailed>("order.failed", 1, |e| e.order_id == r1)
        .await;
    assert_eq!(
        (
            of[0].stage.as_str(),
            of[0].refund_amount,
            of[0].payment_id.as_deref()
        ),
        ("ALLOTMENT", None, None)
    );
    let all = svc
        .post(
            Some("redeem-all-0002"),
            &redemption(inv, json!({"allUnits": true})),
        )
        .await;
    assert_eq!(all.status, StatusCode::CREATED, "{:#}", all.body);
    assert_eq!(all.body["lockedUnits"], "40.000");
    assert_eq!(all.body["allUnits"], true);

    // R2 allotted: ALLOTTED with figures, its lock released, held = its balance.
    svc.produce(
        "transaction.completed",
        inv,
        &completed(
            inv,
            &r2,
            "REDEMPTION",
            "REDEMPTION",
            "19.263",
            "40.000",
            ist(21, 10),
        ),
    )
    .await;
    let o = svc
        .order_until(&r2, "ALLOTTED", |o| o["status"] == "ALLOTTED")
        .await;
    assert!(o.get("lockedUnits").is_none());
    // 40 held, 40 locked by the all-units redemption: nothing free.
    svc.post(
        Some("redeem-more-0001"),
        &redemption(inv, json!({"units": "0.001"})),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);

    // P: payment fails → FAILED, order.failed (PAYMENT, nothing to refund); a late success is ignored.
    let p = place(&svc, "flow-p-000001", &purchase(inv, "3000.00")).await;
    svc.produce(
        "payment.failed",
        inv,
        &PaymentFailed {
            meta: meta::<PaymentFailed>("payment"),
            payment_id: Some(p.clone()),
            order_id: p.clone(),
            investor_id: inv.into(),
            amount: dec("3000.00"),
            reason_code: "DECLINED".into(),
            reason: "declined by the payer's bank".into(),
        },
    )
    .await;
    let o = svc
        .order_until(&p, "FAILED", |o| o["status"] == "FAILED")
        .await;
    assert_eq!(o["failure"]["stage"], "PAYMENT");
    assert_eq!(o["failure"]["code"], "DECLINED");
    let of = svc
        .events_at_least::<OrderFailed>("order.failed", 1, |e| e.order_id == p)
        .await;
    assert_eq!(
        (of[0].stage.as_str(), of[0].refund_amount),
        ("PAYMENT", None)
    );
    svc.produce(
        "payment.success",
        inv,
        &succeeded(inv, &p, "3000.00", ist(12, 0)),
    )
    .await;
    let o = svc
        .order_until(&p, "late PAID entry", |o| statuses(o).len() == 3)
        .await;
    assert_eq!(o["status"], "FAILED", "terminal is final");

    // Q: paid, then allotment fails with money taken → order.failed carries the refund; then REFUNDED.
    let q = place(&svc, "flow-q-000001", &purchase(inv, "3000.00")).await;
    svc.produce(
        "payment.success",
        inv,
        &succeeded(inv, &q, "3000.00", ist(12, 0)),
    )
    .await;
    svc.order_until(&q, "PAID", |o| o["status"] == "PAID").await;
    svc.produce(
        "transaction.failed",
        inv,
        &TransactionFailed {
            meta: meta::<TransactionFailed>("allotment"),
            order_id: q.clone(),
            investor_id: inv.into(),
            order_kind: "PURCHASE".into(),
            scheme_code: EQUITY.into(),
            reason_code: "NAV_UNAVAILABLE".into(),
            reason: "no NAV".into(),
            payment_id: Some(q.clone()),
            refund_amount: Some(dec("3000.00")),
        },
    )
    .await;
    svc.order_until(&q, "FAILED", |o| o["status"] == "FAILED")
        .await;
    let of = svc
        .events_at_least::<OrderFailed>("order.failed", 1, |e| e.order_id == q)
        .await;
    assert_eq!(of.len(), 1);
    assert_eq!(
        (
            of[0].stage.as_str(),
            of[0].payment_id.as_deref(),
            of[0].refund_amount
        ),
        ("ALLOTMENT", Some(q.as_str()), Some(dec("3000.00")))
    );
    svc.produce(
        "payment.refunded",
        inv,
        &PaymentRefunded {
            meta: meta::<PaymentRefunded>("payment"),
            payment_id: q.clone(),
            refund_id: format!("rfd-{q}"),
            order_id: q.clone(),
            investor_id: inv.into(),
            amount: dec("3000.00"),
            reason: "allotment failed".into(),
            refunded_at: ist(13, 0),
        },
    )
    .await;
    let o = svc
        .order_until(&q, "REFUNDED", |o| {
            statuses(o).contains(&"REFUNDED".to_string())
        })
        .await;
    assert_eq!(o["status"], "FAILED");
    assert_eq!(statuses(&o), ["PLACED", "PAID", "FAILED", "REFUNDED"]);
    svc.stop().await;
}

/// A SIP registers with its schedule; running the scheduler twice (or concurrently) for the
/// same date places each instalment exactly once, as a SIP_INSTALMENT order.placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sip_instalments_are_placed_exactly_once() {
    let svc = start().await;
    let body = json!({"investorId": "INV0005", "kind": "SIP", "schemeCode": EQUITY, "amount": "1000.00",
                      "dayOfMonth": 25, "startDate": "2025-02-25", "instalments": 3,
                      "paymentInstrument": "arjun.nair@okaxis"});
    let r = svc.post(Some("sip-register-0001"), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    let sip_id = r.body["sipId"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/sips/{sip_id}").as_str())
    );
    assert_eq!(r.body["status"], "ACTIVE");
    assert_eq!(r.body["nextInstalmentNo"], 1);
    assert_eq!(r.body["nextInstalmentDate"], "2025-02-25");
    let again = svc.post(Some("sip-register-0001"), &body).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, r.body);
    let mut pending = body.clone();
    pending["investorId"] = json!("INV0099");
    svc.post(Some("sip-register-0002"), &pending)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);

    let run = |key: &str, as_of: Option<&str>| {
        let url = match as_of {
            Some(d) => svc.url(&format!("/v1/sips/run?asOf={d}")),
            None => svc.url("/v1/sips/run"),
        };
        svc.http.post(url).header("Idempotency-Key", key).send()
    };
    // Five runs released at once, then one more: instalment 1 is placed exactly once.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(5));
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let (barrier, base, ops) = (barrier.clone(), svc.base.clone(), svc.idp.ops());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                client
                    .get(format!("{base}/healthz"))
                    .send()
                    .await
                    .expect("warm-up");
                barrier.wait().await;
                let r = client
                    .post(format!("{base}/v1/sips/run?asOf=2025-02-25"))
                    .header("authorization", ops)
                    .header("Idempotency-Key", format!("sip-run-conc-{i:03}"))
                    .send()
                    .await
                    .expect("run");
                assert_eq!(r.status(), StatusCode::OK);
                r.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut placed_total = 0;
    for t in tasks {
        placed_total += t.await.unwrap()["instalmentsPlaced"].as_u64().unwrap();
    }
    assert_eq!(placed_total, 1, "concurrent runs place instalment 1 once");
    let first = run("sip-run-000001", Some("2025-02-25")).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        (
            first["instalmentsPlaced"].as_u64(),
            first["sipsChecked"].as_u64()
        ),
        (Some(0), Some(1)),
        "{first:#}"
    );
    let second: Value = run("sip-run-000002", Some("2025-02-25"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["instalmentsPlaced"], 0, "{second:#}");
    // The run endpoint is idempotent too: the same key replays the first report.
    let replay = run("sip-run-000001", Some("2025-02-25")).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    let future = run("sip-run-000003", Some("2025-03-25")).await.unwrap();
    assert_eq!(future.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let no_key = svc.http.post(svc.url("/v1/sips/run")).send().await.unwrap();
    assert_eq!(no_key.status(), StatusCode::BAD_REQUEST);

    let sip = svc.get(&format!("/v1/sips/{sip_id}")).await.body;
    assert_eq!(sip["nextInstalmentNo"], 2);
    assert_eq!(sip["nextInstalmentDate"], "2025-03-25");
    let inst = sip["instalmentOrders"].as_array().unwrap();
    assert_eq!(inst.len(), 1);
    let order_id = inst[0]["orderId"].as_str().unwrap().to_string();
    let o = svc.order(&order_id).await;
    assert_eq!(
        (
            o["kind"].as_str(),
            o["instalmentNo"].as_u64(),
            o["amount"].as_str()
        ),
        (Some("SIP_INSTALMENT"), Some(1), Some("1000.00"))
    );
    assert_eq!(o["instalmentDueDate"], "2025-02-25");
    let placed = svc
        .events_at_least::<OrderPlaced>("order.placed", 1, |e| {
            e.sip_id.as_deref() == Some(sip_id.as_str())
        })
        .await;
    assert_eq!(placed.len(), 1);
    assert_eq!(
        (
            placed[0].kind.as_str(),
            placed[0].instalment_no,
            placed[0].order_id.as_str()
        ),
        ("SIP_INSTALMENT", Some(1), order_id.as_str())
    );

    // Two months later (business clock): instalments 2 and 3, then the SIP is complete.
    svc.advance(TimeDelta::days(64));
    let late: Value = run("sip-run-000004", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (late["asOf"].as_str(), late["instalmentsPlaced"].as_u64()),
        (Some("2025-04-30"), Some(2)),
        "{late:#}"
    );
    let done: Value = run("sip-run-000005", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["instalmentsPlaced"], 0);
    let sip = svc.get(&format!("/v1/sips/{sip_id}")).await.body;
    assert_eq!(sip["status"], "COMPLETED");
    assert!(sip.get("nextInstalmentDate").is_none());
    let placed = svc
        .events_at_least::<OrderPlaced>("order.placed", 3, |e| {
            e.sip_id.as_deref() == Some(sip_id.as_str())
        })
        .await;
    let mut nos: Vec<_> = placed.iter().map(|e| e.instalment_no.unwrap()).collect();
    nos.sort();
    assert_eq!(nos, [1, 2, 3]);
    svc.get("/v1/sips/not-a-uuid")
        .await
        .problem(StatusCode::BAD_REQUEST);
    svc.get(&format!("/v1/sips/{}", uuid::Uuid::now_v7()))
        .await
        .problem(StatusCode::NOT_FOUND);
    svc.stop().await;
}

/// The daily task places a due instalment by itself, on the business clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sip_task_places_due_instalments() {
    let svc = start_with(&[("NIVESH__SERVICE__SIP_RUN_INTERVAL_SECS", "1")]).await;
    let body = json!({"investorId": "INV0006", "kind": "SIP", "schemeCode": EQUITY2, "amount": "500.00",
                      "dayOfMonth": 25, "startDate": "2025-02-25", "paymentInstrument": "inv6@okhdfc"});
    let r = svc.post(Some("sip-task-000001"), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
    let sip_id = r.body["sipId"].as_str().unwrap().to_string();
    let placed = svc
        .events_at_least::<OrderPlaced>("order.placed", 1, |e| {
            e.sip_id.as_deref() == Some(sip_id.as_str())
        })
        .await;
    assert_eq!(placed[0].instalment_no, Some(1));
    assert_eq!(placed[0].scheme_code, EQUITY2);
    // Several more ticks on the same business day place nothing more.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let placed = svc
        .events::<OrderPlaced>("order.placed", |e| {
            e.sip_id.as_deref() == Some(sip_id.as_str())
        })
        .await;
    assert_eq!(placed.len(), 1);
    svc.stop().await;
}
