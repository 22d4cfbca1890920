//! The payment service end to end in-process: the real runtime with the dev broker (Kafka
//! protocol over TCP), the embedded store in a temp dir, the real Redis, and the gateway
//! simulator as a real HTTP server on 127.0.0.1:0 sending signed webhooks back.

mod common;

use chrono::{DateTime, Utc};
use common::{Harness, Options, new_order_id, order_failed, order_placed};
use nivesh_events::{
    PaymentFailed, PaymentInitiated, PaymentRefunded, PaymentSucceeded, order_kind,
};
use rust_decimal::Decimal;
use serde_json::json;

const INVESTOR: &str = "INV0001";

fn initiated_order(e: &PaymentInitiated) -> &str {
    &e.order_id
}
fn succeeded_order(e: &PaymentSucceeded) -> &str {
    &e.order_id
}
fn failed_order(e: &PaymentFailed) -> &str {
    &e.order_id
}
fn refunded_order(e: &PaymentRefunded) -> &str {
    &e.order_id
}

fn rupees(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The gateway's capture time of the sim payment for `order_id`.
fn sim_captured_at(h: &Harness, order_id: &str) -> DateTime<Utc> {
    let p = h.sim().payments(Some(order_id));
    assert_eq!(p.len(), 1, "exactly one charge for {order_id}: {p:?}");
    DateTime::from_timestamp(p[0].captured_at.expect("captured at the gateway"), 0).unwrap()
}

/// Publish a sentinel order for the same investor (same partition, so processed after
/// everything published before it) and wait until it was handled.
async fn drain(h: &Harness) {
    let sentinel = new_order_id();
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &sentinel,
            order_kind::PURCHASE,
            rupees("1.00"),
            Some("timeout@sim"),
        ),
    )
    .await;
    let seen = h
        .wait_for_order::<PaymentInitiated, _>(
            "payment.initiated",
            initiated_order,
            &sentinel,
            |e| !e.is_empty(),
        )
        .await;
    assert_eq!(seen.len(), 1, "sentinel order was not processed");
}

