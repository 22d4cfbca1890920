//! `[service]` settings of the onboarding service (environment: `NIVESH__SERVICE__<KEY>`, nested
//! keys with `__`, e.g. `NIVESH__SERVICE__KRA__BASE_URL`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kra: KraConfig,
    /// Shared HMAC-SHA256 secret of the KRA's callbacks. Required; pass it as
    /// `NIVESH__SERVICE__CALLBACK_SECRET`, never in a file.
    #[serde(deserialize_with = "optional_secret")]
    pub callback_secret: Option<SecretString>,
    /// How far a callback's `X-Nivesh-Timestamp` may be from the wall clock (seconds).
    pub callback_tolerance_secs: u64,
    pub vault: VaultConfig,
    pub commission: CommissionConfig,
    /// How long the masked investor view stays in the cache (seconds; 0 = no caching).
    pub view_cache_ttl_secs: u64,
    /// Minimum age of an investor who onboards without a guardian (years, on the business date).
    pub adult_age_years: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kra: KraConfig::default(),
            callback_secret: None,
            callback_tolerance_secs: 300,
            vault: VaultConfig::default(),
            commission: CommissionConfig::default(),
            view_cache_ttl_secs: 60,
            adult_age_years: 18,
        }
    }
}

impl Config {
    /// The callback secret, or a configuration error naming the variable to set.
    pub fn secret(&self) -> Result<SecretString, String> {
        match &self.callback_secret {
            Some(s) if !s.expose_secret().is_empty() => Ok(s.clone()),
            _ => Err(
                "service.callback_secret is required: set NIVESH__SERVICE__CALLBACK_SECRET to the \
                 KRA's callback signing secret"
                    .into(),
            ),
        }
    }

    pub fn callback_tolerance(&self) -> Duration {
        Duration::from_secs(self.callback_tolerance_secs)
    }
}

/// `[service.kra]`: the KYC Registration Agency adapter and its resilience (docs/resilience.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KraConfig {
    /// The KRA's REST base URL (the simulator's address locally).
    pub base_url: String,
    /// Whole-request timeout of one attempt (milliseconds); never longer than what is left of
    /// the request's deadline.
    pub request_timeout_ms: u64,
    /// Attempts per registration (1 = no in-call retry); only transient failures (connect
    /// error, timeout, 5xx, 408, 429) are retried, and a registration is safe to repeat (its
    /// `Idempotency-Key` is the investor id).
    pub max_attempts: u32,
    /// First retry's backoff ceiling (milliseconds; full jitter); doubles per retry.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling (milliseconds).
    pub backoff_max_ms: u64,
    /// Retry budget: retries may add at most this share of the calls made in the last
    /// `retry_budget_window_secs` (0.1 = 10 % extra load)...
    pub retry_budget_ratio: f32,
    /// ...plus this many retries per second.
    pub retry_budget_min_per_sec: u32,
    /// The budget's window (1 to 60 seconds).
    pub retry_budget_window_secs: u64,
    /// Circuit breaker: the sliding window (last N attempts) the rates are computed over.
    pub breaker_window: usize,
    /// No verdict before this many attempts are in the window.
    pub breaker_minimum_calls: usize,
    /// Open when at least this share of the window failed transiently...
    pub breaker_failure_rate: f64,
    /// ...or at least this share was slow...
    pub breaker_slow_call_rate: f64,
    /// ...where slow is at least this long (milliseconds).
    pub breaker_slow_call_ms: u64,
    /// How long the breaker stays open before trial calls (seconds).
    pub breaker_open_secs: u64,
    /// Trial calls in half-open; all must be under both rates to close it.
    pub breaker_half_open_calls: u32,
    /// Bulkhead: KRA calls in flight at once.
    pub max_concurrent_calls: usize,
    /// How long a call waits for a bulkhead slot before failing as unavailable (milliseconds).
    pub bulkhead_wait_ms: u64,
}

