//! Acceptance: the broker is down for 30 s while investors place orders (the dev broker, a
//! librdkafka mock cluster over TCP, takes its only broker down). Every POST /v1/orders is
//! still answered 201 (the order and its `order.placed` go into the store's outbox in one
//! transaction; nothing on the request path waits for Kafka), and once the broker is back the
//! outbox relay publishes every order's `order.placed` exactly once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{EQUITY, start};
use nivesh_events::OrderPlaced;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_are_accepted_while_the_broker_is_down_and_published_once_after() {
    let svc = start().await;
    let body = |amount: u32| {
        json!({"investorId": "INV0001", "kind": "PURCHASE", "schemeCode": EQUITY,
               "amount": format!("{amount}.00"), "paymentInstrument": "investor.one@okicici"})
    };
    let mut placed = Vec::new();
    let place = async |n: u32, placed: &mut Vec<String>| {
        let started = Instant::now();
        let r = svc
            .post(Some(&format!("outage-{n}")), &body(1000 + n))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "order {n}: {}", r.body);
        // Accepted promptly: the request never waits for the broker.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "order {n} took {:?}",
            started.elapsed()
        );
        placed.push(r.body["orderId"].as_str().unwrap().to_string());
    };

    for n in 0..3 {
        place(n, &mut placed).await;
    }
    svc.broker.broker_down(1).expect("broker down");
    let down = Instant::now();
    let mut n = 3;
    while down.elapsed() < Duration::from_secs(30) {
        place(n, &mut placed).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    assert!(placed.len() >= 20, "{} orders", placed.len());
    svc.broker.broker_up(1).expect("broker up");

    let events: Vec<OrderPlaced> = svc
        .events_at_least("order.placed", placed.len(), |e: &OrderPlaced| {
            e.investor_id == "INV0001"
        })
        .await;
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *per_order.entry(e.order_id.as_str()).or_default() += 1;
    }
    for id in &placed {
        assert_eq!(
            per_order.get(id.as_str()),
            Some(&1),
            "order {id}: {per_order:?}"
        );
    }
    assert_eq!(
        events.len(),
        placed.len(),
        "no other or duplicated order.placed"
    );
    svc.stop().await;
}
