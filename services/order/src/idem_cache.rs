//! The Redis fast path in front of placement's idempotency record.
//!
//! The store's idempotency record (`idem:{key}` in the investor's partition, created in the
//! same batch as the order) is the **source of truth**: its `Create` is the unique constraint
//! that makes a placement happen at most once, and it is always there to fall back to. This
//! module only saves work in front of it, under `idem:{tenant}:{investor}:{key}` in the
//! service's cache (Redis):
//!
//! - **A repeat is answered without reading the store's record**: after a placement commits
//!   (or is replayed from the store) its response is `SET` in Redis for `idempotency_cache_secs`
//!   (default 10 min: client retries and double submits come within seconds; later repeats
//!   still replay, from the store). A repeat finds it and replays it (or refuses a different
//!   body with the same 422 as the store path).
//! - **Concurrent duplicates wait instead of racing**: the first request `SET NX PX` a claim
//!   (30 s); duplicates that find the claim poll for the response (every 20 ms, at most
//!   [`CLAIM_WAIT`]) instead of each validating, writing a locator for an order id that will
//!   never exist and losing the `Create` race in the store.
//!
//! What it never decides: whether an order is placed. A claim only makes others *wait*; a
//! request that finds the claim gone, still there after [`CLAIM_WAIT`], or Redis failing,
//! takes the ordinary store path, where the unique `Create` decides exactly as without Redis
//! (a lost or expired claim, a Redis failover that dropped keys, a claimer that crashed: all
//! end in the store path). A response is put in Redis only after the store committed it (or
//! replayed it), so Redis never answers with an order that does not exist. With Redis away
//! every request takes the store path: one failed command (bounded by `redis.command_timeout`),
//! no wait, no 5xx.
//!
//! Metric: `nivesh_order_idempotency_cache_total{result}`: `claimed` (first of its key),
//! `replayed` (answered from Redis), `waited` (answered from Redis after waiting for the claim),
//! `busy` (claim still held after the wait: store path), `unavailable` (Redis failed: store path).

use std::sync::Arc;
use std::time::Duration;

use nivesh_store::Cache;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::place::Reply;

/// Counter: fast-path outcomes by `result`.
pub(crate) const IDEMPOTENCY_CACHE_TOTAL: &str = "nivesh_order_idempotency_cache_total";
/// How long a claim lives: far above any placement, so it only outlives a crashed claimer.
pub(crate) const CLAIM_TTL: Duration = Duration::from_secs(30);
/// How long a duplicate waits for the claimer's response before taking the store path.
pub(crate) const CLAIM_WAIT: Duration = Duration::from_secs(2);
const POLL_EVERY: Duration = Duration::from_millis(20);

/// What Redis holds for one (tenant, investor, key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
enum Entry {
    /// A request is placing it now.
    #[serde(rename_all = "camelCase")]
    Claimed { request_hash: String },
    /// Committed (or replayed) by the store: the response to replay.
    #[serde(rename_all = "camelCase")]
    Done {
        request_hash: String,
        status: u16,
        location: Option<String>,
        body: Value,
    },
}

/// A response found in Redis.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub(crate) request_hash: String,
    pub(crate) reply: Reply,
}

/// Where [`IdemCache::begin`] leaves a request.
#[derive(Debug)]
pub(crate) enum Begin {
    /// Answer with this (after checking the request hash).
    Replay(Cached),
    /// Take the store path; `claimed`: this request holds the claim.
    Proceed { claimed: bool },
}

/// The fast path (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub(crate) struct IdemCache {
    cache: Option<Arc<dyn Cache>>,
    ttl: Duration,
}

fn count(result: &'static str) {
    metrics::counter!(IDEMPOTENCY_CACHE_TOTAL, "result" => result).increment(1);
}

impl IdemCache {
    /// Off: every request takes the store path.
    pub(crate) fn disabled() -> Self {
        IdemCache {
            cache: None,
            ttl: Duration::ZERO,
        }
    }

