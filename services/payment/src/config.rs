//! `[service]` settings of the payment service (environment: `NIVESH__SERVICE__<KEY>`, nested
//! keys with `__`, e.g. `NIVESH__SERVICE__GATEWAY__BASE_URL`).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::backoff::Backoff;

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    /// Shared HMAC-SHA256 secret of the gateway's webhooks. Required (the service refuses to
    /// start without it); pass it as `NIVESH__SERVICE__WEBHOOK_SECRET`, never in a file.
    #[serde(deserialize_with = "optional_secret")]
    pub webhook_secret: Option<SecretString>,
    /// How far a webhook's `X-Nivesh-Timestamp` may be from the wall clock (seconds).
    pub webhook_tolerance_secs: u64,
    pub reconcile: ReconcileConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gateway: GatewayConfig::default(),
            webhook_secret: None,
            webhook_tolerance_secs: 300,
            reconcile: ReconcileConfig::default(),
        }
    }
}

impl Config {
    /// The webhook secret, or a configuration error naming the variable to set.
    pub fn secret(&self) -> Result<SecretString, String> {
        match &self.webhook_secret {
            Some(s) if !s.expose_secret().is_empty() => Ok(s.clone()),
            _ => Err(
                "service.webhook_secret is required: set NIVESH__SERVICE__WEBHOOK_SECRET to the \
                 payment gateway's webhook signing secret"
                    .into(),
            ),
        }
    }

    pub fn webhook_tolerance(&self) -> Duration {
        Duration::from_secs(self.webhook_tolerance_secs)
    }
}

/// `[service.gateway]`: the payment gateway adapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The gateway's REST base URL (the simulator's address locally).
    pub base_url: String,
    /// The gateway's name as events report it (`PaymentInitiated::gateway`).
    pub name: String,
    /// Whole-request timeout of one attempt (milliseconds); never longer than what is left of
    /// the caller's deadline.
    pub request_timeout_ms: u64,
    /// TCP/TLS connect timeout (milliseconds).
    pub connect_timeout_ms: u64,
    /// Attempts per gateway call (1 = no in-call retry); only transient failures are retried.
    pub max_attempts: u32,
    /// First retry's backoff ceiling (milliseconds); doubles per retry.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling (milliseconds).
    pub backoff_max_ms: u64,
    /// Retry budget: retries may add at most this share of the calls made in the last
    /// `retry_budget_window_secs` (0.1 = 10 % extra load)...
    pub retry_budget_ratio: f32,
    /// ...plus this many retries per second (so a quiet service can still retry).
    pub retry_budget_min_per_sec: u32,
    /// The budget's window (1 to 60 seconds).
    pub retry_budget_window_secs: u64,
    /// Circuit breaker: the sliding window (last N calls) the rates are computed over.
    pub breaker_window: usize,
    /// No verdict before this many calls are in the window.
    pub breaker_minimum_calls: usize,
    /// Open when at least this share of the window failed transiently.
    pub breaker_failure_rate: f64,
    /// Open when at least this share of the window was slow...
    pub breaker_slow_call_rate: f64,
    /// ...where slow is at least this long (milliseconds).
    pub breaker_slow_call_ms: u64,
    /// How long the breaker stays open before trial calls (seconds).
    pub breaker_open_secs: u64,
    /// Trial calls in half-open; all must be under both rates to close it.
    pub breaker_half_open_calls: u32,
    /// Bulkhead: gateway calls in flight at once (consumer and reconciler together).
    pub max_concurrent_calls: usize,
    /// How long a call waits for a bulkhead slot before failing as unavailable (milliseconds).
    pub bulkhead_wait_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            base_url: "http://127.0.0.1:8190".into(),
            name: "pg-sim".into(),
            request_timeout_ms: 3_000,
            connect_timeout_ms: 500,
            max_attempts: 4,
            backoff_base_ms: 100,
            backoff_max_ms: 2_000,
            retry_budget_ratio: 0.1,
            retry_budget_min_per_sec: 1,
            retry_budget_window_secs: 10,
            breaker_window: 20,
            breaker_minimum_calls: 5,
            breaker_failure_rate: 0.5,
            breaker_slow_call_rate: 0.5,
            breaker_slow_call_ms: 2_000,
            breaker_open_secs: 30,
            breaker_half_open_calls: 3,
            max_concurrent_calls: 32,
            bulkhead_wait_ms: 500,
        }
    }
}