/// PURCHASE and SIP_INSTALMENT: order.placed → payment.initiated → signed webhook →
/// payment.success, realised at the gateway's capture time, carrying what allotment needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchase_and_sip_are_collected_via_webhook() {
    let h = Harness::start(Options::default()).await;
    let purchase = new_order_id();
    let sip = new_order_id();
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &purchase,
            order_kind::PURCHASE,
            rupees("5000.00"),
            Some("aarav@okhdfc"),
        ),
    )
    .await;
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &sip,
            order_kind::SIP_INSTALMENT,
            rupees("1000.50"),
            None,
        ),
    )
    .await;

    let init = h
        .wait_for_order::<PaymentInitiated, _>(
            "payment.initiated",
            initiated_order,
            &purchase,
            |e| !e.is_empty(),
        )
        .await;
    assert_eq!(init.len(), 1);
    assert_eq!(init[0].payment_id, purchase);
    assert_eq!(init[0].amount, rupees("5000.00"));
    assert_eq!(init[0].gateway, "pg-sim");
    let gateway_ref = init[0].gateway_ref.clone().expect("gateway reference");

    let ok = h
        .wait_for_order::<PaymentSucceeded, _>("payment.success", succeeded_order, &purchase, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(ok.len(), 1, "payment.success for the purchase");
    let s = &ok[0];
    assert_eq!(s.payment_id, purchase);
    assert_eq!(s.investor_id, INVESTOR);
    assert_eq!(s.amount, rupees("5000.00"));
    assert_eq!(s.gateway_ref, gateway_ref);
    assert_eq!(s.order_kind, "PURCHASE");
    assert_eq!(s.scheme_code, "119551");
    assert_eq!(
        s.scheme_category.as_deref(),
        Some("Debt Scheme - Liquid Fund")
    );
    assert_eq!(s.realised_at, sim_captured_at(&h, &purchase));
    let charge = &h.sim().payments(Some(&purchase))[0];
    assert_eq!(charge.amount, 500_000, "paise, exactly");
    assert_eq!(charge.vpa.as_deref(), Some("aarav@okhdfc"));
    assert_eq!(
        charge.notes.get("investor_id").map(String::as_str),
        Some(INVESTOR)
    );

    let sip_ok = h
        .wait_for_order::<PaymentSucceeded, _>("payment.success", succeeded_order, &sip, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(sip_ok.len(), 1);
    assert_eq!(sip_ok[0].order_kind, "SIP_INSTALMENT");
    assert_eq!(sip_ok[0].sip_id.as_deref(), Some("sip-7"));
    assert_eq!(sip_ok[0].instalment_no, Some(3));
    assert_eq!(sip_ok[0].amount, rupees("1000.50"));
    assert_eq!(h.sim().payments(Some(&sip))[0].amount, 100_050);

    let (status, body) = h.get_payment(INVESTOR, &purchase).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "CAPTURED");
    assert_eq!(body["amount"], "5000.00");
    assert_eq!(body["gatewayRef"], gateway_ref.as_str());
    let timeline: Vec<&str> = body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["PENDING", "CAPTURED"]);

    // Another investor cannot see it; a malformed investor id is a 400 problem.
    assert_eq!(h.get_payment("INV0002", &purchase).await.0, 404);
    // Access: ops/admin any payment, the investor their own; another investor's token gets the
    // 404 of a missing payment (also when they name the right investor id); others 403/401.
    let idp = &h.idp;
    let other = idp.investor("INV0002");
    let acme_admin = idp.bearer(
        &nivesh_testkit::DevClaims::with_roles(&[nivesh_testkit::Role::Admin]).tenant("acme"),
    );
    for (who, auth, want) in [
        ("no token", None, 401),
        ("garbage", Some("Bearer a.b.c".to_string()), 401),
        ("the investor", Some(idp.investor(INVESTOR)), 200),
        ("another investor", Some(other.clone()), 404),
        ("distributor", Some(idp.distributor("DST001")), 403),
        (
            "compliance",
            Some(idp.role(nivesh_testkit::Role::Compliance)),
            403,
        ),
        ("ops", Some(idp.ops()), 200),
        ("admin", Some(idp.admin()), 200),
        ("admin of tenant acme", Some(acme_admin), 403),
    ] {
        assert_eq!(
            h.get_payment_as(INVESTOR, &purchase, auth.as_deref()).await,
            want,
            "GET payment as {who}"
        );
    }
    assert_eq!(
        h.get_payment_as(INVESTOR, &uuid::Uuid::now_v7().to_string(), Some(&other))
            .await,
        404,
        "a missing payment looks the same"
    );
    let bad = h
        .http
        .get(format!(
            "{}/v1/payments/{purchase}?investorId=a%20b",
            h.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");

    // The routes are documented, and gateway latency/outcomes and the breaker are exported.
    let doc: serde_json::Value = h
        .http
        .get(format!("{}/openapi.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]["/v1/payments/webhook"]["post"].is_object(),
        "{doc}"
    );
    assert!(
        doc["paths"]["/v1/payments/{orderId}"]["get"].is_object(),
        "{doc}"
    );
    let metrics = h
        .http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "nivesh_payment_gateway_request_seconds",
        "nivesh_payment_gateway_requests_total",
        "nivesh_payment_gateway_breaker_state",
        "nivesh_payment_outcomes_total",
        "nivesh_payment_webhooks_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    h.stop().await;
}

/// `failure@sim` is declined by the bank (asynchronously): payment.failed DECLINED. A
/// synchronous decline fails at once without payment.initiated. Redemptions are not ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn declined_payments_fail_and_redemptions_are_ignored() {
    let h = Harness::start(Options::default()).await;
    let bank_decline = new_order_id();
    let sync_decline = new_order_id();
    let redemption = new_order_id();
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &bank_decline,
            order_kind::PURCHASE,
            rupees("2500.00"),
            Some("failure@sim"),
        ),
    )
    .await;
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &sync_decline,
            order_kind::PURCHASE,
            rupees("10.00"),
            Some("upi:decline@sim"),
        ),
    )
    .await;
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &redemption,
            order_kind::REDEMPTION,
            rupees("10.00"),
            None,
        ),
    )
    .await;

    let failed = h
        .wait_for_order::<PaymentFailed, _>("payment.failed", failed_order, &bank_decline, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].reason_code, "DECLINED");
    assert!(
        failed[0].reason.contains("declined by bank"),
        "{}",
        failed[0].reason
    );
    assert_eq!(failed[0].payment_id.as_deref(), Some(bank_decline.as_str()));
    assert_eq!(failed[0].amount, rupees("2500.00"));

    let sync = h
        .wait_for_order::<PaymentFailed, _>("payment.failed", failed_order, &sync_decline, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(sync.len(), 1);
    assert_eq!(sync[0].reason_code, "DECLINED");

    drain(&h).await;
    let initiated = h.read_all::<PaymentInitiated>("payment.initiated").await;
    assert!(
        initiated.iter().all(|e| e.order_id != sync_decline),
        "a synchronous decline is never initiated"
    );
    assert!(initiated.iter().any(|e| e.order_id == bank_decline));
    assert!(h.sim().payments(Some(&redemption)).is_empty());
    assert_eq!(h.get_payment(INVESTOR, &redemption).await.0, 404);
    let (_, body) = h.get_payment(INVESTOR, &bank_decline).await;
    assert_eq!(body["status"], "FAILED");
    assert_eq!(body["failure"]["code"], "DECLINED");
    h.stop().await;
}

