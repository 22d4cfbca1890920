//! [`MemoryCache`]: the [`Cache`] port in process, used when Redis is absent.
//!
//! Sharded `HashMap`s behind std mutexes: every operation is a few hash lookups, so a lock is
//! held for nanoseconds and never across an `.await` (rejected: `tokio::sync::Mutex`, which
//! costs more and buys nothing here; rejected: one global map, which serialises all callers).
//! Expiry is checked on every read; expired entries are also swept from a shard every
//! [`SWEEP_EVERY`] writes to it, so keys that are never read again do not pile up.
//!
//! Lossy by contract like Redis: the contents vanish with the process.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Cache, Error, Result};

const SHARDS: usize = 16;
/// Writes to a shard between two sweeps of its expired entries.
const SWEEP_EVERY: u32 = 1024;

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, Entry>,
    writes_since_sweep: u32,
}

impl Shard {
    fn insert(&mut self, key: &str, value: &[u8], expires: Option<Instant>, now: Instant) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= SWEEP_EVERY {
            self.writes_since_sweep = 0;
            self.map.retain(|_, e| e.live(now));
        }
        self.map.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                expires,
            },
        );
    }

    fn get(&self, key: &str, now: Instant) -> Option<Vec<u8>> {
        self.map
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }
}

/// In-process [`Cache`]. Cheap to share behind an `Arc`.
pub struct MemoryCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        MemoryCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Entries held, including expired ones not yet swept (for diagnostics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // The modulo of a 64-bit hash by 16 fits any usize.
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        lock(&self.shards[index])
    }
}

/// A panic while holding a shard lock cannot leave a half-written entry (inserts are single
/// HashMap calls), so a poisoned shard is still consistent and is used as is.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cache TTLs shared by every `Cache` backend: `None` keeps forever; zero is rejected (Redis
/// refuses `PX 0`, and "store then immediately forget" is always a caller bug); below one
/// millisecond rounds up to one (Redis' resolution). Returns whole milliseconds.
pub(crate) fn ttl_millis(ttl: Option<Duration>) -> Result<Option<u64>> {
    match ttl {
        None => Ok(None),
        Some(ttl) if ttl.is_zero() => Err(Error::Invalid("cache TTL must be positive".into())),
        Some(ttl) => Ok(Some(
            u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
        )),
    }
}

fn expiry(ttl: Option<Duration>, now: Instant) -> Result<Option<Instant>> {
    // Validate through the shared rule, then keep the exact Duration for the Instant arithmetic;
    // a TTL too large for Instant means "never expires" in practice.
    ttl_millis(ttl)?;
    Ok(ttl.and_then(|ttl| now.checked_add(ttl)))
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.shard(key).get(key, Instant::now()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let now = Instant::now();
        let expires = expiry(ttl, now)?;
        self.shard(key).insert(key, value, expires, now);
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let now = Instant::now();
        let expires = expiry(ttl, now)?;
        // Check and insert under one lock: that is the whole point of set-if-absent.
        let mut shard = self.shard(key);
        if shard.get(key, now).is_some() {
            return Ok(false);
        }
        shard.insert(key, value, expires, now);
        Ok(true)
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)], ttl: Option<Duration>) -> Result<()> {
        let now = Instant::now();
        let expires = expiry(ttl, now)?;
        for (key, value) in entries {
            self.shard(key).insert(key, value, expires, now);
        }
        Ok(())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let now = Instant::now();
        Ok(keys
            .iter()
            .map(|key| self.shard(key).get(key, now))
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.shard(key).map.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "in-memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expired entries that are never read again are swept once a shard has seen enough writes.
    #[tokio::test]
    async fn expired_entries_are_swept_by_later_writes() {
        let cache = MemoryCache::new();
        cache
            .set("short-lived", b"v", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        // Enough writes that every shard (including the one holding the key) sweeps at least once.
        for i in 0..(SWEEP_EVERY as usize * SHARDS * 2) {
            cache.set(&format!("k{i}"), b"v", None).await.unwrap();
            cache.delete(&format!("k{i}")).await.unwrap();
        }
        assert!(
            cache.is_empty(),
            "expired entry should have been swept, {} left",
            cache.len()
        );
    }

    /// TTL validation: zero is rejected, sub-millisecond rounds up to one millisecond.
    #[test]
    fn ttl_rules() {
        assert!(matches!(
            ttl_millis(Some(Duration::ZERO)),
            Err(Error::Invalid(_))
        ));
        assert_eq!(
            ttl_millis(Some(Duration::from_micros(10))).unwrap(),
            Some(1)
        );
        assert_eq!(
            ttl_millis(Some(Duration::from_millis(1500))).unwrap(),
            Some(1500)
        );
        assert_eq!(ttl_millis(None).unwrap(), None);
    }
}
