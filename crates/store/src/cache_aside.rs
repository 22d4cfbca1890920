//! [`CacheAside`]: read-through caching on the [`Cache`] port with stampede protection.
//!
//! `get_or_load(key, loader)`:
//! 1. `GET` the key; a decodable value is a **hit**.
//! 2. Otherwise (absent, undecodable, or the cache failed) it is a **miss**, and the key's
//!    **single flight** loads it: the first caller in this process runs `loader` (a **load**);
//!    every caller that misses while that load is in progress awaits the same result
//!    (**coalesced**) instead of running its own. A hot key that expires under load therefore
//!    costs the source one read per process, not one per request (the stampede).
//! 3. The loaded value is written back with `SET NX` and a **jittered TTL** (`ttl` ± `jitter`,
//!    default ± 10 %), so keys filled together (after a deploy, a Redis restart) do not all
//!    expire in the same second and stampede again. `NX` because a reader must never overwrite
//!    what a writer put there meanwhile: a writer commits to the store first and then `SET`s the
//!    fresh value, so the reader's older copy loses.
//!
//! The cache never causes an error: a failed `GET` is a miss, a failed `SET` is skipped (both
//! counted in `nivesh_cache_errors_total{op}`), so with Redis away every read is a load from
//! the source (still single-flighted, which protects the source exactly when it matters most).
//! Only the loader's own error reaches the caller, shared by every coalesced caller as an
//! `Arc<E>` (`Arc::try_unwrap` gives the leader's error back when nobody else waited).
//!
//! `None` from the loader ("does not exist") is returned but not cached, so a document that
//! appears later is seen on the next read.
//!
//! Rejected: a distributed lock in Redis for the single flight (one load per key *cluster-wide*):
//! it adds two round trips to every miss and its failure modes (lock holder dies, Redis away)
//! need their own timeouts, for a saving of at most one load per replica. Also rejected:
//! `moka`/`tokio::sync::OnceCell` per key: the flight map must forget a key the moment its load
//! is done (the cached copy takes over), which a future shared through a small map gives with
//! no extra dependency.
//!
//! Metrics (label `cache`, the name given to [`CacheAside::new`]):
//! `nivesh_cache_requests_total{cache,result="hit"|"miss"}`, `nivesh_cache_loads_total{cache}`,
//! `nivesh_cache_coalesced_total{cache}`; and `nivesh_cache_errors_total{op}` as elsewhere.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rand::Rng as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Cache;

/// Counter: cache-aside reads by `cache` and `result` (`hit`, `miss`).
pub const CACHE_REQUESTS: &str = "nivesh_cache_requests_total";
/// Counter: loads from the source by `cache` (one per single flight).
pub const CACHE_LOADS: &str = "nivesh_cache_loads_total";
/// Counter: misses that awaited another caller's load instead of loading, by `cache`.
pub const CACHE_COALESCED: &str = "nivesh_cache_coalesced_total";
/// Counter: cache operations that failed and were skipped, by `op`.
pub const CACHE_ERRORS: &str = "nivesh_cache_errors_total";

/// The default TTL jitter: ± 10 %.
pub const DEFAULT_JITTER: f64 = 0.1;

/// Where a [`CacheAside`] answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The cached copy.
    Cache,
    /// This caller ran the loader.
    Loaded,
    /// Another caller's load, awaited.
    Coalesced,
}

impl Origin {
    /// `Cache` or not (for "source" metrics: anything else came from the source).
    pub fn is_cache(self) -> bool {
        self == Origin::Cache
    }
}

/// A value read through a [`CacheAside`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched<T> {
    /// `None`: the loader found nothing (not cached).
    pub value: Option<T>,
    pub origin: Origin,
}

/// Counts of what a [`CacheAside`] did (the same as its metrics, per instance; for tests and
/// diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub loads: u64,
    pub coalesced: u64,
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    coalesced: AtomicU64,
    errors: AtomicU64,
}

/// The result every caller of one flight receives.
type FlightOutput<T, E> = Result<Option<T>, Arc<E>>;
type Flight<T, E> = Shared<BoxFuture<'static, FlightOutput<T, E>>>;

struct Inner {
    cache: Arc<dyn Cache>,
    name: &'static str,
    ttl: Duration,
    jitter: f64,
    /// Key → its in-progress load (a `Flight<T, E>`, type-erased so one instance serves any
    /// value type; one key is always read as one type).
    flights: Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>,
    counters: Counters,
}