/// Forged, unsigned and stale webhooks are 401 problems and change nothing; a correctly signed
/// one completes the payment once, and its duplicate is acknowledged without a second event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_authentication_and_idempotency() {
    let h = Harness::start(Options::default()).await;
    let order = new_order_id();
    // timeout@sim: the simulator never sends a webhook, so only ours arrive.
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &order,
            order_kind::PURCHASE,
            rupees("750.25"),
            Some("timeout@sim"),
        ),
    )
    .await;
    let init = h
        .wait_for_order::<PaymentInitiated, _>("payment.initiated", initiated_order, &order, |e| {
            !e.is_empty()
        })
        .await;
    let gateway_ref = init[0].gateway_ref.clone().unwrap();
    let captured_at = Utc::now().timestamp() - 5;
    let body = serde_json::to_vec(&json!({
        "entity": "event",
        "event": "payment.captured",
        "created_at": captured_at,
        "payload": {"payment": {"entity": {
            "id": gateway_ref, "amount": 75_025, "currency": "INR", "status": "captured",
            "reference": order, "notes": {"investor_id": INVESTOR, "order_id": order},
            "created_at": captured_at - 10, "captured_at": captured_at
        }}}
    }))
    .unwrap();

    let now = Utc::now().timestamp();
    let forged = nivesh_pg_sim::signature::sign(b"not-the-secret", now, &body);
    let stale_ts = now - 3600;
    let stale = nivesh_pg_sim::signature::sign(common::SECRET.as_bytes(), stale_ts, &body);
    for (ts, sig, what) in [
        (Some(now.to_string()), Some(forged), "forged"),
        (Some(stale_ts.to_string()), Some(stale), "stale"),
        (Some(now.to_string()), None, "unsigned"),
        (
            None,
            Some(format!("sha256={}", "0".repeat(64))),
            "no timestamp",
        ),
    ] {
        let r = h.post_webhook(&body, ts, sig).await;
        assert_eq!(r.status(), 401, "{what} webhook");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
    }
    let (_, before) = h.get_payment(INVESTOR, &order).await;
    assert_eq!(
        before["status"], "PENDING",
        "refused webhooks change nothing"
    );

    // A signed webhook for an unknown payment is a 404 problem.
    let unknown_order = new_order_id();
    let unknown = String::from_utf8(body.clone())
        .unwrap()
        .replace(&order, &unknown_order);
    let r = h.post_signed_webhook(unknown.as_bytes()).await;
    assert_eq!(r.status(), 404);
    // A signed webhook contradicting the amount is refused too.
    let wrong_amount = String::from_utf8(body.clone())
        .unwrap()
        .replace("75025", "75024");
    assert_eq!(
        h.post_signed_webhook(wrong_amount.as_bytes())
            .await
            .status(),
        422
    );
    assert_eq!(h.get_payment(INVESTOR, &order).await.1["status"], "PENDING");

    let r = h.post_signed_webhook(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["result"],
        "processed"
    );
    let r = h.post_signed_webhook(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["result"],
        "duplicate"
    );

    let ok = h
        .wait_for_order::<PaymentSucceeded, _>("payment.success", succeeded_order, &order, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(ok[0].realised_at.timestamp(), captured_at);
    drain(&h).await;
    let all = h.read_all::<PaymentSucceeded>("payment.success").await;
    assert_eq!(
        all.iter().filter(|e| e.order_id == order).count(),
        1,
        "exactly one payment.success"
    );
    assert_eq!(
        h.get_payment(INVESTOR, &order).await.1["status"],
        "CAPTURED"
    );
    h.stop().await;
}

/// The same order.placed delivered twice, and once more re-published under a new event id,
/// charges once at the gateway and initiates once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_orders_charge_once() {
    let h = Harness::start(Options::default()).await;
    let order = new_order_id();
    let event = order_placed(
        INVESTOR,
        &order,
        order_kind::PURCHASE,
        rupees("300.00"),
        None,
    );
    let payload = h.codec.encode(&event).await.unwrap();
    for _ in 0..2 {
        h.publish_raw(
            "order.placed",
            INVESTOR,
            payload.clone(),
            h.codec.headers(&event),
        )
        .await;
    }
    let mut again = event.clone();
    again.meta = nivesh_events::EventMeta::new::<nivesh_events::OrderPlaced>("order", None);
    h.publish("order.placed", INVESTOR, &again).await;
    drain(&h).await;

    assert_eq!(
        h.sim().payments(Some(&order)).len(),
        1,
        "one charge at the gateway"
    );
    let init = h.read_all::<PaymentInitiated>("payment.initiated").await;
    assert_eq!(init.iter().filter(|e| e.order_id == order).count(), 1);
    h.wait_for_order::<PaymentSucceeded, _>("payment.success", succeeded_order, &order, |e| {
        !e.is_empty()
    })
    .await;
    h.stop().await;
}

