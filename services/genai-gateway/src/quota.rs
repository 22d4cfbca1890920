//! Cost control: token budgets and request quotas per tenant and per role, daily and monthly,
//! enforced atomically in Redis by one Lua script; the in-process fallback when Redis is down.
//!
//! Windows are IST calendar days and months. Four counters are checked and charged together
//! (tenant/day, tenant/month, role-in-tenant/day, role-in-tenant/month), each a Redis hash with
//! `tokens` and `requests` and a TTL a little past its window. The script charges all four only
//! when none would exceed its limit (0 = unlimited), so concurrent requests can never overshoot
//! a budget. After the call the difference between the estimate charged and the tokens really
//! used is added back (`HINCRBY`, may be negative).
//!
//! A request's charge is `tokens × tier` (Q&A, anomaly explanations and support drafts 1×,
//! document summaries 3×): documents cost more because they are long and expensive to read.
//!
//! Redis down (a command fails or times out): the same limits are enforced by an in-process
//! counter per instance, so with N instances a tenant may use up to N× its budget while Redis
//! is down; requests are never refused because Redis is down, and never fail with a 5xx.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nivesh_events::IST;
use nivesh_store::RedisCache;
use serde::Deserialize;

/// Limits of one subject (a tenant, or a role within a tenant). 0 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub tokens_per_day: u64,
    pub tokens_per_month: u64,
    pub requests_per_day: u64,
    pub requests_per_month: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tokens_per_day: 2_000_000,
            tokens_per_month: 40_000_000,
            requests_per_day: 20_000,
            requests_per_month: 400_000,
        }
    }
}

/// `[service.quotas]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QuotaSettings {
    /// Every tenant's limits.
    pub tenant: Limits,
    /// Per role within a tenant (`investor`, `distributor`, `ops`, `compliance`, `admin`); a
    /// role not listed uses `default_role`.
    pub roles: HashMap<String, Limits>,
    pub default_role: Limits,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            tenant: Limits::default(),
            roles: HashMap::from([(
                "investor".to_string(),
                Limits {
                    tokens_per_day: 1_000_000,
                    tokens_per_month: 20_000_000,
                    requests_per_day: 10_000,
                    requests_per_month: 200_000,
                },
            )]),
            default_role: Limits {
                tokens_per_day: 500_000,
                tokens_per_month: 10_000_000,
                requests_per_day: 5_000,
                requests_per_month: 100_000,
            },
        }
    }
}

/// One counter checked by the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Redis key (without the cache prefix).
    pub key: String,
    /// `tenant/day`, `role:investor/month`, ...
    pub name: String,
    pub token_limit: u64,
    pub request_limit: u64,
    pub ttl: Duration,
}

/// The four windows a request of `role` in `tenant` is charged to at `now`.
pub fn windows(
    settings: &QuotaSettings,
    tenant: &str,
    role: &str,
    now: DateTime<Utc>,
) -> Vec<Window> {
    let local = now.with_timezone(&IST);
    let day = local.format("%Y%m%d").to_string();
    let month = local.format("%Y%m").to_string();
    let role_limits = settings
        .roles
        .get(role)
        .copied()
        .unwrap_or(settings.default_role);
    let t = settings.tenant;
    let day_ttl = Duration::from_secs(2 * 86_400);
    let month_ttl = Duration::from_secs(32 * 86_400);
    vec![
        Window {
            key: format!("genai:quota:{tenant}:tenant:d:{day}"),
            name: "tenant/day".into(),
            token_limit: t.tokens_per_day,
            request_limit: t.requests_per_day,
            ttl: day_ttl,
        },
        Window {
            key: format!("genai:quota:{tenant}:tenant:m:{month}"),
            name: "tenant/month".into(),
            token_limit: t.tokens_per_month,
            request_limit: t.requests_per_month,
            ttl: month_ttl,
        },
        Window {
            key: format!("genai:quota:{tenant}:role:{role}:d:{day}"),
            name: format!("role:{role}/day"),
            token_limit: role_limits.tokens_per_day,
            request_limit: role_limits.requests_per_day,
            ttl: day_ttl,
        },
        Window {
            key: format!("genai:quota:{tenant}:role:{role}:m:{month}"),
            name: format!("role:{role}/month"),
            token_limit: role_limits.tokens_per_month,
            request_limit: role_limits.requests_per_month,
            ttl: month_ttl,
        },
    ]
}

/// Check every window and charge all of them, or none. Returns 0 when charged, else the
/// 1-based index of the first window that would be exceeded.
pub const CHARGE_SCRIPT: &str = r#"
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 3
  local token_limit = tonumber(ARGV[base + 1])
  local request_limit = tonumber(ARGV[base + 2])
  local tokens = tonumber(redis.call('HGET', KEYS[i], 'tokens') or '0')
  local requests = tonumber(redis.call('HGET', KEYS[i], 'requests') or '0')
  if (token_limit > 0 and tokens + cost > token_limit) or (request_limit > 0 and requests + 1 > request_limit) then
    return i
  end
end
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 3
  redis.call('HINCRBY', KEYS[i], 'tokens', cost)
  redis.call('HINCRBY', KEYS[i], 'requests', 1)
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[base + 3]))
end
return 0
"#;

/// The outcome of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    Granted {
        /// Where the counters live: `redis` or `in-process` (degraded).
        backend: &'static str,
    },
    Exhausted {
        window: Window,
        backend: &'static str,
    },
}

