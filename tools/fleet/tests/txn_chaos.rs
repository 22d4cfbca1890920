//! Chaos: while 2,000 orders flow through the whole fleet, SIGKILL and restart each of order,
//! payment, allotment and portfolio once. Afterwards every order is terminal, every holding
//! equals the sum of its completed transactions, and nothing is duplicated or lost (the
//! reconciliation check, `nivesh reconcile`, which reads the event log itself).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::txn::*;
use nivesh_fleet::fleet::GatewaySim;
use nivesh_fleet::reconcile::reconcile;
use serde_json::json;
use tokio::sync::Mutex;

const ORDERS: usize = 2_000;
const CLIENTS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_restart_each_transaction_service_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    // A 5 % decline rate exercises the failure and compensation paths under the same chaos.
    let sim = GatewaySim {
        latency_ms: 50,
        failure_rate: 0.05,
        seed: 11,
    };
    let Some((mut fleet, order)) = fleet_with_navs(&tmp, sim).await else {
        return;
    };
    let bootstrap = fleet.bootstrap().to_string();
    // Admin: may place and read orders of every investor of the tenant.
    let c = nivesh_fleet::fleet::bearer_client(
        &fleet.staff_token(&["admin"]).await.expect("admin token"),
        Duration::from_secs(10),
    )
    .unwrap();
    // Wait until both schemes are orderable (the NAV day is still being published).
    for scheme in [EQUITY, INDEX] {
        place(
            &c,
            &order,
            &json!({"investorId": "INV0020", "kind": "PURCHASE", "schemeCode": scheme,
                    "amount": "500.00", "paymentInstrument": "tara@okaxis"}),
        )
        .await;
    }

    // The load: CLIENTS workers share ORDERS orders; each order keeps its Idempotency-Key across
    // retries, as a real client does when the service is down or the answer is lost.
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(BTreeSet::new()));
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let (c, order, next, accepted, ids) = (
            c.clone(),
            order.clone(),
            next.clone(),
            accepted.clone(),
            ids.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= ORDERS {
                    return;
                }
                let investor = format!("INV{:04}", 1 + i % 19);
                let scheme = if i % 3 == 0 { INDEX } else { EQUITY };
                let body = json!({"investorId": investor, "kind": "PURCHASE", "schemeCode": scheme,
                                  "amount": format!("{}.{:02}", 1000 + i, i % 100),
                                  "paymentInstrument": "chaos@okaxis"});
                let key = format!("chaos-order-{i:05}");
                let deadline = Instant::now() + Duration::from_secs(180);
                loop {
                    let sent = c
                        .post(format!("{order}/v1/orders"))
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(r) = sent {
                        let status = r.status().as_u16();
                        if let Ok(v) = r.json::<serde_json::Value>().await {
                            if status == 201 || status == 200 {
                                ids.lock()
                                    .await
                                    .insert(v["orderId"].as_str().unwrap().to_string());
                                accepted.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            assert!(status >= 500, "order {i} refused ({status}): {v}");
                        }
                    }
                    assert!(Instant::now() < deadline, "order {i} never accepted");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }

    // The chaos: one SIGKILL + restart per service, spread over the run.
    for (n, service) in ["order", "payment", "allotment", "portfolio"]
        .into_iter()
        .enumerate()
    {
        let at = (n + 1) * ORDERS / 6;
        let deadline = Instant::now() + Duration::from_secs(600);
        while accepted.load(Ordering::SeqCst) < at {
            assert!(
                Instant::now() < deadline,
                "load stalled before killing {service}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        fleet.kill9(service).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        fleet.restart(service).await.unwrap();
        eprintln!(
            "chaos: killed and restarted {service} after {} accepted orders",
            accepted.load(Ordering::SeqCst)
        );
    }
    for w in workers {
        w.await.unwrap();
    }
    let ids = ids.lock().await.clone();
    assert_eq!(ids.len(), ORDERS, "one order per Idempotency-Key");

    // Everything settles: every order terminal, no duplicates, holdings = transactions.
    let base = router(&fleet);
    let admin = fleet.staff_token(&["admin"]).await.expect("admin token");
    let deadline = Instant::now() + Duration::from_secs(900);
    let report = loop {
        let report = reconcile(&bootstrap, &base, &admin).await.unwrap();
        if report.ok() || Instant::now() > deadline {
            break report;
        }
        eprintln!(
            "chaos: waiting to settle: {} not terminal, statuses {:?}",
            report.not_terminal.len(),
            report.status_counts
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    assert!(report.ok(), "{report:#?}");
    // The warm-up orders plus the load.
    assert_eq!(report.orders_placed, ORDERS + 2, "{report:#?}");
    let completed = report.status_counts.get("COMPLETED").copied().unwrap_or(0);
    let failed = report.status_counts.get("FAILED").copied().unwrap_or(0);
    assert_eq!(completed + failed, ORDERS + 2);
    assert!(failed > 0, "the 5 % decline rate produced failures");
    eprintln!(
        "chaos: settled: {completed} completed, {failed} failed, {} transactions",
        report.transactions
    );
    fleet.stop().await.unwrap();
}

fn router(fleet: &nivesh_fleet::fleet::Fleet) -> String {
    let app = nivesh_fleet::ingress::router(&fleet.upstreams());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}
