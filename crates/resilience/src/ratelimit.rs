//! Distributed rate limiting: token buckets in Redis, checked and charged by ONE Lua script, so
//! every replica of a service shares the same buckets and a request is charged against all its
//! buckets (tenant, investor) atomically or against none.
//!
//! - A bucket holds up to `burst` tokens and refills at `per_second`; a request costs one token
//!   from every bucket it is checked against, and is refused (429) when any bucket has less.
//!   The script uses Redis' own clock (`TIME`), so replica clocks do not matter, and gives every
//!   bucket a TTL of the time it takes to refill (idle buckets vanish).
//! - [`Decision`] carries what the HTTP answer reports: `X-RateLimit-Limit` (the burst of the
//!   most constrained bucket), `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until that
//!   bucket is full again) and, when refused, `Retry-After` (seconds until one token is back).
//! - Redis away (not configured, not reachable, too slow): the limiter FAILS OPEN: the request
//!   is allowed, `nivesh_ratelimit_fail_open_total` is incremented (the alarm: a limiter that
//!   does not limit must page someone, not silently pass) and no headers are sent. Rate limiting
//!   protects capacity; refusing every request because the limiter's store is down would turn a
//!   cache outage into a full outage.
//! - Connection management: one multiplexed connection (`ConnectionManager`, which reconnects
//!   by itself after an I/O error), opened lazily; while Redis cannot be reached a new connect is
//!   tried at most once per `reconnect_every`, and requests in between fail open at once instead
//!   of waiting for a connect timeout. Every script call is bounded by `timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Counter: requests allowed because the limiter could not reach Redis (the alarm metric).
pub const FAIL_OPEN_TOTAL: &str = "nivesh_ratelimit_fail_open_total";
/// Counter: requests refused; label `scope` (the first key segment: tenant, investor, client).
pub const REJECTED_TOTAL: &str = "nivesh_ratelimit_rejected_total";

pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// KEYS: the buckets. ARGV[1]: cost; then per bucket: burst, tokens per second.
/// Returns {allowed, limit, remaining, retry_after_ms, reset_ms} for the most constrained bucket.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local need = math.max(cost, 1)
local allowed = 1
local retry_ms = 0
local tokens = {}
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local h = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tk = tonumber(h[1])
  local ts = tonumber(h[2])
  if tk == nil or ts == nil then
    tk = cap
    ts = now
  end
  tk = math.min(cap, tk + math.max(0, now - ts) * rate / 1000)
  tokens[i] = tk
  if tk < need then
    allowed = 0
    local wait = math.ceil((need - tk) * 1000 / rate)
    if wait > retry_ms then retry_ms = wait end
  end
end
local best_rem = nil
local best_cap = 0
local best_reset = 0
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local tk = tokens[i]
  if allowed == 1 then tk = tk - cost end
  redis.call('HSET', KEYS[i], 't', tostring(tk), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap * 1000 / rate) + 1000)
  local rem = math.max(0, math.floor(tk))
  if best_rem == nil or rem < best_rem then
    best_rem = rem
    best_cap = cap
    best_reset = math.ceil((cap - tk) * 1000 / rate)
  end
end
return {allowed, best_cap, best_rem, retry_ms, best_reset}
"#;

/// One bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Quota {
    /// Tokens when full: the largest burst.
    pub burst: u32,
    /// Tokens added per second: the sustained rate.
    pub per_second: f64,
}

impl Quota {
    fn valid(&self) -> bool {
        self.burst > 0 && self.per_second > 0.0 && self.per_second.is_finite()
    }
}

/// A bucket a request is charged against: `key` (e.g. `tenant:nivesh`) and its quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub key: String,
    pub quota: Quota,
}

impl Bucket {
    pub fn new(key: impl Into<String>, quota: Quota) -> Self {
        Bucket {
            key: key.into(),
            quota,
        }
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The limiter could not ask Redis: allowed without counting (fail open).
    pub degraded: bool,
    /// Burst of the most constrained bucket.
    pub limit: u64,
    /// Tokens left in it (after this request).
    pub remaining: u64,
    /// Until that bucket is full again.
    pub reset_after: Duration,
    /// When refused: until one token is back.
    pub retry_after: Option<Duration>,
}

impl Decision {
    fn open() -> Self {
        Decision {
            allowed: true,
            degraded: true,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: None,
        }
    }

    /// `X-RateLimit-*` (and `Retry-After` when refused); nothing when degraded.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        // Degraded: no numbers to report. Limit 0: no bucket applied (every quota off), so
        // there is no limit to advertise.
        if self.degraded || self.limit == 0 {
            return Vec::new();
        }
        let secs = |d: Duration| HeaderValue::from(d.as_millis().div_ceil(1000) as u64);
        let mut h = vec![
            (X_RATELIMIT_LIMIT.clone(), HeaderValue::from(self.limit)),
            (
                X_RATELIMIT_REMAINING.clone(),
                HeaderValue::from(self.remaining),
            ),
            (X_RATELIMIT_RESET.clone(), secs(self.reset_after)),
        ];
        if let Some(r) = self.retry_after {
            let at_least_one = r.max(Duration::from_secs(1));
            h.push((http::header::RETRY_AFTER, secs(at_least_one)));
        }
        h
    }
}