/// The quota enforcer: Redis when it answers, else in-process counters.
#[derive(Clone)]
pub struct Quotas {
    redis: Option<RedisCache>,
    timeout: Duration,
    local: Arc<Mutex<HashMap<String, (u64, u64)>>>,
    script: Arc<redis::Script>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Quotas {
    pub fn new(redis: Option<RedisCache>, timeout: Duration) -> Self {
        Quotas {
            redis,
            timeout,
            local: Arc::default(),
            script: Arc::new(redis::Script::new(CHARGE_SCRIPT)),
        }
    }

    /// Charge `cost` tokens and one request to every window, atomically.
    pub async fn charge(&self, windows: &[Window], cost: u64) -> Charge {
        if let Some(redis) = &self.redis {
            match self.charge_redis(redis, windows, cost).await {
                Ok(0) => return Charge::Granted { backend: "redis" },
                Ok(i) => {
                    let idx = usize::try_from(i - 1).unwrap_or(0).min(windows.len() - 1);
                    return Charge::Exhausted {
                        window: windows[idx].clone(),
                        backend: "redis",
                    };
                }
                Err(e) => {
                    metrics::counter!("nivesh_genai_degraded_total", "what" => "quota")
                        .increment(1);
                    tracing::warn!(error = %e, "Redis unavailable for quotas: enforcing in-process (per instance)");
                }
            }
        }
        self.charge_local(windows, cost)
    }

    async fn charge_redis(
        &self,
        redis: &RedisCache,
        windows: &[Window],
        cost: u64,
    ) -> Result<i64, String> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(cost);
        for w in windows {
            invocation
                .key(redis.prefixed(&w.key))
                .arg(w.token_limit)
                .arg(w.request_limit)
                .arg(w.ttl.as_secs());
        }
        let mut conn = redis.connection();
        match tokio::time::timeout(self.timeout, invocation.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("quota script: {e}")),
            Err(_) => Err(format!("quota script: no answer within {:?}", self.timeout)),
        }
    }

    fn charge_local(&self, windows: &[Window], cost: u64) -> Charge {
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        for w in windows {
            let (tokens, requests) = local.get(&w.key).copied().unwrap_or((0, 0));
            if (w.token_limit > 0 && tokens + cost > w.token_limit)
                || (w.request_limit > 0 && requests + 1 > w.request_limit)
            {
                return Charge::Exhausted {
                    window: w.clone(),
                    backend: "in-process",
                };
            }
        }
        for w in windows {
            let entry = local.entry(w.key.clone()).or_insert((0, 0));
            entry.0 += cost;
            entry.1 += 1;
        }
        Charge::Granted {
            backend: "in-process",
        }
    }

    /// Correct a charge by `delta` tokens (actual − estimate), best effort.
    pub async fn adjust(&self, windows: &[Window], delta: i64, backend: &'static str) {
        if delta == 0 {
            return;
        }
        if backend == "redis"
            && let Some(redis) = &self.redis
        {
            let mut pipe = redis::pipe();
            for w in windows {
                pipe.cmd("HINCRBY")
                    .arg(redis.prefixed(&w.key))
                    .arg("tokens")
                    .arg(delta)
                    .ignore();
            }
            let mut conn = redis.connection();
            match tokio::time::timeout(self.timeout, pipe.exec_async(&mut conn)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "quota adjustment failed"),
                Err(_) => tracing::warn!("quota adjustment timed out"),
            }
            return;
        }
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        for w in windows {
            let entry = local.entry(w.key.clone()).or_insert((0, 0));
            entry.0 = entry.0.saturating_add_signed(delta);
        }
    }

    /// True the first time it is called for `key` within `ttl` (alert dedupe): Redis `SET NX`,
    /// or an in-process set when Redis is down.
    pub async fn first_time(&self, key: &str, ttl: Duration) -> bool {
        if let Some(redis) = &self.redis {
            use nivesh_store::Cache as _;
            match redis.set_nx(key, b"1", Some(ttl)).await {
                Ok(first) => return first,
                Err(e) => tracing::warn!(error = %e, "Redis unavailable for alert dedupe"),
            }
        }
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let k = format!("once:{key}");
        match local.entry(k) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((0, 0));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(limit_tokens: u64, limit_requests: u64) -> Vec<Window> {
        vec![Window {
            key: "k".into(),
            name: "tenant/day".into(),
            token_limit: limit_tokens,
            request_limit: limit_requests,
            ttl: Duration::from_secs(60),
        }]
    }

    #[tokio::test]
    async fn in_process_fallback_enforces_the_same_limits() {
        let q = Quotas::new(None, Duration::from_millis(100));
        let windows = w(100, 3);
        assert!(matches!(
            q.charge(&windows, 60).await,
            Charge::Granted {
                backend: "in-process"
            }
        ));
        assert!(matches!(
            q.charge(&windows, 60).await,
            Charge::Exhausted { .. }
        ));
        q.adjust(&windows, -30, "in-process").await;
        assert!(matches!(
            q.charge(&windows, 60).await,
            Charge::Granted { .. }
        ));
        assert!(
            matches!(q.charge(&w(0, 2), 1).await, Charge::Exhausted { .. }),
            "2 requests used"
        );
    }

    #[test]
    fn windows_are_ist_days_and_months() {
        // 2025-02-28 20:00 UTC is already 1 March in IST.
        let now: DateTime<Utc> = "2025-02-28T20:00:00Z".parse().unwrap();
        let ws = windows(&QuotaSettings::default(), "nivesh", "investor", now);
        assert_eq!(ws[0].key, "genai:quota:nivesh:tenant:d:20250301");
        assert_eq!(ws[3].key, "genai:quota:nivesh:role:investor:m:202503");
        assert_eq!(ws[2].token_limit, 1_000_000);
    }
}