impl Default for KraConfig {
    fn default() -> Self {
        KraConfig {
            base_url: "http://127.0.0.1:8191".into(),
            request_timeout_ms: 3_000,
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            retry_budget_ratio: 0.1,
            retry_budget_min_per_sec: 1,
            retry_budget_window_secs: 10,
            breaker_window: 20,
            breaker_minimum_calls: 5,
            breaker_failure_rate: 0.5,
            breaker_slow_call_rate: 0.5,
            breaker_slow_call_ms: 2_000,
            breaker_open_secs: 30,
            breaker_half_open_calls: 2,
            max_concurrent_calls: 16,
            bulkhead_wait_ms: 250,
        }
    }
}

impl KraConfig {
    /// The circuit breaker's thresholds.
    pub fn breaker(&self) -> nivesh_resilience::BreakerConfig {
        nivesh_resilience::BreakerConfig {
            failure_rate_threshold: self.breaker_failure_rate,
            slow_call_rate_threshold: self.breaker_slow_call_rate,
            slow_call_duration: Duration::from_millis(self.breaker_slow_call_ms),
            window: self.breaker_window.max(1),
            minimum_calls: self.breaker_minimum_calls.max(1),
            open_for: Duration::from_secs(self.breaker_open_secs),
            half_open_calls: self.breaker_half_open_calls.max(1),
        }
    }

    /// Retries: attempts, full-jitter backoff and the retry budget (one per client).
    pub fn retry(&self, dependency: &str) -> nivesh_resilience::RetryPolicy {
        nivesh_resilience::RetryPolicy::new(
            dependency,
            self.max_attempts,
            nivesh_resilience::Backoff::new(
                Duration::from_millis(self.backoff_base_ms),
                Duration::from_millis(self.backoff_max_ms.max(self.backoff_base_ms)),
            ),
            nivesh_resilience::RetryBudget::new(
                Duration::from_secs(self.retry_budget_window_secs),
                self.retry_budget_min_per_sec,
                self.retry_budget_ratio,
            ),
        )
    }
}

/// Which key-encryption-key provider wraps the vault's data keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KmsKind {
    /// A 256-bit key in a file, generated on first start (local runs and tests).
    LocalFile,
    /// Azure Key Vault `wrapKey`/`unwrapKey` (production).
    AzureKeyVault,
}

/// `[service.vault]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    pub kms: KmsKind,
    /// The local KEK file; empty: `<store.data_dir>/onboarding-kek.key`.
    #[serde(deserialize_with = "optional_path")]
    pub local_key_file: Option<PathBuf>,
    pub azure: AzureKeyVaultConfig,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            kms: KmsKind::LocalFile,
            local_key_file: None,
            azure: AzureKeyVaultConfig::default(),
        }
    }
}

/// `[service.vault.azure]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureKeyVaultConfig {
    /// e.g. `https://nivesh-kv.vault.azure.net`
    pub vault_url: String,
    /// The RSA key wrapping data keys.
    pub key_name: String,
    /// Empty: the current version (what wrapping uses; unwrapping uses the version recorded in
    /// the wrapped key's `kid`).
    pub key_version: String,
    /// `RSA-OAEP-256` (default) or `RSA-OAEP`.
    pub algorithm: String,
    pub api_version: String,
    /// A fixed bearer token for `https://vault.azure.net` (tests, break-glass). Empty: tokens
    /// come from AKS workload identity (the federated token exchanged at Entra ID, cached
    /// until five minutes before expiry).
    #[serde(deserialize_with = "optional_secret")]
    pub bearer_token: Option<SecretString>,
    pub request_timeout_ms: u64,
    /// Workload identity: empty values come from the variables AKS injects
    /// (`AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`).
    pub authority_host: String,
    pub tenant_id: String,
    pub client_id: String,
    pub federated_token_file: String,
}

impl Default for AzureKeyVaultConfig {
    fn default() -> Self {
        AzureKeyVaultConfig {
            vault_url: String::new(),
            key_name: "onboarding-kek".into(),
            key_version: String::new(),
            algorithm: "RSA-OAEP-256".into(),
            api_version: "7.4".into(),
            bearer_token: None,
            request_timeout_ms: 3_000,
            authority_host: String::new(),
            tenant_id: String::new(),
            client_id: String::new(),
            federated_token_file: String::new(),
        }
    }
}

