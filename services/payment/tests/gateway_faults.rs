//! Gateway faults over real HTTP: hand-written axum stubs (alone, or as a faulty proxy in front
//! of the simulator) on 127.0.0.1:0, the real gateway client, the real handler and the embedded
//! store. No broker: the handler is driven with the messages the bus would hand it.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use common::{Seen, gateway_config, new_order_id, order_placed, start_sim, stub};
use futures::FutureExt;
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::time::SystemClock;
use nivesh_events::{AvroCodec, PaymentFailed, PaymentRefunded, order_kind};
use nivesh_payment::breaker::BreakerState;
use nivesh_payment::config::ReconcileConfig;
use nivesh_payment::flow::Payments;
use nivesh_payment::gateway::{CreatePayment, GatewayClient, GatewayError};
use nivesh_payment::handler::{PaymentHandler, final_attempt};
use nivesh_payment::reconcile::Reconciler;
use nivesh_payment::record::{PaymentStatus, RefundStatus};
use nivesh_store::{DocumentStore, EmbeddedStore};
use serde_json::json;

fn create_request(order: &str) -> CreatePayment {
    CreatePayment {
        amount: 10_000,
        currency: "INR".into(),
        reference: order.into(),
        method: "upi".into(),
        vpa: None,
        notes: BTreeMap::from([("investor_id".into(), "INV0001".into())]),
    }
}

fn keys(seen: &[Seen]) -> Vec<Option<String>> {
    seen.iter().map(|s| s.idempotency_key.clone()).collect()
}

/// A proxy to the simulator that forwards the FIRST request and then answers 500 (the charge
/// happened, the answer was lost), and forwards later requests untouched. The client retries
/// with the same Idempotency-Key and the simulator shows exactly one charge.
#[tokio::test]
async fn server_error_after_charging_then_retry_charges_once() {
    let (sim_url, sim) = start_sim(common::sim_config()).await;
    let http = reqwest::Client::new();
    let proxy = stub(Arc::new(move |n, seen: Seen, body| {
        let (http, sim_url) = (http.clone(), sim_url.clone());
        async move {
            let mut req = http
                .request(
                    seen.method.parse().unwrap(),
                    format!("{sim_url}{}", seen.path),
                )
                .header("content-type", "application/json")
                .body(body.to_vec());
            if let Some(k) = &seen.idempotency_key {
                req = req.header("Idempotency-Key", k);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap();
            if n == 0 {
                return (StatusCode::INTERNAL_SERVER_ERROR, "upstream hiccup").into_response();
            }
            (StatusCode::from_u16(status).unwrap(), bytes).into_response()
        }
        .boxed()
    }))
    .await;
    let client = GatewayClient::new(&gateway_config(&proxy.url)).unwrap();
    let order = new_order_id();
    let p = client
        .create_payment(&create_request(&order), &order)
        .await
        .expect("the retry succeeds");
    assert_eq!(p.reference, order);
    let seen = proxy.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one failed attempt, one retry: {seen:?}");
    assert_eq!(keys(&seen), vec![Some(order.clone()), Some(order.clone())]);
    let charges = sim.payments(Some(&order));
    assert_eq!(charges.len(), 1, "exactly one charge: {charges:?}");
    assert_eq!(charges[0].id, p.id);
}

/// A gateway slower than the request timeout is retried (same key) and the answer is used.
#[tokio::test]
async fn timeout_is_retried_with_the_same_key() {
    let gw = stub(Arc::new(|n, seen: Seen, _| {
        async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let order = seen.idempotency_key.unwrap_or_default();
            (
                StatusCode::CREATED,
                axum::Json(
                    json!({"id": "pay_stub1", "amount": 10_000, "currency": "INR",
                    "status": "created", "reference": order, "created_at": 1}),
                ),
            )
                .into_response()
        }
        .boxed()
    }))
    .await;
    let client = GatewayClient::new(&gateway_config(&gw.url)).unwrap();
    let order = new_order_id();
    let p = client
        .create_payment(&create_request(&order), &order)
        .await
        .expect("second attempt answers in time");
    assert_eq!(p.id, "pay_stub1");
    let seen = gw.seen.lock().unwrap().clone();
    assert_eq!(keys(&seen), vec![Some(order.clone()), Some(order)]);
}

