//! Redis is a cache, not the record: with Redis cut away mid-run, transactions are still
//! applied and the portfolio is still served (from the store), only slower.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use nivesh_store::{Cache, RedisCache};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A TCP forwarder to the real Redis that can be cut (every connection dropped, new ones
/// refused) and restored on the same address.
struct RedisProxy {
    url: String,
    down: Arc<AtomicBool>,
    connections: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl RedisProxy {
    async fn start() -> RedisProxy {
        let url = nivesh_testkit::redis_url();
        let upstream = url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let down = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(CancellationToken::new()));
        let (token, is_down, conns) = (stop.clone(), down.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(c) => c, Err(_) => return },
                };
                if is_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let conn_token = conns.lock().unwrap().clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = conn_token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        RedisProxy {
            url: format!("redis://{addr}"),
            down,
            connections,
            stop,
        }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        let mut current = self.connections.lock().unwrap();
        current.cancel();
        *current = CancellationToken::new();
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Reads and writes keep working through the outage; after it, nothing stale is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_only_costs_latency() {
    let proxy = RedisProxy::start().await;
    let prefix = format!("{}:", nivesh_testkit::unique("portfolio-outage"));
    let cache: Arc<dyn Cache> = Arc::new(RedisCache::connect(&proxy.url, &prefix).await.unwrap());
    let svc = Service::start_with_cache(cache.clone()).await;
    let path = "/v1/investors/INV0003/portfolio";
    svc.publish(
        "transaction.completed",
        "INV0003",
        &purchase(
            "INV0003",
            "txn-1",
            "118989",
            "2024-01-01",
            "10",
            "10.000",
            "100.00",
        ),
    )
    .await;
    svc.wait_json(path, "the first purchase", |v| v["version"] == 1)
        .await;
    assert!(
        cache
            .get(&nivesh_portfolio::model::holdings_cache_key("INV0003"))
            .await
            .unwrap()
            .is_some()
    );

    proxy.cut();
    assert!(cache.ping().await.is_err(), "Redis is unreachable now");
    svc.publish(
        "transaction.completed",
        "INV0003",
        &purchase(
            "INV0003",
            "txn-2",
            "118989",
            "2024-02-01",
            "10",
            "5.000",
            "50.00",
        ),
    )
    .await;
    let v = svc
        .wait_json(path, "the purchase made during the outage", |v| {
            v["version"] == 2
        })
        .await;
    assert_eq!(v["holdings"][0]["units"], "15.000");
    assert_eq!(v["holdings"][0]["invested"], "150.00");
    svc.publish(
        "nav.broadcast",
        "118989",
        &nav_published("118989", "11.0000", "2025-02-25", "NEW"),
    )
    .await;
    let v = svc
        .wait_json(path, "the NAV during the outage", |v| {
            v["holdings"][0]["nav"] == "11.0000"
        })
        .await;
    assert_eq!(v["holdings"][0]["currentValue"], "165.00");

    // Redis comes back still holding the copy cached before the outage (version 1). It is
    // never served: the failed invalidation is pending, reads skip it, and it is deleted.
    proxy.restore();
    let holdings_key = nivesh_portfolio::model::holdings_cache_key("INV0003");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let v = svc.get_json(path).await;
        assert_eq!(v["version"], 2, "a stale cached portfolio was served: {v}");
        assert_eq!(v["holdings"][0]["nav"], "11.0000");
        let cached = cache.get(&holdings_key).await.ok().flatten();
        let version = cached
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap()["version"].clone());
        if version == Some(serde_json::json!(2)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Redis never got the fresh holdings: {version:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    svc.stop().await;
}