/// Settings of a [`RateLimiter`]'s connection.
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Bound on each check (connect included); past it the check fails open.
    pub timeout: Duration,
    /// While Redis is unreachable, how often a new connection is attempted.
    pub reconnect_every: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            timeout: Duration::from_millis(100),
            reconnect_every: Duration::from_secs(1),
        }
    }
}

struct Conn {
    next_attempt: Instant,
}

struct Shared {
    client: Option<redis::Client>,
    prefix: String,
    config: LimiterConfig,
    /// The connection once made (read without waiting).
    manager: std::sync::Mutex<Option<ConnectionManager>>,
    /// Held while connecting, so one task connects and the others wait (within their bound).
    conn: Mutex<Conn>,
    script: redis::Script,
    degraded: AtomicBool,
}

/// The distributed limiter. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RateLimiter {
    // Not derived: the client holds the URL, which may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("prefix", &self.shared.prefix)
            .field("configured", &self.shared.client.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter on the Redis at `url` (`None` or an unparsable URL: always fails open, with the
    /// alarm metric), keys prefixed with `key_prefix` + `rl:`. Does not connect yet.
    pub fn new(url: Option<&str>, key_prefix: &str, config: LimiterConfig) -> Self {
        let client = url.and_then(|u| match redis::Client::open(u) {
            Ok(c) => Some(c),
            Err(e) => {
                // The URL is left out: it may carry a password.
                tracing::error!(error = %e, "rate limiter: invalid redis url; limits fail open");
                None
            }
        });
        RateLimiter {
            shared: Arc::new(Shared {
                client,
                prefix: format!("{key_prefix}rl:"),
                config,
                manager: std::sync::Mutex::new(None),
                conn: Mutex::new(Conn {
                    next_attempt: Instant::now(),
                }),
                script: redis::Script::new(SCRIPT),
                degraded: AtomicBool::new(false),
            }),
        }
    }

    /// The Redis key of a bucket.
    pub fn redis_key(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.shared.prefix)
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.shared
            .manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let s = &self.shared;
        let client = s.client.as_ref()?;
        if let Some(m) = self.current() {
            return Some(m);
        }
        // One task connects; the others wait for it (bounded by the caller's timeout).
        let mut conn = s.conn.lock().await;
        if let Some(m) = self.current() {
            return Some(m);
        }
        if Instant::now() < conn.next_attempt {
            return None;
        }
        conn.next_attempt = Instant::now() + s.config.reconnect_every;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(s.config.timeout))
            .set_response_timeout(Some(s.config.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let connecting = ConnectionManager::new_with_config(client.clone(), manager_config);
        match tokio::time::timeout(s.config.timeout, connecting).await {
            Ok(Ok(m)) => {
                *s.manager
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(m.clone());
                Some(m)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "rate limiter: redis connect failed");
                None
            }
            Err(_) => None,
        }
    }

    fn fail_open(&self, why: &str) -> Decision {
        metrics::counter!(FAIL_OPEN_TOTAL).increment(1);
        if !self.shared.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                reason = why,
                "rate limiter cannot reach Redis: failing OPEN (requests are not limited)"
            );
        }
        Decision::open()
    }

    /// Check and charge `cost` (0: only check) against every bucket. Never fails: Redis
    /// trouble is a degraded (allowing) decision.
    pub async fn check(&self, buckets: &[Bucket], cost: u32) -> Decision {
        let buckets: Vec<&Bucket> = buckets.iter().filter(|b| b.quota.valid()).collect();
        if buckets.is_empty() {
            return Decision {
                allowed: true,
                degraded: false,
                limit: 0,
                remaining: 0,
                reset_after: Duration::ZERO,
                retry_after: None,
            };
        }
        let deadline = Instant::now() + self.shared.config.timeout;
        let Some(mut conn) = tokio::time::timeout_at(deadline, self.connection())
            .await
            .ok()
            .flatten()
        else {
            return self.fail_open("no connection");
        };
        let mut invocation = self.shared.script.prepare_invoke();
        invocation.arg(cost);
        for b in &buckets {
            invocation
                .key(self.redis_key(&b.key))
                .arg(b.quota.burst)
                .arg(b.quota.per_second.to_string());
        }
        let reply: Result<Result<Vec<i64>, redis::RedisError>, _> =
            tokio::time::timeout_at(deadline, invocation.invoke_async(&mut conn)).await;
        let v = match reply {
            Ok(Ok(v)) if v.len() == 5 => v,
            Ok(Ok(v)) => return self.fail_open(&format!("unexpected script reply {v:?}")),
            Ok(Err(e)) => return self.fail_open(&e.to_string()),
            Err(_) => return self.fail_open("timeout"),
        };
        if self.shared.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("rate limiter reaches Redis again: limits enforced");
        }
        let allowed = v[0] == 1;
        if !allowed {
            let scope = buckets
                .first()
                .and_then(|b| b.key.split(':').next())
                .unwrap_or("unknown")
                .to_string();
            metrics::counter!(REJECTED_TOTAL, "scope" => scope).increment(1);
        }
        let ms = |x: i64| Duration::from_millis(x.max(0) as u64);
        Decision {
            allowed,
            degraded: false,
            limit: v[1].max(0) as u64,
            remaining: v[2].max(0) as u64,
            reset_after: ms(v[4]),
            retry_after: (!allowed).then(|| ms(v[3])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
    }

    fn prefix() -> String {
        format!(
            "nivesh-test-rl-{}-{}:",
            std::process::id(),
            rand::random::<u64>()
        )
    }

    fn header(d: &Decision, name: &HeaderName) -> Option<String> {
        d.headers()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap().to_string())
    }

    /// Against the real Redis: a burst of 5 at 1/s admits 5, refuses the 6th with Retry-After
    /// and the X-RateLimit headers, and the investor bucket limits one investor without
    /// touching another of the same tenant.
    #[tokio::test]
    async fn token_bucket_against_real_redis() {
        let limiter = RateLimiter::new(Some(&redis_url()), &prefix(), LimiterConfig::default());
        let tenant = Bucket::new(
            "tenant:t1",
            Quota {
                burst: 100,
                per_second: 0.5,
            },
        );
        let inv = |id: &str| {
            Bucket::new(
                format!("investor:t1:{id}"),
                Quota {
                    burst: 5,
                    per_second: 1.0,
                },
            )
        };
        for i in 0..5 {
            let d = limiter.check(&[tenant.clone(), inv("a")], 1).await;
            assert!(d.allowed && !d.degraded, "request {i}: {d:?}");
            assert_eq!(d.limit, 5);
            assert_eq!(d.remaining, 4 - i);
        }
        let d = limiter.check(&[tenant.clone(), inv("a")], 1).await;
        assert!(!d.allowed, "{d:?}");
        assert_eq!(header(&d, &X_RATELIMIT_LIMIT).as_deref(), Some("5"));
        assert_eq!(header(&d, &X_RATELIMIT_REMAINING).as_deref(), Some("0"));
        assert_eq!(header(&d, &http::header::RETRY_AFTER).as_deref(), Some("1"));
        let reset: u64 = header(&d, &X_RATELIMIT_RESET).unwrap().parse().unwrap();
        assert!((4..=5).contains(&reset), "{reset}");
        // Another investor of the same tenant is unaffected.
        let other = limiter.check(&[tenant.clone(), inv("b")], 1).await;
        assert!(other.allowed, "{other:?}");
        // A refused request did not charge the tenant bucket: 5 + 1 allowed so far.
        let peek = limiter.check(std::slice::from_ref(&tenant), 0).await;
        assert_eq!(peek.remaining, 94, "{peek:?}");
        // Refill: after ~1 s one token is back.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let d = limiter.check(&[tenant, inv("a")], 1).await;
        assert!(d.allowed, "{d:?}");
    }

    /// Concurrent checks from many tasks never admit more than the burst (the script is atomic).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_are_atomic() {
        let limiter = RateLimiter::new(Some(&redis_url()), &prefix(), LimiterConfig::default());
        let bucket = Bucket::new(
            "tenant:race",
            Quota {
                burst: 20,
                per_second: 0.01,
            },
        );
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let (l, b) = (limiter.clone(), bucket.clone());
                tokio::spawn(async move { l.check(&[b], 1).await })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            let d = t.await.unwrap();
            assert!(!d.degraded, "{d:?}");
            allowed += d.allowed as u32;
        }
        assert_eq!(allowed, 20);
    }

    /// Redis away (a dead port): every check is allowed, degraded, without headers, quickly,
    /// and the alarm counter counts them.
    #[tokio::test]
    async fn fails_open_with_the_alarm_metric_when_redis_is_away() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        // A port nobody listens on: bind, take the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let limiter = RateLimiter::new(
            Some(&format!("redis://127.0.0.1:{port}")),
            &prefix(),
            LimiterConfig::default(),
        );
        let b = Bucket::new(
            "tenant:x",
            Quota {
                burst: 1,
                per_second: 1.0,
            },
        );
        let started = std::time::Instant::now();
        for _ in 0..5 {
            let d = limiter.check(std::slice::from_ref(&b), 1).await;
            assert!(d.allowed && d.degraded, "{d:?}");
            assert!(d.headers().is_empty());
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let text = handle.render();
        assert!(
            text.contains("nivesh_ratelimit_fail_open_total 5"),
            "{text}"
        );
        // Not configured at all: the same.
        let none = RateLimiter::new(None, "x:", LimiterConfig::default());
        assert!(none.check(&[b], 1).await.degraded);
    }
}