/// order.failed with a refund returns the money exactly once (duplicates and re-publishes
/// included) and emits payment.refunded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_order_is_refunded_exactly_once() {
    let h = Harness::start(Options::default()).await;
    let order = new_order_id();
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &order,
            order_kind::PURCHASE,
            rupees("1200.00"),
            None,
        ),
    )
    .await;
    h.wait_for_order::<PaymentSucceeded, _>("payment.success", succeeded_order, &order, |e| {
        !e.is_empty()
    })
    .await;

    let failed = order_failed(INVESTOR, &order, Some(rupees("1200.00")));
    let payload = h.codec.encode(&failed).await.unwrap();
    for _ in 0..2 {
        h.publish_raw(
            "order.failed",
            INVESTOR,
            payload.clone(),
            h.codec.headers(&failed),
        )
        .await;
    }
    let mut republished = failed.clone();
    republished.meta = nivesh_events::EventMeta::new::<nivesh_events::OrderFailed>("order", None);
    h.publish("order.failed", INVESTOR, &republished).await;
    // An order that failed before money was taken needs no refund.
    let no_money = new_order_id();
    h.publish(
        "order.failed",
        INVESTOR,
        &order_failed(INVESTOR, &no_money, None),
    )
    .await;

    let refunded = h
        .wait_for_order::<PaymentRefunded, _>("payment.refunded", refunded_order, &order, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(refunded[0].refund_id, format!("rfd-{order}"));
    assert_eq!(refunded[0].payment_id, order);
    assert_eq!(refunded[0].amount, rupees("1200.00"));
    assert!(refunded[0].reason.contains("NAV_UNAVAILABLE"));

    // order.failed is on another topic: wait until its partition is drained too.
    let last = new_order_id();
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(INVESTOR, &last, order_kind::PURCHASE, rupees("1.00"), None),
    )
    .await;
    h.wait_for_order::<PaymentSucceeded, _>("payment.success", succeeded_order, &last, |e| {
        !e.is_empty()
    })
    .await;
    let last_failed = order_failed(INVESTOR, &last, Some(rupees("1.00")));
    h.publish("order.failed", INVESTOR, &last_failed).await;
    h.wait_for_order::<PaymentRefunded, _>("payment.refunded", refunded_order, &last, |e| {
        !e.is_empty()
    })
    .await;

    let charge = &h.sim().payments(Some(&order))[0];
    assert_eq!(
        charge.refunds.len(),
        1,
        "one refund at the gateway: {charge:?}"
    );
    assert_eq!(charge.amount_refunded, 120_000);
    let all = h.read_all::<PaymentRefunded>("payment.refunded").await;
    assert_eq!(all.iter().filter(|e| e.order_id == order).count(), 1);
    assert!(all.iter().all(|e| e.order_id != no_money));
    let (_, body) = h.get_payment(INVESTOR, &order).await;
    assert_eq!(body["status"], "REFUNDED");
    assert_eq!(body["refund"]["status"], "PROCESSED");
    h.stop().await;
}

/// With the webhook lost (the simulator sends none), reconciliation polls the gateway and
/// completes the payment at the gateway's capture time; a payment that never completes expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_completes_and_expires() {
    let h = Harness::start(Options {
        webhooks: false,
        reconcile: true,
        reconcile_min_age_secs: 1,
        expire_after_secs: 3,
        ..Options::default()
    })
    .await;
    let order = new_order_id();
    let stuck = new_order_id();
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &order,
            order_kind::PURCHASE,
            rupees("999.99"),
            None,
        ),
    )
    .await;
    h.publish(
        "order.placed",
        INVESTOR,
        &order_placed(
            INVESTOR,
            &stuck,
            order_kind::PURCHASE,
            rupees("5.00"),
            Some("timeout@sim"),
        ),
    )
    .await;
    let ok = h
        .wait_for_order::<PaymentSucceeded, _>("payment.success", succeeded_order, &order, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].realised_at, sim_captured_at(&h, &order));
    let (_, body) = h.get_payment(INVESTOR, &order).await;
    assert_eq!(body["status"], "CAPTURED");

    let expired = h
        .wait_for_order::<PaymentFailed, _>("payment.failed", failed_order, &stuck, |e| {
            !e.is_empty()
        })
        .await;
    assert_eq!(expired[0].reason_code, "EXPIRED");
    h.stop().await;
}
