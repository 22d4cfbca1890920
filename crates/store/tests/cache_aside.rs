//! CacheAside on the real Redis (REDIS_URL, default 127.0.0.1:6379): single flight per key,
//! jittered TTLs, and reads that keep working (from the source) while Redis does not answer.
//!
//! Every test uses its own key prefix and deletes its keys afterwards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{FreezableProxy, raw, with_prefix};
use nivesh_store::{Cache, CacheAside, Origin, RedisCache, RedisConfig};
use tokio::sync::Notify;

async fn redis(prefix: &str) -> Arc<dyn Cache> {
    Arc::new(
        RedisCache::connect(&nivesh_testkit::redis_url(), prefix)
            .await
            .unwrap(),
    )
}

/// 50 concurrent misses on one key run the loader exactly once; every caller gets its value;
/// the next read is a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_on_one_key_load_once() {
    with_prefix(|prefix| async move {
        let reads = CacheAside::new(redis(&prefix).await, "test", Duration::from_secs(60));
        let loads = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let callers = 50;
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let (reads, loads, release) = (reads.clone(), loads.clone(), release.clone());
            tasks.push(tokio::spawn(async move {
                reads
                    .get_or_load("hot", move || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        // Held until every caller has missed, so none can come late to a
                        // finished flight and turn this into a timing-dependent test.
                        release.notified().await;
                        Ok::<_, String>(Some(vec![1u32, 2, 3]))
                    })
                    .await
                    .unwrap()
            }));
        }
        // Every caller has either started the flight or joined it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while reads.stats().coalesced < callers as u64 - 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                reads.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.notify_one();
        let mut origins = Vec::new();
        for t in tasks {
            let fetched = t.await.unwrap();
            assert_eq!(fetched.value, Some(vec![1, 2, 3]));
            origins.push(fetched.origin);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "exactly one load");
        assert_eq!(origins.iter().filter(|o| **o == Origin::Loaded).count(), 1);
        assert_eq!(reads.in_flight(), 0, "the finished flight is forgotten");
        let stats = reads.stats();
        assert_eq!(
            (stats.misses, stats.loads, stats.coalesced, stats.errors),
            (callers as u64, 1, callers as u64 - 1, 0)
        );

        let again = reads
            .get_or_load("hot", || async { Err::<Option<Vec<u32>>, _>("not called") })
            .await
            .unwrap();
        assert_eq!(
            (again.value, again.origin),
            (Some(vec![1, 2, 3]), Origin::Cache)
        );
    })
    .await;
}

/// Keys filled together get different TTLs, all within ttl ± 10 %.
#[tokio::test]
async fn ttls_are_jittered_within_the_band() {
    with_prefix(|prefix| async move {
        let reads = CacheAside::new(redis(&prefix).await, "test", Duration::from_secs(100));
        for i in 0..40 {
            reads
                .get_or_load(
                    &format!("k{i}"),
                    move || async move { Ok::<_, String>(Some(i)) },
                )
                .await
                .unwrap();
        }
        let mut conn = raw().await;
        let mut ttls = Vec::new();
        for i in 0..40 {
            let pttl: i64 = redis::cmd("PTTL")
                .arg(format!("{prefix}k{i}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            ttls.push(pttl);
        }
        for ttl in &ttls {
            // 90 s to 110 s; a little below 90 s allowed for the time the test took.
            assert!((85_000..=110_000).contains(ttl), "{ttls:?}");
        }
        ttls.sort_unstable();
        ttls.dedup_by(|a, b| (*a - *b).abs() < 1_000);
        assert!(
            ttls.len() >= 5,
            "TTLs should spread over the band: {ttls:?}"
        );
    })
    .await;
}

/// A value the loader does not find is not cached; a loader error reaches the caller; a writer's
/// value is never overwritten by a reader's fill.
#[tokio::test]
async fn absent_values_errors_and_writers_win() {
    with_prefix(|prefix| async move {
        let cache = redis(&prefix).await;
        let reads = CacheAside::new(cache.clone(), "test", Duration::from_secs(60));
        let none = reads
            .get_or_load("missing", || async { Ok::<Option<String>, String>(None) })
            .await
            .unwrap();
        assert_eq!((none.value, none.origin), (None, Origin::Loaded));
        assert_eq!(cache.get("missing").await.unwrap(), None);

        let err = reads
            .get_or_load("broken", || async {
                Err::<Option<String>, _>("store down")
            })
            .await
            .unwrap_err();
        assert_eq!(*err, "store down");
        assert_eq!(reads.in_flight(), 0);

        // A reader that loaded "old" while a writer stored "new": the fill (SET NX) loses.
        let r = reads
            .load("contended", || {
                let cache = cache.clone();
                async move {
                    cache
                        .set("contended", br#""new""#, Some(Duration::from_secs(60)))
                        .await
                        .unwrap();
                    Ok::<_, String>(Some("old".to_string()))
                }
            })
            .await
            .unwrap();
        assert_eq!(r.value.as_deref(), Some("old"));
        assert_eq!(
            cache.get("contended").await.unwrap().as_deref(),
            Some(&br#""new""#[..])
        );
    })
    .await;
}

/// While Redis does not answer, every read is answered by the loader (never an error), still
/// one load per key for concurrent callers; cache errors are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_answers_from_the_loader() {
    with_prefix(|prefix| async move {
        let proxy = FreezableProxy::start().await;
        let config = RedisConfig {
            command_timeout: Duration::from_millis(200),
            ..RedisConfig::default()
        };
        let cache: Arc<dyn Cache> = Arc::new(
            RedisCache::connect_with(&proxy.url(), &prefix, config)
                .await
                .unwrap(),
        );
        let reads = CacheAside::new(cache, "test", Duration::from_secs(60));
        proxy.frozen.store(true, Ordering::Relaxed);

        let loads = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (reads, loads, release) = (reads.clone(), loads.clone(), release.clone());
            tasks.push(tokio::spawn(async move {
                reads
                    .get_or_load("k", move || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Ok::<_, String>(Some("from the store".to_string()))
                    })
                    .await
            }));
        }
        // Every caller's GET has failed (bounded by the command timeout) and it has joined the
        // flight.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while reads.stats().misses < 10 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                reads.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.notify_one();
        for t in tasks {
            let fetched = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("bounded by the command timeout")
                .unwrap()
                .expect("Redis down is never an error");
            assert_eq!(fetched.value.as_deref(), Some("from the store"));
            assert_ne!(fetched.origin, Origin::Cache);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "still one load per key");
        // 10 failed GETs and the flight's failed SET NX.
        assert_eq!(reads.stats().errors, 11, "{:?}", reads.stats());
    })
    .await;
}
