//! The Redis fast path in front of placement's idempotency record, on the real Redis: 20
//! concurrent requests with one key still make one order (the duplicates wait for the first and
//! replay its response from Redis); a repeat is answered from Redis, a reused key with another
//! body is refused from it; and Redis losing the entry changes nothing (the store decides).

mod common;

use common::{EQUITY, start_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

async fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", &nivesh_testkit::redis_url()])
        .args(args)
        .output()
        .await
        .expect("redis-cli is installed");
    assert!(out.status.success(), "redis-cli {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn purchase(amount: &str) -> Value {
    json!({"investorId": "INV0001", "kind": "PURCHASE", "schemeCode": EQUITY,
           "amount": amount, "paymentInstrument": "investor.one@okicici"})
}

/// 20 concurrent duplicates → one order, one fresh answer, 19 replays; the response is in
/// Redis under (tenant, investor, key); repeats and a reused key are answered from it; with the
/// entry gone the store still replays (and Redis is filled again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_fast_path_in_front_of_the_store_record() {
    let prefix = format!("{}:", nivesh_testkit::unique("order-idem-cache"));
    let url = nivesh_testkit::redis_url();
    let svc = start_with(&[
        ("NIVESH__REDIS__URL", url.as_str()),
        ("NIVESH__REDIS__KEY_PREFIX", prefix.as_str()),
        ("NIVESH__REDIS__REQUIRED", "true"),
    ])
    .await;

    let key = "idem-cache-concurrent-0001";
    let body = purchase("2500.00");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (barrier, base, admin, body) = (
            barrier.clone(),
            svc.base.clone(),
            svc.admin.clone(),
            body.clone(),
        );
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
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let ids: std::collections::BTreeSet<_> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{:#}", r.body);
            r.body["orderId"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one order for all duplicates: {ids:?}");
    let order_id = ids.into_iter().next().unwrap();
    let fresh = replies
        .iter()
        .filter(|r| r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request created the order");

    // The response is in Redis, keyed by tenant, investor and key.
    let keys = redis_cli(&["--scan", "--pattern", &format!("{prefix}idem:*")]).await;
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(&format!(":INV0001:{key}")), "{keys:?}");
    let entry: Value = serde_json::from_str(&redis_cli(&["GET", keys[0]]).await).unwrap();
    assert_eq!(entry["state"], "done");
    assert_eq!(entry["body"]["orderId"], order_id.as_str());

    // A repeat replays from Redis; another body under the same key is refused from it.
    let again = svc.post(Some(key), &body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["orderId"], order_id.as_str());
    let reused = svc.post(Some(key), &purchase("2600.00")).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reused.problem(StatusCode::UNPROCESSABLE_ENTITY)["type"],
        "urn:nivesh:problem:idempotency-key-reused"
    );
    let text = svc
        .http
        .get(svc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("nivesh_order_idempotency_cache_total{result=\"claimed\"}"),
        "{text}"
    );

    // Redis forgets (eviction, failover): the store's record still decides and replays.
    redis_cli(&["DEL", keys[0]]).await;
    let after = svc.post(Some(key), &body).await;
    assert_eq!(after.status, StatusCode::CREATED);
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
    assert_eq!(after.body["orderId"], order_id.as_str());
    let refilled = redis_cli(&["EXISTS", keys[0]]).await;
    assert_eq!(refilled, "1");

    redis_cli(&["DEL", keys[0]]).await;
    svc.stop().await;
}