    /// Responses kept `ttl` in `cache` (zero: off).
    pub(crate) fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        if ttl.is_zero() {
            return Self::disabled();
        }
        IdemCache {
            cache: Some(cache),
            ttl,
        }
    }

    pub(crate) fn key(tenant: &str, investor: &str, key: &str) -> String {
        format!("idem:{tenant}:{investor}:{key}")
    }

    /// Claim `key`, or find its response (waiting up to [`CLAIM_WAIT`] for a claimer).
    pub(crate) async fn begin(&self, key: &str, request_hash: &str) -> Begin {
        let Some(cache) = &self.cache else {
            return Begin::Proceed { claimed: false };
        };
        let claim = Entry::Claimed {
            request_hash: request_hash.to_string(),
        };
        let claim = serde_json::to_vec(&claim).expect("entries serialize");
        match cache.set_nx(key, &claim, Some(CLAIM_TTL)).await {
            Ok(true) => {
                count("claimed");
                return Begin::Proceed { claimed: true };
            }
            Ok(false) => {}
            Err(e) => return unavailable(&e),
        }
        let started = tokio::time::Instant::now();
        let mut waited = false;
        loop {
            match cache.get(key).await {
                Ok(Some(bytes)) => match serde_json::from_slice::<Entry>(&bytes) {
                    Ok(Entry::Done {
                        request_hash,
                        status,
                        location,
                        body,
                    }) => {
                        count(if waited { "waited" } else { "replayed" });
                        return Begin::Replay(Cached {
                            request_hash,
                            reply: Reply {
                                status,
                                location,
                                body,
                                replayed: true,
                            },
                        });
                    }
                    Ok(Entry::Claimed { .. }) => {}
                    Err(e) => {
                        tracing::warn!(key, error = %e, "unreadable idempotency cache entry");
                        return Begin::Proceed { claimed: false };
                    }
                },
                // The claimer gave up (failed request) or the entry expired: the store decides.
                Ok(None) => return Begin::Proceed { claimed: false },
                Err(e) => return unavailable(&e),
            }
            if started.elapsed() + POLL_EVERY > CLAIM_WAIT {
                count("busy");
                return Begin::Proceed { claimed: false };
            }
            waited = true;
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// After the store path: remember the response (committed or replayed by the store), or,
    /// when this request held the claim and has no response to remember (a 422, a store
    /// failure), release the claim so waiting duplicates take the store path at once.
    pub(crate) async fn finish(
        &self,
        key: &str,
        claimed: bool,
        request_hash: &str,
        reply: Option<&Reply>,
    ) {
        let Some(cache) = &self.cache else { return };
        let result = match reply {
            Some(reply) => {
                let entry = Entry::Done {
                    request_hash: request_hash.to_string(),
                    status: reply.status,
                    location: reply.location.clone(),
                    body: reply.body.clone(),
                };
                let bytes = serde_json::to_vec(&entry).expect("entries serialize");
                cache.set(key, &bytes, Some(self.ttl)).await
            }
            None if claimed => cache.delete(key).await,
            None => Ok(()),
        };
        if let Err(e) = result {
            metrics::counter!("nivesh_cache_errors_total", "op" => "idempotency").increment(1);
            tracing::debug!(key, error = %e, "idempotency cache not updated");
        }
    }
}

fn unavailable(e: &nivesh_store::Error) -> Begin {
    count("unavailable");
    tracing::debug!(error = %e, "idempotency cache unavailable; the store decides");
    Begin::Proceed { claimed: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_store::MemoryCache;

    fn reply() -> Reply {
        Reply {
            status: 201,
            location: Some("/v1/orders/o-1".into()),
            body: serde_json::json!({"orderId": "o-1"}),
            replayed: false,
        }
    }

    /// First request claims; a later one after `finish` replays the stored response.
    #[tokio::test]
    async fn claim_then_replay() {
        let c = IdemCache::new(Arc::new(MemoryCache::new()), Duration::from_secs(60));
        let k = IdemCache::key("t", "INV1", "key-00000001");
        assert!(matches!(
            c.begin(&k, "h1").await,
            Begin::Proceed { claimed: true }
        ));
        c.finish(&k, true, "h1", Some(&reply())).await;
        match c.begin(&k, "h1").await {
            Begin::Replay(cached) => {
                assert_eq!(cached.request_hash, "h1");
                assert_eq!(cached.reply.body["orderId"], "o-1");
                assert!(cached.reply.replayed);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A claimer that fails releases the claim: the next request proceeds (and claims).
    #[tokio::test]
    async fn failed_claimer_releases() {
        let c = IdemCache::new(Arc::new(MemoryCache::new()), Duration::from_secs(60));
        let k = IdemCache::key("t", "INV1", "key-00000002");
        assert!(matches!(
            c.begin(&k, "h").await,
            Begin::Proceed { claimed: true }
        ));
        c.finish(&k, true, "h", None).await;
        assert!(matches!(
            c.begin(&k, "h").await,
            Begin::Proceed { claimed: true }
        ));
    }

    /// A claim that is never finished makes a duplicate wait CLAIM_WAIT, then take the store
    /// path (the claim decides nothing).
    #[tokio::test]
    async fn stuck_claim_falls_back_to_the_store() {
        let c = IdemCache::new(Arc::new(MemoryCache::new()), Duration::from_secs(60));
        let k = IdemCache::key("t", "INV1", "key-00000003");
        assert!(matches!(
            c.begin(&k, "h").await,
            Begin::Proceed { claimed: true }
        ));
        assert!(matches!(
            c.begin(&k, "h").await,
            Begin::Proceed { claimed: false }
        ));
    }

    /// Off: always the store path, nothing remembered.
    #[tokio::test]
    async fn disabled_is_store_only() {
        let c = IdemCache::new(Arc::new(MemoryCache::new()), Duration::ZERO);
        let k = IdemCache::key("t", "INV1", "key-00000004");
        c.finish(&k, true, "h", Some(&reply())).await;
        assert!(matches!(
            c.begin(&k, "h").await,
            Begin::Proceed { claimed: false }
        ));
    }
}