impl GatewayConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.backoff_base_ms),
            max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_base_ms)),
        }
    }

    pub fn breaker_open(&self) -> Duration {
        Duration::from_secs(self.breaker_open_secs)
    }

    /// The circuit breaker's thresholds.
    pub fn breaker(&self) -> nivesh_resilience::BreakerConfig {
        nivesh_resilience::BreakerConfig {
            failure_rate_threshold: self.breaker_failure_rate,
            slow_call_rate_threshold: self.breaker_slow_call_rate,
            slow_call_duration: Duration::from_millis(self.breaker_slow_call_ms),
            window: self.breaker_window.max(1),
            minimum_calls: self.breaker_minimum_calls.max(1),
            open_for: self.breaker_open(),
            half_open_calls: self.breaker_half_open_calls.max(1),
        }
    }

    /// The retry budget (one per gateway client).
    pub fn retry_budget(&self) -> nivesh_resilience::RetryBudget {
        nivesh_resilience::RetryBudget::new(
            Duration::from_secs(self.retry_budget_window_secs),
            self.retry_budget_min_per_sec,
            self.retry_budget_ratio,
        )
    }
}

/// `[service.reconcile]`: polling the gateway for payments whose webhook did not come.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Off: only webhooks complete payments (tests of the webhook path alone).
    pub enabled: bool,
    /// How often the reconciler looks (seconds).
    pub interval_secs: u64,
    /// A payment pending (or a refund requested) at least this long is polled (seconds).
    pub min_age_secs: u64,
    /// A payment still pending at the gateway after this long is failed as `EXPIRED` (seconds).
    pub expire_after_secs: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            enabled: true,
            interval_secs: 10,
            min_age_secs: 60,
            expire_after_secs: 3_600,
        }
    }
}

impl ReconcileConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }
}

/// An empty string is "not set" (TOML has no null; `NIVESH__SERVICE__WEBHOOK_SECRET=` unsets).
fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.trim().is_empty())
        .map(SecretString::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_runtime::config::{ConfigSources, Settings, load_from};

    fn load(vars: &[(&str, &str)]) -> Result<Settings<Config>, nivesh_runtime::Error> {
        load_from("payment", &ConfigSources::with_vars(vars.iter().copied()))
    }

    /// Without a `[service]` section the defaults apply, and the missing secret is reported.
    #[test]
    fn defaults_need_a_secret() {
        let s = load(&[]).unwrap();
        assert_eq!(s.service.gateway.base_url, "http://127.0.0.1:8190");
        assert_eq!(s.service.gateway.max_attempts, 4);
        assert_eq!(s.service.gateway.request_timeout_ms, 3_000);
        assert!(s.service.reconcile.enabled);
        let err = s.service.secret().unwrap_err();
        assert!(err.contains("NIVESH__SERVICE__WEBHOOK_SECRET"), "{err}");
    }

    /// Every key is reachable from the environment, and the secret never shows in Debug.
    #[test]
    fn environment_overrides_and_redaction() {
        let s = load(&[
            ("NIVESH__SERVICE__GATEWAY__BASE_URL", "http://gw:9000"),
            ("NIVESH__SERVICE__GATEWAY__REQUEST_TIMEOUT_MS", "750"),
            ("NIVESH__SERVICE__GATEWAY__BREAKER_MINIMUM_CALLS", "2"),
            ("NIVESH__SERVICE__GATEWAY__BREAKER_SLOW_CALL_MS", "1500"),
            ("NIVESH__SERVICE__WEBHOOK_SECRET", "s3cr3t-value"),
            ("NIVESH__SERVICE__WEBHOOK_TOLERANCE_SECS", "60"),
            ("NIVESH__SERVICE__RECONCILE__MIN_AGE_SECS", "5"),
            ("NIVESH__SERVICE__RECONCILE__ENABLED", "false"),
        ])
        .unwrap();
        let c = &s.service;
        assert_eq!(c.gateway.base_url, "http://gw:9000");
        assert_eq!(c.gateway.request_timeout(), Duration::from_millis(750));
        assert_eq!(c.gateway.breaker().minimum_calls, 2);
        assert_eq!(
            c.gateway.breaker().slow_call_duration,
            Duration::from_millis(1500)
        );
        assert_eq!(c.secret().unwrap().expose_secret(), "s3cr3t-value");
        assert_eq!(c.webhook_tolerance(), Duration::from_secs(60));
        assert_eq!(c.reconcile.min_age_secs, 5);
        assert!(!c.reconcile.enabled);
        assert!(!format!("{s:?}").contains("s3cr3t-value"));
    }

    /// A misspelt key is an error, not silently ignored.
    #[test]
    fn unknown_keys_are_refused() {
        assert!(load(&[("NIVESH__SERVICE__GATEWAY__BASEURL", "x")]).is_err());
    }
}
