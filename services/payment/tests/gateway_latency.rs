//! Acceptance: the payment gateway turns slow (the simulator's response delay raised to 5 s at
//! runtime through its admin endpoint). Real parts: the simulator over HTTP, the real gateway
//! client (timeout, retry budget, breaker), the real handler and the embedded store; the
//! handler is driven with the messages the bus would hand it (first delivery, then the retry
//! tier's redelivery).
//!
//! Asserted: the breaker opens at its threshold (state and both gauges), the orders' payments
//! stay queued (INITIATING, the bus retries them) instead of failing, no call reaches the
//! gateway while the breaker is open, the breaker half-opens after `open_for` and closes on
//! good trials, every queued payment then goes through, and the calls that reached the gateway
//! stay within the retry budget (<= logical calls × 1.1 + 1).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{gateway_config, new_order_id, order_placed, start_sim};
use nivesh_bus::{HandlerError, InboundMessage, MessageHandler};
use nivesh_domain::time::SystemClock;
use nivesh_events::{AvroCodec, OrderPlaced, order_kind};
use nivesh_payment::breaker::BreakerState;
use nivesh_payment::flow::Payments;
use nivesh_payment::gateway::GatewayClient;
use nivesh_payment::handler::PaymentHandler;
use nivesh_payment::record::PaymentStatus;
use nivesh_store::{DocumentStore, EmbeddedStore};

async fn message(codec: &AvroCodec, event: &OrderPlaced, attempt: u32) -> InboundMessage {
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

fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn set_latency(http: &reqwest::Client, sim_url: &str, ms: u64) {
    let r = http
        .post(format!("{sim_url}/admin/latency"))
        .json(&serde_json::json!({ "response_ms": ms }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_gateway_opens_the_breaker_queues_payments_and_recovers() {
    let metrics = nivesh_runtime::metrics::install();
    let (sim_url, sim) = start_sim(common::sim_config()).await;
    let http = reqwest::Client::new();

    let mut cfg = gateway_config(&sim_url);
    cfg.request_timeout_ms = 1_000;
    cfg.max_attempts = 3;
    cfg.retry_budget_ratio = 0.1;
    cfg.retry_budget_min_per_sec = 0;
    cfg.retry_budget_window_secs = 30;
    cfg.breaker_window = 10;
    cfg.breaker_minimum_calls = 5;
    cfg.breaker_failure_rate = 0.5;
    cfg.breaker_slow_call_rate = 0.5;
    cfg.breaker_slow_call_ms = 800;
    cfg.breaker_open_secs = 2;
    cfg.breaker_half_open_calls = 2;
    let gateway = Arc::new(GatewayClient::new(&cfg).unwrap());

    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn DocumentStore> =
        Arc::new(EmbeddedStore::open(tmp.path().join("payment.sqlite")).unwrap());
    let codec = AvroCodec::single_object();
    let payments = Payments {
        store: store.clone(),
        codec: codec.clone(),
        outbox_notify: Arc::new(tokio::sync::Notify::new()),
        gateway: gateway.clone(),
        clock: Arc::new(SystemClock),
        gateway_name: "pg-sim".into(),
    };
    // Many retry tiers: nothing here is the last attempt (which would fail the payment).
    let handler = PaymentHandler {
        payments: payments.clone(),
        final_attempt: 10,
    };
    let order = |i: usize| {
        order_placed(
            &format!("INV{i:04}"),
            &new_order_id(),
            order_kind::PURCHASE,
            "1000.00".parse().unwrap(),
            None,
        )
    };
    let mut logical_calls = 0u64;

    // 1. Healthy: 10 payments initiated.
    for i in 0..10 {
        let e = order(i);
        assert_eq!(handler.handle(&message(&codec, &e, 1).await).await, Ok(()));
        logical_calls += 1;
    }
    assert_eq!(gateway.breaker().state(), BreakerState::Closed);
    let healthy_calls = sim.api_calls();
    assert_eq!(healthy_calls, 10);

    // 2. The gateway answers in 5 s; our timeout is 1 s (and 800 ms is slow).
    set_latency(&http, &sim_url, 5_000).await;
    let mut queued = Vec::new();
    for i in 10..22 {
        let e = order(i);
        let out = handler.handle(&message(&codec, &e, 1).await).await;
        assert!(
            matches!(out, Err(HandlerError::Retryable(_))),
            "an unavailable gateway is retried later, never failed early: {out:?}"
        );
        logical_calls += 1;
        queued.push(e);
    }
    assert!(
        matches!(gateway.breaker().state(), BreakerState::Open { .. }),
        "{:?}",
        gateway.breaker().state()
    );
    let slow_calls = sim.api_calls() - healthy_calls;
    // The window held 10 fast successes: 5 failed calls make 50 % and open it; the retry budget
    // (1 retry per 10 calls) allows at most 2 retries in all; then nothing reaches the gateway.
    assert!(
        (5..=7).contains(&slow_calls),
        "{slow_calls} calls reached the slow gateway"
    );
    let text = metrics.render();
    assert_eq!(
        gauge(
            &text,
            "nivesh_circuit_breaker_state{dependency=\"payment-gateway\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        gauge(&text, "nivesh_payment_gateway_breaker_state"),
        Some(2.0)
    );
    for e in &queued {
        let (rec, _) = payments
            .load(&e.investor_id, &e.order_id)
            .await
            .unwrap()
            .expect("the payment is recorded");
        assert_eq!(rec.status, PaymentStatus::Initiating, "queued, not failed");
    }
    assert!(
        store
            .outbox_pending(100)
            .await
            .unwrap()
            .iter()
            .all(|o| o.message.topic == "payment.initiated"),
        "no payment.failed for a slow gateway"
    );

    // 3. Latency back to normal; after open_for the breaker half-opens, its two trials
    //    succeed and it closes; the bus's redelivery of every queued order goes through.
    set_latency(&http, &sim_url, 0).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    for (n, e) in queued.iter().enumerate() {
        assert_eq!(
            handler.handle(&message(&codec, e, 2).await).await,
            Ok(()),
            "redelivery {n}"
        );
        logical_calls += 1;
        if n == 0 {
            assert_eq!(gateway.breaker().state(), BreakerState::HalfOpen);
        }
    }
    assert_eq!(gateway.breaker().state(), BreakerState::Closed);
    assert_eq!(
        gauge(
            &metrics.render(),
            "nivesh_circuit_breaker_state{dependency=\"payment-gateway\"}"
        ),
        Some(0.0)
    );
    for e in &queued {
        let (rec, _) = payments
            .load(&e.investor_id, &e.order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.status, PaymentStatus::Pending);
        assert_eq!(sim.payments(Some(&e.order_id)).len(), 1, "one charge");
    }

    // The retry budget held: every call that reached the gateway is accounted for.
    let total = sim.api_calls();
    assert!(
        total as f64 <= logical_calls as f64 * 1.1 + 1.0,
        "{total} gateway calls for {logical_calls} logical calls"
    );
}