impl Inner {
    fn flights(&self) -> MutexGuard<'_, HashMap<String, Box<dyn Any + Send + Sync>>> {
        // Map operations are single calls: a panic elsewhere cannot leave it half-changed.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, op: &'static str, e: &crate::Error) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(CACHE_ERRORS, "op" => op).increment(1);
        tracing::debug!(cache = self.name, op, error = %e, "cache error; answered from the source");
    }
}

/// Removes its key's flight when the load ends, however it ends (a panicking loader included,
/// so a key can never be stuck behind a dead flight).
struct FlightGuard {
    inner: Arc<Inner>,
    key: String,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.inner.flights().remove(&self.key);
    }
}

/// Cache-aside reads with single flight and jittered TTLs (see the module documentation).
/// Cheap to clone; clones share the flights and counters.
#[derive(Clone)]
pub struct CacheAside {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CacheAside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheAside")
            .field("name", &self.inner.name)
            .field("cache", &self.inner.cache.kind())
            .field("ttl", &self.inner.ttl)
            .field("jitter", &self.inner.jitter)
            .finish_non_exhaustive()
    }
}

impl CacheAside {
    /// Values live `ttl` ± 10 % (at least 1 ms); `name` labels the metrics.
    pub fn new(cache: Arc<dyn Cache>, name: &'static str, ttl: Duration) -> Self {
        Self::with_jitter(cache, name, ttl, DEFAULT_JITTER)
    }