/// Upfront and trail rates in basis points of the invested amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// One-off, on the transaction's net (invested) amount.
    pub upfront_bps: Decimal,
    /// Per year, on the invested amount; accrued per day as `amount * bps / 10000 / 365`.
    pub trail_bps: Decimal,
}

/// `[service.commission]`: rates per scheme category (AMFI category text, e.g.
/// `"Equity Scheme - Large Cap Fund"`) with a default for the rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommissionConfig {
    pub default: Rates,
    pub categories: BTreeMap<String, Rates>,
}

impl Default for CommissionConfig {
    fn default() -> Self {
        CommissionConfig {
            default: Rates {
                upfront_bps: Decimal::ZERO,
                trail_bps: Decimal::new(50, 0),
            },
            categories: BTreeMap::new(),
        }
    }
}

impl CommissionConfig {
    /// The rates of `category` (exact, then case-insensitive), else the default.
    pub fn rates_for(&self, category: Option<&str>) -> (Rates, Option<String>) {
        if let Some(c) = category {
            if let Some(r) = self.categories.get(c) {
                return (*r, Some(c.to_string()));
            }
            if let Some((k, r)) = self
                .categories
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(c.trim()))
            {
                return (*r, Some(k.clone()));
            }
        }
        (self.default, None)
    }
}

/// An empty string is "not set" (TOML has no null).
fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.trim().is_empty())
        .map(SecretString::from))
}

fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nivesh_runtime::config::{ConfigSources, Settings, load_from};

    fn load(vars: &[(&str, &str)]) -> Result<Settings<Config>, nivesh_runtime::Error> {
        load_from(
            "onboarding",
            &ConfigSources::with_vars(vars.iter().copied()),
        )
    }

    /// Defaults apply without a `[service]` section; the missing secret is reported by name.
    #[test]
    fn defaults_need_a_secret() {
        let s = load(&[]).unwrap();
        assert_eq!(s.service.kra.base_url, "http://127.0.0.1:8191");
        assert_eq!(s.service.vault.kms, KmsKind::LocalFile);
        assert_eq!(s.service.commission.default.trail_bps, Decimal::new(50, 0));
        let err = s.service.secret().unwrap_err();
        assert!(err.contains("NIVESH__SERVICE__CALLBACK_SECRET"), "{err}");
    }

    /// Rates come from the environment exactly, per category, and the secret stays hidden.
    #[test]
    fn environment_overrides_and_redaction() {
        let s = load(&[
            ("NIVESH__SERVICE__CALLBACK_SECRET", "kra-s3cr3t"),
            ("NIVESH__SERVICE__COMMISSION__DEFAULT__UPFRONT_BPS", "12.5"),
            ("NIVESH__SERVICE__COMMISSION__DEFAULT__TRAIL_BPS", "75"),
            ("NIVESH__SERVICE__VAULT__KMS", "azure-key-vault"),
        ])
        .unwrap();
        let c = &s.service;
        assert_eq!(c.secret().unwrap().expose_secret(), "kra-s3cr3t");
        assert_eq!(c.commission.default.upfront_bps, Decimal::new(125, 1));
        assert_eq!(c.commission.default.trail_bps, Decimal::new(75, 0));
        assert_eq!(c.vault.kms, KmsKind::AzureKeyVault);
        assert!(!format!("{s:?}").contains("kra-s3cr3t"));
    }

    /// A category's rates win over the default; matching ignores case; unknown falls back.
    #[test]
    fn rates_by_category() {
        let mut c = CommissionConfig::default();
        let equity = Rates {
            upfront_bps: Decimal::new(100, 0),
            trail_bps: Decimal::new(80, 0),
        };
        c.categories
            .insert("Equity Scheme - Large Cap Fund".into(), equity);
        assert_eq!(
            c.rates_for(Some("Equity Scheme - Large Cap Fund")).0,
            equity
        );
        assert_eq!(
            c.rates_for(Some("equity scheme - large cap fund")).0,
            equity
        );
        assert_eq!(c.rates_for(Some("Debt Scheme - Liquid Fund")).0, c.default);
        assert_eq!(c.rates_for(None), (c.default, None));
    }
}