/// Declines, 404s and other 4xx are not retried; declines keep the gateway's code.
#[tokio::test]
async fn client_errors_are_not_retried() {
    let gw = stub(Arc::new(|_, seen: Seen, _| {
        async move {
            if seen.path.ends_with("/missing") {
                return (StatusCode::NOT_FOUND, "").into_response();
            }
            if seen.path.starts_with("/payments/pay_x") {
                return (StatusCode::UNAUTHORIZED, "who are you").into_response();
            }
            (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"error": {"code": "BAD_REQUEST_ERROR", "description": "invalid VPA"}}),
                ),
            )
                .into_response()
        }
        .boxed()
    }))
    .await;
    let client = GatewayClient::new(&gateway_config(&gw.url)).unwrap();
    let err = client
        .create_payment(&create_request("o-1"), "o-1")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GatewayError::Declined {
            code: "BAD_REQUEST_ERROR".into(),
            description: "invalid VPA".into()
        }
    );
    assert_eq!(
        client.get_payment("missing").await,
        Err(GatewayError::NotFound)
    );
    assert!(matches!(
        client.get_payment("pay_x").await,
        Err(GatewayError::Unavailable(_))
    ));
    assert_eq!(gw.seen.lock().unwrap().len(), 3, "one request per call");
    // Only the malformed 401 counted against the gateway's health.
    assert_eq!(client.breaker().state(), BreakerState::Closed);
}

/// A gateway answering 503: each call retries up to max_attempts, the breaker opens once the
/// minimum number of calls is in its window and the failure rate is over the threshold, and
/// then calls fail at once without reaching the gateway.
#[tokio::test]
async fn breaker_opens_and_stops_calling_the_gateway() {
    let gw = stub(Arc::new(|_, _, _| {
        async { (StatusCode::SERVICE_UNAVAILABLE, "down").into_response() }.boxed()
    }))
    .await;
    let mut cfg = gateway_config(&gw.url);
    cfg.max_attempts = 2;
    cfg.breaker_minimum_calls = 3;
    let client = GatewayClient::new(&cfg).unwrap();
    let first = client.create_payment(&create_request("o-1"), "o-1").await;
    assert!(
        matches!(first, Err(GatewayError::Unavailable(_))),
        "{first:?}"
    );
    assert_eq!(gw.seen.lock().unwrap().len(), 2);
    // The third failed call in the window (100 % failed) opens it; the second attempt of this
    // call is not made.
    let second = client.create_payment(&create_request("o-1"), "o-1").await;
    assert_eq!(second, Err(GatewayError::CircuitOpen));
    assert_eq!(gw.seen.lock().unwrap().len(), 3);
    assert!(matches!(
        client.breaker().state(),
        BreakerState::Open { .. }
    ));
    for _ in 0..5 {
        assert_eq!(
            client.get_payment("pay_1").await,
            Err(GatewayError::CircuitOpen)
        );
    }
    assert_eq!(gw.seen.lock().unwrap().len(), 3, "no call while open");
}

struct Direct {
    handler: PaymentHandler,
    payments: Payments,
    store: Arc<dyn DocumentStore>,
    codec: AvroCodec,
    _tmp: tempfile::TempDir,
}

fn direct(gateway_url: &str) -> Direct {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn DocumentStore> =
        Arc::new(EmbeddedStore::open(tmp.path().join("payment.sqlite")).unwrap());
    let codec = AvroCodec::single_object();
    let payments = Payments {
        store: store.clone(),
        codec: codec.clone(),
        outbox_notify: Arc::new(tokio::sync::Notify::new()),
        gateway: Arc::new(GatewayClient::new(&gateway_config(gateway_url)).unwrap()),
        clock: Arc::new(SystemClock),
        gateway_name: "stub".into(),
    };
    Direct {
        handler: PaymentHandler {
            payments: payments.clone(),
            final_attempt: final_attempt(),
        },
        payments,
        store,
        codec,
        _tmp: tmp,
    }
}

async fn message(
    codec: &AvroCodec,
    event: &nivesh_events::OrderPlaced,
    attempt: u32,
) -> InboundMessage {
    InboundMessage {
        topic: "order.placed".into(),
        partition: 0,
        offset: 0,
        key: Some(event.investor_id.clone().into_bytes()),
        payload: codec.encode(event).await.unwrap(),
        headers: Vec::new(),
        timestamp_ms: None,
        attempt,
    }
}

