//! RedisCache against the Cache contract on the real Redis (REDIS_URL, default 127.0.0.1:6379),
//! and its failure behaviour: unreachable, silent, killed and frozen servers give
//! `Error::Unavailable` in bounded time instead of hanging, and a killed connection heals.
//!
//! Every test uses its own key prefix and deletes its keys, so tests run in parallel against
//! one shared Redis.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{FreezableProxy, raw, with_prefix};
use nivesh_store::contract::cache_contract;
use nivesh_store::{Cache, Error, RedisCache, RedisConfig};
use tokio::net::TcpListener;

/// Far above any timeout the cache uses: reaching it means the call hung.
const HANG: Duration = Duration::from_secs(10);

/// Await `call`, failing the test if it takes longer than [`HANG`].
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = nivesh_store::Result<T>>,
) -> nivesh_store::Result<T> {
    tokio::time::timeout(HANG, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

fn assert_unavailable<T: std::fmt::Debug>(result: nivesh_store::Result<T>, what: &str) {
    assert!(
        matches!(result, Err(Error::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
}

/// The whole Cache contract holds for RedisCache on the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_redis_cache() {
    with_prefix(|prefix| async move {
        let cache = RedisCache::connect(&nivesh_testkit::redis_url(), &prefix)
            .await
            .unwrap();
        assert_eq!(cache.kind(), "redis");
        cache_contract(Arc::new(cache)).await;
    })
    .await;
}

/// Every key the cache writes lands under its prefix, and nothing outside it is touched.
#[tokio::test]
async fn keys_are_prefixed() {
    with_prefix(|prefix| async move {
        let cache = RedisCache::connect(&nivesh_testkit::redis_url(), &prefix)
            .await
            .unwrap();
        cache.set("single", b"1", None).await.unwrap();
        cache
            .set_many(
                &[("many".into(), b"2".to_vec())],
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert!(cache.set_nx("nx", b"3", None).await.unwrap());
        let mut conn = raw().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut keys: Vec<&str> = keys
            .iter()
            .map(|k| k.strip_prefix(&prefix).unwrap())
            .collect();
        keys.sort();
        assert_eq!(keys, ["many", "nx", "single"]);
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}many"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ttl > 0 && ttl <= 60_000,
            "set_many must apply the TTL, PTTL = {ttl}"
        );
    })
    .await;
}

/// Connecting to a port nobody listens on fails with Unavailable instead of retrying forever.
#[tokio::test]
async fn connect_to_closed_port_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // listener dropped: the port is closed
    let result = tokio::time::timeout(
        HANG,
        RedisCache::connect(&format!("redis://127.0.0.1:{port}"), "x:"),
    )
    .await;
    assert_unavailable(result.expect("connect hung"), "connect to closed port");
}

/// A server that accepts TCP but never answers (a hung Redis) fails connect with Unavailable.
#[tokio::test]
async fn connect_to_silent_server_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // keep it open, never reply
        }
    });
    let result = tokio::time::timeout(
        HANG,
        RedisCache::connect(&format!("redis://127.0.0.1:{port}"), "x:"),
    )
    .await;
    assert_unavailable(result.expect("connect hung"), "connect to silent server");
    silent.abort();
}

/// Malformed URLs are the caller's mistake (Invalid), not an outage.
#[tokio::test]
async fn malformed_url_is_invalid() {
    let result = RedisCache::connect("not a url", "x:").await;
    assert!(matches!(result, Err(Error::Invalid(_))), "{result:?}");
}

/// After Redis kills our connection (CLIENT KILL from a second connection), commands error
/// or succeed but never hang, and the cache reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connection_reconnects() {
    with_prefix(|prefix| async move {
        let cache = RedisCache::connect(&nivesh_testkit::redis_url(), &prefix)
            .await
            .unwrap();
        cache.set("k", b"before", None).await.unwrap();
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut cache.connection())
            .await
            .unwrap();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut raw().await)
            .await
            .unwrap();
        assert_eq!(killed, 1, "our connection must have been killed");

        let mut healed = false;
        for _ in 0..20 {
            match tokio::time::timeout(HANG, cache.get("k"))
                .await
                .expect("command hung after CLIENT KILL")
            {
                Ok(value) => {
                    assert_eq!(value.as_deref(), Some(&b"before"[..]));
                    healed = true;
                    break;
                }
                Err(e) => assert!(
                    matches!(e, Error::Unavailable(_)),
                    "unexpected error kind: {e:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(healed, "the cache never reconnected after CLIENT KILL");
        let new_id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut cache.connection())
            .await
            .unwrap();
        assert_ne!(new_id, id, "commands must run on a new connection");
    })
    .await;
}

/// When Redis stops answering mid-run, every kind of command returns Unavailable within the
/// command timeout instead of hanging; when it answers again, the cache works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_times_out_then_recovers() {
    with_prefix(|prefix| async move {
        let proxy = FreezableProxy::start().await;
        let config = RedisConfig {
            command_timeout: Duration::from_millis(300),
            ..RedisConfig::default()
        };
        let cache = RedisCache::connect_with(&proxy.url(), &prefix, config)
            .await
            .unwrap();
        cache.set("k", b"v", None).await.unwrap();

        proxy.frozen.store(true, Ordering::Relaxed);
        let entries = [("a".to_string(), b"1".to_vec())];
        let keys = ["a".to_string(), "k".to_string()];
        assert_unavailable(bounded("get", cache.get("k")).await, "get");
        assert_unavailable(bounded("set", cache.set("k", b"w", None)).await, "set");
        assert_unavailable(
            bounded("set_nx", cache.set_nx("n", b"w", None)).await,
            "set_nx",
        );
        assert_unavailable(
            bounded("set_many", cache.set_many(&entries, None)).await,
            "set_many",
        );
        assert_unavailable(bounded("get_many", cache.get_many(&keys)).await, "get_many");
        assert_unavailable(bounded("delete", cache.delete("k")).await, "delete");
        assert_unavailable(bounded("ping", cache.ping()).await, "ping");

        proxy.frozen.store(false, Ordering::Relaxed);
        let mut recovered = false;
        for _ in 0..50 {
            if tokio::time::timeout(HANG, cache.ping())
                .await
                .expect("ping hung after unfreeze")
                .is_ok()
            {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            recovered,
            "the cache did not recover once Redis answered again"
        );
        cache.set("after", b"ok", None).await.unwrap();
        assert_eq!(
            cache.get("after").await.unwrap().as_deref(),
            Some(&b"ok"[..])
        );
    })
    .await;
}