    /// As [`CacheAside::new`] with TTLs spread over `ttl × (1 ± jitter)` (`jitter` in `[0, 0.5]`).
    pub fn with_jitter(
        cache: Arc<dyn Cache>,
        name: &'static str,
        ttl: Duration,
        jitter: f64,
    ) -> Self {
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 0.5)
        } else {
            0.0
        };
        CacheAside {
            inner: Arc::new(Inner {
                cache,
                name,
                ttl: ttl.max(Duration::from_millis(1)),
                jitter,
                flights: Mutex::default(),
                counters: Counters::default(),
            }),
        }
    }

    /// The cache underneath (for writers, which `SET` and `DEL` it directly).
    pub fn cache(&self) -> &Arc<dyn Cache> {
        &self.inner.cache
    }

    /// A TTL drawn uniformly from `ttl × [1 - jitter, 1 + jitter]`.
    pub fn jittered_ttl(&self) -> Duration {
        jittered(
            self.inner.ttl,
            self.inner.jitter,
            rand::rng().random::<f64>(),
        )
    }

    /// What this instance has done so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// Keys whose load is in progress now.
    pub fn in_flight(&self) -> usize {
        self.inner.flights().len()
    }

    /// The cached value of `key`, or the single flight's load of it (see the module docs).
    /// Errs only with the loader's error.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        loader: F,
    ) -> Result<Fetched<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>> + Send + 'static,
    {
        match self.inner.cache.get(key).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => {
                    self.count_hit();
                    return Ok(Fetched {
                        value: Some(value),
                        origin: Origin::Cache,
                    });
                }
                Err(e) => tracing::warn!(cache = self.inner.name, key, error = %e,
                    "unreadable cached value; reloading"),
            },
            Ok(None) => {}
            Err(e) => self.inner.error("get", &e),
        }
        self.load(key, loader).await
    }

    /// The single flight's load of `key` without looking at the cache first: for callers that
    /// already know it is a miss (e.g. after one `MGET` for many keys). Counts as a miss.
    pub async fn load<T, E, F, Fut>(&self, key: &str, loader: F) -> Result<Fetched<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>> + Send + 'static,
    {
        self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(CACHE_REQUESTS, "cache" => self.inner.name, "result" => "miss")
            .increment(1);
        let (flight, origin) = match self.join_or_start(key, loader) {
            Ok(joined) => joined,
            Err(loader) => {
                // The key is in flight as another type: a caller bug; load without coalescing
                // rather than fail.
                tracing::warn!(
                    cache = self.inner.name,
                    key,
                    "key read as two types; not coalesced"
                );
                return self.run_alone(key, loader).await;
            }
        };
        if origin == Origin::Coalesced {
            self.inner
                .counters
                .coalesced
                .fetch_add(1, Ordering::Relaxed);
            metrics::counter!(CACHE_COALESCED, "cache" => self.inner.name).increment(1);
        }
        flight.await.map(|value| Fetched { value, origin })
    }

    /// Join `key`'s flight, or start it with `loader` (which is handed back, not run, when the
    /// key is in flight as another type). No await inside: the map lock is never held across one.
    #[allow(clippy::type_complexity)]
    fn join_or_start<T, E, F, Fut>(&self, key: &str, loader: F) -> Result<(Flight<T, E>, Origin), F>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>> + Send + 'static,
    {
        let mut flights = self.inner.flights();
        if let Some(existing) = flights.get(key) {
            return match existing.downcast_ref::<Flight<T, E>>() {
                Some(flight) => Ok((flight.clone(), Origin::Coalesced)),
                None => Err(loader),
            };
        }
        let flight = self.flight(key, loader());
        flights.insert(key.to_string(), Box::new(flight.clone()));
        // Driven by its own task: if every caller goes away (requests cancelled) the load still
        // finishes and leaves the map, instead of lying paused in it and handing a stale answer
        // to whoever asks next.
        tokio::spawn(flight.clone().map(drop));
        Ok((flight, Origin::Loaded))
    }

    fn count_hit(&self) {
        self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(CACHE_REQUESTS, "cache" => self.inner.name, "result" => "hit")
            .increment(1);
    }

    /// The shared load of `key`: run the source read, fill the cache, forget the flight.
    fn flight<T, E, Fut>(&self, key: &str, source: Fut) -> Flight<T, E>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        Fut: Future<Output = Result<Option<T>, E>> + Send + 'static,
    {
        let this = self.clone();
        let guard = FlightGuard {
            inner: self.inner.clone(),
            key: key.to_string(),
        };
        async move {
            let guard = guard;
            this.load_and_fill(&guard.key, source).await
        }
        .boxed()
        .shared()
    }

    async fn run_alone<T, E, F, Fut>(&self, key: &str, loader: F) -> Result<Fetched<T>, Arc<E>>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let value = self.load_and_fill(key, loader()).await?;
        Ok(Fetched {
            value,
            origin: Origin::Loaded,
        })
    }

    async fn load_and_fill<T, E>(
        &self,
        key: &str,
        source: impl Future<Output = Result<Option<T>, E>>,
    ) -> Result<Option<T>, Arc<E>>
    where
        T: Serialize,
    {
        self.inner.counters.loads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(CACHE_LOADS, "cache" => self.inner.name).increment(1);
        let value = source.await.map_err(Arc::new)?;
        if let Some(v) = &value {
            match serde_json::to_vec(v) {
                Ok(bytes) => {
                    let ttl = self.jittered_ttl();
                    if let Err(e) = self.inner.cache.set_nx(key, &bytes, Some(ttl)).await {
                        self.inner.error("set_nx", &e);
                    }
                }
                Err(e) => {
                    tracing::warn!(cache = self.inner.name, key, error = %e, "value not cacheable")
                }
            }
        }
        Ok(value)
    }
}

/// `ttl × (1 + jitter × (2·draw − 1))` for a draw in `[0, 1]`: uniform over `ttl × [1 − jitter,
/// 1 + jitter]`; at least 1 ms (the caches' resolution).
pub fn jittered(ttl: Duration, jitter: f64, draw: f64) -> Duration {
    let factor = 1.0 + jitter * (2.0 * draw.clamp(0.0, 1.0) - 1.0);
    ttl.mul_f64(factor.max(0.0)).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jitter band is `ttl × [1 − j, 1 + j]`, its ends reached by the extreme draws.
    #[test]
    fn jitter_band() {
        let ttl = Duration::from_secs(100);
        assert_eq!(jittered(ttl, 0.1, 0.0), Duration::from_secs(90));
        assert_eq!(jittered(ttl, 0.1, 1.0), Duration::from_secs(110));
        assert_eq!(jittered(ttl, 0.1, 0.5), ttl);
        assert_eq!(jittered(ttl, 0.0, 0.9), ttl);
        assert_eq!(jittered(ttl, 0.1, 7.0), Duration::from_secs(110));
        assert_eq!(
            jittered(Duration::from_micros(1), 0.1, 0.0),
            Duration::from_millis(1)
        );
    }
}
