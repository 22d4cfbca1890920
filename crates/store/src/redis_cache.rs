//! [`RedisCache`]: the [`Cache`] port on Redis.
//!
//! - Transport: `redis::aio::ConnectionManager`, one multiplexed connection shared by all
//!   callers that re-establishes itself after an I/O error (each command after a failed
//!   reconnect starts a new attempt), so a Redis restart heals without our help.
//! - Bounded time: every command runs under `command_timeout` (and the connection's own
//!   response timeout), so a dead or frozen Redis yields `Error::Unavailable` within that bound
//!   instead of a hung request. `connect` is bounded by `connect_timeout` and proves the server
//!   answers (PING), so startup can fall back to `MemoryCache` at once.
//! - Every Redis failure maps to `Error::Unavailable`: the cache is lossy by contract and the
//!   caller's only sensible reaction to any of them is to degrade (skip the cache).
//! - Keys: `key_prefix` is prepended verbatim to every key (include your own separator, e.g.
//!   `"nav:"`), so services and tests can share one Redis without collisions.
//! - Bulk: `set_many` is a pipeline of `SET key value PX ttl` (MSET cannot carry TTLs);
//!   `get_many` is one `MGET` (a single round trip, like a pipeline, with less server work).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Value};

use crate::memory_cache::ttl_millis;
use crate::{Cache, Error, Result};

/// Timeouts for [`RedisCache`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Bound on `connect` (TCP connect, handshake and the first PING together).
    pub connect_timeout: Duration,
    /// Bound on every command or pipeline.
    pub command_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(500),
        }
    }
}

/// [`Cache`] on Redis. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct RedisCache {
    manager: ConnectionManager,
    prefix: String,
    command_timeout: Duration,
}

impl std::fmt::Debug for RedisCache {
    // Not derived: the connection info may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connect with the default timeouts (1 s connect, 500 ms per command).
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self> {
        Self::connect_with(url, key_prefix, RedisConfig::default()).await
    }

    /// Connect and PING. `Invalid` for a malformed URL, `Unavailable` when the server does not
    /// answer within `connect_timeout`.
    pub async fn connect_with(url: &str, key_prefix: &str, config: RedisConfig) -> Result<Self> {
        // The URL is left out of messages: it may carry a password.
        let client =
            redis::Client::open(url).map_err(|e| Error::Invalid(format!("redis url: {e}")))?;
        // Few, short retries: the manager's default (6 retries, exponential from 100 ms) would
        // keep a caller of a dead Redis waiting for seconds; here a failed reconnect just fails
        // the current command and the next command tries again.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let connecting = async {
            let manager = ConnectionManager::new_with_config(client, manager_config)
                .await
                .map_err(|e| Error::Unavailable(format!("redis connect: {e}")))?;
            let cache = RedisCache {
                manager,
                prefix: key_prefix.to_string(),
                command_timeout: config.command_timeout,
            };
            // A server that accepts TCP but never answers must fail here, not on first use.
            cache.ping().await?;
            Ok(cache)
        };
        tokio::time::timeout(config.connect_timeout, connecting)
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "redis did not answer within {:?}",
                    config.connect_timeout
                ))
            })?
    }

    /// The full Redis key for a cache key.
    pub fn prefixed(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The shared connection, for commands the port does not cover (e.g. Lua scripts for rate
    /// limits). Callers must apply [`RedisCache::prefixed`] and their own timeout.
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    async fn run<T>(&self, what: &str, command: impl Future<Output = RedisResult<T>>) -> Result<T> {
        match tokio::time::timeout(self.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::Unavailable(format!("redis {what}: {e}"))),
            Err(_) => Err(Error::Unavailable(format!(
                "redis {what}: no answer within {:?}",
                self.command_timeout
            ))),
        }
    }

    fn set_command(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> redis::Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.prefixed(key)).arg(value);
        if let Some(ms) = ttl_ms {
            cmd.arg("PX").arg(ms);
        }
        cmd
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.manager.clone();
        let key = self.prefixed(key);
        self.run("GET", async move {
            redis::cmd("GET").arg(key).query_async(&mut conn).await
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let cmd = self.set_command(key, value, ttl_millis(ttl)?);
        let mut conn = self.manager.clone();
        self.run("SET", async move { cmd.exec_async(&mut conn).await })
            .await
    }

    async fn set_nx(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let mut cmd = self.set_command(key, value, ttl_millis(ttl)?);
        cmd.arg("NX");
        let mut conn = self.manager.clone();
        // SET .. NX answers OK when it set the key and nil when the key already existed.
        let reply: Value = self
            .run("SET NX", async move { cmd.query_async(&mut conn).await })
            .await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn set_many(&self, entries: &[(String, Vec<u8>)], ttl: Option<Duration>) -> Result<()> {
        let ttl_ms = ttl_millis(ttl)?;
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, value) in entries {
            pipe.add_command(self.set_command(key, value, ttl_ms))
                .ignore();
        }
        let mut conn = self.manager.clone();
        self.run(
            "pipelined SET",
            async move { pipe.exec_async(&mut conn).await },
        )
        .await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            // MGET with no keys is a Redis syntax error.
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.prefixed(key));
        }
        let mut conn = self.manager.clone();
        self.run("MGET", async move { cmd.query_async(&mut conn).await })
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut conn = self.manager.clone();
        let key = self.prefixed(key);
        self.run("DEL", async move {
            redis::cmd("DEL").arg(key).exec_async(&mut conn).await
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.manager.clone();
        let pong: String = self
            .run("PING", async move {
                redis::cmd("PING").query_async(&mut conn).await
            })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::Unavailable(format!("redis PING answered {pong:?}")))
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