/// An unavailable gateway makes early attempts retryable (nothing emitted); on the last attempt
/// the payment fails with GATEWAY_UNAVAILABLE so the order ends. If the gateway captures it
/// after all, the late capture is refunded by the reconciler exactly once.
#[tokio::test]
async fn unavailable_gateway_fails_on_the_last_attempt_and_late_capture_is_refunded() {
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let gw = stub(Arc::new(move |_, seen: Seen, _| {
        let up = flag.load(Ordering::SeqCst);
        async move {
            if !up {
                return (StatusCode::BAD_GATEWAY, "down").into_response();
            }
            if seen.path.ends_with("/refunds") {
                return (
                    StatusCode::CREATED,
                    axum::Json(
                        json!({"id": "rfnd_stub1", "payment_id": "pay_late", "amount": 10_000,
                        "status": "processed", "created_at": Utc::now().timestamp()}),
                    ),
                )
                    .into_response();
            }
            (StatusCode::NOT_FOUND, "").into_response()
        }
        .boxed()
    }))
    .await;
    let d = direct(&gw.url);
    let order = new_order_id();
    let event = order_placed(
        "INV0001",
        &order,
        order_kind::PURCHASE,
        "100.00".parse().unwrap(),
        None,
    );

    let first = d.handler.handle(&message(&d.codec, &event, 1).await).await;
    assert!(
        matches!(first, Err(HandlerError::Retryable(_))),
        "{first:?}"
    );
    assert!(d.store.outbox_pending(10).await.unwrap().is_empty());
    let (rec, _) = d.payments.load("INV0001", &order).await.unwrap().unwrap();
    assert_eq!(rec.status, PaymentStatus::Initiating);

    let last = d
        .handler
        .handle(&message(&d.codec, &event, final_attempt()).await)
        .await;
    assert_eq!(last, Ok(()));
    let out = d.store.outbox_pending(10).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message.topic, "payment.failed");
    let failed: PaymentFailed = d.codec.decode(&out[0].message.payload).await.unwrap();
    assert_eq!(failed.reason_code, "GATEWAY_UNAVAILABLE");
    assert_eq!(failed.order_id, order);

    // The redelivered message is a duplicate: no change, no gateway call.
    let calls = gw.seen.lock().unwrap().len();
    assert_eq!(
        d.handler
            .handle(&message(&d.codec, &event, final_attempt()).await)
            .await,
        Ok(())
    );
    assert_eq!(gw.seen.lock().unwrap().len(), calls);

    // The gateway had taken the payment after all and captures it.
    healthy.store(true, Ordering::SeqCst);
    let (rec, etag) = d.payments.load("INV0001", &order).await.unwrap().unwrap();
    let update = nivesh_payment::record::Update::Captured {
        gateway_ref: "pay_late".into(),
        amount_paise: 10_000,
        captured_at: Utc::now(),
    };
    d.payments
        .apply_update("INV0001", &order, &update, None, "test")
        .await
        .unwrap();
    let (late, etag2) = d.payments.load("INV0001", &order).await.unwrap().unwrap();
    assert_ne!(etag, etag2);
    assert_eq!(late.status, PaymentStatus::Failed, "{rec:?}");
    assert_eq!(
        late.refund.as_ref().unwrap().status,
        RefundStatus::Requested
    );

    let mut reconciler = Reconciler::new(
        d.payments.clone(),
        ReconcileConfig {
            min_age_secs: 0,
            ..ReconcileConfig::default()
        },
    );
    reconciler.pass().await.unwrap();
    reconciler.pass().await.unwrap();
    let refunds: Vec<Seen> = gw
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.ends_with("/refunds"))
        .cloned()
        .collect();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0].path, "/payments/pay_late/refunds");
    assert_eq!(refunds[0].idempotency_key, Some(format!("rfd-{order}")));
    let out = d.store.outbox_pending(10).await.unwrap();
    let refunded: Vec<PaymentRefunded> = futures::future::join_all(
        out.iter()
            .filter(|o| o.message.topic == "payment.refunded")
            .map(|o| d.codec.decode::<PaymentRefunded>(&o.message.payload)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert_eq!(refunded.len(), 1);
    assert_eq!(refunded[0].refund_id, format!("rfd-{order}"));
    let (done, _) = d.payments.load("INV0001", &order).await.unwrap().unwrap();
    assert_eq!(done.status, PaymentStatus::Refunded);
}
