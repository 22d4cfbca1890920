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
    /// Whole-request timeout of one attempt (milliseconds).
    pub request_timeout_ms: u64,
    /// TCP/TLS connect timeout (milliseconds).
    pub connect_timeout_ms: u64,
    /// Attempts per gateway call (1 = no in-call retry); only transient failures are retried.
    pub max_attempts: u32,
    /// First retry's backoff ceiling (milliseconds); doubles per retry.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling (milliseconds).
    pub backoff_max_ms: u64,
    /// Consecutive transient failures that open the circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long the breaker stays open before one trial call (seconds).
    pub breaker_open_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            base_url: "http://127.0.0.1:8190".into(),
            name: "pg-sim".into(),
            request_timeout_ms: 2_000,
            connect_timeout_ms: 500,
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 2_000,
            breaker_failure_threshold: 5,
            breaker_open_secs: 30,
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
        assert_eq!(s.service.gateway.max_attempts, 3);
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
            ("NIVESH__SERVICE__GATEWAY__BREAKER_FAILURE_THRESHOLD", "2"),
            ("NIVESH__SERVICE__WEBHOOK_SECRET", "s3cr3t-value"),
            ("NIVESH__SERVICE__WEBHOOK_TOLERANCE_SECS", "60"),
            ("NIVESH__SERVICE__RECONCILE__MIN_AGE_SECS", "5"),
            ("NIVESH__SERVICE__RECONCILE__ENABLED", "false"),
        ])
        .unwrap();
        let c = &s.service;
        assert_eq!(c.gateway.base_url, "http://gw:9000");
        assert_eq!(c.gateway.request_timeout(), Duration::from_millis(750));
        assert_eq!(c.gateway.breaker_failure_threshold, 2);
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
